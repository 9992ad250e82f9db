"""Runner for feature-engineering: our imputer, scaler and encoders beside scikit-learn's.

Penguins: the imputed statistics. Adult: the same ColumnTransformer built from our
transformers and from sklearn's, trained on the training file and scored on the test file;
one-hot vs ordinal vs target encoding by cross-validation; two leakage experiments (a scaler
and a target encoder fitted on ALL rows before cross-validation vs inside each training
fold), with the measured gaps. Titanic: the same pipeline, cross-validated."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from airoad.classic import feature_engineering as fe
from airoad.classic.model_evaluation import cross_validate, stratified_kfold_indices
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext

NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
CATEGORICAL = [
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
]
CROSS = "age|education|occupation|hours"  # a deliberately high-cardinality feature cross


@dataclass(frozen=True)
class Config:
    adult_rows: int = 0  # 0 = all 32561 training and 16281 test rows; else stratified subsets
    n_splits: int = 5
    smooth: float = 0.0  # target-encoder smoothing m; 0 = "auto" (empirical Bayes)
    seed: int = 0


QUICK = {"adult_rows": 1500, "n_splits": 3}


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
        frame[CROSS] = (
            frame["age"].astype(str)
            + "|"
            + frame["education"]
            + "|"
            + frame["occupation"].fillna("?")
            + "|"
            + frame["hours-per-week"].astype(str)
        )
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


def _imputation_rows() -> list[dict]:
    from sklearn.impute import SimpleImputer

    penguins = load("penguins")
    rows = []
    for cols, strategy in [
        (["bill_length_mm", "flipper_length_mm", "body_mass_g"], "mean"),
        (["bill_depth_mm"], "median"),
        (["sex"], "most_frequent"),
    ]:
        ours = fe.SimpleImputer(strategy=strategy).fit(penguins[cols]).statistics_
        theirs = SimpleImputer(strategy=strategy).fit(penguins[cols]).statistics_
        for col, a, b in zip(cols, ours, theirs):
            rows.append(
                {
                    "column": col,
                    "strategy": strategy,
                    "missing": int(penguins[col].isna().sum()),
                    "ours": a if isinstance(a, str) else float(a),
                    "sklearn": b if isinstance(b, str) else float(b),
                }
            )
    return rows


def _pipelines(train, y_tr, test, y_te, config, ctx) -> tuple[dict, list[dict]]:
    """Our transformers vs sklearn's in the same pipeline: matrices, names, test scores."""
    from types import SimpleNamespace

    from sklearn import preprocessing as skp
    from sklearn.impute import SimpleImputer
    from sklearn.metrics import accuracy_score, roc_auc_score

    # sklearn's transformers under the names ours use, so one builder makes both pipelines.
    sk_mod = SimpleNamespace(
        OneHotEncoder=skp.OneHotEncoder,
        OrdinalEncoder=skp.OrdinalEncoder,
        StandardScaler=skp.StandardScaler,
        TargetEncoder=skp.TargetEncoder,
        SimpleImputer=SimpleImputer,
    )

    out, rows = {}, []
    for who, mod in ctx.track([("ours", fe), ("sklearn", sk_mod)], "adult: train on train file"):
        prep = _preprocessor(mod)
        Z = prep.fit_transform(train, y_tr)
        model = _logreg().fit(Z, y_tr)
        p = model.predict_proba(prep.transform(test))[:, 1]
        out[who] = {"Z": Z, "names": list(prep.get_feature_names_out()), "p": p}
        rows.append(
            {
                "transformers": who,
                "features": Z.shape[1],
                "test_accuracy": accuracy_score(y_te, p > 0.5),
                "test_roc_auc": roc_auc_score(y_te, p),
            }
        )
    diff = float(np.abs(out["ours"]["Z"] - out["sklearn"]["Z"]).max())
    out["max_diff"], out["same_names"] = diff, out["ours"]["names"] == out["sklearn"]["names"]
    return out, rows


def _encodings(train, y_tr, config, ctx) -> tuple[list[dict], float]:
    """CV scores of one-hot / ordinal / target encoding, and our vs sklearn's cross-fitted encoding."""
    from sklearn.model_selection import StratifiedKFold
    from sklearn.preprocessing import TargetEncoder as SkTE

    smooth = "auto" if config.smooth == 0 else config.smooth
    rows = []
    for enc in ctx.track(["onehot", "ordinal", "target"], "adult: encodings by CV"):

        def prep(enc=enc):
            return _preprocessor(fe, enc, smooth, config.seed)

        cv = cross_validate(_model(prep), train, y_tr, config.n_splits, random_state=config.seed)
        n_feat = prep().fit_transform(train, y_tr).shape[1]
        rows.append(
            {
                "encoding": enc,
                "features": n_feat,
                "cv_accuracy": cv["accuracy_mean"],
                "cv_roc_auc": cv["roc_auc_mean"],
                "roc_auc_std": cv["roc_auc_std"],
                "fit_seconds": cv["fit_seconds_mean"],
            }
        )
    X = train[CATEGORICAL].fillna("?")
    ours = fe.TargetEncoder(smooth=smooth, random_state=config.seed).fit_transform(X, y_tr)
    theirs = SkTE(
        smooth=smooth, cv=StratifiedKFold(5, shuffle=True, random_state=config.seed)
    ).fit_transform(X, y_tr)
    return rows, float(np.abs(ours - theirs).max())


def _leakage(train, y_tr, config, ctx) -> list[dict]:
    """Fit a step on ALL rows before CV (leaky) vs inside every training fold (honest)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import make_pipeline

    smooth = "auto" if config.smooth == 0 else config.smooth

    def cv(factory, X):
        return cross_validate(_model(factory), X, y_tr, config.n_splits, random_state=config.seed)

    rows = []
    # 1. The scaler: standardise the numbers with statistics of every row, then cross-validate.
    leaky = train.copy()
    leaky[NUMERIC] = fe.StandardScaler().fit_transform(train[NUMERIC])

    def plain():
        return _preprocessor(fe)

    def unscaled():  # the numbers arrive already scaled (with every row's statistics)
        return _preprocessor(fe, scale_numeric=False)

    # 2. A target encoder of the high-cardinality cross, fitted once on every row with fit().transform().
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
        return ColumnTransformer(
            [
                ("base", _preprocessor(fe), NUMERIC + CATEGORICAL),
                ("te", fe.StandardScaler(), ["cross_te"]),
            ]
        )

    cases = [
        ("scaler", "fitted on all rows", unscaled, leaky),
        ("scaler", "inside each fold", plain, train),
        ("target encoder", "fit on all rows, then CV", te_outside, te_leaky),
        ("target encoder", "inside each fold (cross-fitted)", te_inside, train),
    ]
    for step, how, factory, X in ctx.track(cases, "leakage experiments"):
        res = cv(factory, X)
        rows.append(
            {
                "step": step,
                "fitted": how,
                "cv_accuracy": res["accuracy_mean"],
                "cv_roc_auc": res["roc_auc_mean"],
                "roc_auc_std": res["roc_auc_std"],
            }
        )
    return rows


def _titanic(config: Config) -> dict:
    titanic = load("titanic")
    y = titanic["survived"].to_numpy()
    num, cat = ["age", "fare", "sibsp", "parch"], ["gender", "class", "embarked"]
    res = cross_validate(
        _model(lambda: _preprocessor(fe, categorical=cat, numeric=num)),
        titanic,
        y,
        config.n_splits,
        random_state=config.seed,
    )
    return {
        "titanic_rows": len(titanic),
        "titanic_cv_accuracy": res["accuracy_mean"],
        "titanic_cv_roc_auc": res["roc_auc_mean"],
        "titanic_features": _preprocessor(fe, categorical=cat, numeric=num)
        .fit_transform(titanic)
        .shape[1],
    }


def _figures(train, y_tr, enc_rows, leak_rows, ctx: RunContext) -> list:
    import matplotlib.pyplot as plt
    from sklearn.preprocessing import TargetEncoder as SkTE

    out = []
    penguins = load("penguins")
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (name, frame) in zip(axes, [("adult (train)", train), ("penguins", penguins)]):
        miss = frame.isna().sum()
        miss = miss[miss > 0]
        ax.barh(list(miss.index), miss.to_numpy())
        ax.set(xlabel="missing cells", title=f"{name}: {len(frame)} rows")
    out.append(ctx.save_figure(fig, "missing_values"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    X = train[["occupation", "native-country"]].fillna("?")
    ours = fe.TargetEncoder().fit(X, y_tr)
    theirs = SkTE().fit(X, y_tr)
    for j, name in enumerate(X.columns):
        axes[0].plot(theirs.encodings_[j], ours.encodings_[j], "o", alpha=0.6, label=name)
        counts = X[name].value_counts().reindex(ours.categories_[j]).to_numpy()
        raw = (
            pd.Series(y_tr)
            .groupby(X[name].to_numpy())
            .mean()
            .reindex(ours.categories_[j])
            .to_numpy()
        )
        axes[1].scatter(counts, raw, s=12, alpha=0.4, marker="x", label=f"{name}: raw mean")
        axes[1].scatter(counts, ours.encodings_[j], s=12, alpha=0.8, label=f"{name}: smoothed")
    lim = [0, max(0.01, float(np.max(np.concatenate(ours.encodings_))) * 1.05)]
    axes[0].plot(lim, lim, "k:", lw=0.8)
    axes[0].set(
        xlabel="sklearn TargetEncoder", ylabel="ours", title="category encodings (fit on all rows)"
    )
    axes[0].legend(fontsize=8)
    axes[1].axhline(ours.target_mean_, color="grey", ls="--", lw=0.8, label="overall share >50K")
    axes[1].set(
        xscale="log",
        xlabel="rows in the category",
        ylabel="share >50K",
        title="smoothing pulls rare categories to the mean",
    )
    axes[1].legend(fontsize=7)
    out.append(ctx.save_figure(fig, "target_encoding"))

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    real = enc_rows
    axes[0].bar(
        [r["encoding"] for r in real],
        [r["cv_roc_auc"] for r in real],
        yerr=[r["roc_auc_std"] for r in real],
        capsize=5,
        color="tab:blue",
    )
    lo = min(r["cv_roc_auc"] for r in real)
    for i, r in enumerate(real):
        axes[0].text(i, lo - 0.04, f"{r['features']} cols", ha="center", color="white")
    axes[0].set(
        ylim=(lo - 0.05, 1.0),
        ylabel="CV ROC AUC (logistic regression)",
        title="encoding the categories",
    )
    labels = [f"{r['step']}\n{r['fitted']}" for r in leak_rows]
    colors = ["tab:red" if "all rows" in r["fitted"] else "tab:green" for r in leak_rows]
    axes[1].barh(
        labels,
        [r["cv_roc_auc"] for r in leak_rows],
        xerr=[r["roc_auc_std"] for r in leak_rows],
        color=colors,
        capsize=4,
    )
    axes[1].set(
        xlim=(min(r["cv_roc_auc"] for r in leak_rows) - 0.05, 1.0),
        xlabel="CV ROC AUC",
        title="leakage: red = fitted before CV, green = inside each fold",
    )
    axes[1].tick_params(axis="y", labelsize=7)
    out.append(ctx.save_figure(fig, "encodings_and_leakage"))
    return out


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    train, y_tr, test, y_te = _adult(config)
    imputation = _imputation_rows()
    pipes, pipe_rows = _pipelines(train, y_tr, test, y_te, config, ctx)
    enc_rows, te_diff = _encodings(train, y_tr, config, ctx)
    leak_rows = _leakage(train, y_tr, config, ctx)
    figures = _figures(train, y_tr, enc_rows, leak_rows, ctx)

    scaler_gap = leak_rows[0]["cv_roc_auc"] - leak_rows[1]["cv_roc_auc"]
    te_gap = leak_rows[2]["cv_roc_auc"] - leak_rows[3]["cv_roc_auc"]
    te_acc_gap = leak_rows[2]["cv_accuracy"] - leak_rows[3]["cv_accuracy"]
    ours_row, sk_row = pipe_rows
    by_enc = {r["encoding"]: r for r in enc_rows}
    best_enc = max(by_enc, key=lambda k: by_enc[k]["cv_roc_auc"])
    metrics = {
        "adult_train_rows": len(train),
        "adult_test_rows": len(test),
        "ours_adult_test_accuracy": ours_row["test_accuracy"],
        "sklearn_adult_test_accuracy": sk_row["test_accuracy"],
        "ours_adult_test_roc_auc": ours_row["test_roc_auc"],
        "sklearn_adult_test_roc_auc": sk_row["test_roc_auc"],
        "adult_features": ours_row["features"],
        "max_abs_diff_transformed_vs_sklearn": pipes["max_diff"],
        "feature_names_match_sklearn": bool(pipes["same_names"]),
        "target_encoder_max_abs_diff_vs_sklearn": te_diff,
        **{f"cv_roc_auc_{k}": v["cv_roc_auc"] for k, v in by_enc.items()},
        "best_encoding": best_enc,
        "leak_scaler_roc_auc_gap": scaler_gap,
        "leak_target_encoder_roc_auc_gap": te_gap,
        "leak_target_encoder_accuracy_gap": te_acc_gap,
        "cross_feature_categories": int(train[CROSS].nunique()),
        **_titanic(config),
    }
    notes = [
        f"Our ColumnTransformer output equals sklearn's to {pipes['max_diff']:.1e} "
        f"({ours_row['features']} columns, names {'identical' if pipes['same_names'] else 'DIFFERENT'}); "
        f"test accuracy {ours_row['test_accuracy']:.4f} (sklearn's transformers: {sk_row['test_accuracy']:.4f}).",
        "Encodings by CV ROC AUC: "
        + ", ".join(f"{k} {v['cv_roc_auc']:.4f} ({v['features']} cols)" for k, v in by_enc.items())
        + f"; best: {best_enc}.",
        f"Scaler fitted on all rows vs inside each fold: ROC AUC gap {scaler_gap:+.2e} "
        + (
            "(negligible: a scaler learns only means and spreads, no label)."
            if abs(scaler_gap) < 1e-3
            else "(measurable on this subset)."
        ),
        f"Target encoder of the '{CROSS}' cross ({metrics['cross_feature_categories']} categories) fitted on "
        f"all rows before CV: ROC AUC {leak_rows[2]['cv_roc_auc']:.4f} vs {leak_rows[3]['cv_roc_auc']:.4f} "
        f"inside each fold, a gap of {te_gap:+.4f} ({te_acc_gap:+.4f} accuracy) that "
        + (
            "is pure leakage: the rare categories' encodings carry their own labels."
            if te_gap > 0.005
            else "is small on this data."
        ),
        f"Titanic ({metrics['titanic_rows']} rows): CV accuracy {metrics['titanic_cv_accuracy']:.4f}, "
        f"ROC AUC {metrics['titanic_cv_roc_auc']:.4f} with our scaler + one-hot + logistic regression.",
    ]
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
        figures=figures,
        notes=notes,
    )
