"""Grader for the clustering lab's Gaussian mixture: EM in log space vs sklearn's GaussianMixture."""

from __future__ import annotations

import numpy as np
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_normal
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.metrics import adjusted_rand_score
from sklearn.mixture import GaussianMixture as SkGMM
from sklearn.mixture._gaussian_mixture import _estimate_gaussian_parameters
from sklearn.preprocessing import StandardScaler

REFERENCE = "airoad.classic.mixture"


def _start(X: np.ndarray, K: int, seed: int = 0, ridge: float = 1e-3) -> dict:
    """Shared initial parameters: K random points as means, equal weights, the data covariance."""
    means = X[np.random.default_rng(seed).choice(len(X), K, replace=False)]
    cov = np.cov(X.T, bias=True) + ridge * np.eye(X.shape[1])
    return dict(
        weights_init=np.full(K, 1.0 / K),
        means_init=means,
        precisions_init=np.stack([np.linalg.inv(cov)] * K),
    )


def test_gaussian_log_density_matches_scipy(impl):
    """gaussian_log_density(X, means, chol) equals scipy's multivariate_normal.logpdf per component."""
    rng = np.random.default_rng(0)
    X, means = rng.normal(size=(20, 3)), rng.normal(size=(2, 3))
    A = rng.normal(size=(2, 3, 3))
    covs = A @ A.transpose(0, 2, 1) + 0.5 * np.eye(3)
    out = impl.gaussian_log_density(X, means, np.linalg.cholesky(covs))
    assert out.shape == (20, 2), f"returned {out.shape}, expected (n_samples, n_components)"
    for k in range(2):
        np.testing.assert_allclose(
            out[:, k], multivariate_normal(means[k], covs[k]).logpdf(X), rtol=1e-10
        )


def test_e_step_is_stable_in_high_dimension(impl):
    """The E-step works in logs: 64-d points far from every mean still get finite responsibilities."""
    X = np.full((3, 64), 40.0)
    means, chol = np.zeros((2, 64)), np.stack([np.eye(64), 2 * np.eye(64)])
    loglik, log_resp = impl.e_step(X, np.array([0.5, 0.5]), means, chol)
    assert np.isfinite(loglik) and np.all(np.isfinite(log_resp)), "underflow: use log-sum-exp"
    np.testing.assert_allclose(np.exp(log_resp).sum(axis=1), 1.0, rtol=1e-12)


def test_m_step_matches_weighted_moments(impl):
    """m_step returns weights n_k / n, weighted means and weighted covariances + reg_covar * I."""
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    resp = rng.dirichlet(np.ones(2), size=50)
    w, mu, cov = impl.m_step(X, resp, reg_covar=1e-4)
    assert w.shape == (2,) and mu.shape == (2, 3) and cov.shape == (2, 3, 3)
    np.testing.assert_allclose(w, resp.mean(axis=0), rtol=1e-10)
    for k in range(2):
        np.testing.assert_allclose(mu[k], np.average(X, axis=0, weights=resp[:, k]), rtol=1e-10)
        ref = np.cov(X.T, aweights=resp[:, k], bias=True) + 1e-4 * np.eye(3)
        np.testing.assert_allclose(cov[k], ref, rtol=1e-9)


def test_m_step_empty_component_like_sklearn(impl):
    """A component with no responsibility keeps sklearn's tiny n_k floor (10 * machine eps)."""
    X = np.random.default_rng(2).normal(size=(40, 2))
    resp = np.zeros((40, 3))
    resp[:25, 0], resp[25:, 1] = 1.0, 1.0
    w, mu, cov = impl.m_step(X, resp, reg_covar=1e-3)
    nk, means, covs = _estimate_gaussian_parameters(X, resp, 1e-3, "full")
    np.testing.assert_allclose(w, nk / nk.sum(), rtol=1e-12, atol=0)
    np.testing.assert_allclose(mu, means, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(cov, covs, rtol=1e-12, atol=1e-300)


@pytest.mark.parametrize("which", ["blobs", "iris", "digits"])
def test_em_matches_sklearn_from_same_init(impl, which):
    """From the same weights/means/precisions, EM gives sklearn's log-likelihood, means and labels."""
    if which == "blobs":
        X, _ = make_blobs(
            n_samples=400, centers=4, cluster_std=[1.0, 2.0, 0.5, 1.5], random_state=0
        )
        K, reg = 4, 1e-6
    elif which == "iris":
        X, K, reg = StandardScaler().fit_transform(load_iris().data), 3, 1e-6
    else:
        X, K, reg = StandardScaler().fit_transform(load_digits().data)[:600], 5, 1e-2
    kw = dict(n_components=K, tol=1e-6, max_iter=300, reg_covar=reg, **_start(X, K))
    ours = impl.GaussianMixture(**kw).fit(X)
    theirs = SkGMM(**kw).fit(X)
    assert ours.lower_bound_ == pytest.approx(theirs.lower_bound_, rel=1e-7, abs=1e-7), (
        "log-likelihood differs"
    )
    assert ours.score(X) == pytest.approx(theirs.score(X), rel=1e-7, abs=1e-7)
    assert ours.n_iter_ == theirs.n_iter_
    np.testing.assert_allclose(ours.means_, theirs.means_, atol=1e-6)
    np.testing.assert_allclose(ours.covariances_, theirs.covariances_, atol=1e-6)
    np.testing.assert_allclose(ours.weights_, theirs.weights_, atol=1e-8)
    assert adjusted_rand_score(ours.predict(X), theirs.predict(X)) == 1.0
    np.testing.assert_allclose(ours.predict_proba(X[:20]), theirs.predict_proba(X[:20]), atol=1e-6)
    assert ours.bic(X) == pytest.approx(theirs.bic(X), rel=1e-7)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000))
def test_em_never_lowers_the_likelihood(impl, seed):
    """Each EM round raises (never lowers) the mean log-likelihood."""
    X, _ = make_blobs(n_samples=150, centers=3, n_features=3, cluster_std=1.5, random_state=seed)
    start = _start(X, 3, seed)
    scores = [
        impl.GaussianMixture(3, max_iter=m, tol=0.0, **start).fit(X).score(X) for m in (1, 2, 4, 8)
    ]
    assert np.all(np.diff(scores) >= -1e-9), f"log-likelihood went down: {scores}"


def test_default_init_is_seeded_and_finds_blobs(impl):
    """The default k-means initialisation is seeded and recovers well separated blobs."""
    X, y = make_blobs(n_samples=300, centers=3, cluster_std=0.8, random_state=2)
    a = impl.GaussianMixture(3, random_state=0).fit(X)
    b = impl.GaussianMixture(3, random_state=0).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    lib = adjusted_rand_score(SkGMM(3, random_state=0).fit(X).predict(X), y)
    assert adjusted_rand_score(a.predict(X), y) >= min(lib, 0.98) - 0.01
    assert a.converged_


def test_estimator_api(impl):
    """GaussianMixture follows the scikit-learn estimator API (clone, Pipeline, NaN rejected)."""
    X, _ = load_iris(return_X_y=True)
    check_estimator_api(impl.GaussianMixture(3, random_state=0), X, None, {"n_components": [2, 3]})
