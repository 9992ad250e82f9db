"""Grader for customer-segmentation: distances, the silhouette (vs scikit-learn's), the elbow
finder, the rule that picks k, centroid z-scores and segment names."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import cdist
from sklearn.cluster import KMeans
from sklearn.datasets import make_blobs
from sklearn.metrics import silhouette_samples, silhouette_score

from airoad.data import load

REFERENCE = "airoad.classic.customer_segmentation"

FAST = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def credit_z() -> np.ndarray:
    X = load("credit")[["Income", "Limit", "Balance", "Age"]].to_numpy(float)
    return (X - X.mean(axis=0)) / X.std(axis=0)


# ---------------------------------------------------------------- silhouette


def test_pairwise_distances_match_scipy(impl):
    """pairwise_distances equals scipy's cdist(X, X), with an exact zero diagonal."""
    X = np.random.default_rng(0).normal(size=(30, 4)) * [1, 10, 100, 0.1]
    D = np.asarray(impl.pairwise_distances(X))
    assert D.shape == (30, 30), f"got shape {D.shape}, expected (n, n)"
    np.testing.assert_allclose(
        D, cdist(X, X), atol=1e-9, err_msg="distances differ from scipy's cdist"
    )
    assert np.all(np.diag(D) == 0.0), "the distance of a point to itself must be exactly 0"


def test_silhouette_matches_sklearn_on_blobs(impl):
    """silhouette_samples and silhouette_score equal scikit-learn's on k-means of 4 blobs."""
    X, _ = make_blobs(n_samples=200, centers=4, cluster_std=1.5, random_state=1)
    labels = KMeans(4, n_init=3, random_state=0).fit_predict(X)
    s = np.asarray(impl.silhouette_samples(X, labels))
    assert s.shape == (200,), f"silhouette_samples returned {s.shape}, expected (n_samples,)"
    np.testing.assert_allclose(
        s, silhouette_samples(X, labels), atol=1e-10, err_msg="per-sample silhouettes differ"
    )
    np.testing.assert_allclose(
        impl.silhouette_score(X, labels),
        silhouette_score(X, labels),
        atol=1e-12,
        err_msg="silhouette_score differs from sklearn's",
    )


def test_silhouette_matches_sklearn_on_credit(impl, credit_z):
    """On the standardised Credit customers our silhouette equals sklearn's for k = 2..5."""
    for k in range(2, 6):
        labels = KMeans(k, n_init=2, random_state=0).fit_predict(credit_z)
        np.testing.assert_allclose(
            impl.silhouette_score(credit_z, labels),
            silhouette_score(credit_z, labels),
            atol=1e-12,
            err_msg=f"silhouette differs at k={k}",
        )


@FAST
@given(n=st.integers(4, 40), k=st.integers(2, 6), seed=st.integers(0, 10_000))
def test_silhouette_random_labels_and_singletons(impl, n, k, seed):
    """Random (string) labels, singleton clusters included (s = 0 there), match sklearn."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    labels = np.array(list("abcdef"))[rng.integers(0, min(k, n - 1), size=n)]
    if len(np.unique(labels)) < 2:
        labels[0] = "z" if labels[0] != "z" else "y"
    s = np.asarray(impl.silhouette_samples(X, labels))
    np.testing.assert_allclose(
        s, silhouette_samples(X, labels), atol=1e-10, err_msg="silhouettes differ from sklearn"
    )


def test_silhouette_rejects_one_cluster(impl):
    """A single cluster (or one cluster per sample) has no silhouette: ValueError."""
    X = np.random.default_rng(0).normal(size=(10, 2))
    with pytest.raises(ValueError):
        impl.silhouette_samples(X, np.zeros(10))
    with pytest.raises(ValueError):
        impl.silhouette_samples(X, np.arange(10))


# ---------------------------------------------------------------- choosing k


def test_elbow_of_a_sharp_corner(impl):
    """A curve that falls steeply to k=4 then flattens has its elbow at k=4, at any scale."""
    ks = np.arange(1, 9)
    inertia = np.array([100.0, 70, 40, 10, 9, 8, 7, 6])
    assert impl.elbow_index(ks, inertia) == 3, "expected the elbow at index 3 (k=4)"
    assert impl.elbow_index(ks, inertia * 1e6) == 3, (
        "the elbow must not depend on the units of inertia"
    )
    assert impl.elbow_index(ks + 10, inertia) == 3, "the elbow must not depend on where k starts"


def test_elbow_above_the_chord(impl):
    """Points above the chord count by their distance too (|distance|, whatever its side)."""
    inertia = np.array([100.0, 99, 98, 97, 30, 25, 22, 20])  # 1 - x - y: -0.39 at k=4, 0.30 at k=5
    assert impl.elbow_index(np.arange(1, 9), inertia) == 3, "expected the elbow at index 3 (k=4)"


@FAST
@given(drops=st.lists(st.floats(0.1, 100.0), min_size=3, max_size=10))
def test_elbow_is_farthest_from_the_chord(impl, drops):
    """elbow_index returns the point of largest normalised distance to the first-last chord."""
    inertia = 1000.0 - np.cumsum(np.r_[0.0, sorted(drops, reverse=True)])
    ks = np.arange(2, 2 + inertia.size)
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (inertia - inertia.min()) / (inertia.max() - inertia.min())
    dist = np.abs((y[-1] - y[0]) * x - (y - y[0])) / np.hypot(1.0, y[-1] - y[0])
    got = impl.elbow_index(ks, inertia)
    assert dist[got] >= dist.max() - 1e-12, f"index {got} is not the farthest point from the chord"


def test_choose_k_rule(impl):
    """choose_k takes the elbow if its silhouette is within tolerance of the best, else the best."""
    ks = np.arange(2, 9)
    inertia = np.array([100.0, 60, 25, 20, 17, 15, 14])  # elbow at k=4
    k, reason = impl.choose_k(ks, inertia, [0.30, 0.50, 0.49, 0.40, 0.3, 0.3, 0.3], tolerance=0.02)
    assert k == 4 and isinstance(reason, str), (
        f"elbow k=4 is within 0.02 of the best: expected 4, got {k}"
    )
    k, _ = impl.choose_k(ks, inertia, [0.30, 0.50, 0.40, 0.40, 0.3, 0.3, 0.3], tolerance=0.02)
    assert k == 3, f"elbow silhouette 0.40 is 0.10 below the best (k=3): expected 3, got {k}"
    k, _ = impl.choose_k(ks, inertia, [0.3, 0.5, 0.25, 0.2, 0.1, 0.1, 0.1], tolerance=0.25)
    assert k == 4, f"an elbow exactly `tolerance` below the best is within it: expected 4, got {k}"


# ---------------------------------------------------------------- profiles and names


def test_centroid_zscores_match_pandas(impl):
    """centroid_zscores equals (groupby mean - mean) / std(ddof=0) from pandas."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 4)) * [1, 10, 1000, 0.01] + [0, 5, 50, 0]
    X[:, 0] = 0.1  # a constant feature gets z = 0 exactly, whatever the round-off of its mean
    labels = rng.choice(["b", "a", "c"], size=50)
    segments, z = impl.centroid_zscores(X, labels)
    df = pd.DataFrame(X)
    want = (df.groupby(labels).mean() - df.mean()) / df.std(ddof=0)
    assert list(segments) == ["a", "b", "c"], (
        f"segments must be the sorted labels, got {list(segments)}"
    )
    np.testing.assert_allclose(
        np.asarray(z)[:, 1:], want.to_numpy()[:, 1:], atol=1e-12, err_msg="z-scores differ"
    )
    assert np.all(np.asarray(z)[:, 0] == 0.0), "a constant feature must get z = 0 exactly"


def test_name_segments_from_zscores(impl):
    """Names list the strongest |z| >= threshold features as high/low; none gives "average"."""
    z = np.array([[1.4, 0.2, -0.9, 0.6], [0.1, -0.2, 0.3, 0.0], [-0.4, 2.0, 0.1, -0.8]])
    names = impl.name_segments(z, ["Income", "Age", "Balance", "Limit"], threshold=0.5, max_terms=2)
    assert names == ["high income, low balance", "average", "high age, low limit"], names


def test_name_segments_are_unique(impl):
    """Two segments with the same top features get extra terms until their names differ."""
    z = np.array([[1.5, 0.9, 0.3], [1.4, 0.8, -0.2], [-1.0, -1.0, 0.0]])
    names = impl.name_segments(z, ["Income", "Limit", "Age"], threshold=0.5, max_terms=2)
    assert len(set(names)) == 3, f"names must be unique, got {names}"
    assert (
        names[0] == "high income, high limit, high age"
        and names[1] == "high income, high limit, low age"
    ), names
    assert names[2] == "low income, low limit", names
    z2 = np.array([[1.5, 0.9, 0.3, 0.2], [1.4, 0.8, 0.1, -0.6]])  # 2 segments, 4 features
    names = impl.name_segments(z2, ["Income", "Limit", "Age", "Debt"], threshold=0.5, max_terms=2)
    assert names == ["high income, high limit, high age", "high income, high limit, low debt"], (
        names
    )
    z4 = np.array([[1.5, 0.3, 0.2, 0.1], [1.4, -0.3, 0.2, 0.1]])  # both "high income"
    names = impl.name_segments(z4, ["Income", "Limit", "Age", "Debt"], threshold=0.5, max_terms=2)
    assert names == ["high income, high limit, high age", "high income, low limit, high age"], (
        f"clashing names grow to max_terms + 1 terms (any |z|), then more: {names}"
    )
    z3 = np.array([[0.3, 0.1], [-0.2, 0.1]])  # both "average", and only max_terms features
    names = impl.name_segments(z3, ["Income", "Age"], threshold=0.5, max_terms=2)
    assert names == ["high income, high age", "low income, high age"], names
