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
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy
from sklearn.utils.validation import check_is_fitted, validate_data

from airoad.classic import decision_tree as readable
from airoad.classic.decision_tree import (
    EPS,
    FEATURE_TOL,
    LEAF,
    UNDEFINED,
    Tree,
    resolve_max_features,
)


def node_impurity(stats: np.ndarray, criterion: str) -> tuple[np.ndarray, np.ndarray]:
    """Impurity and total weight of nodes from their summed stats (c, ...) -> two (...) arrays."""
    with np.errstate(divide="ignore", invalid="ignore"):
        if criterion == "squared_error":
            w, mean = stats[0], stats[1] / stats[0]
            return stats[2] / w - mean * mean, w
        w = sum(stats)  # Python's sum adds the rows: numpy's sum over a short axis 0 is slow
        p = stats / w
    if criterion == "gini":
        return 1.0 - sum(p * p), w
    if criterion == "entropy":
        return -sum(xlogy(p, p)) / np.log(2.0), w  # log base 2, like sklearn
    raise ValueError(f"unknown criterion {criterion!r}")


def children_cost(left: np.ndarray, right: np.ndarray, criterion: str) -> np.ndarray:
    """``w_L * impurity(L) + w_R * impurity(R)`` from summed child stats (c, ...) -> (...).

    gini: ``w - sum_k L_k**2 / w_L - sum_k R_k**2 / w_R``; entropy: ``w log2 w - sum n log2 n``
    over the counts of each child. For squared error only the part that changes between the
    cuts of one node is returned, ``-(s_L**2 / w_L + s_R**2 / w_R)`` with s the sum of w*y
    (the sum of w*y**2 is the same for every cut).
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if criterion == "squared_error":
            return -(left[1] ** 2 / left[0] + right[1] ** 2 / right[0])
        w_l, w_r = sum(left), sum(right)  # rows added one by one (c is small)
        if criterion == "gini":
            return (
                w_l
                + w_r
                - sum(row * row for row in left) / w_l
                - sum(row * row for row in right) / w_r
            )
    if criterion == "entropy":
        plogp = (
            xlogy(w_l, w_l) + xlogy(w_r, w_r) - sum(xlogy(left, left)) - sum(xlogy(right, right))
        )
        return plogp / np.log(2.0)
    raise ValueError(f"unknown criterion {criterion!r}")


def draw_features(known_constant: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k random features per node -> (n_nodes, k) int, never one already known to be constant
    inside the node (known_constant: (n_nodes, d) bool) unless fewer than k others are left."""
    return np.argsort(rng.random(known_constant.shape) + known_constant, axis=1)[:, :k]


def sort_within_nodes(
    sid0: np.ndarray, node: np.ndarray, feats: np.ndarray, XT: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The samples of every node sorted by each of its k features -> sid, vals: (k, m).

    sid0 (m,) lists the level's samples grouped by node (node (m,) says which); rank (d, n) is
    each sample's position in the presorted feature, so one stable argsort of
    ``node * n + rank`` per slot sorts by (node, value).
    """
    n = XT.shape[1]
    fcol = feats[node].T  # (k, m) feature of slot j for the node owning column p
    key = node.astype(np.int64) * n + np.take(rank, fcol * n + sid0)
    sid = sid0[np.argsort(key, axis=1, kind="stable")]  # stable sort: quick on node-grouped keys
    return sid, np.take(XT, fcol * n + sid)  # fcol is constant inside a node, so still aligned


def best_splits(
    sid: np.ndarray,
    vals: np.ndarray,
    stats: np.ndarray,
    totals: np.ndarray,
    starts: np.ndarray,
    feats: np.ndarray,
    criterion: str,
    min_samples_leaf: int,
):
    """Best split of every node of one level, all nodes and all cuts evaluated at once.

    sid: (k, m) sample ids; in row j each node's samples are sorted by its slot-j feature
    feats[node, j], and vals (k, m) holds those feature values; node i owns columns
    starts[i]:starts[i+1] of every row. stats: (c, n) per-sample stats; totals: (c, n_nodes)
    their sums per node. Returns, per node: cost (inf when no cut is valid), feature (int),
    threshold (float) and n_left (samples sent left).
    """
    n_nodes, m = len(starts), sid.shape[1]
    counts = np.diff(np.append(starts, m))
    node = np.repeat(np.arange(n_nodes), counts)  # (m,) node owning each column
    n_left = np.arange(m) - starts[node] + 1  # (m,) samples left of a cut after this column
    if criterion == "squared_error":  # sums of w and w*y are enough to rank cuts
        stats, totals = stats[:2], totals[:2]
    x = np.take(stats, sid, axis=1)  # (c, k, m)
    x[:, :, starts[1:]] -= totals[:, None, :-1]  # so that one cumsum restarts at every node
    left = np.cumsum(x, axis=2, out=x)  # stats of the samples up to the cut, inside the node
    distinct = np.zeros(vals.shape, dtype=bool)
    distinct[:, :-1] = vals[:, 1:] > vals[:, :-1] + FEATURE_TOL  # a cut between two values
    ok = (n_left >= min_samples_leaf) & (counts[node] - n_left >= min_samples_leaf)
    cand = np.flatnonzero(distinct & ok)  # valid cuts only (one-hot columns have one per node)
    slot, col = np.divmod(cand, m)
    at = node[col]  # node of each candidate cut
    L = left.reshape(len(left), -1)[:, cand]  # (c, n_cand)
    cost = children_cost(L, totals[:, at] - L, criterion)
    node_cost = np.full(n_nodes, np.inf)
    np.minimum.at(node_cost, at, cost)
    hits = np.flatnonzero(cost == node_cost[at])
    nodes, first = np.unique(at[hits], return_index=True)  # first best cut of each node
    best = hits[first]
    feature, threshold, n_left_best = (
        np.full(n_nodes, UNDEFINED),
        np.full(n_nodes, np.nan),
        np.zeros(n_nodes, np.int64),
    )
    j, p = slot[best], col[best]
    feature[nodes] = feats[nodes, j]
    threshold[nodes] = vals[j, p] / 2.0 + vals[j, p + 1] / 2.0  # midpoint, as sklearn computes it
    n_left_best[nodes] = n_left[p]
    return node_cost, feature, threshold, n_left_best


def presort(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort every feature once: order (d, n) sample ids by increasing X[:, f] in row f, and
    values (d, n) the sorted X[:, f]. Ensembles compute this once and share it between trees."""
    XT = np.ascontiguousarray(X.T, dtype=np.float64)
    order = np.argsort(XT, axis=1, kind="stable").astype(np.int32)  # int32: half the memory traffic
    return order, np.take_along_axis(XT, order, axis=1)


def grow_tree(
    order: np.ndarray,
    values: np.ndarray,
    stats: np.ndarray,
    criterion: str,
    max_depth: int | None = None,
    min_samples_split: int = 2,
    min_samples_leaf: int = 1,
    max_features: int | None = None,
    rng: np.random.Generator | None = None,
    keep: np.ndarray | None = None,
) -> Tree:
    """Grow a CART tree level by level from presorted features (order, values: (d, m), see
    presort; they may list only some of the samples) and per-sample stats (c, n): ``w * onehot(y)`` or ``[w, w*y, w*y**2]``.

    A node stops (becomes a leaf) at max_depth, with fewer than min_samples_split samples, with
    fewer than 2 * min_samples_leaf, when it is pure, or when no cut leaves min_samples_leaf on
    both sides. max_features: features tried per node (None = all). keep: (n,) bool, the samples
    that take part (None = all). Node ids are breadth first.
    """
    rng = np.random.default_rng() if rng is None else rng
    n, (d, _) = stats.shape[1], order.shape
    k = d if max_features is None else max_features
    max_depth = np.inf if max_depth is None else max_depth
    XT = np.zeros((d, n))  # X transposed, rebuilt from the presort
    np.put_along_axis(XT, order, values, axis=1)
    if k < d:  # a forest tries a few features per node: sort only those, level by level
        rank = np.zeros((d, n), dtype=np.int64)
        np.put_along_axis(
            rank, order, np.broadcast_to(np.arange(order.shape[1]), order.shape), axis=1
        )
        order, values = order[:1], values[:1]  # one row keeps the samples grouped by node
        known_constant = np.zeros((1, d), dtype=bool)
    if keep is not None:
        mask = keep[order]  # the same number of True in every row
        order, values = order[mask].reshape(len(order), -1), values[mask].reshape(len(order), -1)
    starts = np.array([0])
    levels = []  # per level: (totals, counts, impurity, feature, threshold, left, right)
    depth, n_created = 0, 1
    while len(starts):
        counts = np.diff(np.append(starts, order.shape[1]))
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
                feats = draw_features(known_constant, k, rng)
                node = np.repeat(np.arange(len(starts)), kept)
                sid, vals = sort_within_nodes(order[0], node, feats, XT, rank)
                # A feature constant here stays constant below: children will not draw it.
                ends = np.append(starts[1:], order.shape[1]) - 1
                flat = np.repeat(np.arange(len(starts)), k)
                known_constant[flat, feats.ravel()] = (
                    vals[:, ends] <= vals[:, starts] + FEATURE_TOL
                ).T.ravel()
            else:
                feats, sid, vals = np.broadcast_to(np.arange(d), (len(starts), d)), order, values
            cost, f, t, n_left = best_splits(
                sid, vals, stats, totals[:, split], starts, feats, criterion, min_samples_leaf
            )
            found = np.isfinite(cost)
            split[split] = found  # a node with no valid cut becomes a leaf
            order, values, starts, kept = _keep_nodes(order, values, kept, found)
            f, t = f[found], t[found]
            feature[split], threshold[split] = f, t
            node = np.repeat(np.arange(len(starts)), kept)
            goes_left = np.empty(n, dtype=bool)  # indexed by sample id
            goes_left[order[0]] = XT[f[node], order[0]] <= t[node]
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
        levels.append((totals.T, counts, imp, feature, threshold, left, right))
        depth += 1
    totals, counts, imp, feature, threshold, left, right = (np.concatenate(a) for a in zip(*levels))
    if criterion == "squared_error":
        weight, value = totals[:, 0], totals[:, 1:2] / totals[:, :1]
    else:
        weight = totals.sum(axis=1)
        value = totals / weight[:, None]
    return Tree(left, right, feature, threshold, value, imp, counts, weight)


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


class _FastGrowth:
    """Mixed into the readable estimators: the same trees, grown by grow_tree and applied by
    apply_tree; fit also takes ``presorted``."""

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
        order, values = presort(X) if self._presorted is None else self._presorted
        keep = sample_weight > 0  # like sklearn, zero-weight rows take no part in the tree
        rng = np.random.default_rng(self.random_state)
        k = resolve_max_features(self.max_features, X.shape[1])
        return grow_tree(
            order,
            values,
            np.ascontiguousarray(stats.T),  # (c, n): each statistic a contiguous row
            self.criterion,
            self.max_depth,
            self.min_samples_split,
            self.min_samples_leaf,
            k,
            rng,
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
