"""k-nearest neighbours from scratch: brute-force Euclidean search and a (weighted) vote.

To classify x, find the k training points closest to x and let them vote:

    uniform:   score_c(x) = #{neighbours of class c}
    distance:  score_c(x) = sum over neighbours j of class c of 1 / ||x - x_j||
    predict:   argmax_c score_c(x);   predict_proba: score_c / sum_c score_c

All distances at once come from one matrix product:
``||a - b||^2 = ||a||^2 - 2 a.b + ||b||^2``. Rounding can make that a tiny negative number
for (near-)identical points, so it is clipped at 0 before any square root.

Tie-breaking (documented because it decides predictions on integer data such as digits):
- among training points at the same distance, the one with the LOWER index comes first,
  and it wins a place at the k-th position; scikit-learn's brute search keeps the point it
  saw first as well, except when several points tie exactly at the k-th place (then its heap
  may keep another of them; distances are the same, and the vote on digits is unchanged);
- a tied vote goes to the class that comes first in ``classes_`` (argmax takes the first
  maximum), like scikit-learn;
- with weights="distance", a query at distance 0 from some training points is decided by
  those points alone (each weight 1, the others 0), as in scikit-learn.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

WEIGHTS = ("uniform", "distance")
CHUNK_ELEMENTS = 2**22  # distances held at once per chunk of queries (32 MB of float64)


def squared_distances(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """All squared Euclidean distances: A (n, d), B (m, d) -> (n, m), entries >= 0.

    ``D[i, j] = ||A_i||^2 - 2 A_i . B_j + ||B_j||^2``: one matrix product instead of an
    (n, m, d) difference array; clipped at 0 because rounding can go slightly negative.
    """
    D = A @ B.T
    D *= -2.0
    D += np.einsum("ij,ij->i", A, A)[:, None]
    D += np.einsum("ij,ij->i", B, B)[None, :]
    return np.maximum(D, 0.0, out=D)


def k_smallest(D: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k smallest entries of each row of D (n, m), in increasing order.

    Returns (values (n, k), column indices (n, k)). Equal values come lowest index first.
    k passes of ``argmin`` (which returns the first minimum, hence the tie rule), each pass
    masking the column it found with +inf: O(k m) per row, cheaper than a sort for small k.
    D is overwritten.
    """
    rows = np.arange(D.shape[0])
    idx = np.empty((D.shape[0], k), dtype=np.intp)
    vals = np.empty((D.shape[0], k))
    for j in range(k):  # a loop over neighbours; each pass covers every query at once
        idx[:, j] = D.argmin(axis=1)
        vals[:, j] = D[rows, idx[:, j]]
        D[rows, idx[:, j]] = np.inf
    return vals, idx


def vote_weights(distances: np.ndarray, weights: str) -> np.ndarray:
    """Vote weight of each neighbour, distances (n, k) -> (n, k).

    "uniform": all ones. "distance": 1 / distance, except in a row holding a zero distance,
    where the zero-distance neighbours get 1 and the others 0 (no division by zero).
    """
    if weights == "uniform":
        return np.ones_like(distances)
    exact = distances == 0.0
    with np.errstate(divide="ignore"):
        w = 1.0 / distances
    has_exact = exact.any(axis=1)
    w[has_exact] = exact[has_exact]
    return w


def class_votes(neighbour_classes: np.ndarray, weights: np.ndarray, n_classes: int) -> np.ndarray:
    """Sum the weights per class: neighbour_classes (n, k) ints in 0..K-1, weights (n, k)
    -> (n, K) with ``votes[i, c] = sum of weights[i, j] where neighbour_classes[i, j] == c``."""
    votes = np.zeros((neighbour_classes.shape[0], n_classes))
    rows = np.arange(neighbour_classes.shape[0])[:, None]
    np.add.at(votes, (rows, neighbour_classes), weights)  # unbuffered: repeated classes add up
    return votes


class KNeighborsClassifier(ClassifierMixin, BaseEstimator):
    """k-nearest-neighbour classifier, brute-force Euclidean search (scikit-learn's API).

    n_neighbors: k. weights: "uniform" or "distance" (see the module docstring for ties).
    Fitted: X_fit_ (n_train, d) the stored training data, y_index_ (n_train,) class
    positions, classes_ (K,), n_features_in_, n_samples_fit_.
    """

    def __init__(self, n_neighbors: int = 5, weights: str = "uniform"):
        self.n_neighbors = n_neighbors
        self.weights = weights

    def fit(self, X, y) -> KNeighborsClassifier:
        """Store X (n, d) and y (n,) (labels of any type); kNN learns nothing else. Return self.

        Raise ValueError for an unknown weights value or n_neighbors < 1.
        """
        if self.weights not in WEIGHTS:
            raise ValueError(f"weights={self.weights!r}; expected one of {WEIGHTS}")
        if int(self.n_neighbors) != self.n_neighbors or self.n_neighbors < 1:
            raise ValueError(f"n_neighbors must be a positive integer, got {self.n_neighbors}")
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, self.y_index_ = np.unique(y, return_inverse=True)
        self.X_fit_ = X
        self.n_samples_fit_ = X.shape[0]
        return self

    def kneighbors(self, X, n_neighbors: int | None = None, return_distance: bool = True):
        """Distances (n, k) and indices (n, k) into the training set of each row's k nearest
        training points, nearest first; only the indices when return_distance is False.

        Queries go in chunks so the (chunk, n_train) distance block stays near CHUNK_ELEMENTS.
        Raise ValueError when k exceeds the number of training points.
        """
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        k = self.n_neighbors if n_neighbors is None else n_neighbors
        if k > self.n_samples_fit_:
            raise ValueError(f"n_neighbors={k} exceeds the {self.n_samples_fit_} training points")
        dist = np.empty((X.shape[0], k))
        ind = np.empty((X.shape[0], k), dtype=np.intp)
        step = max(1, CHUNK_ELEMENTS // self.n_samples_fit_)
        for start in range(0, X.shape[0], step):  # a loop over chunks, not over samples
            block = slice(start, start + step)
            sq, ind[block] = k_smallest(squared_distances(X[block], self.X_fit_), k)
            dist[block] = np.sqrt(sq)
        return (dist, ind) if return_distance else ind

    def predict_proba(self, X) -> np.ndarray:
        """Vote shares (n_samples, K), columns in the order of classes_; rows sum to 1."""
        dist, ind = self.kneighbors(X)
        votes = class_votes(
            self.y_index_[ind], vote_weights(dist, self.weights), len(self.classes_)
        )
        return votes / votes.sum(axis=1, keepdims=True)

    def predict(self, X) -> np.ndarray:
        """The class with the most (weighted) votes, first in classes_ on a tie; shape (n,)."""
        check_is_fitted(self)
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
