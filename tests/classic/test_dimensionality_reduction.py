"""Grader for dimensionality-reduction: histogram binning, mutual information, the MI filter and
recursive feature elimination, checked against scikit-learn's mutual_info_classif, SelectKBest
and RFE."""

from __future__ import annotations

import numpy as np
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_diabetes, load_digits, load_iris
from sklearn.feature_selection import RFE as SkRFE
from sklearn.feature_selection import SelectKBest, mutual_info_classif
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier

REFERENCE = "airoad.classic.dimensionality_reduction"

FAST = settings(max_examples=15, deadline=None)


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:600] / 16.0, y[:600]


# ---------------------------------------------------------------- binning and MI


def test_histogram_codes_equal_width_bins(impl):
    """histogram_codes cuts each column min..max into equal bins; the max lands in the last bin."""
    X = np.array([[0.0, 5.0, 1.0], [1.0, 5.0, 2.0], [2.0, 5.0, 3.0], [4.0, 5.0, 5.0]])
    codes = np.asarray(impl.histogram_codes(X, 4))
    assert codes.shape == X.shape, f"codes have shape {codes.shape}, expected {X.shape}"
    np.testing.assert_array_equal(codes[:, 0], [0, 1, 2, 3], err_msg="column 0: width 1 per bin")
    np.testing.assert_array_equal(
        codes[:, 1], [0, 0, 0, 0], err_msg="a constant column is one bin (0)"
    )
    np.testing.assert_array_equal(codes[:, 2], [0, 1, 2, 3], err_msg="column 2: min 1, max 5")
    fixed = np.asarray(impl.histogram_codes(X[:, :1], 2, lo=np.array([0.0]), hi=np.array([2.0])))
    np.testing.assert_array_equal(
        fixed[:, 0], [0, 1, 1, 1], err_msg="values beyond hi go to the last bin"
    )
    narrow = np.asarray(impl.histogram_codes(X / 8, 4))  # ranges below 1 are binned the same
    np.testing.assert_array_equal(narrow, codes, err_msg="codes must not depend on the units")


def test_mutual_information_matches_sklearn_on_digits(impl, digits):
    """mutual_information on binned digit pixels equals mutual_info_classif(discrete_features=True)."""
    X, y = digits
    for n_bins in (2, 4):
        codes = np.asarray(impl.histogram_codes(X, n_bins))
        ours = np.asarray(impl.mutual_information(codes, y))
        assert ours.shape == (X.shape[1],), f"got shape {ours.shape}, expected (n_features,)"
        want = mutual_info_classif(codes, y, discrete_features=True)
        np.testing.assert_allclose(
            ours, want, atol=1e-12, err_msg=f"MI differs from sklearn ({n_bins} bins)"
        )


@FAST
@given(
    n=st.integers(5, 60),
    levels=st.integers(1, 5),
    classes=st.integers(2, 4),
    seed=st.integers(0, 9999),
)
def test_mutual_information_matches_sklearn_random(impl, n, levels, classes, seed):
    """mutual_information equals sklearn on random discrete columns, including constant ones."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(0, levels, size=(n, 3))
    y = rng.choice(np.array(["a", "b", "c", "d"])[:classes], size=n)
    ours = np.asarray(impl.mutual_information(codes, y))
    np.testing.assert_allclose(
        ours,
        mutual_info_classif(codes, y, discrete_features=True),
        atol=1e-12,
        err_msg="MI differs from sklearn on random discrete data",
    )


def test_mutual_information_of_a_copy_of_the_label_is_its_entropy(impl):
    """I(Y; Y) = H(Y): a column equal to the label scores log(4) for 4 balanced classes."""
    y = np.repeat(np.arange(4), 25)
    scores = np.asarray(impl.mutual_information(np.c_[y, np.zeros_like(y)], y))
    np.testing.assert_allclose(scores, [np.log(4), 0.0], atol=1e-12, err_msg="expected [log 4, 0]")


# ---------------------------------------------------------------- the MI filter


def test_mutual_info_selector_keeps_top_k(impl, digits):
    """MutualInfoSelector keeps the k pixels with the highest sklearn MI and transforms to them."""
    X, y = digits
    sel = impl.MutualInfoSelector(k=12, n_bins=2).fit(X, y)
    want = mutual_info_classif(impl.histogram_codes(X, 2), y, discrete_features=True)
    np.testing.assert_allclose(
        sel.scores_, want, atol=1e-12, err_msg="scores_ differ from sklearn's MI"
    )
    top = np.argsort(-want, kind="stable")[:12]
    np.testing.assert_array_equal(
        np.flatnonzero(sel.support_), np.sort(top), err_msg="support_ is not the top 12"
    )
    Z = sel.transform(X)
    assert Z.shape == (len(X), 12), f"transform gave {Z.shape}, expected (n_samples, k)"
    np.testing.assert_array_equal(
        Z, X[:, np.sort(top)], err_msg="transform must keep columns in order"
    )
    np.testing.assert_array_equal(sel.get_support(indices=True), np.sort(top))


def test_mutual_info_selector_api(impl):
    """MutualInfoSelector follows the scikit-learn API (clone, Pipeline, NaN rejected, bad k)."""
    X, y = load_iris(return_X_y=True)
    check_estimator_api(impl.MutualInfoSelector(k=2, n_bins=3), X, y, grid={"k": [1, 2]})
    for k in (0, 9):
        with pytest.raises(ValueError):
            impl.MutualInfoSelector(k=k).fit(X, y)
    for k in (1, 4):  # both ends of [1, n_features] are valid, as in SelectKBest
        sel = impl.MutualInfoSelector(k=k, n_bins=3).fit(X, y)
        want = SelectKBest(lambda X, y, s=sel.scores_: s, k=k).fit(X, y).get_support()
        np.testing.assert_array_equal(sel.get_support(), want)


# ---------------------------------------------------------------- RFE


@pytest.mark.parametrize("n_select,step", [(10, 1), (8, 5), (0.25, 0.1), (None, 3)])
def test_rfe_matches_sklearn_logistic(impl, digits, n_select, step):
    """RFE(LogisticRegression) keeps and ranks digit pixels exactly like sklearn's RFE."""
    X, y = digits
    est = LogisticRegression(max_iter=200)
    ours = impl.RFE(est, n_features_to_select=n_select, step=step).fit(X[:300], y[:300])
    want = SkRFE(est, n_features_to_select=n_select, step=step).fit(X[:300], y[:300])
    assert ours.support_.shape == (X.shape[1],), f"support_ has shape {ours.support_.shape}"
    np.testing.assert_array_equal(
        ours.support_, want.support_, err_msg="support_ differs from sklearn's RFE"
    )
    np.testing.assert_array_equal(
        ours.ranking_, want.ranking_, err_msg="ranking_ differs from sklearn's RFE"
    )
    assert ours.n_features_ == want.n_features_, (
        f"n_features_ {ours.n_features_} != {want.n_features_}"
    )
    np.testing.assert_allclose(
        ours.predict(X[300:]), want.predict(X[300:]), err_msg="predict differs"
    )


def test_rfe_regression_and_tree_importances(impl):
    """RFE matches sklearn with a 1-D coef_ (LinearRegression) and with feature_importances_ (tree)."""
    X, y = load_diabetes(return_X_y=True)
    ours = impl.RFE(LinearRegression(), n_features_to_select=3).fit(X, y)
    want = SkRFE(LinearRegression(), n_features_to_select=3).fit(X, y)
    np.testing.assert_array_equal(
        ours.ranking_, want.ranking_, err_msg="ranking with coef_ differs"
    )
    np.testing.assert_allclose(
        ours.score(X, y), want.score(X, y), rtol=1e-10, err_msg="score differs"
    )
    Xi, yi = load_iris(return_X_y=True)
    tree = DecisionTreeClassifier(random_state=0)
    ours = impl.RFE(tree, n_features_to_select=1).fit(Xi, yi)
    np.testing.assert_array_equal(
        ours.ranking_,
        SkRFE(tree, n_features_to_select=1).fit(Xi, yi).ranking_,
        err_msg="ranking with feature_importances_ differs",
    )


@FAST
@given(
    n_features=st.integers(3, 9),
    n_select=st.integers(1, 3),
    step=st.integers(1, 4),
    seed=st.integers(0, 999),
)
def test_rfe_matches_sklearn_random(impl, n_features, n_select, step, seed):
    """RFE(LinearRegression) matches sklearn's ranking on random regression problems."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(40, n_features))
    y = X @ rng.normal(size=n_features) + 0.1 * rng.normal(size=40)
    ours = impl.RFE(LinearRegression(), n_features_to_select=n_select, step=step).fit(X, y)
    want = SkRFE(LinearRegression(), n_features_to_select=n_select, step=step).fit(X, y)
    np.testing.assert_array_equal(
        ours.ranking_, want.ranking_, err_msg="ranking_ differs from sklearn's RFE"
    )


def test_rfe_api(impl):
    """RFE follows the scikit-learn API (clone, Pipeline, transform shape, NaN rejected)."""
    X, y = load_iris(return_X_y=True)
    rfe = impl.RFE(LogisticRegression(max_iter=500), n_features_to_select=2)
    check_estimator_api(rfe, X, y, grid={"n_features_to_select": [1, 2]})
    Z = rfe.fit(X, y).transform(X)
    assert Z.shape == (150, 2), (
        f"transform gave {Z.shape}, expected (n_samples, n_features_to_select)"
    )
    assert rfe.get_support(indices=True).shape == (2,), (
        "get_support(indices=True) lists the kept columns"
    )
    two = impl.RFE(LinearRegression(), n_features_to_select=1).fit(X[:, :2], X[:, 3])
    np.testing.assert_array_equal(
        two.ranking_,
        SkRFE(LinearRegression(), n_features_to_select=1).fit(X[:, :2], X[:, 3]).ranking_,
    )
    with pytest.raises(ValueError):  # step must be positive (sklearn's RFE says the same)
        impl.RFE(LinearRegression(), step=0.0).fit(X, y)
