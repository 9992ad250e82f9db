"""Runner for model-evaluation: our K-fold pipeline and metrics next to scikit-learn's.

Three scikit-learn classifiers (logistic regression, random forest, gradient boosting) are
cross-validated on breast-cancer (malignant = positive) and Adult (income >50K = positive)
with OUR stratified folds and out-of-fold predictions; every fold is then scored twice, by our
metric functions and by sklearn.metrics, on the same predictions. The folds themselves are
compared index for index with StratifiedKFold."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.classic import model_evaluation as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
DATASETS = ("breast-cancer", "adult")
ADULT_NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
ADULT_CATEGORICAL = [
    "workclass",
    "marital-status",
    "occupation",
    "relationship",
    "race",
    "sex",
    "native-country",
]
MIN_ADULT_ROWS = 100  # fewer rows leave too few high earners for the folds


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = param(DATASETS, choices=DATASETS)
    n_splits: int = param(5, ge=2, le=20)
    # 0 = all 32561 training rows; otherwise a seeded stratified subset of about this many rows
    adult_rows: int = param(0, ge=MIN_ADULT_ROWS, le=32561, also=(0,))  # 0 = all rows
    n_estimators: int = param(100, ge=1, le=5000)  # trees in the forest, rounds of boosting
    seed: int = param(0, ge=0, le=2**32 - 1)


QUICK = {"adult_rows": 1000, "n_estimators": 10, "n_splits": 3}

NOTES = (
    "Our stratified folds {folds_verdict} StratifiedKFold(shuffle=True, random_state={seed}) "
    "index for index.",
    "Largest gap between our metrics and sklearn.metrics on the same predictions: "
    "{max_abs_metric_diff_vs_sklearn:.2e}.",
)
DATASET_NOTE = (
    "{dataset} ({rows} rows, {positive_rate:.1%} {positive}): best mean ROC AUC is {best} with "
    "{best_roc_auc:.4f}."
)


def _key(ds: str, model: str) -> str:
    """The metric-name stem of one dataset and model, e.g. ``breast_cancer_random_forest``."""
    return f"{ds}_{model.replace(' ', '_')}".replace("-", "_")


def _data(name: str, config: Config):
    """(X, y 0/1, preprocessing step factory, (negative, positive) class names) for one dataset."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if name == "breast-cancer":
        frame = load("breast-cancer")
        X = frame.drop(columns="target").to_numpy()
        return X, 1 - frame["target"].to_numpy(), StandardScaler, ("benign", "malignant")
    frame = load("adult")[0]
    y = (frame["income"] == ">50K").to_numpy().astype(int)
    if 0 < config.adult_rows < len(frame):  # the test part of the first of many stratified folds
        _, keep = ref.stratified_kfold_indices(
            y, len(frame) // config.adult_rows, True, config.seed
        )[0]
        frame, y = frame.iloc[keep].reset_index(drop=True), y[keep]

    def prep():
        cats = make_pipeline(
            SimpleImputer(strategy="most_frequent"),
            OneHotEncoder(handle_unknown="ignore", min_frequency=20),
        )
        return ColumnTransformer(
            [("num", StandardScaler(), ADULT_NUMERIC), ("cat", cats, ADULT_CATEGORICAL)]
        )

    return frame, y, prep, ("<=50K", ">50K")


def _models(config: Config, prep) -> dict:
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    return {
        "logistic regression": lambda: make_pipeline(prep(), LogisticRegression(max_iter=2000)),
        "random forest": lambda: make_pipeline(
            prep(),
            RandomForestClassifier(
                config.n_estimators, min_samples_leaf=2, random_state=config.seed, n_jobs=1
            ),
        ),
        "gradient boosting": lambda: make_pipeline(
            prep(),
            GradientBoostingClassifier(n_estimators=config.n_estimators, random_state=config.seed),
        ),
    }


def _same_folds_as_sklearn(folds, y: np.ndarray, config: Config) -> bool:
    from sklearn.model_selection import StratifiedKFold

    sk_folds = StratifiedKFold(config.n_splits, shuffle=True, random_state=config.seed)
    pairs = zip(folds, sk_folds.split(np.zeros(len(y)), y))
    return all(np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in pairs)


def _sklearn_summary(y: np.ndarray, proba: np.ndarray, folds) -> dict[str, float]:
    """The same per-fold summary as ours, every metric computed by sklearn.metrics."""
    from sklearn import metrics

    per_fold = []
    for _, test in folds:
        yt, p = y[test], proba[test]
        pred = (p > 0.5).astype(int)
        per_fold.append(
            {
                "accuracy": metrics.accuracy_score(yt, pred),
                "precision": metrics.precision_score(yt, pred, zero_division=0),
                "recall": metrics.recall_score(yt, pred),
                "f1": metrics.f1_score(yt, pred),
                "roc_auc": metrics.roc_auc_score(yt, p),
                "log_loss": metrics.log_loss(yt, p),
            }
        )
    out = {}
    for name in METRICS:
        values = np.array([fold[name] for fold in per_fold])
        out[f"{name}_mean"], out[f"{name}_std"] = float(values.mean()), float(values.std())
    return out


def _vs_sklearn(ds: str, model: str, ours: dict, theirs: dict) -> tuple[list[dict], float]:
    """One row per metric (ours beside sklearn.metrics) and the largest mean or std gap."""
    rows, worst = [], 0.0
    for m in METRICS:
        diff = abs(ours[f"{m}_mean"] - theirs[f"{m}_mean"])
        worst = max(worst, diff, abs(ours[f"{m}_std"] - theirs[f"{m}_std"]))
        rows.append(
            {
                "dataset": ds,
                "model": model,
                "metric": m,
                "ours_mean": ours[f"{m}_mean"],
                "sklearn_mean": theirs[f"{m}_mean"],
                "ours_std": ours[f"{m}_std"],
                "abs_diff": diff,
            }
        )
    return rows, worst


def _evaluate(ds: str, config: Config, ctx: RunContext) -> dict:
    """Cross-validate the three models on one dataset with our folds; score ours vs sklearn's."""
    X, y, prep, labels = _data(ds, config)
    folds = ref.stratified_kfold_indices(y, config.n_splits, shuffle=True, random_state=config.seed)
    out = {"y": y, "folds": folds, "labels": labels, "proba": {}, "summary": [], "vs_sklearn": []}
    out["same_folds"], out["worst"], metrics = _same_folds_as_sklearn(folds, y, config), 0.0, {}
    for model, factory in ctx.track(list(_models(config, prep).items()), f"{ds}: cross-validating"):
        proba, seconds = ref.cross_val_proba(factory, X, y, folds)
        ours = ref.summarize_folds(y, proba, folds, seconds)
        theirs = _sklearn_summary(y, proba, folds)
        out["proba"][model] = proba
        out["summary"].append(
            {
                "dataset": ds,
                "model": model,
                **{m: f"{ours[f'{m}_mean']:.4f} +/- {ours[f'{m}_std']:.4f}" for m in METRICS},
                "fit_s": round(ours["fit_seconds_mean"], 3),
            }
        )
        rows, worst = _vs_sklearn(ds, model, ours, theirs)
        out["vs_sklearn"] += rows
        out["worst"] = max(out["worst"], worst)
        key = _key(ds, model)
        metrics[f"ours_{key}_roc_auc"] = ours["roc_auc_mean"]
        metrics[f"sklearn_{key}_roc_auc"] = theirs["roc_auc_mean"]
        metrics[f"ours_{key}_accuracy"] = ours["accuracy_mean"]
        metrics[f"{key}_fit_seconds"] = ours["fit_seconds_mean"]
    out["best"] = max(out["proba"], key=lambda m: metrics[f"ours_{_key(ds, m)}_roc_auc"])
    stem = ds.replace("-", "_")
    out["metrics"] = metrics | {f"{stem}_rows": len(y), f"{stem}_best_model": out["best"]}
    return out


def _dataset_notes(results: dict, metrics: dict) -> list[str]:
    return [
        DATASET_NOTE.format(
            dataset=ds,
            rows=len(res["y"]),
            positive_rate=res["y"].mean(),
            positive=res["labels"][1],
            best=res["best"],
            best_roc_auc=metrics[f"ours_{_key(ds, res['best'])}_roc_auc"],
        )
        for ds, res in results.items()
    ]


def _roc_panel(ax, ds: str, res: dict) -> None:
    """Pooled out-of-fold ROC curve of every model, sklearn's dotted on top."""
    from sklearn import metrics

    y = res["y"]
    for model, proba in res["proba"].items():
        fpr, tpr, _ = ref.roc_curve(y, proba)
        sk_fpr, sk_tpr, _ = metrics.roc_curve(y, proba)
        auc = ref.roc_auc_score(y, proba)
        ax.plot(fpr, tpr, lw=2, alpha=0.7, label=f"{model} (AUC {auc:.3f})")
        ax.plot(sk_fpr, sk_tpr, "k:", lw=0.8)
    ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate")
    ax.set_title(f"{ds}: out-of-fold ROC (dotted = sklearn)")
    ax.legend(fontsize=8, loc="lower right")


def _pr_panel(ax, ds: str, res: dict) -> None:
    """Pooled out-of-fold precision-recall curve of every model, against the base rate."""
    from sklearn import metrics

    y = res["y"]
    for model, proba in res["proba"].items():
        prec, rec, _ = ref.precision_recall_curve(y, proba)
        sk_prec, sk_rec, _ = metrics.precision_recall_curve(y, proba)
        ap = ref.average_precision_score(y, proba)
        ax.step(rec, prec, where="post", lw=2, alpha=0.7, label=f"{model} (AP {ap:.3f})")
        ax.step(sk_rec, sk_prec, "k:", where="post", lw=0.8)
    ax.axhline(y.mean(), color="grey", ls="--", lw=0.8, label=f"base rate {y.mean():.2f}")
    ax.set(xlabel="recall", ylabel="precision")
    ax.set_title(f"{ds}: out-of-fold PR (dotted = sklearn)")
    ax.legend(fontsize=8, loc="lower left")


def _confusion_panel(ax, ds: str, res: dict) -> None:
    """The best model's confusion matrix at threshold 0.5."""
    best = res["best"]
    cm = ref.confusion_matrix(res["y"], (res["proba"][best] > 0.5).astype(int))
    ax.imshow(cm, cmap="Blues")
    for (i, j), count in np.ndenumerate(cm):
        colour = "white" if count > cm.max() / 2 else "black"
        ax.text(j, i, str(count), ha="center", va="center", color=colour)
    neg, pos = res["labels"]
    ax.set_xticks([0, 1], [neg, pos])
    ax.set_yticks([0, 1], [neg, pos])
    ax.set(xlabel="predicted", ylabel="true", title=f"{ds}: {best}, threshold 0.5")


def _fold_scores_panel(ax, ds: str, res: dict) -> None:
    """Every model's ROC AUC on each test fold, with mean +/- std."""
    y, folds = res["y"], res["folds"]
    for m, proba in enumerate(res["proba"].values()):
        aucs = [ref.roc_auc_score(y[te], proba[te]) for _, te in folds]
        ax.plot(np.full(len(aucs), m), aucs, "o", alpha=0.6)
        ax.errorbar(m + 0.15, np.mean(aucs), yerr=np.std(aucs), fmt="ks", capsize=4)
    ax.set_xticks(range(len(res["proba"])), list(res["proba"]), fontsize=8)
    ax.set(ylabel="ROC AUC per test fold", title=f"{ds}: fold-to-fold spread (mean +/- std)")


def _per_dataset_figure(ctx, name: str, results: dict, panel, size=(5.5, 4.5)) -> None:
    """One figure with a panel per dataset, saved as `<name>.png`."""
    n = len(results)
    with figure(ctx, name, 1, n, figsize=(size[0] * n, size[1]), squeeze=False) as (_, axes):
        for ax, (ds, res) in zip(axes[0], results.items()):
            panel(ax, ds, res)


def run(config: Config, ctx: RunContext) -> LabResult:
    results = {ds: _evaluate(ds, config, ctx) for ds in config.datasets}

    _per_dataset_figure(ctx, "roc_curves", results, _roc_panel)
    _per_dataset_figure(ctx, "pr_curves", results, _pr_panel)
    _per_dataset_figure(ctx, "confusion_matrices", results, _confusion_panel, size=(4.5, 4))
    _per_dataset_figure(ctx, "fold_scores", results, _fold_scores_panel, size=(5.5, 4))

    same = all(res["same_folds"] for res in results.values())
    metrics: dict = {"n_splits": config.n_splits, "folds_identical_to_sklearn": same}
    for res in results.values():
        metrics |= res["metrics"]
    first = _key(config.datasets[0], "logistic regression")
    metrics["ours_roc_auc"] = metrics[f"ours_{first}_roc_auc"]
    metrics["sklearn_roc_auc"] = metrics[f"sklearn_{first}_roc_auc"]
    metrics["max_abs_metric_diff_vs_sklearn"] = max(res["worst"] for res in results.values())
    verdict = {"folds_verdict": "equal" if same else "DIFFER from"}
    notes = render_notes(NOTES, {**asdict(config), **metrics, **verdict})
    return LabResult(
        metrics=metrics,
        key_metric="ours_roc_auc",
        library_metric="sklearn_roc_auc",
        tables={
            "summary": [row for res in results.values() for row in res["summary"]],
            "metrics_vs_sklearn": [row for res in results.values() for row in res["vs_sklearn"]],
        },
        figures=ctx.figures,
        notes=notes + _dataset_notes(results, metrics),
    )
