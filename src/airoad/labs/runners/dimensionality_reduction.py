"""Runner for dimensionality-reduction: PCA vs t-SNE maps of MNIST-5k, and feature selection
(mutual information, RFE) vs feature extraction (PCA) as inputs to a classifier.

Our MutualInfoSelector and RFE run beside scikit-learn's SelectKBest(mutual_info_classif) and
RFE on the same pixels; PCA is airoad's reference from the `pca` lab; t-SNE is scikit-learn's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.classic import dimensionality_reduction as ref
from airoad.data import load
from airoad.foundations.pca import PCA
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, race, render_notes, split, timed


@dataclass(frozen=True)
class Config:
    # Rows of MNIST-5k (a seeded stratified subset when smaller); enough for 10 digits per split.
    n_samples: int = param(5000, ge=250, le=5000)
    test_fraction: float = param(0.2, ge=0.05, le=0.5)
    ks: tuple[int, ...] = param((10, 20, 50), ge=1, le=100)  # features kept by each method
    n_bins: int = param(2, ge=2, le=256)  # histogram bins per pixel for MI (2 = ink or not)
    rfe_samples: int = param(1500, ge=50, le=5000)  # training rows RFE refits on each round
    rfe_step: float = param(0.05, gt=0.0, lt=1.0)  # fraction of the 784 pixels dropped per round
    tsne_samples: int = param(2500, ge=200, le=5000)  # points in the 2-D maps
    tsne_pca_dims: int = param(50, ge=2, le=784)  # t-SNE runs on the top PCA components
    perplexity: float = param(30.0, ge=1.0, le=100.0)  # below the 200 points of the smallest map
    tsne_iter: int = param(1000, ge=250, le=100_000)  # scikit-learn's t-SNE needs >= 250
    seed: int = param(0, ge=0, le=2**32 - 1)


QUICK = {
    "n_samples": 500,
    "ks": (10, 30),
    "rfe_samples": 250,
    "rfe_step": 0.2,
    "tsne_samples": 250,
    "tsne_iter": 500,
}

NOTES = (
    "With k = {k} inputs the best is {best_method} ({best_accuracy:.3f} test accuracy); "
    "all 784 pixels give {all_pixels_accuracy:.3f}.",
    "RFE keeps the same pixels as scikit-learn's RFE: {rfe_same_as_sklearn}; MI keeps the same "
    "pixels as SelectKBest(mutual_info_classif): {mi_same_as_sklearn}.",
    "In 2-D, 5-NN accuracy is {pca_2d_knn_accuracy:.3f} on PCA and {tsne_2d_knn_accuracy:.3f} on "
    "t-SNE: {separates_better} separates the digits better; {keeps_neighbours} keeps more of the "
    "10 nearest neighbours (trustworthiness t-SNE {tsne_2d_trustworthiness:.3f}, PCA "
    "{pca_2d_trustworthiness:.3f}).",
)


def _mnist(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """MNIST-5k pixels in [0, 1], cut to a stratified subset of n_samples rows."""
    X, y = load("mnist-5k")
    X = X.astype(float) / 255.0
    if config.n_samples < len(X):  # keep n_samples rows: the "test" part is dropped
        X, _, y, _ = split(X, y, len(X) - config.n_samples, config.seed)
    return X, y


def _classifier():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300)


def _accuracy(Z_train, y_train, Z_test, y_test) -> float:
    return float(_classifier().fit(Z_train, y_train).score(Z_test, y_test))


def _fit_methods(k: int, Xtr, ytr, codes, sk_scores, rfe_rows, config: Config) -> dict:
    """Ours and scikit-learn's fit of each method keeping k features, timed one after the other."""
    from sklearn.decomposition import PCA as SkPCA
    from sklearn.feature_selection import RFE as SkRFE
    from sklearn.feature_selection import SelectKBest

    Xr, yr = Xtr[rfe_rows], ytr[rfe_rows]
    return {
        "mi": race(
            lambda: ref.MutualInfoSelector(k=k, n_bins=config.n_bins).fit(Xtr, ytr),
            lambda: SelectKBest(lambda *_: sk_scores, k=k).fit(codes, ytr),
        ),
        "rfe": race(
            lambda: ref.RFE(_classifier(), n_features_to_select=k, step=config.rfe_step).fit(
                Xr, yr
            ),
            lambda: SkRFE(_classifier(), n_features_to_select=k, step=config.rfe_step).fit(Xr, yr),
        ),
        "pca": race(
            lambda: PCA(n_components=k).fit(Xtr),
            lambda: SkPCA(n_components=k, svd_solver="full").fit(Xtr),
        ),
    }


def _method_rows(k: int, fits: dict, sk_mi_seconds: float, data) -> list[dict]:
    """One row per method: test accuracy on ours' and the library's k features, and timings."""
    Xtr, Xte, ytr, yte = data
    mi, rfe, pca = fits["mi"], fits["rfe"], fits["pca"]
    sk_mask = mi["library"].get_support()
    cases = [
        (
            "mutual information (selection)",
            mi,
            lambda A: A[:, sk_mask],
            sk_mi_seconds,  # the library's scores are computed once and reused for every k
            np.array_equal(mi["ours"].support_, sk_mask),
        ),
        (
            "RFE, logistic regression (selection)",
            rfe,
            rfe["library"].transform,
            0.0,
            np.array_equal(rfe["ours"].support_, rfe["library"].support_),
        ),
        (
            "PCA (extraction)",
            pca,
            pca["library"].transform,
            0.0,
            np.allclose(
                np.abs(pca["ours"].components_), np.abs(pca["library"].components_), atol=1e-6
            ),
        ),
    ]
    rows = []
    for method, fit, lib, extra_seconds, same in cases:
        ours = fit["ours"].transform
        rows.append(
            {
                "k": k,
                "method": method,
                "ours_accuracy": _accuracy(ours(Xtr), ytr, ours(Xte), yte),
                "sklearn_accuracy": _accuracy(lib(Xtr), ytr, lib(Xte), yte),
                "same_as_sklearn": bool(same),
                "ours_s": round(fit["ours_seconds"], 3),
                "sklearn_s": round(fit["library_seconds"] + extra_seconds, 3),
            }
        )
    return rows


def _compare_methods(data, config: Config, ctx: RunContext) -> tuple[list[dict], dict]:
    """For every k: accuracy of a classifier on k MI pixels, k RFE pixels, k PCA components."""
    from sklearn.feature_selection import mutual_info_classif

    Xtr, _, ytr, _ = data
    rng = np.random.default_rng(config.seed)
    rfe_rows = rng.choice(len(Xtr), size=min(config.rfe_samples, len(Xtr)), replace=False)
    # The library scores the same binned pixels: per-column min..max, n_bins equal widths.
    codes = ref.histogram_codes(Xtr, config.n_bins)
    sk_scores, sk_mi_s = timed(mutual_info_classif, codes, ytr, discrete_features=True)
    rows, masks = [], {}
    for k in ctx.track(config.ks, "selecting features"):
        fits = _fit_methods(k, Xtr, ytr, codes, sk_scores, rfe_rows, config)
        mi, rfe, pca = (fits[m]["ours"] for m in ("mi", "rfe", "pca"))
        masks[k] = (mi.support_, rfe.support_, mi.scores_, pca.components_[0])
        rows += _method_rows(k, fits, sk_mi_s, data)
    return rows, masks


def _maps(X, y, config: Config, ctx: RunContext) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """2-D PCA and t-SNE maps of a subset, with how faithful each is."""
    from sklearn.manifold import TSNE, trustworthiness
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    idx = np.random.default_rng(config.seed + 1).permutation(len(X))[: config.tsne_samples]
    Xs, ys = X[idx], y[idx]
    Z_pca = PCA(n_components=2).fit_transform(Xs)
    dims = min(config.tsne_pca_dims, *Xs.shape)
    tsne = TSNE(
        n_components=2,
        perplexity=config.perplexity,
        max_iter=config.tsne_iter,
        init="pca",
        random_state=config.seed,
    )
    with ctx.step(f"t-SNE on {len(Xs)} images (scikit-learn)"):
        Z_tsne, tsne_s = timed(lambda: tsne.fit_transform(PCA(n_components=dims).fit_transform(Xs)))
    knn = KNeighborsClassifier(n_neighbors=5)
    out = {"tsne_seconds": round(tsne_s, 2)}
    for name, Z in [("pca", Z_pca), ("tsne", Z_tsne)]:
        out[f"{name}_2d_trustworthiness"] = float(trustworthiness(Xs, Z, n_neighbors=10))
        out[f"{name}_2d_knn_accuracy"] = float(cross_val_score(knn, Z, ys, cv=5).mean())
    return out, Z_pca, Z_tsne, ys


def _summary(rows: list[dict], maps: dict, config: Config) -> tuple[dict, dict]:
    """The headline metrics at the largest k, and the conclusions the notes state."""
    k = max(config.ks)
    at_k = {r["method"].split(" ")[0].lower(): r for r in rows if r["k"] == k}
    metrics = {
        "ours_rfe_accuracy": at_k["rfe,"]["ours_accuracy"],
        "sklearn_rfe_accuracy": at_k["rfe,"]["sklearn_accuracy"],
        "ours_mi_accuracy": at_k["mutual"]["ours_accuracy"],
        "sklearn_mi_accuracy": at_k["mutual"]["sklearn_accuracy"],
        "pca_accuracy": at_k["pca"]["ours_accuracy"],
        "rfe_same_as_sklearn": all(
            r["same_as_sklearn"] for r in rows if r["method"].startswith("RFE")
        ),
        "mi_same_as_sklearn": all(
            r["same_as_sklearn"] for r in rows if r["method"].startswith("mutual")
        ),
    }
    best = max(at_k.values(), key=lambda r: r["ours_accuracy"])
    tsne_knn, tsne_trust = maps["tsne_2d_knn_accuracy"], maps["tsne_2d_trustworthiness"]
    verdicts = {
        "best_method": best["method"],
        "best_accuracy": best["ours_accuracy"],
        "separates_better": "t-SNE" if tsne_knn > maps["pca_2d_knn_accuracy"] else "PCA",
        "keeps_neighbours": "t-SNE" if tsne_trust > maps["pca_2d_trustworthiness"] else "PCA",
    }
    return metrics, verdicts


def _maps_figure(ctx: RunContext, Z_pca, Z_tsne, ys, maps: dict) -> None:
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 5.8), layout="constrained")
    for ax, Z, name in [(axes[0], Z_pca, "pca"), (axes[1], Z_tsne, "tsne")]:
        sc = ax.scatter(Z[:, 0], Z[:, 1], c=ys, cmap="tab10", s=5, alpha=0.7)
        for d in range(10):  # label each digit at its median position
            cx, cy = np.median(Z[ys == d], axis=0)
            ax.text(cx, cy, str(d), fontsize=14, weight="bold", ha="center", va="center")
        label = "PCA" if name == "pca" else "t-SNE"
        ax.set(
            title=f"{label} 2-D\ntrustworthiness {maps[name + '_2d_trustworthiness']:.3f}, "
            f"5-NN accuracy {maps[name + '_2d_knn_accuracy']:.3f}",
            xticks=[],
            yticks=[],
        )
    fig.colorbar(sc, ax=axes, label="digit")
    ctx.save_figure(fig, "pca_vs_tsne", tight=False)  # the constrained layout places the colorbar


def _pixels_figure(ctx: RunContext, masks: dict) -> None:
    k = max(masks)
    mi_mask, rfe_mask, mi_scores, pc1 = masks[k]
    with figure(ctx, "selected_pixels", 1, 4, figsize=(13, 3.6)) as (_, axes):
        for ax, img, title in [
            (axes[0], mi_scores, "mutual information per pixel"),
            (axes[1], mi_mask, f"top {k} pixels by MI"),
            (axes[2], rfe_mask, f"{k} pixels kept by RFE"),
            (axes[3], pc1, "PCA component 1 (uses every pixel)"),
        ]:
            ax.imshow(np.asarray(img, dtype=float).reshape(28, 28), cmap="magma")
            ax.set(title=title, xticks=[], yticks=[])


def _accuracy_figure(ctx: RunContext, rows: list[dict], all_pixels_acc: float) -> None:
    with figure(ctx, "accuracy_vs_k", figsize=(7, 4.5)) as (_, ax):
        for method in dict.fromkeys(r["method"] for r in rows):
            pts = [(r["k"], r["ours_accuracy"]) for r in rows if r["method"] == method]
            ax.plot(*zip(*pts), "o-", label=method)
        ax.axhline(all_pixels_acc, color="k", ls=":", label="all 784 pixels")
        ax.set(
            xlabel="number of features kept (k)",
            ylabel="test accuracy (logistic regression)",
            title="selection vs extraction on MNIST-5k",
            xscale="log",
        )
        ax.legend(fontsize=8)


def run(config: Config, ctx: RunContext) -> LabResult:
    X, y = _mnist(config)
    Xtr, Xte, ytr, yte = data = split(X, y, config.test_fraction, config.seed)
    rows, masks = _compare_methods(data, config, ctx)
    all_pixels_acc = _accuracy(Xtr, ytr, Xte, yte)
    maps, Z_pca, Z_tsne, ys = _maps(X, y, config, ctx)
    summary, verdicts = _summary(rows, maps, config)

    _maps_figure(ctx, Z_pca, Z_tsne, ys, maps)
    _pixels_figure(ctx, masks)
    _accuracy_figure(ctx, rows, all_pixels_acc)

    metrics = {
        "n_train": len(Xtr),
        "n_test": len(Xte),
        "k": max(config.ks),
        "all_pixels_accuracy": all_pixels_acc,
        **summary,
        **maps,
    }
    return LabResult(
        metrics=metrics,
        key_metric="ours_rfe_accuracy",
        library_metric="sklearn_rfe_accuracy",
        tables={"selection_vs_extraction": rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **verdicts}),
    )
