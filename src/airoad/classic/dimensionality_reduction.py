"""Feature selection from scratch: mutual information scores and recursive feature elimination.

Two ways to shrink 784 pixels to a handful of inputs:

- **selection** keeps some of the original columns. A *filter* scores each column on its own
  (mutual information with the label); a *wrapper* (recursive feature elimination, RFE)
  repeatedly fits a model and drops the columns it leans on least.
- **extraction** builds new columns from all of them (PCA: `airoad.foundations.pca.PCA`).

Mutual information between a discrete feature X and a discrete label Y, in nats:

    I(X; Y) = sum_{x, y} p(x, y) log( p(x, y) / (p(x) p(y)) )

with the probabilities replaced by counts over the data (the "plug-in" estimate that
scikit-learn's ``mutual_info_classif(discrete_features=True)`` uses). Continuous features are
first cut into equal-width histogram bins (`histogram_codes`).

t-SNE is not re-written here: the runner uses scikit-learn's ``TSNE``.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone
from sklearn.feature_selection import SelectorMixin
from sklearn.utils.validation import check_is_fitted, validate_data


def histogram_codes(
    X: np.ndarray, n_bins: int, lo: np.ndarray | None = None, hi: np.ndarray | None = None
) -> np.ndarray:
    """Cut every column of X into `n_bins` equal-width bins: int codes in 0..n_bins-1.

    X: (n_samples, n_features). Column j's bins span [lo[j], hi[j]] (default: its own min and
    max); ``code = floor((x - lo) / (hi - lo) * n_bins)``, clipped to [0, n_bins - 1], so the
    maximum falls in the last bin and values outside the range go to the end bins. A constant
    column (hi == lo) gets code 0 everywhere. Returns an int64 array of X's shape.
    """
    X = np.asarray(X, dtype=float)
    lo = X.min(axis=0) if lo is None else np.asarray(lo, dtype=float)
    hi = X.max(axis=0) if hi is None else np.asarray(hi, dtype=float)
    width = hi - lo
    # A zero width would divide by 0; such a column has a single value, hence a single bin.
    scaled = (X - lo) / np.where(width > 0, width, 1.0) * n_bins
    codes = np.clip(np.floor(scaled), 0, n_bins - 1).astype(np.int64)
    return np.where(width > 0, codes, 0)


def mutual_information(x_codes: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Plug-in mutual information (nats) between each discrete column and discrete labels.

    x_codes: (n_samples, n_features) non-negative ints; y: (n_samples,) labels of any type.
    For each column: count the joint table n(x, y), then
    ``I = sum n(x,y)/n * log(n * n(x,y) / (n(x) n(y)))`` over the non-empty cells.
    Returns (n_features,) floats >= 0 (0 for a constant column).
    """
    x_codes = np.asarray(x_codes, dtype=np.int64)
    _, y_idx = np.unique(np.asarray(y), return_inverse=True)
    n, n_classes = y_idx.size, int(y_idx.max()) + 1
    p_y = np.bincount(y_idx, minlength=n_classes) / n
    scores = np.empty(x_codes.shape[1])
    for j in range(x_codes.shape[1]):  # one pass over the samples per feature
        n_levels = int(x_codes[:, j].max()) + 1
        joint = (
            np.bincount(x_codes[:, j] * n_classes + y_idx, minlength=n_levels * n_classes).reshape(
                n_levels, n_classes
            )
            / n
        )
        p_x = joint.sum(axis=1, keepdims=True)
        nz = joint > 0  # 0 * log 0 counts as 0
        ratio = joint[nz] / (p_x * p_y)[nz]
        scores[j] = max(float(np.sum(joint[nz] * np.log(ratio))), 0.0)
    return scores


class MutualInfoSelector(SelectorMixin, BaseEstimator):
    """Keep the `k` features with the highest mutual information with the label (a filter).

    Parameters
    ----------
    k : int
        How many features to keep (at most n_features).
    n_bins : int
        Equal-width histogram bins per feature before counting (2 = binarise at mid-range).

    Fitted attributes
    -----------------
    bin_lo_, bin_hi_ : (n_features,) the training min and max that define each feature's bins.
    scores_ : (n_features,) mutual information of each binned feature with y (nats).
    support_ : (n_features,) bool mask of the k kept features: the k largest scores, ties
        broken towards the lower column index.
    n_features_in_ : int.
    """

    def __init__(self, k: int = 10, n_bins: int = 2):
        self.k = k
        self.n_bins = n_bins

    def fit(self, X, y) -> MutualInfoSelector:
        """Bin X (n_samples, n_features), score every feature against y, keep the top k."""
        X, y = validate_data(self, X, y)
        if not (isinstance(self.k, Integral) and 1 <= self.k <= X.shape[1]):
            raise ValueError(f"k={self.k!r} must be an int in [1, n_features={X.shape[1]}]")
        self.bin_lo_, self.bin_hi_ = X.min(axis=0), X.max(axis=0)
        self.scores_ = mutual_information(histogram_codes(X, self.n_bins), y)
        keep = np.argsort(-self.scores_, kind="stable")[: self.k]
        self.support_ = np.zeros(X.shape[1], dtype=bool)
        self.support_[keep] = True
        return self

    def _get_support_mask(self) -> np.ndarray:
        """The fitted support_ mask; scikit-learn's SelectorMixin builds transform (the kept
        columns, in their original order) and get_support(indices=...) from it."""
        check_is_fitted(self, "support_")
        return self.support_


class RFE(MetaEstimatorMixin, SelectorMixin, BaseEstimator):
    """Recursive feature elimination (a wrapper): fit, drop the weakest features, repeat.

    Each round fits a clone of `estimator` on the surviving features and ranks them by
    importance: ``coef_ ** 2`` (summed over rows when coef_ is 2-D, e.g. one row per class)
    or ``feature_importances_``. The `step` least important are dropped (fewer in the last
    round, to land exactly on n_features_to_select); ties go to the lower column index, as a
    stable sort gives. Same selection as ``sklearn.feature_selection.RFE`` with the same
    estimator.

    Parameters
    ----------
    estimator : a supervised estimator exposing coef_ or feature_importances_ after fit.
    n_features_to_select : int, float in (0, 1) or None
        int: keep that many; float: that fraction of n_features (rounded down); None: half.
    step : int >= 1, or float in (0, 1)
        Features dropped per round; a float is a fraction of the ORIGINAL n_features
        (``max(1, int(step * n_features))``).

    Fitted attributes
    -----------------
    support_ : (n_features,) bool mask of the kept features.
    ranking_ : (n_features,) int; 1 for kept features, and a dropped feature's rank is one
        more than that of the features dropped after it (the earliest dropped rank highest).
    n_features_ : int, how many were kept.
    estimator_ : the estimator refitted on the kept features.
    n_features_in_ : int.
    """

    def __init__(self, estimator=None, n_features_to_select=None, step=1):
        self.estimator = estimator
        self.n_features_to_select = n_features_to_select
        self.step = step

    def fit(self, X, y) -> RFE:
        """Run the elimination on X (n_samples, n_features), y (n_samples,). Returns self."""
        X, y = validate_data(self, X, y, ensure_min_features=2)
        n_features = X.shape[1]
        n_keep, step = self._sizes(n_features)
        support = np.ones(n_features, dtype=bool)
        ranking = np.ones(n_features, dtype=int)
        while support.sum() > n_keep:
            features = np.flatnonzero(support)
            model = clone(self.estimator).fit(X[:, features], y)
            weakest_first = np.argsort(_importances(model), kind="stable")
            n_drop = min(step, int(support.sum()) - n_keep)
            support[features[weakest_first[:n_drop]]] = False
            ranking[~support] += 1  # everything dropped so far moves one rank further down
        self.support_, self.ranking_ = support, ranking
        self.n_features_ = int(support.sum())
        self.estimator_ = clone(self.estimator).fit(X[:, support], y)
        return self

    def _sizes(self, n_features: int) -> tuple[int, int]:
        """(how many features to keep, how many to drop per round), validated."""
        k = self.n_features_to_select
        if k is None:
            n_keep = n_features // 2
        elif isinstance(k, Integral):
            n_keep = int(k)
        else:
            n_keep = int(n_features * k)
        if not 1 <= n_keep <= n_features:
            raise ValueError(f"n_features_to_select={k!r} keeps {n_keep} of {n_features} features")
        if 0.0 < self.step < 1.0:
            step = int(max(1, self.step * n_features))
        elif self.step >= 1:
            step = int(self.step)
        else:
            raise ValueError(f"step={self.step!r} must be >= 1 or a fraction in (0, 1)")
        return n_keep, step

    def _get_support_mask(self) -> np.ndarray:
        """The fitted support_ mask; scikit-learn's SelectorMixin builds transform (the kept
        columns, in their original order) and get_support(indices=...) from it."""
        check_is_fitted(self, "support_")
        return self.support_

    def predict(self, X) -> np.ndarray:
        """estimator_'s predictions on the kept columns of X: shape (n_samples,)."""
        check_is_fitted(self)
        return self.estimator_.predict(self.transform(X))

    def score(self, X, y) -> float:
        """estimator_'s score (accuracy or R^2) on the kept columns of X."""
        return float(self.estimator_.score(self.transform(X), y))


def _importances(model) -> np.ndarray:
    """(n_features,) importance of each input of a fitted model: coef_**2 or feature_importances_."""
    if hasattr(model, "coef_"):
        coef = np.asarray(model.coef_, dtype=float)
        # Squared weights: the sign of a weight says nothing about how much it matters.
        return coef**2 if coef.ndim == 1 else (coef**2).sum(axis=0)
    if hasattr(model, "feature_importances_"):
        return np.asarray(model.feature_importances_, dtype=float)
    raise ValueError(f"{type(model).__name__} has neither coef_ nor feature_importances_")
