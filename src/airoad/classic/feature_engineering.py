"""Preprocessing transformers from scratch, with scikit-learn's API: SimpleImputer,
StandardScaler, OneHotEncoder, OrdinalEncoder and a cross-fitted TargetEncoder.

Each one learns its statistics in ``fit`` (attributes ending in ``_``), applies them in
``transform`` and names its output columns in ``get_feature_names_out``, so it drops into a
``Pipeline`` or ``ColumnTransformer`` in place of sklearn's. Only SimpleImputer accepts
missing values; the others reject NaN with a ValueError (impute first). Dense float output.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import _check_feature_names_in, check_is_fitted, validate_data

from airoad.classic.model_evaluation import kfold_indices, stratified_kfold_indices


def missing_mask(X: np.ndarray) -> np.ndarray:
    """True where X holds a missing value (NaN, or None in an object array). Same shape as X."""
    X = np.asarray(X)
    if X.dtype.kind == "f":
        return np.isnan(X)
    if X.dtype.kind == "O":
        # NaN is the only value not equal to itself; None needs its own test.
        return (X != X) | np.equal(X, None)
    return np.zeros(X.shape, dtype=bool)


class SimpleImputer(TransformerMixin, BaseEstimator):
    """Replace missing values in each column by a statistic learnt from that column.

    strategy: "mean" / "median" (numeric columns), "most_frequent" (the smallest of the most
    common values, as sklearn breaks ties) or "constant" (fill_value; default 0 for numbers and
    "missing_value" for strings). Learns ``statistics_`` (n_features,).
    """

    def __init__(self, strategy: str = "mean", fill_value=None):
        self.strategy = strategy
        self.fill_value = fill_value

    def fit(self, X, y=None):
        """Learn one fill value per column from its observed (non-missing) entries."""
        X = validate_data(self, X, dtype=None, ensure_all_finite="allow-nan")  # NaN, not inf
        miss = missing_mask(X)
        numeric = X.dtype.kind in "fiub"
        if self.strategy in ("mean", "median"):
            try:
                values = X.astype(float)  # an object array of numbers averages too
            except ValueError as err:
                raise ValueError(
                    f"strategy={self.strategy!r} needs numeric columns; use "
                    "'most_frequent' or 'constant' for strings"
                ) from err
            empty = np.flatnonzero(miss.all(axis=0))
            if empty.size:
                raise ValueError(f"columns {empty.tolist()} have no observed value to average")
            reduce = np.nanmean if self.strategy == "mean" else np.nanmedian
            self.statistics_ = reduce(values, axis=0)
        elif self.strategy == "most_frequent":
            stats = []
            for j in range(X.shape[1]):  # loop over features; np.unique is vectorised
                values, counts = np.unique(X[~miss[:, j], j], return_counts=True)
                if values.size == 0:
                    raise ValueError(f"column {j} has no observed value to count")
                stats.append(values[np.argmax(counts)])  # np.unique sorts: ties -> smallest
            self.statistics_ = np.array(stats, dtype=X.dtype)
        elif self.strategy == "constant":
            fill = self.fill_value
            if fill is None:
                fill = 0 if numeric else "missing_value"
            self.statistics_ = np.full(X.shape[1], fill, dtype=X.dtype if numeric else object)
        else:
            raise ValueError(f"unknown strategy {self.strategy!r}")
        return self

    def transform(self, X):
        """X (n, d) -> (n, d) with every missing entry replaced by its column's statistic."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=None, ensure_all_finite="allow-nan", reset=False)
        filled = np.where(missing_mask(X), self.statistics_[None, :], X)
        return filled.astype(float) if X.dtype.kind in "fiub" else filled

    def get_feature_names_out(self, input_features=None):
        """The input column names, unchanged."""
        check_is_fitted(self)
        return np.asarray(_check_feature_names_in(self, input_features), dtype=object)

    def __sklearn_tags__(self):
        """scikit-learn's tags, marked as accepting NaN (the values it fills in)."""
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags


class StandardScaler(TransformerMixin, BaseEstimator):
    """Standardise each column: ``z = (x - mean_) / scale_``.

    scale_ is the population standard deviation (ddof=0); a constant column gets scale 1 so it
    maps to 0 instead of dividing by zero. Learns mean_, var_, scale_ (n_features,).
    """

    def __init__(self, with_mean: bool = True, with_std: bool = True):
        self.with_mean = with_mean
        self.with_std = with_std

    def fit(self, X, y=None):
        """Learn the column means and standard deviations. X: (n, d) numeric, no NaN."""
        X = validate_data(self, X, dtype=np.float64)
        self.mean_ = X.mean(axis=0)
        self.var_ = X.var(axis=0)
        # Treat a column as constant when its variance is within rounding error of 0 (the
        # same bound as sklearn), so it maps to 0 instead of blowing up noise.
        n, eps = X.shape[0], np.finfo(np.float64).eps
        constant = self.var_ <= n * eps * self.var_ + (n * self.mean_ * eps) ** 2
        self.scale_ = np.where(constant, 1.0, np.sqrt(self.var_))
        self.n_samples_seen_ = X.shape[0]
        return self

    def transform(self, X):
        """X (n, d) -> standardised (n, d) float array."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        if self.with_mean:
            X = X - self.mean_
        return X / self.scale_ if self.with_std else X

    def inverse_transform(self, X):
        """Undo transform: ``x = z * scale_ + mean_``."""
        check_is_fitted(self)
        X = np.asarray(X, dtype=float)
        if self.with_std:
            X = X * self.scale_
        return X + self.mean_ if self.with_mean else X

    def get_feature_names_out(self, input_features=None):
        """The input column names, unchanged."""
        check_is_fitted(self)
        return np.asarray(_check_feature_names_in(self, input_features), dtype=object)


def _category_codes(column: np.ndarray, categories: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes, known): position of each value in categories (any order) and whether it is there."""
    sorter = np.argsort(categories)
    pos = np.clip(np.searchsorted(categories, column, sorter=sorter), 0, len(categories) - 1)
    codes = sorter[pos]
    return codes, categories[codes] == column


def _learn_categories(X: np.ndarray, categories) -> list[np.ndarray]:
    """The sorted unique values per column ("auto") or the given lists, as arrays."""
    if isinstance(categories, str) and categories == "auto":
        try:
            return [np.unique(X[:, j]) for j in range(X.shape[1])]
        except TypeError as err:  # np.unique cannot sort a column that mixes types
            raise TypeError("each column's argument must be all strings or all numbers") from err
    if len(categories) != X.shape[1]:
        raise ValueError(f"got {len(categories)} category lists for {X.shape[1]} columns")
    return [np.asarray(c, dtype=X.dtype) for c in categories]


class OneHotEncoder(TransformerMixin, BaseEstimator):
    """One 0/1 column per category of each input column (dense float output).

    categories_: list of (k_j,) arrays, sorted unique values per column. handle_unknown:
    "error" (raise on a category not seen in fit) or "ignore" (its block is all zeros).
    Output (n, sum_j k_j), blocks in column order; names ``"<column>_<category>"``.
    """

    def __init__(self, handle_unknown: str = "error"):
        self.handle_unknown = handle_unknown

    def fit(self, X, y=None):
        """Learn the categories of each column. X: (n, d) strings or numbers, no missing value."""
        X = validate_data(self, X, dtype=None)
        if self.handle_unknown not in ("error", "ignore"):
            raise ValueError(
                f"handle_unknown must be 'error' or 'ignore', got {self.handle_unknown!r}"
            )
        self.categories_ = _learn_categories(X, "auto")
        return self

    def transform(self, X):
        """X (n, d) -> (n, sum_j k_j) indicator matrix."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=None, reset=False)
        blocks = []
        for j, cats in enumerate(self.categories_):
            codes, known = _category_codes(X[:, j], cats)
            if not known.all() and self.handle_unknown == "error":
                raise ValueError(
                    f"column {j} has unknown categories {np.unique(X[~known, j])[:5]}; "
                    "use handle_unknown='ignore'"
                )
            blocks.append((codes[:, None] == np.arange(len(cats))) & known[:, None])
        return np.hstack(blocks).astype(float)

    def get_feature_names_out(self, input_features=None):
        """``"<input name>_<category>"`` for every output column."""
        check_is_fitted(self)
        names = _check_feature_names_in(self, input_features)
        return np.array(
            [f"{name}_{cat}" for name, cats in zip(names, self.categories_) for cat in cats],
            dtype=object,
        )


class OrdinalEncoder(TransformerMixin, BaseEstimator):
    """Replace each category by its position 0..k_j-1 in categories_ (float output).

    categories: "auto" (sorted unique values) or one list per column in the order you want
    (e.g. ``[["1st", "2nd", "3rd"]]``). handle_unknown: "error" or "use_encoded_value"
    (unknown categories become unknown_value, e.g. -1).
    """

    def __init__(self, categories="auto", handle_unknown: str = "error", unknown_value=None):
        self.categories = categories
        self.handle_unknown = handle_unknown
        self.unknown_value = unknown_value

    def fit(self, X, y=None):
        """Learn (or take) the categories of each column. X: (n, d), no missing value."""
        X = validate_data(self, X, dtype=None)
        if self.handle_unknown == "use_encoded_value" and self.unknown_value is None:
            raise ValueError("handle_unknown='use_encoded_value' needs an unknown_value")
        self.categories_ = _learn_categories(X, self.categories)
        return self

    def transform(self, X):
        """X (n, d) -> (n, d) float codes."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=None, reset=False)
        out = np.empty(X.shape, dtype=float)
        for j, cats in enumerate(self.categories_):
            codes, known = _category_codes(X[:, j], cats)
            if not known.all() and self.handle_unknown != "use_encoded_value":
                raise ValueError(f"column {j} has unknown categories {np.unique(X[~known, j])[:5]}")
            out[:, j] = np.where(
                known, codes, np.nan if self.unknown_value is None else self.unknown_value
            )
        return out

    def get_feature_names_out(self, input_features=None):
        """The input column names, unchanged (one code column per input column)."""
        check_is_fitted(self)
        return np.asarray(_check_feature_names_in(self, input_features), dtype=object)


class TargetEncoder(TransformerMixin, BaseEstimator):
    """Replace each category by a smoothed mean of the target over the rows of that category.

    ``enc = lambda * mean_cat + (1 - lambda) * mean_all``. smooth="auto" uses the empirical-Bayes
    weight ``lambda = n var_y / (n var_y + ss_cat / n)`` (ss_cat: squared deviations of y from
    its category mean, n: category count); a number m gives ``(sum_cat + m mean_all) /
    (n + m)``. Binary y (two labels; the larger is 1) or continuous y. ``fit_transform``
    cross-fits: each row is encoded by statistics of the other folds (stratified K-fold for a
    binary target, K-fold otherwise, with cv/shuffle/random_state), so a row never sees its own
    label. ``fit`` + ``transform`` use statistics of all rows (for new data).
    """

    # scikit-learn estimator checks that do not apply (tests/catalog/test_sklearn_conformance.py)
    _expected_failed_checks = dict.fromkeys(
        ("check_transformer_general", "check_transformer_data_not_an_array"),
        "fit_transform cross-fits (no row sees its own label), so it differs from "
        "fit(X).transform(X) by design",
    )

    def __init__(
        self,
        smooth="auto",
        target_type: str = "auto",
        cv: int = 5,
        shuffle: bool = True,
        random_state: int | None = None,
    ):
        self.smooth = smooth
        self.target_type = target_type
        self.cv = cv
        self.shuffle = shuffle
        self.random_state = random_state

    def _prepare(self, X, y) -> tuple[np.ndarray, np.ndarray]:
        """Validate, learn categories_, target_type_, classes_; return (codes (n, d), y as float)."""
        X, y = validate_data(self, X, y, dtype=None)
        y = np.asarray(y)
        kind = self.target_type
        if kind == "auto":
            fractional = y.dtype.kind == "f" and np.any(y != np.round(y))
            kind = "continuous" if fractional else "binary" if len(np.unique(y)) <= 2 else None
            if kind is None:
                raise ValueError(
                    "y has more than two classes; multiclass target encoding is not "
                    "covered here (use target_type='continuous' for a numeric y)"
                )
        self.target_type_ = kind
        if kind == "binary":
            self.classes_ = np.unique(y)
            y = (y == self.classes_[-1]).astype(float)
        else:
            self.classes_ = None
            y = y.astype(float)
        self.categories_ = _learn_categories(X, "auto")
        codes = np.column_stack(
            [_category_codes(X[:, j], c)[0] for j, c in enumerate(self.categories_)]
        )
        return codes, y

    def _encodings(self, codes: np.ndarray, y: np.ndarray) -> tuple[list[np.ndarray], float]:
        """One (k_j,) array of smoothed category means per column, from these rows; and mean(y)."""
        y_mean, y_var = float(y.mean()), float(y.var())
        out = []
        for j, cats in enumerate(self.categories_):
            k = len(cats)
            counts = np.bincount(codes[:, j], minlength=k).astype(float)
            sums = np.bincount(codes[:, j], weights=y, minlength=k)
            with np.errstate(invalid="ignore", divide="ignore"):
                if isinstance(self.smooth, str) and self.smooth == "auto":
                    means = sums / counts
                    ss = np.bincount(
                        codes[:, j], weights=(y - means[codes[:, j]]) ** 2, minlength=k
                    )
                    lam = y_var * counts / (y_var * counts + ss / counts)
                    enc = lam * means + (1 - lam) * y_mean
                else:
                    enc = (sums + self.smooth * y_mean) / (counts + self.smooth)
            out.append(np.where(np.isnan(enc), y_mean, enc))  # empty category -> global mean
        return out, y_mean

    def fit(self, X, y):
        """Learn categories_, encodings_ (list of (k_j,)) and target_mean_ from all rows."""
        codes, y01 = self._prepare(X, y)
        self.encodings_, self.target_mean_ = self._encodings(codes, y01)
        return self

    def fit_transform(self, X, y=None, **fit_params):
        """Fit on all rows, but return the cross-fitted encoding of X (n, d) to train on."""
        codes, y01 = self._prepare(X, y)
        self.encodings_, self.target_mean_ = self._encodings(codes, y01)
        if self.target_type_ == "binary":
            folds = stratified_kfold_indices(y01, self.cv, self.shuffle, self.random_state)
        else:
            folds = kfold_indices(len(y01), self.cv, self.shuffle, self.random_state)
        out = np.empty(codes.shape, dtype=float)
        for train, test in folds:
            encodings, _ = self._encodings(codes[train], y01[train])
            for j, enc in enumerate(encodings):
                out[test, j] = enc[codes[test, j]]
        return out

    def transform(self, X):
        """X (n, d) -> (n, d) encodings learnt in fit; unseen categories get target_mean_."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=None, reset=False)
        out = np.empty(X.shape, dtype=float)
        for j, cats in enumerate(self.categories_):
            codes, known = _category_codes(X[:, j], cats)
            out[:, j] = np.where(known, self.encodings_[j][codes], self.target_mean_)
        return out

    def get_feature_names_out(self, input_features=None):
        """The input column names, unchanged (one encoded column per input column)."""
        check_is_fitted(self)
        return np.asarray(_check_feature_names_in(self, input_features), dtype=object)
