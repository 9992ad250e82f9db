"""Runner for the `pca` lab: our PCA next to scikit-learn's on Iris and MNIST-5k."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.data import load
from airoad.foundations.pca import PCA, flip_signs
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    n_components: int = 50  # components kept for the MNIST reconstructions
    solver: str = "svd"  # "svd" or "eigh"
    mnist_samples: int = 5000  # rows of MNIST-5k used (a seeded random subset when < 5000)
    seed: int = 0


QUICK = {"n_components": 20, "mnist_samples": 1000}

VARIANCE_STEPS = (1, 2, 5, 10, 20, 50, 100, 200)


def _fit_both(X: np.ndarray, solver: str, ctx: RunContext):
    """Fit ours and scikit-learn's PCA on every component; return both and their seconds."""
    from sklearn.decomposition import PCA as SkPCA

    start = time.perf_counter()
    ours = PCA(n_components=None, solver=solver).fit(X)
    ours_s = time.perf_counter() - start
    sk_solver = "full" if solver == "svd" else "covariance_eigh"
    with ctx.step(f"scikit-learn PCA ({sk_solver})"):
        start = time.perf_counter()
        theirs = SkPCA(n_components=None, svd_solver=sk_solver).fit(X)
        sk_s = time.perf_counter() - start
    return ours, theirs, ours_s, sk_s


def _compare(name: str, ours, theirs, ours_s: float, sk_s: float) -> tuple[dict, list[dict]]:
    """Metrics and table rows for one dataset."""
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
    rows = [
        {
            "dataset": name,
            "quantity": "variance ratio of PC1",
            "ours": ours.explained_variance_ratio_[0],
            "sklearn": theirs.explained_variance_ratio_[0],
        },
        {
            "dataset": name,
            "quantity": "variance ratio of PC1+PC2",
            "ours": evr2,
            "sklearn": sk_evr2,
        },
        {
            "dataset": name,
            "quantity": "fit seconds (all components)",
            "ours": ours_s,
            "sklearn": sk_s,
        },
    ]
    for row in rows:
        row["ours"], row["sklearn"] = float(row["ours"]), float(row["sklearn"])
        row["abs_diff"] = abs(row["ours"] - row["sklearn"])
    return metrics, rows


def _scatter(ax, Z: np.ndarray, labels: np.ndarray, names: list[str], title: str) -> None:
    for i, name in enumerate(names):
        pts = Z[labels == i]
        ax.scatter(pts[:, 0], pts[:, 1], s=6, alpha=0.6, label=name)
    ax.set(title=title, xlabel="PC1", ylabel="PC2")


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    iris = load("iris")
    X_iris, y_iris = iris.drop(columns="target").to_numpy(float), iris["target"].to_numpy()
    X_mnist, y_mnist = load("mnist-5k")
    if config.mnist_samples < len(X_mnist):
        keep = np.random.default_rng(config.seed).choice(
            len(X_mnist), config.mnist_samples, replace=False
        )
        X_mnist, y_mnist = X_mnist[keep], y_mnist[keep]
    X_mnist = X_mnist.astype(np.float64) / 255.0  # pixels in [0, 1]; ratios do not change

    metrics: dict = {}
    rows: list[dict] = []
    fits = {}
    for name, X in ctx.track([("iris", X_iris), ("mnist", X_mnist)], "fitting PCA"):
        ours, theirs, ours_s, sk_s = _fit_both(X, config.solver, ctx)
        m, r = _compare(name, ours, theirs, ours_s, sk_s)
        metrics.update(m)
        rows += r
        fits[name] = (ours, theirs)

    ours_m, theirs_m = fits["mnist"]
    cum, sk_cum = (
        np.cumsum(ours_m.explained_variance_ratio_),
        np.cumsum(theirs_m.explained_variance_ratio_),
    )
    for q in (0.5, 0.9, 0.95):  # smallest k whose first k components explain fraction q
        metrics[f"mnist_components_for_{int(q * 100)}pct"] = int(np.searchsorted(cum, q) + 1)
    k = min(config.n_components, ours_m.n_components_)
    recon_model = PCA(n_components=k, solver=config.solver).fit(X_mnist)
    recon = recon_model.inverse_transform(recon_model.transform(X_mnist))
    metrics[f"mnist_reconstruction_mse_{k}"] = float(np.mean((recon - X_mnist) ** 2))
    metrics["ours_evr_2"], metrics["sklearn_evr_2"] = (
        metrics["mnist_evr_2"],
        metrics["mnist_sklearn_evr_2"],
    )
    variance_rows = [
        {
            "components": s,
            "ours_cumulative_ratio": float(cum[s - 1]),
            "sklearn_cumulative_ratio": float(sk_cum[s - 1]),
        }
        for s in VARIANCE_STEPS
        if s <= len(cum)
    ]

    figures = []
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2))
    names = [str(n) for n in iris.attrs.get("target_names", ["0", "1", "2"])]
    _scatter(axes[0], fits["iris"][0].transform(X_iris)[:, :2], y_iris, names, "Iris: ours")
    _scatter(axes[1], fits["iris"][1].transform(X_iris)[:, :2], y_iris, names, "Iris: scikit-learn")
    axes[1].legend()
    fig.tight_layout()
    fig.savefig(ctx.figure_path("iris_2d"), dpi=110)
    plt.close(fig)
    figures.append(ctx.figure_path("iris_2d"))

    fig, ax = plt.subplots(figsize=(7, 6))
    _scatter(
        ax,
        ours_m.transform(X_mnist)[:, :2],
        y_mnist,
        [str(d) for d in range(10)],
        f"MNIST ({len(X_mnist)} digits) on its first two principal components",
    )
    ax.legend(markerscale=3, ncols=2, fontsize=8)
    fig.savefig(ctx.figure_path("mnist_2d"), dpi=110)
    plt.close(fig)
    figures.append(ctx.figure_path("mnist_2d"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    steps = np.arange(1, len(cum) + 1)
    ax.plot(steps, cum, label="ours: cumulative")
    ax.plot(steps, sk_cum, "--", label="scikit-learn: cumulative")
    ax.bar(
        steps[:50], ours_m.explained_variance_ratio_[:50], color="grey", label="ours: per component"
    )
    for q in (0.9, 0.95):
        ax.axhline(q, color="k", lw=0.5, ls=":")
    ax.set(
        xscale="log",
        xlabel="number of components",
        ylabel="explained variance ratio",
        title="MNIST: how much variance the first k components keep",
    )
    ax.legend()
    fig.savefig(ctx.figure_path("explained_variance"), dpi=110)
    plt.close(fig)
    figures.append(ctx.figure_path("explained_variance"))

    shown = [ks for ks in (2, 10, k) if ks <= k]
    fig, axes = plt.subplots(len(shown) + 1, 6, figsize=(7, 1.3 * (len(shown) + 1)))
    for row, ks in enumerate([None, *shown]):
        if ks is None:
            images, label = X_mnist[:6], "original"
        else:
            model = PCA(n_components=ks, solver=config.solver).fit(X_mnist)
            images, label = model.inverse_transform(model.transform(X_mnist[:6])), f"k={ks}"
        for col in range(6):
            axes[row, col].imshow(images[col].reshape(28, 28), cmap="gray_r")
            axes[row, col].set_xticks([]), axes[row, col].set_yticks([])
        axes[row, 0].set_ylabel(label)
    fig.suptitle("MNIST reconstructed from k principal components")
    fig.savefig(ctx.figure_path("reconstructions"), dpi=110)
    plt.close(fig)
    figures.append(ctx.figure_path("reconstructions"))

    notes = [
        f"MNIST: the first two components keep {metrics['ours_evr_2']:.1%} of the variance "
        f"(scikit-learn: {metrics['sklearn_evr_2']:.1%}); "
        f"{metrics['mnist_components_for_90pct']} components keep 90%.",
        f"Largest component difference from scikit-learn: {metrics['mnist_max_component_diff']:.1e} "
        f"(MNIST), {metrics['iris_max_component_diff']:.1e} (Iris).",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_evr_2",
        library_metric="sklearn_evr_2",
        tables={"comparison": rows, "variance": variance_rows},
        figures=figures,
        notes=notes,
    )
