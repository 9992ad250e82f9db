"""Logistic regression from scratch: binary (sigmoid) and multinomial (softmax), fitted by
gradient descent, Newton's method (IRLS) or L-BFGS, with an L2 penalty.

We minimise exactly scikit-learn's objective, so coefficients can be compared number for number:

    F(W) = C * sum_i loss_i(W) + ||coef||^2 / 2          (the intercept is not penalised)

    binary:       loss_i = log(1 + exp(z_i)) - y_i z_i,  z_i = x_i . w + b,  y_i in {0, 1}
    multinomial:  loss_i = -log softmax(z_i)[y_i],       z_i = W x_i + b (one row per class)

C multiplies the SUMMED loss, so a larger C means a weaker penalty. Parameters are stored with
the intercept as the last column: ``params`` (p,) for binary, (K, p) for multinomial, where
p = n_features + 1 when fit_intercept else n_features; the design matrix gets a matching
column of ones (``add_intercept_column``).
"""

from __future__ import annotations

import warnings
from functools import partial

import numpy as np
from scipy.linalg import cho_factor, cho_solve
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

SOLVERS = ("newton", "gd", "lbfgs")


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """Row-wise ``log softmax(z)_k = z_k - log sum_j exp(z_j)`` for Z (n, K) -> (n, K).

    Subtract each row's maximum before exponentiating (log-sum-exp), so scores of 1000 or
    -1000 neither overflow nor turn into log(0).
    """
    Z = np.asarray(Z, dtype=np.float64)
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-z))`` for any shape, without overflow for large |z|.

    For z < 0 use the equal form ``exp(z) / (1 + exp(z))`` so exp never sees a big argument.
    """
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(-np.abs(z))  # in (0, 1]: never overflows
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def add_intercept_column(X: np.ndarray, fit_intercept: bool) -> np.ndarray:
    """X (n, d) -> (n, d + 1) with a last column of ones, or X unchanged if not fit_intercept."""
    if not fit_intercept:
        return X
    return np.hstack([X, np.ones((X.shape[0], 1))])


def _penalty_mask(p: int, fit_intercept: bool) -> np.ndarray:
    """(p,) with 1 for every coefficient and 0 for the intercept column (not penalised)."""
    mask = np.ones(p)
    if fit_intercept:
        mask[-1] = 0.0
    return mask


def binary_loss_grad(
    w: np.ndarray, X1: np.ndarray, y: np.ndarray, C: float, fit_intercept: bool
) -> tuple[float, np.ndarray]:
    """Binary objective F(w) and its gradient.

    w: (p,), X1: (n, p) (intercept column included when fit_intercept), y: (n,) in {0, 1}.
    ``F = C sum_i [log(1 + e^{z_i}) - y_i z_i] + ||w_coef||^2 / 2`` (log1p(e^z) via logaddexp);
    ``grad = C X1^T (sigmoid(z) - y) + mask * w``. Returns (float, (p,) array).
    """
    mask = _penalty_mask(X1.shape[1], fit_intercept)
    z = X1 @ w
    loss = C * np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * np.sum(mask * w * w)
    grad = C * (X1.T @ (sigmoid(z) - y)) + mask * w
    return float(loss), grad


def binary_hessian(w: np.ndarray, X1: np.ndarray, C: float, fit_intercept: bool) -> np.ndarray:
    """Hessian of the binary objective: ``C X1^T diag(s (1 - s)) X1 + diag(mask)``, (p, p).

    s = sigmoid(X1 w). This is the weighted least-squares matrix of IRLS.
    """
    s = sigmoid(X1 @ w)
    H = C * (X1.T @ (X1 * (s * (1.0 - s))[:, None]))
    H[np.diag_indices_from(H)] += _penalty_mask(X1.shape[1], fit_intercept)
    return H


def multinomial_loss_grad(
    W: np.ndarray, X1: np.ndarray, y: np.ndarray, C: float, fit_intercept: bool
) -> tuple[float, np.ndarray]:
    """Multinomial objective F(W) and its gradient.

    W: (K, p), X1: (n, p), y: (n, K) one-hot labels Y.
    ``F = -C sum_i sum_k Y_ik log softmax(X1 W^T)_ik + ||W_coef||^2 / 2``;
    ``grad = C (P - Y)^T X1 + mask * W`` with P the softmax probabilities. Returns
    (float, (K, p) array).
    """
    mask = _penalty_mask(X1.shape[1], fit_intercept)
    log_p = log_softmax(X1 @ W.T)
    loss = -C * np.sum(y * log_p) + 0.5 * np.sum(mask * W * W)
    grad = C * ((np.exp(log_p) - y).T @ X1) + mask * W
    return float(loss), grad


def multinomial_hessian(W: np.ndarray, X1: np.ndarray, C: float, fit_intercept: bool) -> np.ndarray:
    """Hessian of the multinomial objective for the flattened W (row k is block k), (Kp, Kp).

    Block (k, l) is ``C X1^T diag(P_k (delta_kl - P_l)) X1``, plus ``diag(mask)`` on the
    diagonal. Built as a block diagonal of ``X1^T diag(P_k) X1`` minus ``A^T A`` where row i of
    A (n, Kp) is ``outer(P_i, x_i)`` flattened.
    """
    n, p = X1.shape
    K = W.shape[0]
    P = np.exp(log_softmax(X1 @ W.T))
    A = (P[:, :, None] * X1[:, None, :]).reshape(n, K * p)
    H = -(A.T @ A)
    for k in range(K):  # a loop over classes, each block vectorised over samples
        H[k * p : (k + 1) * p, k * p : (k + 1) * p] += X1.T @ (X1 * P[:, k : k + 1])
    H *= C
    H[np.diag_indices_from(H)] += np.tile(_penalty_mask(p, fit_intercept), K)
    return H


def log_loss(y_index: np.ndarray, log_proba: np.ndarray) -> float:
    """Mean negative log-likelihood ``-mean_i log p_i[y_i]`` (sklearn's ``log_loss``).

    y_index: (n,) integer class positions 0..K-1; log_proba: (n, K) log-probabilities.
    """
    y_index = np.asarray(y_index)
    return float(-np.mean(log_proba[np.arange(len(y_index)), y_index]))


class LogisticRegression(ClassifierMixin, BaseEstimator):
    """L2-penalised logistic regression with scikit-learn's objective (see the module docstring).

    Two classes use one sigmoid score; three or more use the multinomial softmax.

    solver:
        "newton" - Newton's method (a.k.a. IRLS): solve ``H d = g`` by Cholesky and
                   step ``W -= t d``, halving t until F decreases enough (backtracking). A
                   handful of iterations; each builds a (Kp, Kp) Hessian.
        "gd"     - gradient descent with the constant step 1/L, where
                   ``L = C c ||X1||_2^2 + 1`` bounds the Hessian (c = 1/4 binary, 1/2 softmax).
        "lbfgs"  - our loss and gradient handed to SciPy's L-BFGS-B (the optimiser is not this
                   lab's lesson): no Hessian, so it scales to many classes and features. The
                   same set-up as scikit-learn's default solver.
    tol: stop when the largest gradient entry of F / (C n_samples) falls below tol. That is
        sklearn's scaling: the mean log loss plus ||coef||^2 / (2 C n), so tol means the same
        whatever C is.
    max_iter: most Newton iterations or gradient steps; a ConvergenceWarning when reached.

    Fitted: classes_ (K,), coef_ (1, d) if binary else (K, d), intercept_ (1,) or (K,),
    n_iter_ (int), loss_history_ (list of F / (C n) before each step and at the end),
    n_features_in_.
    """

    def __init__(
        self,
        C: float = 1.0,
        solver: str = "newton",
        fit_intercept: bool = True,
        max_iter: int = 100,
        tol: float = 1e-10,
    ):
        self.C = C
        self.solver = solver
        self.fit_intercept = fit_intercept
        self.max_iter = max_iter
        self.tol = tol

    def fit(self, X, y) -> LogisticRegression:
        """Fit on X (n_samples, n_features) and labels y (n_samples,) of any type; return self.

        Raise ValueError for an unknown solver, C <= 0, or fewer than two classes.
        """
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r}; expected one of {SOLVERS}")
        if not (np.isfinite(self.C) and self.C > 0):
            raise ValueError(f"C must be a positive finite number, got {self.C}")
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        K = len(self.classes_)
        if K < 2:
            raise ValueError(f"need samples of at least 2 classes, got one class: {self.classes_}")
        X1 = add_intercept_column(X, self.fit_intercept)
        n, p = X1.shape
        if K == 2:
            target = y_index.astype(np.float64)
            params = np.zeros(p)
            loss_grad, hess = binary_loss_grad, binary_hessian
            curvature = 0.25
        else:
            target = np.eye(K)[y_index]
            params = np.zeros((K, p))
            loss_grad, hess = multinomial_loss_grad, multinomial_hessian
            curvature = 0.5
        objective = partial(loss_grad, X1=X1, y=target, C=self.C, fit_intercept=self.fit_intercept)
        hessian = partial(hess, X1=X1, C=self.C, fit_intercept=self.fit_intercept)
        if self.solver == "newton":
            params = self._newton(params, objective, hessian, self.C * n, K > 2)
        elif self.solver == "lbfgs":
            params = self._lbfgs(params, objective, self.C * n)
        else:
            lipschitz = self.C * curvature * np.linalg.norm(X1, 2) ** 2 + 1.0
            params = self._gradient_descent(params, objective, 1.0 / lipschitz, self.C * n)
        params = params.reshape(1, p) if K == 2 else params
        if self.fit_intercept:
            self.coef_, self.intercept_ = params[:, :-1].copy(), params[:, -1].copy()
            if K > 2:
                # Softmax ignores a common shift of all intercepts; centre them like sklearn.
                self.intercept_ -= self.intercept_.mean()
        else:
            self.coef_, self.intercept_ = params.copy(), np.zeros(params.shape[0])
        return self

    def _newton(self, params, objective, hessian, scale: float, multinomial: bool):
        """Damped Newton iterations from params; returns the minimiser (same shape)."""
        shape = params.shape
        loss, grad = objective(params)
        self.loss_history_ = [loss / scale]
        self.n_iter_ = 0
        while np.abs(grad).max() / scale > self.tol:
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"newton did not reach tol={self.tol} in {self.max_iter} iterations",
                    ConvergenceWarning,
                    stacklevel=3,
                )
                break
            H = hessian(params)
            if multinomial and self.fit_intercept:
                # Shifting every intercept equally changes nothing, so H is singular along
                # u = (1 on the intercept entries). The gradient is orthogonal to u, so adding
                # u u^T makes H positive definite without changing the Newton step.
                u = np.zeros(shape)
                u[:, -1] = 1.0
                H += np.outer(u.ravel(), u.ravel())
            # H = L L^T (Cholesky), then two triangular solves: no inverse is ever formed.
            step = cho_solve(cho_factor(H), grad.ravel()).reshape(shape)
            t, slope = 1.0, float(np.sum(grad * step))
            while True:  # backtracking: accept once F drops by at least t * slope / 4
                new_loss, new_grad = objective(params - t * step)
                if new_loss <= loss - 0.25 * t * slope or t < 1e-10:
                    break
                t *= 0.5
            params, loss, grad = params - t * step, new_loss, new_grad
            self.n_iter_ += 1
            self.loss_history_.append(loss / scale)
        return params

    def _lbfgs(self, params, objective, scale: float):
        """Minimise F / scale with scipy.optimize.minimize(method="L-BFGS-B", jac=True),
        gtol=tol, starting from params; returns the minimiser (same shape)."""
        from scipy.optimize import minimize

        shape = params.shape
        self.loss_history_ = []

        def scaled(flat):
            loss, grad = objective(flat.reshape(shape))
            self.loss_history_.append(loss / scale)
            return loss / scale, grad.ravel() / scale

        result = minimize(
            scaled,
            params.ravel(),
            method="L-BFGS-B",
            jac=True,
            options={
                "maxiter": self.max_iter,
                "gtol": self.tol,
                "maxls": 50,
                "ftol": 64 * np.finfo(float).eps,
            },
        )
        if not result.success:
            warnings.warn(
                f"lbfgs stopped before tol={self.tol}: {result.message}",
                ConvergenceWarning,
                stacklevel=3,
            )
        self.n_iter_ = int(result.nit)
        return result.x.reshape(shape)

    def _gradient_descent(self, params, objective, lr: float, scale: float):
        """Plain gradient descent with step lr from params; returns the last iterate."""
        loss, grad = objective(params)
        self.loss_history_ = [loss / scale]
        self.n_iter_ = 0
        while np.abs(grad).max() / scale > self.tol:
            if self.n_iter_ == self.max_iter:
                warnings.warn(
                    f"gd did not reach tol={self.tol} in {self.max_iter} steps; "
                    "raise max_iter or use solver='newton'",
                    ConvergenceWarning,
                    stacklevel=3,
                )
                break
            params = params - lr * grad
            loss, grad = objective(params)
            self.n_iter_ += 1
            self.loss_history_.append(loss / scale)
        return params

    def decision_function(self, X) -> np.ndarray:
        """Scores X @ coef_.T + intercept_: shape (n_samples,) if binary else (n, K)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = X @ self.coef_.T + self.intercept_
        return scores.ravel() if len(self.classes_) == 2 else scores

    def predict_log_proba(self, X) -> np.ndarray:
        """Log-probabilities (n_samples, K), columns in the order of classes_."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            scores = np.column_stack([np.zeros_like(scores), scores])  # sigmoid = 2-class softmax
        return log_softmax(scores)

    def predict_proba(self, X) -> np.ndarray:
        """Probabilities (n_samples, K); every row sums to 1."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """The most probable class label for each row of X, shape (n_samples,)."""
        scores = self.decision_function(X)
        index = (scores > 0).astype(int) if scores.ndim == 1 else scores.argmax(axis=1)
        return self.classes_[index]
