"""Two bias mitigations from scratch: reweighing (before training) and group thresholds (after).

Reweighing (Kamiran & Calders 2012) gives each row the weight that makes the label
statistically independent of the group in the weighted training set:

    w(a, y) = P(A=a) P(Y=y) / P(A=a, Y=y)      (expected count / observed count of the cell)

Group thresholds (Hardt, Price & Srebro 2016) post-process a score s: each group a gets its
own randomised rule "predict 1 with probability p0 [s > t0] + p1 [s > t1]", mixing two
thresholds to land on any point of the group's trade-off curve between them. For demographic
parity every group takes the same selection rate, the one that maximises overall accuracy;
for equalised odds every group takes the same (FPR, TPR) point, reached in groups whose curve
lies above it by predicting the constant-rate coin flip with probability p_ignore. The
search follows fairlearn's `ThresholdOptimizer` step for step (upper convex hull of the
per-threshold points, linear interpolation on a grid of `grid_size + 1` x values, the first
best grid point) so that both give the same rules and, with the same `random_state`, the
same predictions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONSTRAINTS = {"demographic_parity": "selection_rate", "equalized_odds": "false_positive_rate"}


def reweighing_weights(y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    """Kamiran-Calders weight of every row, w(a, y) = P(a) P(y) / P(a, y); shape (n,).

    A (group, label) cell rarer than independence predicts is weighted up; when every cell
    occurs, the weights average to 1 and the weighted P(y | a) is P(y) for every group.
    """
    y, groups = np.asarray(y), np.asarray(groups)
    if len(y) == 0 or len(y) != len(groups):
        raise ValueError("y and groups must be non-empty and the same length")
    _, g = np.unique(groups, return_inverse=True)
    _, c = np.unique(y, return_inverse=True)
    joint = np.zeros((g.max() + 1, c.max() + 1))
    np.add.at(joint, (g, c), 1.0)
    joint /= len(y)
    expected = joint.sum(1, keepdims=True) * joint.sum(0, keepdims=True)
    return expected[g, c] / joint[g, c]


@dataclass
class GroupRule:
    """One group's randomised rule: P(yhat=1 | s) = p_ignore * constant + (1 - p_ignore) *
    (p0 [s > t0] + p1 [s > t1])."""

    p0: float
    t0: float
    p1: float
    t1: float
    p_ignore: float = 0.0
    constant: float = 0.0

    def positive_probability(self, scores: np.ndarray) -> np.ndarray:
        """P(yhat = 1) for each score; shape like `scores`."""
        mix = self.p0 * (scores > self.t0) + self.p1 * (scores > self.t1)
        return self.p_ignore * self.constant + (1.0 - self.p_ignore) * mix


def tradeoff_points(
    scores: np.ndarray, y: np.ndarray, x_metric: str
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, y, threshold) of the rule "s > threshold" at every cut between distinct scores.

    Thresholds: +inf (nobody selected), then the midpoints between consecutive distinct scores
    in descending order, then -inf (everybody). x is the selection rate (demographic parity)
    or the FPR (equalised odds); y is accuracy or the TPR respectively. Sorted by (x, y).
    """
    order = np.argsort(-scores, kind="stable")
    s, lab = scores[order], y[order]
    n, n_pos = len(y), int(y.sum())
    n_neg = n - n_pos
    if n_pos == 0 or n_neg == 0:
        raise ValueError("every group needs both labels to place thresholds")
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each run of equal scores
    tp = np.r_[0, np.cumsum(lab)[last]]
    fp = np.r_[0, np.cumsum(1 - lab)[last]]
    distinct = s[last]
    thr = np.r_[np.inf, (distinct + np.r_[distinct[1:], -np.inf]) / 2]
    if x_metric == "selection_rate":
        x, yv = (tp + fp) / n, (tp + n_neg - fp) / n
    else:
        x, yv = fp / n_neg, tp / n_pos
    idx = np.lexsort((yv, x))
    return x[idx], yv[idx], thr[idx]


def upper_hull(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the upper convex hull of points sorted by (x, y) (monotone chain; points on
    a straight segment are dropped)."""
    keep: list[int] = []
    for i in range(len(x)):
        while len(keep) >= 2:
            a, b = keep[-2], keep[-1]
            if (y[b] - y[a]) * (x[i] - x[a]) <= (y[i] - y[a]) * (x[b] - x[a]):
                keep.pop()
            else:
                break
        keep.append(i)
    return np.array(keep)


def interpolate_hull(
    hx: np.ndarray, hy: np.ndarray, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y on the grid, left hull index, weight p0 of the left point) by linear interpolation.

    Grid value g lies between hull points j and j+1 with hx[j] < g <= hx[j+1] (g = hx[0]
    uses the first segment): p0 = (hx[j+1] - g) / (hx[j+1] - hx[j]).
    """
    j = np.searchsorted(hx, grid, side="right") - 1
    j[1:] = np.where(grid[1:] == hx[j[1:]], j[1:] - 1, j[1:])
    p0 = (hx[j + 1] - grid) / (hx[j + 1] - hx[j])
    return p0 * hy[j] + (1 - p0) * hy[j + 1], j, p0


def fit_group_thresholds(
    scores: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray,
    constraint: str = "demographic_parity",
    grid_size: int = 1000,
) -> dict[object, GroupRule]:
    """{group: GroupRule} maximising accuracy subject to the constraint (fairlearn's search).

    scores: (n,) real scores (higher = more likely positive); y: (n,) 0/1; groups: (n,).
    """
    if constraint not in CONSTRAINTS:
        raise ValueError(f"constraint must be one of {sorted(CONSTRAINTS)}")
    scores, y, groups = np.asarray(scores, float), np.asarray(y, np.int64), np.asarray(groups)
    grid = np.linspace(0, 1, grid_size + 1)
    curves = {}
    for g in np.unique(groups):
        m = groups == g
        if y[m].min() == y[m].max():
            raise ValueError(
                f"group '{g}' has only label {int(y[m][0])}; thresholds need both labels"
            )
        x, yv, thr = tradeoff_points(scores[m], y[m], CONSTRAINTS[constraint])
        h = upper_hull(x, yv)
        y_grid, j, p0 = interpolate_hull(x[h], yv[h], grid)
        curves[g] = (y_grid, thr[h][j], thr[h][j + 1], p0, m.mean())
    if constraint == "demographic_parity":
        best = int(np.argmax(sum(c[4] * c[0] for c in curves.values())))
        return {g: GroupRule(c[3][best], c[1][best], 1 - c[3][best], c[2][best])
                for g, c in curves.items()}  # fmt: skip
    # Equalised odds: the lowest ROC among groups is reachable by all; pick its best point.
    y_min = np.min([c[0] for c in curves.values()], axis=0)
    n_pos, n_neg = y.sum(), len(y) - y.sum()
    tp, tn, fp, fn = n_pos * y_min, n_neg * (1 - grid), n_neg * grid, n_pos * (1 - y_min)
    acc = np.around((tp + tn) / (tp + tn + fp + fn), 15)  # rounded as fairlearn does: ties
    best = int(np.argmax(acc))
    rules = {}
    for g, (y_grid, t0, t1, p0, _) in curves.items():
        above = y_grid[best] - grid[best]  # the group's hull height over the diagonal
        p_ignore = 0.0 if above == 0 else (y_grid[best] - y_min[best]) / above
        rules[g] = GroupRule(p0[best], t0[best], 1 - p0[best], t1[best], p_ignore, grid[best])
    return rules


def predict_proba_groups(
    rules: dict[object, GroupRule], scores: np.ndarray, groups: np.ndarray
) -> np.ndarray:
    """P(yhat = 1) of every row under its group's rule; shape (n,)."""
    scores, groups = np.asarray(scores, float), np.asarray(groups)
    unknown = set(np.unique(groups)) - set(rules)
    if unknown:
        raise ValueError(f"no threshold rule for groups {sorted(map(str, unknown))}")
    prob = np.zeros(len(scores))
    for g, rule in rules.items():
        m = groups == g
        prob[m] = rule.positive_probability(scores[m])
    return prob


def predict_groups(
    rules: dict[object, GroupRule], scores: np.ndarray, groups: np.ndarray, random_state: int
) -> np.ndarray:
    """Randomised 0/1 decisions: 1 where P(yhat=1) >= u, u ~ U[0,1) from
    `np.random.RandomState(random_state)` (the draw fairlearn makes), one per row."""
    prob = predict_proba_groups(rules, scores, groups)
    return (prob >= np.random.RandomState(random_state).rand(len(prob))).astype(np.int64)
