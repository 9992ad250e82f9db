"""Boosting from scratch on top of our CART trees: gradient boosting (squared loss and binary
log loss) and AdaBoost (SAMME on stumps); the random forest half of the ensembles lab is
``airoad.classic.ensembles``.

- Gradient boosting: start from a constant F0 (mean of y, or the prior log-odds
  ``log(p / (1 - p))``), then add trees fitted to the negative gradient of the loss,
  ``F_m = F_{m-1} + lr * tree_m``. For squared loss the negative gradient is the residual
  ``y - F``. For log loss it is ``y - sigmoid(F)`` and each leaf's value is replaced by one
  Newton step, ``sum(y - p) / sum(p (1 - p))`` over the leaf's samples (as sklearn does).
- AdaBoost (SAMME): fit a stump on weighted data, weighted error e, stump weight
  ``alpha = lr * (log((1 - e) / e) + log(K - 1))``, multiply the weights of misclassified rows
  by ``exp(alpha)``, renormalise; the ensemble votes with the alphas.

The trees come from the decision-tree lab, in its fast version
(``airoad.classic.decision_tree_fast``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.special import expit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

from airoad.classic.decision_tree_fast import (
    LEAF,
    DecisionTreeClassifier,
    DecisionTreeRegressor,
    presort,
)
from airoad.classic.ensembles import tree_seed

# ---------------------------------------------------------------- gradient boosting


class _GradientBoosting(BaseEstimator):
    """Stage-wise boosting of regression trees shared by the regressor and the classifier."""

    def __init__(
        self,
        n_estimators: int = 100,
        learning_rate: float = 0.1,
        max_depth: int | None = 3,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
        random_state: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _boost(self, X: np.ndarray, y: np.ndarray) -> None:
        """Fit init_ and n_estimators trees to the negative gradient; records train_score_ (loss)."""
        if self.n_estimators < 1 or self.learning_rate <= 0:
            raise ValueError("n_estimators must be >= 1 and learning_rate > 0")
        rng = np.random.default_rng(self.random_state)
        self.init_ = self._initial_raw(y)
        raw = np.full(len(y), self.init_)
        presorted = presort(X)  # X never changes between stages: sort it once
        self.estimators_, self.train_score_ = [], np.empty(self.n_estimators)
        for m in range(self.n_estimators):
            tree = DecisionTreeRegressor(
                max_depth=self.max_depth,
                min_samples_split=self.min_samples_split,
                min_samples_leaf=self.min_samples_leaf,
                random_state=tree_seed(rng),
            )
            tree.fit(X, self._negative_gradient(y, raw), presorted=presorted)
            leaves = tree.apply(X)
            self._update_leaves(tree, leaves, y, raw)
            raw += self.learning_rate * tree.tree_.value[leaves, 0]
            self.estimators_.append(tree)
            self.train_score_[m] = self._loss(y, raw)

    def _update_leaves(
        self, tree: DecisionTreeRegressor, leaves: np.ndarray, y: np.ndarray, raw: np.ndarray
    ) -> None:
        """Replace leaf values after the tree is grown; squared loss keeps the leaf means."""

    def staged_raw(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """Raw predictions F_m(X) (n,) after each stage m = 1..n_estimators."""
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        raw = np.full(len(X), self.init_)
        for tree in self.estimators_:
            raw = raw + self.learning_rate * tree.tree_.value[tree.apply(X), 0]
            yield raw

    def _raw(self, X: np.ndarray) -> np.ndarray:
        """Raw predictions of the full ensemble: init_ + lr * sum of the trees -> (n,)."""
        for raw in self.staged_raw(X):  # noqa: B007 (used after the loop)
            pass
        return raw


class GradientBoostingRegressor(RegressorMixin, _GradientBoosting):
    """Gradient boosting with squared loss: every tree fits the residuals y - F.

    Fitted: init_ (mean of y), estimators_ (list of DecisionTreeRegressor), train_score_
    (n_estimators,) mean squared error on the training data after each stage.
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> GradientBoostingRegressor:
        """Boost on X (n, d) and targets y (n,); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        self._boost(X, y)
        return self

    def _initial_raw(self, y: np.ndarray) -> float:
        """F0 = mean(y), the best constant under squared loss."""
        return float(np.mean(y))

    def _negative_gradient(self, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """-d/dF of (y - F)**2 / 2 = the residual y - F."""
        return y - raw

    def _loss(self, y: np.ndarray, raw: np.ndarray) -> float:
        """Mean squared error."""
        return float(np.mean((y - raw) ** 2))

    def predict(self, X: np.ndarray) -> np.ndarray:
        """init_ + lr * sum of the trees' predictions -> (n,)."""
        return self._raw(X)

    def staged_predict(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """Predictions (n,) after each stage."""
        yield from self.staged_raw(X)


class GradientBoostingClassifier(ClassifierMixin, _GradientBoosting):
    """Binary gradient boosting with log loss; F is the log-odds of the second class.

    Fitted: classes_ (2,), init_ (prior log-odds), estimators_ (DecisionTreeRegressor whose
    leaf values hold the Newton steps), train_score_ (n_estimators,) binomial deviance.
    """

    def fit(self, X: np.ndarray, y: np.ndarray) -> GradientBoostingClassifier:
        """Boost on X (n, d) and two-class labels y (n,); returns self."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        if len(self.classes_) != 2:
            raise ValueError(
                "Only binary classification is supported (F is the log-odds of one class); "
                f"got {len(self.classes_)} classes"
            )
        self._boost(X, codes.astype(np.float64))
        return self

    def __sklearn_tags__(self):
        """scikit-learn's tags, marked binary-only so its checks pass two-class data."""
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_class = False
        return tags

    def _initial_raw(self, y: np.ndarray) -> float:
        """F0 = log(p / (1 - p)) with p the share of the positive class (the prior log-odds)."""
        p = float(np.mean(y))
        return float(np.log(p / (1.0 - p)))

    def _negative_gradient(self, y: np.ndarray, raw: np.ndarray) -> np.ndarray:
        """-d/dF of the log loss = y - sigmoid(F)."""
        return y - expit(raw)

    def _update_leaves(
        self, tree: DecisionTreeRegressor, leaves: np.ndarray, y: np.ndarray, raw: np.ndarray
    ) -> None:
        """One Newton step per leaf: sum(y - p) / sum(p (1 - p)) over its samples (0 if the sum is ~0)."""
        p = expit(raw)
        n_nodes = len(tree.tree_.feature)
        num = np.bincount(leaves, weights=y - p, minlength=n_nodes)
        den = np.bincount(leaves, weights=p * (1.0 - p), minlength=n_nodes)
        is_leaf = tree.tree_.children_left == LEAF
        safe = np.abs(den) >= 1e-150
        step = np.divide(num, den, out=np.zeros(n_nodes), where=safe)
        tree.tree_.value[is_leaf, 0] = step[is_leaf]

    def _loss(self, y: np.ndarray, raw: np.ndarray) -> float:
        """Binomial deviance (twice the mean log loss, as sklearn reports it):
        2 * mean(log(1 + e^F) - y F), with logaddexp so that it stays finite."""
        return float(2.0 * np.mean(np.logaddexp(0.0, raw) - y * raw))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Log-odds of classes_[1] -> (n,)."""
        return self._raw(X)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """[1 - sigmoid(F), sigmoid(F)] -> (n, 2)."""
        p = expit(self._raw(X))
        return np.column_stack([1.0 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """classes_[1] where sigmoid(F) > 0.5, else classes_[0] -> (n,)."""
        raw = self._raw(X)
        return self.classes_[(raw > 0).astype(int)]

    def staged_predict_proba(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """predict_proba (n, 2) after each stage."""
        for raw in self.staged_raw(X):
            p = expit(raw)
            yield np.column_stack([1.0 - p, p])

    def staged_predict(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """predict (n,) after each stage."""
        for raw in self.staged_raw(X):
            yield self.classes_[(raw > 0).astype(int)]


# ---------------------------------------------------------------- AdaBoost


class AdaBoostClassifier(ClassifierMixin, BaseEstimator):
    """AdaBoost-SAMME: weighted votes of shallow trees (stumps by default), K classes.

    Fitted: classes_, estimators_ (list of DecisionTreeClassifier on class codes),
    estimator_weights_ (alphas), estimator_errors_ (weighted errors), one per estimator.
    """

    def __init__(
        self,
        n_estimators: int = 50,
        learning_rate: float = 1.0,
        max_depth: int = 1,
        random_state: int | None = None,
    ):
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.max_depth = max_depth
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> AdaBoostClassifier:
        """Boost stumps on X (n, d) and labels y (n,); returns self. Stops early on a perfect stump."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError(
                "AdaBoostClassifier needs samples of at least 2 classes; got one class"
            )
        rng = np.random.default_rng(self.random_state)
        w = np.full(len(y), 1.0 / len(y))
        presorted = presort(X)  # X never changes between rounds: sort it once
        self.estimators_, alphas, errors = [], [], []
        for _ in range(self.n_estimators):
            stump = DecisionTreeClassifier(max_depth=self.max_depth, random_state=tree_seed(rng))
            miss = stump.fit(X, codes, sample_weight=w, presorted=presorted).predict(X) != codes
            error = float(np.sum(w[miss]) / np.sum(w))
            if error >= 1.0 - 1.0 / k:  # no better than chance: discard it and stop
                if not self.estimators_:
                    raise ValueError(
                        "the first weak learner is no better than chance; cannot boost"
                    )
                break
            self.estimators_.append(stump)
            errors.append(error)
            if error <= 0.0:  # a perfect learner: it alone decides
                alphas.append(1.0)
                break
            alpha = self.learning_rate * (np.log((1.0 - error) / error) + np.log(k - 1.0))
            alphas.append(alpha)
            w = w * np.exp(alpha * miss)  # misclassified rows gain weight
            w /= w.sum()
        self.estimator_weights_, self.estimator_errors_ = np.array(alphas), np.array(errors)
        return self

    def staged_decision_function(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """Normalised weighted votes after each stage: (n,) for two classes (positive favours
        classes_[1]), else (n, K). A stump votes alpha for its class, -alpha / (K - 1) for the rest."""
        check_is_fitted(self, "estimators_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        k = len(self.classes_)
        votes, total = np.zeros((len(X), k)), 0.0
        for stump, alpha in zip(self.estimators_, self.estimator_weights_):
            hit = stump.predict(X)[:, None] == np.arange(k)
            votes += np.where(hit, alpha, -alpha / (k - 1))
            total += alpha
            scores = votes / total
            yield scores[:, 1] - scores[:, 0] if k == 2 else scores

    def staged_predict(self, X: np.ndarray) -> Iterator[np.ndarray]:
        """predict (n,) after each stage."""
        for scores in self.staged_decision_function(X):
            best = (scores > 0).astype(int) if scores.ndim == 1 else np.argmax(scores, axis=1)
            yield self.classes_[best]

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Weighted votes of all stages (see staged_decision_function)."""
        for scores in self.staged_decision_function(X):  # noqa: B007 (used after the loop)
            pass
        return scores

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The class with the most weighted votes -> (n,)."""
        for pred in self.staged_predict(X):  # noqa: B007 (used after the loop)
            pass
        return pred

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """softmax of the votes / (K - 1) (Zhu et al. 2009), as sklearn does -> (n, K).

        With two classes the score s is v1 - v0, so the votes are [-s/2, s/2].
        """
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return softmax(np.column_stack([-scores, scores]) / 2.0, axis=1)
        return softmax(scores / (len(self.classes_) - 1), axis=1)
