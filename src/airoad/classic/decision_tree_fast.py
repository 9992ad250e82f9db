"""The decision-tree lab's CART made fast: the same estimators, splits and fitted arrays as
``airoad.classic.decision_tree`` (the readable version the lesson builds), grown another way.
The ensembles lab grows its forests and boosted trees with these classes.

The readable tree sorts every feature again at every node, in a recursion that visits one node
at a time. Here the criterion's algebra is the same (``node_impurity`` and ``children_cost`` are
its vectorised forms over many nodes and cuts), but the work is organised differently.

How the search stays vectorised: every feature is sorted ONCE (presort); the tree then grows
level by level (breadth first) and keeps, for each feature, its samples sorted by (node, value).
Running sums along that order give the left child's class counts (or sums of y) at every cut of
every node at once; thresholds are midpoints between consecutive distinct values, as in sklearn.
Splitting only selects each row's left-goers, then its right-goers, so no level sorts again.
When a node tries only a few random features (max_features, random forests) the level instead
sorts just those, by (node, rank in the presort). Node ids are breadth first (sklearn's are
depth first).

Three things keep a level cheap. Several trees grow together when a forest asks
(``fit_many``): a level of every tree is one pass of the same NumPy calls, so small trees stop
paying Python's per-call overhead each. With fewer than 65,537 samples the ranks are 16-bit,
which NumPy sorts by radix in linear time (a sort by rank, then by node). With many classes the
cuts are scored from class codes and weights, not from (classes x samples) running sums
(``left_at_cuts`` in ``decision_tree_fast_split``).
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.validation import check_is_fitted, validate_data

from airoad.classic import decision_tree as readable
from airoad.classic.decision_tree import (
    EPS,
    LEAF,
    UNDEFINED,
    Tree,
    feature_importances,
    resolve_max_features,
)
from airoad.classic.decision_tree_fast_split import (
    best_splits,
    children_cost,
    draw_features,
    drawn_splits,
    node_impurity,
    two_valued_columns,
)

MANY_CLASSES = 4  # from this many classes on, cuts are scored from class codes (left_at_cuts)

__all__ = [
    "DecisionTreeClassifier",
    "DecisionTreeRegressor",
    "apply_tree",
    "children_cost",
    "fit_many",
    "grow_trees",
    "node_impurity",
    "presort",
]


def presort(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort every feature once: order (d, n) sample ids by increasing X[:, f] in row f, and
    values (d, n) the sorted X[:, f]. Ensembles compute this once and share it between trees."""
    XT = np.ascontiguousarray(X.T, dtype=np.float64)
    order = np.argsort(XT, axis=1, kind="stable").astype(np.int32)  # int32: half the memory traffic
    return order, np.take_along_axis(XT, order, axis=1)


def grow_trees(
    order: np.ndarray,
    values: np.ndarray,
    stats: np.ndarray,
    criterion: str,
    max_depth: int | None = None,
    min_samples_split: int = 2,
    min_samples_leaf: int = 1,
    max_features: int | None = None,
    rngs: list[np.random.Generator] | None = None,
    keep: np.ndarray | None = None,
) -> list[Tree]:
    """Grow T CART trees level by level, all at once, from presorted features (order, values:
    (d, n), see presort) -> T Trees (node ids breadth first).

    stats: (c, T * n) per-sample stats, tree t's in columns t * n .. t * n + n - 1:
    ``w * onehot(y)`` or ``[w, w*y, w*y**2]`` with that tree's weights w. keep: (T * n,) bool,
    the samples that take part in each tree (None = all). rngs: one generator per tree (T).
    A node stops (becomes a leaf) at max_depth, with fewer than min_samples_split samples, with
    fewer than 2 * min_samples_leaf, when it is pure, or when no cut leaves min_samples_leaf on
    both sides. max_features: features tried per node (None = all).

    The trees share every NumPy call: a batch's samples are ids ``t * n + i`` laid side by
    side, one root per tree, and a node never mixes trees, so each tree is exactly the tree
    it would be alone (its own random draws, in its own order).
    """
    rngs = [np.random.default_rng()] if rngs is None else rngs
    n, (d, _) = order.shape[1], order.shape
    k = d if max_features is None else max_features
    max_depth = np.inf if max_depth is None else max_depth
    XT = np.zeros((d, n))  # X transposed, rebuilt from the presort
    np.put_along_axis(XT, order, values, axis=1)
    if k < d:  # a forest tries a few features per node: sort only those, level by level
        small = n <= 2**16  # 16-bit ranks sort by radix (see sort_within_nodes)
        rank = np.zeros((d, n), dtype=np.uint16 if small else np.int64)
        np.put_along_axis(rank, order, np.broadcast_to(np.arange(n), order.shape), axis=1)
        two_valued = two_valued_columns(XT, values)  # one-hot columns: a cut without a sort
        order, values = order[:1], values[:1]  # one row keeps the samples grouped by node
    # Every tree's presorted rows, restricted to its kept samples, side by side (ids t * n + i).
    blocks = [(order + t * n if t else order, values) for t in range(len(rngs))]
    if keep is not None:
        masks = [keep[ids] for ids, _ in blocks]  # the same number of True in every row
        blocks = [
            (o[m].reshape(len(o), -1), v[m].reshape(len(o), -1)) for (o, v), m in zip(blocks, masks)
        ]
    order, values = (
        (np.concatenate(a, axis=1) for a in zip(*blocks)) if len(blocks) > 1 else blocks[0]
    )
    sizes = np.array([o.shape[1] for o, _ in blocks])
    starts = np.cumsum(sizes) - sizes  # level 0: one root per tree
    known_constant = np.zeros((len(starts), d), dtype=bool)
    labels = None  # (class code, weight) per sample: see left_at_cuts
    if criterion != "squared_error" and len(stats) >= MANY_CLASSES:
        labels = stats.argmax(axis=0), stats.sum(axis=0)
    levels = []  # per level: (tree, totals, counts, impurity, feature, threshold, left, right)
    depth, n_created = 0, len(starts)
    while len(starts):
        counts = np.diff(np.append(starts, order.shape[1]))
        tree = order[0, starts] // n  # the tree of every node of the level
        totals = np.add.reduceat(stats[:, order[0]], starts, axis=1)  # (c, n_nodes) node sums
        imp, _ = node_impurity(totals, criterion)
        feature = np.full(len(starts), UNDEFINED)
        threshold = np.full(len(starts), float(UNDEFINED))
        split = (
            (depth < max_depth)
            & (counts >= min_samples_split)
            & (counts >= 2 * min_samples_leaf)
            & (imp > EPS)
        )
        order, values, starts, kept = _keep_nodes(order, values, counts, split)
        if len(starts):
            if k < d:
                known_constant = known_constant[split]
                feats = draw_features(known_constant, k, rngs, tree[split])
                cost, f, t, n_left, constant = drawn_splits(
                    order[0], starts, kept, feats, XT, rank, two_valued, stats,
                    totals[:, split], criterion, min_samples_leaf, labels,
                )  # fmt: skip
                # A feature constant here stays constant below: children will not draw it.
                np.put_along_axis(known_constant, feats, constant, axis=1)
            else:
                feats = np.broadcast_to(np.arange(d), (len(starts), d))
                cost, f, t, n_left = best_splits(
                    order, values, stats, totals[:, split], starts, feats, criterion,
                    min_samples_leaf, labels,
                )  # fmt: skip
            found = np.isfinite(cost)
            split[split] = found  # a node with no valid cut becomes a leaf
            order, values, starts, kept = _keep_nodes(order, values, kept, found)
            f, t = f[found], t[found]
            feature[split], threshold[split] = f, t
            node = np.repeat(np.arange(len(starts)), kept)
            goes_left = np.empty(stats.shape[1], dtype=bool)  # indexed by sample id
            goes_left[order[0]] = np.take(XT, f[node] * n + order[0] % n) <= t[node]
            if k < d:
                known_constant = np.tile(known_constant[found], (2, 1))  # left children, right ones
            # Children at max_depth are leaves: they only need one row, for their sums.
            order, values, starts = _partition(
                order, values, kept, n_left[found], goes_left, all_rows=depth + 1 < max_depth
            )
        left = np.full(len(split), LEAF)
        n_split = int(split.sum())  # the next level lists all left children, then all right ones
        left[split] = n_created + np.arange(n_split)
        right = np.where(split, left + n_split, LEAF)
        n_created += 2 * n_split
        levels.append((tree, totals.T, counts, imp, feature, threshold, left, right))
        depth += 1
    return _per_tree(levels, criterion, len(rngs))


def _per_tree(levels: list, criterion: str, n_trees: int) -> list[Tree]:
    """Cut the batch's nodes (numbered level by level across all trees) into one Tree per tree,
    renumbering each tree's nodes 0, 1, ... in the same breadth-first order."""
    tree, totals, counts, imp, feature, threshold, left, right = (
        np.concatenate(a) for a in zip(*levels)
    )
    if n_trees > 1:  # one tree is numbered already
        by_tree = np.argsort(tree, kind="stable")
        sizes = np.bincount(tree, minlength=n_trees)
        local = np.empty(len(tree), dtype=np.int64)
        local[by_tree] = np.arange(len(tree)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        left = np.where(left == LEAF, LEAF, local[np.maximum(left, 0)])
        right = np.where(right == LEAF, LEAF, local[np.maximum(right, 0)])
    if criterion == "squared_error":
        weight, value = totals[:, 0], totals[:, 1:2] / totals[:, :1]
    else:
        weight = totals.sum(axis=1)
        value = totals / weight[:, None]
    arrays = (left, right, feature, threshold, value, imp, counts, weight)
    if n_trees == 1:
        return [Tree(*arrays)]
    cuts = np.cumsum(sizes)[:-1]
    parts = [np.split(a[by_tree], cuts) for a in arrays]
    return [Tree(*fields) for fields in zip(*parts)]


def _keep_nodes(order: np.ndarray, values: np.ndarray, counts: np.ndarray, keep: np.ndarray):
    """Drop the columns of nodes that stop here -> (order, values, starts, counts) of the rest."""
    if not keep.all():
        cols = np.repeat(keep, counts)
        order, values, counts = order[:, cols], values[:, cols], counts[keep]
    return order, values, np.cumsum(counts) - counts, counts


def _partition(
    order: np.ndarray,
    values: np.ndarray,
    counts: np.ndarray,
    n_left: np.ndarray,
    goes_left: np.ndarray,
    all_rows: bool = True,
):
    """Send every node's samples to its left or right child, keeping each row sorted.

    The children's layout is all left children (in node order), then all right children:
    keeping the left-goers of a row in place order is one boolean selection, so nothing is
    sorted again. Returns the children's order and values (rows, m) (only row 0 when all_rows
    is False: children that cannot split need no more) and their starts (2 * n_nodes,).
    """
    if not all_rows:
        order, values = order[:1], values[:1]
    g = goes_left[order]  # (rows, m): every row has the same number of left-goers
    rows = len(order)
    # Flat positions of the left-goers then the right-goers of each row, in their sorted order.
    moved = np.concatenate(
        [np.flatnonzero(g).reshape(rows, -1), np.flatnonzero(~g).reshape(rows, -1)], axis=1
    )
    sizes = np.concatenate([n_left, counts - n_left])
    return np.take(order, moved), np.take(values, moved), np.cumsum(sizes) - sizes


def apply_tree(tree: Tree, X: np.ndarray) -> np.ndarray:
    """Leaf id reached by every row of X (n, d) -> (n,) int. Loops over depth, not samples."""
    node = np.zeros(X.shape[0], dtype=np.int64)
    active = np.flatnonzero(tree.children_left[node] != LEAF)
    while active.size:
        at = node[active]
        go_left = X[active, tree.feature[at]] <= tree.threshold[at]
        node[active] = np.where(go_left, tree.children_left[at], tree.children_right[at])
        active = active[tree.children_left[node[active]] != LEAF]
    return node


def _root_only(n: int) -> Tree:
    """A stand-in tree (one leaf) for a fit whose growth fit_many does later."""
    one = np.ones(1)
    return Tree(
        np.array([LEAF]),
        np.array([LEAF]),
        np.array([UNDEFINED]),
        -2.0 * one,
        one[:, None],
        0 * one,
        np.array([n]),
        one,
    )


def fit_many(
    trees: list, X: np.ndarray, y: np.ndarray, sample_weights, presorted=None, batch_size=2**17
) -> list:
    """``trees[t].fit(X, y, sample_weights[t])`` for every t, the trees grown together.

    trees: unfitted estimators of one class with the same hyper-parameters but random_state
    (a forest's members). Each fit runs as usual (checks, classes_, stats) but queues its
    growth; the queued trees then grow in batches of up to batch_size kept samples in all
    (bounding memory), each exactly the tree its own fit would grow. presorted: presort(X).
    """
    queue: list = []
    presorted = presort(X) if presorted is None else presorted
    for tree, w in zip(trees, sample_weights):
        tree._queue = queue  # read by _build
        try:
            tree.fit(X, y, w, presorted=presorted)
        finally:
            del tree._queue
    while queue:  # batches of whole trees, at least one tree each
        kept = np.cumsum([np.count_nonzero(w) for _, _, w in queue])
        size = max(1, int(np.searchsorted(kept, batch_size, side="right")))
        batch, queue = queue[:size], queue[size:]
        for (tree, _, _), grown in zip(batch, trees[0]._grow(*presorted, batch)):
            tree.tree_ = grown
            tree.feature_importances_ = feature_importances(grown, X.shape[1])
    return trees


class _FastGrowth:
    """Mixed into the readable estimators: the same trees, grown by grow_trees and applied by
    apply_tree; fit also takes ``presorted``."""

    _queue: list | None = None  # set by fit_many: _build queues the tree instead of growing it

    def fit(self, X, y, sample_weight=None, presorted=None):
        """As the readable fit; presorted: presort(X), when the caller fits many trees on the
        same X (ensembles) and wants to sort it only once."""
        self._presorted = presorted  # read by _build, which the readable fit calls
        try:
            return super().fit(X, y, sample_weight)
        finally:
            del self._presorted

    def _build(self, X: np.ndarray, stats: np.ndarray, sample_weight: np.ndarray) -> Tree:
        """Grow the tree breadth first on the rows with positive weight (stats: (n, c))."""
        if self._queue is not None:  # fit_many grows it later, with the others
            self._queue.append((self, stats, sample_weight))
            return _root_only(len(stats))
        order, values = presort(X) if self._presorted is None else self._presorted
        return self._grow(order, values, [(self, stats, sample_weight)])[0]

    def _grow(self, order: np.ndarray, values: np.ndarray, jobs: list) -> list[Tree]:
        """grow_trees with this estimator's hyper-parameters for jobs [(tree, stats (n, c),
        sample_weight (n,))]: each tree on its rows of positive weight (like sklearn, zero-weight
        rows take no part), drawing from default_rng(its random_state)."""
        keep = np.concatenate([w > 0 for _, _, w in jobs])
        return grow_trees(
            order,
            values,
            np.concatenate([s.T for _, s, _ in jobs], axis=1),  # (c, T * n): a row per statistic
            self.criterion,
            self.max_depth,
            self.min_samples_split,
            self.min_samples_leaf,
            resolve_max_features(self.max_features, order.shape[0]),
            [np.random.default_rng(tree.random_state) for tree, _, _ in jobs],
            None if keep.all() else keep,
        )

    def apply(self, X: np.ndarray) -> np.ndarray:
        """Leaf id of every row of X (n, d) -> (n,) int."""
        check_is_fitted(self, "tree_")
        X = validate_data(self, X, reset=False, dtype=np.float64)
        return apply_tree(self.tree_, X)


class DecisionTreeClassifier(_FastGrowth, readable.DecisionTreeClassifier):
    """The readable CART classifier, grown breadth first over presorted features."""


class DecisionTreeRegressor(_FastGrowth, readable.DecisionTreeRegressor):
    """The readable CART regressor, grown breadth first over presorted features."""
