"""Naive Bayes from scratch: Gaussian for measurements, multinomial for word counts.

Bayes' theorem with the "naive" assumption that features are independent within a class:

    log P(c | x) = log P(c) + sum_j log P(x_j | c) - log P(x)

The sum is the joint log-likelihood ``jll[i, c] = log P(c) + log P(x_i | c)``; the evidence
``log P(x_i) = logsumexp_c jll[i, c]`` normalises it. Everything stays in log space: a review
of 300 words multiplies 300 probabilities near 1e-4, which is 1e-1200 - zero in float64 -
while its log, about -2760, is an ordinary number.

    Gaussian:     log P(x_j | c) = -log(2 pi var_cj) / 2 - (x_j - theta_cj)^2 / (2 var_cj)
    Multinomial:  log P(x | c) = sum_j x_j log p_cj  (+ a term without c, dropped),
                  p_cj = (N_cj + alpha) / (N_c + alpha d)   (Laplace/Lidstone smoothing)

Both follow scikit-learn's GaussianNB and MultinomialNB, fitted attributes included.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, check_non_negative, validate_data


def log_normalize(jll: np.ndarray) -> np.ndarray:
    """Turn joint log-likelihoods (n, K) into log posteriors: subtract each row's logsumexp.

    ``logsumexp(a) = m + log sum exp(a - m)`` with m the row max, so rows near -3000 work.
    """
    m = jll.max(axis=1, keepdims=True)
    return jll - (m + np.log(np.exp(jll - m).sum(axis=1, keepdims=True)))


def one_hot(y_index: np.ndarray, n_classes: int) -> np.ndarray:
    """Class positions (n,) in 0..K-1 -> (n, K) float indicator matrix Y with Y[i, y_i] = 1."""
    return np.eye(n_classes)[y_index]


class _NaiveBayes(ClassifierMixin, BaseEstimator):
    """What both models share: everything follows from ``predict_joint_log_proba(X)`` (n, K),
    ``log P(c) + log P(x | c)``, which each model below defines."""

    def predict_log_proba(self, X) -> np.ndarray:
        """Log posteriors ``log P(c | x)`` (n_samples, K), columns in classes_ order."""
        return log_normalize(self.predict_joint_log_proba(X))

    def predict_proba(self, X) -> np.ndarray:
        """Posteriors ``P(c | x)`` (n_samples, K); every row sums to 1."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X) -> np.ndarray:
        """The class with the largest joint log-likelihood (= largest posterior), shape (n,)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_joint_log_proba(X), axis=1)]


class GaussianNB(_NaiveBayes):
    """Each feature is normal within each class: N(theta_cj, var_cj).

    priors: class priors (K,) or None to use the class frequencies.
    var_smoothing: ``epsilon_ = var_smoothing * max_j var(X[:, j])`` is added to every
    variance, so a feature that is constant within a class does not divide by zero.
    Fitted: classes_ (K,), class_count_ (K,), class_prior_ (K,), theta_ (K, d) means,
    var_ (K, d) variances (ddof=0) plus epsilon_, epsilon_ (float), n_features_in_.
    """

    def __init__(self, priors=None, var_smoothing: float = 1e-9):
        self.priors = priors
        self.var_smoothing = var_smoothing

    def fit(self, X, y) -> GaussianNB:
        """Per-class means, variances and priors from X (n, d) and labels y (n,); return self.

        Raise ValueError when priors do not match the classes or do not sum to 1.
        """
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        Y = one_hot(y_index, len(self.classes_))
        self.class_count_ = Y.sum(axis=0)
        # Class sums via one matrix product (K, n) @ (n, d); then E[x^2] would lose digits,
        # so the variance uses the centred values of each row's own class.
        self.theta_ = (Y.T @ X) / self.class_count_[:, None]
        self.epsilon_ = float(self.var_smoothing * np.var(X, axis=0).max())
        centred = X - self.theta_[y_index]
        self.var_ = (Y.T @ centred**2) / self.class_count_[:, None] + self.epsilon_
        if self.priors is None:
            self.class_prior_ = self.class_count_ / self.class_count_.sum()
        else:
            priors = np.asarray(self.priors, dtype=np.float64)
            if (
                priors.shape != self.classes_.shape
                or not np.isclose(priors.sum(), 1.0)
                or np.any(priors < 0)
            ):
                raise ValueError(
                    f"priors must be {len(self.classes_)} non-negative numbers summing to 1"
                )
            self.class_prior_ = priors
        return self

    def predict_joint_log_proba(self, X) -> np.ndarray:
        """``log prior_c - sum_j [log(2 pi var_cj) + (x_j - theta_cj)^2 / var_cj] / 2``, (n, K)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        jll = np.empty((X.shape[0], len(self.classes_)))
        with np.errstate(divide="ignore"):  # a prior of 0 gives log 0 = -inf, as it should
            log_prior = np.log(self.class_prior_)
        for c in range(len(self.classes_)):  # a loop over classes keeps memory at (n, d)
            log_norm = -0.5 * np.sum(np.log(2.0 * np.pi * self.var_[c]))
            sq = np.sum((X - self.theta_[c]) ** 2 / self.var_[c], axis=1)
            jll[:, c] = log_prior[c] + log_norm - 0.5 * sq
        return jll


class MultinomialNB(_NaiveBayes):
    """Word counts (or any non-negative counts) drawn from one multinomial per class.

    alpha: additive smoothing (1 = Laplace); fit_prior: learn class priors from the data
    (else uniform); class_prior: fixed priors (K,) that override both. X may be a dense array
    or a scipy sparse matrix (what CountVectorizer returns).
    Fitted: classes_, class_count_ (K,), feature_count_ (K, d) summed counts,
    class_log_prior_ (K,), feature_log_prob_ (K, d) = log p_cj, n_features_in_.
    """

    def __init__(self, alpha: float = 1.0, fit_prior: bool = True, class_prior=None):
        self.alpha = alpha
        self.fit_prior = fit_prior
        self.class_prior = class_prior

    def fit(self, X, y) -> MultinomialNB:
        """Count features per class and smooth them; X (n, d) non-negative, y (n,). Return self.

        Raise ValueError for negative counts, alpha < 0, or a class_prior of the wrong length.
        """
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {self.alpha}")
        X, y = validate_data(self, X, y, accept_sparse="csr", dtype=np.float64)
        check_non_negative(X, "MultinomialNB (input X)")
        check_classification_targets(y)
        self.classes_, y_index = np.unique(y, return_inverse=True)
        Y = one_hot(y_index, len(self.classes_))
        self.class_count_ = Y.sum(axis=0)
        # (d, n) @ (n, K) works for dense and sparse X alike; transpose to (K, d).
        self.feature_count_ = np.asarray(X.T @ Y).T
        smoothed = self.feature_count_ + self.alpha
        with np.errstate(divide="ignore"):  # alpha = 0 and an unseen word: log 0 = -inf
            self.feature_log_prob_ = np.log(smoothed) - np.log(smoothed.sum(axis=1, keepdims=True))
        K = len(self.classes_)
        if self.class_prior is not None:
            prior = np.asarray(self.class_prior, dtype=np.float64)
            if prior.shape != (K,):
                raise ValueError(f"class_prior needs {K} values, got {prior.shape}")
            self.class_log_prior_ = np.log(prior)
        elif self.fit_prior:
            self.class_log_prior_ = np.log(self.class_count_) - np.log(self.class_count_.sum())
        else:
            self.class_log_prior_ = np.full(K, -np.log(K))
        return self

    def predict_joint_log_proba(self, X) -> np.ndarray:
        """``class_log_prior_ + X @ feature_log_prob_.T``, (n_samples, K); X dense or sparse."""
        check_is_fitted(self)
        X = validate_data(self, X, accept_sparse="csr", dtype=np.float64, reset=False)
        check_non_negative(X, "MultinomialNB (input X)")
        return np.asarray(X @ self.feature_log_prob_.T) + self.class_log_prior_

    def __sklearn_tags__(self):
        """scikit-learn's tags: non-negative counts, maybe sparse; a count model scores poorly
        on the dense blobs its checks use (scikit-learn tags its MultinomialNB the same)."""
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.classifier_tags.poor_score = True
        return tags
