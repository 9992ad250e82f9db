"""Grader for the knn lab: distances, neighbour search, the vote and its tie rules, checked
against scikit-learn's brute-force KNeighborsClassifier (identical predictions on digits)."""

from __future__ import annotations

import numpy as np
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import neighbors
from sklearn.datasets import load_digits, load_wine
from sklearn.metrics.pairwise import euclidean_distances
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

REFERENCE = "airoad.classic.knn"
FAST = settings(max_examples=15, deadline=None)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)  # pixels 0..16: integer distances, many exact ties
    return train_test_split(X.astype(np.float64), y, test_size=0.3, random_state=0, stratify=y)


@pytest.fixture(scope="module")
def wine():
    X, y = load_wine(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    return X[::2], X[1::2], y[::2], y[1::2]


def _sklearn(k, weights="uniform"):
    return neighbors.KNeighborsClassifier(
        n_neighbors=k, weights=weights, algorithm="brute", n_jobs=1
    )


# ---------------------------------------------------------------- building blocks


@FAST
@given(seed=st.integers(0, 10_000), n=st.integers(1, 12), m=st.integers(1, 12))
def test_squared_distances_match_sklearn(impl, seed, n, m):
    """squared_distances(A, B) (n, m) equals sklearn's squared euclidean_distances."""
    rng = np.random.default_rng(seed)
    A, B = rng.normal(size=(n, 5)), rng.normal(size=(m, 5)) * 10
    D = np.asarray(impl.squared_distances(A, B))
    assert D.shape == (n, m), f"squared_distances returned {D.shape}, expected (n, m) = {(n, m)}"
    np.testing.assert_allclose(D, euclidean_distances(A, B, squared=True), rtol=1e-9, atol=1e-9)


def test_squared_distances_are_clipped_at_zero(impl):
    """Identical large-valued points give 0, never a small negative number (clip at 0)."""
    A = np.random.default_rng(0).normal(1e4, 1.0, size=(50, 8))
    D = np.asarray(impl.squared_distances(A, A))
    assert D.min() >= 0.0, f"found a negative squared distance {D.min()}: clip at 0"
    assert np.all(np.isfinite(np.sqrt(D)))


def test_k_smallest_sorts_and_breaks_ties_by_index(impl):
    """k_smallest returns each row's k smallest values in order, equal values lowest index first."""
    D = np.array([[3.0, 1.0, 2.0, 1.0, 0.5], [2.0, 2.0, 2.0, 2.0, 2.0]])
    vals, idx = impl.k_smallest(D.copy(), 3)
    np.testing.assert_array_equal(
        np.asarray(idx), [[4, 1, 3], [0, 1, 2]], err_msg="wrong indices or tie order"
    )
    np.testing.assert_array_equal(np.asarray(vals), [[0.5, 1.0, 1.0], [2.0, 2.0, 2.0]])


def test_vote_weights(impl):
    """uniform gives ones; distance gives 1/d, and a zero distance takes the whole vote."""
    d = np.array([[1.0, 2.0, 4.0], [0.0, 1.0, 0.0]])
    np.testing.assert_array_equal(impl.vote_weights(d, "uniform"), np.ones((2, 3)))
    with np.errstate(divide="raise"):  # the zero-distance rule must not divide by zero
        w = np.asarray(impl.vote_weights(d, "distance"))
    np.testing.assert_allclose(
        w, [[1.0, 0.5, 0.25], [1.0, 0.0, 1.0]], err_msg="distance weights are off"
    )


def test_class_votes_adds_repeated_classes(impl):
    """class_votes sums weights per class, counting a class once per neighbour."""
    classes = np.array([[2, 2, 0], [1, 1, 1]])
    votes = np.asarray(impl.class_votes(classes, np.array([[1.0, 2.0, 3.0], [1.0, 1.0, 1.0]]), 3))
    np.testing.assert_array_equal(
        votes,
        [[3.0, 0.0, 3.0], [0.0, 3.0, 0.0]],
        err_msg="use np.add.at: fancy-index += drops repeated classes",
    )


# ---------------------------------------------------------------- the classifier vs sklearn


def test_kneighbors_match_sklearn_on_digits(impl, digits):
    """kneighbors distances equal sklearn's; indices too wherever no tie sits at the k-th place."""
    Xtr, Xte, ytr, _ = digits
    k = 7
    dist, ind = impl.KNeighborsClassifier(k).fit(Xtr, ytr).kneighbors(Xte)
    sk_dist, sk_ind = _sklearn(k).fit(Xtr, ytr).kneighbors(Xte)
    assert np.shape(dist) == (len(Xte), k), (
        f"kneighbors distances {np.shape(dist)}, expected (n_queries, k)"
    )
    np.testing.assert_allclose(
        dist, sk_dist, rtol=1e-12, atol=1e-12, err_msg="neighbour distances differ"
    )
    D = euclidean_distances(Xte, Xtr)
    clean = (
        np.sum(D <= sk_dist[:, -1:], axis=1) == k
    )  # no other training point at the k-th distance
    assert clean.mean() > 0.9
    np.testing.assert_array_equal(
        np.sort(ind[clean], 1),
        np.sort(sk_ind[clean], 1),
        err_msg="neighbour sets differ where there is no tie",
    )
    assert np.all(np.diff(dist, axis=1) >= 0), "neighbours must come nearest first"


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_predictions_identical_to_sklearn_on_digits(impl, digits, weights):
    """On digits (raw pixels), predictions equal sklearn's brute kNN for k = 1, 3, 5, 10, 25."""
    Xtr, Xte, ytr, _ = digits
    for k in (1, 3, 5, 10, 25):
        ours = impl.KNeighborsClassifier(k, weights=weights).fit(Xtr, ytr).predict(Xte)
        theirs = _sklearn(k, weights).fit(Xtr, ytr).predict(Xte)
        assert np.shape(ours) == (len(Xte),), (
            f"predict returned {np.shape(ours)}, expected (n_queries,)"
        )
        mismatches = int(np.sum(ours != theirs))
        assert mismatches == 0, (
            f"k={k}, weights={weights}: {mismatches} predictions differ from sklearn"
        )


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_predict_proba_matches_sklearn_on_wine(impl, wine, weights):
    """predict_proba equals sklearn's on standardised wine (k = 7), rows summing to 1."""
    Xtr, Xte, ytr, _ = wine
    P = np.asarray(impl.KNeighborsClassifier(7, weights=weights).fit(Xtr, ytr).predict_proba(Xte))
    assert P.shape == (len(Xte), 3), f"predict_proba returned {P.shape}, expected (n, n_classes)"
    np.testing.assert_allclose(P, _sklearn(7, weights).fit(Xtr, ytr).predict_proba(Xte), atol=1e-12)


@FAST
@given(
    seed=st.integers(0, 10_000),
    k=st.integers(1, 9),
    weights=st.sampled_from(["uniform", "distance"]),
)
def test_random_continuous_data_matches_sklearn(impl, seed, k, weights):
    """On random continuous data (no distance ties) predictions and probabilities equal sklearn's."""
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(60, 3)), rng.integers(0, 3, 60)
    Q = rng.normal(size=(25, 3))
    ours, theirs = (
        impl.KNeighborsClassifier(k, weights=weights).fit(X, y),
        _sklearn(k, weights).fit(X, y),
    )
    np.testing.assert_array_equal(ours.predict(Q), theirs.predict(Q))
    np.testing.assert_allclose(ours.predict_proba(Q), theirs.predict_proba(Q), atol=1e-12)


def test_tie_rules_match_sklearn(impl):
    """Equidistant neighbours: lowest index wins the place, and a tied vote goes to the first class."""
    X = np.array([[1.0], [-1.0], [1.0], [-1.0]])
    y = np.array(["b", "a", "a", "b"])
    Q = np.array([[0.0]])  # all four training points at distance 1
    for k, want in ((1, "b"), (2, "a"), (3, "a")):
        ours = impl.KNeighborsClassifier(k).fit(X, y)
        assert ours.predict(Q)[0] == _sklearn(k).fit(X, y).predict(Q)[0] == want, (
            f"k={k}: expected {want!r}"
        )
        np.testing.assert_array_equal(np.sort(ours.kneighbors(Q)[1][0]), np.arange(k))


def test_exact_match_decides_a_distance_weighted_vote(impl):
    """weights='distance': a query equal to a training point takes that point's label, proba 1."""
    X = np.array([[0.0, 0.0], [0.1, 0.0], [0.0, 0.1], [5.0, 5.0]])
    y = np.array([0, 1, 1, 0])
    model = impl.KNeighborsClassifier(3, weights="distance").fit(X, y)
    np.testing.assert_array_equal(model.predict(X[:1]), [0])
    np.testing.assert_allclose(model.predict_proba(X[:1]), [[1.0, 0.0]])


def test_many_queries_are_chunked_correctly(impl, digits, monkeypatch):
    """Predicting 3000 queries in chunks of ~100 equals predicting them in batches of 250."""
    Xtr, Xte, ytr, _ = digits
    Q = np.tile(Xte, (6, 1))[:3000] + 0.25
    monkeypatch.setattr(impl, "CHUNK_ELEMENTS", 100 * len(Xtr), raising=False)
    model = impl.KNeighborsClassifier(5).fit(Xtr, ytr)
    whole = model.predict(Q)
    parts = np.concatenate([model.predict(Q[i : i + 250]) for i in range(0, len(Q), 250)])
    np.testing.assert_array_equal(whole, parts)


def test_invalid_settings_raise(impl, wine):
    """Unknown weights, n_neighbors < 1, or k above the training size raise ValueError."""
    Xtr, Xte, ytr, _ = wine
    for bad in (dict(weights="gaussian"), dict(n_neighbors=0)):
        with pytest.raises(ValueError):
            impl.KNeighborsClassifier(**bad).fit(Xtr, ytr)
    with pytest.raises(ValueError):
        impl.KNeighborsClassifier(len(Xtr) + 1).fit(Xtr, ytr).predict(Xte)


def test_knn_follows_the_sklearn_api(impl, wine):
    """KNeighborsClassifier works with clone, Pipeline, cross_val_score and GridSearchCV."""
    Xtr, _, ytr, _ = wine
    check_estimator_api(impl.KNeighborsClassifier(), Xtr, ytr, grid={"n_neighbors": [3, 7]})
