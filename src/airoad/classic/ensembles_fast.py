"""The ensembles lab's random forests made fast: the same forests as
``airoad.classic.ensembles`` (same bootstrap samples, same seeds, the same trees), with all the
trees grown together by ``airoad.classic.decision_tree_fast.fit_many``.

A forest tree is small work done in many NumPy calls: the fast CART grows a level of a tree
with a fixed number of calls, so a forest of 100 trees pays that per-call overhead 100 times
per level. Grown together, one level of every tree is one pass of those calls on arrays that
hold all the trees' samples side by side. Boosting is sequential (each tree needs the
previous ones) and stays in ``airoad.classic.boosting``.
"""

from __future__ import annotations

import numpy as np

from airoad.classic import ensembles as readable
from airoad.classic.decision_tree_fast import fit_many
from airoad.classic.ensembles import bootstrap_counts, tree_seed

__all__ = ["RandomForestClassifier", "RandomForestRegressor", "bootstrap_counts"]

TREE_PARAMS = ("criterion", "max_depth", "min_samples_split", "min_samples_leaf", "max_features")


class _GrownTogether:
    """Mixed into the readable forests: the same bootstrap weights and seeds, drawn in the same
    order, then every tree fitted by one fit_many call."""

    def _grow_forest(self, X: np.ndarray, target: np.ndarray, tree_class: type) -> None:
        """Fit n_estimators trees, each on its own bootstrap sample and seed, all at once."""
        if self.n_estimators < 1:
            raise ValueError(f"n_estimators must be >= 1, got {self.n_estimators}")
        rng = np.random.default_rng(self.random_state)
        params = {name: getattr(self, name) for name in TREE_PARAMS}
        trees, weights = [], []
        for _ in range(self.n_estimators):  # draws alternate as in the readable forest
            n = len(X)
            weights.append(bootstrap_counts(n, rng) if self.bootstrap else np.ones(n, np.int64))
            trees.append(tree_class(**params, random_state=tree_seed(rng)))
        self.estimators_ = fit_many(trees, X, target, weights)
        self.feature_importances_ = np.mean([t.feature_importances_ for t in trees], axis=0)


class RandomForestClassifier(_GrownTogether, readable.RandomForestClassifier):
    """The readable random forest classifier, its trees grown together."""


class RandomForestRegressor(_GrownTogether, readable.RandomForestRegressor):
    """The readable random forest regressor, its trees grown together."""
