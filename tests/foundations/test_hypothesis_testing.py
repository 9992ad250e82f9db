"""Grader for hypothesis-testing: distributions, Welch t, chi-square, permutation test and
Bayes' theorem, checked against scipy.stats and direct frequencies on the Titanic data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from airoad.data import load

REFERENCE = "airoad.foundations.hypothesis_testing"

FAST = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def titanic() -> pd.DataFrame:
    return load("titanic")


def _fares(titanic: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Fares of survivors and of the dead among paying passengers (crew paid nothing)."""
    pas = titanic[titanic["class"].isin(["1st", "2nd", "3rd"])]
    return (
        pas.loc[pas["survived"] == 1, "fare"].to_numpy(),
        pas.loc[pas["survived"] == 0, "fare"].to_numpy(),
    )


# ---------------------------------------------------------------- distributions


def test_normal_pdf_matches_scipy(impl):
    """normal_pdf equals scipy.stats.norm.pdf for several mu and sigma."""
    x = np.linspace(-6, 6, 25)
    for mu, sigma in [(0.0, 1.0), (1.5, 0.5), (-2.0, 3.0)]:
        got = np.asarray(impl.normal_pdf(x, mu, sigma))
        assert got.shape == x.shape, f"normal_pdf returned shape {got.shape}, expected {x.shape}"
        np.testing.assert_allclose(
            got,
            stats.norm.pdf(x, mu, sigma),
            rtol=1e-12,
            err_msg=f"normal_pdf(mu={mu}, sigma={sigma}) differs from scipy",
        )


def test_normal_cdf_matches_scipy_including_tails(impl):
    """normal_cdf equals scipy.stats.norm.cdf, with relative accuracy far in the left tail."""
    x = np.array([-30.0, -10.0, -3.0, -0.5, 0.0, 0.5, 3.0, 10.0])
    got = np.asarray(impl.normal_cdf(x))
    assert got.shape == x.shape, f"normal_cdf returned shape {got.shape}, expected {x.shape}"
    np.testing.assert_allclose(
        got,
        stats.norm.cdf(x),
        rtol=1e-12,
        atol=0,
        err_msg="normal_cdf differs from scipy (use erfc for the left tail)",
    )
    np.testing.assert_allclose(
        impl.normal_cdf(7.0, mu=5.0, sigma=2.0),
        stats.norm.cdf(1.0),
        rtol=1e-12,
        err_msg="normal_cdf ignores mu or sigma",
    )


@pytest.mark.parametrize("n, p", [(10, 0.3), (1000, 0.3), (5000, 0.01), (20, 0.0), (20, 1.0)])
def test_binomial_pmf_matches_scipy(impl, n, p):
    """binomial_pmf equals scipy.stats.binom.pmf, even for n in the thousands (work in logs)."""
    k = np.arange(-1, n + 2)
    got = np.asarray(impl.binomial_pmf(k, n, p))
    assert got.shape == k.shape, f"binomial_pmf returned shape {got.shape}, expected {k.shape}"
    assert np.all(np.isfinite(got)), (
        "binomial_pmf returned inf/nan (overflowing binomial coefficient?)"
    )
    np.testing.assert_allclose(
        got,
        stats.binom.pmf(k, n, p),
        rtol=1e-9,
        atol=1e-300,
        err_msg=f"binomial_pmf(n={n}, p={p}) differs from scipy",
    )
    np.testing.assert_allclose(got.sum(), 1.0, rtol=1e-9, err_msg="the pmf must sum to 1 over 0..n")


@pytest.mark.parametrize("n, p", [(10, 0.3), (1000, 0.45), (300, 0.9)])
def test_binomial_cdf_matches_scipy(impl, n, p):
    """binomial_cdf equals scipy.stats.binom.cdf, 0 below 0 and 1 from n on."""
    k = np.arange(-2, n + 3)
    got = np.asarray(impl.binomial_cdf(k, n, p))
    assert got.shape == k.shape, f"binomial_cdf returned shape {got.shape}, expected {k.shape}"
    np.testing.assert_allclose(
        got,
        stats.binom.cdf(k, n, p),
        rtol=1e-9,
        atol=1e-12,
        err_msg=f"binomial_cdf(n={n}, p={p}) differs from scipy",
    )


@pytest.mark.parametrize("p", [0.11, 0.43])
def test_binomial_cdf_never_exceeds_one(impl, p):
    """binomial_cdf stays <= 1 (a probability) even when the summed pmf rounds above 1."""
    got = np.asarray(impl.binomial_cdf(np.arange(3), 2, p))
    assert got.max() <= 1.0, f"binomial_cdf(n=2, p={p}) reached {got.max()!r} > 1"
    np.testing.assert_allclose(got, stats.binom.cdf(np.arange(3), 2, p), rtol=1e-12)


@pytest.mark.parametrize("df", [1.0, 2.5, 10.0, 652.0])
def test_t_sf_matches_scipy(impl, df):
    """t_sf equals scipy.stats.t.sf for positive and negative t and fractional df."""
    t = np.array([-5.0, -1.0, 0.0, 0.3, 2.0, 8.0])
    got = np.asarray(impl.t_sf(t, df))
    assert got.shape == t.shape, f"t_sf returned shape {got.shape}, expected {t.shape}"
    np.testing.assert_allclose(
        got, stats.t.sf(t, df), rtol=1e-10, err_msg=f"t_sf(df={df}) differs from scipy"
    )


@pytest.mark.parametrize("dof", [1, 2, 6, 30])
def test_chi2_sf_matches_scipy(impl, dof):
    """chi2_sf equals scipy.stats.chi2.sf (and is 1 at x = 0)."""
    x = np.array([0.0, 0.5, 3.84, 10.0, 100.0])
    got = np.asarray(impl.chi2_sf(x, dof))
    assert got.shape == x.shape, f"chi2_sf returned shape {got.shape}, expected {x.shape}"
    np.testing.assert_allclose(
        got, stats.chi2.sf(x, dof), rtol=1e-10, err_msg=f"chi2_sf(dof={dof}) differs from scipy"
    )


# ---------------------------------------------------------------- Welch t-test


@FAST
@given(
    n_a=st.integers(2, 60),
    n_b=st.integers(2, 60),
    shift=st.floats(-2, 2),
    scale=st.floats(0.2, 5),
    seed=st.integers(0, 10_000),
)
def test_welch_matches_scipy_on_random_samples(impl, n_a, n_b, shift, scale, seed):
    """welch_t_test's statistic, df and p-value equal scipy's ttest_ind(equal_var=False)."""
    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal(n_a) + shift, scale * rng.standard_normal(n_b)
    res = impl.welch_t_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    np.testing.assert_allclose(
        res.statistic, ref.statistic, rtol=1e-10, err_msg="t statistic differs"
    )
    np.testing.assert_allclose(res.df, ref.df, rtol=1e-10, err_msg="Welch-Satterthwaite df differs")
    np.testing.assert_allclose(
        res.pvalue, ref.pvalue, rtol=1e-8, atol=1e-300, err_msg="p-value differs"
    )


def test_welch_is_antisymmetric(impl):
    """Swapping the samples flips the sign of t and keeps the p-value."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(0, 1, 30), rng.normal(0.5, 2, 45)
    ab, ba = impl.welch_t_test(a, b), impl.welch_t_test(b, a)
    np.testing.assert_allclose(
        ab.statistic, -ba.statistic, rtol=1e-12, err_msg="t(a, b) should be -t(b, a)"
    )
    np.testing.assert_allclose(
        ab.pvalue, ba.pvalue, rtol=1e-12, err_msg="p(a, b) should equal p(b, a)"
    )


def test_welch_on_titanic_fares(impl, titanic):
    """Welch t of fare (survived vs died, passengers) equals scipy's: t about 7.78, p about 2.8e-14."""
    a, b = _fares(titanic)
    res = impl.welch_t_test(a, b)
    ref = stats.ttest_ind(a, b, equal_var=False)
    assert isinstance(res.pvalue, float), f"pvalue should be a Python float, got {type(res.pvalue)}"
    np.testing.assert_allclose(
        [res.statistic, res.df, res.pvalue],
        [ref.statistic, ref.df, ref.pvalue],
        rtol=1e-8,
        err_msg="Welch test on Titanic fares differs from scipy",
    )


# ---------------------------------------------------------------- chi-square


def test_contingency_table_matches_crosstab(impl, titanic):
    """contingency_table(class, survived) equals pd.crosstab, with sorted levels."""
    table, xl, yl = impl.contingency_table(
        titanic["class"].to_numpy(), titanic["survived"].to_numpy()
    )
    want = pd.crosstab(titanic["class"], titanic["survived"])
    table = np.asarray(table)
    assert table.shape == want.shape, f"table shape {table.shape}, expected {want.shape}"
    assert list(xl) == list(want.index) and list(yl) == list(want.columns), (
        "levels must be sorted uniques"
    )
    np.testing.assert_array_equal(table, want.to_numpy(), err_msg="counts differ from pd.crosstab")


@pytest.mark.parametrize("col", ["gender", "class"])
def test_chi2_on_titanic_matches_scipy(impl, titanic, col):
    """chi2_independence(survival x gender/class) equals chi2_contingency(correction=False)."""
    table = pd.crosstab(titanic[col], titanic["survived"]).to_numpy()
    res = impl.chi2_independence(table)
    stat, p, dof, expected = stats.chi2_contingency(table, correction=False)
    np.testing.assert_allclose(
        res.statistic, stat, rtol=1e-10, err_msg="chi-square statistic differs"
    )
    assert res.dof == dof, f"dof is {res.dof}, expected {dof}"
    np.testing.assert_allclose(
        res.pvalue, p, rtol=1e-8, atol=1e-300, err_msg="chi-square p-value differs"
    )
    np.testing.assert_allclose(res.expected, expected, rtol=1e-12, err_msg="expected counts differ")


@FAST
@given(r=st.integers(2, 5), c=st.integers(2, 5), seed=st.integers(0, 10_000))
def test_chi2_matches_scipy_on_random_tables(impl, r, c, seed):
    """chi2_independence equals scipy's chi2_contingency(correction=False) on random tables."""
    table = np.random.default_rng(seed).integers(1, 60, size=(r, c))
    res = impl.chi2_independence(table)
    stat, p, dof, _ = stats.chi2_contingency(table, correction=False)
    np.testing.assert_allclose(
        [res.statistic, res.pvalue],
        [stat, p],
        rtol=1e-9,
        atol=1e-300,
        err_msg="chi-square statistic or p-value differs from scipy",
    )
    assert res.dof == dof, f"dof is {res.dof}, expected {dof}"


def test_chi2_of_independent_table_is_zero(impl):
    """A table with proportional rows has chi2 = 0 and p = 1."""
    res = impl.chi2_independence(np.array([[10, 20], [30, 60]]))
    assert abs(res.statistic) < 1e-12 and abs(res.pvalue - 1.0) < 1e-12, f"got {res[:3]}"


# ---------------------------------------------------------------- permutation test


def test_permutation_test_agrees_with_scipy(impl):
    """permutation_test's p-value is within 0.03 of scipy.stats.permutation_test's."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, 40), rng.normal(0.4, 1.0, 50)
    ours = impl.permutation_test(a, b, n_permutations=4000, seed=1)
    ref = stats.permutation_test(
        (a, b),
        lambda x, y, axis: x.mean(axis) - y.mean(axis),
        n_resamples=4000,
        vectorized=True,
        rng=2,
    ).pvalue
    assert 0.0 < ours <= 1.0, f"p-value {ours} is not in (0, 1]"
    assert abs(ours - ref) < 0.03, f"permutation p {ours:.4f} far from scipy's {ref:.4f}"


def test_permutation_test_is_seeded_and_never_zero(impl):
    """Same seed gives the same p; a huge effect gives exactly 1 / (n_permutations + 1)."""
    rng = np.random.default_rng(3)
    a, b = rng.normal(0, 1, 20), rng.normal(0, 1, 20)
    first, again = (
        impl.permutation_test(a, b, 500, seed=7),
        impl.permutation_test(a, b, 500, seed=7),
    )
    assert first == again, f"same seed gave {first} then {again}; use np.random.default_rng(seed)"
    p = impl.permutation_test(a + 100.0, b, n_permutations=999, seed=0)
    np.testing.assert_allclose(
        p, 1 / 1000, rtol=1e-12, err_msg="count the observed split: (1 + hits) / (1 + n)"
    )


# ---------------------------------------------------------------- Bayes


def test_bayes_matches_direct_frequency_on_titanic(impl, titanic):
    """P(survived | 1st class) from Bayes' theorem equals the direct frequency (0.620)."""
    surv, first = titanic["survived"] == 1, titanic["class"] == "1st"
    post = impl.bayes_posterior(
        prior=surv.mean(), likelihood=first[surv].mean(), likelihood_if_not=first[~surv].mean()
    )
    np.testing.assert_allclose(
        float(post),
        surv[first].mean(),
        rtol=1e-12,
        err_msg="Bayes posterior differs from the direct frequency",
    )


def test_bayes_medical_test_and_broadcasting(impl):
    """Classic screening example (1% prior, 99% sensitivity, 5% false positives) and array inputs."""
    post = impl.bayes_posterior(0.01, 0.99, 0.05)
    np.testing.assert_allclose(
        post, 0.0099 / (0.0099 + 0.0495), rtol=1e-12, err_msg="posterior is off"
    )
    priors = np.array([0.0, 0.01, 0.5, 1.0])
    got = np.asarray(impl.bayes_posterior(priors, 0.99, 0.05))
    assert got.shape == (4,), f"posterior for 4 priors has shape {got.shape}, expected (4,)"
    np.testing.assert_allclose(
        got[[0, 3]], [0.0, 1.0], atol=1e-12, err_msg="prior 0 or 1 cannot move"
    )
