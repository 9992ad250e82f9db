"""Runner for clustering: k-means, DBSCAN, agglomerative (4 linkages) and a Gaussian mixture on
the standardised digits (k = 10), each beside scikit-learn on the same data and, where the
method has one, the same starting point. Generated 2-D blobs (as the lab asks) show how the
four families carve the same points differently."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from airoad.classic import clustering as ref
from airoad.classic.mixture import GaussianMixture
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, frame_xy, param, race, render_notes

LINKAGES = ("single", "complete", "average", "ward")


@dataclass(frozen=True)
class Config:
    n_clusters: int = param(10, ge=2, le=50)
    n_init: int = param(10, ge=1, le=100)  # k-means++ restarts, ours and sklearn's alike
    max_digits: int = param(1797, ge=200, le=1797)
    linkages: tuple[str, ...] = param(LINKAGES, choices=LINKAGES)
    dbscan_eps: float = param(4.0, gt=0.0, le=100.0)  # on standardised digits (64 dims)
    dbscan_min_samples: int = param(5, ge=1, le=100)
    gmm_dims: int = param(20, ge=1, le=64)  # the mixture runs on this many principal components
    elbow_k: tuple[int, ...] = param((2, 4, 6, 8, 10, 12, 15, 20), ge=1, le=100)
    seed: int = param(0, ge=0)


QUICK = {"max_digits": 600, "n_init": 3, "linkages": ("single", "ward"), "elbow_k": (5, 10, 15)}

FULL_DIGITS = 1797
NOTES = (
    "From the same k-means++ centres our Lloyd iterations give sklearn's partition (ARI "
    "{same_init_ari:.3f}) and inertia {same_init_inertia_ours:,.1f} vs "
    "{same_init_inertia_sklearn:,.1f}.",
    "Best of {n_init} k-means++ restarts on {n_digits} digits: inertia {ours_digits_inertia:,.0f} "
    "(sklearn {sklearn_digits_inertia:,.0f}){inertia_reference}.",
    "Every deterministic method (DBSCAN, the linkages, EM from a shared start) {same_start_verdict}: "
    "the lowest ARI between the two is {min_ari_vs_sklearn_same_start:.3f}.",
    "Closest to the true digit labels: {closest_method} (ARI {closest_ari:.3f}); single linkage "
    "chains almost everything into one cluster (ARI {single_ari_vs_digit:.3f}).",
    "DBSCAN at eps={dbscan_eps:g} calls {dbscan_noise} of {n_digits} digits noise: in 64 "
    "dimensions density is thin everywhere.",
)


def _digits(config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Standardised digits (a seeded subset of max_digits), their labels and the raw pixels."""
    from sklearn.preprocessing import StandardScaler

    raw, y = frame_xy(load("digits"))
    if config.max_digits < len(raw):
        keep = np.sort(
            np.random.default_rng(config.seed).permutation(len(raw))[: config.max_digits]
        )
        raw, y = raw[keep], y[keep]
    return StandardScaler().fit_transform(raw), y, raw


def _components(X: np.ndarray, dims: int) -> np.ndarray:
    """The first ``dims`` principal components: full covariances in 64 dims need heavy ridging."""
    _, _, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    return (X - X.mean(axis=0)) @ Vt[:dims].T


def _gmm_start(P: np.ndarray, k: int, seed: int) -> dict:
    """One shared EM start for both sides: a k-means partition of the components."""
    km0 = ref.KMeans(k, init=ref.kmeans_plusplus(P, k, np.random.default_rng(seed))).fit(P)
    ridge = 1e-3 * np.eye(P.shape[1])
    return dict(
        weights_init=np.bincount(km0.labels_, minlength=k) / len(P),
        means_init=km0.cluster_centers_,
        precisions_init=np.stack(
            [np.linalg.inv(np.cov(P[km0.labels_ == c].T, bias=True) + ridge) for c in range(k)]
        ),
    )


def _jobs(config: Config, X: np.ndarray) -> list[tuple]:
    """(method, statistic, ours, sklearn's, data): every pair is fitted on the same data."""
    from sklearn import cluster as sk
    from sklearn.mixture import GaussianMixture as SkGMM

    k, seed = config.n_clusters, config.seed
    eps, min_samples = config.dbscan_eps, config.dbscan_min_samples
    init = ref.kmeans_plusplus(X, k, np.random.default_rng(seed))
    P = _components(X, config.gmm_dims)
    em = dict(tol=1e-4, max_iter=300, reg_covar=1e-4, **_gmm_start(P, k, seed))
    return [
        (
            "k-means, same init",
            "inertia",
            ref.KMeans(k, init=init),
            sk.KMeans(k, init=init, n_init=1, algorithm="lloyd"),
            X,
        ),
        (
            f"k-means++ x{config.n_init}",
            "inertia",
            ref.KMeans(k, n_init=config.n_init, random_state=seed),
            sk.KMeans(k, n_init=config.n_init, random_state=seed),
            X,
        ),
        (
            f"DBSCAN eps={eps:g}",
            "clusters",
            ref.DBSCAN(eps, min_samples=min_samples),
            sk.DBSCAN(eps=eps, min_samples=min_samples),
            X,
        ),
        *[
            (
                f"agglomerative {link}",
                "top merge",
                ref.AgglomerativeClustering(k, linkage=link),
                sk.AgglomerativeClustering(k, linkage=link, compute_distances=True),
                X,
            )
            for link in config.linkages
        ],
        (
            f"GMM (EM) on {config.gmm_dims} PCs, same init",
            "mean loglik",
            GaussianMixture(k, **em),
            SkGMM(k, **em),
            P,
        ),
    ]


def _statistic(stat: str, ours, theirs, lab_o: np.ndarray, lab_l: np.ndarray) -> tuple:
    """The number each method is judged by, for ours and sklearn's fitted model."""
    if stat == "inertia":
        return ours.inertia_, theirs.inertia_
    if stat == "clusters":
        return lab_o.max() + 1, lab_l.max() + 1
    if stat == "top merge":  # height of the last merge of the full tree
        return ours.distances_[-1], np.max(theirs.distances_)
    return ours.lower_bound_, theirs.lower_bound_


def _compare(
    config: Config, X: np.ndarray, y: np.ndarray, ctx: RunContext
) -> tuple[list[dict], dict]:
    """Fit every method, ours and sklearn's; the statistic, agreement and fit seconds."""
    from sklearn.metrics import adjusted_rand_score as ari

    rows, fitted = [], {}
    for name, stat, ours, theirs, data in ctx.track(_jobs(config, X), "clustering digits"):
        r = race(partial(ours.fit, data), partial(theirs.fit, data))
        if stat == "mean loglik":
            lab_o, lab_l = ours.predict(data), theirs.predict(data)
        else:
            lab_o, lab_l = ours.labels_, theirs.labels_
        s_o, s_l = _statistic(stat, ours, theirs, lab_o, lab_l)
        fitted[name] = ours
        rows.append(
            {
                "method": name,
                "statistic": stat,
                "ours": float(s_o),
                "sklearn": float(s_l),
                "ari_ours_vs_sklearn": float(ari(lab_o, lab_l)),
                "ours_ari_vs_digit": float(ari(y, lab_o)),
                "sklearn_ari_vs_digit": float(ari(y, lab_l)),
                "noise_points": int((lab_o == -1).sum()),
                "ours_s": r["ours_seconds"],
                "sklearn_s": r["library_seconds"],
            }
        )
    return rows, fitted


def _summary(rows: list[dict], n_digits: int) -> dict:
    """The headline (best of the k-means++ restarts) and what the notes quote."""
    same, plusplus, dbscan, gmm = rows[0], rows[1], rows[2], rows[-1]
    ward = next((r for r in rows if r["method"] == "agglomerative ward"), rows[-2])
    min_same_start = min(r["ari_ours_vs_sklearn"] for r in rows if r is not plusplus)
    return {
        "n_digits": n_digits,
        "ours_digits_inertia": plusplus["ours"],
        "sklearn_digits_inertia": plusplus["sklearn"],
        "same_init_ari": same["ari_ours_vs_sklearn"],
        "same_init_inertia_ours": same["ours"],
        "same_init_inertia_sklearn": same["sklearn"],
        "kmeans_ari_vs_digit": plusplus["ours_ari_vs_digit"],
        "dbscan_ari_vs_sklearn": dbscan["ari_ours_vs_sklearn"],
        "dbscan_noise": dbscan["noise_points"],
        "ward_ari_vs_sklearn": ward["ari_ours_vs_sklearn"],
        "ward_ari_vs_digit": ward["ours_ari_vs_digit"],
        "gmm_loglik_ours": gmm["ours"],
        "gmm_loglik_sklearn": gmm["sklearn"],
        "gmm_ari_vs_sklearn": gmm["ari_ours_vs_sklearn"],
        "min_ari_vs_sklearn_same_start": min_same_start,
        "same_start_verdict": "agrees with sklearn"
        if min_same_start == 1.0
        else "does not always agree with sklearn",
    }


def _note_facts(rows: list[dict], n_digits: int) -> dict:
    """Values only the notes quote: the method closest to the digits, single linkage's ARI, and
    the published inertia, which is quoted only for a run on all 1797 digits."""
    closest = max(rows, key=lambda r: r["ours_ari_vs_digit"])
    single = next((r for r in rows if "single" in r["method"]), None)
    return {
        "closest_method": closest["method"],
        "closest_ari": closest["ours_ari_vs_digit"],
        "single_ari_vs_digit": single["ours_ari_vs_digit"] if single else float("nan"),
        "inertia_reference": "; the often-quoted figure for all 1797 digits is about 69,400"
        if n_digits == FULL_DIGITS
        else "; the often-quoted 69,400 holds for all 1797 digits, not this subset",
    }


def _elbow(config: Config, X: np.ndarray, ctx: RunContext) -> list[dict]:
    from sklearn import cluster as sk

    rows = []
    for k in ctx.track(config.elbow_k, "elbow"):
        ours = ref.KMeans(k, n_init=config.n_init, random_state=config.seed).fit(X)
        theirs = sk.KMeans(k, n_init=config.n_init, random_state=config.seed).fit(X)
        rows.append({"k": k, "ours_inertia": ours.inertia_, "sklearn_inertia": theirs.inertia_})
    return rows


def _centroid_figure(raw: np.ndarray, kmeans, config: Config, ctx: RunContext) -> None:
    """Cluster centres back in pixel space: the mean image of each k-means cluster."""
    n = config.n_clusters
    with figure(ctx, "digit_centroids", 1, n, figsize=(1.3 * n, 1.8)) as (fig, axes):
        for c, ax in enumerate(np.atleast_1d(axes)):
            members = raw[kmeans.labels_ == c]
            ax.imshow(members.mean(axis=0).reshape(8, 8), cmap="gray_r")
            ax.set(title=f"{len(members)}", xticks=[], yticks=[])
        fig.suptitle("k-means on digits: the mean image of each cluster (size above)")


def _elbow_figure(elbow: list[dict], ctx: RunContext) -> None:
    ks = [r["k"] for r in elbow]
    with figure(ctx, "elbow", figsize=(6, 4)) as (_, ax):
        ax.plot(ks, [r["ours_inertia"] for r in elbow], "o-", lw=3, alpha=0.5, label="ours")
        ax.plot(ks, [r["sklearn_inertia"] for r in elbow], "k.--", label="sklearn")
        ax.set(xlabel="k", ylabel="inertia", title="elbow curve, standardised digits")
        ax.legend()


def _blobs_figure(config: Config, ctx: RunContext) -> None:
    """Generated blobs of unequal spread plus a stretched pair: where each family disagrees."""
    from sklearn.datasets import make_blobs

    Xb, _ = make_blobs(
        n_samples=450,
        centers=[(-6, 0), (0, 0), (5, 4)],
        cluster_std=[0.6, 1.6, 0.9],
        random_state=config.seed,
    )
    Xb[Xb[:, 0] > 3] = Xb[Xb[:, 0] > 3] @ np.array([[1.0, 0.0], [1.2, 0.4]])
    models = [
        ("k-means", ref.KMeans(3, n_init=5, random_state=config.seed)),
        ("DBSCAN eps=0.7", ref.DBSCAN(eps=0.7, min_samples=6)),
        ("agglomerative single", ref.AgglomerativeClustering(3, linkage="single")),
        ("agglomerative ward", ref.AgglomerativeClustering(3, linkage="ward")),
        ("Gaussian mixture", GaussianMixture(3, random_state=config.seed)),
    ]
    n = len(models)
    with figure(ctx, "blobs_2d", 1, n, figsize=(3.3 * n, 3.3)) as (fig, axes):
        for ax, (name, model) in zip(axes, models):
            model.fit(Xb)
            labels = model.predict(Xb) if name == "Gaussian mixture" else model.labels_
            noise = labels < 0
            ax.scatter(*Xb[noise].T, c="lightgrey", s=6)
            ax.scatter(*Xb[~noise].T, c=labels[~noise], cmap="tab10", s=6, vmin=0, vmax=9)
            ax.set(title=name, xticks=[], yticks=[])
        fig.suptitle("generated blobs: grey = DBSCAN noise")


def run(config: Config, ctx: RunContext) -> LabResult:
    X, y, raw = _digits(config)
    rows, fitted = _compare(config, X, y, ctx)
    elbow = _elbow(config, X, ctx)
    metrics = _summary(rows, len(X))

    _centroid_figure(raw, fitted[rows[1]["method"]], config, ctx)  # the k-means++ model
    _elbow_figure(elbow, ctx)
    _blobs_figure(config, ctx)

    values = {**asdict(config), **metrics, **_note_facts(rows, len(X))}
    return LabResult(
        metrics=metrics,
        key_metric="ours_digits_inertia",
        library_metric="sklearn_digits_inertia",
        tables={"methods": rows, "elbow": elbow},
        figures=ctx.figures,
        notes=render_notes(NOTES, values),
    )
