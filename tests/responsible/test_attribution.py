"""Grader for attribution: permutation importance and partial dependence (grid, PDP and ICE)
against ``sklearn.inspection`` with the same random_state (equal numbers), the grid's
percentiles against ``scipy.stats.mstats.mquantiles``, and integrated gradients against
``captum.attr.IntegratedGradients`` for every integration rule (same baseline and steps, float64),
with the completeness property ``sum IG = F(x) - F(baseline)``."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.responsible.attribution"

FAST = settings(max_examples=15, deadline=None)
RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


@pytest.fixture(scope="module")
def cancer():
    """A logistic regression on 150 rows and 5 columns of the breast-cancer data, one column
    rounded so it has few distinct values."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression

    X, y = load_breast_cancer(return_X_y=True)
    X, y = X[:150, :5].copy(), y[:150]
    X[:, 4] = np.round(X[:, 4] * 40) / 40  # few unique values: the grid is the uniques
    return X, y, LogisticRegression(max_iter=5000).fit(X, y)


@pytest.mark.parametrize(("repeats", "seed"), [(1, 0), (3, 7), (4, 123)])
def test_permutation_importance_equals_sklearn(impl, cancer, repeats, seed):
    """Same random_state, same shuffles: every importance equals sklearn's, and X is not changed."""
    from sklearn.inspection import permutation_importance

    X, y, model = cancer
    before = X.copy()
    got = impl.permutation_importance(lambda A, b: model.score(A, b), X, y, repeats, seed)
    want = permutation_importance(model, X, y, n_repeats=repeats, random_state=seed).importances
    np.testing.assert_allclose(got, want, atol=1e-12, err_msg="importances differ from sklearn")
    np.testing.assert_array_equal(X, before, err_msg="X was modified in place")
    assert np.abs(got).max() > 0, "some shuffle must change the score"


def test_permutation_importance_regression_score(impl):
    """Works with any score: R^2 of a linear regression, equal to sklearn's."""
    from sklearn.inspection import permutation_importance
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = X @ [3.0, 0.5, 0.0] + rng.normal(size=60)
    model = LinearRegression().fit(X, y)
    got = impl.permutation_importance(lambda A, b: model.score(A, b), X, y, 5, 2)
    want = permutation_importance(model, X, y, n_repeats=5, random_state=2).importances
    np.testing.assert_allclose(got, want, atol=1e-12)
    with pytest.raises(ValueError):
        impl.permutation_importance(lambda A, b: model.score(A, b), X, y, 0, 2)


@FAST
@given(
    values=st.lists(st.floats(-1e3, 1e3, allow_nan=False), min_size=2, max_size=40),
    lo=st.sampled_from([0.0, 0.05, 0.1, 0.3]),
    hi=st.sampled_from([0.6, 0.9, 0.95, 1.0]),
)
def test_quantiles_match_mquantiles(impl, values, lo, hi):
    """quantiles() equals scipy.stats.mstats.mquantiles (alphap = betap = 0.4)."""
    from scipy.stats.mstats import mquantiles

    got = impl.quantiles(np.array(values), (lo, hi))
    np.testing.assert_allclose(got, mquantiles(values, prob=(lo, hi)), rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize(("feature", "resolution"), [(0, 20), (2, 7), (4, 50), (4, 3)])
def test_partial_dependence_equals_sklearn(impl, cancer, feature, resolution):
    """Grid, PDP and ICE curves equal sklearn's partial_dependence (method='brute')."""
    from sklearn.inspection import partial_dependence

    X, _, model = cancer
    lib = partial_dependence(
        model, X, [feature], grid_resolution=resolution, kind="both", method="brute"
    )
    grid = impl.pd_grid(X[:, feature], resolution)
    np.testing.assert_allclose(grid, lib["grid_values"][0], rtol=1e-12, err_msg="grid differs")
    pdp, ice = impl.partial_dependence(lambda A: model.predict_proba(A)[:, 1], X, feature, grid)
    np.testing.assert_allclose(pdp, lib["average"][0], atol=1e-12, err_msg="PDP differs")
    np.testing.assert_allclose(ice, lib["individual"][0], atol=1e-12, err_msg="ICE differs")
    with pytest.raises(ValueError):
        impl.pd_grid(X[:, feature], 1)


def test_integration_rule_matches_captum(impl):
    """Nodes and weights of every rule equal captum's approximation_parameters."""
    from captum.attr._utils.approximation_methods import approximation_parameters

    for method in RULES:
        step_sizes, alphas = approximation_parameters(method)
        for n in (2, 5, 16):
            nodes, weights = impl.integration_rule(n, method)
            np.testing.assert_allclose(nodes, alphas(n), atol=1e-7, err_msg=f"{method} nodes")
            np.testing.assert_allclose(weights, step_sizes(n), atol=1e-12, err_msg=method)
    with pytest.raises(ValueError):
        impl.integration_rule(8, "simpson")


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3)
    ).double()


@pytest.mark.parametrize("method", RULES)
def test_integrated_gradients_equal_captum(impl, net, method):
    """Integrated gradients equal captum's for the same baseline, target, steps and rule."""
    from captum.attr import IntegratedGradients

    x = torch.randn(4, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    baseline = torch.full((1, 5), 0.3, dtype=torch.float64)
    got = impl.integrated_gradients(net, x, baseline, target=2, n_steps=12, method=method)
    want = IntegratedGradients(net).attribute(
        x, baselines=baseline.expand_as(x), target=2, n_steps=12, method=method
    )
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)


def test_integrated_gradients_completeness(impl, net):
    """With Gauss-Legendre, sum of attributions = F(x) - F(baseline) to 1e-8."""
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    baseline = torch.zeros(1, 5, dtype=torch.float64)
    ig = impl.integrated_gradients(net, x, baseline, target=0, n_steps=32)
    gap = net(x)[:, 0] - net(baseline)[:, 0]
    torch.testing.assert_close(ig.sum(dim=1), gap.detach(), atol=1e-8, rtol=0)
    assert ig.shape == x.shape
