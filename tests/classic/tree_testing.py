"""Node-by-node comparison of a learner's CART tree with scikit-learn's (the decision-tree
graders), and the brute-force impurity search it uses to tell a tie from a wrong split."""

from __future__ import annotations

import numpy as np
from scipy.special import xlogy


def _impurity(counts: np.ndarray, criterion: str) -> np.ndarray:
    """Impurity of each row of class counts (written here from the definition, independently)."""
    p = counts / counts.sum(axis=-1, keepdims=True)
    if criterion == "gini":
        return 1.0 - np.sum(p * p, axis=-1)
    return -np.sum(xlogy(p, p), axis=-1) / np.log(2.0)


def _all_cuts(X: np.ndarray, Y: np.ndarray, criterion: str, min_leaf: int) -> np.ndarray:
    """Weighted child impurity of every valid cut of a node (Y one-hot), all features together."""
    costs = []
    for f in range(X.shape[1]):
        o = np.argsort(X[:, f], kind="stable")
        v, left = X[o, f], np.cumsum(Y[o], axis=0)[:-1]
        n_left = np.arange(1, len(v))
        ok = (v[1:] > v[:-1] + 1e-7) & (n_left >= min_leaf) & (len(v) - n_left >= min_leaf)
        L = left[ok]
        R = Y.sum(axis=0) - L
        costs.append(L.sum(1) * _impurity(L, criterion) + R.sum(1) * _impurity(R, criterion))
    return np.concatenate(costs)


def compare_node_by_node(
    ours, theirs, X: np.ndarray, y: np.ndarray, criterion: str, min_leaf: int = 1
) -> dict[str, int]:
    """Walk our tree and sklearn's side by side from the root and assert they agree.

    At every pair of nodes the sample counts, class proportions and leaf/split status must
    match. The feature and threshold are compared only where the best cut is NOT tied: when two
    cuts (on different features, or the same partition found by two features) reach the same
    impurity, the choice is arbitrary and sklearn breaks the tie by visiting features in a
    random order (its random_state), so no implementation can be expected to pick the same one.
    Ties are found by scoring every cut of the node here, independently of both trees. After a
    tie the walk continues only if both trees sent the same samples left; otherwise those two
    subtrees grow from different data and are skipped.
    """
    Y = np.eye(int(y.max()) + 1)[y]
    report = {"compared": 0, "tied": 0, "skipped_subtrees": 0}
    a, b = ours.tree_, theirs.tree_

    def visit(i: int, j: int, mask: np.ndarray) -> None:
        assert a.n_node_samples[i] == b.n_node_samples[j] == mask.sum(), (
            f"node {i}: {a.n_node_samples[i]} samples, sklearn's node has {b.n_node_samples[j]}"
        )
        np.testing.assert_allclose(
            np.ravel(a.value[i]),
            np.ravel(b.value[j]),
            atol=1e-12,
            err_msg=f"node {i}: value (class proportions) differs from sklearn's",
        )
        np.testing.assert_allclose(
            a.impurity[i],
            b.impurity[j],
            atol=1e-12,
            err_msg=f"node {i}: impurity differs from sklearn's",
        )
        sk_leaf = b.children_left[j] == -1
        assert (a.children_left[i] == -1) == sk_leaf, (
            f"node {i} ({mask.sum()} samples): ours is {'not ' if sk_leaf else ''}a leaf, sklearn's is{'' if sk_leaf else ' not'}"
        )
        if sk_leaf:
            assert a.feature[i] < 0, f"leaf {i} must have feature -2"
            return
        cuts = _all_cuts(X[mask], Y[mask], criterion, min_leaf)
        n_best = np.sum(cuts <= cuts.min() + 1e-9 * max(1.0, abs(cuts.min())))
        if n_best == 1:
            report["compared"] += 1
            assert a.feature[i] == b.feature[j], (
                f"node {i} ({mask.sum()} samples): split on feature {a.feature[i]}, sklearn uses {b.feature[j]}"
            )
            np.testing.assert_allclose(
                a.threshold[i],
                b.threshold[j],
                rtol=1e-6,
                err_msg=(
                    f"node {i}: threshold differs from sklearn's (use the midpoint of two consecutive values)"
                ),
            )
        else:
            report["tied"] += 1
        left_a = mask & (X[:, a.feature[i]] <= a.threshold[i])
        left_b = mask & (X[:, b.feature[j]] <= b.threshold[j])
        if not np.array_equal(left_a, left_b):
            report["skipped_subtrees"] += 1
            return
        visit(a.children_left[i], b.children_left[j], left_a)
        visit(a.children_right[i], b.children_right[j], mask & ~left_a)

    visit(0, 0, np.ones(len(y), dtype=bool))
    return report
