"""The split search of the fast CART (``airoad.classic.decision_tree_fast``): impurities and
child costs of many nodes and cuts at once, random feature draws, and the best cut of every
node of one level from samples sorted within their nodes.
"""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy

from airoad.classic.decision_tree import FEATURE_TOL, UNDEFINED


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


def draw_features(
    known_constant: np.ndarray, k: int, rngs: list[np.random.Generator], tree: np.ndarray
) -> np.ndarray:
    """k random features per node -> (n_nodes, k) int, never one already known to be constant
    inside the node (known_constant: (n_nodes, d) bool) unless fewer than k others are left.

    Node i draws from rngs[tree[i]]: every tree of a batch takes its own random numbers, in the
    order its nodes come, so a tree grown with others draws what it draws when grown alone.
    """
    noise = np.empty(known_constant.shape)
    counts = np.bincount(tree, minlength=len(rngs))
    draws = [rngs[t].random((c, noise.shape[1])) for t, c in enumerate(counts) if c]
    noise[np.argsort(tree, kind="stable")] = np.concatenate(draws)
    return np.argsort(noise + known_constant, axis=1)[:, :k]


def sort_within_nodes(
    sid0: np.ndarray, node: np.ndarray, feats: np.ndarray, XT: np.ndarray, rank: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The samples of every node sorted by each of its k features -> sid, vals: (k, m).

    sid0 (m,) lists the level's samples grouped by node (node (m,) says which); rank (d, n) is
    each sample's position in the presorted feature, so sorting by (node, rank) sorts by
    (node, value). Sample ids may carry a tree offset (``t * n + i`` for sample i of tree t in
    a batch): X is looked up at ``id % n``.
    """
    n = XT.shape[1]
    fcol = feats[node].T  # (k, m) feature of slot j for the node owning column p
    local = sid0 % n
    ranks = np.take(rank, fcol * n + local)
    if rank.dtype == np.uint16 and node[-1] < 2**16:
        # NumPy sorts 16-bit integers by radix, in linear time: a stable sort by rank, then a
        # stable sort by node, is the sort by (node, rank) in two cheap passes.
        by_rank = np.argsort(ranks, axis=1, kind="stable")
        by_node = np.argsort(node.astype(np.uint16)[by_rank], axis=1, kind="stable")
        perm = np.take_along_axis(by_rank, by_node, axis=1)
    else:  # one stable sort of node * n + rank: quick on node-grouped keys
        perm = np.argsort(node.astype(np.int64) * n + ranks, axis=1, kind="stable")
    return sid0[perm], np.take(XT, fcol * n + local[perm])  # fcol is constant inside a node


def best_splits(
    sid: np.ndarray,
    vals: np.ndarray,
    stats: np.ndarray,
    totals: np.ndarray,
    starts: np.ndarray,
    feats: np.ndarray,
    criterion: str,
    min_samples_leaf: int,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
):
    """Best split of every node of one level, all nodes and all cuts evaluated at once.

    sid: (k, m) sample ids; in row j each node's samples are sorted by its slot-j feature
    feats[node, j], and vals (k, m) holds those feature values; node i owns columns
    starts[i]:starts[i+1] of every row. stats: (c, n) per-sample stats; totals: (c, n_nodes)
    their sums per node. labels: (class code, weight) of every sample, for classification
    with many classes (see left_at_cuts). Returns, per node: cost (inf when no cut is valid),
    feature (int), threshold (float) and n_left (samples sent left).
    """
    n_nodes, m = len(starts), sid.shape[1]
    counts = np.diff(np.append(starts, m))
    node = np.repeat(np.arange(n_nodes), counts)  # (m,) node owning each column
    n_left = np.arange(m) - starts[node] + 1  # (m,) samples left of a cut after this column
    if criterion == "squared_error":  # sums of w and w*y are enough to rank cuts
        stats, totals = stats[:2], totals[:2]
    distinct = np.zeros(vals.shape, dtype=bool)
    distinct[:, :-1] = vals[:, 1:] > vals[:, :-1] + FEATURE_TOL  # a cut between two values
    ok = (n_left >= min_samples_leaf) & (counts[node] - n_left >= min_samples_leaf)
    cand = np.flatnonzero(distinct & ok)  # valid cuts only (one-hot columns have one per node)
    slot, col = np.divmod(cand, m)
    at = node[col]  # node of each candidate cut
    L = left_at_cuts(cand, sid, stats, totals, starts, labels)  # (c, n_cand)
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


def left_at_cuts(
    cand: np.ndarray,
    sid: np.ndarray,
    stats: np.ndarray,
    totals: np.ndarray,
    starts: np.ndarray,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Summed stats (c, n_cand) of the samples left of every candidate cut, inside its node.

    cand: flat indices into sid (k, m) (a cut after that column); the rest as in best_splits.
    Without labels: running sums of the stats along every row, restarted at every node. With
    labels (class codes and weights; a classifier's stats are ``w * onehot(code)``): one
    bincount of the weights by (segment, class), a segment running from a node start or a cut
    to the next, then running sums over the segments only. It reads (k, m) numbers instead of
    (c, k, m), which pays once there are more than a few classes.
    """
    k, m = sid.shape
    if labels is None:
        x = np.take(stats, sid, axis=1)  # (c, k, m)
        x[:, :, starts[1:]] -= totals[:, None, :-1]  # so that one cumsum restarts at every node
        left = np.cumsum(x, axis=2, out=x)
        return left.reshape(len(left), -1)[:, cand]
    codes, weights = labels
    c, flat = len(stats), sid.ravel()
    node_starts = (np.arange(k)[:, None] * m + starts).ravel()  # (k * n_nodes,) row-major
    begins = np.zeros(k * m, dtype=bool)
    begins[node_starts] = True
    begins[cand + 1] = True  # a cut is never a node's last column
    seg = np.cumsum(begins) - 1
    n_seg = int(seg[-1]) + 1
    hist = np.bincount(seg * c + codes[flat], weights=weights[flat], minlength=n_seg * c)
    cum = np.zeros((n_seg + 1, c))
    np.cumsum(hist.reshape(n_seg, c), axis=0, out=cum[1:])
    row, col = np.divmod(cand, m)
    node = np.searchsorted(starts, col, side="right") - 1
    first = seg[node_starts[row * len(starts) + node]]  # first segment of the cut's node
    return (cum[seg[cand] + 1] - cum[first]).T


# ------------------------------------------------ nodes that try a few random features (forests)
#
# One-hot data (Adult: 102 of 108 columns) is mostly two-valued columns. A two-valued column has
# one cut, between its two values, so its best cut in a node needs no sort: the right child is
# the node's samples holding the high value (few, for a one-hot column), their summed stats
# one bincount, and the left child the rest. Only the drawn columns with more values are
# sorted, as ragged (node, column) runs side by side.


def two_valued_columns(XT: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The cut of every two-valued column and the samples it sends right, from X transposed
    (d, n) and the presorted values (d, n) -> cut (d,) (the midpoint of the two values, NaN for
    the other columns) and is_high (d, n) bool (False in every other column)."""
    steps = np.count_nonzero(values[:, 1:] != values[:, :-1], axis=1)
    low, high = values[:, 0], values[:, -1]
    two = (steps == 1) & (high > low + FEATURE_TOL)
    cut = np.where(two, low / 2.0 + high / 2.0, np.nan)  # the midpoint, as best_splits computes it
    return cut, (XT > cut[:, None]) & two[:, None]


def drawn_splits(
    sid0: np.ndarray,
    starts: np.ndarray,
    counts: np.ndarray,
    feats: np.ndarray,
    XT: np.ndarray,
    rank: np.ndarray,
    two_valued: tuple[np.ndarray, np.ndarray],
    stats: np.ndarray,
    totals: np.ndarray,
    criterion: str,
    min_samples_leaf: int,
    labels: tuple[np.ndarray, np.ndarray] | None = None,
):
    """best_splits for nodes that each try their own k drawn features (feats: (n_nodes, k)).

    sid0 (m,) lists the level's samples grouped by node (node i owns starts[i]:+counts[i]);
    XT (d, n), rank (d, n) as in sort_within_nodes; two_valued from two_valued_columns. Returns
    cost, feature, threshold, n_left per node (as best_splits) and constant (n_nodes, k): the
    drawn features that take a single value inside their node. Ties go to the first slot, and
    to the first cut inside it, as in best_splits, so the trees are the ones it would grow.
    """
    n_nodes, k = feats.shape
    cut, is_high = two_valued
    is_two = np.isfinite(cut)[feats]
    size = np.broadcast_to(counts[:, None], feats.shape)
    n_high, R = _high_sums(sid0, counts, feats, is_high, stats, criterion, labels)
    L = totals[: len(R), :, None] - R  # (c, n_nodes, k); exact for integer weights (bootstraps)
    ok = is_two & (n_high >= max(min_samples_leaf, 1)) & (size - n_high >= max(min_samples_leaf, 1))
    slot_cost = np.where(ok, children_cost(L, R, criterion), np.inf)
    slot_t, slot_n = cut[feats], size - n_high
    constant = is_two & ((n_high == 0) | (n_high == size))
    nodes, slots = np.nonzero(~is_two)  # the other columns: sorted runs, in (node, slot) order
    if len(nodes):
        run_n = counts[nodes]
        run_starts = np.cumsum(run_n) - run_n
        run = np.repeat(np.arange(len(nodes)), run_n)  # (M,) run of every column
        sid = sid0[np.repeat(starts[nodes] - run_starts, run_n) + np.arange(len(run))]
        f, at = feats[nodes, slots][:, None], (nodes, slots)
        sid, vals = sort_within_nodes(sid, run, f, XT, rank)
        slot_cost[at], _, slot_t[at], slot_n[at] = best_splits(
            sid, vals, stats, totals[:, nodes], run_starts, f, criterion, min_samples_leaf, labels
        )
        constant[at] = vals[0, run_starts + run_n - 1] <= vals[0, run_starts] + FEATURE_TOL
    pick = np.arange(n_nodes), np.argmin(slot_cost, axis=1)  # the first slot among equal costs
    cost = slot_cost[pick]
    feature = np.where(np.isfinite(cost), feats[pick], UNDEFINED)
    return cost, feature, slot_t[pick], slot_n[pick], constant


def _high_sums(sid0, counts, feats, is_high, stats, criterion, labels):
    """How many samples of each node hold the high value of each drawn two-valued feature, and
    their summed stats -> n_high (n_nodes, k), R (c, n_nodes, k); zeros in the other slots.
    One gather of is_high per (sample, slot), then bincounts over the few high samples only."""
    (n_nodes, k), n = feats.shape, is_high.shape[1]
    # (m, k) flat indices into is_high: whole rows repeated (faster than fancy indexing), and
    # in NumPy's index type (np.take would convert any other first)
    flat = np.repeat(feats.astype(np.intp) * n, counts, axis=0)
    flat += (sid0 % n).astype(np.intp)[:, None]
    p, j = np.divmod(np.flatnonzero(np.take(is_high, flat)), k)  # (column, slot) of high values
    node = np.searchsorted(np.cumsum(counts), p, side="right")  # the node of those columns
    key, sid = node * k + j, sid0[p]
    n_high = np.bincount(key, minlength=n_nodes * k).reshape(n_nodes, k)
    if criterion == "squared_error":  # sums of w and w*y are enough to rank cuts
        stats = stats[:2]
    if labels is None:
        R = np.stack([np.bincount(key, weights=row[sid], minlength=n_nodes * k) for row in stats])
    else:  # one bincount over (slot, class), as left_at_cuts does with labels
        codes, weights = labels
        c = len(stats)
        R = np.bincount(key * c + codes[sid], weights=weights[sid], minlength=n_nodes * k * c)
        R = R.reshape(n_nodes * k, c).T
    return n_high, R.reshape(len(R), n_nodes, k)
