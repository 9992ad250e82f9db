"""Principal component analysis from scratch: two routes to the same axes.

PCA finds the orthonormal directions along which centred data varies most. With the centred
data matrix Xc (n_samples x n_features) and its covariance C = Xc^T Xc / (n - 1):

    C v_k = lambda_k v_k          (eigen route: v_k are the axes, lambda_k their variances)
    Xc = U S V^T,  lambda_k = S_k^2 / (n - 1)   (SVD route: the rows of V^T are the same axes)

The SVD route never forms C, so it keeps full precision on badly scaled data; the eigen route
works on a small (n_features x n_features) matrix, which is cheaper when n_samples >> n_features.

Sign convention: an axis and its negative are equally valid, so every component is flipped to
make its largest-magnitude entry positive (the rule scikit-learn uses, so results line up).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted, validate_data

SOLVERS = ("svd", "eigh")


class PCA(TransformerMixin, BaseEstimator):
    """Project data onto its top `n_components` principal axes (scikit-learn style).

    Parameters
    ----------
    n_components : int or None
        How many axes to keep; None keeps min(n_samples, n_features).
    solver : "svd" or "eigh"
        "svd": thin SVD of the centred data. "eigh": eigendecomposition of the covariance.

    Fitted attributes
    -----------------
    mean_ : (n_features,) per-feature mean of the training data.
    components_ : (n_components, n_features) orthonormal axes, one per row, sorted by
        decreasing variance, each row's largest-magnitude entry positive.
    explained_variance_ : (n_components,) variance of the data along each axis (ddof=1).
    explained_variance_ratio_ : (n_components,) that variance over the total variance of
        ALL features (so the ratios sum to 1 only when every component is kept).
    singular_values_ : (n_components,) singular values of the centred data.
    n_components_ : int, the number of components actually kept.
    """

    def __init__(self, n_components: int | None = None, solver: str = "svd"):
        self.n_components = n_components
        self.solver = solver

    def fit(self, X, y=None) -> PCA:
        """Learn mean_, components_ and the explained variances from X (n_samples, n_features).

        Raise ValueError for an unknown solver, or when n_components is not an int in
        [1, min(n_samples, n_features)]. `y` is ignored. Returns self.
        """
        X = validate_data(self, X, dtype=np.float64)  # finite 2-D floats; sets n_features_in_
        n_samples, n_features = X.shape
        k = min(n_samples, n_features) if self.n_components is None else self.n_components
        if not (isinstance(k, (int, np.integer)) and 1 <= k <= min(n_samples, n_features)):
            raise ValueError(
                f"n_components={self.n_components!r} must be an int between 1 and "
                f"min(n_samples, n_features) = {min(n_samples, n_features)}"
            )
        if self.solver not in SOLVERS:
            raise ValueError(f"solver={self.solver!r}; expected one of {SOLVERS}")

        self.mean_ = X.mean(axis=0)
        Xc = X - self.mean_
        if self.solver == "svd":
            variances, axes = svd_axes(Xc)
        else:
            variances, axes = eigh_axes(Xc)
        axes = flip_signs(axes)

        self.n_components_ = int(k)
        self.components_ = axes[:k].copy()
        self.explained_variance_ = variances[:k].copy()
        self.explained_variance_ratio_ = self.explained_variance_ / variances.sum()
        self.singular_values_ = np.sqrt(self.explained_variance_ * (n_samples - 1))
        return self

    def transform(self, X) -> np.ndarray:
        """Coordinates of X on the axes: (X - mean_) @ components_.T, shape (n_samples, k)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        return (X - self.mean_) @ self.components_.T

    def fit_transform(self, X, y=None) -> np.ndarray:
        """Fit on X, then return transform(X), shape (n_samples, n_components_)."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Z) -> np.ndarray:
        """Map coordinates Z (n_samples, k) back to feature space: Z @ components_ + mean_.

        With k < n_features this is the best rank-k reconstruction of the original rows.
        """
        return _as_2d_float(Z) @ self.components_ + self.mean_


def svd_axes(Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(variances (r,), axes (r, n_features)) from the thin SVD of centred data Xc.

    r = min(n_samples, n_features); variances = S**2 / (n_samples - 1), sorted descending;
    the axes are the rows of V^T (signs not yet fixed).
    """
    # full_matrices=False: we never need the n x n left factor, only r singular vectors.
    _, S, Vt = np.linalg.svd(Xc, full_matrices=False)
    return S**2 / (Xc.shape[0] - 1), Vt


def eigh_axes(Xc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(variances (r,), axes (r, n_features)) from the eigendecomposition of the covariance.

    C = Xc^T Xc / (n_samples - 1). Return the r = min(n_samples, n_features) largest
    eigenvalues, sorted descending and clipped at 0, with their eigenvectors as rows.
    """
    cov = Xc.T @ Xc / (Xc.shape[0] - 1)
    # eigh is for symmetric matrices: real eigenvalues, ascending order.
    values, vectors = np.linalg.eigh(cov)
    r = min(Xc.shape)
    values, vectors = values[::-1][:r], vectors[:, ::-1][:, :r].T
    # Round-off can push zero eigenvalues slightly below 0; a variance cannot be negative.
    return np.clip(values, 0.0, None), vectors


def flip_signs(axes: np.ndarray) -> np.ndarray:
    """Return `axes` (k, n_features) with each row negated if needed so that its entry of
    largest absolute value is positive (ties: the first such entry)."""
    largest = axes[np.arange(axes.shape[0]), np.argmax(np.abs(axes), axis=1)]
    return axes * np.where(largest < 0, -1.0, 1.0)[:, None]


def _as_2d_float(X) -> np.ndarray:
    """X as a float64 array of shape (n_samples, n_features); ValueError when it is not 2-D."""
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array (n_samples, n_features), got shape {X.shape}")
    return X
