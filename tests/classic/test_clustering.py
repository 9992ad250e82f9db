"""Grader for the clustering lab: k-means, DBSCAN and agglomerative clustering vs sklearn.cluster."""

from __future__ import annotations

import numpy as np
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.cluster.hierarchy import linkage
from sklearn import cluster as sk
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.preprocessing import StandardScaler

REFERENCE = "airoad.classic.clustering"


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=400, centers=4, cluster_std=[1.0, 1.5, 0.6, 1.2], random_state=0)
    return X, y


@pytest.fixture(scope="module")
def digits():
    return StandardScaler().fit_transform(load_digits().data)


def test_squared_distances(impl):
    """squared_distances(X, C) is the (n, k) matrix of ||x_i - c_j||^2."""
    rng = np.random.default_rng(0)
    X, C = rng.normal(size=(30, 5)), rng.normal(size=(4, 5))
    D = impl.squared_distances(X, C)
    assert D.shape == (30, 4), f"squared_distances returned {D.shape}, expected (n, k)"
    np.testing.assert_allclose(
        D, ((X[:, None, :] - C[None, :, :]) ** 2).sum(-1), rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("which", ["blobs", "digits"])
def test_lloyd_matches_sklearn_from_same_init(impl, which, blobs, digits):
    """KMeans(init=centres) gives sklearn's labels (ARI 1), inertia and centres from the same start."""
    X, k = (blobs[0], 4) if which == "blobs" else (digits, 10)
    init = X[np.random.default_rng(1).choice(len(X), k, replace=False)]
    ours = impl.KMeans(k, init=init).fit(X)
    theirs = sk.KMeans(k, init=init, n_init=1, algorithm="lloyd").fit(X)
    assert ours.labels_.shape == (len(X),), f"labels_ has shape {ours.labels_.shape}, expected (n,)"
    assert adjusted_rand_score(ours.labels_, theirs.labels_) == 1.0, "labels differ from sklearn's"
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9), (
        "inertia differs from sklearn's"
    )
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, atol=1e-8)
    assert ours.n_iter_ == theirs.n_iter_, (
        f"{ours.n_iter_} Lloyd iterations, sklearn used {theirs.n_iter_}"
    )
    np.testing.assert_array_equal(ours.predict(X), ours.labels_)
    np.testing.assert_allclose(ours.transform(X[:5]), theirs.transform(X[:5]), atol=1e-8)
    assert ours.score(X[:50]) == pytest.approx(theirs.score(X[:50]), rel=1e-9), (
        "score(X) must be minus the inertia of X under the fitted centres, like sklearn's"
    )


@pytest.mark.parametrize("max_iter", [1, 2])
def test_lloyd_cut_short_by_max_iter(impl, blobs, max_iter):
    """When max_iter stops Lloyd early, labels_ are re-assigned to the last centres (sklearn)."""
    X, _ = blobs
    init = X[np.random.default_rng(1).choice(len(X), 4, replace=False)]
    ours = impl.KMeans(4, init=init, max_iter=max_iter).fit(X)
    theirs = sk.KMeans(4, init=init, n_init=1, max_iter=max_iter, algorithm="lloyd").fit(X)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_, err_msg="labels differ")
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, atol=1e-8)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)
    assert ours.n_iter_ == theirs.n_iter_ == max_iter
    labels, centers, inertia, n_iter = impl.lloyd(X, init, max_iter=0)
    assert n_iter == 0, f"lloyd(max_iter=0) ran {n_iter} iterations"
    np.testing.assert_array_equal(centers, init, err_msg="max_iter=0 must keep the given centres")
    np.testing.assert_array_equal(labels, impl.squared_distances(X, init).argmin(axis=1))
    assert inertia == pytest.approx(impl.squared_distances(X, init).min(axis=1).sum(), rel=1e-9)


def test_kmeans_random_init(impl, blobs):
    """init="random" reaches sklearn's inertia on blobs; an unknown init raises ValueError."""
    X, _ = blobs
    ours = impl.KMeans(4, init="random", n_init=3, random_state=0).fit(X)
    theirs = sk.KMeans(4, init="random", n_init=3, random_state=0).fit(X)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=0.01)
    with pytest.raises(ValueError):
        impl.KMeans(4, init="farthest").fit(X)


def test_kmeans_plusplus_seeding(impl, blobs):
    """kmeans_plusplus returns k distinct data points, is seeded, and beats uniform seeding."""
    X, _ = blobs
    c1 = impl.kmeans_plusplus(X, 4, np.random.default_rng(5))
    assert c1.shape == (4, 2), f"kmeans_plusplus returned {c1.shape}, expected (n_clusters, d)"
    assert all((np.abs(X - c).sum(axis=1) == 0).any() for c in c1), "seeds must be data points"
    assert len(np.unique(c1, axis=0)) == 4, "seeds must be distinct"
    np.testing.assert_array_equal(c1, impl.kmeans_plusplus(X, 4, np.random.default_rng(5)))

    def potential(C):
        return impl.squared_distances(X, C).min(axis=1).sum()

    seeds = range(20)
    pp = np.mean([potential(impl.kmeans_plusplus(X, 4, np.random.default_rng(s))) for s in seeds])
    uni = np.mean(
        [potential(X[np.random.default_rng(s).choice(len(X), 4, replace=False)]) for s in seeds]
    )
    lib = np.mean([potential(sk.kmeans_plusplus(X, 4, random_state=s)[0]) for s in seeds])
    assert pp < 0.8 * uni, (
        f"k-means++ potential {pp:.0f} is not clearly below uniform seeding's {uni:.0f}"
    )
    assert pp == pytest.approx(lib, rel=0.15), (
        f"mean k-means++ potential {pp:.0f} vs sklearn's {lib:.0f}"
    )


def test_kmeans_digits_inertia_near_published(impl, digits):
    """k-means++ with 4 restarts on scaled digits (k=10) reaches sklearn's inertia (about 69,400)."""
    ours = impl.KMeans(10, n_init=4, random_state=0).fit(digits)
    theirs = sk.KMeans(10, n_init=4, random_state=0).fit(digits)
    assert ours.inertia_ < 70_500, f"inertia {ours.inertia_:.0f} is far above the usual ~69,400"
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=0.01)


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(2, 6))
def test_lloyd_property_same_as_sklearn(impl, seed, k):
    """On random blobs, Lloyd from any shared start ends in sklearn's partition and inertia."""
    X, _ = make_blobs(n_samples=120, centers=k, cluster_std=2.0, random_state=seed)
    init = X[np.random.default_rng(seed).choice(len(X), k, replace=False)]
    ours = impl.KMeans(k, init=init).fit(X)
    theirs = sk.KMeans(k, init=init, n_init=1).fit(X)
    assert adjusted_rand_score(ours.labels_, theirs.labels_) == 1.0
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=1e-9)


@pytest.mark.parametrize("eps,min_samples", [(0.6, 5), (0.35, 8), (1.0, 15)])
def test_dbscan_matches_sklearn_on_blobs(impl, blobs, eps, min_samples):
    """DBSCAN labels (noise = -1) and core samples are identical to sklearn's."""
    X, _ = blobs
    ours = impl.DBSCAN(eps=eps, min_samples=min_samples).fit(X)
    theirs = sk.DBSCAN(eps=eps, min_samples=min_samples).fit(X)
    np.testing.assert_array_equal(
        ours.core_sample_indices_, theirs.core_sample_indices_, err_msg="core points differ"
    )
    np.testing.assert_array_equal(
        ours.labels_,
        theirs.labels_,
        err_msg="labels differ (clusters are numbered in order of first core point)",
    )


def test_dbscan_digits_and_border_points(impl, digits):
    """On scaled digits DBSCAN matches sklearn exactly, border points included."""
    ours = impl.DBSCAN(eps=4.0, min_samples=5).fit(digits)
    theirs = sk.DBSCAN(eps=4.0, min_samples=5).fit(digits)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    assert (ours.labels_ == -1).any() and ours.labels_.max() > 5


def test_dbscan_pairs_at_exactly_eps(impl):
    """Pairs at exactly eps are neighbours, even far from the origin (re-check near-eps pairs)."""
    P = 1000.0 + np.random.default_rng(0).integers(0, 5, (30, 2)) * 0.1  # grid step = eps
    X = np.vstack([P, -P])
    exact = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1) <= 0.1**2
    near = impl.radius_neighbors(X, 0.1)
    assert near.shape == exact.shape and near.dtype == bool, "radius_neighbors returns (n, n) bool"
    assert (near != exact).sum() == 0, f"{(near != exact).sum()} pairs misjudged at distance eps"
    ours = impl.DBSCAN(eps=0.1, min_samples=3).fit(X)
    np.testing.assert_array_equal(ours.labels_, sk.DBSCAN(eps=0.1, min_samples=3).fit(X).labels_)


def test_connected_components(impl):
    """connected_components numbers components by their smallest node, in that order."""
    A = np.zeros((6, 6), dtype=bool)
    for i, j in [(0, 3), (3, 5), (1, 4)]:
        A[i, j] = A[j, i] = True
    np.fill_diagonal(A, True)
    np.testing.assert_array_equal(impl.connected_components(A), [0, 1, 2, 0, 1, 0])


@pytest.mark.parametrize("link", ["single", "complete", "average", "ward"])
def test_agglomerative_matches_sklearn_and_scipy(impl, blobs, link):
    """Agglomerative clustering: sklearn's labels (ARI 1) and scipy's merge heights and tree."""
    X = blobs[0][:250]
    ours = impl.AgglomerativeClustering(n_clusters=4, linkage=link).fit(X)
    theirs = sk.AgglomerativeClustering(n_clusters=4, linkage=link).fit(X)
    assert adjusted_rand_score(ours.labels_, theirs.labels_) == 1.0, f"{link} labels differ"
    assert len(np.unique(ours.labels_)) == 4
    Z = linkage(X, method=link)
    assert ours.children_.shape == (len(X) - 1, 2), "children_ must be (n_samples - 1, 2)"
    np.testing.assert_allclose(
        ours.distances_,
        Z[:, 2],
        rtol=1e-7,
        atol=1e-9,
        err_msg=f"{link} merge distances differ from scipy's linkage",
    )
    np.testing.assert_array_equal(
        np.sort(ours.children_, axis=1), np.sort(Z[:, :2].astype(int), axis=1)
    )


def test_agglomerative_ward_on_digits(impl, digits):
    """Ward on scaled digits (1797 points) gives sklearn's 10 clusters exactly."""
    ours = impl.AgglomerativeClustering(n_clusters=10, linkage="ward").fit(digits)
    theirs = sk.AgglomerativeClustering(n_clusters=10, linkage="ward").fit(digits)
    assert adjusted_rand_score(ours.labels_, theirs.labels_) == 1.0


def test_estimator_api(impl):
    """KMeans, DBSCAN and AgglomerativeClustering follow the scikit-learn estimator API."""
    X, _ = load_iris(return_X_y=True)
    check_estimator_api(impl.KMeans(3, random_state=0), X, None, {"n_clusters": [2, 3]})
    check_estimator_api(impl.DBSCAN(eps=0.8), X, None, {"eps": [0.5, 0.8]})
    check_estimator_api(impl.AgglomerativeClustering(3), X, None, {"n_clusters": [2, 3]})
    labels = impl.KMeans(3, random_state=0).fit_predict(X)
    assert labels.shape == (150,) and set(labels) == {0, 1, 2}
