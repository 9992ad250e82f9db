"""Runner for ensembles: our random forest, gradient boosting and AdaBoost beside scikit-learn's,
XGBoost's and LightGBM's on Titanic and Adult (same encoded data, one thread each).

Titanic (2207 passengers and crew) is split 75/25, stratified; Adult uses its own train/test
files. Both are one-hot encoded by `encode_tabular` (missing categories become "missing")."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from airoad.classic import boosting as boost
from airoad.classic import ensembles as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes, split, timed

DATASETS = ("titanic", "adult")
ADULT_TRAIN_ROWS = 32561


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = param(DATASETS, choices=DATASETS)
    n_estimators: int = param(100, ge=1, le=5000)  # trees in every forest and boosting model
    learning_rate: float = param(0.1, gt=0.0, le=1.0)  # gradient boosting shrinkage
    gb_max_depth: int = param(3, ge=1, le=32)
    adult_rows: int = param(0, ge=0, le=ADULT_TRAIN_ROWS)  # Adult training rows (0 = all)
    test_size: float = param(0.25, ge=0.05, le=0.5)  # Titanic's held-out share
    libraries: bool = True  # also run XGBoost and LightGBM
    seed: int = param(0, ge=0)


QUICK = {"n_estimators": 12, "adult_rows": 3000}

ROW_NOTE = (
    "{dataset} {model}: ours {ours_acc:.4f} vs sklearn {sklearn_acc:.4f} ({diff_points:+.2f} "
    "points), {time_ratio:.1f}x sklearn's time"
)
NOTES = (
    "Best on {key_dataset}: {best_implementation} {best_model} at {best_acc:.4f}.",
    "{pairs_within_one_point} of {pairs_compared} ours-vs-sklearn pairs are within 1 point "
    "(largest gap {max_abs_diff_points:.2f} points; see diff_points).",
)


def encode_tabular(train: pd.DataFrame, test: pd.DataFrame, target: str, positive) -> tuple:
    """One-hot encode the text columns of train and test alike (missing -> "missing").

    Returns X_train, X_test (float arrays), y_train, y_test (1 where target == positive) and
    the feature names. Categories come from both frames so the columns line up.
    """
    features = [c for c in train.columns if c != target]
    both = pd.concat([train[features], test[features]], keys=["train", "test"])
    text = [c for c in features if not pd.api.types.is_numeric_dtype(both[c])]
    both[text] = both[text].fillna("missing")
    X = pd.get_dummies(both, columns=text, dtype=float)
    return (
        X.loc["train"].to_numpy(np.float64),
        X.loc["test"].to_numpy(np.float64),
        (train[target] == positive).to_numpy(int),
        (test[target] == positive).to_numpy(int),
        list(X.columns),
    )


def load_encoded(name: str, config: Config) -> tuple:
    """(X_train, X_test, y_train, y_test, feature names) for "titanic" or "adult"."""
    if name == "titanic":
        df = load("titanic")
        train, test, _, _ = split(df, df["survived"], config.test_size, config.seed)
        return encode_tabular(train, test, "survived", 1)
    if name == "adult":
        train, test = load("adult")
        if config.adult_rows:
            train = train.sample(n=min(config.adult_rows, len(train)), random_state=config.seed)
        return encode_tabular(train, test, "income", ">50K")
    raise ValueError(f"unknown dataset {name!r}; choose titanic or adult")


def models(config: Config) -> list[tuple[str, str, object]]:
    """(family, implementation, unfitted model) for every model compared, one thread each."""
    from sklearn import ensemble as ske

    n, lr, depth, seed = config.n_estimators, config.learning_rate, config.gb_max_depth, config.seed
    boosting = {"n_estimators": n, "learning_rate": lr}
    out = [
        ("random forest", "ours", ref.RandomForestClassifier(n_estimators=n, random_state=seed)),
        (
            "random forest",
            "sklearn",
            ske.RandomForestClassifier(n_estimators=n, random_state=seed, n_jobs=1),
        ),
        (
            "gradient boosting",
            "ours",
            boost.GradientBoostingClassifier(**boosting, max_depth=depth),
        ),
        (
            "gradient boosting",
            "sklearn",
            ske.GradientBoostingClassifier(**boosting, max_depth=depth, random_state=seed),
        ),
        ("adaboost", "ours", boost.AdaBoostClassifier(n_estimators=n)),
        ("adaboost", "sklearn", ske.AdaBoostClassifier(n_estimators=n, random_state=seed)),
    ]
    if config.libraries:
        import lightgbm
        import xgboost

        out += [
            (
                "gradient boosting",
                "xgboost",
                xgboost.XGBClassifier(**boosting, n_jobs=1, tree_method="hist", random_state=seed),
            ),
            (
                "gradient boosting",
                "lightgbm",
                lightgbm.LGBMClassifier(**boosting, n_jobs=1, verbose=-1, random_state=seed),
            ),
        ]
    return out


def _staged_accuracy(model, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Test accuracy after each tree: boosting stages, or the first m trees of a forest."""
    if hasattr(model, "staged_predict"):
        return np.array([np.mean(pred == y) for pred in model.staged_predict(X)])
    proba = np.cumsum([t.predict_proba(X) for t in model.estimators_], axis=0)  # forests
    return np.mean(proba.argmax(axis=2) == y, axis=1)


def _compare(name: str, config: Config, ctx: RunContext) -> tuple[list[dict], dict, tuple]:
    """Fit and time every model on one dataset: rows, staged-accuracy curves (ours and sklearn's)
    and the two forests' feature importances."""
    Xtr, Xte, ytr, yte, names = load_encoded(name, config)
    rows, curves, importances = [], {}, {}
    for family, impl, model in ctx.track(models(config), f"{name}: fitting"):
        pred, seconds = timed(lambda m=model: m.fit(Xtr, ytr).predict(Xte))
        rows.append(
            {
                "dataset": name,
                "model": family,
                "implementation": impl,
                "accuracy": float(np.mean(pred == yte)),
                "seconds": seconds,
                "train_rows": len(ytr),
                "features": Xtr.shape[1],
            }
        )
        if impl in ("ours", "sklearn"):
            curves.setdefault(family, {})[impl] = _staged_accuracy(model, Xte, yte)
        if family == "random forest":
            importances[impl] = model.feature_importances_
    return rows, curves, (names, importances["ours"], importances["sklearn"])


def _side_by_side(rows: list[dict]) -> list[dict]:
    """One row per (dataset, family): ours against sklearn's accuracy and time."""
    acc = {(r["dataset"], r["model"], r["implementation"]): r["accuracy"] for r in rows}
    secs = {(r["dataset"], r["model"], r["implementation"]): r["seconds"] for r in rows}
    return [
        {
            "dataset": name,
            "model": family,
            "ours_acc": value,
            "sklearn_acc": acc[(name, family, "sklearn")],
            "diff_points": 100 * (value - acc[(name, family, "sklearn")]),
            "time_ratio": secs[(name, family, "ours")] / secs[(name, family, "sklearn")],
        }
        for (name, family, impl), value in acc.items()
        if impl == "ours"
    ]


def _summary(rows: list[dict], side: list[dict], config: Config) -> dict:
    """Headline: gradient boosting on Adult (or the first dataset); the best model there."""
    key_ds = "adult" if "adult" in config.datasets else config.datasets[0]
    acc = {(r["dataset"], r["model"], r["implementation"]): r["accuracy"] for r in rows}
    best = max((r for r in rows if r["dataset"] == key_ds), key=lambda r: r["accuracy"])
    metrics = {
        "ours_acc": acc[(key_ds, "gradient boosting", "ours")],
        "sklearn_acc": acc[(key_ds, "gradient boosting", "sklearn")],
        "max_abs_diff_points": max(abs(r["diff_points"]) for r in side),
        "pairs_within_one_point": sum(abs(r["diff_points"]) <= 1.0 for r in side),
        "pairs_compared": len(side),
        "key_dataset": key_ds,
        "best_implementation": best["implementation"],
        "best_model": best["model"],
        "best_acc": best["accuracy"],
    }
    for (name, family, impl), value in acc.items():
        metrics[f"{name}_{family.replace(' ', '_')}_{impl}_acc"] = value
    return metrics


def _staged_figure(name: str, by_family: dict, ctx: RunContext) -> None:
    n, fig_name = len(by_family), f"{name}_staged_accuracy"
    with figure(ctx, fig_name, 1, n, figsize=(4.5 * n, 3.6), squeeze=False) as (_, axes):
        for ax, (family, impls) in zip(axes[0], by_family.items()):
            for impl, acc in impls.items():
                style = dict(lw=3, alpha=0.5) if impl == "ours" else dict(ls="--", color="k")
                ax.plot(np.arange(1, len(acc) + 1), acc, label=impl, **style)
            ax.set(title=f"{name}: {family}", xlabel="trees", ylabel="test accuracy")
            ax.legend()


def _accuracy_time_figure(rows: list[dict], ctx: RunContext) -> None:
    frame = pd.DataFrame(rows)
    panels = [("accuracy", "test accuracy"), ("seconds", "fit + predict seconds (log)")]
    with figure(ctx, "accuracy_and_time", 1, 2, figsize=(11, 4)) as (_, axes):
        for ax, (col, label) in zip(axes, panels):
            table = frame.pivot_table(
                index=["dataset", "model"], columns="implementation", values=col
            )
            table.plot.bar(ax=ax, rot=30, fontsize=7)
            ax.set(ylabel=label, xlabel="")
            if col == "seconds":
                ax.set_yscale("log")
            else:
                ax.set_ylim(max(0.0, frame["accuracy"].min() - 0.05), 1.0)


def _importance_figure(name: str, importances: tuple, ctx: RunContext) -> None:
    """The first dataset's random-forest feature importances, ours beside sklearn's."""
    names, ours, theirs = importances
    top = np.argsort(-(ours + theirs))[:12]
    pos = np.arange(len(top))
    with figure(ctx, "forest_importances", figsize=(8, 4.5)) as (_, ax):
        ax.barh(pos - 0.2, ours[top], height=0.4, label="ours")
        ax.barh(pos + 0.2, theirs[top], height=0.4, label="sklearn")
        ax.set_yticks(pos, [names[i] for i in top], fontsize=7)
        ax.invert_yaxis()
        ax.set(xlabel="mean impurity decrease", title=f"{name}: random forest feature importances")
        ax.legend()


def run(config: Config, ctx: RunContext) -> LabResult:
    rows, curves, importances = [], {}, {}
    for name in config.datasets:
        found, curves[name], importances[name] = _compare(name, config, ctx)
        rows += found
    side = _side_by_side(rows)
    metrics = _summary(rows, side, config)

    for name in config.datasets:
        _staged_figure(name, curves[name], ctx)
    _accuracy_time_figure(rows, ctx)
    _importance_figure(config.datasets[0], importances[config.datasets[0]], ctx)

    notes = [note for row in side for note in render_notes((ROW_NOTE,), row)]
    return LabResult(
        metrics=metrics,
        key_metric="ours_acc",
        library_metric="sklearn_acc",
        tables={"models": rows, "ours_vs_sklearn": side},
        figures=ctx.figures,
        notes=notes + render_notes(NOTES, {**asdict(config), **metrics}),
    )
