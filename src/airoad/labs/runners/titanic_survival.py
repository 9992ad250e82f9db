"""Runner for titanic-survival: EDA, features, then logistic regression, random forest and
gradient boosting, ours and scikit-learn's, cross-validated on the same folds, and one honest
score on a held-out test split for the model the cross-validation picked."""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass

import numpy as np

from airoad.classic import titanic_survival as ref
from airoad.classic.model_evaluation import (
    binary_metrics,
    roc_auc_score,
    roc_curve,
    stratified_kfold_indices,
)
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes

FAMILIES = ("logistic regression", "random forest", "gradient boosting")


@dataclass(frozen=True)
class Config:
    n_splits: int = param(5, ge=2, le=20)
    test_fraction_folds: int = param(5, ge=2, le=20)  # hold out 1 of this many folds (5 -> 20%)
    C: float = param(1.0, gt=0.0, le=1e6)  # inverse L2 strength of the logistic regressions
    rf_trees: int = param(200, ge=1, le=5000)
    rf_min_samples_leaf: int = param(3, ge=1, le=500)
    gb_rounds: int = param(100, ge=1, le=5000)
    gb_learning_rate: float = param(0.1, gt=0.0, le=10.0)
    gb_max_depth: int = param(3, ge=1, le=32)
    seed: int = param(0, ge=0, le=2**32 - 1)


QUICK = {"n_splits": 3, "rf_trees": 10, "gb_rounds": 20}

NOTES = (
    "{train_rows} training rows ({n_splits}-fold CV, the same folds for every model) and "
    "{test_rows} held-out test rows; survival rate {survival_rate:.3f}, so always predicting "
    "'died' scores {majority_baseline_accuracy:.3f} on the test split.",
    "Chosen by CV accuracy: {chosen_model} ({chosen_cv_accuracy:.4f}); its honest test accuracy "
    "is {chosen_test_accuracy:.4f} (ROC AUC {chosen_test_roc_auc:.4f}). The test split was not "
    "used to choose.",
    "Best CV accuracy: ours {ours_best_cv_accuracy:.4f}, sklearn {sklearn_best_cv_accuracy:.4f}.",
)
FAMILY_NOTE = (
    "{family}: ours {ours:.4f} vs sklearn {sklearn:.4f} CV accuracy (difference {diff:+.4f}, "
    "fold std {std:.4f})."
)
MISSING_NOTE = "Not importable yet, so only sklearn's version ran: {ours_missing}."


def _ours(module: str, name: str):
    """Our class if its lab's module is importable (it may not be written yet), else None."""
    try:
        return getattr(importlib.import_module(f"airoad.classic.{module}"), name)
    except (ImportError, AttributeError):
        return None


def _factory(cls, **params):
    """A zero-argument factory for cls, passing only the hyper-parameters cls declares."""
    known = set(cls().get_params())
    kept = {k: v for k, v in params.items() if k in known}
    return lambda: cls(**kept)


def _factories(config: Config) -> tuple[dict, list[str]]:
    """'<family> (ours)' and '<family> (sklearn)' model factories, and the families we lack."""
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    params = {
        "logistic regression": dict(C=config.C, max_iter=1000),
        "random forest": dict(
            n_estimators=config.rf_trees,
            min_samples_leaf=config.rf_min_samples_leaf,
            random_state=config.seed,
            n_jobs=1,
        ),
        "gradient boosting": dict(
            n_estimators=config.gb_rounds,
            learning_rate=config.gb_learning_rate,
            max_depth=config.gb_max_depth,
            random_state=config.seed,
        ),
    }
    theirs = {
        "logistic regression": LogisticRegression,
        "random forest": RandomForestClassifier,
        "gradient boosting": GradientBoostingClassifier,
    }
    ours = {
        "logistic regression": _ours("logistic_regression", "LogisticRegression"),
        "random forest": _ours("ensembles", "RandomForestClassifier"),
        "gradient boosting": _ours("boosting", "GradientBoostingClassifier"),
    }
    factories, missing = {}, []
    for family in FAMILIES:
        if ours[family] is not None:
            factories[f"{family} (ours)"] = _factory(ours[family], **params[family])
        else:
            missing.append(family)
        factories[f"{family} (sklearn)"] = _factory(theirs[family], **params[family])
    return factories, missing


def _holdout(df, config: Config):
    """One stratified fold of the rows as the test split: train, test, y_train, y_test."""
    y_all = df["survived"].to_numpy()
    train_idx, test_idx = stratified_kfold_indices(
        y_all, config.test_fraction_folds, True, config.seed
    )[0]
    return df.iloc[train_idx], df.iloc[test_idx], y_all[train_idx], y_all[test_idx]


def _cross_validate(factories: dict, train, y, config: Config, ctx: RunContext):
    """Every model on the same folds: one summary row each and the out-of-fold probabilities."""
    rows, probas = [], {}
    for name, factory in ctx.track(list(factories.items()), "cross-validating models"):
        r, p = ref.compare_models({name: factory}, train, y, config.n_splits, config.seed)
        rows += r
        probas.update(p)
    return rows, probas


def _score_on_test(rows: list[dict], factories: dict, split, ctx: RunContext) -> None:
    """Refit each model on the whole training split and add its test accuracy and ROC AUC."""
    train, test, y, y_test = split
    for row in ctx.track(rows, "refit on the training split, score the test split"):
        model = ref.make_pipeline_factory(factories[row["model"]])().fit(train, y)
        test_scores = binary_metrics(y_test, model.predict_proba(test)[:, 1])
        row["test_accuracy"], row["test_roc_auc"] = test_scores["accuracy"], test_scores["roc_auc"]


def _model_metrics(rows: list[dict], y_test: np.ndarray) -> dict:
    """Per-model CV numbers, the best of ours and of sklearn's, and the chosen model's test score."""
    metrics = {}
    for r in rows:
        family, who = r["model"].rsplit(" (", 1)
        key = f"{who.rstrip(')')}_{family.replace(' ', '_')}"
        metrics[f"{key}_cv_accuracy"] = r["accuracy_mean"]
        metrics[f"{key}_cv_roc_auc"] = r["roc_auc_mean"]
        metrics[f"{key}_fit_seconds"] = r["fit_seconds_mean"]
    ours = [r for r in rows if r["model"].endswith("(ours)")]
    theirs = [r for r in rows if r["model"].endswith("(sklearn)")]
    chosen = max(rows, key=lambda r: r["accuracy_mean"])
    return metrics | {
        # Without any of our classes yet, "ours" is our pipeline around sklearn's models.
        "ours_best_cv_accuracy": max(r["accuracy_mean"] for r in (ours or theirs)),
        "sklearn_best_cv_accuracy": max(r["accuracy_mean"] for r in theirs),
        "chosen_model": chosen["model"],
        "chosen_cv_accuracy": chosen["accuracy_mean"],
        "chosen_test_accuracy": chosen["test_accuracy"],
        "chosen_test_roc_auc": chosen["test_roc_auc"],
        "majority_baseline_accuracy": float(max(y_test.mean(), 1 - y_test.mean())),
    }


def _models_table(rows: list[dict]) -> list[dict]:
    return [
        {
            "model": r["model"],
            "cv_accuracy": r["accuracy_mean"],
            "acc_std": r["accuracy_std"],
            "cv_roc_auc": r["roc_auc_mean"],
            "cv_f1": r["f1_mean"],
            "cv_log_loss": r["log_loss_mean"],
            "fit_s": r["fit_seconds_mean"],
            "test_accuracy": r["test_accuracy"],
        }
        for r in rows
    ]


def _family_notes(rows: list[dict], missing: list[str]) -> list[str]:
    """Ours beside sklearn's for each family we have, and which families we lack."""
    by_name = {r["model"]: r for r in rows}
    notes = []
    for family in FAMILIES:
        a, b = by_name.get(f"{family} (ours)"), by_name[f"{family} (sklearn)"]
        if a is not None:
            ours, sk = a["accuracy_mean"], b["accuracy_mean"]
            notes.append(
                FAMILY_NOTE.format(
                    family=family, ours=ours, sklearn=sk, diff=ours - sk, std=b["accuracy_std"]
                )
            )
    if missing:
        notes.append(MISSING_NOTE.format(ours_missing=", ".join(missing)))
    return notes


def _eda_figure(df, ctx: RunContext) -> None:
    with figure(ctx, "eda", 1, 3, figsize=(15, 4)) as (_, axes):
        rates = df.groupby(["class", "gender"])["survived"].mean().unstack()
        x = np.arange(len(rates))
        for j, gender in enumerate(rates.columns):
            axes[0].bar(x + (j - 0.5) * 0.4, rates[gender], width=0.4, label=gender)
        axes[0].axhline(df["survived"].mean(), color="k", ls=":", label="overall")
        axes[0].set_xticks(x, rates.index, rotation=30, fontsize=8)
        axes[0].set(ylabel="survival rate", title="by class and gender")
        axes[0].legend(fontsize=8)
        bins = np.arange(0, 80, 4)
        for value, label in [(0, "died"), (1, "survived")]:
            axes[1].hist(df.loc[df["survived"] == value, "age"], bins=bins, alpha=0.55, label=label)
        axes[1].axvline(14, color="k", ls=":", label="child < 14")
        axes[1].set(xlabel="age", ylabel="people", title="age by outcome")
        axes[1].legend(fontsize=8)
        fam = df.groupby(df["family_size"].clip(upper=7))["survived"].agg(["mean", "size"])
        se = np.sqrt(fam["mean"] * (1 - fam["mean"]) / fam["size"])
        axes[2].errorbar(fam.index, fam["mean"], yerr=1.96 * se, fmt="o-", capsize=4)
        axes[2].set(
            xlabel="family size aboard (7 = 7+)",
            ylabel="survival rate (95% CI)",
            title="by family size",
        )


def _comparison_figure(rows: list[dict], ctx: RunContext) -> None:
    names = [r["model"] for r in rows]
    colors = ["tab:blue" if "(ours)" in n else "tab:orange" for n in names]
    with figure(ctx, "model_comparison", 1, 2, figsize=(13, 4.5)) as (_, axes):
        for ax, metric in zip(axes, ("accuracy", "roc_auc")):
            means = [r[f"{metric}_mean"] for r in rows]
            stds = [r[f"{metric}_std"] for r in rows]
            ax.bar(range(len(rows)), means, yerr=stds, color=colors, capsize=5)
            ax.set_xticks(range(len(rows)), [n.replace(" (", "\n(") for n in names], fontsize=8)
            ax.set(
                ylim=(min(means) - 0.08, min(1.0, max(means) + 0.05)),
                ylabel=f"CV {metric} (mean +/- std over folds)",
                title=f"{metric}: blue = ours, orange = sklearn",
            )


def _roc_figure(probas: dict, y: np.ndarray, ctx: RunContext) -> None:
    with figure(ctx, "roc_curves", figsize=(6.5, 5.5)) as (_, ax):
        for name, proba in probas.items():
            fpr, tpr, _ = roc_curve(y, proba)
            style = "-" if "(ours)" in name else "--"
            ax.plot(fpr, tpr, ls=style, label=f"{name} {roc_auc_score(y, proba):.3f}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
        ax.set(
            xlabel="false positive rate",
            ylabel="true positive rate",
            title="out-of-fold ROC (training split)",
        )
        ax.legend(fontsize=7, loc="lower right")


def run(config: Config, ctx: RunContext) -> LabResult:
    df = ref.add_features(load("titanic"))
    train, test, y, y_test = split = _holdout(df, config)
    factories, missing = _factories(config)
    rows, probas = _cross_validate(factories, train, y, config, ctx)
    _score_on_test(rows, factories, split, ctx)

    _eda_figure(df, ctx)
    _comparison_figure(rows, ctx)
    _roc_figure(probas, y, ctx)

    metrics: dict = {
        "rows": len(df),
        "train_rows": len(train),
        "test_rows": len(test),
        "survival_rate": float(df["survived"].mean()),
        "n_splits": config.n_splits,
        **_model_metrics(rows, y_test),
        "ours_missing": ", ".join(missing) or "none",
    }
    notes = render_notes(NOTES, {**asdict(config), **metrics})
    return LabResult(
        metrics=metrics,
        key_metric="ours_best_cv_accuracy",
        library_metric="sklearn_best_cv_accuracy",
        tables={"models": _models_table(rows)},
        figures=ctx.figures,
        notes=notes + _family_notes(rows, missing),
    )
