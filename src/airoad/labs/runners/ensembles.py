"""Runner for ensembles: our random forest, gradient boosting and AdaBoost beside scikit-learn's,
XGBoost's and LightGBM's on Titanic and Adult (same encoded data, one thread each).

Titanic (2207 passengers and crew) is split 75/25, stratified; Adult uses its own train/test
files. Both are one-hot encoded by `encode_tabular` (missing categories become "missing")."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airoad.classic import ensembles as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = ("titanic", "adult")
    n_estimators: int = 100  # trees in every forest and boosting model
    learning_rate: float = 0.1  # gradient boosting shrinkage
    gb_max_depth: int = 3
    adult_rows: int = 0  # training rows of Adult used (0 = all 32561)
    test_size: float = 0.25  # Titanic's held-out share
    libraries: bool = True  # also run XGBoost and LightGBM
    seed: int = 0


QUICK = {"n_estimators": 12, "adult_rows": 3000}


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
    from sklearn.model_selection import train_test_split

    if name == "titanic":
        df = load("titanic")
        train, test = train_test_split(
            df, test_size=config.test_size, stratify=df["survived"], random_state=config.seed
        )
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
            ref.GradientBoostingClassifier(n_estimators=n, learning_rate=lr, max_depth=depth),
        ),
        (
            "gradient boosting",
            "sklearn",
            ske.GradientBoostingClassifier(
                n_estimators=n, learning_rate=lr, max_depth=depth, random_state=seed
            ),
        ),
        ("adaboost", "ours", ref.AdaBoostClassifier(n_estimators=n)),
        ("adaboost", "sklearn", ske.AdaBoostClassifier(n_estimators=n, random_state=seed)),
    ]
    if config.libraries:
        import lightgbm
        import xgboost

        out += [
            (
                "gradient boosting",
                "xgboost",
                xgboost.XGBClassifier(
                    n_estimators=n,
                    learning_rate=lr,
                    n_jobs=1,
                    tree_method="hist",
                    random_state=seed,
                ),
            ),
            (
                "gradient boosting",
                "lightgbm",
                lightgbm.LGBMClassifier(
                    n_estimators=n, learning_rate=lr, n_jobs=1, verbose=-1, random_state=seed
                ),
            ),
        ]
    return out


def _staged_accuracy(model, X: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Test accuracy after each tree: boosting stages, or the first m trees of a forest."""
    if hasattr(model, "staged_predict"):
        return np.array([np.mean(pred == y) for pred in model.staged_predict(X)])
    proba = np.cumsum([t.predict_proba(X) for t in model.estimators_], axis=0)  # forests
    return np.mean(proba.argmax(axis=2) == y, axis=1)


def _figures(ctx: RunContext, rows: list[dict], curves: dict, importances: dict) -> list:
    import matplotlib.pyplot as plt

    figures = []
    for name, by_family in curves.items():
        fig, axes = plt.subplots(
            1, len(by_family), figsize=(4.5 * len(by_family), 3.6), squeeze=False
        )
        for ax, (family, impls) in zip(axes[0], by_family.items()):
            for impl, acc in impls.items():
                style = dict(lw=3, alpha=0.5) if impl == "ours" else dict(ls="--", color="k")
                ax.plot(np.arange(1, len(acc) + 1), acc, label=impl, **style)
            ax.set(title=f"{name}: {family}", xlabel="trees", ylabel="test accuracy")
            ax.legend()
        figures.append(ctx.save_figure(fig, f"{name}_staged_accuracy"))

    frame = pd.DataFrame(rows)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, col, label in [
        (axes[0], "accuracy", "test accuracy"),
        (axes[1], "seconds", "fit + predict seconds (log)"),
    ]:
        table = frame.pivot_table(index=["dataset", "model"], columns="implementation", values=col)
        table.plot.bar(ax=ax, rot=30, fontsize=7)
        ax.set(ylabel=label, xlabel="")
        if col == "seconds":
            ax.set_yscale("log")
        else:
            ax.set_ylim(max(0.0, frame["accuracy"].min() - 0.05), 1.0)
    figures.append(ctx.save_figure(fig, "accuracy_and_time"))

    name, (names, ours, theirs) = next(iter(importances.items()))
    top = np.argsort(-(ours + theirs))[:12]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    pos = np.arange(len(top))
    ax.barh(pos - 0.2, ours[top], height=0.4, label="ours")
    ax.barh(pos + 0.2, theirs[top], height=0.4, label="sklearn")
    ax.set_yticks(pos, [names[i] for i in top], fontsize=7)
    ax.invert_yaxis()
    ax.set(xlabel="mean impurity decrease", title=f"{name}: random forest feature importances")
    ax.legend()
    figures.append(ctx.save_figure(fig, "forest_importances"))
    return figures


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    rows, curves, importances = [], {}, {}
    for name in config.datasets:
        Xtr, Xte, ytr, yte, names = load_encoded(name, config)
        curves[name] = {}
        for family, impl, model in ctx.track(models(config), f"{name}: fitting"):
            start = time.perf_counter()
            pred = model.fit(Xtr, ytr).predict(Xte)
            seconds = time.perf_counter() - start
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
                curves[name].setdefault(family, {})[impl] = _staged_accuracy(model, Xte, yte)
            if family == "random forest":
                importances.setdefault(name, [names, None, None])[1 if impl == "ours" else 2] = (
                    model.feature_importances_
                )
    figures = _figures(ctx, rows, curves, {k: tuple(v) for k, v in importances.items()})

    acc = {(r["dataset"], r["model"], r["implementation"]): r["accuracy"] for r in rows}
    secs = {(r["dataset"], r["model"], r["implementation"]): r["seconds"] for r in rows}
    side = []
    for (name, family, impl), value in acc.items():
        if impl == "ours":
            side.append(
                {
                    "dataset": name,
                    "model": family,
                    "ours_acc": value,
                    "sklearn_acc": acc[(name, family, "sklearn")],
                    "diff_points": 100 * (value - acc[(name, family, "sklearn")]),
                    "time_ratio": secs[(name, family, "ours")] / secs[(name, family, "sklearn")],
                }
            )
    key_ds = "adult" if "adult" in config.datasets else config.datasets[0]
    metrics = {
        "ours_acc": acc[(key_ds, "gradient boosting", "ours")],
        "sklearn_acc": acc[(key_ds, "gradient boosting", "sklearn")],
        "max_abs_diff_points": max(abs(r["diff_points"]) for r in side),
    }
    for (name, family, impl), value in acc.items():
        metrics[f"{name}_{family.replace(' ', '_')}_{impl}_acc"] = value
    best = max((r for r in rows if r["dataset"] == key_ds), key=lambda r: r["accuracy"])
    notes = [
        f"{r['dataset']} {r['model']}: ours {r['ours_acc']:.4f} vs sklearn {r['sklearn_acc']:.4f} "
        f"({r['diff_points']:+.2f} points), {r['time_ratio']:.1f}x sklearn's time"
        for r in side
    ]
    notes.append(
        f"Best on {key_ds}: {best['implementation']} {best['model']} at {best['accuracy']:.4f}."
    )
    notes.append(
        "All within 1 point of sklearn."
        if metrics["max_abs_diff_points"] <= 1.0
        else "Some model differs from sklearn by more than 1 point (see diff_points)."
    )
    return LabResult(
        metrics=metrics,
        key_metric="ours_acc",
        library_metric="sklearn_acc",
        tables={"models": rows, "ours_vs_sklearn": side},
        figures=figures,
        notes=notes,
    )
