"""Runner for feature-engineering: our imputer, scaler and encoders beside scikit-learn's.

Penguins: the imputed statistics. Adult: the same ColumnTransformer built from our
transformers and from sklearn's, trained on the training file and scored on the test file;
one-hot vs ordinal vs target encoding by cross-validation; two leakage experiments (a scaler
and a target encoder fitted on ALL rows before cross-validation vs inside each training
fold), with the measured gaps. Titanic: the same pipeline, cross-validated."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import pandas as pd

from airoad.classic import feature_engineering as fe
from airoad.classic.model_evaluation import cross_validate, stratified_kfold_indices
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes
from airoad.labs.runners import feature_engineering_figures as figures

NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL = (
    "workclass education marital-status occupation relationship race sex native-country".split()
)
CROSS = "age|education|occupation|hours"  # a deliberately high-cardinality feature cross
MIN_ADULT_ROWS = 100  # fewer rows leave too few high earners for the folds


@dataclass(frozen=True)
class Config:
    # 0 = all 32561 training and 16281 test rows; else stratified subsets (half as many test rows)
    adult_rows: int = param(0, ge=MIN_ADULT_ROWS, le=32561, also=(0,))  # 0 = all rows
    n_splits: int = param(5, ge=2, le=20)
    smooth: float = param(0.0, ge=0.0, le=1e6)  # target-encoder smoothing m; 0 = "auto"
    seed: int = param(0, ge=0, le=2**32 - 1)


QUICK = {"adult_rows": 1500, "n_splits": 3}

NOTES = (
    "Our ColumnTransformer output equals sklearn's to {max_abs_diff_transformed_vs_sklearn:.1e} "
    "({adult_features} columns, names {names_verdict}); test accuracy "
    "{ours_adult_test_accuracy:.4f} (sklearn's transformers: {sklearn_adult_test_accuracy:.4f}).",
    "Encodings by CV ROC AUC: {encoding_scores}; best: {best_encoding}.",
    "Scaler fitted on all rows vs inside each fold: ROC AUC gap {leak_scaler_roc_auc_gap:+.2e} "
    "{scaler_verdict}",
    "Target encoder of the '{cross}' cross ({cross_feature_categories} categories) fitted on all "
    "rows before CV: ROC AUC {te_leaky_roc_auc:.4f} vs {te_honest_roc_auc:.4f} inside each fold, "
    "a gap of {leak_target_encoder_roc_auc_gap:+.4f} ({leak_target_encoder_accuracy_gap:+.4f} "
    "accuracy) that {te_verdict}",
    "Titanic ({titanic_rows} rows): CV accuracy {titanic_cv_accuracy:.4f}, ROC AUC "
    "{titanic_cv_roc_auc:.4f} with our scaler + one-hot + logistic regression.",
)


def _subset(frame: pd.DataFrame, y: np.ndarray, rows: int, seed: int):
    if 0 < rows < len(frame):
        _, keep = stratified_kfold_indices(y, len(frame) // rows, True, seed)[0]
        return frame.iloc[keep].reset_index(drop=True), y[keep]
    return frame.reset_index(drop=True), y


def _adult(config: Config):
    train, test = load("adult")
    y_tr = (train["income"] == ">50K").to_numpy().astype(int)
    y_te = (test["income"] == ">50K").to_numpy().astype(int)
    train, y_tr = _subset(train, y_tr, config.adult_rows, config.seed)
    test, y_te = _subset(test, y_te, config.adult_rows // 2, config.seed)
    for frame in (train, test):
        parts = [frame["education"], frame["occupation"].fillna("?"), frame["hours-per-week"]]
        frame[CROSS] = frame["age"].astype(str).str.cat([p.astype(str) for p in parts], sep="|")
    return train, y_tr, test, y_te


def _preprocessor(
    mod,
    encoding: str = "onehot",
    smooth="auto",
    seed: int = 0,
    categorical=CATEGORICAL,
    numeric=NUMERIC,
    scale_numeric: bool = True,
):
    """ColumnTransformer from `mod` (ours or sklearn's): median (+ scale) numbers, encode categories."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    sk = mod is not fe
    if encoding == "onehot":
        enc = mod.OneHotEncoder(handle_unknown="ignore", **({"sparse_output": False} if sk else {}))
        cat = make_pipeline(mod.SimpleImputer(strategy="most_frequent"), enc)
    elif encoding == "ordinal":
        enc = mod.OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
        cat = make_pipeline(mod.SimpleImputer(strategy="most_frequent"), enc, mod.StandardScaler())
    else:
        enc = mod.TargetEncoder(smooth=smooth, random_state=seed)
        cat = make_pipeline(mod.SimpleImputer(strategy="most_frequent"), enc, mod.StandardScaler())
    num = make_pipeline(
        mod.SimpleImputer(strategy="median"), *([mod.StandardScaler()] if scale_numeric else [])
    )
    return ColumnTransformer([("num", num, list(numeric)), ("cat", cat, list(categorical))])


def _logreg():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=2000)


def _model(prep_factory):
    from sklearn.pipeline import Pipeline

    return lambda: Pipeline([("prep", prep_factory()), ("model", _logreg())])


def _cv(prep_factory, X, y, config: Config) -> dict:
    """Cross-validate preprocessing + logistic regression on our seeded stratified folds."""
    return cross_validate(_model(prep_factory), X, y, config.n_splits, random_state=config.seed)


def _cv_scores(res: dict) -> dict:
    return {
        "cv_accuracy": res["accuracy_mean"],
        "cv_roc_auc": res["roc_auc_mean"],
        "roc_auc_std": res["roc_auc_std"],
    }


def _imputation_rows() -> list[dict]:
    """The statistic each imputer fills in, ours beside scikit-learn's, on Penguins."""
    from sklearn.impute import SimpleImputer

    penguins, rows = load("penguins"), []
    for cols, strategy in [
        (["bill_length_mm", "flipper_length_mm", "body_mass_g"], "mean"),
        (["bill_depth_mm"], "median"),
        (["sex"], "most_frequent"),
    ]:
        ours = fe.SimpleImputer(strategy=strategy).fit(penguins[cols]).statistics_
        theirs = SimpleImputer(strategy=strategy).fit(penguins[cols]).statistics_
        for col, a, b in zip(cols, ours, theirs):
            row = {"column": col, "strategy": strategy, "missing": int(penguins[col].isna().sum())}
            plain = {"ours": a, "sklearn": b}  # a most-frequent category stays a string
            rows.append(row | {k: v if isinstance(v, str) else float(v) for k, v in plain.items()})
    return rows


def _pipelines(train, y_tr, test, y_te, ctx: RunContext) -> tuple[dict, list[dict]]:
    """Our transformers vs sklearn's in the same pipeline: matrices, names, test scores."""
    from types import SimpleNamespace

    from sklearn import preprocessing as skp
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import accuracy_score, roc_auc_score

    # sklearn's transformers under the names ours use, so one builder makes both pipelines.
    names = ("OneHotEncoder", "OrdinalEncoder", "StandardScaler", "TargetEncoder")
    sk_mod = SimpleNamespace(SimpleImputer=SimpleImputer, **{n: getattr(skp, n) for n in names})
    out, rows = {}, []
    for who, mod in ctx.track([("ours", fe), ("sklearn", sk_mod)], "adult: train on train file"):
        prep = _preprocessor(mod)
        Z = prep.fit_transform(train, y_tr)
        p = _logreg().fit(Z, y_tr).predict_proba(prep.transform(test))[:, 1]
        out[who] = {"Z": Z, "names": list(prep.get_feature_names_out())}
        rows.append(
            {
                "transformers": who,
                "features": Z.shape[1],
                "test_accuracy": accuracy_score(y_te, p > 0.5),
                "test_roc_auc": roc_auc_score(y_te, p),
            }
        )
    ours, sk = rows
    metrics = {
        "ours_adult_test_accuracy": ours["test_accuracy"],
        "sklearn_adult_test_accuracy": sk["test_accuracy"],
        "ours_adult_test_roc_auc": ours["test_roc_auc"],
        "sklearn_adult_test_roc_auc": sk["test_roc_auc"],
        "adult_features": ours["features"],
        "max_abs_diff_transformed_vs_sklearn": float(
            np.abs(out["ours"]["Z"] - out["sklearn"]["Z"]).max()
        ),
        "feature_names_match_sklearn": bool(out["ours"]["names"] == out["sklearn"]["names"]),
    }
    return metrics, rows


def _smooth(config: Config):
    return "auto" if config.smooth == 0 else config.smooth


def _encodings(train, y_tr, config: Config, ctx: RunContext) -> tuple[dict, list[dict]]:
    """CV scores of one-hot / ordinal / target encoding; our vs sklearn's cross-fitted encoding."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import TargetEncoder as SkTE

    smooth = _smooth(config)
    rows = []
    for enc in ctx.track(["onehot", "ordinal", "target"], "adult: encodings by CV"):
        prep = partial(_preprocessor, fe, enc, smooth, config.seed)
        cv = _cv(prep, train, y_tr, config)
        n_features = prep().fit_transform(train, y_tr).shape[1]
        seconds = {"fit_seconds": cv["fit_seconds_mean"]}
        rows.append({"encoding": enc, "features": n_features, **_cv_scores(cv), **seconds})
    X = train[CATEGORICAL].fillna("?")
    ours = fe.TargetEncoder(smooth=smooth, random_state=config.seed).fit_transform(X, y_tr)
    theirs = SkTE(
        smooth=smooth, cv=StratifiedKFold(5, shuffle=True, random_state=config.seed)
    ).fit_transform(X, y_tr)
    metrics = {
        "target_encoder_max_abs_diff_vs_sklearn": float(np.abs(ours - theirs).max()),
        **{f"cv_roc_auc_{r['encoding']}": r["cv_roc_auc"] for r in rows},
        "best_encoding": max(rows, key=lambda r: r["cv_roc_auc"])["encoding"],
    }
    return metrics, rows


def _leak_cases(train, y_tr, config: Config) -> list[tuple]:
    """Each leakage case: a step fitted on every row before CV, or inside each training fold."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    smooth = _smooth(config)
    # 1. The scaler: standardise the numbers with statistics of every row, then cross-validate.
    leaky = train.copy()
    leaky[NUMERIC] = fe.StandardScaler().fit_transform(train[NUMERIC])

    plain = partial(_preprocessor, fe)
    unscaled = partial(_preprocessor, fe, scale_numeric=False)  # the numbers arrive scaled

    # 2. A target encoder of the high-cardinality cross, fitted once on every row.
    te_leaky = train.copy()
    te_leaky["cross_te"] = (
        fe.TargetEncoder(smooth=smooth).fit(train[[CROSS]], y_tr).transform(train[[CROSS]])[:, 0]
    )

    def te_inside():
        te = make_pipeline(
            fe.TargetEncoder(smooth=smooth, random_state=config.seed), fe.StandardScaler()
        )
        return ColumnTransformer(
            [("base", _preprocessor(fe), NUMERIC + CATEGORICAL), ("te", te, [CROSS])]
        )

    def te_outside():
        scaled = ("te", fe.StandardScaler(), ["cross_te"])
        return ColumnTransformer([("base", _preprocessor(fe), NUMERIC + CATEGORICAL), scaled])

    return [  # (step, how it is fitted, preprocessor factory, training frame)
        ("scaler", "fitted on all rows", unscaled, leaky),
        ("scaler", "inside each fold", plain, train),
        ("target encoder", "fit on all rows, then CV", te_outside, te_leaky),
        ("target encoder", "inside each fold (cross-fitted)", te_inside, train),
    ]


def _leakage(train, y_tr, config: Config, ctx: RunContext) -> tuple[dict, list[dict]]:
    """Fit a step on ALL rows before CV (leaky) vs inside every training fold (honest)."""
    rows = []
    for step, how, factory, X in ctx.track(_leak_cases(train, y_tr, config), "leakage experiments"):
        rows.append({"step": step, "fitted": how, **_cv_scores(_cv(factory, X, y_tr, config))})
    scaler_leaky, scaler_honest, te_leaky, te_honest = rows
    metrics = {
        "leak_scaler_roc_auc_gap": scaler_leaky["cv_roc_auc"] - scaler_honest["cv_roc_auc"],
        "leak_target_encoder_roc_auc_gap": te_leaky["cv_roc_auc"] - te_honest["cv_roc_auc"],
        "leak_target_encoder_accuracy_gap": te_leaky["cv_accuracy"] - te_honest["cv_accuracy"],
        "cross_feature_categories": int(train[CROSS].nunique()),
    }
    return metrics, rows


def _titanic(config: Config) -> dict:
    """The same scaler + one-hot + logistic regression pipeline, cross-validated on Titanic."""
    titanic = load("titanic")
    y = titanic["survived"].to_numpy()
    num, cat = ["age", "fare", "sibsp", "parch"], ["gender", "class", "embarked"]

    def prep():
        return _preprocessor(fe, categorical=cat, numeric=num)

    res = _cv(prep, titanic, y, config)
    return {
        "titanic_rows": len(titanic),
        "titanic_cv_accuracy": res["accuracy_mean"],
        "titanic_cv_roc_auc": res["roc_auc_mean"],
        "titanic_features": prep().fit_transform(titanic).shape[1],
    }


def _verdicts(metrics: dict, enc_rows: list[dict], leak_rows: list[dict]) -> dict:
    """The conclusions the notes state, each computed from the measured numbers."""
    scaler_gap = metrics["leak_scaler_roc_auc_gap"]
    te_gap = metrics["leak_target_encoder_roc_auc_gap"]
    return {
        "cross": CROSS,
        "names_verdict": "identical" if metrics["feature_names_match_sklearn"] else "DIFFERENT",
        "encoding_scores": ", ".join(
            f"{r['encoding']} {r['cv_roc_auc']:.4f} ({r['features']} cols)" for r in enc_rows
        ),
        "scaler_verdict": "(negligible: a scaler learns only means and spreads, no label)."
        if abs(scaler_gap) < 1e-3
        else "(measurable on this subset).",
        "te_leaky_roc_auc": leak_rows[2]["cv_roc_auc"],
        "te_honest_roc_auc": leak_rows[3]["cv_roc_auc"],
        "te_verdict": "is pure leakage: the rare categories' encodings carry their own labels."
        if te_gap > 0.005
        else "is small on this data.",
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    train, y_tr, test, y_te = _adult(config)
    imputation = _imputation_rows()
    pipe_metrics, pipe_rows = _pipelines(train, y_tr, test, y_te, ctx)
    enc_metrics, enc_rows = _encodings(train, y_tr, config, ctx)
    leak_metrics, leak_rows = _leakage(train, y_tr, config, ctx)
    titanic = _titanic(config)

    figures.missing_values_figure(ctx, train)
    figures.target_encoding_figure(ctx, train, y_tr)
    figures.encodings_and_leakage_figure(ctx, enc_rows, leak_rows)

    sizes = {"adult_train_rows": len(train), "adult_test_rows": len(test)}
    metrics = {**sizes, **pipe_metrics, **enc_metrics, **leak_metrics, **titanic}
    verdicts = _verdicts(metrics, enc_rows, leak_rows)
    return LabResult(
        metrics=metrics,
        key_metric="ours_adult_test_accuracy",
        library_metric="sklearn_adult_test_accuracy",
        tables={
            "imputation": imputation,
            "pipelines": pipe_rows,
            "encodings": enc_rows,
            "leakage": leak_rows,
        },
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **verdicts}),
    )
