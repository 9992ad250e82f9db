"""Grader for model-evaluation: K-fold splits index for index against scikit-learn's splitters,
every metric against sklearn.metrics, and cross_validate against sklearn's cross_validate."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import metrics
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
from sklearn.model_selection import cross_validate as sk_cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REFERENCE = "airoad.classic.model_evaluation"

FAST = settings(max_examples=30, deadline=None)
METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "log_loss")


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X, y


def _same_folds(ours, theirs, what: str) -> None:
    ours = list(ours)
    assert len(ours) == len(theirs), f"{what}: got {len(ours)} folds, expected {len(theirs)}"
    for i, ((tr, te), (sk_tr, sk_te)) in enumerate(zip(ours, theirs)):
        np.testing.assert_array_equal(
            np.asarray(te), sk_te, err_msg=f"{what}: test indices of fold {i} differ"
        )
        np.testing.assert_array_equal(
            np.asarray(tr), sk_tr, err_msg=f"{what}: train indices of fold {i} differ"
        )


def _logreg():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


# ---------------------------------------------------------------- splits


@pytest.mark.parametrize("n, k", [(10, 2), (11, 3), (100, 5), (569, 10)])
@pytest.mark.parametrize("shuffle, seed", [(False, None), (True, 0), (True, 123)])
def test_kfold_matches_sklearn(impl, n, k, shuffle, seed):
    """kfold_indices gives exactly KFold(n_splits, shuffle, random_state)'s train/test indices."""
    theirs = list(KFold(k, shuffle=shuffle, random_state=seed).split(np.zeros(n)))
    _same_folds(
        impl.kfold_indices(n, k, shuffle, seed), theirs, f"KFold(n={n}, k={k}, shuffle={shuffle})"
    )


@pytest.mark.parametrize("shuffle, seed", [(False, None), (True, 0), (True, 7)])
def test_stratified_kfold_matches_sklearn(impl, shuffle, seed):
    """stratified_kfold_indices gives exactly StratifiedKFold's indices, string labels included."""
    rng = np.random.default_rng(1)
    for n, k in [(50, 5), (97, 4), (203, 10)]:
        y = rng.choice(np.array(["spam", "eggs", "ham"]), size=n, p=[0.6, 0.3, 0.1])
        theirs = list(StratifiedKFold(k, shuffle=shuffle, random_state=seed).split(np.zeros(n), y))
        _same_folds(
            impl.stratified_kfold_indices(y, k, shuffle, seed),
            theirs,
            f"StratifiedKFold(n={n}, k={k}, shuffle={shuffle})",
        )


def test_stratified_kfold_on_breast_cancer(impl, cancer):
    """Stratified folds on the breast-cancer labels equal sklearn's and keep the class ratio."""
    _, y = cancer
    theirs = list(StratifiedKFold(5, shuffle=True, random_state=0).split(np.zeros(len(y)), y))
    ours = impl.stratified_kfold_indices(y, 5, True, 0)
    _same_folds(ours, theirs, "StratifiedKFold on breast-cancer")
    for _, test in ours:
        assert abs(y[test].mean() - y.mean()) < 0.01, "each test fold should keep the class ratio"


@FAST
@given(n=st.integers(8, 60), k=st.integers(2, 4), seed=st.integers(0, 1000))
def test_folds_partition_the_rows(impl, n, k, seed):
    """Test folds are disjoint, cover every row once, and train is the rest (sorted)."""
    for folds in (
        impl.kfold_indices(n, k, True, seed),
        impl.stratified_kfold_indices(np.arange(n) % 2, k, True, seed),
    ):
        tests = np.concatenate([np.asarray(te) for _, te in folds])
        np.testing.assert_array_equal(
            np.sort(tests), np.arange(n), err_msg="test folds must partition 0..n-1"
        )
        for tr, te in folds:
            np.testing.assert_array_equal(
                np.asarray(tr),
                np.setdiff1d(np.arange(n), te),
                err_msg="train must be every row not in test, sorted",
            )


# ---------------------------------------------------------------- label metrics


def test_confusion_matrix_and_accuracy_match_sklearn(impl):
    """confusion_matrix (sorted labels, rows = truth) and accuracy_score equal sklearn's."""
    rng = np.random.default_rng(0)
    y_true = rng.choice(np.array(["cat", "dog", "emu"]), 120)
    y_pred = np.where(
        rng.random(120) < 0.6, y_true, rng.choice(np.array(["cat", "dog", "fox"]), 120)
    )
    cm = np.asarray(impl.confusion_matrix(y_true, y_pred))
    assert cm.shape == (4, 4), f"confusion_matrix returned {cm.shape}, expected (4, 4) for 4 labels"
    np.testing.assert_array_equal(
        cm, metrics.confusion_matrix(y_true, y_pred), err_msg="confusion matrix"
    )
    assert impl.accuracy_score(y_true, y_pred) == pytest.approx(
        metrics.accuracy_score(y_true, y_pred)
    )


@pytest.mark.parametrize("average", ["macro", "micro", "weighted", None])
def test_precision_recall_f1_averages_match_sklearn(impl, average):
    """precision_recall_f1 with macro/micro/weighted/None equals precision_recall_fscore_support."""
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 4, 300)
    y_pred = np.where(
        rng.random(300) < 0.5, y_true, rng.integers(0, 3, 300)
    )  # class 3 never predicted
    ours = impl.precision_recall_f1(y_true, y_pred, average=average)
    theirs = metrics.precision_recall_fscore_support(
        y_true, y_pred, average=average, zero_division=0
    )[:3]
    for name, a, b in zip(("precision", "recall", "f1"), ours, theirs):
        np.testing.assert_allclose(a, b, rtol=1e-12, err_msg=f"{name} with average={average}")


def test_binary_precision_recall_f1_and_pos_label(impl):
    """average='binary' scores pos_label only; string labels work; 0/0 gives zero_division."""
    y_true = np.array(["no", "yes", "yes", "no", "yes", "no", "no"])
    y_pred = np.array(["yes", "yes", "no", "no", "yes", "no", "yes"])
    for pos in ("yes", "no"):
        ours = impl.precision_recall_f1(y_true, y_pred, average="binary", pos_label=pos)
        theirs = metrics.precision_recall_fscore_support(
            y_true, y_pred, average="binary", pos_label=pos
        )[:3]
        np.testing.assert_allclose(
            ours, theirs, rtol=1e-12, err_msg=f"binary scores with pos_label={pos}"
        )
    p, r, f1 = impl.precision_recall_f1(np.array([1, 1, 0]), np.array([0, 0, 0]), average="binary")
    assert (p, r, f1) == (0.0, 0.0, 0.0), "nothing predicted positive: precision 0/0 -> 0"
    with pytest.raises(ValueError):
        impl.precision_recall_f1(np.array([0, 1, 2]), np.array([0, 1, 2]), average="binary")


# ---------------------------------------------------------------- score metrics


@FAST
@given(seed=st.integers(0, 10_000), levels=st.integers(2, 12))
def test_roc_auc_with_ties_matches_sklearn(impl, seed, levels):
    """roc_auc_score equals sklearn's, also when many scores tie (coarse integer scores)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 40)
    y[:2] = [0, 1]
    score = rng.integers(0, levels, 40) + 0.3 * y * rng.integers(0, 2, 40)
    assert impl.roc_auc_score(y, score) == pytest.approx(metrics.roc_auc_score(y, score), abs=1e-12)


def test_average_ranks_match_scipy(impl):
    """average_ranks gives tied values the mean of their ranks (scipy.stats.rankdata)."""
    from scipy.stats import rankdata

    x = np.array([3.0, 1.0, 3.0, 2.0, 3.0, 0.5, 1.0])
    np.testing.assert_allclose(impl.average_ranks(x), rankdata(x), err_msg="average ranks")


@pytest.mark.parametrize("drop", [True, False])
def test_roc_curve_matches_sklearn(impl, drop):
    """roc_curve gives sklearn's (fpr, tpr, thresholds), first threshold inf, with drop_intermediate."""
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 200)
    score = np.round(rng.random(200) + 0.4 * y, 2)
    ours = impl.roc_curve(y, score, drop_intermediate=drop)
    theirs = metrics.roc_curve(y, score, drop_intermediate=drop)
    for name, a, b in zip(("fpr", "tpr", "thresholds"), ours, theirs):
        assert np.shape(a) == b.shape, f"{name} has shape {np.shape(a)}, expected {b.shape}"
        np.testing.assert_allclose(a, b, err_msg=f"roc_curve {name} (drop_intermediate={drop})")
    fpr, tpr, _ = ours
    assert np.trapezoid(tpr, fpr) == pytest.approx(impl.roc_auc_score(y, score), abs=1e-12), (
        "the trapezoid area under roc_curve must equal roc_auc_score"
    )


def test_precision_recall_curve_and_average_precision(impl):
    """precision_recall_curve and average_precision_score equal sklearn's."""
    rng = np.random.default_rng(6)
    y = rng.integers(0, 2, 150)
    score = np.round(rng.random(150) + 0.5 * y, 1)
    top_one = ([0, 1, 1, 0, 1], [0.1, 0.9, 0.4, 0.35, 0.8])  # one sample at the top threshold
    for yy, ss in [(y, score), top_one]:
        for name, a, b in zip(
            ("precision", "recall", "thresholds"),
            impl.precision_recall_curve(yy, ss),
            metrics.precision_recall_curve(yy, ss),
        ):
            assert np.shape(a) == b.shape, f"{name} has shape {np.shape(a)}, expected {b.shape}"
            np.testing.assert_allclose(a, b, err_msg=f"precision_recall_curve {name}")
    assert impl.average_precision_score(y, score) == pytest.approx(
        metrics.average_precision_score(y, score), abs=1e-12
    )


def test_log_loss_clips_like_sklearn(impl):
    """log_loss equals sklearn's, with 0 and 1 probabilities clipped (finite), binary and multiclass."""
    y = np.array([0, 1, 1, 0, 1])
    p = np.array([0.0, 1.0, 0.0, 0.2, 0.9])  # one confident mistake
    got = impl.log_loss(y, p)
    assert np.isfinite(got), "clip probabilities to [eps, 1 - eps] so log never sees 0"
    assert got == pytest.approx(metrics.log_loss(y, p), rel=1e-12)
    y3 = np.array(["a", "c", "b", "a"])
    P = np.array([[0.7, 0.2, 0.1], [0.1, 0.1, 0.8], [0.3, 0.4, 0.3], [1.0, 0.0, 0.0]])
    assert impl.log_loss(y3, P) == pytest.approx(metrics.log_loss(y3, P), rel=1e-12)
    sure = ([0, 1], [0.0, 1.0])  # right and certain: clipped to 1 - eps, so -log(1 - eps) > 0
    np.testing.assert_allclose(impl.log_loss(*sure), metrics.log_loss(*sure), rtol=1e-9, atol=0)


def test_binary_metrics_dict(impl):
    """binary_metrics returns the six metrics, each equal to sklearn's on the same predictions."""
    rng = np.random.default_rng(8)
    y = rng.integers(0, 2, 100)
    proba = np.clip(rng.random(100) * 0.7 + 0.3 * y, 0, 1)
    got = impl.binary_metrics(y, proba)
    assert set(got) == set(METRICS), (
        f"binary_metrics keys {sorted(got)}, expected {sorted(METRICS)}"
    )
    pred = (proba > 0.5).astype(int)
    expected = {
        "accuracy": metrics.accuracy_score(y, pred),
        "precision": metrics.precision_score(y, pred),
        "recall": metrics.recall_score(y, pred),
        "f1": metrics.f1_score(y, pred),
        "roc_auc": metrics.roc_auc_score(y, proba),
        "log_loss": metrics.log_loss(y, proba),
    }
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-12), f"binary_metrics[{name!r}]"


# ---------------------------------------------------------------- cross-validation


def test_cross_val_proba_matches_cross_val_predict(impl, cancer):
    """cross_val_proba's out-of-fold probabilities equal cross_val_predict(method='predict_proba')."""
    X, y = cancer
    folds = impl.stratified_kfold_indices(y, 5, True, 0)
    proba, seconds = impl.cross_val_proba(_logreg, X, y, folds)
    assert np.shape(proba) == (len(y),), f"proba has shape {np.shape(proba)}, expected (n_samples,)"
    assert np.shape(seconds) == (5,), "fit_seconds must hold one time per fold"
    theirs = cross_val_predict(
        _logreg(), X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), method="predict_proba"
    )[:, 1]
    np.testing.assert_allclose(proba, theirs, atol=1e-10, err_msg="out-of-fold P(y=1) differs")


@pytest.mark.parametrize("stratified", [True, False])
def test_cross_validate_matches_sklearn(impl, cancer, stratified):
    """cross_validate's mean and std per metric equal sklearn's cross_validate on the same folds."""
    X, y = cancer
    got = impl.cross_validate(
        _logreg, X, y, n_splits=5, stratified=stratified, shuffle=True, random_state=0
    )
    for name in METRICS:
        for stat in ("mean", "std"):
            assert f"{name}_{stat}" in got, f"cross_validate must return '{name}_{stat}'"
    assert got["n_splits"] == 5
    cv = (StratifiedKFold if stratified else KFold)(5, shuffle=True, random_state=0)
    scoring = {
        "accuracy": "accuracy",
        "precision": "precision",
        "recall": "recall",
        "f1": "f1",
        "roc_auc": "roc_auc",
        "log_loss": "neg_log_loss",
    }
    res = sk_cross_validate(_logreg(), X, y, cv=cv, scoring=scoring)
    for name in METRICS:
        scores = res[f"test_{name}"] * (-1 if name == "log_loss" else 1)
        assert got[f"{name}_mean"] == pytest.approx(scores.mean(), abs=1e-9), f"{name}_mean"
        assert got[f"{name}_std"] == pytest.approx(scores.std(), abs=1e-9), f"{name}_std (ddof=0)"


def test_cross_validate_on_a_dataframe_with_string_labels(impl):
    """cross_validate takes a DataFrame (rows by position) and string labels (larger = positive)."""
    import pandas as pd

    X, y = load_breast_cancer(return_X_y=True)
    frame = pd.DataFrame(X[:300, :5], columns=[f"f{i}" for i in range(5)], index=np.arange(300) * 3)
    labels = np.where(y[:300] == 1, "benign", "malignant")  # "malignant" sorts last: positive
    got = impl.cross_validate(_logreg, frame, labels, n_splits=4, random_state=1)
    cv = StratifiedKFold(4, shuffle=True, random_state=1)
    res = sk_cross_validate(_logreg(), frame, labels, cv=cv, scoring="roc_auc")
    assert got["roc_auc_mean"] == pytest.approx(res["test_score"].mean(), abs=1e-9), (
        "roc_auc_mean on a DataFrame with string labels"
    )
    with pytest.raises(ValueError):
        impl.cross_validate(_logreg, X[:30], np.arange(30) % 3)
