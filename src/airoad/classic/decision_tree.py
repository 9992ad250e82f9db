"""Decision trees (CART) from scratch, written to be read: a classifier (gini or entropy) and a
regressor (squared error), grown recursively and stored in flat arrays like sklearn's ``tree_``.

A node is split on the feature f and threshold t that make its two children purest, i.e. that
minimise ``w_L * impurity(L) + w_R * impurity(R)`` (w = summed sample weight). Impurities of a
node with class proportions p: ``gini = 1 - sum_k p_k**2``, ``entropy = -sum_k p_k log2 p_k``;
for regression the weighted variance ``mean(y**2) - mean(y)**2``.

Everything a node needs is a sum of per-sample "stats": the weighted one-hot labels (classes)
or ``[w, w*y, w*y**2]`` (regression). Sorting a feature once per node and taking a cumulative
sum of the stats gives the left child's stats at every cut at once. A faster version of the same
tree (presorted features, grown breadth first) is ``airoad.classic.decision_tree_fast``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import xlogy
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import _check_sample_weight, check_is_fitted, validate_data

LEAF = -1  # children of a leaf (sklearn's TREE_LEAF)
UNDEFINED = -2  # feature and threshold of a leaf (sklearn's TREE_UNDEFINED)
FEATURE_TOL = 1e-7  # values closer than this count as equal (sklearn's FEATURE_THRESHOLD)
EPS = np.finfo(np.float64).eps  # a node whose impurity is below this is pure


@dataclass
class Tree:
    """A fitted tree as flat arrays indexed by node id; node 0 is the root."""

    children_left: np.ndarray  # (n_nodes,) int64, LEAF at leaves
    children_right: np.ndarray  # (n_nodes,) int64, LEAF at leaves
    feature: np.ndarray  # (n_nodes,) int64, UNDEFINED at leaves
    threshold: np.ndarray  # (n_nodes,) float64: a sample goes left when x[feature] <= threshold
    value: np.ndarray  # (n_nodes, n_classes) class proportions, or (n_nodes, 1) mean of y
    impurity: np.ndarray  # (n_nodes,) float64
    n_node_samples: np.ndarray  # (n_nodes,) int64
    weighted_n_node_samples: np.ndarray  # (n_nodes,) float64 (sum of sample weights)


def weight(stats: np.ndarray, criterion: str) -> np.ndarray:
    """Total sample weight of nodes from their summed stats (..., c) -> (...)."""
    return stats[..., 0] if criterion == "squared_error" else stats.sum(axis=-1)


def impurity(stats: np.ndarray, criterion: str) -> np.ndarray:
    """Impurity of nodes from their summed stats (..., c) -> (...)."""
    w = weight(stats, criterion)
    if criterion == "squared_error":
        mean = stats[..., 1] / w
        return stats[..., 2] / w - mean * mean
    p = stats / w[..., None]
    if criterion == "gini":
        return 1.0 - np.sum(p * p, axis=-1)
    return -np.sum(xlogy(p, p), axis=-1) / np.log(2.0)  # entropy in bits, like sklearn


def best_split(
    X: np.ndarray, stats: np.ndarray, features, criterion: str, min_samples_leaf: int, k: int
) -> tuple[int, float] | None:
    """Best (feature, threshold) of a node holding rows X (n, d) with stats (n, c), or None.

    Features are tried in the given order; features constant in the node are skipped and the
    search stops after k non-constant ones (how sklearn's max_features works). A cut sits
    between two consecutive distinct sorted values, at their midpoint, and must leave
    min_samples_leaf rows on each side. The first cut with the lowest cost wins.
    """
    n, total = len(X), stats.sum(axis=0)
    best_cost, best, tried = np.inf, None, 0
    for f in features:
        order = np.argsort(X[:, f], kind="stable")
        x = X[order, f]
        if x[-1] <= x[0] + FEATURE_TOL:
            continue  # constant here: no cut, and it does not count towards k
        left = np.cumsum(stats[order], axis=0)[:-1]  # cut i: rows 0..i go left
        right = total - left
        n_left = np.arange(1, n)
        valid = (x[1:] > x[:-1] + FEATURE_TOL) & (n_left >= min_samples_leaf)
        valid &= n - n_left >= min_samples_leaf
        with np.errstate(divide="ignore", invalid="ignore"):
            cost = weight(left, criterion) * impurity(left, criterion)
            cost += weight(right, criterion) * impurity(right, criterion)
        cost = np.where(valid, cost, np.inf)
        i = int(np.argmin(cost))
        if cost[i] < best_cost:
            best_cost, best = cost[i], (int(f), x[i] / 2.0 + x[i + 1] / 2.0)  # sklearn's midpoint
        tried += 1
        if tried == k:
            break
    return best


def feature_importances(tree: Tree, n_features: int) -> np.ndarray:
    """Impurity decrease credited to each feature, summed over nodes and normalised to 1 -> (d,).

    decrease(node) = w * impurity - w_L * impurity_L - w_R * impurity_R.
    """
    inner = np.flatnonzero(tree.children_left != LEAF)
    w, imp = tree.weighted_n_node_samples, tree.impurity
    lc, rc = tree.children_left[inner], tree.children_right[inner]
    gain = w[inner] * imp[inner] - w[lc] * imp[lc] - w[rc] * imp[rc]
    out = np.bincount(tree.feature[inner], weights=gain, minlength=n_features)
    return out / out.sum() if out.sum() > 0 else out


def resolve_max_features(max_features: int | float | str | None, n_features: int) -> int:
    """sklearn's meanings: None = all, "sqrt", "log2", an int, or a float fraction of d."""
    named = {None: n_features, "sqrt": int(np.sqrt(n_features)), "log2": int(np.log2(n_features))}
    if isinstance(max_features, str) or max_features is None:
        if max_features in named:
            return max(1, named[max_features])
    elif isinstance(max_features, (int, np.integer)) and max_features >= 1:
        return min(int(max_features), n_features)
    elif isinstance(max_features, float) and 0.0 < max_features <= 1.0:
        return max(1, int(max_features * n_features))
    raise ValueError(
        f"max_features must be None, 'sqrt', 'log2', an int >= 1 or a float in (0, 1], "
        f"got {max_features!r}"
    )


class _BaseTree(BaseEstimator):
    """What the classifier and the regressor share: growing, applying and validating."""

    def _fit_tree(self, X: np.ndarray, stats: np.ndarray, sample_weight: np.ndarray) -> None:
        """Check the hyper-parameters, grow ``self.tree_`` and set feature_importances_."""
        if self.max_depth is not None and self.max_depth < 1:
            raise ValueError(f"max_depth must be None or >= 1, got {self.max_depth}")
        if self.min_samples_split < 2 or self.min_samples_leaf < 1:
            raise ValueError("min_samples_split must be >= 2 and min_samples_leaf >= 1")
        self.tree_ = self._build(X, stats, sample_weight)
        self.feature_importances_ = feature_importances(self.tree_, X.shape[1])

    def _build(self, X: np.ndarray, stats: np.ndarray, sample_weight: np.ndarray) -> Tree:
        """Grow the tree depth first from the root; node ids come in the order nodes are made."""
        keep = sample_weight > 0  # like sklearn, zero-weight rows take no part in the tree
        X, stats = X[keep], stats[keep]
        rng = np.random.default_rng(self.random_state)
        k = resolve_max_features(self.max_features, X.shape[1])  # features tried per node
        max_depth = np.inf if self.max_depth is None else self.max_depth
        n_features = X.shape[1]
        nodes: list[dict] = []  # one dict per node, in id order

        def grow(rows: np.ndarray, depth: int) -> int:
            """Make the node holding `rows` and, recursively, its subtree; return its id."""
            node_id, summed = len(nodes), stats[rows].sum(axis=0)
            imp = impurity(summed, self.criterion)
            nodes.append(dict(stats=summed, imp=imp, n=len(rows), left=LEAF, right=LEAF))
            nodes[node_id].update(feature=UNDEFINED, threshold=float(UNDEFINED))
            too_small = len(rows) < max(self.min_samples_split, 2 * self.min_samples_leaf)
            if depth >= max_depth or too_small or imp <= EPS:
                return node_id  # a leaf
            # max_features: all features in a random order, the first k non-constant ones tried
            features = rng.permutation(n_features) if k < n_features else range(n_features)
            split = best_split(
                X[rows], stats[rows], features, self.criterion, self.min_samples_leaf, k
            )
            if split is None:
                return node_id  # no cut leaves min_samples_leaf rows on both sides
            f, t = split
            goes_left = X[rows, f] <= t
            left = grow(rows[goes_left], depth + 1)  # the left subtree gets the next ids
            right = grow(rows[~goes_left], depth + 1)
            nodes[node_id].update(feature=f, threshold=t, left=left, right=right)
            return node_id

        grow(np.arange(len(X)), 0)
        column = {key: np.array([node[key] for node in nodes]) for key in nodes[0]}
        w = weight(column["stats"], self.criterion)
        if self.criterion == "squared_error":
            value = column["stats"][:, 1:2] / w[:, None]  # the mean of y
        else:
            value = column["stats"] / w[:, None]  # class proportions
        return Tree(
            children_left=column["left"],
            children_right=column["right"],
            feature=column["feature"],
            threshold=column["threshold"].astype(np.float64),
            value=value,
            impurity=column["imp"],
            n_node_samples=column["n"],
            weighted_n_node_samples=w,
        )

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Leaf id of every row of X (n, d) -> (n,) int, found by walking down from the root."""
        check_is_fitted(self, "tree_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        t, leaf = self.tree_, np.empty(len(X), dtype=np.int64)

        def descend(node: int, rows: np.ndarray) -> None:
            if t.children_left[node] == LEAF:
                leaf[rows] = node
                return
            goes_left = X[rows, t.feature[node]] <= t.threshold[node]
            descend(t.children_left[node], rows[goes_left])
            descend(t.children_right[node], rows[~goes_left])

        descend(0, np.arange(len(X)))
        return leaf

    def get_depth(self) -> int:
        """Length of the longest root-to-leaf path (a lone root has depth 0)."""
        check_is_fitted(self, "tree_")
        depth, t = np.zeros(len(self.tree_.feature), dtype=np.int64), self.tree_
        for node in np.flatnonzero(
            t.children_left != LEAF
        ):  # a parent's id is below its children's
            depth[[t.children_left[node], t.children_right[node]]] = depth[node] + 1
        return int(depth.max())

    def get_n_leaves(self) -> int:
        """Number of leaves."""
        check_is_fitted(self, "tree_")
        return int(np.sum(self.tree_.children_left == LEAF))


class DecisionTreeClassifier(ClassifierMixin, _BaseTree):
    """CART classifier: splits minimise the weighted gini or entropy of the children.

    Fitted: classes_ (n_classes,), n_features_in_, tree_ (Tree; value = class proportions),
    feature_importances_ (n_features,).
    """

    def __init__(
        self,
        criterion: str = "gini",
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
        max_features: int | float | str | None = None,
        random_state: int | None = None,
    ):
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> DecisionTreeClassifier:
        """Grow the tree on X (n, d) and labels y (n,), sample_weight (n,) >= 0; returns self."""
        if self.criterion not in ("gini", "entropy"):
            raise ValueError(f"criterion must be 'gini' or 'entropy', got {self.criterion!r}")
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        self.classes_, codes = np.unique(y, return_inverse=True)
        w = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        stats = np.eye(len(self.classes_))[codes] * w[:, None]  # weighted one-hot labels
        self._fit_tree(X, stats, w)
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class proportions of the leaf each row lands in -> (n, n_classes)."""
        leaves = self.apply(X)  # first: it checks the model is fitted
        return self.tree_.value[leaves]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Majority class of the leaf each row lands in -> (n,)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]


class DecisionTreeRegressor(RegressorMixin, _BaseTree):
    """CART regressor: splits minimise the children's summed squared error; leaves predict means.

    Fitted: n_features_in_, tree_ (Tree; value = mean of y, shape (n_nodes, 1)),
    feature_importances_ (n_features,).
    """

    def __init__(
        self,
        criterion: str = "squared_error",
        max_depth: int | None = None,
        min_samples_split: int = 2,
        min_samples_leaf: int = 1,
        max_features: int | float | str | None = None,
        random_state: int | None = None,
    ):
        self.criterion = criterion
        self.max_depth = max_depth
        self.min_samples_split = min_samples_split
        self.min_samples_leaf = min_samples_leaf
        self.max_features = max_features
        self.random_state = random_state

    def fit(
        self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None
    ) -> DecisionTreeRegressor:
        """Grow the tree on X (n, d) and targets y (n,), sample_weight (n,) >= 0; returns self."""
        if self.criterion != "squared_error":
            raise ValueError(f"criterion must be 'squared_error', got {self.criterion!r}")
        X, y = validate_data(self, X, y, dtype=np.float64, y_numeric=True)
        w = _check_sample_weight(sample_weight, X, ensure_non_negative=True)
        y = y.astype(np.float64)
        self._fit_tree(X, np.stack([w, w * y, w * y * y], axis=1), w)  # stats: [w, wy, wy^2]
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Mean target of the leaf each row lands in -> (n,)."""
        leaves = self.apply(X)
        return self.tree_.value[leaves, 0]
