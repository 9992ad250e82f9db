"""Clustering from scratch: k-means (k-means++ seeding + Lloyd), DBSCAN, and agglomerative
clustering with single / complete / average / Ward linkage (Lance-Williams updates).

k-means minimises the inertia  sum_i ||x_i - mu_{c(i)}||^2  by alternating "assign each point
to its nearest centre" and "move each centre to the mean of its points". DBSCAN grows clusters
from core points (>= min_samples neighbours within eps) and leaves isolated points as noise
(-1). Agglomerative clustering starts from singletons and merges the closest pair of clusters
n - 1 times. Each model follows scikit-learn's API and reproduces its labels; the tests
compare with sklearn.cluster. Distances use ||a||^2 - 2 a.b + ||b||^2 (one BLAS matrix
product) on centred data; DBSCAN re-checks exactly the few pairs whose rounded distance lies
within round-off of eps.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def squared_distances(X: np.ndarray, C: np.ndarray, x_sq: np.ndarray | None = None) -> np.ndarray:
    """||x_i - c_j||^2 for X (n, d) and C (k, d) -> (n, k), by one matrix product:
    ||x||^2 - 2 x.c + ||c||^2 (clipped at 0 against round-off). x_sq: the (n,) row norms
    ||x_i||^2 if already known (they never change across iterations)."""
    D = X @ C.T
    D *= -2.0
    D += ((X * X).sum(axis=1) if x_sq is None else x_sq)[:, None]
    D += (C * C).sum(axis=1)[None, :]
    return np.maximum(D, 0.0, out=D)


def kmeans_plusplus(
    X: np.ndarray, n_clusters: int, rng: np.random.Generator, n_local_trials: int | None = None
) -> np.ndarray:
    """Greedy k-means++ seeding (as scikit-learn): the first centre is a random point; each
    next one is the best of 2 + ln(k) candidates drawn with probability D(x)^2 / sum D^2,
    "best" meaning the one that lowers the potential sum_i min_j ||x_i - c_j||^2 the most.

    X: (n, d). Returns the initial centres (n_clusters, d).
    """
    n = len(X)
    trials = n_local_trials or 2 + int(np.log(n_clusters))
    x_sq = (X * X).sum(axis=1)
    idx = [int(rng.integers(n))]
    closest = squared_distances(X, X[idx], x_sq)[:, 0]  # D(x)^2 to the nearest chosen centre
    for _ in range(1, n_clusters):
        cum = np.cumsum(closest)
        cand = np.searchsorted(cum, rng.uniform(size=trials) * cum[-1])
        cand = np.minimum(cand, n - 1)
        # Potential after adding each candidate: (n, trials) -> (trials,)
        d_new = np.minimum(closest[:, None], squared_distances(X, X[cand], x_sq))
        best = int(np.argmin(d_new.sum(axis=0)))
        idx.append(int(cand[best]))
        closest = d_new[:, best]
    return X[idx].copy()


def lloyd(
    X: np.ndarray, centers: np.ndarray, max_iter: int = 300, tol: float = 0.0
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Lloyd's iterations from the given centres (k, d), stopping like scikit-learn: when the
    labels stop changing, or when the summed squared centre shift is <= tol (absolute).

    An empty cluster is re-seeded with the point farthest from its centre. Returns
    (labels (n,), centres (k, d), inertia, iterations); the labels are those of the final
    centres.
    """
    k = len(centers)
    labels = np.full(len(X), -1)
    x_sq = (X * X).sum(axis=1)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (used after the loop)
        D = squared_distances(X, centers, x_sq)
        new_labels = D.argmin(axis=1)
        onehot = np.zeros((len(X), k))
        onehot[np.arange(len(X)), new_labels] = 1.0
        sums = onehot.T @ X  # per-cluster sums as one matrix product (np.add.at is slow)
        counts = onehot.sum(axis=0)
        empty = np.flatnonzero(counts == 0)
        if len(empty):  # steal the points worst served by their current centre
            far = np.argsort(-D[np.arange(len(X)), new_labels], kind="stable")[: len(empty)]
            for e, f in zip(empty, far):
                sums[new_labels[f]] -= X[f]
                counts[new_labels[f]] -= 1
                sums[e], counts[e] = X[f], 1.0
        new_centers = sums / counts[:, None]
        shift = float(((new_centers - centers) ** 2).sum())
        centers = new_centers
        if np.array_equal(new_labels, labels):
            labels = new_labels
            break  # strict convergence: the labels already match the centres
        labels = new_labels
        if shift <= tol:
            labels = squared_distances(X, centers, x_sq).argmin(axis=1)
            break
    else:
        labels = squared_distances(X, centers, x_sq).argmin(axis=1)
    inertia = float(((X - centers[labels]) ** 2).sum())
    return labels, centers, inertia, n_iter


class KMeans(TransformerMixin, ClusterMixin, BaseEstimator):
    """k-means clustering; keeps the best of n_init runs (lowest inertia).

    init: "k-means++", "random" (k distinct data points) or an array of centres (k, d).
    tol is relative, like scikit-learn's: the shift threshold is tol * mean feature variance.
    Fitted: cluster_centers_ (k, d), labels_ (n,), inertia_, n_iter_.
    """

    def __init__(
        self,
        n_clusters: int = 8,
        init: str | np.ndarray = "k-means++",
        n_init: int = 1,
        max_iter: int = 300,
        tol: float = 1e-4,
        random_state: int | None = None,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.random_state = random_state

    def fit(self, X, y=None) -> KMeans:
        """Run Lloyd from n_init seedings (one if init is an array) and keep the lowest inertia."""
        X = validate_data(self, X, dtype=np.float64)
        if not 1 <= self.n_clusters <= len(X):
            raise ValueError(f"n_clusters={self.n_clusters} must be in [1, n_samples={len(X)}]")
        rng = np.random.default_rng(self.random_state)
        tol = self.tol * float(X.var(axis=0).mean())
        given = not isinstance(self.init, str)
        best = None
        for _ in range(1 if given else self.n_init):
            if given:
                centers = np.array(self.init, dtype=np.float64)
                if centers.shape != (self.n_clusters, X.shape[1]):
                    raise ValueError(
                        f"init has shape {centers.shape}, expected "
                        f"({self.n_clusters}, {X.shape[1]})"
                    )
            elif self.init == "k-means++":
                centers = kmeans_plusplus(X, self.n_clusters, rng)
            elif self.init == "random":
                centers = X[rng.choice(len(X), self.n_clusters, replace=False)].copy()
            else:
                raise ValueError(
                    f"init must be 'k-means++', 'random' or an array, got {self.init!r}"
                )
            run = lloyd(X, centers, self.max_iter, tol)
            if best is None or run[2] < best[2]:
                best = run
        self.labels_, self.cluster_centers_, self.inertia_, self.n_iter_ = best
        return self

    def transform(self, X) -> np.ndarray:
        """Euclidean distance of every sample to every centre: (n, k)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.sqrt(squared_distances(X, self.cluster_centers_))

    def predict(self, X) -> np.ndarray:
        """Index of the nearest centre for every sample: (n,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return squared_distances(X, self.cluster_centers_).argmin(axis=1)

    def score(self, X, y=None) -> float:
        """Minus the inertia of X under the fitted centres (higher is better)."""
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return -float(squared_distances(X, self.cluster_centers_).min(axis=1).sum())


def radius_neighbors(X: np.ndarray, eps: float, chunk: int = 256) -> np.ndarray:
    """(n, n) bool matrix: ||x_i - x_j|| <= eps, built a block of rows at a time.

    The product form ||a||^2 - 2 a.b + ||b||^2 (on centred data) is off by ~1e-16 ||x||^2, so
    pairs that close to eps are settled with the exact sum of squared differences.
    """
    Xc = X - X.mean(axis=0)  # distances do not change; round-off shrinks with the norms
    x_sq = (Xc * Xc).sum(axis=1)
    eps2 = eps * eps
    slack = 1e-10 * (2.0 * x_sq.max() + eps2)
    near = np.empty((len(X), len(X)), dtype=bool)
    for start in range(0, len(X), chunk):  # blocks keep the temporaries small and cache-warm
        rows = slice(start, start + chunk)
        D2 = squared_distances(Xc[rows], Xc, x_sq[rows])
        np.less_equal(D2, eps2, out=near[rows])
        D2 -= eps2
        i, j = np.nonzero(np.abs(D2, out=D2) <= slack)
        near[i + start, j] = ((Xc[i + start] - Xc[j]) ** 2).sum(axis=1) <= eps2
    return near


def connected_components(adjacency: np.ndarray) -> np.ndarray:
    """Component id of every node of an undirected graph, (m, m) bool -> (m,) ints.

    Each node takes the smallest id among its neighbours, then jumps to its id's id (pointer
    jumping), until nothing changes. Ids end up as the smallest node index of each component,
    renumbered 0, 1, ... in that order (the order a scan over the nodes discovers them).
    """
    m = len(adjacency)
    ids = np.arange(m)
    while m:  # an empty graph (DBSCAN found no core point) has no components
        new = np.where(adjacency, ids[None, :], m).min(axis=1)
        new = np.minimum(new, ids)[np.minimum(new, ids)]
        if np.array_equal(new, ids):
            break
        ids = new
    return np.unique(ids, return_inverse=True)[1] if m else ids


class DBSCAN(ClusterMixin, BaseEstimator):
    """Density-based clustering; labels_ is -1 for noise.

    Core point: at least min_samples points (itself included) within distance eps. Clusters are
    the connected groups of core points that lie within eps of each other; a border point (not
    core, but within eps of a core point) joins the lowest-numbered cluster among its core
    neighbours - what scikit-learn's scan in index order gives. Needs the (n, n) distance matrix.
    Fitted: labels_, core_sample_indices_, components_ (the core samples).
    """

    def __init__(self, eps: float = 0.5, min_samples: int = 5):
        self.eps = eps
        self.min_samples = min_samples

    def fit(self, X, y=None) -> DBSCAN:
        """Neighbourhoods from the distance matrix, core points, their components, then borders."""
        X = validate_data(self, X, dtype=np.float64)
        if self.eps <= 0:
            raise ValueError(f"eps must be positive, got {self.eps}")
        near = radius_neighbors(X, self.eps)
        core = np.count_nonzero(near, axis=1) >= self.min_samples
        core_idx = np.flatnonzero(core)
        labels = np.full(len(X), -1)
        labels[core_idx] = connected_components(near[np.ix_(core_idx, core_idx)])
        border = np.flatnonzero(~core & near[:, core].any(axis=1))
        if len(border):
            # lowest cluster id among each border point's core neighbours
            cand = np.where(near[np.ix_(border, core_idx)], labels[core_idx][None, :], len(X))
            labels[border] = cand.min(axis=1)
        self.labels_, self.core_sample_indices_ = labels, core_idx
        self.components_ = X[core_idx].copy()
        return self


class AgglomerativeClustering(ClusterMixin, BaseEstimator):
    """Bottom-up hierarchical clustering on Euclidean distances.

    After merging clusters a and b, the distance to any other cluster k follows from the old
    ones (Lance-Williams), one vectorised row per merge:
      single   min(d_ak, d_bk)          complete  max(d_ak, d_bk)
      average  (n_a d_ak + n_b d_bk) / (n_a + n_b)
      ward     sqrt(((n_a+n_k) d_ak^2 + (n_b+n_k) d_bk^2 - n_k d_ab^2) / (n_a+n_b+n_k))
    Each row caches its nearest neighbour, so a merge only rescans rows whose neighbour moved.
    Fitted: labels_ (n_clusters groups), children_ (n-1, 2) and distances_ (n-1,) in
    scipy/scikit-learn convention (node n + s is the cluster made at merge s), n_leaves_.
    """

    def __init__(self, n_clusters: int = 2, linkage: str = "ward"):
        self.n_clusters = n_clusters
        self.linkage = linkage

    def fit(self, X, y=None) -> AgglomerativeClustering:
        """Build the full merge tree, reading the labels off after n - n_clusters merges."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if self.linkage not in ("single", "complete", "average", "ward"):
            raise ValueError(
                f"linkage must be single, complete, average or ward, got {self.linkage!r}"
            )
        n = len(X)
        if not 1 <= self.n_clusters <= n:
            raise ValueError(f"n_clusters={self.n_clusters} must be in [1, n_samples={n}]")
        Xc = X - X.mean(axis=0)
        D = np.sqrt(squared_distances(Xc, Xc))
        np.fill_diagonal(D, np.inf)
        size = np.ones(n)
        node = np.arange(n)  # tree node currently held by each row
        owner = np.arange(n)  # row holding each sample's cluster
        active = np.ones(n, dtype=bool)
        dead = np.zeros(n, dtype=bool)  # the complement of active, kept to avoid a negation
        nn = D.argmin(axis=1)
        nn_d = D[np.arange(n), nn]
        children, dists = np.zeros((n - 1, 2), dtype=np.intp), np.zeros(n - 1)
        self.labels_ = np.zeros(n, dtype=np.intp)
        for s in range(n - 1):
            if s == n - self.n_clusters:
                self.labels_ = np.unique(owner, return_inverse=True)[1]
            a = int(np.argmin(nn_d))
            b, d_ab = int(nn[a]), float(nn_d[a])
            children[s], dists[s] = sorted((node[a], node[b])), d_ab
            new = self._lance_williams(D[a], D[b], size[a], size[b], size, d_ab)
            active[b] = False
            new[dead] = np.inf  # rows of merged-away clusters stay at infinity
            new[a] = new[b] = np.inf
            D[a], D[:, a] = new, new
            D[:, b] = np.inf  # row b is never read again
            dead[b] = True
            size[a] += size[b]
            node[a], owner[owner == b] = n + s, a
            nn_d[b] = np.inf
            closer = new < nn_d  # rows whose nearest cluster is now the merged one
            nn[closer], nn_d[closer] = a, new[closer]
            moved = active & ((nn == a) | (nn == b))  # their cached neighbour changed
            moved[a] = True
            stale = np.flatnonzero(moved)
            nn[stale] = D[stale].argmin(axis=1)
            nn_d[stale] = D[stale, nn[stale]]
        if self.n_clusters == 1:
            self.labels_ = np.zeros(n, dtype=np.intp)
        self.children_, self.distances_ = children, dists
        self.n_leaves_, self.n_clusters_ = n, self.n_clusters
        return self

    def _lance_williams(
        self, d_a: np.ndarray, d_b: np.ndarray, n_a: float, n_b: float, n_k: np.ndarray, d_ab: float
    ) -> np.ndarray:
        """Distance from the merged cluster (a + b) to every cluster k: (n,)."""
        if self.linkage == "single":
            return np.minimum(d_a, d_b)
        if self.linkage == "complete":
            return np.maximum(d_a, d_b)
        if self.linkage == "average":
            return (n_a * d_a + n_b * d_b) / (n_a + n_b)
        # inf on removed rows gives inf - inf = nan there; the caller overwrites those entries.
        sq = (n_a + n_k) * (d_a * d_a)
        sq += (n_b + n_k) * (d_b * d_b)
        sq -= n_k * (d_ab * d_ab)
        sq /= n_a + n_b + n_k
        return np.sqrt(np.maximum(sq, 0.0, out=sq), out=sq)
