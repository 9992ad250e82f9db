"""Grader for the logistic-regression lab: losses, gradients and Hessians checked by finite
differences, coefficients and probabilities checked against scikit-learn's LogisticRegression
at the same C and a tight tolerance."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import special
from sklearn import linear_model, metrics
from sklearn.datasets import load_breast_cancer, load_iris, load_wine
from sklearn.preprocessing import StandardScaler

REFERENCE = "airoad.classic.logistic_regression"
FAST = settings(max_examples=15, deadline=None)


def _scaled(loader):
    X, y = loader(return_X_y=True)
    return StandardScaler().fit_transform(X), y


@pytest.fixture(scope="module")
def cancer():
    return _scaled(load_breast_cancer)


@pytest.fixture(scope="module")
def wine():
    return _scaled(load_wine)


def _sklearn(X, y, C, fit_intercept=True):
    # newton-cholesky with a tight tol is sklearn's most precise solver for this objective.
    return linear_model.LogisticRegression(
        C=C, solver="newton-cholesky", tol=1e-12, max_iter=1000, fit_intercept=fit_intercept
    ).fit(X, y)


def _finite_diff_grad(f, w, eps=1e-6):
    """Central differences of the scalar f at every entry of w."""
    grad = np.zeros_like(w)
    for i in np.ndindex(w.shape):
        step = np.zeros_like(w)
        step[i] = eps
        grad[i] = (f(w + step) - f(w - step)) / (2 * eps)
    return grad


# ---------------------------------------------------------------- stable building blocks


@FAST
@given(seed=st.integers(0, 10_000), scale=st.sampled_from([1.0, 50.0, 1000.0]))
def test_log_softmax_matches_scipy(impl, seed, scale):
    """log_softmax equals scipy.special.log_softmax, even for scores in the thousands."""
    Z = np.random.default_rng(seed).normal(0, scale, size=(6, 4))
    got = np.asarray(impl.log_softmax(Z))
    assert got.shape == Z.shape, f"log_softmax returned {got.shape}, expected {Z.shape}"
    np.testing.assert_allclose(
        got,
        special.log_softmax(Z, axis=1),
        rtol=1e-12,
        atol=1e-12,
        err_msg="log_softmax differs; subtract the row max first",
    )


def test_sigmoid_is_stable_at_the_extremes(impl):
    """sigmoid equals scipy.special.expit from -800 to 800 without overflow warnings."""
    z = np.array([-800.0, -40.0, -1.0, 0.0, 1.0, 40.0, 800.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an overflow in exp would raise here
        with np.errstate(over="raise"):
            got = np.asarray(impl.sigmoid(z))
    np.testing.assert_allclose(
        got, special.expit(z), rtol=1e-12, atol=0, err_msg="sigmoid differs from expit"
    )


def test_add_intercept_column(impl):
    """add_intercept_column appends a column of ones, or returns X untouched."""
    X = np.arange(6.0).reshape(3, 2)
    X1 = np.asarray(impl.add_intercept_column(X, True))
    assert X1.shape == (3, 3), f"got shape {X1.shape}, expected (3, 3)"
    np.testing.assert_array_equal(X1[:, -1], 1.0, err_msg="last column must be ones")
    np.testing.assert_array_equal(np.asarray(impl.add_intercept_column(X, False)), X)


# ---------------------------------------------------------------- objectives and derivatives


@pytest.mark.parametrize("fit_intercept", [True, False])
def test_binary_gradient_matches_finite_differences(impl, fit_intercept):
    """binary_loss_grad's gradient equals central finite differences of its loss."""
    rng = np.random.default_rng(0)
    X1 = impl.add_intercept_column(rng.normal(size=(30, 4)), fit_intercept)
    y = (rng.random(30) < 0.4).astype(float)
    w = rng.normal(size=X1.shape[1])
    loss, grad = impl.binary_loss_grad(w, X1, y, 2.0, fit_intercept)
    want_loss = 2.0 * metrics.log_loss(y, special.expit(X1 @ w), normalize=False) + 0.5 * (
        w[:-1] @ w[:-1] if fit_intercept else w @ w
    )
    np.testing.assert_allclose(
        loss,
        want_loss,
        rtol=1e-10,
        err_msg="loss must be C * summed log loss + ||coef||^2 / 2 (intercept unpenalised)",
    )
    numeric = _finite_diff_grad(lambda v: impl.binary_loss_grad(v, X1, y, 2.0, fit_intercept)[0], w)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6, err_msg="gradient is off")


def test_multinomial_gradient_matches_finite_differences(impl):
    """multinomial_loss_grad's gradient (K, p) equals central finite differences."""
    rng = np.random.default_rng(1)
    X1 = impl.add_intercept_column(rng.normal(size=(25, 3)), True)
    Y = np.eye(4)[rng.integers(0, 4, 25)]
    W = rng.normal(size=(4, 4))
    loss, grad = impl.multinomial_loss_grad(W, X1, Y, 0.7, True)
    assert np.shape(grad) == W.shape, f"gradient shape {np.shape(grad)}, expected {W.shape}"
    want = 0.7 * metrics.log_loss(
        Y.argmax(1), special.softmax(X1 @ W.T, axis=1), normalize=False, labels=range(4)
    ) + 0.5 * np.sum(W[:, :-1] ** 2)
    np.testing.assert_allclose(loss, want, rtol=1e-10, err_msg="multinomial loss is off")
    numeric = _finite_diff_grad(lambda V: impl.multinomial_loss_grad(V, X1, Y, 0.7, True)[0], W)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-6, err_msg="gradient is off")


def test_hessians_match_finite_differences_of_the_gradient(impl):
    """binary_hessian and multinomial_hessian equal finite differences of the gradients."""
    rng = np.random.default_rng(2)
    X1 = impl.add_intercept_column(rng.normal(size=(20, 3)), True)
    y = (rng.random(20) < 0.5).astype(float)
    w = rng.normal(size=4)
    H = np.asarray(impl.binary_hessian(w, X1, 1.5, True))
    num = np.column_stack(
        [
            _finite_diff_grad(lambda v: impl.binary_loss_grad(v, X1, y, 1.5, True)[1][j], w)  # noqa: B023 (called before the loop moves on)
            for j in range(4)
        ]
    )
    assert H.shape == (4, 4), f"binary Hessian shape {H.shape}, expected (p, p)"
    np.testing.assert_allclose(H, num, rtol=1e-5, atol=1e-6, err_msg="binary Hessian is off")

    Y = np.eye(3)[rng.integers(0, 3, 20)]
    W = rng.normal(size=(3, 4))
    H = np.asarray(impl.multinomial_hessian(W, X1, 1.5, True))
    assert H.shape == (12, 12), f"multinomial Hessian shape {H.shape}, expected (K*p, K*p)"
    num = np.column_stack(
        [
            _finite_diff_grad(
                lambda V: impl.multinomial_loss_grad(V, X1, Y, 1.5, True)[1].ravel()[j],  # noqa: B023 (called before the loop moves on)
                W,  # noqa: B023 (called before the loop moves on)
            ).ravel()
            for j in range(12)
        ]
    )
    np.testing.assert_allclose(
        H, num, rtol=1e-5, atol=1e-6, err_msg="multinomial Hessian is off (flatten W row by row)"
    )


def test_log_loss_matches_sklearn(impl):
    """log_loss(y_index, log_proba) equals sklearn.metrics.log_loss."""
    rng = np.random.default_rng(3)
    log_p = special.log_softmax(rng.normal(size=(40, 3)), axis=1)
    y = rng.integers(0, 3, 40)
    np.testing.assert_allclose(
        impl.log_loss(y, log_p), metrics.log_loss(y, np.exp(log_p)), rtol=1e-10
    )


# ---------------------------------------------------------------- the estimator vs sklearn


@pytest.mark.parametrize("C", [0.05, 1.0, 100.0])
def test_binary_coefficients_match_sklearn(impl, cancer, C):
    """Newton on breast cancer: coef_ and intercept_ equal sklearn's at the same C (1e-6)."""
    X, y = cancer
    ours, theirs = impl.LogisticRegression(C=C).fit(X, y), _sklearn(X, y, C)
    assert np.shape(ours.coef_) == (1, 30), (
        f"binary coef_ is {np.shape(ours.coef_)}, expected (1, n_features)"
    )
    assert np.shape(ours.intercept_) == (1,), "binary intercept_ must have shape (1,)"
    np.testing.assert_allclose(
        ours.coef_,
        theirs.coef_,
        rtol=1e-6,
        atol=1e-6,
        err_msg=f"coefficients differ from sklearn at C={C}",
    )
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, rtol=1e-6, atol=1e-6)
    assert 1 <= ours.n_iter_ <= 50, f"Newton took {ours.n_iter_} iterations; expected a handful"


@pytest.mark.parametrize("C", [0.1, 10.0])
def test_multinomial_coefficients_match_sklearn(impl, wine, C):
    """Softmax on wine (3 classes): coef_ (3, 13), intercept_ (3,) equal sklearn's."""
    X, y = wine
    ours, theirs = impl.LogisticRegression(C=C).fit(X, y), _sklearn(X, y, C)
    assert np.shape(ours.coef_) == (3, 13), (
        f"coef_ is {np.shape(ours.coef_)}, expected (n_classes, n_features)"
    )
    np.testing.assert_allclose(
        ours.coef_,
        theirs.coef_,
        rtol=1e-6,
        atol=1e-6,
        err_msg="multinomial coefficients differ from sklearn",
    )
    np.testing.assert_allclose(
        ours.intercept_,
        theirs.intercept_,
        rtol=1e-6,
        atol=1e-6,
        err_msg="intercepts differ (sklearn's sum to zero)",
    )


def test_without_intercept_matches_sklearn(impl, cancer, wine):
    """fit_intercept=False matches sklearn and sets intercept_ to zeros."""
    for X, y in (cancer, wine):
        ours = impl.LogisticRegression(C=0.5, fit_intercept=False).fit(X, y)
        theirs = _sklearn(X, y, 0.5, False)
        np.testing.assert_allclose(ours.coef_, theirs.coef_, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(ours.intercept_, 0.0, err_msg="no intercept means zeros")


def test_probabilities_and_log_loss_match_sklearn(impl, wine, cancer):
    """predict_proba, predict and the log loss equal sklearn's on wine and breast cancer."""
    for X, y in (wine, cancer):
        ours, theirs = impl.LogisticRegression(C=0.3).fit(X, y), _sklearn(X, y, 0.3)
        P = np.asarray(ours.predict_proba(X))
        assert P.shape == (len(X), len(np.unique(y))), (
            f"predict_proba shape {P.shape}, expected (n, K)"
        )
        np.testing.assert_allclose(
            P, theirs.predict_proba(X), atol=1e-8, err_msg="probabilities differ"
        )
        np.testing.assert_array_equal(
            ours.predict(X), theirs.predict(X), err_msg="predictions differ"
        )
        np.testing.assert_allclose(np.exp(ours.predict_log_proba(X)), P, rtol=1e-10)
        np.testing.assert_allclose(
            np.asarray(ours.decision_function(X)), theirs.decision_function(X), atol=1e-6
        )
        ours_loss = impl.log_loss(np.searchsorted(ours.classes_, y), ours.predict_log_proba(X))
        np.testing.assert_allclose(
            ours_loss, metrics.log_loss(y, theirs.predict_proba(X)), rtol=1e-7
        )


@pytest.mark.parametrize("load", [load_breast_cancer, load_wine], ids=["binary", "multinomial"])
def test_lbfgs_matches_sklearn(impl, load):
    """solver='lbfgs' reaches sklearn's coefficients (tight tol) on binary and multinomial data."""
    X, y = _scaled(load)
    ours = impl.LogisticRegression(C=0.5, solver="lbfgs", tol=1e-10, max_iter=5000).fit(X, y)
    theirs = _sklearn(X, y, 0.5)
    np.testing.assert_allclose(
        ours.coef_, theirs.coef_, atol=1e-5, err_msg="L-BFGS stopped far from sklearn's optimum"
    )
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=1e-5)
    assert ours.n_iter_ > 0, "n_iter_ counts the L-BFGS iterations"


def test_lbfgs_warns_only_when_stopped_early(impl, cancer):
    """lbfgs cut short by max_iter warns ConvergenceWarning like sklearn's; a converged fit is quiet."""
    from sklearn.exceptions import ConvergenceWarning

    X, y = cancer
    with pytest.warns(ConvergenceWarning):
        linear_model.LogisticRegression(max_iter=2).fit(X, y)
    with pytest.warns(ConvergenceWarning):
        impl.LogisticRegression(solver="lbfgs", max_iter=2).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        impl.LogisticRegression(solver="lbfgs", max_iter=5000).fit(X, y)


def test_gradient_descent_reaches_the_same_optimum(impl):
    """solver='gd' lands within 1e-4 of sklearn on iris, its loss never going up."""
    X, y = _scaled(load_iris)
    ours = impl.LogisticRegression(C=0.2, solver="gd", max_iter=20_000, tol=1e-7).fit(X, y)
    np.testing.assert_allclose(
        ours.coef_,
        _sklearn(X, y, 0.2).coef_,
        atol=1e-4,
        err_msg="gradient descent stopped far from sklearn's optimum",
    )
    hist = np.asarray(ours.loss_history_)
    assert len(hist) == ours.n_iter_ + 1, (
        "loss_history_ holds the loss before each step and at the end"
    )
    assert np.all(np.diff(hist) <= 1e-12), "with step 1/L the loss must never increase"
    assert ours.n_iter_ > 20, "gradient descent needs many more steps than Newton"


def test_gradient_descent_first_step_is_one_over_L(impl, cancer):
    """gd's first step from 0 is -grad F(0) / L with L = C ||X1||_2^2 / 4 + 1 (binary)."""
    from sklearn.exceptions import ConvergenceWarning

    X, y = cancer
    C = 0.3
    with pytest.warns(ConvergenceWarning):
        model = impl.LogisticRegression(C=C, solver="gd", max_iter=1).fit(X, y)
    X1 = np.hstack([X, np.ones((len(X), 1))])
    L = C * np.linalg.norm(X1, 2) ** 2 / 4 + 1
    step = -C * X1.T @ (0.5 - y) / L  # the gradient at w = 0 is C X1^T (sigmoid(0) - y)
    np.testing.assert_allclose(
        np.append(model.coef_.ravel(), model.intercept_),
        step,
        rtol=1e-10,
        err_msg="the first gd step is not -grad F(0) / L",
    )


def test_newton_loss_decreases_and_stops(impl, cancer):
    """Newton's loss_history_ decreases and the final gradient is below tol."""
    X, y = cancer
    model = impl.LogisticRegression(C=1.0, tol=1e-9).fit(X, y)
    hist = np.asarray(model.loss_history_)
    assert np.all(np.diff(hist) < 0), f"Newton's loss must go down every step: {hist}"
    X1 = impl.add_intercept_column(X, True)
    w = np.append(model.coef_.ravel(), model.intercept_)
    _, grad = impl.binary_loss_grad(w, X1, y.astype(float), 1.0, True)
    assert np.abs(grad).max() / len(X) <= 1e-9, "stopped before the gradient reached tol"


def test_heavy_penalty_leaves_only_the_intercept(impl, cancer):
    """With a tiny C, coef_ -> 0 while the unpenalised intercept is the log-odds of the base rate."""
    X, y = cancer
    model = impl.LogisticRegression(C=1e-8).fit(X, y)
    assert np.abs(model.coef_).max() < 1e-5, "coefficients should be shrunk to ~0"
    np.testing.assert_allclose(
        model.intercept_[0],
        special.logit(y.mean()),
        rtol=1e-6,
        err_msg="the intercept must not be penalised",
    )


def test_string_labels_and_classes(impl, wine):
    """Labels of any type work: classes_ is sorted and predict returns those labels."""
    X, y = wine
    names = np.array(["barolo", "grignolino", "barbera"])[y]
    model = impl.LogisticRegression().fit(X, names)
    assert list(model.classes_) == ["barbera", "barolo", "grignolino"], (
        f"classes_ = {model.classes_}"
    )
    assert set(model.predict(X)) <= set(names), "predict must return the original labels"
    assert model.score(X, names) > 0.95


def test_extreme_inputs_give_finite_probabilities(impl, cancer):
    """Huge feature values give probabilities of 0 and 1, never NaN (stable softmax/sigmoid)."""
    X, y = cancer
    model = impl.LogisticRegression(C=10.0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        P = np.asarray(model.predict_proba(X[:5] * 1e4))
    assert np.all(np.isfinite(P)) and np.allclose(P.sum(1), 1.0), f"got {P}"


def test_invalid_settings_raise(impl, cancer):
    """Unknown solver, C <= 0, or a single class raise ValueError."""
    X, y = cancer
    for bad in (dict(solver="sgd"), dict(C=0.0), dict(C=-1.0)):
        with pytest.raises(ValueError):
            impl.LogisticRegression(**bad).fit(X, y)
    with pytest.raises(ValueError):
        impl.LogisticRegression().fit(X, np.zeros(len(X)))


def test_logistic_regression_follows_the_sklearn_api(impl, wine):
    """LogisticRegression works with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = wine
    check_estimator_api(impl.LogisticRegression(), X, y, grid={"C": [0.1, 1.0]})
