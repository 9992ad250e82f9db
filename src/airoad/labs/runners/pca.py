"""Runner for the `pca` lab: our PCA next to scikit-learn's on Iris and MNIST-5k."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.foundations.pca import PCA, flip_signs
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, frame_xy, param, race, render_notes, subsample


@dataclass(frozen=True)
class Config:
    n_components: int = param(50, ge=1, le=784)  # components kept for the MNIST reconstructions
    solver: str = param("svd", choices=("svd", "eigh"))
    # rows of MNIST-5k used (a seeded random subset when < 5000)
    mnist_samples: int = param(5000, ge=10, le=5000)
    seed: int = param(0, ge=0)


QUICK = {"n_components": 20, "mnist_samples": 1000}

NOTES = (
    "MNIST: the first two components keep {ours_evr_2:.1%} of the variance (scikit-learn: "
    "{sklearn_evr_2:.1%}); {mnist_components_for_90pct} components keep 90%.",
    "Largest component difference from scikit-learn: {mnist_max_component_diff:.1e} (MNIST), "
    "{iris_max_component_diff:.1e} (Iris).",
)

VARIANCE_STEPS = (1, 2, 5, 10, 20, 50, 100, 200)


def _mnist(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k (a seeded subset when asked) with pixels in [0, 1]; ratios do not change."""
    X, y = load("mnist-5k")
    keep = subsample(len(X), config.mnist_samples, config.seed)
    return X[keep].astype(np.float64) / 255.0, y[keep]


def _fit_both(X: np.ndarray, solver: str, ctx: RunContext) -> dict:
    """Fit ours and scikit-learn's PCA on every component: ``race``'s dict of fits and seconds."""
    from sklearn.decomposition import PCA as SkPCA

    sk_solver = "full" if solver == "svd" else "covariance_eigh"
    with ctx.step(f"PCA: ours ({solver}) and scikit-learn ({sk_solver})"):
        return race(
            lambda: PCA(n_components=None, solver=solver).fit(X),
            lambda: SkPCA(n_components=None, svd_solver=sk_solver).fit(X),
        )


def _compare(name: str, fit: dict) -> tuple[dict, list[dict]]:
    """Metrics and table rows for one dataset."""
    ours, theirs = fit["ours"], fit["library"]
    ours_s, sk_s = fit["ours_seconds"], fit["library_seconds"]
    # Same sign rule on both sides, so a plain difference is the honest comparison.
    k = min(len(ours.components_), len(theirs.components_), 10)
    comp_diff = float(np.abs(ours.components_[:k] - flip_signs(theirs.components_[:k])).max())
    evr2 = float(ours.explained_variance_ratio_[:2].sum())
    sk_evr2 = float(theirs.explained_variance_ratio_[:2].sum())
    metrics = {
        f"{name}_evr_2": evr2,
        f"{name}_sklearn_evr_2": sk_evr2,
        f"{name}_max_component_diff": comp_diff,
        f"{name}_fit_seconds": round(ours_s, 4),
        f"{name}_sklearn_fit_seconds": round(sk_s, 4),
    }
    pc1 = (ours.explained_variance_ratio_[0], theirs.explained_variance_ratio_[0])
    pairs = (
        ("variance ratio of PC1", *pc1),
        ("variance ratio of PC1+PC2", evr2, sk_evr2),
        ("fit seconds (all components)", ours_s, sk_s),
    )
    rows = [
        {"dataset": name, "quantity": q, "ours": float(a), "sklearn": float(b)} for q, a, b in pairs
    ]
    for row in rows:
        row["abs_diff"] = abs(row["ours"] - row["sklearn"])
    return metrics, rows


def _mnist_variance(fit: dict, X: np.ndarray, k: int, solver: str) -> tuple[dict, list[dict]]:
    """Components needed for 50/90/95% of the variance, and the rank-k reconstruction error."""
    cum = np.cumsum(fit["ours"].explained_variance_ratio_)
    sk_cum = np.cumsum(fit["library"].explained_variance_ratio_)
    metrics = {  # smallest k whose first k components explain fraction q
        f"mnist_components_for_{int(q * 100)}pct": int(np.searchsorted(cum, q) + 1)
        for q in (0.5, 0.9, 0.95)
    }
    model = PCA(n_components=k, solver=solver).fit(X)
    recon = model.inverse_transform(model.transform(X))
    metrics[f"mnist_reconstruction_mse_{k}"] = float(np.mean((recon - X) ** 2))
    rows = [
        {
            "components": s,
            "ours_cumulative_ratio": float(cum[s - 1]),
            "sklearn_cumulative_ratio": float(sk_cum[s - 1]),
        }
        for s in VARIANCE_STEPS
        if s <= len(cum)
    ]
    return metrics, rows


def _scatter(ax, Z: np.ndarray, labels: np.ndarray, names: list[str], title: str) -> None:
    for i, name in enumerate(names):
        pts = Z[labels == i]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, label=name)
    ax.set(title=title, xlabel="PC1", ylabel="PC2")


def _iris_figure(fit: dict, X: np.ndarray, y: np.ndarray, names: list[str], ctx: RunContext):
    with figure(ctx, "iris_2d", 1, 2, figsize=(10, 4.2)) as (_, axes):
        _scatter(axes[0], fit["ours"].transform(X)[:, :2], y, names, "Iris: ours")
        _scatter(axes[1], fit["library"].transform(X)[:, :2], y, names, "Iris: scikit-learn")
        axes[1].legend()


def _mnist_figure(fit: dict, X: np.ndarray, y: np.ndarray, ctx: RunContext) -> None:
    with figure(ctx, "mnist_2d", figsize=(7, 6)) as (fig, ax):
        title = f"MNIST ({len(X)} digits) on its first two principal components"
        _scatter(ax, fit["ours"].transform(X)[:, :2], y, [str(d) for d in range(10)], title)
        ax.legend(markerscale=3, ncols=2, fontsize=8)


def _variance_figure(fit: dict, ctx: RunContext) -> None:
    ratio = fit["ours"].explained_variance_ratio_
    cum, sk_cum = np.cumsum(ratio), np.cumsum(fit["library"].explained_variance_ratio_)
    with figure(ctx, "explained_variance", figsize=(7, 4.5)) as (_, ax):
        steps = np.arange(1, len(cum) + 1)
        ax.plot(steps, cum, label="ours: cumulative")
        ax.plot(steps, sk_cum, "--", label="scikit-learn: cumulative")
        ax.bar(steps[:50], ratio[:50], color="grey", label="ours: per component")
        for q in (0.9, 0.95):
            ax.axhline(q, color="k", lw=0.5, ls=":")
        ax.set(
            xscale="log",
            xlabel="number of components",
            ylabel="explained variance ratio",
            title="MNIST: how much variance the first k components keep",
        )
        ax.legend()


def _reconstruction_figure(X: np.ndarray, k: int, solver: str, ctx: RunContext) -> None:
    """Six digits as they are, then rebuilt from 2, 10 and k components.

    MNIST-5k is stored sorted by label, so the six are spread evenly over the rows.
    """
    picked = X[np.linspace(0, len(X) - 1, 6).round().astype(int)]
    shown = [ks for ks in (2, 10, k) if ks <= k]
    nrows = len(shown) + 1
    with figure(ctx, "reconstructions", nrows, 6, figsize=(7, 1.3 * nrows)) as (fig, axes):
        for row, ks in enumerate([None, *shown]):
            if ks is None:
                images, label = picked, "original"
            else:
                model = PCA(n_components=ks, solver=solver).fit(X)
                images, label = model.inverse_transform(model.transform(picked)), f"k={ks}"
            for col in range(6):
                axes[row, col].imshow(images[col].reshape(28, 28), cmap="gray_r")
                axes[row, col].set_xticks([]), axes[row, col].set_yticks([])
            axes[row, 0].set_ylabel(label)
        fig.suptitle("MNIST reconstructed from k principal components")


def run(config: Config, ctx: RunContext) -> LabResult:
    iris = load("iris")
    X_iris, y_iris = frame_xy(iris)
    X_mnist, y_mnist = _mnist(config)
    iris_fit = _fit_both(X_iris, config.solver, ctx)
    mnist_fit = _fit_both(X_mnist, config.solver, ctx)
    k = min(config.n_components, mnist_fit["ours"].n_components_)
    metrics, rows = _compare("iris", iris_fit)
    mnist_metrics, mnist_rows = _compare("mnist", mnist_fit)
    variance_metrics, variance_rows = _mnist_variance(mnist_fit, X_mnist, k, config.solver)
    metrics |= mnist_metrics | variance_metrics
    metrics |= {
        "ours_evr_2": metrics["mnist_evr_2"],
        "sklearn_evr_2": metrics["mnist_sklearn_evr_2"],
    }

    names = [str(n) for n in iris.attrs.get("target_names", ["0", "1", "2"])]
    _iris_figure(iris_fit, X_iris, y_iris, names, ctx)
    _mnist_figure(mnist_fit, X_mnist, y_mnist, ctx)
    _variance_figure(mnist_fit, ctx)
    _reconstruction_figure(X_mnist, k, config.solver, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_evr_2",
        library_metric="sklearn_evr_2",
        tables={"comparison": rows + mnist_rows, "variance": variance_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
