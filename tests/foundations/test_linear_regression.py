"""Grader for the `linear-regression` lab: OLS, gradient descent, ridge, lasso and polynomial
features against scikit-learn, plus the optimality conditions each solution must satisfy."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn import datasets
from sklearn import linear_model as sk
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

REFERENCE = "airoad.foundations.linear_regression"


@pytest.fixture(scope="module")
def diabetes() -> tuple[np.ndarray, np.ndarray]:
    return datasets.load_diabetes(return_X_y=True)


@pytest.fixture(scope="module")
def wide() -> tuple[np.ndarray, np.ndarray]:
    """More features than samples: 30 x 60, the case where the dual ridge form pays off."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 60))
    return X, X[:, :5] @ rng.normal(size=5) + 0.1 * rng.normal(size=30)


def _check_fit(model, X, y):
    """Fit `model`, check the fitted attribute shapes, return it."""
    model.fit(X, y)
    assert np.shape(model.coef_) == (X.shape[1],), (
        f"coef_ has shape {np.shape(model.coef_)}, expected (n_features,) = ({X.shape[1]},)"
    )
    assert np.ndim(model.intercept_) == 0, "intercept_ must be a scalar"
    pred = model.predict(X)
    assert np.shape(pred) == (len(X),), f"predict returned {np.shape(pred)}, expected (n_samples,)"
    return model


def _assert_same_fit(ours, theirs, rtol, atol, what):
    np.testing.assert_allclose(
        ours.coef_,
        theirs.coef_,
        rtol=rtol,
        atol=atol,
        err_msg=f"{what}: coef_ differs from sklearn's",
    )
    np.testing.assert_allclose(
        ours.intercept_,
        theirs.intercept_,
        rtol=rtol,
        atol=atol,
        err_msg=f"{what}: intercept_ differs from sklearn's",
    )


@pytest.mark.parametrize("solver", ["lstsq", "normal"])
def test_ols_matches_sklearn(impl, diabetes, solver):
    """LinearRegression (lstsq and normal-equation solvers) matches sklearn's coefficients and intercept."""
    X, y = diabetes
    ours = _check_fit(impl.LinearRegression(solver=solver), X, y)
    _assert_same_fit(ours, sk.LinearRegression().fit(X, y), 1e-8, 1e-8, f"solver={solver}")


def test_ols_without_intercept(impl, diabetes):
    """fit_intercept=False fits through the origin (intercept_ == 0) like sklearn."""
    X, y = diabetes
    ours = _check_fit(impl.LinearRegression(fit_intercept=False), X, y)
    assert ours.intercept_ == 0.0, f"intercept_ is {ours.intercept_}, expected 0.0"
    _assert_same_fit(
        ours, sk.LinearRegression(fit_intercept=False).fit(X, y), 1e-8, 1e-8, "fit_intercept=False"
    )


def test_ols_intercept_on_uncentred_features(impl, diabetes):
    """On features with nonzero means the intercept is mean(y) - mean(X) . coef_, like sklearn's."""
    X, y = diabetes
    X = X + np.linspace(-3.0, 5.0, X.shape[1])  # diabetes columns are already centred
    ours = _check_fit(impl.LinearRegression(), X, y)
    _assert_same_fit(ours, sk.LinearRegression().fit(X, y), 1e-8, 1e-8, "shifted columns")


def test_lstsq_gives_minimum_norm_on_collinear_columns(impl, diabetes):
    """With a duplicated column, the lstsq solver returns sklearn's minimum-norm solution."""
    X, y = diabetes
    X2 = np.hstack([X, X[:, :1]])  # rank-deficient: X^T X is singular
    ours = _check_fit(impl.LinearRegression(solver="lstsq"), X2, y)
    _assert_same_fit(ours, sk.LinearRegression().fit(X2, y), 1e-6, 1e-6, "collinear columns")
    assert ours.coef_[0] == pytest.approx(ours.coef_[-1], rel=1e-6), (
        "the minimum-norm solution splits the weight equally between duplicated columns"
    )


def test_gradient_descent_decreases_loss_and_reaches_normal_equation(impl, diabetes):
    """gd never increases the loss and converges to the normal-equation solution."""
    X, y = diabetes
    X = StandardScaler().fit_transform(X)
    gd = _check_fit(impl.LinearRegression(solver="gd", max_iter=50_000, tol=1e-10), X, y)
    losses = np.asarray(gd.loss_history_)
    assert losses.ndim == 1 and len(losses) == gd.n_iter_ + 1, (
        f"loss_history_ must hold n_iter_ + 1 = {gd.n_iter_ + 1} losses, got shape {losses.shape}"
    )
    assert gd.n_iter_ < 50_000, "gd used every step: it should meet tol first"
    assert np.all(np.diff(losses) <= 1e-12 * losses[0]), "the loss went up during gradient descent"
    _assert_same_fit(gd, impl.LinearRegression(solver="lstsq").fit(X, y), 1e-6, 1e-6, "gd vs lstsq")


def test_gradient_descent_respects_max_iter_and_learning_rate(impl, diabetes):
    """gd takes at most max_iter steps, and a given learning_rate is the step size used."""
    X, y = diabetes
    X = StandardScaler().fit_transform(X)
    gd = impl.LinearRegression(solver="gd", max_iter=1, learning_rate=0.1).fit(X, y)
    assert gd.n_iter_ == 1 and len(gd.loss_history_) == 2, (
        f"max_iter=1 should give n_iter_=1 and 2 losses, got {gd.n_iter_} and {len(gd.loss_history_)}"
    )
    yc = y - y.mean()
    expected = 0.1 * X.T @ yc / len(y)  # one step from w = 0 along minus the gradient
    np.testing.assert_allclose(
        gd.coef_,
        expected,
        rtol=1e-10,
        err_msg="one gd step from zero should be learning_rate * X^T y / n",
    )


def test_gradient_descent_stops_at_the_first_step_within_tol(impl, diabetes):
    """gd stops at the first w where max|gradient| <= tol * (1 + max|X^T y| / n), not later."""
    X, y = diabetes
    X = StandardScaler().fit_transform(X)
    yc, n, tol = y - y.mean(), len(y), 1e-3

    def grad_max(model):
        return np.max(np.abs(X.T @ (X @ model.coef_ - yc) / n))

    scale = 1 + np.max(np.abs(X.T @ yc)) / n
    done = impl.LinearRegression(solver="gd", max_iter=100_000, tol=tol).fit(X, y)
    assert grad_max(done) <= tol * scale, "gd stopped before the gradient met the tolerance"
    before = impl.LinearRegression(solver="gd", max_iter=done.n_iter_ - 1, tol=tol).fit(X, y)
    assert grad_max(before) > tol * scale, (
        f"the gradient already met the tolerance after {done.n_iter_ - 1} steps; gd went on"
    )


def test_gradient_descent_loss_history_is_half_the_mse(impl, diabetes):
    """loss_history_ holds ||X w - y||^2 / (2 n) at w = 0 and after each step (centred data)."""
    X, y = diabetes
    X = StandardScaler().fit_transform(X)
    gd = impl.LinearRegression(solver="gd", max_iter=1, learning_rate=0.1).fit(X, y)
    yc = y - y.mean()
    residuals = [yc, X @ gd.coef_ - yc]
    np.testing.assert_allclose(
        gd.loss_history_,
        [r @ r / (2 * len(y)) for r in residuals],
        rtol=1e-10,
        err_msg="loss_history_ is not ||X w - y||^2 / (2 n)",
    )


def test_unknown_solver_raises(impl, diabetes):
    """An unknown solver name raises ValueError."""
    with pytest.raises(ValueError):
        impl.LinearRegression(solver="magic").fit(*diabetes)


def test_center_rejects_bad_shapes(impl):
    """center raises ValueError for 2-D y, 1-D X or mismatched lengths, and means match numpy's."""
    X, y = np.arange(12.0).reshape(6, 2), np.arange(6.0)
    for bad_X, bad_y in [(X, y[:, None]), (X[:, 0], y), (X, y[:5])]:
        with pytest.raises(ValueError):
            impl.center(bad_X, bad_y, True)
    Xc, yc, x_mean, y_mean = impl.center(X, y, True)
    np.testing.assert_allclose(x_mean, X.mean(axis=0), err_msg="x_mean is not X's column mean")
    np.testing.assert_allclose(Xc, X - X.mean(axis=0), err_msg="Xc is not X minus its mean")


@pytest.mark.parametrize("alpha", [1e-3, 1.0, 100.0])
def test_ridge_matches_sklearn(impl, diabetes, wide, alpha):
    """Ridge matches sklearn's Ridge on tall (n > p) and wide (n < p) data."""
    for name, (X, y) in {"diabetes": diabetes, "wide": wide}.items():
        ours = _check_fit(impl.Ridge(alpha=alpha), X, y)
        _assert_same_fit(
            ours, sk.Ridge(alpha=alpha).fit(X, y), 1e-7, 1e-8, f"{name}, alpha={alpha}"
        )


@settings(max_examples=20, deadline=None)
@given(st.floats(1e-3, 1e3), st.floats(1.5, 10.0))
def test_ridge_shrinks_as_alpha_grows(impl, alpha, factor):
    """A larger alpha never gives a larger coefficient norm."""
    X, y = datasets.load_diabetes(return_X_y=True)
    small = np.linalg.norm(impl.Ridge(alpha=alpha).fit(X, y).coef_)
    large = np.linalg.norm(impl.Ridge(alpha=alpha * factor).fit(X, y).coef_)
    assert large <= small * (1 + 1e-10), f"||coef|| grew from {small} to {large} as alpha grew"


def test_soft_threshold(impl):
    """soft_threshold(x, t) = sign(x) * max(|x| - t, 0), elementwise."""
    x = np.array([-3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0])
    np.testing.assert_allclose(
        impl.soft_threshold(x, 1.0),
        [-2, 0, 0, 0, 0, 0, 2],
        atol=0,
        err_msg="soft_threshold(x, 1) is wrong",
    )


@pytest.mark.parametrize("precompute", [True, False])
@pytest.mark.parametrize("alpha", [0.01, 0.1, 1.0])
def test_lasso_matches_sklearn(impl, diabetes, alpha, precompute):
    """Lasso (Gram and residual forms) matches sklearn's Lasso at a tight tolerance."""
    X, y = diabetes
    kw = dict(alpha=alpha, tol=1e-12, max_iter=100_000)
    ours = _check_fit(impl.Lasso(precompute=precompute, **kw), X, y)
    _assert_same_fit(ours, sk.Lasso(**kw).fit(X, y), 1e-6, 1e-4, f"alpha={alpha}")
    assert ours.n_iter_ < 100_000, "Lasso hit max_iter: check the duality-gap stopping rule"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("precompute", [True, False])
def test_lasso_runs_exactly_max_iter_sweeps(impl, diabetes, precompute):
    """With tol=0 Lasso makes exactly max_iter sweeps: n_iter_ and coef_ equal sklearn's after 2 sweeps."""
    X, y = diabetes
    ours = _check_fit(impl.Lasso(alpha=0.1, tol=0.0, max_iter=2, precompute=precompute), X, y)
    theirs = sk.Lasso(alpha=0.1, tol=0.0, max_iter=2).fit(X, y)
    assert ours.n_iter_ == theirs.n_iter_ == 2, f"n_iter_ is {ours.n_iter_}, expected 2"
    _assert_same_fit(ours, theirs, 1e-9, 1e-8, "two sweeps")


def test_lasso_duality_gap_matches_sklearn(impl, diabetes):
    """duality_gap at sklearn's solution equals sklearn's dual_gap_ (times n), and Lasso reports dual_gap_ <= tol."""
    X, y = diabetes
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    theirs = sk.Lasso(alpha=0.1, tol=1e-3).fit(X, y)
    r = yc - Xc @ theirs.coef_
    gap = impl.duality_gap(theirs.coef_, r @ r, Xc.T @ r, r @ yc, 0.1 * len(y))
    assert gap == pytest.approx(theirs.dual_gap_ * len(y), rel=1e-6, abs=1e-6), (
        f"duality_gap gave {gap}, sklearn's gap (x n) is {theirs.dual_gap_ * len(y)}"
    )
    ours = impl.Lasso(alpha=0.1, tol=1e-3).fit(X, y)
    assert 0 <= ours.dual_gap_ * len(y) <= 1e-3 * (yc @ yc), "Lasso stopped above the tolerance"


def test_duality_gap_is_zero_for_the_all_zero_solution(impl, diabetes):
    """duality_gap is 0 at w = 0 when l1 >= max|X^T y| (then w = 0 is the lasso optimum)."""
    X, y = diabetes
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    l1 = 1.01 * np.max(np.abs(Xc.T @ yc))
    gap = impl.duality_gap(np.zeros(X.shape[1]), yc @ yc, Xc.T @ yc, yc @ yc, l1)
    assert gap == pytest.approx(0.0, abs=1e-9 * (yc @ yc)), f"duality_gap at the optimum is {gap}"


@settings(max_examples=20, deadline=None)
@given(arrays(np.float64, (25, 4), elements=st.floats(-10, 10, width=64)), st.floats(0.01, 2.0))
def test_lasso_optimality_conditions(impl, X, scale):
    """At the lasso optimum |X^T r| / n <= alpha, with equality (and matching sign) where coef != 0."""
    if np.any(np.ptp(X, axis=0) < 1e-3):
        return  # a constant column carries no signal once centred
    y = X @ np.array([3.0, 0.0, -2.0, 0.5]) + np.sin(np.arange(25))
    Xc, yc = X - X.mean(axis=0), y - y.mean()
    alpha = scale * np.max(np.abs(Xc.T @ yc)) / len(y) / 2  # below alpha_max: some coef != 0
    model = impl.Lasso(alpha=alpha, tol=1e-14, max_iter=200_000).fit(X, y)
    corr = Xc.T @ (yc - Xc @ model.coef_) / len(y)
    slack = 1e-5 * max(alpha, 1.0)
    assert np.all(np.abs(corr) <= alpha + slack), (
        f"|X^T r|/n = {np.abs(corr)} exceeds alpha={alpha}"
    )
    on = model.coef_ != 0
    np.testing.assert_allclose(
        corr[on],
        alpha * np.sign(model.coef_[on]),
        atol=slack,
        err_msg="for coef_j != 0, X_j^T r / n must equal alpha * sign(coef_j)",
    )


def test_lasso_is_all_zero_above_alpha_max(impl, diabetes):
    """alpha >= max|X^T (y - mean y)| / n gives coef_ == 0 and intercept_ == mean(y)."""
    X, y = diabetes
    alpha_max = np.max(np.abs((X - X.mean(axis=0)).T @ (y - y.mean()))) / len(y)
    model = _check_fit(impl.Lasso(alpha=alpha_max * 1.01), X, y)
    assert np.all(model.coef_ == 0), f"expected all-zero coef_, got {model.coef_}"
    assert model.intercept_ == pytest.approx(y.mean()), "intercept_ should be mean(y)"


@settings(max_examples=20, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 6), st.integers(1, 4)),
        elements=st.floats(-3, 3, width=64),
    ),
    st.integers(0, 4),
    st.booleans(),
)
def test_polynomial_features_match_sklearn(impl, X, degree, include_bias):
    """polynomial_features equals sklearn's PolynomialFeatures, columns in the same order."""
    if degree == 0 and not include_bias:
        return  # sklearn refuses to build zero columns
    ours = np.asarray(impl.polynomial_features(X, degree, include_bias=include_bias))
    theirs = PolynomialFeatures(degree, include_bias=include_bias).fit_transform(X)
    assert ours.shape == theirs.shape, (
        f"polynomial_features gave {ours.shape}, expected {theirs.shape} "
        f"(n_samples, C(n_features + degree, degree){'' if include_bias else ' - 1'})"
    )
    np.testing.assert_allclose(
        ours,
        theirs,
        rtol=1e-12,
        atol=1e-12,
        err_msg="monomials (or their column order) differ from sklearn's",
    )


def test_sklearn_api_clone_params(impl, diabetes):
    """get_params/set_params/clone round-trip, and fit returns self."""
    X, y = diabetes
    for model, key, value in [
        (impl.LinearRegression(solver="normal"), "solver", "lstsq"),
        (impl.Ridge(alpha=2.0), "alpha", 5.0),
        (impl.Lasso(alpha=0.3), "alpha", 0.05),
    ]:
        params = clone(model).get_params()
        assert params == model.get_params(), "clone changed the hyper-parameters"
        model.set_params(**{key: value})
        assert model.get_params()[key] == value, f"set_params({key}=...) did not stick"
        assert model.fit(X, y) is model, f"{type(model).__name__}.fit must return self"


def test_works_in_pipeline_cross_val_and_grid_search(impl, diabetes):
    """Inside a Pipeline, cross_val_score and GridSearchCV give sklearn's scores and choices."""
    X, y = diabetes

    def cv(model):
        return cross_val_score(make_pipeline(StandardScaler(), model), X, y, cv=5)

    np.testing.assert_allclose(
        cv(impl.Ridge(alpha=3.0)),
        cv(sk.Ridge(alpha=3.0)),
        atol=1e-9,
        err_msg="cross-validated R^2 of Ridge differs from sklearn's",
    )
    np.testing.assert_allclose(
        cv(impl.LinearRegression()),
        cv(sk.LinearRegression()),
        atol=1e-9,
        err_msg="cross-validated R^2 of LinearRegression differs",
    )
    grid = {"alpha": [0.01, 0.1, 1.0, 10.0]}
    ours = GridSearchCV(impl.Lasso(tol=1e-8, max_iter=20_000), grid, cv=3).fit(X, y)
    theirs = GridSearchCV(sk.Lasso(tol=1e-8, max_iter=20_000), grid, cv=3).fit(X, y)
    assert ours.best_params_ == theirs.best_params_, (
        f"GridSearchCV picked {ours.best_params_}, sklearn's Lasso picks {theirs.best_params_}"
    )
    np.testing.assert_allclose(
        ours.cv_results_["mean_test_score"],
        theirs.cv_results_["mean_test_score"],
        atol=1e-6,
        err_msg="GridSearchCV scores differ from sklearn's Lasso",
    )


def test_polynomial_features_degree_zero_without_bias_is_empty(impl):
    """degree=0 without the bias column gives an empty (n_samples, 0) array."""
    X = np.arange(10.0).reshape(5, 2)
    out = np.asarray(impl.polynomial_features(X, 0, include_bias=False))
    assert out.shape == (5, 0), f"got shape {out.shape}, expected (n_samples, 0) = (5, 0)"
