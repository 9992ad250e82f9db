"""Grader for fairness-audit's metrics: per-group rates against fairlearn's MetricFrame, the
parity and equalised-odds differences and ratios against fairlearn's functions, calibration
bins against scikit-learn's calibration_curve, and a hand-counted case."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.responsible.fairness_audit"

FAST = settings(max_examples=12, deadline=None)


def _data(seed: int, n: int = 60, n_groups: int = 3):
    rng = np.random.default_rng(seed)
    groups = rng.choice(np.array(["a", "b", "c", "d"][:n_groups]), n)
    y_true = rng.integers(0, 2, n)
    y_pred = (rng.random(n) < 0.3 + 0.2 * (groups == "a")).astype(int)
    return y_true, y_pred, groups


def _frame(y_true, y_pred, groups):
    from fairlearn.metrics import (
        MetricFrame,
        false_positive_rate,
        selection_rate,
        true_positive_rate,
    )
    from sklearn.metrics import accuracy_score

    metrics = {
        "selection_rate": selection_rate,
        "true_positive_rate": true_positive_rate,
        "false_positive_rate": false_positive_rate,
        "accuracy": accuracy_score,
    }
    return MetricFrame(metrics=metrics, y_true=y_true, y_pred=y_pred, sensitive_features=groups)


def test_hand_counted_rates(impl):
    """Rates on four rows counted by hand: selection 1/2, TPR 1/2, FPR 1/2, accuracy 1/2."""
    y_true, y_pred = np.array([1, 1, 0, 0]), np.array([1, 0, 1, 0])
    for fn in ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy"):
        assert getattr(impl, fn)(y_true, y_pred) == pytest.approx(0.5), fn
    assert impl.true_positive_rate(np.array([1, 1, 1, 0]), np.array([1, 1, 0, 1])) == 2 / 3
    assert impl.false_positive_rate(np.array([0, 0, 0, 1]), np.array([1, 1, 0, 1])) == 2 / 3
    assert impl.selection_rate(np.array([0, 0, 0, 0]), np.array([1, 1, 1, 0])) == 0.75


@settings(max_examples=6, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 4))
def test_by_group_matches_metricframe(impl, seed, n_groups):
    """by_group(metric, ...) gives fairlearn MetricFrame's by_group values for every metric."""
    y_true, y_pred, groups = _data(seed, n_groups=n_groups)
    names = ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")
    all_ours = {n: impl.by_group(getattr(impl, n), y_true, y_pred, groups) for n in names}
    frame = _frame(y_true, y_pred, groups).by_group
    for name, ours in all_ours.items():
        assert list(ours) == list(frame.index), "groups should come out in sorted order"
        np.testing.assert_allclose(
            list(ours.values()), frame[name].to_numpy(dtype=float), atol=1e-12, err_msg=name
        )


@FAST
@given(st.integers(0, 10_000), st.integers(2, 4))
def test_disparities_match_fairlearn(impl, seed, n_groups):
    """DP and EO differences and ratios equal fairlearn's demographic_parity_* / equalized_odds_*."""
    import fairlearn.metrics as flm

    y_true, y_pred, groups = _data(seed, n_groups=n_groups)
    for name in (
        "demographic_parity_difference",
        "demographic_parity_ratio",
        "equalized_odds_difference",
        "equalized_odds_ratio",
    ):
        got = getattr(impl, name)(y_true, y_pred, groups)
        want = getattr(flm, name)(y_true, y_pred, sensitive_features=groups)
        assert got == pytest.approx(want, abs=1e-12), f"{name}: fairlearn gives {want}"


def test_difference_and_ratio_by_hand(impl):
    """Group a selects 3/4, group b 1/4: DP difference 0.5, ratio 1/3; EO uses the worse of TPR/FPR."""
    y_true = np.array([1, 1, 0, 0, 1, 1, 0, 0])
    y_pred = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    groups = np.array(list("aaaabbbb"))
    assert impl.demographic_parity_difference(y_true, y_pred, groups) == pytest.approx(0.5)
    assert impl.demographic_parity_ratio(y_true, y_pred, groups) == pytest.approx(1 / 3)
    # TPR a = 1, b = 1/2 (gap 1/2); FPR a = 1/2, b = 0 (gap 1/2, ratio 0).
    assert impl.equalized_odds_difference(y_true, y_pred, groups) == pytest.approx(0.5)
    assert impl.equalized_odds_ratio(y_true, y_pred, groups) == pytest.approx(0.0)
    assert impl.difference({"x": 0.2, "y": 0.9, "z": 0.5}) == pytest.approx(0.7)
    assert impl.ratio({"x": 0.2, "y": 0.8}) == pytest.approx(0.25)


def test_bad_inputs_are_clear_errors(impl):
    """Labels other than 0/1, mismatched lengths and empty input raise ValueError."""
    with pytest.raises(ValueError):
        impl.selection_rate(np.array([0, 1]), np.array([0, 2]))
    with pytest.raises(ValueError):
        impl.by_group(impl.accuracy, np.array([0, 1]), np.array([0, 1]), np.array(["a"]))
    with pytest.raises(ValueError):
        impl.by_group(impl.accuracy, np.array([], int), np.array([], int), np.array([]))
    with pytest.raises(ValueError):
        impl.calibration_by_group(np.array([0, 1]), np.array([0.2, np.nan]), np.array(["a", "a"]))
    with pytest.raises(ValueError):
        impl.calibration_by_group(np.array([0, 1]), np.array([0.2, 0.4]), np.array(["a", "a"]), 0)


@FAST
@given(st.integers(0, 10_000), st.sampled_from([3, 5, 10]))
def test_calibration_matches_sklearn(impl, seed, n_bins):
    """Per-group outcome rate and mean score per bin equal sklearn's calibration_curve(uniform)."""
    from sklearn.calibration import calibration_curve

    rng = np.random.default_rng(seed)
    n = 80
    groups = rng.choice(np.array(["a", "b"]), n)
    scores = np.round(rng.random(n), 1)  # values on the bin edges test the edge convention
    scores[:2] = [0.0, 1.0]
    y = (rng.random(n) < scores).astype(int)
    out = impl.calibration_by_group(y, scores, groups, n_bins)
    assert sorted(out) == ["a", "b"]
    for g, (mean_score, rate, count) in out.items():
        m = groups == g
        prob_true, prob_pred = calibration_curve(y[m], scores[m], n_bins=n_bins)
        full = count > 0
        assert count.sum() == m.sum() and len(count) == n_bins
        np.testing.assert_allclose(rate[full], prob_true, atol=1e-12, err_msg="outcome rate")
        np.testing.assert_allclose(mean_score[full], prob_pred, atol=1e-12, err_msg="mean score")
        assert np.isnan(rate[~full]).all(), "an empty bin's rate should be NaN"
