"""Gaussian mixture model with full covariances, fitted by expectation-maximisation (EM).

p(x) = sum_k w_k N(x | mu_k, Sigma_k). EM alternates
  E-step: responsibilities r_ik = w_k N(x_i | mu_k, Sigma_k) / p(x_i), computed in log space
          (log-sum-exp over k) so that tiny densities in 64 dimensions never underflow;
  M-step: n_k = sum_i r_ik, w_k = n_k / n, mu_k = sum_i r_ik x_i / n_k,
          Sigma_k = sum_i r_ik (x_i - mu_k)(x_i - mu_k)^T / n_k + reg_covar * I,
and every round cannot lower the mean log-likelihood (1/n) sum_i log p(x_i). The Gaussian
log-density uses the Cholesky factor L of Sigma (Sigma = L L^T): with z = L^{-1}(x - mu) from a
triangular solve, log N = -(d log 2 pi + log det Sigma + ||z||^2) / 2 and log det Sigma =
2 sum log diag L; no covariance is ever inverted. The tests compare with
sklearn.mixture.GaussianMixture started from the same parameters.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.linalg import cho_solve, solve_triangular
from scipy.special import logsumexp
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted, validate_data

from airoad.classic.clustering import KMeans


def gaussian_log_density(X: np.ndarray, means: np.ndarray, chol: np.ndarray) -> np.ndarray:
    """log N(x_i | mu_k, Sigma_k) for X (n, d), means (K, d) and the lower Cholesky factors
    chol (K, d, d) of the covariances -> (n, K)."""
    n, d = X.shape
    out = np.empty((n, len(means)))
    for k in range(len(means)):  # a loop over components, each one vectorised over samples
        z = solve_triangular(chol[k], (X - means[k]).T, lower=True)  # (d, n)
        log_det = 2.0 * np.log(np.diag(chol[k])).sum()
        out[:, k] = -0.5 * (d * np.log(2 * np.pi) + log_det + (z * z).sum(axis=0))
    return out


def e_step(
    X: np.ndarray, weights: np.ndarray, means: np.ndarray, chol: np.ndarray
) -> tuple[float, np.ndarray]:
    """Mean log-likelihood (1/n) sum_i log p(x_i) and the log-responsibilities (n, K)."""
    weighted = gaussian_log_density(X, means, chol) + np.log(weights)
    log_px = logsumexp(weighted, axis=1)
    return float(log_px.mean()), weighted - log_px[:, None]


def m_step(
    X: np.ndarray, resp: np.ndarray, reg_covar: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights (K,), means (K, d) and covariances (K, d, d) from responsibilities resp (n, K).

    reg_covar is added to every diagonal so a component that collapses on a few points keeps
    a positive-definite covariance. (10 * machine eps is added to n_k, as scikit-learn does.)
    """
    nk = resp.sum(axis=0) + 10 * np.finfo(resp.dtype).eps
    means = resp.T @ X / nk[:, None]
    d = X.shape[1]
    covs = np.empty((len(nk), d, d))
    for k in range(len(nk)):
        diff = X - means[k]
        covs[k] = (resp[:, k, None] * diff).T @ diff / nk[k]
        covs[k].flat[:: d + 1] += reg_covar
    return nk / nk.sum(), means, covs


def cholesky_factors(covs: np.ndarray) -> np.ndarray:
    """Lower Cholesky factors (K, d, d) of covariances (K, d, d); a clear error if one is not
    positive definite (raise reg_covar)."""
    try:
        return np.linalg.cholesky(covs)
    except np.linalg.LinAlgError as err:
        raise ValueError("a covariance is not positive definite: increase reg_covar") from err


class GaussianMixture(DensityMixin, BaseEstimator):
    """Full-covariance Gaussian mixture fitted by EM.

    init_params: "kmeans" (hard k-means labels as the first responsibilities) or "random"
    (random responsibilities); weights_init (K,), means_init (K, d) and precisions_init
    (K, d, d) override what the initialisation gives, like scikit-learn. Stops when the mean
    log-likelihood improves by less than tol. Fitted: weights_, means_, covariances_,
    converged_, n_iter_, lower_bound_ (the mean log-likelihood at the last E-step).
    """

    def __init__(
        self,
        n_components: int = 1,
        tol: float = 1e-3,
        reg_covar: float = 1e-6,
        max_iter: int = 100,
        init_params: str = "kmeans",
        weights_init=None,
        means_init=None,
        precisions_init=None,
        random_state: int | None = None,
    ):
        self.n_components = n_components
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state

    def _initial_parameters(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Weights, means, covariances to start EM from."""
        n, K = len(X), self.n_components
        rng = np.random.default_rng(self.random_state)
        if self.init_params == "kmeans":
            seed = int(rng.integers(2**31 - 1))
            resp = np.eye(K)[KMeans(K, n_init=1, random_state=seed).fit(X).labels_]
        elif self.init_params == "random":
            resp = rng.uniform(size=(n, K))
            resp /= resp.sum(axis=1, keepdims=True)
        else:
            raise ValueError(f"init_params must be 'kmeans' or 'random', got {self.init_params!r}")
        weights, means, covs = m_step(X, resp, self.reg_covar)
        if self.weights_init is not None:
            weights = np.asarray(self.weights_init, dtype=float)
        if self.means_init is not None:
            means = np.asarray(self.means_init, dtype=float)
        if self.precisions_init is not None:
            P = np.asarray(self.precisions_init, dtype=float)
            # Sigma = P^{-1}, once, through P's Cholesky factor (a solve, not an inverse).
            covs = np.stack(
                [cho_solve((np.linalg.cholesky(p), True), np.eye(p.shape[0])) for p in P]
            )
        if means.shape != (K, X.shape[1]) or weights.shape != (K,) or covs.shape[0] != K:
            raise ValueError(
                f"initial parameters must describe {K} components in {X.shape[1]} dims"
            )
        return weights, means, covs

    def fit(self, X, y=None) -> GaussianMixture:
        """EM from the initial parameters until the mean log-likelihood gains less than tol."""
        X = validate_data(self, X, dtype=np.float64, ensure_min_samples=2)
        if not 1 <= self.n_components <= len(X):
            raise ValueError(f"n_components={self.n_components} must be in [1, n_samples={len(X)}]")
        weights, means, covs = self._initial_parameters(X)
        chol = cholesky_factors(covs)
        lower_bound, self.converged_ = -np.inf, False
        n_iter = 0
        for n_iter in range(1, self.max_iter + 1):  # noqa: B007 (used after the loop)
            previous = lower_bound
            lower_bound, log_resp = e_step(X, weights, means, chol)
            weights, means, covs = m_step(X, np.exp(log_resp), self.reg_covar)
            chol = cholesky_factors(covs)
            if abs(lower_bound - previous) < self.tol:
                self.converged_ = True
                break
        if not self.converged_:
            warnings.warn(
                "EM did not converge: raise max_iter or tol", ConvergenceWarning, stacklevel=2
            )
        self.weights_, self.means_, self.covariances_ = weights, means, covs
        self._chol = chol
        self.lower_bound_, self.n_iter_ = lower_bound, n_iter
        return self

    def score_samples(self, X) -> np.ndarray:
        """log p(x_i) under the fitted mixture: (n,)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return logsumexp(
            gaussian_log_density(X, self.means_, self._chol) + np.log(self.weights_), axis=1
        )

    def score(self, X, y=None) -> float:
        """Mean log-likelihood of X."""
        return float(self.score_samples(X).mean())

    def predict_proba(self, X) -> np.ndarray:
        """Responsibilities p(component k | x_i): (n, K), rows sum to 1."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return np.exp(e_step(X, self.weights_, self.means_, self._chol)[1])

    def predict(self, X) -> np.ndarray:
        """Most responsible component for every sample: (n,)."""
        return self.predict_proba(X).argmax(axis=1)

    def bic(self, X) -> float:
        """Bayesian information criterion -2 n loglik + p log n (lower is better), with
        p = (K - 1) + K d + K d (d + 1) / 2 free parameters."""
        X = validate_data(self, X, dtype=np.float64, reset=False)
        K, d = self.means_.shape
        p = (K - 1) + K * d + K * d * (d + 1) / 2
        return float(-2 * self.score(X) * len(X) + p * np.log(len(X)))
