"""Grader for explainability: coalitions and the Shapley kernel against their formulas,
KernelSHAP against ``shap.KernelExplainer`` enumerating every coalition on the same background
(1e-6), exact Shapley values against ``shap.TreeExplainer``'s interventional values and against
the closed form for a linear model, and LIME against the ``lime`` package fed the same seed, so
the same perturbation samples, the same kernel and the same ridge fit."""

from __future__ import annotations

import itertools
import warnings
from math import comb

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.responsible.explainability"

FAST = settings(max_examples=15, deadline=None)


def toy_model(seed: int, m: int):
    """A smooth non-additive model: tanh of a linear score plus a feature interaction."""
    w = np.random.default_rng(seed).normal(size=m)
    return lambda X: np.tanh(X @ w) + 0.5 * X[:, 0] * X[:, -1] ** 2


def toy_data(seed: int, m: int, n_bg: int = 6):
    rng = np.random.default_rng(seed + 100)
    return rng.normal(size=m), rng.normal(size=(n_bg, m))


def shap_kernel_values(f, x, bg):
    import shap

    explainer = shap.KernelExplainer(f, bg)
    m = len(x)
    sv = explainer.shap_values(x[None], nsamples=2**m, l1_reg=False, silent=True)
    return np.ravel(sv), float(explainer.expected_value)


def test_coalitions_are_the_bits_of_the_row_index(impl):
    """Row k of coalitions(m) is the 0/1 bit pattern of k, feature j = bit j."""
    for m in (1, 3, 5):
        masks = impl.coalitions(m)
        assert masks.shape == (2**m, m), f"expected shape {(2**m, m)}, got {masks.shape}"
        want = np.array([[(k >> j) & 1 for j in range(m)] for k in range(2**m)])
        np.testing.assert_array_equal(masks, want, err_msg="row k must hold the bits of k")
    with pytest.raises(ValueError):
        impl.coalitions(0)


def test_shapley_kernel_matches_formula(impl):
    """Kernel weight (M-1)/(C(M,s) s (M-s)); infinite for the empty and the full coalition."""
    for m in (2, 5, 9):
        sizes = np.arange(m + 1)
        got = impl.shapley_kernel(sizes, m)
        assert np.isinf(got[0]) and np.isinf(got[-1]), "sizes 0 and M are constraints (inf)"
        want = [(m - 1) / (comb(m, s) * s * (m - s)) for s in range(1, m)]
        np.testing.assert_allclose(got[1:-1], want, rtol=1e-12, err_msg=f"M = {m}")


def test_coalition_values_average_over_background(impl):
    """v(S) = mean over background rows of f(x on S, background elsewhere)."""
    m = 4
    f = toy_model(0, m)
    x, bg = toy_data(0, m)
    masks = np.array(list(itertools.product([0, 1], repeat=m)), dtype=float)[::-1]
    got = impl.coalition_values(f, x, bg, masks)
    want = [np.mean([f(np.where(s == 1, x, b)[None])[0] for b in bg]) for s in masks]
    np.testing.assert_allclose(got, want, atol=1e-12, err_msg="wrong coalition values")


@pytest.mark.parametrize("m", [2, 4, 7])
def test_kernel_shap_equals_shap_kernel_explainer(impl, m):
    """KernelSHAP with every coalition equals shap.KernelExplainer (nsamples=2^M, no L1) to 1e-6."""
    f = toy_model(m, m)
    x, bg = toy_data(m, m)
    phi, phi0 = impl.kernel_shap(f, x, bg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        want, base = shap_kernel_values(f, x, bg)
    np.testing.assert_allclose(phi, want, atol=1e-6, err_msg="KernelSHAP differs from shap's")
    assert phi0 == pytest.approx(base, abs=1e-9), "phi_0 must be the mean background output"


@FAST
@given(seed=st.integers(0, 10_000), m=st.integers(2, 6))
def test_kernel_shap_equals_exact_shapley(impl, seed, m):
    """The constrained weighted fit over all coalitions gives exact Shapley values (efficiency holds)."""
    f = toy_model(seed, m)
    x, bg = toy_data(seed, m, n_bg=3)
    phi, phi0 = impl.kernel_shap(f, x, bg)
    exact, exact0 = impl.exact_shapley(f, x, bg)
    np.testing.assert_allclose(phi, exact, atol=1e-9, err_msg="KernelSHAP != exact Shapley")
    assert phi0 + phi.sum() == pytest.approx(f(x[None])[0], abs=1e-9), "efficiency violated"
    assert exact0 == pytest.approx(f(bg).mean(), abs=1e-12)


@FAST
@given(seed=st.integers(0, 10_000), m=st.integers(1, 6))
def test_exact_shapley_of_linear_model(impl, seed, m):
    """For f(x) = w.x + c, phi_i = w_i (x_i - mean of background column i)."""
    rng = np.random.default_rng(seed)
    w, c = rng.normal(size=m), rng.normal()
    x, bg = rng.normal(size=m), rng.normal(size=(4, m))
    phi, phi0 = impl.exact_shapley(lambda X: X @ w + c, x, bg)
    np.testing.assert_allclose(phi, w * (x - bg.mean(axis=0)), atol=1e-10)
    assert phi0 == pytest.approx(bg.mean(axis=0) @ w + c, abs=1e-10)


def test_exact_shapley_equals_interventional_tree_shap(impl):
    """Exact Shapley of a tree ensemble's output equals shap.TreeExplainer(interventional)."""
    import shap
    from sklearn.ensemble import GradientBoostingRegressor

    rng = np.random.default_rng(3)
    X = rng.normal(size=(200, 5))
    y = X[:, 0] * X[:, 1] + np.sin(3 * X[:, 2]) + 0.1 * rng.normal(size=200)
    model = GradientBoostingRegressor(n_estimators=20, max_depth=3, random_state=0).fit(X, y)
    bg = X[:8]
    tree = shap.TreeExplainer(model, data=bg, feature_perturbation="interventional")
    for x in X[50:53]:
        phi, phi0 = impl.exact_shapley(model.predict, x, bg)
        want = tree.shap_values(x[None], check_additivity=False)[0]
        np.testing.assert_allclose(phi, want, atol=1e-8, err_msg="differs from TreeSHAP")
        assert phi0 == pytest.approx(float(np.ravel(tree.expected_value)[0]), abs=1e-8)


def test_kernel_shap_needs_two_features(impl):
    """KernelSHAP with a single feature is rejected with a ValueError."""
    with pytest.raises(ValueError):
        impl.kernel_shap(lambda X: X[:, 0], np.ones(1), np.zeros((2, 1)))


def lime_explainer(train, seed, **kw):
    from lime.lime_tabular import LimeTabularExplainer

    return LimeTabularExplainer(
        train, discretize_continuous=False, feature_selection="none", random_state=seed, **kw
    )


def train_stats(train):
    return train.mean(axis=0), np.where(train.std(axis=0) > 0, train.std(axis=0), 1.0)


def lime_train(seed: int, m: int):
    rng = np.random.default_rng(seed)
    train = rng.normal(size=(40, m)) * rng.uniform(0.5, 3, m) + rng.normal(size=m)
    train[:, -1] = 2.0  # a constant column: lime divides by std 1 there
    return train


def test_lime_samples_match_lime(impl):
    """Same seed, same neighbourhood: N(0,1) * std + mean row by row, row 0 = x (as lime draws)."""
    train = lime_train(0, 4)
    x = train[5] + 0.3
    mean, scale = train_stats(train)
    for seed, n in ((0, 7), (11, 30)):
        _, want = lime_explainer(train, seed)._LimeTabularExplainer__data_inverse(x, n)
        got = impl.lime_samples(x, mean, scale, n, seed)
        np.testing.assert_allclose(got, want, atol=1e-12, err_msg="samples differ from lime's")


def test_lime_kernel_matches_lime(impl):
    """The kernel is sqrt(exp(-d^2 / width^2)), as lime's default."""
    d = np.linspace(0, 5, 11)
    for width in (0.5, 1.5, 3.0):
        want = lime_explainer(lime_train(0, 3), 0, kernel_width=width).base.kernel_fn(d)
        np.testing.assert_allclose(impl.lime_kernel(d, width), want, rtol=1e-12)


@FAST
@given(seed=st.integers(0, 10_000), alpha=st.sampled_from([0.0, 0.1, 1.0, 10.0]))
def test_weighted_ridge_matches_sklearn(impl, seed, alpha):
    """Weighted ridge with an unpenalised intercept equals sklearn Ridge with sample_weight."""
    from sklearn.linear_model import Ridge

    rng = np.random.default_rng(seed)
    X, y, w = rng.normal(size=(30, 4)), rng.normal(size=30), rng.uniform(0.01, 2, 30)
    coef, intercept = impl.weighted_ridge(X, y, w, alpha)
    lib = Ridge(alpha=alpha).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(coef, lib.coef_, atol=1e-9, err_msg="ridge coefficients")
    assert intercept == pytest.approx(lib.intercept_, abs=1e-9), "ridge intercept"


@pytest.mark.parametrize(("seed", "width", "alpha"), [(0, None, 1.0), (4, 2.0, 0.3)])
def test_lime_explain_matches_lime(impl, seed, width, alpha):
    """LIME coefficients, intercept and local prediction equal lime's on the same samples."""
    from sklearn.linear_model import Ridge

    m = 5
    train = lime_train(seed, m)
    f = toy_model(seed, m)
    prob = lambda X: 1 / (1 + np.exp(-f(X)))  # noqa: E731
    x = train[3]
    mean, scale = train_stats(train)
    kw = {} if width is None else {"kernel_width": width}
    exp = lime_explainer(train, seed, **kw).explain_instance(
        x, lambda X: np.column_stack([1 - prob(X), prob(X)]), num_features=m,
        num_samples=300, model_regressor=Ridge(alpha=alpha),
    )  # fmt: skip
    want = np.zeros(m)
    for j, v in exp.local_exp[1]:
        want[j] = v
    coef, intercept, local = impl.lime_explain(prob, x, mean, scale, 300, seed, width, alpha)
    np.testing.assert_allclose(coef, want, atol=1e-9, err_msg="LIME coefficients differ")
    assert intercept == pytest.approx(exp.intercept[1], abs=1e-9), "LIME intercept"
    assert local == pytest.approx(float(np.ravel(exp.local_pred)[0]), abs=1e-9)
