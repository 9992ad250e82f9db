"""Runner for customer-segmentation: k-means segments of the ISLP Credit customers.

k is chosen from the numbers (elbow of the inertia curve and our silhouette, beside
scikit-learn's silhouette_score); the segments are drawn in 2-D with airoad's PCA and
scikit-learn's t-SNE and described by a profile table whose names come from the centroids.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from airoad.classic import customer_segmentation as ref
from airoad.data import load
from airoad.foundations.pca import PCA
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    # Credit columns to cluster on; Yes/No columns become 0/1 (their mean is a share).
    features: tuple[str, ...] = ("Income", "Limit", "Balance", "Age", "Student")
    k_min: int = 2
    k_max: int = 10
    n_init: int = 20  # k-means restarts per k
    tolerance: float = 0.02  # how much silhouette the elbow may give up (see choose_k)
    name_threshold: float = 0.35  # |z| a centroid needs for a feature to enter its name
    tsne_iter: int = 1000
    seed: int = 0


QUICK = {"n_init": 4, "tsne_iter": 500}


def _features(df: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """The chosen columns as floats, with readable names (a Yes/No column -> "<name> share")."""
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"unknown Credit columns {missing}; available: {list(df.columns)}")
    cols, names = [], []
    for c in columns:
        if df[c].dtype.kind in "biuf":
            cols.append(df[c].to_numpy(float))
            names.append(c)
        else:
            cols.append((df[c] == "Yes").to_numpy(float))
            names.append(f"{c} share")
    return np.column_stack(cols), names


def _scan_k(Z: np.ndarray, config: Config, ctx: RunContext) -> list[dict]:
    """Fit k-means for every k; inertia and both silhouettes per k."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    rows = []
    for k in ctx.track(range(config.k_min, config.k_max + 1), "k-means for each k"):
        km = KMeans(n_clusters=k, n_init=config.n_init, random_state=config.seed).fit(Z)
        rows.append(
            {
                "k": k,
                "inertia": float(km.inertia_),
                "ours_silhouette": ref.silhouette_score(Z, km.labels_),
                "sklearn_silhouette": float(silhouette_score(Z, km.labels_)),
            }
        )
    return rows


def _profiles(X: np.ndarray, names: list[str], labels: np.ndarray, threshold: float) -> list[dict]:
    """One row per segment: its derived name, size, feature means (original units) and z-scores."""
    segments, z = ref.centroid_zscores(X, labels)
    seg_names = ref.name_segments(z, names, threshold=threshold)
    rows = []
    for s, seg in enumerate(segments):
        mask = labels == seg
        row = {
            "segment": int(seg),
            "name": seg_names[s],
            "customers": int(mask.sum()),
            "share": float(mask.mean()),
        }
        row.update({f"mean {n}": float(X[mask, j].mean()) for j, n in enumerate(names)})
        row.update({f"z {n}": float(z[s, j]) for j, n in enumerate(names)})
        rows.append(row)
    return sorted(rows, key=lambda r: -r["customers"])


def _figures(
    ctx: RunContext,
    scan: list[dict],
    elbow_k: int,
    k: int,
    labels: np.ndarray,
    sil: np.ndarray,
    profiles: list[dict],
    names: list[str],
    maps: dict,
) -> list:
    import matplotlib.pyplot as plt

    paths = []
    ks = np.array([r["k"] for r in scan])
    inertia = np.array([r["inertia"] for r in scan])
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.plot(ks, inertia, "o-", label="inertia")
    left.plot(ks[[0, -1]], inertia[[0, -1]], "k:", label="chord (first to last k)")
    left.plot(elbow_k, inertia[ks == elbow_k], "r*", ms=16, label=f"elbow: k={elbow_k}")
    left.set(xlabel="k", ylabel="within-cluster sum of squares", title="elbow")
    left.legend()
    right.plot(ks, [r["ours_silhouette"] for r in scan], "o-", lw=3, alpha=0.5, label="ours")
    right.plot(ks, [r["sklearn_silhouette"] for r in scan], "k.--", label="sklearn")
    right.axvline(k, color="r", ls=":", label=f"chosen k={k}")
    right.set(xlabel="k", ylabel="mean silhouette", title="silhouette")
    right.legend()
    paths.append(ctx.save_figure(fig, "choose_k"))

    name_of = {r["segment"]: r["name"] for r in profiles}
    fig, ax = plt.subplots(figsize=(7, 5))
    y0 = 0
    for seg in name_of:  # the classic silhouette plot: one sorted bar band per segment
        vals = np.sort(sil[labels == seg])
        ax.fill_betweenx(np.arange(y0, y0 + vals.size), 0, vals, alpha=0.7, label=name_of[seg])
        y0 += vals.size + 10
    ax.axvline(sil.mean(), color="k", ls="--", label=f"mean {sil.mean():.3f}")
    ax.set(
        xlabel="silhouette s(i)",
        ylabel="customers (sorted within segment)",
        yticks=[],
        title=f"silhouette of each customer, k={k}",
    )
    ax.legend(fontsize=8)
    paths.append(ctx.save_figure(fig, "silhouette_plot"))

    fig, axes = plt.subplots(1, 2, figsize=(12, 5))
    for ax, (title, P) in zip(axes, maps.items()):
        for seg in name_of:
            pts = P[labels == seg]
            ax.scatter(pts[:, 0], pts[:, 1], s=12, alpha=0.7, label=name_of[seg])
        ax.set(title=title, xticks=[], yticks=[])
    axes[0].legend(fontsize=8)
    paths.append(ctx.save_figure(fig, "segments_2d"))

    fig, ax = plt.subplots(figsize=(8, 0.6 * len(profiles) + 2))
    zmat = np.array([[r[f"z {n}"] for n in names] for r in profiles])
    im = ax.imshow(zmat, cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
    for (i, j), v in np.ndenumerate(zmat):
        ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=9)
    ax.set_xticks(range(len(names)), names, rotation=20)
    ax.set_yticks(range(len(profiles)), [f"{r['name']} ({r['customers']})" for r in profiles])
    fig.colorbar(im, ax=ax, label="centroid z-score")
    ax.set_title("segment profiles: centroid in standard units")
    paths.append(ctx.save_figure(fig, "segment_profiles"))
    return paths


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.cluster import KMeans
    from sklearn.manifold import TSNE
    from sklearn.metrics import silhouette_samples

    X, names = _features(load("credit"), config.features)
    Z = (X - X.mean(axis=0)) / X.std(
        axis=0
    )  # k-means on standard units: dollars must not drown age
    scan = _scan_k(Z, config, ctx)
    ks = np.array([r["k"] for r in scan])
    inertia = [r["inertia"] for r in scan]
    ours_sil = [r["ours_silhouette"] for r in scan]
    elbow_k = int(ks[ref.elbow_index(ks, inertia)])
    k, reason = ref.choose_k(ks, inertia, ours_sil, tolerance=config.tolerance)

    labels = KMeans(n_clusters=k, n_init=config.n_init, random_state=config.seed).fit_predict(Z)
    sil = ref.silhouette_samples(Z, labels)
    sk_sil = silhouette_samples(Z, labels)
    profiles = _profiles(X, names, labels, config.name_threshold)
    with ctx.step("t-SNE map (scikit-learn)"):
        tsne = TSNE(
            n_components=2,
            perplexity=30.0,
            max_iter=config.tsne_iter,
            init="pca",
            random_state=config.seed,
        ).fit_transform(Z)
    pca = PCA(n_components=2).fit(Z)
    maps = {
        f"PCA (airoad), {pca.explained_variance_ratio_.sum():.0%} of the variance": pca.transform(
            Z
        ),
        "t-SNE (scikit-learn)": tsne,
    }
    figures = _figures(ctx, scan, elbow_k, k, labels, sil, profiles, names, maps)

    row_k = scan[int(np.flatnonzero(ks == k)[0])]
    metrics = {
        "n_customers": len(X),
        "n_features": len(names),
        "chosen_k": k,
        "elbow_k": elbow_k,
        "best_silhouette_k": int(ks[int(np.argmax(ours_sil))]),
        "ours_silhouette": row_k["ours_silhouette"],
        "sklearn_silhouette": row_k["sklearn_silhouette"],
        "max_abs_silhouette_sample_diff": float(np.abs(sil - sk_sil).max()),
        "pca_2d_variance_ratio": float(pca.explained_variance_ratio_.sum()),
        "largest_segment": profiles[0]["name"],
    }
    notes = [
        f"k = {k}: {reason}.",
        f"Our silhouette {row_k['ours_silhouette']:.4f} vs scikit-learn {row_k['sklearn_silhouette']:.4f} "
        f"(largest per-customer difference {metrics['max_abs_silhouette_sample_diff']:.1e}).",
    ]
    notes += [
        f"{r['name']}: {r['customers']} customers ({r['share']:.0%}); "
        + ", ".join(f"{n} {r['mean ' + n]:.4g}" for n in names)
        for r in profiles
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_silhouette",
        library_metric="sklearn_silhouette",
        tables={"choose_k": scan, "segment_profiles": profiles},
        figures=figures,
        notes=notes,
    )
