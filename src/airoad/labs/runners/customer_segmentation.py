"""Runner for customer-segmentation: k-means segments of the ISLP Credit customers.

k is chosen from the numbers (elbow of the inertia curve and our silhouette, beside
scikit-learn's silhouette_score); the segments are drawn in 2-D with airoad's PCA and
scikit-learn's t-SNE and described by a profile table whose names come from the centroids.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from airoad.classic import customer_segmentation as ref
from airoad.data import load
from airoad.errors import ConfigError
from airoad.foundations.pca import PCA
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes

# Credit columns k-means can use: the numbers, and the Yes/No columns (their mean is a share).
CREDIT_COLUMNS = (
    "Income",
    "Limit",
    "Rating",
    "Cards",
    "Age",
    "Education",
    "Balance",
    "Student",
    "Married",
)


@dataclass(frozen=True)
class Config:
    features: tuple[str, ...] = param(
        ("Income", "Limit", "Balance", "Age", "Student"), choices=CREDIT_COLUMNS
    )
    k_min: int = param(2, ge=2, le=100)  # a silhouette needs at least two clusters
    k_max: int = param(10, ge=3, le=100)  # the elbow needs at least three values of k
    n_init: int = param(20, ge=1, le=1000)  # k-means restarts per k
    tolerance: float = param(0.02, ge=0.0, le=2.0)  # silhouette the elbow may give up (choose_k)
    name_threshold: float = param(0.35, ge=0.0, le=5.0)  # |z| a feature needs to enter a name
    tsne_iter: int = param(1000, ge=250, le=100_000)  # scikit-learn's t-SNE needs >= 250
    seed: int = param(0, ge=0, le=2**32 - 1)

    def __post_init__(self) -> None:
        if self.k_max - self.k_min < 2:
            raise ConfigError(
                f"config keys k_min={self.k_min}, k_max={self.k_max}: the elbow needs at least "
                "three values of k (k_max >= k_min + 2)"
            )


QUICK = {"n_init": 4, "tsne_iter": 500}

NOTES = (
    "k = {chosen_k}: {k_reason}.",
    "Our silhouette {ours_silhouette:.4f} vs scikit-learn {sklearn_silhouette:.4f} "
    "(largest per-customer difference {max_abs_silhouette_sample_diff:.1e}).",
)
SEGMENT_NOTE = "{name}: {customers} customers ({share:.0%}); {means}"


def _features(df: pd.DataFrame, columns: tuple[str, ...]) -> tuple[np.ndarray, list[str]]:
    """The chosen columns as floats, with readable names (a Yes/No column -> "<name> share")."""
    cols, names = [], []
    for c in columns:
        if df[c].dtype.kind in "biuf":
            cols.append(df[c].to_numpy(float))
            names.append(c)
        else:
            cols.append((df[c] == "Yes").to_numpy(float))
            names.append(f"{c} share")
    return np.column_stack(cols), names


def _kmeans(k: int, config: Config):
    from sklearn.cluster import KMeans

    return KMeans(n_clusters=k, n_init=config.n_init, random_state=config.seed)


def _scan_k(Z: np.ndarray, config: Config, ctx: RunContext) -> list[dict]:
    """Fit k-means for every k; inertia and both silhouettes per k."""
    from sklearn.metrics import silhouette_score

    rows = []
    for k in ctx.track(range(config.k_min, config.k_max + 1), "k-means for each k"):
        km = _kmeans(k, config).fit(Z)
        rows.append(
            {
                "k": k,
                "inertia": float(km.inertia_),
                "ours_silhouette": ref.silhouette_score(Z, km.labels_),
                "sklearn_silhouette": float(silhouette_score(Z, km.labels_)),
            }
        )
    return rows


def _choose_k(scan: list[dict], tolerance: float) -> tuple[dict, str]:
    """The elbow, the best silhouette and the k the rule picks (with its reason in words)."""
    ks = np.array([r["k"] for r in scan])
    inertia = [r["inertia"] for r in scan]
    ours_sil = [r["ours_silhouette"] for r in scan]
    k, reason = ref.choose_k(ks, inertia, ours_sil, tolerance=tolerance)
    row_k = scan[int(np.flatnonzero(ks == k)[0])]
    metrics = {
        "chosen_k": k,
        "elbow_k": int(ks[ref.elbow_index(ks, inertia)]),
        "best_silhouette_k": int(ks[int(np.argmax(ours_sil))]),
        "ours_silhouette": row_k["ours_silhouette"],
        "sklearn_silhouette": row_k["sklearn_silhouette"],
    }
    return metrics, reason


def _segment(Z: np.ndarray, k: int, config: Config) -> tuple[np.ndarray, np.ndarray, float]:
    """The final k-means labels, our per-customer silhouettes and their gap to scikit-learn's."""
    from sklearn.metrics import silhouette_samples

    labels = _kmeans(k, config).fit_predict(Z)
    sil = ref.silhouette_samples(Z, labels)
    return labels, sil, float(np.abs(sil - silhouette_samples(Z, labels)).max())


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


def _maps(Z: np.ndarray, config: Config, ctx: RunContext) -> tuple[dict, float]:
    """2-D views of the customers: airoad's PCA and scikit-learn's t-SNE."""
    from sklearn.manifold import TSNE

    with ctx.step("t-SNE map (scikit-learn)"):
        tsne = TSNE(
            n_components=2,
            perplexity=30.0,
            max_iter=config.tsne_iter,
            init="pca",
            random_state=config.seed,
        ).fit_transform(Z)
    pca = PCA(n_components=2).fit(Z)
    ratio = float(pca.explained_variance_ratio_.sum())
    maps = {
        f"PCA (airoad), {ratio:.0%} of the variance": pca.transform(Z),
        "t-SNE (scikit-learn)": tsne,
    }
    return maps, ratio


def _segment_notes(profiles: list[dict], names: list[str]) -> list[str]:
    return [
        SEGMENT_NOTE.format(**r, means=", ".join(f"{n} {r['mean ' + n]:.4g}" for n in names))
        for r in profiles
    ]


def _choose_k_figure(ctx: RunContext, scan: list[dict], elbow_k: int, k: int) -> None:
    ks = np.array([r["k"] for r in scan])
    inertia = np.array([r["inertia"] for r in scan])
    with figure(ctx, "choose_k", 1, 2, figsize=(11, 4)) as (_, (left, right)):
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


def _silhouette_figure(
    ctx: RunContext, labels: np.ndarray, sil: np.ndarray, profiles: list[dict], k: int
) -> None:
    """The classic silhouette plot: one sorted bar band per segment."""
    with figure(ctx, "silhouette_plot", figsize=(7, 5)) as (_, ax):
        y0 = 0
        for r in profiles:
            vals = np.sort(sil[labels == r["segment"]])
            ax.fill_betweenx(np.arange(y0, y0 + vals.size), 0, vals, alpha=0.7, label=r["name"])
            y0 += vals.size + 10
        ax.axvline(sil.mean(), color="k", ls="--", label=f"mean {sil.mean():.3f}")
        ax.set(
            xlabel="silhouette s(i)",
            ylabel="customers (sorted within segment)",
            yticks=[],
            title=f"silhouette of each customer, k={k}",
        )
        ax.legend(fontsize=8)


def _segments_figure(ctx: RunContext, labels: np.ndarray, profiles: list[dict], maps: dict) -> None:
    with figure(ctx, "segments_2d", 1, 2, figsize=(12, 5)) as (_, axes):
        for ax, (title, P) in zip(axes, maps.items()):
            for r in profiles:
                pts = P[labels == r["segment"]]
                ax.scatter(pts[:, 0], pts[:, 1], s=12, alpha=0.7, label=r["name"])
            ax.set(title=title, xticks=[], yticks=[])
        axes[0].legend(fontsize=8)


def _profiles_figure(ctx: RunContext, profiles: list[dict], names: list[str]) -> None:
    with figure(ctx, "segment_profiles", figsize=(8, 0.6 * len(profiles) + 2)) as (fig, ax):
        zmat = np.array([[r[f"z {n}"] for n in names] for r in profiles])
        im = ax.imshow(zmat, cmap="RdBu_r", vmin=-3, vmax=3, aspect="auto")
        for (i, j), v in np.ndenumerate(zmat):
            ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=9)
        ax.set_xticks(range(len(names)), names, rotation=20)
        ax.set_yticks(range(len(profiles)), [f"{r['name']} ({r['customers']})" for r in profiles])
        fig.colorbar(im, ax=ax, label="centroid z-score")
        ax.set_title("segment profiles: centroid in standard units")


def _standard_units(X: np.ndarray) -> np.ndarray:
    """k-means measures plain distances: in standard units dollars cannot drown out age."""
    return (X - X.mean(axis=0)) / X.std(axis=0)


def run(config: Config, ctx: RunContext) -> LabResult:
    X, names = _features(load("credit"), config.features)
    Z = _standard_units(X)
    scan = _scan_k(Z, config, ctx)
    choice, reason = _choose_k(scan, config.tolerance)
    k = choice["chosen_k"]
    labels, sil, sil_diff = _segment(Z, k, config)
    profiles = _profiles(X, names, labels, config.name_threshold)
    maps, pca_ratio = _maps(Z, config, ctx)

    _choose_k_figure(ctx, scan, choice["elbow_k"], k)
    _silhouette_figure(ctx, labels, sil, profiles, k)
    _segments_figure(ctx, labels, profiles, maps)
    _profiles_figure(ctx, profiles, names)

    metrics = {"n_customers": len(X), "n_features": len(names), **choice,
               "max_abs_silhouette_sample_diff": sil_diff, "pca_2d_variance_ratio": pca_ratio,
               "largest_segment": profiles[0]["name"]}  # fmt: skip
    notes = render_notes(NOTES, {**asdict(config), **metrics, "k_reason": reason})
    return LabResult(
        metrics=metrics,
        key_metric="ours_silhouette",
        library_metric="sklearn_silhouette",
        tables={"choose_k": scan, "segment_profiles": profiles},
        figures=ctx.figures,
        notes=notes + _segment_notes(profiles, names),
    )
