"""Grader for bias-variance: learning and validation curves (vs scikit-learn's on the same
folds), the under/good/over-fitting labels, and the ridge and lasso regularisation paths."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import model_selection as ms
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.linear_model import LogisticRegression, Ridge, lasso_path
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeRegressor

REFERENCE = "airoad.classic.bias_variance"

FAST = settings(max_examples=20, deadline=None)


@pytest.fixture(scope="module")
def diabetes():
    X, y = load_diabetes(return_X_y=True)
    return StandardScaler().fit_transform(X), y - y.mean()


# ---------------------------------------------------------------- curves


def test_train_sizes_absolute(impl):
    """Fractions become int(f * n_max) (at least 1), duplicates go, bad sizes raise ValueError."""
    np.testing.assert_array_equal(impl.train_sizes_absolute([0.1, 0.5, 1.0], 200), [20, 100, 200])
    np.testing.assert_array_equal(impl.train_sizes_absolute([0.001, 0.002, 1.0], 100), [1, 100])
    np.testing.assert_array_equal(impl.train_sizes_absolute([50, 10, 50], 100), [10, 50])
    np.testing.assert_array_equal(impl.train_sizes_absolute([10, 100], 100), [10, 100])
    for bad in ([0.0, 0.5], [0.5, 1.5], [0, 10], [10, 101]):
        with pytest.raises(ValueError):
            impl.train_sizes_absolute(bad, 100)


def test_learning_curve_matches_sklearn(impl, diabetes):
    """learning_curve equals sklearn's learning_curve (sizes, train and test scores) on shuffled KFold."""
    X, y = diabetes
    cv = ms.KFold(4, shuffle=True, random_state=0)
    est = DecisionTreeRegressor(max_depth=3, random_state=0)
    sizes, tr, te = impl.learning_curve(est, X, y, train_sizes=np.linspace(0.1, 1.0, 4), cv=cv)
    want_sizes, want_tr, want_te = ms.learning_curve(
        est, X, y, train_sizes=np.linspace(0.1, 1.0, 4), cv=cv
    )
    assert np.shape(tr) == (4, 4) and np.shape(te) == (4, 4), (
        f"scores {np.shape(tr)}, expected (n_sizes, n_splits)"
    )
    np.testing.assert_array_equal(sizes, want_sizes, err_msg="training sizes differ")
    np.testing.assert_allclose(
        tr, want_tr, atol=1e-12, err_msg="train scores differ from sklearn's"
    )
    np.testing.assert_allclose(te, want_te, atol=1e-12, err_msg="test scores differ from sklearn's")


def test_learning_curve_classifier_uses_stratified_folds(impl):
    """With cv=3 and a classifier, folds are stratified like sklearn's and scoring names work."""
    X, y = load_breast_cancer(return_X_y=True)
    X = StandardScaler().fit_transform(X[:200])
    est = LogisticRegression(max_iter=300)
    sizes, tr, te = impl.learning_curve(
        est, X, y[:200], train_sizes=[0.3, 1.0], cv=3, scoring="roc_auc"
    )
    _, want_tr, want_te = ms.learning_curve(
        est, X, y[:200], train_sizes=[0.3, 1.0], cv=3, scoring="roc_auc"
    )
    np.testing.assert_allclose(
        te, want_te, atol=1e-12, err_msg="ROC AUC on stratified folds differs"
    )
    np.testing.assert_allclose(tr, want_tr, atol=1e-12, err_msg="train ROC AUC differs")


def test_validation_curve_matches_sklearn(impl, diabetes):
    """validation_curve over max_depth equals sklearn's validation_curve on the same splits."""
    X, y = diabetes
    cv = ms.RepeatedKFold(n_splits=3, n_repeats=2, random_state=1)
    est = DecisionTreeRegressor(random_state=0)
    tr, te = impl.validation_curve(est, X, y, "max_depth", [1, 2, 4, 8], cv=cv, scoring="r2")
    want_tr, want_te = ms.validation_curve(
        est, X, y, param_name="max_depth", param_range=[1, 2, 4, 8], cv=cv, scoring="r2"
    )
    assert np.shape(te) == (4, 6), (
        f"scores have shape {np.shape(te)}, expected (n_values, n_splits)"
    )
    np.testing.assert_allclose(tr, want_tr, atol=1e-12, err_msg="train scores differ")
    np.testing.assert_allclose(te, want_te, atol=1e-12, err_msg="test scores differ")


# ---------------------------------------------------------------- labels


def test_labels_on_a_textbook_curve(impl):
    """Low train+val = under-fitting, the peak = good, high train with low val = over-fitting."""
    train = np.array([0.50, 0.70, 0.85, 0.95, 0.99, 1.00])
    val = np.array([0.48, 0.66, 0.80, 0.78, 0.70, 0.60])
    labels = list(impl.label_fit_regions(train, val))
    assert labels == [
        "under-fitting",
        "under-fitting",
        "good",
        "over-fitting",
        "over-fitting",
        "over-fitting",
    ], labels


def test_labels_use_the_paired_standard_error(impl):
    """A point within n_se paired standard errors of the best is good; far below it is not."""
    best = np.array([0.80, 0.70, 0.90, 0.60])
    val = np.vstack(
        [best - 0.30, best - [0.01, -0.01, 0.02, 0.0], best]
    )  # rows: points, cols: folds
    train = val + np.array([[0.0], [0.1], [0.1]])
    labels = list(impl.label_fit_regions(train, val, n_se=1.0))
    assert labels == ["under-fitting", "good", "good"], labels
    train_over = val + np.array([[0.5], [0.1], [0.1]])
    assert impl.label_fit_regions(train_over, val)[0] == "over-fitting", (
        "a large gap far from the optimum over-fits"
    )
    assert list(impl.label_fit_regions(train, val, n_se=0.0)) == [
        "under-fitting",
        "under-fitting",
        "good",
    ]
    # Fold differences (0, 0, 0, 0.4): mean 0.1, std (ddof=1) 0.2, so se = 0.2 / sqrt(4) = 0.1.
    pair = np.vstack([best, best - [0.0, 0.0, 0.0, 0.4]])
    assert list(impl.label_fit_regions(pair, pair, n_se=1.1))[1] == "good", "use std ddof=1"
    assert list(impl.label_fit_regions(pair, pair, n_se=0.9))[1] == "under-fitting"


def test_labels_tie_on_the_gap_is_under_fitting(impl):
    """A point clearly below the best whose gap only equals the best's gap is under-fitting."""
    labels = impl.label_fit_regions(np.array([0.5, 1.0]), np.array([0.25, 0.75]))
    assert list(labels) == ["under-fitting", "good"], list(labels)


@FAST
@given(n=st.integers(2, 10), seed=st.integers(0, 10_000))
def test_labels_properties(impl, n, seed):
    """The best validation point is always good; labels never depend on the order of the points."""
    rng = np.random.default_rng(seed)
    val = rng.uniform(0, 1, size=(n, 4))
    train = val + rng.uniform(0, 0.5, size=(n, 4))
    labels = np.asarray(impl.label_fit_regions(train, val))
    assert labels.shape == (n,), f"got shape {labels.shape}, expected (n_points,)"
    assert labels[np.argmax(val.mean(1))] == "good", "the validation optimum must be labelled good"
    perm = rng.permutation(n)
    np.testing.assert_array_equal(
        np.asarray(impl.label_fit_regions(train[perm], val[perm])),
        labels[perm],
        err_msg="shuffling the points must shuffle the labels the same way",
    )


# ---------------------------------------------------------------- paths


def test_ridge_path_matches_sklearn_ridge(impl, diabetes):
    """ridge_path's coefficients and intercepts equal Ridge(alpha) for every alpha."""
    X, y = diabetes
    y = y + 150.0  # a non-zero mean so the intercept matters
    alphas = np.array([1e-3, 0.1, 1.0, 10.0, 1e3])
    coefs, intercepts = impl.ridge_path(X, y, alphas)
    assert np.shape(coefs) == (X.shape[1], alphas.size), (
        f"coefs {np.shape(coefs)}, expected (n_features, n_alphas)"
    )
    rng = np.random.default_rng(0)  # fewer rows than columns, off-centre X, small alpha
    Xw, yw = rng.normal(size=(8, 15)) + 3.0, rng.normal(size=8) + 1000.0
    cw, bw = impl.ridge_path(Xw, yw, [1e-6])
    wide = Ridge(alpha=1e-6).fit(Xw, yw)
    np.testing.assert_allclose(np.ravel(cw), wide.coef_, rtol=1e-8, atol=1e-10, err_msg="n < d")
    np.testing.assert_allclose(bw[0], wide.intercept_, rtol=1e-10, err_msg="n < d intercept")
    for k, a in enumerate(alphas):
        model = Ridge(alpha=a).fit(X, y)
        np.testing.assert_allclose(
            coefs[:, k], model.coef_, rtol=1e-8, atol=1e-9, err_msg=f"coef_ differs at alpha={a}"
        )
        np.testing.assert_allclose(
            intercepts[k], model.intercept_, rtol=1e-10, err_msg=f"intercept differs at {a}"
        )


def test_lasso_path_matches_sklearn(impl, diabetes):
    """lasso_path equals sklearn's lasso_path (tight tolerance) over a decreasing alpha grid."""
    X, y = diabetes
    a_max = impl.lasso_alpha_max(X, y)
    np.testing.assert_allclose(
        a_max, np.abs(X.T @ y).max() / len(y), rtol=1e-12, err_msg="alpha_max is max|X^T y|/n"
    )
    alphas = np.geomspace(a_max, a_max * 1e-2, 20)
    ours = np.asarray(impl.lasso_path(X, y, alphas))
    _, want, _ = lasso_path(X, y, alphas=alphas, tol=1e-12, max_iter=100_000)
    assert ours.shape == want.shape, (
        f"coefs {ours.shape}, expected (n_features, n_alphas) = {want.shape}"
    )
    np.testing.assert_allclose(
        ours, want, atol=1e-4 * np.abs(want).max(), err_msg="lasso coefficients differ"
    )
    assert np.all(ours[:, 0] == 0.0), "at alpha_max every coefficient must be exactly 0"
    assert np.count_nonzero(ours[:, -1]) > np.count_nonzero(ours[:, 5]), (
        "smaller alpha lets more features in"
    )


@FAST
@given(seed=st.integers(0, 10_000), d=st.integers(1, 6))
def test_lasso_path_random_problems(impl, seed, d):
    """On random problems our lasso path matches sklearn's within 1e-5 (relative to the largest coef)."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(30, d))
    y = X @ rng.normal(size=d) + rng.normal(size=30)
    X, y = X - X.mean(0), y - y.mean()
    alphas = np.geomspace(impl.lasso_alpha_max(X, y), 1e-3, 8)
    _, want, _ = lasso_path(X, y, alphas=alphas, tol=1e-12, max_iter=100_000)
    np.testing.assert_allclose(
        impl.lasso_path(X, y, alphas),
        want,
        atol=1e-5 * max(1.0, np.abs(want).max()),
        err_msg="lasso path differs on a random problem",
    )
