"""Random forests from scratch on top of our CART trees; the boosting half of the ensembles lab
is ``airoad.classic.boosting``.

Every tree sees a bootstrap sample (n rows drawn with replacement, passed to the tree as integer
sample weights) and tries only ``max_features`` random features at each node; the forest
averages the trees' class proportions (or predictions). The trees come from the decision-tree lab, in its fast version
(``airoad.classic.decision_tree_fast``).
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from airoad.classic.decision_tree_fast import DecisionTreeClassifier, DecisionTreeRegressor, presort


def bootstrap_counts(n: int, rng: np.random.Generator) -> np.ndarray:
    """How many times each of n rows appears in a bootstrap sample of size n -> (n,) int."""
    return np.bincount(rng.integers(0, n, size=n), minlength=n)


def tree_seed(rng: np.random.Generator) -> int:
    """A fresh integer seed for one tree, drawn from the ensemble's generator."""
    return int(rng.integers(2**31 - 1))


# ---------------------------------------------------------------- random forest


class _Forest(BaseEstimator):
    """Bagging shared by the forest classifier and regressor."""

    def _grow_forest(self, X: np.ndarray, target: np.ndarray, tree_class: type) -> None:
        """Fit n_estimators trees, each on its own bootstrap sample and seed."""
        if self.n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, got {self.n_estimators}")
        rng = np.random.default_rng(self.random_state)
        presorted = presort(X)  # every tree reuses one sort of X
        self.estimators_ = []
        for _ in range(self.n_estimators):
            # A bootstrap sample as weights: a row drawn c times weighs c (0 = out of bag).
            counts = (
                bootstrap_counts(len(X), rng) if self.bootstrap else np.ones(len(X), dtype=np.int64)
            )
            tree = tree_class(
                criterion=self.criterion,
                max_depth=self.max_depth,
                min_samples_split=self.min_samples_split,
                min_samples_leaf=self.min_samples_leaf,
                max_features=self.max_features,
                random_state=tree_seed(rng),
            )
            self.estimators_.append(tree.fit(X, target, sample_weight=counts, presorted=presorted))
        self.feature_importances_ = np.mean(
            [t.feature_importances_ for t in self.estimators_], axis=0
        )


class RandomForestClassifier(ClassifierMixin, _Forest):
    """Bootstrap-aggregated CART classifiers with max_features random features per node.

    Fitted: classes_, n_features_in_, estimators_ (list of DecisionTreeClassifier fitted on
    class codes 0..K-1), feature_importances_ (n_features,).
    """

    def __init__(
        self,
        n_estimators: int = 100,
        criterion: str = "gini",
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
        max_features: int | float | str | None = "sqrt",
        bootstrap: bool = True,
        random_state: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> RandomForestClassifier:
        """Grow the forest on X (n, d) and labels y (n,); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        self._grow_forest(X, codes, DecisionTreeClassifier)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Mean of the trees' class proportions -> (n, n_classes)."""
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        proba = np.zeros((len(X), len(self.classes_)))
        for tree in self.estimators_:
            proba[:, tree.classes_] += tree.predict_proba(X)  # a bootstrap may miss a class
        return proba / len(self.estimators_)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class with the highest mean proportion -> (n,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class RandomForestRegressor(RegressorMixin, _Forest):
    """Bootstrap-aggregated CART regressors; predicts the mean of the trees' predictions.

    Fitted: n_features_in_, estimators_ (list of DecisionTreeRegressor), feature_importances_.
    """

    def __init__(
        self,
        n_estimators: int = 100,
        criterion: str = "squared_error",
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
        max_features: int | float | str | None = 1.0,
        bootstrap: bool = True,
        random_state: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.bootstrap = bootstrap
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> RandomForestRegressor:
        """Grow the forest on X (n, d) and targets y (n,); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self._grow_forest(X, y, DecisionTreeRegressor)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Mean of the trees' predictions -> (n,)."""
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return np.mean([tree.predict(X) for tree in self.estimators_], axis=0)
