"""Hypothesis testing from scratch: distributions, the Welch t-test, the chi-square test of
independence, a permutation test and Bayes' theorem.

The tail probabilities of the t and chi-square distributions need special functions; we use
the regularised incomplete beta ``scipy.special.betainc`` and gamma ``gammaincc`` (and
``erfc``, ``gammaln``, ``xlogy``) from ``scipy.special``: the lesson is the test, not how to
evaluate those integrals. Everything else is NumPy. The tests compare with ``scipy.stats``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import special


class TTestResult(NamedTuple):
    statistic: float  # Welch's t
    df: float  # Welch-Satterthwaite degrees of freedom (not an integer in general)
    pvalue: float  # two-sided


class Chi2Result(NamedTuple):
    statistic: float  # Pearson's chi-square
    dof: int  # (rows - 1) * (cols - 1)
    pvalue: float  # upper tail: P(chi2_dof >= statistic)
    expected: np.ndarray  # (rows, cols) counts expected under independence


# ---------------------------------------------------------------- distributions


def normal_pdf(x: np.ndarray, mu: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    """Normal density ``exp(-z**2 / 2) / (sigma * sqrt(2 pi))`` with ``z = (x - mu) / sigma``.

    x: any shape -> float array of x's shape.
    """
    z = (np.asarray(x, dtype=float) - mu) / sigma
    return np.exp(-0.5 * z * z) / (sigma * np.sqrt(2.0 * np.pi))


def normal_cdf(x: np.ndarray, mu: float = 0.0, sigma: float = 1.0) -> np.ndarray:
    """Normal CDF ``P(X <= x) = erfc(-z / sqrt(2)) / 2`` with ``z = (x - mu) / sigma``.

    x: any shape -> float array of x's shape. Written with erfc (not ``(1 + erf) / 2``) so
    the far left tail keeps its relative accuracy instead of rounding to 0.
    """
    z = (np.asarray(x, dtype=float) - mu) / sigma
    return 0.5 * special.erfc(-z / np.sqrt(2.0))


def binomial_pmf(k: np.ndarray, n: int, p: float) -> np.ndarray:
    """``P(K = k) = C(n, k) p**k (1 - p)**(n - k)`` for K ~ Binomial(n, p), computed in logs.

    k: int array of any shape -> float array of k's shape (0 outside 0..n). The binomial
    coefficient overflows for n in the thousands, so build ``log C(n, k)`` from ``gammaln``
    and use ``xlogy``/``xlog1py`` so that ``0 * log(0) = 0`` when p is 0 or 1.
    """
    k = np.asarray(k)
    kk = np.clip(k, 0, n).astype(float)
    log_choose = special.gammaln(n + 1) - special.gammaln(kk + 1) - special.gammaln(n - kk + 1)
    log_pmf = log_choose + special.xlogy(kk, p) + special.xlog1py(n - kk, -p)
    return np.where((k >= 0) & (k <= n), np.exp(log_pmf), 0.0)


def binomial_cdf(k: np.ndarray, n: int, p: float) -> np.ndarray:
    """``P(K <= k)`` for K ~ Binomial(n, p): the running sum of the pmf over 0..k.

    k: int array of any shape -> float array of k's shape (0 below 0, 1 from n on).
    """
    k = np.asarray(k)
    cum = np.minimum(np.cumsum(binomial_pmf(np.arange(n + 1), n, p)), 1.0)
    return np.where(k < 0, 0.0, cum[np.clip(k, 0, n)])


def t_sf(t: np.ndarray, df: float) -> np.ndarray:
    """Upper tail ``P(T >= t)`` of Student's t with df degrees of freedom (df may be fractional).

    For t >= 0 it is ``I_x(df/2, 1/2) / 2`` with ``x = df / (df + t**2)`` and I the regularised
    incomplete beta (``scipy.special.betainc``); symmetry gives ``1 - sf(-t)`` for t < 0.
    t: any shape -> float array of t's shape.
    """
    t = np.asarray(t, dtype=float)
    half_tail = 0.5 * special.betainc(0.5 * df, 0.5, df / (df + t * t))
    return np.where(t >= 0, half_tail, 1.0 - half_tail)


def chi2_sf(x: np.ndarray, dof: float) -> np.ndarray:
    """Upper tail ``P(X >= x)`` of a chi-square with dof degrees of freedom.

    Equals ``Q(dof/2, x/2)``, the regularised upper incomplete gamma
    (``scipy.special.gammaincc``); 1 for x <= 0. x: any shape -> float array of x's shape.
    """
    x = np.asarray(x, dtype=float)
    return np.where(x <= 0, 1.0, special.gammaincc(0.5 * dof, 0.5 * np.maximum(x, 0.0)))


# ---------------------------------------------------------------- tests


def welch_t_test(a: np.ndarray, b: np.ndarray) -> TTestResult:
    """Two-sided Welch t-test of ``mean(a) == mean(b)`` without assuming equal variances.

    ``t = (mean_a - mean_b) / sqrt(va + vb)`` with ``va = var_a / n_a`` (ddof=1), and
    ``df = (va + vb)**2 / (va**2 / (n_a - 1) + vb**2 / (n_b - 1))``; ``p = 2 * P(T >= |t|)``.
    a: (n_a,), b: (n_b,), each with at least 2 values. Returns TTestResult of Python floats.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    va, vb = a.var(ddof=1) / a.size, b.var(ddof=1) / b.size
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (a.size - 1) + vb**2 / (b.size - 1))
    p = 2.0 * t_sf(abs(t), df)
    return TTestResult(float(t), float(df), float(min(p, 1.0)))


def contingency_table(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Count how often each pair (x value, y value) occurs: a cross-tabulation.

    x, y: (n,) labels of any sortable type. Returns ``(table, x_levels, y_levels)``:
    table (len(x_levels), len(y_levels)) int array with ``table[i, j] = #{x == x_levels[i]
    and y == y_levels[j]}``; the levels are the sorted unique values (like ``pd.crosstab``).
    """
    x_levels, xi = np.unique(np.asarray(x), return_inverse=True)
    y_levels, yi = np.unique(np.asarray(y), return_inverse=True)
    # One flat bin per (i, j) pair, counted in a single pass.
    flat = np.bincount(xi * len(y_levels) + yi, minlength=len(x_levels) * len(y_levels))
    return flat.reshape(len(x_levels), len(y_levels)), x_levels, y_levels


def chi2_independence(table: np.ndarray) -> Chi2Result:
    """Pearson's chi-square test that rows and columns of a contingency table are independent.

    ``expected = row_totals * col_totals / n``; ``chi2 = sum((observed - expected)**2 /
    expected)``; ``dof = (r - 1)(c - 1)``; p from the chi-square upper tail. No Yates
    continuity correction. table: (r, c) counts, every row and column total positive.
    """
    obs = np.asarray(table, dtype=float)
    expected = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / obs.sum()
    stat = float(((obs - expected) ** 2 / expected).sum())
    dof = (obs.shape[0] - 1) * (obs.shape[1] - 1)
    return Chi2Result(stat, int(dof), float(chi2_sf(stat, dof)), expected)


def permutation_test(
    a: np.ndarray, b: np.ndarray, n_permutations: int = 10_000, seed: int = 0
) -> float:
    """Two-sided permutation p-value for ``mean(a) - mean(b)``, no distribution assumed.

    Under H0 the group labels are exchangeable: shuffle the pooled values n_permutations
    times, split them into sizes n_a and n_b, and count how often ``|diff|`` reaches the
    observed one. Returns ``(1 + count) / (1 + n_permutations)`` (a float in (0, 1]); the +1
    counts the observed split, so the p-value is never exactly 0. Same seed, same p-value.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    pooled, n_a, n_b = np.concatenate([a, b]), a.size, b.size
    total = pooled.sum()
    observed = abs(a.mean() - b.mean())
    rng = np.random.default_rng(seed)
    hits, batch = 0, 1000
    for start in range(0, n_permutations, batch):
        m = min(batch, n_permutations - start)
        # m independent shuffles at once, one per row: (m, n_a + n_b).
        shuffled = rng.permuted(np.tile(pooled, (m, 1)), axis=1)
        sum_a = shuffled[:, :n_a].sum(axis=1)
        diffs = sum_a / n_a - (total - sum_a) / n_b  # group b's sum is the rest of the total
        # A tiny relative slack so ties with the observed value are not lost to rounding.
        hits += int(np.sum(np.abs(diffs) >= observed * (1 - 1e-12)))
    return (1 + hits) / (1 + n_permutations)


# ---------------------------------------------------------------- Bayes


def bayes_posterior(
    prior: np.ndarray, likelihood: np.ndarray, likelihood_if_not: np.ndarray
) -> np.ndarray:
    """Bayes' theorem: ``P(A | B) = P(B | A) P(A) / P(B)``.

    prior = P(A), likelihood = P(B | A), likelihood_if_not = P(B | not A); the evidence comes
    from the law of total probability ``P(B) = P(B | A) P(A) + P(B | not A) (1 - P(A))``.
    Arrays broadcast together -> float array (a 0-d array for scalar inputs).
    """
    prior = np.asarray(prior, dtype=float)
    joint = np.asarray(likelihood, dtype=float) * prior
    evidence = joint + np.asarray(likelihood_if_not, dtype=float) * (1.0 - prior)
    return joint / evidence
