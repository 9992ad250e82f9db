"""Runner for dimensionality-reduction: PCA vs t-SNE maps of MNIST-5k, and feature selection
(mutual information, RFE) vs feature extraction (PCA) as inputs to a classifier.

Our MutualInfoSelector and RFE run beside scikit-learn's SelectKBest(mutual_info_classif) and
RFE on the same pixels; PCA is airoad's reference from the `pca` lab; t-SNE is scikit-learn's.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.classic import dimensionality_reduction as ref
from airoad.data import load
from airoad.foundations.pca import PCA
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    n_samples: int = 5000  # rows of MNIST-5k (a seeded stratified subset when smaller)
    test_fraction: float = 0.2
    ks: tuple[int, ...] = (10, 20, 50)  # features kept by each method
    n_bins: int = 2  # histogram bins per pixel for mutual information (2 = ink or not)
    rfe_samples: int = 1500  # training rows the RFE model is refitted on each round
    rfe_step: float = 0.05  # fraction of the 784 pixels dropped per RFE round
    tsne_samples: int = 2500  # points in the 2-D maps
    tsne_pca_dims: int = 50  # t-SNE runs on the top PCA components (the usual recipe)
    perplexity: float = 30.0
    tsne_iter: int = 1000
    seed: int = 0


QUICK = {
    "n_samples": 500,
    "ks": (10, 30),
    "rfe_samples": 250,
    "rfe_step": 0.2,
    "tsne_samples": 250,
    "tsne_iter": 500,
}


def _classifier():
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=300)


def _accuracy(Z_train, y_train, Z_test, y_test) -> float:
    return float(_classifier().fit(Z_train, y_train).score(Z_test, y_test))


def _compare_methods(
    Xtr, ytr, Xte, yte, config: Config, ctx: RunContext
) -> tuple[list[dict], dict]:
    """For every k: accuracy of a classifier on k MI pixels, k RFE pixels, k PCA components."""
    from sklearn.decomposition import PCA as SkPCA
    from sklearn.feature_selection import RFE as SkRFE
    from sklearn.feature_selection import SelectKBest, mutual_info_classif

    rng = np.random.default_rng(config.seed)
    rfe_rows = rng.choice(len(Xtr), size=min(config.rfe_samples, len(Xtr)), replace=False)
    # The library scores the same binned pixels: per-column min..max, n_bins equal widths.
    codes = ref.histogram_codes(Xtr, config.n_bins)
    t0 = time.perf_counter()
    sk_scores = mutual_info_classif(codes, ytr, discrete_features=True)  # once, reused for every k
    sk_mi_s = time.perf_counter() - t0
    rows, masks = [], {}
    for k in ctx.track(config.ks, "selecting features"):
        t0 = time.perf_counter()
        mi = ref.MutualInfoSelector(k=k, n_bins=config.n_bins).fit(Xtr, ytr)
        t1 = time.perf_counter()
        sk_mi = SelectKBest(lambda *_: sk_scores, k=k).fit(codes, ytr)
        t2 = time.perf_counter()
        rfe = ref.RFE(_classifier(), n_features_to_select=k, step=config.rfe_step).fit(
            Xtr[rfe_rows], ytr[rfe_rows]
        )
        t3 = time.perf_counter()
        sk_rfe = SkRFE(_classifier(), n_features_to_select=k, step=config.rfe_step).fit(
            Xtr[rfe_rows], ytr[rfe_rows]
        )
        t4 = time.perf_counter()
        pca = PCA(n_components=k).fit(Xtr)
        t5 = time.perf_counter()
        sk_pca = SkPCA(n_components=k, svd_solver="full").fit(Xtr)
        t6 = time.perf_counter()
        masks[k] = (mi.support_, rfe.support_, mi.scores_, pca.components_[0])
        for method, ours, lib, ours_s, lib_s, same in [
            (
                "mutual information (selection)",
                mi.transform,
                lambda A: A[:, sk_mi.get_support()],  # noqa: B023 (called before the loop moves on)
                t1 - t0,
                t2 - t1 + sk_mi_s,
                bool(np.array_equal(mi.support_, sk_mi.get_support())),
            ),
            (
                "RFE, logistic regression (selection)",
                rfe.transform,
                sk_rfe.transform,
                t3 - t2,
                t4 - t3,
                bool(np.array_equal(rfe.support_, sk_rfe.support_)),
            ),
            (
                "PCA (extraction)",
                pca.transform,
                sk_pca.transform,
                t5 - t4,
                t6 - t5,
                bool(np.allclose(np.abs(pca.components_), np.abs(sk_pca.components_), atol=1e-6)),
            ),
        ]:
            rows.append(
                {
                    "k": k,
                    "method": method,
                    "ours_accuracy": _accuracy(ours(Xtr), ytr, ours(Xte), yte),
                    "sklearn_accuracy": _accuracy(lib(Xtr), ytr, lib(Xte), yte),
                    "same_as_sklearn": same,
                    "ours_s": round(ours_s, 3),
                    "sklearn_s": round(lib_s, 3),
                }
            )
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
    with ctx.step(f"t-SNE on {len(Xs)} images (scikit-learn)"):
        t0 = time.perf_counter()
        Z_tsne = TSNE(
            n_components=2,
            perplexity=config.perplexity,
            max_iter=config.tsne_iter,
            init="pca",
            random_state=config.seed,
        ).fit_transform(PCA(n_components=dims).fit_transform(Xs))
        tsne_s = time.perf_counter() - t0
    knn = KNeighborsClassifier(n_neighbors=5)
    out = {"tsne_seconds": round(tsne_s, 2)}
    for name, Z in [("pca", Z_pca), ("tsne", Z_tsne)]:
        out[f"{name}_2d_trustworthiness"] = float(trustworthiness(Xs, Z, n_neighbors=10))
        out[f"{name}_2d_knn_accuracy"] = float(cross_val_score(knn, Z, ys, cv=5).mean())
    return out, Z_pca, Z_tsne, ys


def _figures(
    ctx: RunContext,
    Z_pca,
    Z_tsne,
    ys,
    rows: list[dict],
    masks: dict,
    maps: dict,
    all_pixels_acc: float,
) -> list:
    import matplotlib.pyplot as plt

    paths = []
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
    paths.append(ctx.save_figure(fig, "pca_vs_tsne", tight=False))

    k = max(masks)
    mi_mask, rfe_mask, mi_scores, pc1 = masks[k]
    fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
    for ax, img, title in [
        (axes[0], mi_scores, "mutual information per pixel"),
        (axes[1], mi_mask, f"top {k} pixels by MI"),
        (axes[2], rfe_mask, f"{k} pixels kept by RFE"),
        (axes[3], pc1, "PCA component 1 (uses every pixel)"),
    ]:
        ax.imshow(np.asarray(img, dtype=float).reshape(28, 28), cmap="magma")
        ax.set(title=title, xticks=[], yticks=[])
    paths.append(ctx.save_figure(fig, "selected_pixels"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
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
    paths.append(ctx.save_figure(fig, "accuracy_vs_k"))
    return paths


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.model_selection import train_test_split

    X, y = load("mnist-5k")
    X = X.astype(float) / 255.0  # pixels in [0, 1]
    if config.n_samples < len(X):
        X, _, y, _ = train_test_split(
            X, y, train_size=config.n_samples, stratify=y, random_state=config.seed
        )
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=config.test_fraction, stratify=y, random_state=config.seed
    )
    rows, masks = _compare_methods(Xtr, ytr, Xte, yte, config, ctx)
    all_pixels_acc = _accuracy(Xtr, ytr, Xte, yte)
    maps, Z_pca, Z_tsne, ys = _maps(X, y, config, ctx)
    figures = _figures(ctx, Z_pca, Z_tsne, ys, rows, masks, maps, all_pixels_acc)

    k = max(config.ks)
    at_k = {r["method"].split(" ")[0].lower(): r for r in rows if r["k"] == k}
    metrics = {
        "n_train": len(Xtr),
        "n_test": len(Xte),
        "k": k,
        "all_pixels_accuracy": all_pixels_acc,
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
        **maps,
    }
    best = max(at_k.values(), key=lambda r: r["ours_accuracy"])
    winner = "t-SNE" if maps["tsne_2d_knn_accuracy"] > maps["pca_2d_knn_accuracy"] else "PCA"
    kept = "t-SNE" if maps["tsne_2d_trustworthiness"] > maps["pca_2d_trustworthiness"] else "PCA"
    notes = [
        f"With k = {k} inputs the best is {best['method']} ({best['ours_accuracy']:.3f} test accuracy); "
        f"all 784 pixels give {all_pixels_acc:.3f}.",
        f"RFE keeps the same pixels as scikit-learn's RFE: {metrics['rfe_same_as_sklearn']}; "
        f"MI keeps the same pixels as SelectKBest(mutual_info_classif): {metrics['mi_same_as_sklearn']}.",
        f"In 2-D, 5-NN accuracy is {maps['pca_2d_knn_accuracy']:.3f} on PCA and "
        f"{maps['tsne_2d_knn_accuracy']:.3f} on t-SNE: {winner} separates the digits better; "
        f"{kept} keeps more of the 10 nearest neighbours (trustworthiness t-SNE "
        f"{maps['tsne_2d_trustworthiness']:.3f}, PCA {maps['pca_2d_trustworthiness']:.3f}).",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_rfe_accuracy",
        library_metric="sklearn_rfe_accuracy",
        tables={"selection_vs_extraction": rows},
        figures=figures,
        notes=notes,
    )
