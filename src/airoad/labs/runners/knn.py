"""Runner for knn: our brute-force k-nearest neighbours beside scikit-learn's on digits
(identical predictions, accuracy against k, k chosen by cross-validation), wine (what feature
scaling does to a distance) and iris (decision regions for small and large k)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.classic.knn import KNeighborsClassifier
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import fit_race, frame_xy, param, render_notes, split


@dataclass(frozen=True)
class Config:
    k: int = param(5, ge=1, le=500)  # the headline k for digits (1,257 training digits)
    k_values: tuple[int, ...] = param((1, 2, 3, 4, 5, 7, 9, 12, 15, 20, 30, 50), ge=1, le=500)
    cv_folds: int = param(5, ge=2, le=20)  # folds of the training set used to pick k
    boundary_k: tuple[int, ...] = param((1, 15), ge=1, le=100)  # k values on the iris figure
    test_size: float = param(0.3, gt=0.0, lt=1.0)
    seed: int = param(0, ge=0)


QUICK = {"k_values": (1, 3, 5, 9, 15), "cv_folds": 3}

IRIS_2D = ("sepal length (cm)", "sepal width (cm)")  # overlapping classes: boundaries show k

NOTES = (
    "Digits: {digits_predictions_compared} predictions (every k, both weightings) compared with "
    "scikit-learn's brute kNN; {digits_mismatches} differ.",
    "k = {digits_k}: test accuracy {ours_digits_acc:.4f} (sklearn {sklearn_digits_acc:.4f}); "
    "{cv_folds}-fold cross-validation picks k = {cv_best_k} (test accuracy "
    "{test_acc_at_cv_best_k:.4f}).",
    "Wine, k = {digits_k}: {wine_raw_acc:.3f} on raw features, {wine_scaled_acc:.3f} after "
    "standardising - a distance is only as fair as its units.",
)


def _sklearn(k: int, weights: str = "uniform"):
    from sklearn.neighbors import KNeighborsClassifier as SkKNN

    return SkKNN(n_neighbors=k, weights=weights, algorithm="brute", n_jobs=1)


def _digits(config: Config, ctx: RunContext) -> tuple[dict, list[dict], dict]:
    """Ours vs sklearn for every k and both weightings; k picked by cross-validation."""
    from sklearn.model_selection import cross_val_score

    Xtr, Xte, ytr, yte = split(*frame_xy(load("digits")), config.test_size, config.seed)
    rows, mismatches = [], 0
    ks = sorted(set(config.k_values) | {config.k})
    for k in ctx.track(ks, "digits: ours vs sklearn for each k"):
        for weights in ("uniform", "distance"):
            ours, lib = KNeighborsClassifier(k, weights=weights), _sklearn(k, weights)
            r = fit_race(ours, lib, Xtr, ytr, Xte)
            differ = int(np.sum(r["ours"] != r["library"]))
            mismatches += differ
            rows.append(
                {
                    "k": k,
                    "weights": weights,
                    "ours_acc": float(np.mean(r["ours"] == yte)),
                    "sklearn_acc": float(np.mean(r["library"] == yte)),
                    "different_predictions": differ,
                    "ours_seconds": round(r["ours_seconds"], 4),
                    "sklearn_seconds": round(r["library_seconds"], 4),
                }
            )
    cv = {
        k: float(np.mean(cross_val_score(KNeighborsClassifier(k), Xtr, ytr, cv=config.cv_folds)))
        for k in ctx.track(list(config.k_values), "digits: cross-validating k")
    }
    best_k = max(cv, key=lambda k: (cv[k], -k))  # the smallest k among the best
    headline = next(r for r in rows if r["k"] == config.k and r["weights"] == "uniform")
    best = next(r for r in rows if r["k"] == best_k and r["weights"] == "uniform")
    metrics = {
        "ours_digits_acc": headline["ours_acc"],
        "sklearn_digits_acc": headline["sklearn_acc"],
        "digits_k": config.k,
        "digits_mismatches": mismatches,
        "digits_predictions_compared": len(rows) * len(yte),
        "digits_ours_seconds": headline["ours_seconds"],
        "digits_sklearn_seconds": headline["sklearn_seconds"],
        "cv_best_k": best_k,
        "cv_best_acc": cv[best_k],
        "test_acc_at_cv_best_k": best["ours_acc"],
    }
    return metrics, rows, {"cv": cv, "split": (Xtr, Xte, ytr, yte)}


def _wine_scaling(config: Config) -> tuple[dict, list[dict]]:
    """Accuracy with raw features vs standardised ones: proline (hundreds) swamps the rest."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = split(*frame_xy(load("wine")), config.test_size, config.seed)
    rows = []
    for k in (1, config.k, 15):
        row = {"k": k}
        for label, scale in (("raw", False), ("standardised", True)):
            for who, model in (("ours", KNeighborsClassifier(k)), ("sklearn", _sklearn(k))):
                model = make_pipeline(StandardScaler(), model) if scale else model
                row[f"{who}_{label}"] = float(np.mean(model.fit(Xtr, ytr).predict(Xte) == yte))
        rows.append(row)
    head = next(r for r in rows if r["k"] == config.k)
    metrics = {
        "wine_raw_acc": head["ours_raw"],
        "wine_scaled_acc": head["ours_standardised"],
        "wine_sklearn_raw_acc": head["sklearn_raw"],
        "wine_sklearn_scaled_acc": head["sklearn_standardised"],
    }
    return metrics, rows


def _accuracy_figure(rows: list[dict], cv: dict, best_k: int, ctx: RunContext):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for weights, colour in (("uniform", "C0"), ("distance", "C1")):
        sub = [r for r in rows if r["weights"] == weights]
        ax.plot(
            [r["k"] for r in sub],
            [r["ours_acc"] for r in sub],
            "-",
            color=colour,
            label=f"ours, {weights}",
        )
        ax.plot(
            [r["k"] for r in sub],
            [r["sklearn_acc"] for r in sub],
            "x",
            color=colour,
            ms=8,
            label=f"sklearn, {weights}",
        )
    ax.plot(list(cv), list(cv.values()), "--", color="grey", label="ours, cross-validated (train)")
    ax.axvline(best_k, color="k", ls=":", label=f"k chosen by CV = {best_k}")
    ax.set(
        xscale="log",
        xlabel="k (neighbours)",
        ylabel="accuracy",
        title="Digits: test accuracy against k",
    )
    ax.legend(fontsize=8)
    return ctx.save_figure(fig, "accuracy_vs_k")


def _boundary_figure(config: Config, ctx: RunContext):
    """Iris on two sepal features: decision regions of our kNN for small and large k."""
    import matplotlib.pyplot as plt

    X, y = frame_xy(load("iris"), columns=IRIS_2D)
    xx, yy = np.meshgrid(
        np.linspace(X[:, 0].min() - 0.3, X[:, 0].max() + 0.3, 250),
        np.linspace(X[:, 1].min() - 0.3, X[:, 1].max() + 0.3, 250),
    )
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    panels = [(k, "uniform") for k in config.boundary_k] + [(max(config.boundary_k), "distance")]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.6 * len(panels), 4.2), sharey=True)
    for ax, (k, weights) in zip(axes, panels):
        model = KNeighborsClassifier(k, weights=weights).fit(X, y)
        ax.contourf(
            xx,
            yy,
            model.predict(grid).reshape(xx.shape),
            levels=[-0.5, 0.5, 1.5, 2.5],
            cmap="Pastel1",
            alpha=0.9,
        )
        for c, marker in zip(range(3), "os^"):
            ax.scatter(*X[y == c].T, marker=marker, s=16, edgecolor="k", lw=0.3)
        ax.set(
            title=f"k = {k}, {weights}: training accuracy {model.score(X, y):.2f}",
            xlabel=IRIS_2D[0],
        )
    axes[0].set_ylabel(IRIS_2D[1])
    fig.suptitle("Iris: small k follows every point (jagged islands), large k smooths the regions")
    return ctx.save_figure(fig, "decision_boundaries")


def _neighbours_figure(split, k: int, ctx: RunContext):
    """Misclassified test digits next to the k training digits that outvoted the truth."""
    import matplotlib.pyplot as plt

    Xtr, Xte, ytr, yte = split
    model = KNeighborsClassifier(k).fit(Xtr, ytr)
    wrong = np.flatnonzero(model.predict(Xte) != yte)[:5]
    if len(wrong) == 0:
        wrong = np.arange(5)
    dist, ind = model.kneighbors(Xte[wrong])
    # One montage image (a 10x10 tile per digit) is far cheaper to lay out than 30 axes.
    tiles = np.full((len(wrong), k + 1, 10, 10), np.nan)
    tiles[:, 0, 1:9, 1:9] = Xte[wrong].reshape(-1, 8, 8)
    tiles[:, 1:, 1:9, 1:9] = Xtr[ind].reshape(len(wrong), k, 8, 8)
    montage = tiles.transpose(0, 2, 1, 3).reshape(len(wrong) * 10, (k + 1) * 10)
    fig, ax = plt.subplots(figsize=(1.2 * (k + 1), 1.3 * len(wrong)))
    ax.imshow(montage, cmap="gray_r")
    for r, q in enumerate(wrong):
        ax.text(5, r * 10 + 9.8, f"true {yte[q]}", ha="center", fontsize=8, color="C3")
        for c in range(k):
            ax.text(
                15 + 10 * c,
                r * 10 + 9.8,
                f"{ytr[ind[r, c]]} (d={dist[r, c]:.0f})",
                ha="center",
                fontsize=7,
            )
    ax.set_axis_off()
    ax.set_title(f"Misclassified digits (left) and their {k} nearest training digits", fontsize=9)
    return ctx.save_figure(fig, "misclassified_neighbours")


def _scaling_figure(rows: list[dict], ctx: RunContext):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    x = np.arange(len(rows))
    ax.bar(x - 0.2, [r["ours_raw"] for r in rows], 0.4, label="raw features")
    ax.bar(x + 0.2, [r["ours_standardised"] for r in rows], 0.4, label="standardised")
    ax.set_xticks(x, [f"k = {r['k']}" for r in rows])
    ax.set(
        ylim=(0, 1.05),
        ylabel="test accuracy (ours)",
        title="Wine: without scaling, proline (~1000) decides every distance",
    )
    ax.legend(loc="lower right")
    return ctx.save_figure(fig, "wine_scaling")


def run(config: Config, ctx: RunContext) -> LabResult:
    metrics, digit_rows, extra = _digits(config, ctx)
    wine_metrics, wine_rows = _wine_scaling(config)
    metrics.update(wine_metrics)

    _accuracy_figure(digit_rows, extra["cv"], metrics["cv_best_k"], ctx)
    _boundary_figure(config, ctx)
    _neighbours_figure(extra["split"], config.k, ctx)
    _scaling_figure(wine_rows, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_digits_acc",
        library_metric="sklearn_digits_acc",
        tables={"digits_by_k": digit_rows, "wine_scaling": wine_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
