"""Grader for fairness-audit's mitigations: Kamiran-Calders weights against the formula and a
hand case, and group thresholds against fairlearn's ThresholdOptimizer (same operating points,
mixing probabilities, and randomised predictions with the same random_state)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.responsible.fairness_mitigation"

FAST = settings(max_examples=8, deadline=None)


def test_reweighing_hand_case(impl):
    """Two groups of 4: a has 3 positives, b has 1; weights are P(a)P(y)/P(a,y) counted by hand."""
    y = np.array([1, 1, 1, 0, 1, 0, 0, 0])
    groups = np.array(list("aaaabbbb"))
    # P(a) = 1/2, P(y=1) = 1/2, P(a, 1) = 3/8 -> 2/3; P(a, 0) = 1/8 -> 2; b mirrors a.
    want = np.array([2 / 3, 2 / 3, 2 / 3, 2, 2, 2 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(impl.reweighing_weights(y, groups), want, atol=1e-12)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000))
def test_reweighing_makes_label_independent_of_group(impl, seed):
    """Weights equal P(a)P(y)/P(a,y) row by row, average 1, and make P_w(y | a) the same for all a."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(20, 80))
    groups = rng.choice(np.array(["x", "y", "z"]), n)
    y = (rng.random(n) < np.where(groups == "x", 0.7, 0.3)).astype(int)
    groups[:6], y[:6] = ["x", "x", "y", "y", "z", "z"], [0, 1, 0, 1, 0, 1]  # every cell occurs
    w = impl.reweighing_weights(y, groups)
    for i in range(n):
        pa, py = (groups == groups[i]).mean(), (y == y[i]).mean()
        pay = ((groups == groups[i]) & (y == y[i])).mean()
        assert w[i] == pytest.approx(pa * py / pay, rel=1e-12), f"row {i}"
    assert w.mean() == pytest.approx(1.0, rel=1e-12)
    for g in np.unique(groups):
        m = groups == g
        assert (w[m] * y[m]).sum() / w[m].sum() == pytest.approx(y.mean(), rel=1e-9)


def _scored(seed: int, n: int = 240):
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(seed)
    groups = np.where(rng.random(n) < 0.4, "a", "b")
    X = np.round(rng.normal(size=(n, 2)), 1)  # repeated scores exercise the tie handling
    y = ((X[:, 0] + 0.8 * (groups == "a") + rng.normal(size=n)) > 0.5).astype(int)
    model = LogisticRegression().fit(X, y)
    return model, X, y, groups, model.predict_proba(X)[:, 1]


@FAST
@given(st.integers(0, 10_000), st.sampled_from(["demographic_parity", "equalized_odds"]))
def test_group_thresholds_match_fairlearn(impl, seed, constraint):
    """Per-group thresholds, mixing weights, p_ignore and predictions equal ThresholdOptimizer's."""
    from fairlearn.postprocessing import ThresholdOptimizer

    model, X, y, groups, scores = _scored(seed)
    rules = impl.fit_group_thresholds(scores, y, groups, constraint)  # first: a stub fails fast
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = ThresholdOptimizer(
            estimator=model, constraints=constraint, prefit=True, predict_method="predict_proba"
        ).fit(X, y, sensitive_features=groups)
        lib_pred = lib.predict(X, sensitive_features=groups, random_state=seed)
        lib_prob = lib._pmf_predict(X, sensitive_features=groups)[:, 1]
    for g, want in lib.interpolated_thresholder_.interpolation_dict.items():
        got = rules[g]
        np.testing.assert_allclose(
            [got.p0, got.t0, got.p1, got.t1, got.p_ignore, got.constant],
            [want.p0, want.operation0.threshold, want.p1, want.operation1.threshold,
             want.get("p_ignore", 0.0), want.get("prediction_constant", 0.0)],
            atol=1e-12, err_msg=f"group {g}: (p0, t0, p1, t1, p_ignore, constant)",
        )  # fmt: skip
    np.testing.assert_allclose(
        impl.predict_proba_groups(rules, scores, groups), lib_prob, atol=1e-12
    )
    np.testing.assert_array_equal(impl.predict_groups(rules, scores, groups, seed), lib_pred)


def test_uninformative_group_matches_fairlearn(impl):
    """A group whose scores are all equal sits on the diagonal: p_ignore 0 there, as in fairlearn."""
    from fairlearn.postprocessing import ThresholdOptimizer
    from sklearn.dummy import DummyClassifier

    model, X, y, groups, scores = _scored(7)
    b = groups == "b"
    X = np.c_[X, b]
    scores = np.where(b, 0.5, scores)
    rules = impl.fit_group_thresholds(scores, y, groups, "equalized_odds")

    class Fixed(DummyClassifier):  # the scores above, looked up from the row's marker column
        def predict_proba(self, Z):
            s = np.where(Z[:, 2] == 1, 0.5, model.predict_proba(Z[:, :2])[:, 1])
            return np.c_[1 - s, s]

    fixed = Fixed().fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lib = ThresholdOptimizer(estimator=fixed, constraints="equalized_odds", prefit=True,
                                 predict_method="predict_proba").fit(X, y, sensitive_features=groups)  # fmt: skip
    for g, want in lib.interpolated_thresholder_.interpolation_dict.items():
        got = rules[g]
        np.testing.assert_allclose(
            [got.p0, got.t0, got.p1, got.t1, got.p_ignore, got.constant],
            [want.p0, want.operation0.threshold, want.p1, want.operation1.threshold,
             want.p_ignore, want.prediction_constant],
            atol=1e-12, err_msg=f"group {g}: (p0, t0, p1, t1, p_ignore, constant)",
        )  # fmt: skip
    assert rules["b"].p_ignore == 0.0, "a group on the diagonal needs no coin flip"


def test_tradeoff_points_by_hand(impl):
    """Scores 0.9, 0.5, 0.5, 0.1 with labels 1, 1, 0, 0: thresholds inf, 0.7, 0.3, -inf."""
    scores, y = np.array([0.5, 0.9, 0.1, 0.5]), np.array([1, 1, 0, 0])
    x, tpr, thr = impl.tradeoff_points(scores, y, "false_positive_rate")
    np.testing.assert_allclose(x, [0, 0, 0.5, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 1, 1])
    np.testing.assert_array_equal(thr, [np.inf, 0.7, 0.3, -np.inf])
    sel, acc, _ = impl.tradeoff_points(scores, y, "selection_rate")
    np.testing.assert_allclose(sel, [0, 0.25, 0.75, 1])
    np.testing.assert_allclose(acc, [0.5, 0.75, 0.75, 0.5])
    np.testing.assert_array_equal(impl.upper_hull(x, tpr), [0, 1, 2, 3])


def test_predictions_reach_the_constraint(impl):
    """Under the equalised-odds rules every group's expected TPR and FPR are the same."""
    _, _, y, groups, scores = _scored(1, n=400)
    rules = impl.fit_group_thresholds(scores, y, groups, "equalized_odds", grid_size=200)
    prob = impl.predict_proba_groups(rules, scores, groups)
    tpr = [prob[(groups == g) & (y == 1)].mean() for g in ("a", "b")]
    fpr = [prob[(groups == g) & (y == 0)].mean() for g in ("a", "b")]
    assert tpr[0] == pytest.approx(tpr[1], abs=1e-9) and fpr[0] == pytest.approx(fpr[1], abs=1e-9)


def test_bad_inputs_are_clear_errors(impl):
    """An unknown constraint, a one-label group (or curve) and an unseen group raise ValueError."""
    scores, y, groups = (
        np.array([0.2, 0.8, 0.4, 0.6]),
        np.array([0, 1, 0, 1]),
        np.array(list("aabb")),
    )
    with pytest.raises(ValueError):
        impl.fit_group_thresholds(scores, y, groups, "equal_everything")
    with pytest.raises(ValueError):
        impl.fit_group_thresholds(scores, np.array([0, 1, 1, 1]), groups)
    for labels in ([0, 0, 0], [1, 1, 1]):
        with pytest.raises(ValueError):
            impl.tradeoff_points(np.array([0.1, 0.5, 0.9]), np.array(labels), "selection_rate")
    rules = impl.fit_group_thresholds(scores, y, groups)
    with pytest.raises(ValueError):
        impl.predict_proba_groups(rules, scores, np.array(list("aabc")))
