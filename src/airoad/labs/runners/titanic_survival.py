"""Runner for titanic-survival: EDA, features, then logistic regression, random forest and
gradient boosting, ours and scikit-learn's, cross-validated on the same folds, and one honest
score on a held-out test split for the model the cross-validation picked."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

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

FAMILIES = ("logistic regression", "random forest", "gradient boosting")


@dataclass(frozen=True)
class Config:
    n_splits: int = 5
    test_fraction_folds: int = (
        5  # hold out 1 of this many stratified folds (5 -> 20%) as the test set
    )
    C: float = 1.0  # inverse L2 strength of the logistic regressions
    rf_trees: int = 200
    rf_min_samples_leaf: int = 3
    gb_rounds: int = 100
    gb_learning_rate: float = 0.1
    gb_max_depth: int = 3
    seed: int = 0


QUICK = {"n_splits": 3, "rf_trees": 10, "gb_rounds": 20}


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
        "gradient boosting": _ours("ensembles", "GradientBoostingClassifier"),
    }
    factories, missing = {}, []
    for family in FAMILIES:
        if ours[family] is not None:
            factories[f"{family} (ours)"] = _factory(ours[family], **params[family])
        else:
            missing.append(family)
        factories[f"{family} (sklearn)"] = _factory(theirs[family], **params[family])
    return factories, missing


def _eda(df, ctx: RunContext):
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
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
    return ctx.save_figure(fig, "eda")


def _comparison_figures(rows, probas, y, ctx: RunContext) -> list:
    import matplotlib.pyplot as plt

    out = []
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    names = [r["model"] for r in rows]
    colors = ["tab:blue" if "(ours)" in n else "tab:orange" for n in names]
    for ax, metric in zip(axes, ("accuracy", "roc_auc")):
        means = [r[f"{metric}_mean"] for r in rows]
        ax.bar(
            range(len(rows)),
            means,
            yerr=[r[f"{metric}_std"] for r in rows],
            color=colors,
            capsize=5,
        )
        ax.set_xticks(range(len(rows)), [n.replace(" (", "\n(") for n in names], fontsize=8)
        ax.set(
            ylim=(min(means) - 0.08, min(1.0, max(means) + 0.05)),
            ylabel=f"CV {metric} (mean +/- std over folds)",
            title=f"{metric}: blue = ours, orange = sklearn",
        )
    out.append(ctx.save_figure(fig, "model_comparison"))

    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    for name, proba in probas.items():
        fpr, tpr, _ = roc_curve(y, proba)
        ax.plot(
            fpr,
            tpr,
            ls="-" if "(ours)" in name else "--",
            label=f"{name} {roc_auc_score(y, proba):.3f}",
        )
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8)
    ax.set(
        xlabel="false positive rate",
        ylabel="true positive rate",
        title="out-of-fold ROC (training split)",
    )
    ax.legend(fontsize=7, loc="lower right")
    out.append(ctx.save_figure(fig, "roc_curves"))
    return out


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    df = ref.add_features(load("titanic"))
    y_all = df["survived"].to_numpy()
    figures = [_eda(df, ctx)]

    train_idx, test_idx = stratified_kfold_indices(
        y_all, config.test_fraction_folds, True, config.seed
    )[0]
    train, test = df.iloc[train_idx], df.iloc[test_idx]
    y, y_test = y_all[train_idx], y_all[test_idx]

    factories, missing = _factories(config)
    rows, probas = [], {}
    for name, factory in ctx.track(list(factories.items()), "cross-validating models"):
        r, p = ref.compare_models({name: factory}, train, y, config.n_splits, config.seed)
        rows += r
        probas.update(p)
    chosen = max(rows, key=lambda r: r["accuracy_mean"])["model"]
    for row in ctx.track(rows, "refit on the training split, score the test split"):
        model = ref.make_pipeline_factory(factories[row["model"]])().fit(train, y)
        test_scores = binary_metrics(y_test, model.predict_proba(test)[:, 1])
        row["test_accuracy"], row["test_roc_auc"] = test_scores["accuracy"], test_scores["roc_auc"]
    figures += _comparison_figures(rows, probas, y, ctx)

    by_name = {r["model"]: r for r in rows}
    metrics: dict = {
        "rows": len(df),
        "train_rows": len(train),
        "test_rows": len(test),
        "survival_rate": float(y_all.mean()),
        "n_splits": config.n_splits,
    }
    for name, r in by_name.items():
        family, who = name.rsplit(" (", 1)
        key = f"{who.rstrip(')')}_{family.replace(' ', '_')}"
        metrics[f"{key}_cv_accuracy"] = r["accuracy_mean"]
        metrics[f"{key}_cv_roc_auc"] = r["roc_auc_mean"]
        metrics[f"{key}_fit_seconds"] = r["fit_seconds_mean"]
    ours = [r for r in rows if r["model"].endswith("(ours)")]
    theirs = [r for r in rows if r["model"].endswith("(sklearn)")]
    # Without any of our classes yet, "ours" is our pipeline around sklearn's models.
    metrics["ours_best_cv_accuracy"] = max(r["accuracy_mean"] for r in (ours or theirs))
    metrics["sklearn_best_cv_accuracy"] = max(r["accuracy_mean"] for r in theirs)
    metrics["chosen_model"] = chosen
    metrics["chosen_cv_accuracy"] = by_name[chosen]["accuracy_mean"]
    metrics["chosen_test_accuracy"] = by_name[chosen]["test_accuracy"]
    metrics["chosen_test_roc_auc"] = by_name[chosen]["test_roc_auc"]
    metrics["majority_baseline_accuracy"] = float(max(y_test.mean(), 1 - y_test.mean()))

    table = [
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
    notes = [
        f"{len(train)} training rows ({config.n_splits}-fold CV, the same folds for every model) and "
        f"{len(test)} held-out test rows; survival rate {y_all.mean():.3f}, so always predicting "
        f"'died' scores {metrics['majority_baseline_accuracy']:.3f} on the test split.",
        f"Chosen by CV accuracy: {chosen} ({metrics['chosen_cv_accuracy']:.4f}); its honest test "
        f"accuracy is {metrics['chosen_test_accuracy']:.4f} (ROC AUC {metrics['chosen_test_roc_auc']:.4f}). "
        "The test split was not used to choose.",
        f"Best CV accuracy: ours {metrics['ours_best_cv_accuracy']:.4f}, "
        f"sklearn {metrics['sklearn_best_cv_accuracy']:.4f}.",
    ]
    for family in FAMILIES:
        a, b = by_name.get(f"{family} (ours)"), by_name[f"{family} (sklearn)"]
        if a is not None:
            notes.append(
                f"{family}: ours {a['accuracy_mean']:.4f} vs sklearn {b['accuracy_mean']:.4f} CV accuracy "
                f"(difference {a['accuracy_mean'] - b['accuracy_mean']:+.4f}, fold std {b['accuracy_std']:.4f})."
            )
    if missing:
        notes.append(
            "Not importable yet, so only sklearn's version ran: " + ", ".join(missing) + "."
        )
    metrics["ours_missing"] = ", ".join(missing) or "none"
    return LabResult(
        metrics=metrics,
        key_metric="ours_best_cv_accuracy",
        library_metric="sklearn_best_cv_accuracy",
        tables={"models": table},
        figures=figures,
        notes=notes,
    )
