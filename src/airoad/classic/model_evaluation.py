"""A reusable model evaluation pipeline, from scratch: K-fold and stratified K-fold splits,
the classification metrics, ROC and precision-recall curves, and a ``cross_validate`` that
returns one flat dict of mean and std per metric.

The splits reproduce scikit-learn's ``KFold(shuffle=True, random_state=s)`` and
``StratifiedKFold`` index for index (same ``np.random.RandomState`` draws), and every metric
matches ``sklearn.metrics``; the tests check both. Later labs import ``cross_validate``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

Folds = list[tuple[np.ndarray, np.ndarray]]  # (train indices, test indices), both sorted


# ---------------------------------------------------------------- splits


def kfold_indices(
    n_samples: int, n_splits: int = 5, shuffle: bool = False, random_state: int | None = None
) -> Folds:
    """Split ``0..n_samples-1`` into n_splits test folds of near-equal size, like sklearn's KFold.

    The first ``n_samples % n_splits`` folds get one extra sample. With shuffle, the order is
    permuted first by ``np.random.RandomState(random_state).shuffle``; fold i's test set is the
    i-th consecutive block of that order. Returns a list of (train, test) int arrays, each
    sorted ascending; the test sets partition all indices.
    """
    if not 2 <= n_splits <= n_samples:
        raise ValueError(f"n_splits={n_splits} must be between 2 and n_samples={n_samples}")
    order = np.arange(n_samples)
    if shuffle:
        np.random.RandomState(random_state).shuffle(order)
    sizes = np.full(n_splits, n_samples // n_splits)
    sizes[: n_samples % n_splits] += 1
    folds, start = [], 0
    for size in sizes:
        test = np.zeros(n_samples, dtype=bool)
        test[order[start : start + size]] = True
        folds.append((np.flatnonzero(~test), np.flatnonzero(test)))
        start += size
    return folds


def stratified_kfold_indices(
    y: np.ndarray, n_splits: int = 5, shuffle: bool = False, random_state: int | None = None
) -> Folds:
    """K folds that keep each class's share in every test fold, like sklearn's StratifiedKFold.

    Classes are numbered by first appearance in y. Sort those codes and deal them round-robin
    into the folds: fold i gets ``sorted_codes[i::n_splits]``, which fixes how many of each
    class it holds. Then each class's fold numbers (fold 0's share first, then fold 1's ...)
    are written onto that class's rows in data order, shuffled per class with one shared
    ``RandomState(random_state)`` when shuffle is on. y: (n,) labels. Returns (train, test) pairs.
    """
    y = np.asarray(y)
    _, first_seen, inverse = np.unique(y, return_index=True, return_inverse=True)
    codes = np.argsort(np.argsort(first_seen))[inverse]  # 0 = the class seen first in y
    n_classes = len(first_seen)
    counts = np.bincount(codes, minlength=n_classes)
    if np.all(n_splits > counts):
        raise ValueError(f"n_splits={n_splits} is larger than the size of every class {counts}")
    ordered = np.sort(codes)
    allocation = np.array(
        [np.bincount(ordered[i::n_splits], minlength=n_classes) for i in range(n_splits)]
    )  # (n_splits, n_classes)
    rng = np.random.RandomState(random_state)
    test_fold = np.empty(len(y), dtype=int)
    for k in range(n_classes):
        fold_of = np.repeat(np.arange(n_splits), allocation[:, k])
        if shuffle:
            rng.shuffle(fold_of)
        test_fold[codes == k] = fold_of
    return [
        (np.flatnonzero(test_fold != i), np.flatnonzero(test_fold == i)) for i in range(n_splits)
    ]


# ---------------------------------------------------------------- label metrics


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Counts ``C[i, j]`` of samples with true label ``labels[i]`` predicted as ``labels[j]``.

    labels = the sorted union of the values in y_true and y_pred (as sklearn). y_true, y_pred:
    (n,). Returns a (k, k) int array; rows are truth, columns are predictions.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    k = len(labels)
    flat = np.searchsorted(labels, y_true) * k + np.searchsorted(labels, y_pred)
    return np.bincount(flat, minlength=k * k).reshape(k, k)


def accuracy_score(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of predictions equal to the truth. y_true, y_pred: (n,) -> float in [0, 1]."""
    return float(np.mean(np.asarray(y_true) == np.asarray(y_pred)))


def precision_recall_f1(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    average: str | None = "binary",
    pos_label: Any = 1,
    zero_division: float = 0.0,
):
    """Precision ``tp/(tp+fp)``, recall ``tp/(tp+fn)`` and F1 ``2tp/(2tp+fp+fn)``.

    Per class from the confusion matrix (one class against the rest). ``average``:
    "binary" scores only pos_label (y must have at most 2 labels); "macro" is the plain mean
    over classes; "weighted" weights each class by its support (true count); "micro" pools the
    counts of all classes before dividing; None returns one value per sorted label. A 0/0
    gives zero_division. Returns (precision, recall, f1): floats, or (k,) arrays for None.
    """
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    cm = confusion_matrix(y_true, y_pred)
    tp = np.diag(cm).astype(float)
    fp, fn = cm.sum(axis=0) - tp, cm.sum(axis=1) - tp

    def ratio(num, den):
        num, den = np.asarray(num, float), np.asarray(den, float)
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), zero_division)

    if average == "micro":
        tp, fp, fn = tp.sum(), fp.sum(), fn.sum()
    elif average == "binary":
        if len(labels) > 2:
            raise ValueError(
                f"average='binary' needs 2 labels, got {labels}; pick macro/micro/weighted"
            )
        hit = np.flatnonzero(labels == pos_label)
        if hit.size == 0 and len(labels) == 2:
            raise ValueError(f"pos_label={pos_label!r} is not one of the labels {labels}")
        if hit.size == 0:  # only the negative class occurs: nothing to find, nothing found
            tp = fp = fn = np.zeros(1)
        else:
            tp, fp, fn = tp[hit], fp[hit], fn[hit]
    scores = [ratio(tp, tp + fp), ratio(tp, tp + fn), ratio(2 * tp, 2 * tp + fp + fn)]
    if average is None:
        return tuple(scores)
    if average == "weighted":
        support = tp + fn
        return tuple(float(np.sum(s * support) / support.sum()) for s in scores)
    if average in ("macro", "micro", "binary"):
        return tuple(float(np.mean(s)) for s in scores)
    raise ValueError(
        f"average must be 'binary', 'macro', 'micro', 'weighted' or None, got {average!r}"
    )


# ---------------------------------------------------------------- score metrics


def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of values (ascending); tied values share the mean of the ranks they span.

    values: (n,) -> (n,) float (like ``scipy.stats.rankdata(method="average")``).
    """
    uniq, inverse, counts = np.unique(np.asarray(values), return_inverse=True, return_counts=True)
    last = np.cumsum(counts)  # rank of the last member of each tie group
    return (last - (counts - 1) / 2.0)[inverse]


def roc_auc_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative).

    Mann-Whitney form: ``(sum of positive ranks - n_pos (n_pos + 1) / 2) / (n_pos n_neg)`` with
    average ranks, so a positive-negative tie counts 1/2, exactly the trapezoid under sklearn's
    ROC curve. y_true: (n,) two labels, the larger one positive; y_score: (n,) -> float.
    """
    y_true = np.asarray(y_true)
    classes = np.unique(y_true)
    if len(classes) != 2:
        raise ValueError(f"ROC AUC needs both classes in y_true, got {classes}")
    pos = y_true == classes[1]
    n_pos, n_neg = pos.sum(), (~pos).sum()
    ranks = average_ranks(y_score)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def _binary_counts(y_true: np.ndarray, y_score: np.ndarray):
    """(fps, tps, thresholds): counts predicted positive at each distinct score, high to low."""
    y_true = np.asarray(y_true)
    pos = (y_true == np.unique(y_true)[-1]).astype(float)
    order = np.argsort(np.asarray(y_score, dtype=float), kind="mergesort")[::-1]
    score, pos = np.asarray(y_score, dtype=float)[order], pos[order]
    # The last index of each run of equal scores: thresholds sit between distinct scores.
    cut = np.r_[np.flatnonzero(np.diff(score)), score.size - 1]
    tps = np.cumsum(pos)[cut]
    return 1 + cut - tps, tps, score[cut]


def roc_curve(y_true: np.ndarray, y_score: np.ndarray, drop_intermediate: bool = True):
    """ROC curve as sklearn draws it: (fpr, tpr, thresholds), thresholds decreasing.

    Predict positive when ``score >= threshold``; one point per distinct score plus a first
    point (0, 0) at threshold ``inf``. drop_intermediate removes points where the curve goes
    straight on (second difference of both counts zero). Returns three (m,) float arrays.
    """
    fps, tps, thr = _binary_counts(y_true, y_score)
    if drop_intermediate and fps.size > 2:
        keep = np.r_[True, (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), True]
        fps, tps, thr = fps[keep], tps[keep], thr[keep]
    fps, tps, thr = np.r_[0, fps], np.r_[0, tps], np.r_[np.inf, thr]
    return fps / fps[-1], tps / tps[-1], thr


def precision_recall_curve(y_true: np.ndarray, y_score: np.ndarray):
    """(precision, recall, thresholds) like sklearn: recall decreasing, ends at (1, 0).

    At each distinct threshold, precision = tp / (tp + fp) (0 when nothing is predicted) and
    recall = tp / n_pos. precision and recall have one more entry than thresholds.
    """
    fps, tps, thr = _binary_counts(y_true, y_score)
    predicted = tps + fps
    precision = np.where(predicted > 0, tps / np.maximum(predicted, 1), 0.0)
    recall = tps / tps[-1] if tps[-1] > 0 else np.ones_like(tps)
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thr[::-1]


def average_precision_score(y_true: np.ndarray, y_score: np.ndarray) -> float:
    """Area under the PR curve as a step sum: ``sum_n (R_n - R_{n-1}) P_n`` (no interpolation)."""
    precision, recall, _ = precision_recall_curve(y_true, y_score)
    return float(-np.sum(np.diff(recall) * precision[:-1]))


def log_loss(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Mean cross-entropy ``-mean_i log p_i(true class)``, probabilities clipped to [eps, 1-eps].

    eps = float64 machine epsilon, as sklearn clips, so a confident mistake costs about 36, not
    inf. y_true: (n,) labels; y_prob: (n,) P(larger label) for two classes, or (n, k) with one
    column per sorted label.
    """
    y_true = np.asarray(y_true)
    classes = np.unique(y_true)
    p = np.asarray(y_prob, dtype=float)
    if p.ndim == 1:
        p = np.column_stack([1.0 - p, p])
    if p.shape[1] < len(classes):
        raise ValueError(f"y_prob has {p.shape[1]} columns but y_true has {len(classes)} labels")
    eps = np.finfo(float).eps
    picked = p[np.arange(len(y_true)), np.searchsorted(classes, y_true)]
    return float(-np.mean(np.log(np.clip(picked, eps, 1 - eps))))


def binary_metrics(
    y_true: np.ndarray, proba: np.ndarray, threshold: float = 0.5
) -> dict[str, float]:
    """All metrics of one evaluation: accuracy, precision, recall, f1, roc_auc, log_loss.

    y_true: (n,) 0/1; proba: (n,) P(y = 1). The hard label is ``proba > threshold`` (at 0.5
    this is what ``predict`` returns: a tie goes to the first class). Returns name -> float.
    """
    y_true = np.asarray(y_true).astype(int)
    y_pred = (np.asarray(proba) > threshold).astype(int)
    p, r, f1 = precision_recall_f1(y_true, y_pred, average="binary", pos_label=1)
    return {
        "accuracy": accuracy_score(y_true, y_pred),
        "precision": p,
        "recall": r,
        "f1": f1,
        "roc_auc": roc_auc_score(y_true, proba),
        "log_loss": log_loss(y_true, proba),
    }


# ---------------------------------------------------------------- cross-validation


def _rows(X: Any, idx: np.ndarray) -> Any:
    """Rows idx of a NumPy array or a pandas DataFrame (pipelines with column names)."""
    return X.iloc[idx] if hasattr(X, "iloc") else X[idx]


def cross_val_proba(make_model: Callable[[], Any], X: Any, y: np.ndarray, folds: Folds):
    """Out-of-fold P(positive): fit a fresh model on each train fold, predict its test fold.

    make_model: zero-argument callable returning an unfitted estimator with predict_proba.
    X: (n, d) array or DataFrame; y: (n,) two labels (the larger is positive). Returns
    (proba (n,), fit_seconds (n_folds,)); every row is predicted by a model that never saw it.
    """
    y = np.asarray(y)
    positive = np.unique(y)[-1]
    proba, seconds = np.full(len(y), np.nan), []
    for train, test in folds:
        model = make_model()
        start = time.perf_counter()
        model.fit(_rows(X, train), y[train])
        seconds.append(time.perf_counter() - start)
        column = int(np.flatnonzero(np.asarray(model.classes_) == positive)[0])
        proba[test] = model.predict_proba(_rows(X, test))[:, column]
    return proba, np.array(seconds)


def summarize_folds(
    y: np.ndarray, proba: np.ndarray, folds: Folds, fit_seconds: np.ndarray | None = None
) -> dict[str, float]:
    """Score each test fold with ``binary_metrics`` and return ``<metric>_mean``/``<metric>_std``.

    std is over folds with ddof=0 (as ``np.std`` of sklearn's cross_validate scores). Adds
    ``fit_seconds_mean``/``_std`` when given and ``n_splits``. y: (n,) two labels.
    """
    y01 = (np.asarray(y) == np.unique(y)[-1]).astype(int)
    per_fold = [binary_metrics(y01[test], proba[test]) for _, test in folds]
    out: dict[str, float] = {}
    for name in per_fold[0]:
        values = np.array([fold[name] for fold in per_fold])
        out[f"{name}_mean"], out[f"{name}_std"] = float(values.mean()), float(values.std())
    if fit_seconds is not None:
        out["fit_seconds_mean"] = float(np.mean(fit_seconds))
        out["fit_seconds_std"] = float(np.std(fit_seconds))
    out["n_splits"] = len(folds)
    return out


def cross_validate(
    make_model: Callable[[], Any],
    X: Any,
    y: np.ndarray,
    n_splits: int = 5,
    stratified: bool = True,
    shuffle: bool = True,
    random_state: int | None = 0,
) -> dict[str, float]:
    """K-fold cross-validation of a binary classifier in one call: one flat dict of metrics.

    Builds the folds (stratified or plain, same as sklearn's splitters with these arguments),
    gets out-of-fold probabilities with ``cross_val_proba`` and summarises them with
    ``summarize_folds``: keys accuracy/precision/recall/f1/roc_auc/log_loss/fit_seconds with
    ``_mean`` and ``_std``, plus n_splits. make_model: callable -> fresh estimator.
    """
    y = np.asarray(y)
    if len(np.unique(y)) != 2:
        raise ValueError(f"cross_validate scores binary classifiers; y has labels {np.unique(y)}")
    if stratified:
        folds = stratified_kfold_indices(y, n_splits, shuffle, random_state)
    else:
        folds = kfold_indices(len(y), n_splits, shuffle, random_state)
    proba, seconds = cross_val_proba(make_model, X, y, folds)
    return summarize_folds(y, proba, folds, seconds)
