"""Runner for model-evaluation: our K-fold pipeline and metrics next to scikit-learn's.

Three scikit-learn classifiers (logistic regression, random forest, gradient boosting) are
cross-validated on breast-cancer (malignant = positive) and Adult (income >50K = positive)
with OUR stratified folds and out-of-fold predictions; every fold is then scored twice, by our
metric functions and by sklearn.metrics, on the same predictions. The folds themselves are
compared index for index with StratifiedKFold."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airoad.classic import model_evaluation as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext

METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")
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


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = ("breast-cancer", "adult")
    n_splits: int = 5
    adult_rows: int = 0  # 0 = all 32561 training rows; otherwise a seeded stratified subset
    n_estimators: int = 100  # trees in the random forest and boosting rounds
    seed: int = 0


QUICK = {"adult_rows": 1000, "n_estimators": 10, "n_splits": 3}


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
    if name == "adult":
        frame = load("adult")[0]
        y = (frame["income"] == ">50K").to_numpy().astype(int)
        if 0 < config.adult_rows < len(frame):
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
    raise ValueError(f"model-evaluation knows breast-cancer and adult, not {name!r}")


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


def _figures(results: dict, ctx: RunContext) -> list:
    import matplotlib.pyplot as plt
    from sklearn import metrics

    names = list(results)
    out = []
    for kind in ("roc", "pr"):
        fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.5), squeeze=False)
        for ax, ds in zip(axes[0], names):
            y = results[ds]["y"]
            for model, proba in results[ds]["proba"].items():
                if kind == "roc":
                    fpr, tpr, _ = ref.roc_curve(y, proba)
                    sk_fpr, sk_tpr, _ = metrics.roc_curve(y, proba)
                    (line,) = ax.plot(
                        fpr,
                        tpr,
                        lw=2,
                        alpha=0.7,
                        label=f"{model} (AUC {ref.roc_auc_score(y, proba):.3f})",
                    )
                    ax.plot(sk_fpr, sk_tpr, "k:", lw=0.8)
                else:
                    prec, rec, _ = ref.precision_recall_curve(y, proba)
                    sk_prec, sk_rec, _ = metrics.precision_recall_curve(y, proba)
                    ax.step(
                        rec,
                        prec,
                        where="post",
                        lw=2,
                        alpha=0.7,
                        label=f"{model} (AP {ref.average_precision_score(y, proba):.3f})",
                    )
                    ax.step(sk_rec, sk_prec, "k:", where="post", lw=0.8)
            if kind == "roc":
                ax.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8, label="chance")
                ax.set(xlabel="false positive rate", ylabel="true positive rate")
            else:
                ax.axhline(
                    y.mean(), color="grey", ls="--", lw=0.8, label=f"base rate {y.mean():.2f}"
                )
                ax.set(xlabel="recall", ylabel="precision")
            ax.set_title(f"{ds}: out-of-fold {kind.upper()} (dotted = sklearn)")
            ax.legend(fontsize=8, loc="lower right" if kind == "roc" else "lower left")
        out.append(ctx.save_figure(fig, f"{kind}_curves"))

    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 4), squeeze=False)
    for ax, ds in zip(axes[0], names):
        best = results[ds]["best"]
        cm = ref.confusion_matrix(results[ds]["y"], (results[ds]["proba"][best] > 0.5).astype(int))
        ax.imshow(cm, cmap="Blues")
        for (i, j), count in np.ndenumerate(cm):
            ax.text(
                j,
                i,
                str(count),
                ha="center",
                va="center",
                color="white" if count > cm.max() / 2 else "black",
            )
        neg, pos = results[ds]["labels"]
        ax.set_xticks([0, 1], [neg, pos])
        ax.set_yticks([0, 1], [neg, pos])
        ax.set(xlabel="predicted", ylabel="true", title=f"{ds}: {best}, threshold 0.5")
    out.append(ctx.save_figure(fig, "confusion_matrices"))

    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    for ax, ds in zip(axes[0], names):
        y, folds = results[ds]["y"], results[ds]["folds"]
        for m, (model, proba) in enumerate(results[ds]["proba"].items()):  # noqa: B007 (used after the loop)
            aucs = [ref.roc_auc_score(y[te], proba[te]) for _, te in folds]
            ax.plot(np.full(len(aucs), m), aucs, "o", alpha=0.6)
            ax.errorbar(m + 0.15, np.mean(aucs), yerr=np.std(aucs), fmt="ks", capsize=4)
        ax.set_xticks(range(len(results[ds]["proba"])), list(results[ds]["proba"]), fontsize=8)
        ax.set(ylabel="ROC AUC per test fold", title=f"{ds}: fold-to-fold spread (mean +/- std)")
    out.append(ctx.save_figure(fig, "fold_scores"))
    return out


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib
    from sklearn.model_selection import StratifiedKFold

    matplotlib.use("Agg")
    results, summary_rows, metric_rows = {}, [], []
    metrics_out: dict = {"n_splits": config.n_splits, "folds_identical_to_sklearn": True}
    worst = 0.0
    for ds in config.datasets:
        X, y, prep, labels = _data(ds, config)
        folds = ref.stratified_kfold_indices(
            y, config.n_splits, shuffle=True, random_state=config.seed
        )
        sk_folds = StratifiedKFold(config.n_splits, shuffle=True, random_state=config.seed).split(
            np.zeros(len(y)), y
        )
        same = all(
            np.array_equal(a, c) and np.array_equal(b, d) for (a, b), (c, d) in zip(folds, sk_folds)
        )
        metrics_out["folds_identical_to_sklearn"] &= bool(same)
        probas = {}
        for model, factory in ctx.track(
            list(_models(config, prep).items()), f"{ds}: cross-validating"
        ):
            proba, seconds = ref.cross_val_proba(factory, X, y, folds)
            ours = ref.summarize_folds(y, proba, folds, seconds)
            theirs = _sklearn_summary(y, proba, folds)
            probas[model] = proba
            summary_rows.append(
                {
                    "dataset": ds,
                    "model": model,
                    **{m: f"{ours[f'{m}_mean']:.4f} +/- {ours[f'{m}_std']:.4f}" for m in METRICS},
                    "fit_s": round(ours["fit_seconds_mean"], 3),
                }
            )
            for m in METRICS:
                diff = abs(ours[f"{m}_mean"] - theirs[f"{m}_mean"])
                worst = max(worst, diff, abs(ours[f"{m}_std"] - theirs[f"{m}_std"]))
                metric_rows.append(
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
            key = f"{ds}_{model.replace(' ', '_')}".replace("-", "_")
            metrics_out[f"ours_{key}_roc_auc"] = ours["roc_auc_mean"]
            metrics_out[f"sklearn_{key}_roc_auc"] = theirs["roc_auc_mean"]
            metrics_out[f"ours_{key}_accuracy"] = ours["accuracy_mean"]
            metrics_out[f"{key}_fit_seconds"] = ours["fit_seconds_mean"]
        best = max(
            probas,
            key=lambda k: metrics_out[f"ours_{ds}_{k.replace(' ', '_')}_roc_auc".replace("-", "_")],
        )
        results[ds] = {"y": y, "proba": probas, "folds": folds, "best": best, "labels": labels}
        metrics_out[f"{ds.replace('-', '_')}_rows"] = len(y)
        metrics_out[f"{ds.replace('-', '_')}_best_model"] = best

    first = f"{config.datasets[0]}_logistic_regression".replace("-", "_")
    metrics_out["ours_roc_auc"] = metrics_out[f"ours_{first}_roc_auc"]
    metrics_out["sklearn_roc_auc"] = metrics_out[f"sklearn_{first}_roc_auc"]
    metrics_out["max_abs_metric_diff_vs_sklearn"] = worst
    figures = _figures(results, ctx)
    notes = [
        f"Our stratified folds {'equal' if metrics_out['folds_identical_to_sklearn'] else 'DIFFER from'} "
        f"StratifiedKFold(shuffle=True, random_state={config.seed}) index for index.",
        f"Largest gap between our metrics and sklearn.metrics on the same predictions: {worst:.2e}.",
    ]
    for ds, res in results.items():
        k = f"ours_{ds}_{res['best'].replace(' ', '_')}_roc_auc".replace("-", "_")
        notes.append(
            f"{ds} ({len(res['y'])} rows, {res['y'].mean():.1%} {res['labels'][1]}): best mean "
            f"ROC AUC is {res['best']} with {metrics_out[k]:.4f}."
        )
    return LabResult(
        metrics=metrics_out,
        key_metric="ours_roc_auc",
        library_metric="sklearn_roc_auc",
        tables={"summary": summary_rows, "metrics_vs_sklearn": metric_rows},
        figures=figures,
        notes=notes,
    )
