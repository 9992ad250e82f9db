"""Linear regression from scratch: least squares, gradient descent, ridge, lasso, polynomials.

Model: y_hat = X w + b. Every estimator here minimises the same objective as its
scikit-learn namesake, so fitted coefficients can be compared number for number:

    LinearRegression:  ||y - X w - b||^2                      (any minimiser)
    Ridge:             ||y - X w - b||^2 + alpha ||w||^2
    Lasso:             ||y - X w - b||^2 / (2 n) + alpha ||w||_1

The intercept b is never penalised. Centring X and y first removes it from the problem:
solve for w on the centred data, then b = mean(y) - mean(X) @ w.
"""

from __future__ import annotations

from itertools import combinations_with_replacement

import numpy as np
from scipy.linalg.blas import daxpy
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted, validate_data

OLS_SOLVERS = ("lstsq", "normal", "gd")


class LinearRegression(RegressorMixin, BaseEstimator):
    """Ordinary least squares, y_hat = X @ coef_ + intercept_ (scikit-learn style).

    solver:
        "lstsq"  - SVD-based least squares on X itself (np.linalg.lstsq): stable, and gives the
                   minimum-norm answer when columns are collinear.
        "normal" - the normal equation (X^T X) w = X^T y via np.linalg.solve: fast for tall X,
                   but squares the condition number and fails when X^T X is singular.
        "gd"     - batch gradient descent on ||X w - y||^2 / (2 n), step 1/L with L the
                   largest eigenvalue of X^T X / n (unless learning_rate is given); stops when
                   the largest gradient entry is below tol, or after max_iter steps.

    Fitted: coef_ (n_features,), intercept_ (float; 0.0 when fit_intercept=False),
    n_iter_ (gradient steps; 0 for the direct solvers), loss_history_ (gd only: the loss
    before every step, then the final loss).
    """

    # scikit-learn estimator checks that do not apply (tests/catalog/test_sklearn_conformance.py)
    _expected_failed_checks = {
        "check_non_transformer_estimators_n_iter": "max_iter only drives solver='gd'; the "
        "default direct solver takes no steps, so n_iter_ is 0 by definition",
    }

    def __init__(
        self,
        solver: str = "lstsq",
        fit_intercept: bool = True,
        learning_rate: float | None = None,
        max_iter: int = 20_000,
        tol: float = 1e-10,
    ):
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.learning_rate = learning_rate
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y) -> LinearRegression:
        """Fit coef_ and intercept_ on X (n_samples, n_features), y (n_samples,); return self.

        Raise ValueError for an unknown solver.
        """
        if self.solver not in OLS_SOLVERS:
            raise ValueError(f"solver={self.solver!r}; expected one of {OLS_SOLVERS}")
        X, y = validate_data(self, X, y, y_numeric=True)  # finite 2-D X, 1-D y; n_features_in_
        X, y, x_mean, y_mean = center(X, y, self.fit_intercept)
        self.n_iter_ = 0
        if self.solver == "lstsq":
            self.coef_ = np.linalg.lstsq(X, y, rcond=None)[0]
        elif self.solver == "normal":
            self.coef_ = np.linalg.solve(X.T @ X, X.T @ y)
        else:
            self.coef_, self.loss_history_ = gradient_descent(
                X, y, self.learning_rate, self.max_iter, self.tol
            )
            self.n_iter_ = len(self.loss_history_) - 1
        self.intercept_ = float(y_mean - x_mean @ self.coef_)
        return self

    def predict(self, X) -> np.ndarray:
        """Predictions X @ coef_ + intercept_, shape (n_samples,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return X @ self.coef_ + self.intercept_


class Ridge(LinearRegression):
    """L2-penalised least squares: minimise ||y - X w - b||^2 + alpha ||w||^2 (sklearn's Ridge).

    Closed form on centred data: (X^T X + alpha I) w = X^T y. When n_samples < n_features the
    equivalent dual system is smaller: w = X^T a with (X X^T + alpha I) a = y.
    Fitted: coef_ (n_features,), intercept_ (float).
    """

    def __init__(self, alpha: float = 1.0, fit_intercept: bool = True):
        self.alpha = alpha
        self.fit_intercept = fit_intercept

    def fit(self, X, y) -> Ridge:
        """Fit coef_ and intercept_ with the closed form (never an explicit inverse); return self."""
        X, y = validate_data(self, X, y, y_numeric=True)
        X, y, x_mean, y_mean = center(X, y, self.fit_intercept)
        n_samples, n_features = X.shape
        if n_features <= n_samples:
            gram = X.T @ X
            gram[np.diag_indices_from(gram)] += self.alpha
            self.coef_ = np.linalg.solve(gram, X.T @ y)
        else:  # the kernel (dual) form solves an n x n system instead of a p x p one
            kernel = X @ X.T
            kernel[np.diag_indices_from(kernel)] += self.alpha
            self.coef_ = X.T @ np.linalg.solve(kernel, y)
        self.intercept_ = float(y_mean - x_mean @ self.coef_)
        return self


class Lasso(LinearRegression):
    """L1-penalised least squares by cyclic coordinate descent (sklearn's Lasso objective):

        minimise ||y - X w - b||^2 / (2 n) + alpha ||w||_1

    Each coordinate step is exact: w_j = S(X_j . r_j, n alpha) / ||X_j||^2, where r_j is the
    residual with feature j left out and S is the soft threshold. Stops when the duality gap
    (an upper bound on how far the objective is from its minimum, in units of the n-scaled
    objective) falls below tol * ||y - mean(y)||^2, the same rule and scale as scikit-learn.

    precompute: True keeps the Gram matrix G = X^T X and updates the correlation c = X^T r
    (O(n_features) per step); False updates the residual r itself (O(n_samples) per step);
    "auto" picks the Gram form when n_samples > n_features.
    Fitted: coef_ (n_features,), intercept_ (float), n_iter_ (sweeps), dual_gap_ (final gap
    divided by n, as in sklearn).
    """

    def __init__(
        self,
        alpha: float = 1.0,
        fit_intercept: bool = True,
        max_iter: int = 1000,
        tol: float = 1e-4,
        precompute: bool | str = "auto",
    ):
        self.alpha = alpha
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol
        self.precompute = precompute

    def fit(self, X, y) -> Lasso:
        """Fit coef_, intercept_, n_iter_ and dual_gap_ by coordinate descent; return self."""
        X, y = validate_data(self, X, y, y_numeric=True)
        X, y, x_mean, y_mean = center(X, y, self.fit_intercept)
        gram = X.shape[0] > X.shape[1] if self.precompute == "auto" else bool(self.precompute)
        self.coef_, gap, self.n_iter_ = lasso_coordinate_descent(
            X, y, self.alpha * X.shape[0], self.tol, self.max_iter, gram
        )
        self.dual_gap_ = gap / X.shape[0]
        self.intercept_ = float(y_mean - x_mean @ self.coef_)
        return self


def center(X, y, fit_intercept: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """(Xc, yc, x_mean, y_mean): float64 copies with column means removed when fit_intercept.

    X must be 2-D (n_samples, n_features) and y 1-D (n_samples,), else ValueError. Without an
    intercept the data are returned unchanged with x_mean = zeros(n_features), y_mean = 0.0.
    """
    X, y = np.array(X, dtype=np.float64), np.array(y, dtype=np.float64)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ValueError(
            f"expected X (n_samples, n_features) and y (n_samples,), got {X.shape} and {y.shape}"
        )
    if not fit_intercept:
        return X, y, np.zeros(X.shape[1]), 0.0
    x_mean, y_mean = X.mean(axis=0), float(y.mean())
    return X - x_mean, y - y_mean, x_mean, y_mean


def gradient_descent(
    X: np.ndarray, y: np.ndarray, learning_rate: float | None, max_iter: int, tol: float
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise ||X w - y||^2 / (2 n) from w = 0; return (w (n_features,), losses).

    Gradient: X^T (X w - y) / n. Default step 1/L, L = sigma_max(X)^2 / n: the largest step
    that guarantees the loss never goes up. Stop when max|gradient| <= tol * (1 + max|X^T y| / n)
    or after max_iter steps. losses holds the loss at every visited w (length n_steps + 1).
    """
    n = X.shape[0]
    step = (
        learning_rate if learning_rate is not None else n / max(np.linalg.norm(X, 2) ** 2, 1e-300)
    )
    scale = 1.0 + np.max(np.abs(X.T @ y), initial=0.0) / n
    w = np.zeros(X.shape[1])
    losses = []
    for _ in range(max_iter + 1):
        residual = X @ w - y
        losses.append(residual @ residual / (2 * n))
        grad = X.T @ residual / n
        if np.max(np.abs(grad), initial=0.0) <= tol * scale or len(losses) > max_iter:
            break
        w -= step * grad
    return w, np.array(losses)


def soft_threshold(x, t: float):
    """S(x, t) = sign(x) * max(|x| - t, 0), elementwise; the proximal step of t * |x|."""
    return np.sign(x) * np.maximum(np.abs(x) - t, 0.0)


def lasso_coordinate_descent(
    X: np.ndarray, y: np.ndarray, l1: float, tol: float, max_iter: int, gram: bool
) -> tuple[np.ndarray, float, int]:
    """Minimise ||y - X w||^2 / 2 + l1 ||w||_1 (X, y already centred); return (w, gap, sweeps).

    One sweep updates every coordinate in order. After each sweep compute the duality gap
    (see `duality_gap`) and stop once gap <= tol * ||y||^2, or after max_iter sweeps.
    gram=True works with G = X^T X and c = X^T r; gram=False keeps the residual r = y - X w.
    """
    col_sq = np.einsum("ij,ij->j", X, X).tolist()  # ||X_j||^2 for every column
    # The inner loop is pure Python, so it runs on Python floats: scalar maths on them is
    # several times faster than on NumPy scalars. Only the O(n) or O(p) update is vector
    # work, done in place by BLAS axpy (state += a * vec, what sklearn's Cython calls):
    # `state -= delta * vecs[j]` would build a temporary and cost two NumPy calls.
    w = [0.0] * X.shape[1]
    yy, Xty = float(y @ y), X.T @ y
    # `state` is what the residual update keeps current: c = X^T r (Gram form) or r itself.
    # Moving w_j by delta changes it by -delta * vecs[j] (row j of G, or column j of X).
    if gram:
        vecs, state = list(X.T @ X), Xty.copy()
    else:
        vecs, state = list(np.asfortranarray(X).T), y.copy()
    # (j, ||X_j||^2, vecs[j]) for every column but all-zero ones, which keep w_j = 0
    coords = [(j, d, vecs[j]) for j, d in enumerate(col_sq) if d > 0]
    size, gap, sweep = len(state), np.inf, 0
    for sweep in range(1, max_iter + 1):  # noqa: B007 (used after the loop)
        for j, d_j, vec in coords:
            w_j = w[j]
            x_j_dot_r = state.item(j) if gram else float(vec @ state)
            rho = x_j_dot_r + w_j * d_j  # X_j . (the residual with feature j left out)
            # soft_threshold(rho, l1) / d_j, spelled out on Python floats for speed
            new = (rho - l1) / d_j if rho > l1 else (rho + l1) / d_j if rho < -l1 else 0.0
            if new != w_j:
                daxpy(vec, state, size, w_j - new)  # positional: keywords cost 30% more
                w[j] = new
        w_arr = np.array(w)
        ry = yy - w_arr @ Xty  # r . y
        if gram:  # r . r and X^T r without forming r: r . r = y . y - w . X^T y - w . c
            rr, xtr = ry - w_arr @ state, state
        else:
            rr, xtr = float(state @ state), X.T @ state
        gap = duality_gap(w_arr, rr, xtr, ry, l1)
        if gap <= tol * yy:
            break
    return np.array(w), gap, sweep


def duality_gap(w: np.ndarray, rr: float, xtr: np.ndarray, ry: float, l1: float) -> float:
    """Gap between the lasso objective P(w) = rr / 2 + l1 ||w||_1 and a dual feasible bound.

    rr = r . r, xtr = X^T r, ry = r . y for the residual r = y - X w. The dual point is the
    residual scaled by s = min(1, l1 / max|X^T r|) so that it satisfies |X^T (s r)| <= l1:
    gap = rr (1 + s^2) / 2 + l1 ||w||_1 - s (r . y), which is >= 0 and 0 only at the optimum.
    """
    dual_norm = np.abs(xtr).max(initial=0.0)
    s = l1 / dual_norm if dual_norm > l1 else 1.0
    return float(0.5 * rr * (1 + s * s) + l1 * np.abs(w).sum() - s * ry)


def polynomial_features(X, degree: int, include_bias: bool = True) -> np.ndarray:
    """All monomials of the columns of X up to `degree`, in scikit-learn's column order.

    X (n_samples, n_features) -> (n_samples, C(n_features + degree, degree)) with the bias,
    one column fewer without. Order: [1], then degree 1 (x0, x1, ...), then degree 2
    (x0^2, x0 x1, ..., x1^2, ...), ...; within a degree, index tuples i1 <= i2 <= ... in
    lexicographic order (itertools.combinations_with_replacement).
    """
    X = np.asarray(X, dtype=np.float64)
    blocks = [np.ones((X.shape[0], 1))] if include_bias else []
    for d in range(1, degree + 1):
        index = np.array(list(combinations_with_replacement(range(X.shape[1]), d)))
        blocks.append(X[:, index].prod(axis=2))  # (n, n_monomials, d) -> (n, n_monomials)
    return np.hstack(blocks) if blocks else np.empty((X.shape[0], 0))
