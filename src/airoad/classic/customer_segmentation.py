"""Customer segmentation tools from scratch: the silhouette, an elbow finder, a rule that picks
the number of clusters, and names for the segments read off their centroids.

Silhouette of sample i in cluster A (Rousseeuw 1987):

    a(i) = mean distance from i to the OTHER members of A
    b(i) = min over clusters B != A of the mean distance from i to the members of B
    s(i) = (b(i) - a(i)) / max(a(i), b(i))          (s = 0 when A has one member)

s near 1: i sits deep inside its cluster; near 0: on a border; negative: closer to another
cluster. The silhouette score is the mean of s(i).

The elbow of an inertia curve is the k farthest from the straight line (chord) joining the
curve's first and last points, after scaling both axes to [0, 1] (the "kneedle" idea).

K-means itself comes from scikit-learn here; the `clustering` lab writes its own.
"""

from __future__ import annotations

import numpy as np


def pairwise_distances(X: np.ndarray) -> np.ndarray:
    """Euclidean distances between all rows of X (n, d): an (n, n) symmetric array, zero diagonal.

    Uses ``|x - z|^2 = |x|^2 + |z|^2 - 2 x.z`` (one matrix product), clipped at 0 before the
    square root because round-off can make tiny squared distances slightly negative.
    """
    X = np.asarray(X, dtype=float)
    sq = np.einsum("ij,ij->i", X, X)
    d2 = sq[:, None] + sq[None, :] - 2.0 * X @ X.T
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(np.clip(d2, 0.0, None))


def silhouette_samples(X: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Silhouette s(i) of every sample: (n,) floats in [-1, 1].

    X: (n, d) features; labels: (n,) cluster labels of any type. Needs 2 <= n_clusters <= n - 1
    (ValueError otherwise). Vectorised: with D the (n, n) distances and M the (n, k) one-hot
    label matrix, ``D @ M`` holds every sample's summed distance to every cluster.
    """
    X = np.asarray(X, dtype=float)
    _, idx = np.unique(np.asarray(labels), return_inverse=True)
    n, k = idx.size, int(idx.max()) + 1 if idx.size else 0
    if X.ndim != 2 or X.shape[0] != n:
        raise ValueError(f"X must be (n_samples, n_features) with n_samples = len(labels) = {n}")
    if not 2 <= k <= n - 1:
        raise ValueError(
            f"silhouette needs 2 <= n_clusters <= n_samples - 1, got {k} clusters for {n} samples"
        )
    one_hot = np.zeros((n, k))
    one_hot[np.arange(n), idx] = 1.0
    sums = pairwise_distances(X) @ one_hot  # (n, k) summed distance to each cluster
    sizes = one_hot.sum(axis=0)
    own = sizes[idx]
    # Distance to itself is 0, so divide the own-cluster sum by (size - 1) to skip it.
    a = sums[np.arange(n), idx] / np.maximum(own - 1, 1)
    means = sums / sizes
    means[np.arange(n), idx] = np.inf  # b looks at the other clusters only
    b = means.min(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        s = (b - a) / np.maximum(a, b)
    return np.where(own > 1, np.nan_to_num(s), 0.0)


def silhouette_score(X: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette over all samples (a float in [-1, 1]); higher = better separated."""
    return float(np.mean(silhouette_samples(X, labels)))


def elbow_index(ks: np.ndarray, inertias: np.ndarray) -> int:
    """Index (into ks) of the elbow of a decreasing inertia curve.

    Scale ks and inertias to [0, 1], draw the chord from the first point to the last, and
    return the index of the point farthest from it (perpendicular distance); ties -> the
    smaller k. ks: (m,) increasing, m >= 3; inertias: (m,).
    """
    x = np.asarray(ks, dtype=float)
    y = np.asarray(inertias, dtype=float)
    x = (x - x[0]) / (x[-1] - x[0])
    y = (y - y.min()) / (y.max() - y.min())
    # The chord runs from (0, y0) to (1, y_last); distance of (x, y) to it, up to a constant.
    dx, dy = 1.0, y[-1] - y[0]
    dist = np.abs(dy * x - dx * (y - y[0])) / np.hypot(dx, dy)
    return int(np.argmax(dist))


def choose_k(
    ks: np.ndarray, inertias: np.ndarray, silhouettes: np.ndarray, tolerance: float = 0.02
) -> tuple[int, str]:
    """Pick the number of clusters from the elbow and the silhouette; return (k, reason).

    Rule: take the elbow k when its silhouette is within `tolerance` of the best silhouette
    (the elbow is the cheapest k that explains most of the variance); otherwise take the k
    with the best silhouette. The reason is a short sentence with the numbers behind it.
    """
    ks = np.asarray(ks)
    sil = np.asarray(silhouettes, dtype=float)
    e, best = elbow_index(ks, inertias), int(np.argmax(sil))
    if sil[e] >= sil[best] - tolerance:
        return int(ks[e]), (
            f"elbow at k={ks[e]} (silhouette {sil[e]:.3f}) is within {tolerance} "
            f"of the best silhouette {sil[best]:.3f} (k={ks[best]})"
        )
    return int(ks[best]), (
        f"elbow at k={ks[e]} has silhouette {sil[e]:.3f}, more than {tolerance} "
        f"below the best {sil[best]:.3f}, so k={ks[best]}"
    )


def centroid_zscores(X: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(segments, z): each segment's mean of every feature in standard units of the whole data.

    X: (n, d) features in original units; labels: (n,). Returns the sorted unique labels
    (k,) and z (k, d) with ``z[s, j] = (mean of feature j in segment s - mean_j) / std_j``
    (std with ddof=0; a constant feature gets z = 0).
    """
    X = np.asarray(X, dtype=float)
    segments, idx = np.unique(np.asarray(labels), return_inverse=True)
    one_hot = np.zeros((idx.size, segments.size))
    one_hot[np.arange(idx.size), idx] = 1.0
    centroids = (one_hot.T @ X) / one_hot.sum(axis=0)[:, None]
    std = X.std(axis=0)
    constant = X.min(axis=0) == X.max(axis=0)  # round-off can give such a column a tiny std
    z = (centroids - X.mean(axis=0)) / np.where(constant, 1.0, std)
    return segments, np.where(constant, 0.0, z)


def name_segments(
    z: np.ndarray, feature_names: list[str], threshold: float = 0.5, max_terms: int = 2
) -> list[str]:
    """A short name per segment built from its centroid z-scores, e.g. "high income, low age".

    z: (k, d) as from centroid_zscores. For each segment, take the features with
    |z| >= threshold, strongest first, at most max_terms of them, each written "high <name>"
    (z > 0) or "low <name>" (z < 0); names are lower-cased. No feature that far from the mean
    gives "average". If two segments get the same name, both are extended with further
    features (strongest first, any |z|) until they differ.
    """
    z = np.asarray(z, dtype=float)
    order = np.argsort(-np.abs(z), axis=1, kind="stable")  # strongest feature first, per segment

    def words(s: int, n_terms: int, strict: bool) -> str:
        picked = [j for j in order[s] if not strict or abs(z[s, j]) >= threshold][:n_terms]
        if not picked:
            return "average"
        return ", ".join(
            f"{'high' if z[s, j] > 0 else 'low'} {feature_names[j].lower()}" for j in picked
        )

    names = [words(s, max_terms, True) for s in range(len(z))]
    # From max_terms + 1 terms, or from all d features when there are no more than max_terms.
    for n_terms in range(min(max_terms + 1, z.shape[1]), z.shape[1] + 1):
        dupes = {nm for nm in names if names.count(nm) > 1}
        if not dupes:
            break
        names = [words(s, n_terms, False) if nm in dupes else nm for s, nm in enumerate(names)]
    return names
