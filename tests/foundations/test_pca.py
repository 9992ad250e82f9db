"""Grader for the `pca` lab: our PCA against scikit-learn's, plus properties any PCA must have."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import datasets
from sklearn.base import clone
from sklearn.decomposition import PCA as SkPCA
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REFERENCE = "airoad.foundations.pca"
SOLVERS = ["svd", "eigh"]
ATOL = 1e-8


@pytest.fixture(scope="module")
def iris_X() -> np.ndarray:
    return datasets.load_iris().data


@pytest.fixture(scope="module")
def digits_X() -> np.ndarray:
    return datasets.load_digits().data  # (1797, 64), several constant pixels: rank-deficient


def _align_rows(ours: np.ndarray, theirs: np.ndarray) -> np.ndarray:
    """Flip each row of `ours` to point the same way as the matching row of `theirs`."""
    signs = np.sign(np.sum(ours * theirs, axis=1))
    signs[signs == 0] = 1.0
    return ours * signs[:, None]


def _fit(impl, X, k, solver):
    model = impl.PCA(n_components=k, solver=solver).fit(X)
    assert model.components_.shape == (k, X.shape[1]), (
        f"components_ has shape {model.components_.shape}, expected (n_components, n_features)"
        f" = {(k, X.shape[1])}"
    )
    return model


@pytest.mark.parametrize("solver", SOLVERS)
def test_components_match_sklearn(impl, iris_X, solver):
    """components_ equal scikit-learn's PCA components up to the sign of each row."""
    ours = _fit(impl, iris_X, 3, solver).components_
    theirs = SkPCA(n_components=3, svd_solver="full").fit(iris_X).components_
    np.testing.assert_allclose(
        _align_rows(ours, theirs),
        theirs,
        atol=ATOL,
        err_msg="components differ from sklearn's (even after sign flips)",
    )


@pytest.mark.parametrize("solver", SOLVERS)
def test_explained_variance_matches_sklearn(impl, digits_X, solver):
    """explained_variance_ and explained_variance_ratio_ equal scikit-learn's (ddof=1, ratio of ALL variance)."""
    ours = _fit(impl, digits_X, 10, solver)
    theirs = SkPCA(n_components=10, svd_solver="full").fit(digits_X)
    assert ours.explained_variance_.shape == (10,), (
        "explained_variance_ must have shape (n_components,)"
    )
    np.testing.assert_allclose(
        ours.explained_variance_,
        theirs.explained_variance_,
        rtol=1e-7,
        err_msg="explained_variance_ differs: use S**2 / (n_samples - 1)",
    )
    np.testing.assert_allclose(
        ours.explained_variance_ratio_,
        theirs.explained_variance_ratio_,
        rtol=1e-7,
        err_msg="explained_variance_ratio_ differs: divide by "
        "the total variance of all features, not of the kept ones",
    )
    np.testing.assert_allclose(ours.mean_, theirs.mean_, atol=1e-12, err_msg="mean_ differs")


def test_sign_convention(impl, iris_X):
    """Each component's largest-magnitude entry is positive (so results are deterministic)."""
    comps = _fit(impl, iris_X, 4, "svd").components_
    largest = comps[np.arange(4), np.argmax(np.abs(comps), axis=1)]
    assert np.all(largest > 0), f"largest entries per component {largest}; each should be > 0"


@pytest.mark.parametrize("solver", SOLVERS)
def test_transform_and_inverse_match_sklearn(impl, digits_X, solver):
    """transform equals sklearn's up to column signs; inverse_transform equals sklearn's reconstruction."""
    ours = _fit(impl, digits_X, 5, solver)
    theirs = SkPCA(n_components=5, svd_solver="full").fit(digits_X)
    Z, Zs = ours.transform(digits_X), theirs.transform(digits_X)
    assert Z.shape == (len(digits_X), 5), f"transform returned {Z.shape}, expected (n_samples, 5)"
    np.testing.assert_allclose(
        _align_rows(Z.T, Zs.T).T,
        Zs,
        atol=1e-7,
        err_msg="projected coordinates differ from sklearn's",
    )
    R = ours.inverse_transform(Z)
    assert R.shape == digits_X.shape, (
        f"inverse_transform returned {R.shape}, expected {digits_X.shape}"
    )
    np.testing.assert_allclose(
        R, theirs.inverse_transform(Zs), atol=1e-7, err_msg="reconstruction differs from sklearn's"
    )


def test_solvers_agree_and_full_rank_reconstructs(impl, iris_X):
    """svd and eigh solvers give the same model; keeping every component reconstructs X exactly."""
    a, b = _fit(impl, iris_X, 4, "svd"), _fit(impl, iris_X, 4, "eigh")
    np.testing.assert_allclose(
        _align_rows(b.components_, a.components_),
        a.components_,
        atol=ATOL,
        err_msg="eigh and svd components differ",
    )
    np.testing.assert_allclose(
        a.inverse_transform(a.transform(iris_X)),
        iris_X,
        atol=1e-10,
        err_msg="with all components, inverse_transform(transform(X)) != X",
    )


def test_fit_transform_and_default_n_components(impl, iris_X):
    """fit_transform(X) equals fit(X).transform(X); n_components=None keeps min(n_samples, n_features)."""
    model = impl.PCA()
    Z = model.fit_transform(iris_X)
    assert Z.shape == (150, 4), (
        f"fit_transform with n_components=None gave {Z.shape}, expected (150, 4)"
    )
    assert model.n_components_ == 4, f"n_components_ is {model.n_components_}, expected 4"
    np.testing.assert_allclose(
        Z, model.transform(iris_X), atol=1e-12, err_msg="fit_transform and transform disagree"
    )


def test_transform_rejects_a_different_feature_count(impl, iris_X):
    """transform on X with another number of features raises sklearn's 'expecting N features' error."""
    model = impl.PCA(n_components=2).fit(iris_X)
    with pytest.raises(ValueError) as theirs:
        SkPCA(n_components=2).fit(iris_X).transform(iris_X[:, :3])
    with pytest.raises(ValueError, match="is expecting 4 features"):
        model.transform(iris_X[:, :3])
    assert "is expecting 4 features" in str(theirs.value), "sklearn's message changed"


def test_svd_axes_is_the_thin_svd_on_wide_data(impl):
    """svd_axes on wide data (n_samples < n_features) gives r = n_samples axes: numpy's thin SVD."""
    Xc = np.random.default_rng(0).standard_normal((5, 8))  # rank 5: every axis is determined
    variances, axes = impl.svd_axes(Xc)
    _, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    assert np.shape(axes) == (5, 8), f"axes has shape {np.shape(axes)}, expected (5, 8)"
    np.testing.assert_allclose(variances, S**2 / 4, atol=1e-12, err_msg="variances != S**2/(n-1)")
    np.testing.assert_allclose(
        np.abs(np.sum(axes * Vt, axis=1)), 1.0, atol=1e-10, err_msg="axes differ from V^T's rows"
    )


@pytest.mark.parametrize("bad", [0, 5, -1])
def test_bad_n_components_raises(impl, iris_X, bad):
    """n_components outside [1, min(n_samples, n_features)] raises ValueError."""
    with pytest.raises(ValueError):
        impl.PCA(n_components=bad).fit(iris_X)


def test_sklearn_api_clone_params_pipeline(impl, iris_X):
    """clone/get_params/set_params work and PCA scores like sklearn's inside a Pipeline with cross_val_score."""
    y = datasets.load_iris().target
    model = impl.PCA(n_components=2, solver="eigh")
    assert clone(model).get_params() == {"n_components": 2, "solver": "eigh"}, (
        "__init__ must store exactly its arguments (sklearn convention)"
    )
    assert model.set_params(n_components=3).fit(iris_X).components_.shape == (3, 4), (
        "set_params(n_components=3) then fit should give 3 components"
    )

    def scores(pca):
        pipe = make_pipeline(StandardScaler(), pca, LogisticRegression(max_iter=1000))
        return cross_val_score(pipe, iris_X, y, cv=5)

    np.testing.assert_allclose(
        scores(impl.PCA(n_components=2)),
        scores(SkPCA(n_components=2)),
        atol=1e-12,
        err_msg="Pipeline accuracy differs from sklearn's PCA",
    )


@settings(max_examples=25, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(3, 12), st.integers(2, 6)),
        elements=st.floats(-100, 100, allow_nan=False, width=64),
    )
)
def test_properties_on_random_data(impl, X):
    """Components are orthonormal; variances are sorted, non-negative; ratios sum to at most 1."""
    if X.var(axis=0).sum() < 1e-6:
        return  # (nearly) all rows equal: no variance to explain, the ratio is undefined
    k = min(X.shape)
    model = impl.PCA(n_components=k).fit(X)
    V = model.components_
    assert V.shape == (k, X.shape[1]), f"components_ shape {V.shape}, expected {(k, X.shape[1])}"
    np.testing.assert_allclose(V @ V.T, np.eye(k), atol=1e-8, err_msg="components not orthonormal")
    ev = model.explained_variance_
    assert np.all(ev >= 0) and np.all(np.diff(ev) <= 1e-9 * max(ev[0], 1)), (
        f"explained_variance_ must be non-negative and descending, got {ev}"
    )
    total = model.explained_variance_ratio_.sum()
    assert total <= 1 + 1e-9, f"explained_variance_ratio_ sums to {total} > 1"
    np.testing.assert_allclose(
        ev.sum(),
        X.var(axis=0, ddof=1).sum(),
        rtol=1e-7,
        atol=1e-9,
        err_msg="keeping all components must explain the total variance",
    )
