"""Bias and variance from scratch: learning curves, validation curves, ridge and lasso
regularisation paths, and a rule that labels each point under-fitting / good / over-fitting.

- A **learning curve** fixes the model and grows the training set: train and validation
  scores meet when more data stops helping (high bias) and stay apart while it still helps
  (high variance).
- A **validation curve** fixes the data and turns one complexity knob (tree depth, ridge
  alpha): validation score rises, peaks, then falls while the training score keeps rising.
- A **regularisation path** follows every coefficient as the penalty alpha shrinks:

    ridge:  w(alpha) = argmin ||y - Xw||^2 + alpha ||w||^2        = V diag(s / (s^2 + alpha)) U^T y
    lasso:  w(alpha) = argmin (1 / 2n) ||y - Xw||^2 + alpha ||w||_1  (coordinate descent)

  where X = U diag(s) V^T is the thin SVD of the centred X (one SVD serves every alpha).

Folds come from ``sklearn.model_selection.check_cv`` and scores from
``sklearn.metrics.check_scoring``, so the curves line up with scikit-learn's
``learning_curve`` / ``validation_curve`` on the same splits.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv

UNDER, GOOD, OVER = "under-fitting", "good", "over-fitting"


def train_sizes_absolute(train_sizes, n_max: int) -> np.ndarray:
    """Turn requested training-set sizes into sorted unique sample counts in [1, n_max].

    Floats are fractions of n_max in (0, 1] (``int(fraction * n_max)``, at least 1); ints are
    counts in [1, n_max]; anything else raises ValueError. Duplicates are dropped.
    """
    sizes = np.asarray(train_sizes)
    if np.issubdtype(sizes.dtype, np.floating):
        if sizes.min() <= 0.0 or sizes.max() > 1.0:
            raise ValueError(f"fractional train_sizes must lie in (0, 1], got {sizes}")
        sizes = np.clip((sizes * n_max).astype(int), 1, n_max)
    elif sizes.min() < 1 or sizes.max() > n_max:
        raise ValueError(f"train_sizes must be counts in [1, {n_max}], got {sizes}")
    return np.unique(sizes)


def learning_curve(estimator, X, y, train_sizes=np.linspace(0.1, 1.0, 5), cv=5, scoring=None):
    """Scores of `estimator` trained on growing prefixes of every training fold.

    For each split (train, test) and each size n: fit a clone on the FIRST n rows of train,
    score it on those n rows and on test. Sizes are relative to the first split's training set.
    Returns (sizes (m,) ints, train_scores (m, n_splits), test_scores (m, n_splits)).
    """
    X, y = np.asarray(X), np.asarray(y)
    splits = list(check_cv(cv, y, classifier=is_classifier(estimator)).split(X, y))
    sizes = train_sizes_absolute(train_sizes, len(splits[0][0]))
    scorer = check_scoring(estimator, scoring=scoring)
    train_scores = np.empty((sizes.size, len(splits)))
    test_scores = np.empty_like(train_scores)
    for j, (train, test) in enumerate(splits):
        for i, n in enumerate(sizes):
            rows = train[:n]
            model = clone(estimator).fit(X[rows], y[rows])
            train_scores[i, j] = scorer(model, X[rows], y[rows])
            test_scores[i, j] = scorer(model, X[test], y[test])
    return sizes, train_scores, test_scores


def validation_curve(estimator, X, y, param_name: str, param_range, cv=5, scoring=None):
    """Train and test scores of `estimator` with `param_name` set to each value of param_range.

    Returns (train_scores (len(param_range), n_splits), test_scores (same shape)); the train
    score is measured on the rows the model was fitted on.
    """
    X, y = np.asarray(X), np.asarray(y)
    splits = list(check_cv(cv, y, classifier=is_classifier(estimator)).split(X, y))
    scorer = check_scoring(estimator, scoring=scoring)
    train_scores = np.empty((len(param_range), len(splits)))
    test_scores = np.empty_like(train_scores)
    for i, value in enumerate(param_range):
        for j, (train, test) in enumerate(splits):
            model = clone(estimator).set_params(**{param_name: value}).fit(X[train], y[train])
            train_scores[i, j] = scorer(model, X[train], y[train])
            test_scores[i, j] = scorer(model, X[test], y[test])
    return train_scores, test_scores


def label_fit_regions(train_scores, val_scores, n_se: float = 1.0) -> np.ndarray:
    """Label each point of a learning or validation curve "under-fitting", "good" or "over-fitting".

    train_scores, val_scores: (n_points, n_splits) per-fold scores on the SAME folds for every
    point, higher = better (or (n_points,) means). With m_v, m_t the fold means,
    gap = m_t - m_v and b = argmax m_v:
      1. "good"          if m_v[b] - m_v[i] <= n_se * SE_i, where SE_i is the standard error of
                         the fold-by-fold differences val[b] - val[i] (std with ddof=1 over
                         sqrt(n_splits); 0 with a single split): not clearly worse than the best;
      2. "over-fitting"  otherwise, if gap[i] > gap[b] (fits its training data better than it
                         generalises, more so than at the optimum: variance);
      3. "under-fitting" otherwise (its gap is no larger than the optimum's: bias).
    The rule needs no ordering of the points. Returns an array of n_points strings.
    """
    train = np.asarray(train_scores, dtype=float)
    val = np.asarray(val_scores, dtype=float)
    train, val = train.reshape(len(train), -1), val.reshape(len(val), -1)
    m_v, gap = val.mean(axis=1), train.mean(axis=1) - val.mean(axis=1)
    b = int(np.argmax(m_v))
    k = val.shape[1]
    # Paired: a fold that is hard for one point is hard for all, so compare fold by fold.
    se = (val[b] - val).std(axis=1, ddof=1) / np.sqrt(k) if k > 1 else np.zeros(len(val))
    return np.where(m_v[b] - m_v <= n_se * se, GOOD, np.where(gap > gap[b], OVER, UNDER))


def ridge_path(X, y, alphas) -> tuple[np.ndarray, np.ndarray]:
    """Ridge coefficients and intercepts for every alpha, from ONE SVD of the centred data.

    Minimises ``||y - Xw - b||^2 + alpha ||w||^2`` (intercept b not penalised, like
    sklearn's Ridge): centre X and y, then w = V diag(s / (s^2 + alpha)) U^T yc and
    b = mean(y) - mean(X) @ w. X: (n, d); y: (n,); alphas: (m,) positive.
    Returns (coefs (d, m), intercepts (m,)).
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    x_mean, y_mean = X.mean(axis=0), y.mean()
    U, s, Vt = np.linalg.svd(X - x_mean, full_matrices=False)
    uty = U.T @ (y - y_mean)  # (r,)
    alphas = np.asarray(alphas, dtype=float)
    shrink = s[:, None] / (s[:, None] ** 2 + alphas[None, :])  # (r, m): the filter factor per alpha
    coefs = Vt.T @ (shrink * uty[:, None])
    return coefs, y_mean - x_mean @ coefs


def lasso_alpha_max(X, y) -> float:
    """Smallest alpha at which every lasso coefficient is 0: ``max_j |x_j . y| / n``."""
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    return float(np.max(np.abs(X.T @ y)) / len(y))


def lasso_path(X, y, alphas, max_iter: int = 10_000, tol: float = 1e-8) -> np.ndarray:
    """Lasso coefficients (no intercept: centre X and y first) for every alpha, by coordinate descent.

    Minimises ``(1 / 2n) ||y - Xw||^2 + alpha ||w||_1``. Each sweep updates every coordinate
    in turn: ``rho_j = x_j . (y - Xw) + ||x_j||^2 w_j``, then
    ``w_j = S(rho_j, n alpha) / ||x_j||^2`` with soft thresholding S(z, t) = sign(z) max(|z| - t, 0).
    Work with the Gram matrix G = X^T X and X^T y (x_j . (y - Xw) = (X^T y)_j - G_j . w), so an
    update costs O(d), not O(n). A sweep that moves no coefficient by more than
    ``tol * max(1, max|w|)`` ends that alpha (or max_iter sweeps). Alphas are solved in the given
    order, each starting from the previous solution (warm start), so pass them decreasing.
    X: (n, d); y: (n,); alphas: (m,). Returns coefs (d, m).
    """
    X, y = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
    n, d = X.shape
    gram, xty = X.T @ X, X.T @ y
    w = np.zeros(d)
    coefs = np.empty((d, len(alphas)))
    for k, alpha in enumerate(alphas):
        for _ in range(max_iter):
            biggest = 0.0
            for j in range(d):  # a loop over features: each update needs the one before it
                if gram[j, j] == 0.0:
                    continue
                rho = xty[j] - gram[j] @ w + gram[j, j] * w[j]
                new = np.sign(rho) * max(abs(rho) - n * alpha, 0.0) / gram[j, j]
                biggest = max(biggest, abs(new - w[j]))
                w[j] = new
            if biggest <= tol * max(1.0, np.abs(w).max()):
                break
        coefs[:, k] = w
    return coefs
