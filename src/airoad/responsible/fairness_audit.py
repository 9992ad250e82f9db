"""Group fairness metrics from scratch: the numbers of a bias audit.

A binary classifier's decisions `y_pred` (0/1) are audited against the outcomes `y_true` (0/1)
within each group of a sensitive feature `groups` (one label per row, e.g. 'Male'/'Female').

- selection rate      P(yhat=1 | A=a)               (who gets the positive decision)
- true positive rate  P(yhat=1 | Y=1, A=a)          (equal opportunity compares these)
- false positive rate P(yhat=1 | Y=0, A=a)
- demographic parity: selection rates equal across groups
- equalised odds:     TPR and FPR both equal across groups
- calibration:        among rows with the same score, the outcome rate is the same per group

A difference is max - min over groups (0 = fair); a ratio is min / max (1 = fair; the
"four-fifths rule" flags a selection-rate ratio below 0.8). Every function takes 1-D arrays
of the same length; a rate over an empty set (a group with no positives) is NaN, as in
fairlearn.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

Metric = Callable[[np.ndarray, np.ndarray], float]


def _as_binary(y: np.ndarray, name: str) -> np.ndarray:
    y = np.asarray(y)
    if y.ndim != 1 or not np.isin(y, (0, 1)).all():
        raise ValueError(f"{name} must be a 1-D array of 0/1 labels")
    return y.astype(np.int64)


def _rate(hits: np.ndarray, mask: np.ndarray) -> float:
    """Share of `mask` rows where `hits` is 1; NaN when the mask selects nothing."""
    n = int(mask.sum())
    return float(hits[mask].sum() / n) if n else float("nan")


def selection_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """P(yhat = 1): the share of rows given the positive decision (y_true is not used)."""
    y_pred = _as_binary(y_pred, "y_pred")
    return _rate(y_pred, np.ones(len(y_pred), bool))


def true_positive_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """P(yhat = 1 | y = 1), the recall; NaN when there are no positives."""
    y_true, y_pred = _as_binary(y_true, "y_true"), _as_binary(y_pred, "y_pred")
    return _rate(y_pred, y_true == 1)


def false_positive_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """P(yhat = 1 | y = 0); NaN when there are no negatives."""
    y_true, y_pred = _as_binary(y_true, "y_true"), _as_binary(y_pred, "y_pred")
    return _rate(y_pred, y_true == 0)


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """P(yhat = y)."""
    y_true, y_pred = _as_binary(y_true, "y_true"), _as_binary(y_pred, "y_pred")
    return _rate((y_true == y_pred).astype(np.int64), np.ones(len(y_true), bool))


def by_group(
    metric: Metric, y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray
) -> dict[object, float]:
    """{group: metric(y_true[rows of group], y_pred[rows of group])}, groups in sorted order.

    This is fairlearn's `MetricFrame(metrics=metric, ...).by_group` as a plain dict.
    """
    groups = np.asarray(groups)
    if not len(groups) == len(y_true) == len(y_pred):
        raise ValueError("y_true, y_pred and groups must have the same length")
    if len(groups) == 0:
        raise ValueError("cannot audit an empty set of predictions")
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return {g: metric(y_true[groups == g], y_pred[groups == g]) for g in np.unique(groups)}


def difference(values: dict[object, float]) -> float:
    """max - min of the per-group values (0 when every group gets the same)."""
    v = np.array(list(values.values()), dtype=float)
    return float(v.max() - v.min())


def ratio(values: dict[object, float]) -> float:
    """min / max of the per-group values (1 when equal; 0 when some group's value is 0)."""
    v = np.array(list(values.values()), dtype=float)
    return float(v.min() / v.max()) if v.max() > 0 else 0.0


def demographic_parity_difference(
    y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray
) -> float:
    """Largest gap in selection rate between two groups."""
    return difference(by_group(selection_rate, y_true, y_pred, groups))


def demographic_parity_ratio(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> float:
    """Smallest selection rate over the largest."""
    return ratio(by_group(selection_rate, y_true, y_pred, groups))


def equalized_odds_difference(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> float:
    """The worse of the TPR gap and the FPR gap between groups."""
    tpr = by_group(true_positive_rate, y_true, y_pred, groups)
    fpr = by_group(false_positive_rate, y_true, y_pred, groups)
    return max(difference(tpr), difference(fpr))


def equalized_odds_ratio(y_true: np.ndarray, y_pred: np.ndarray, groups: np.ndarray) -> float:
    """The worse (smaller) of the TPR ratio and the FPR ratio between groups."""
    tpr = by_group(true_positive_rate, y_true, y_pred, groups)
    fpr = by_group(false_positive_rate, y_true, y_pred, groups)
    return min(ratio(tpr), ratio(fpr))


def calibration_by_group(
    y_true: np.ndarray, scores: np.ndarray, groups: np.ndarray, n_bins: int = 10
) -> dict[object, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """{group: (mean score, outcome rate, count) per bin}: n_bins equal-width bins on [0, 1].

    Edges e = linspace(0, 1, n_bins + 1); bin i holds the scores in (e[i], e[i+1]] (a score of
    exactly 0 goes in bin 0): the same bins as scikit-learn's
    `calibration_curve(strategy="uniform")`, which drops the empty ones. An empty bin has count 0 and NaN
    means. A calibrated score has outcome rate close to the mean score in every bin of every
    group; comparing groups bin by bin is the "same score, same risk" test.
    """
    y_true, scores, groups = (
        _as_binary(y_true, "y_true"),
        np.asarray(scores, float),
        np.asarray(groups),
    )
    if n_bins < 1 or not np.isfinite(scores).all() or scores.min() < 0 or scores.max() > 1:
        raise ValueError("scores must be finite probabilities in [0, 1] and n_bins >= 1")
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], scores)
    out = {}
    for g in np.unique(groups):
        m = groups == g
        count = np.bincount(bins[m], minlength=n_bins)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_score = np.bincount(bins[m], scores[m], n_bins) / count
            rate = np.bincount(bins[m], y_true[m], n_bins) / count
        out[g] = (mean_score, rate, count)
    return out
