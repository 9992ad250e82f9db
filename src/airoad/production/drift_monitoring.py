"""Drift monitoring from scratch: PSI, the two-sample Kolmogorov-Smirnov test and chi-square
tests, and a thread-safe ``DriftMonitor`` over a sliding window of live rows.

A deployed model sees rows one request at a time; we keep the last ``window`` of them and ask
"does this window still look like the reference data the model was validated on?". Numeric
features get the KS test, categorical ones a chi-square test of homogeneity, and every feature
gets the Population Stability Index (PSI) as an effect size. Several features tested at once
would raise false alarms, so the monitor flags a feature when its p-value is below
``alpha / n_features`` (Bonferroni). The tail of the chi-square distribution comes from the
hypothesis-testing lab, and the asymptotic KS mode uses ``scipy.stats.kstwo.sf`` as a special
function (as scipy itself does); the statistics and the exact KS p-value are written here.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from airoad.errors import AiroadError
from airoad.foundations.hypothesis_testing import chi2_sf

MAX_EXACT_N = 10_000  # scipy's 'auto' rule: exact KS p-value while both samples are this small


class StatResult(NamedTuple):
    statistic: float
    pvalue: float


class ContingencyResult(NamedTuple):
    statistic: float
    pvalue: float
    dof: int
    expected: np.ndarray  # counts expected under homogeneity, the table's shape


def _clean_numeric(x: Any, what: str) -> np.ndarray:
    """1-D float array, refusing empty input and NaN/inf with a sentence naming the fix."""
    a = np.asarray(x, dtype=float).ravel()
    if a.size == 0:
        raise AiroadError(f"{what} is empty: pass at least one value.")
    if not np.isfinite(a).all():
        raise AiroadError(f"{what} contains NaN or infinite values: drop or impute them first.")
    return a


# ---------------------------------------------------------------- PSI


def quantile_cuts(reference: Any, bins: int = 10) -> np.ndarray:
    """Interior cut points of ``bins`` equal-mass bins of the reference: its quantiles at
    1/bins, ..., (bins-1)/bins (numpy's default linear interpolation), duplicates removed so
    heavy ties give fewer, wider bins. Bin i holds ``cuts[i-1] <= x < cuts[i]``, with -inf and
    +inf as the outer edges. reference: (n,) -> cuts: (<= bins - 1,), sorted.
    """
    ref = _clean_numeric(reference, "the reference sample")
    if bins < 2:
        raise AiroadError(f"bins={bins} gives no cut: use at least 2 bins.")
    return np.unique(np.quantile(ref, np.arange(1, bins) / bins))


def bin_proportions(x: Any, cuts: np.ndarray) -> np.ndarray:
    """Share of x in each bin of ``cuts`` (see quantile_cuts): (len(cuts) + 1,), sums to 1."""
    a = _clean_numeric(x, "the sample")
    counts = np.bincount(np.searchsorted(cuts, a, side="right"), minlength=len(cuts) + 1)
    return counts / a.size


def psi_from_proportions(expected: Any, actual: Any, eps: float = 1e-4) -> float:
    """Population Stability Index ``sum((a - e) * ln(a / e))`` over bins.

    expected (reference) and actual (current) are (k,) proportions. An empty bin would make
    the log infinite, so both are floored at ``eps`` first (the floor is the only smoothing).
    PSI is 0 for identical proportions; < 0.1 is usually read as stable, > 0.25 as a shift.
    """
    e = np.maximum(np.asarray(expected, dtype=float), eps)
    a = np.maximum(np.asarray(actual, dtype=float), eps)
    return float(np.sum((a - e) * np.log(a / e)))


def psi(reference: Any, current: Any, bins: int = 10, eps: float = 1e-4) -> float:
    """PSI of a numeric feature on ``bins`` bins cut at the reference's quantiles."""
    cuts = quantile_cuts(reference, bins)
    return psi_from_proportions(
        bin_proportions(reference, cuts), bin_proportions(current, cuts), eps
    )


# ---------------------------------------------------------------- Kolmogorov-Smirnov


def _ks_exact_pvalue(n1: int, n2: int, h: int) -> float:
    """P(D >= h / lcm(n1, n2)) under H0, by walking the lattice path of the merged sample.

    Sorting both samples together gives a path from (0, 0) to (n1, n2): a step in x for a
    value of sample 1, in y for sample 2; under H0 every path is equally likely, i.e. the next
    step is x with probability (n1 - x) / (steps left). The ECDF gap is |x/n1 - y/n2|, so the
    path reaches D >= d exactly when |x*n2 - y*n1| >= h*g. We push probability mass along the
    anti-diagonals, keeping only the band of cells still inside, and sum what crosses the
    boundary: a sum of positive terms, so tiny p-values keep their relative accuracy (no
    1 - P(inside) cancellation).
    """
    if n1 > n2:
        n1, n2 = n2, n1  # the array runs over the smaller sample
    n, limit = n1 + n2, h * math.gcd(n1, n2)
    lo, mass = 0, np.ones(1)  # mass[i]: probability of being at x = lo + i, not yet crossed
    crossed = 0.0
    for k in range(n):  # from diagonal x + y = k to k + 1
        x = np.arange(lo, lo + mass.size)
        ahead = np.zeros(mass.size + 1)
        ahead[:-1] = mass * (n2 - (k - x))  # a y step keeps x
        ahead[1:] += mass * (n1 - x)  # an x step moves to x + 1
        ahead /= n - k
        # Only x with |x*n - (k+1)*n1| < limit are still inside; the band moves with k.
        c = (k + 1) * n1
        first = max((c - limit) // n + 1, lo)
        last = min(-(-(c + limit) // n) - 1, lo + mass.size, n1)
        if first > last:  # the band is empty: every path has crossed
            return float(crossed + ahead.sum())
        crossed += ahead[: first - lo].sum() + ahead[last - lo + 1 :].sum()
        mass, lo = ahead[first - lo : last - lo + 1], first
    return float(crossed)


def ks_2samp(a: Any, b: Any, method: str = "auto") -> StatResult:
    """Two-sided two-sample KS test: ``D = max_t |F_a(t) - F_b(t)|`` over the merged values.

    The ECDFs are evaluated at every value with ``searchsorted(side="right")`` so ties are
    handled. method: "exact" (the lattice-path probability; D is rounded to h / lcm(n1, n2)
    as scipy does), "asymp" (``kstwo.sf(D, round(n1*n2 / (n1+n2)))``) or "auto" (exact while
    both samples have at most 10,000 values: scipy's rule). With ties the exact p-value is
    conservative, as in scipy. a: (n1,), b: (n2,) -> StatResult(D, p).
    """
    if method not in ("auto", "exact", "asymp"):
        raise AiroadError(f"method={method!r} is unknown: use 'auto', 'exact' or 'asymp'.")
    a = np.sort(_clean_numeric(a, "the first sample"))
    b = np.sort(_clean_numeric(b, "the second sample"))
    n1, n2 = a.size, b.size
    both = np.concatenate([a, b])
    c1, c2 = np.searchsorted(a, both, side="right"), np.searchsorted(b, both, side="right")
    g = math.gcd(n1, n2)
    # Integer gap: |c1/n1 - c2/n2| * lcm = |c1 * n2/g - c2 * n1/g|, exact in int64.
    h = int(np.max(np.abs(c1 * (n2 // g) - c2 * (n1 // g))))
    lcm = (n1 // g) * n2
    if method == "auto":
        method = "exact" if max(n1, n2) <= MAX_EXACT_N else "asymp"
    if method == "exact":
        d = h / lcm
        p = 1.0 if h == 0 else _ks_exact_pvalue(n1, n2, h)
    else:
        from scipy.stats import kstwo  # the one-sample Kolmogorov tail, a special function

        d = float(np.max(np.abs(c1 / n1 - c2 / n2)))
        p = float(kstwo.sf(d, round(n1 * n2 / (n1 + n2))))
    return StatResult(float(d), float(min(max(p, 0.0), 1.0)))


# ---------------------------------------------------------------- chi-square


def chisquare(observed: Any, expected: Any = None) -> StatResult:
    """Pearson's goodness-of-fit ``chi2 = sum((o - e)**2 / e)`` with k - 1 degrees of freedom.

    observed: (k,) counts; expected: (k,) counts with the same total (uniform if None).
    """
    o = np.asarray(observed, dtype=float)
    if o.size < 2:
        raise AiroadError("chisquare needs at least 2 categories.")
    e = np.full(o.size, o.mean()) if expected is None else np.asarray(expected, dtype=float)
    if e.shape != o.shape or (e <= 0).any():
        raise AiroadError("expected counts must match observed in shape and all be positive.")
    if not math.isclose(o.sum(), e.sum(), rel_tol=1e-8):
        raise AiroadError("observed and expected counts must have the same total.")
    stat = float(np.sum((o - e) ** 2 / e))
    return StatResult(stat, float(chi2_sf(stat, o.size - 1)))


def chi2_contingency(table: Any, correction: bool = True) -> ContingencyResult:
    """Chi-square test of homogeneity/independence of an (r, c) table of counts.

    ``expected = row_total * col_total / n``, ``dof = (r - 1)(c - 1)``. As in scipy, when
    dof == 1 and correction is on, Yates moves each observed count 0.5 towards its expected
    (never past it). dof == 0 gives statistic 0 and p = 1. Every expected count must be > 0.
    """
    obs = np.asarray(table, dtype=float)
    if obs.ndim != 2 or obs.size == 0:
        raise AiroadError("chi2_contingency needs a 2-D table of counts.")
    expected = np.outer(obs.sum(axis=1), obs.sum(axis=0)) / obs.sum()
    if not (expected > 0).all():
        raise AiroadError("a row or column of the table is all zero: drop it before testing.")
    dof = (obs.shape[0] - 1) * (obs.shape[1] - 1)
    if dof == 0:
        return ContingencyResult(0.0, 1.0, 0, expected)
    if dof == 1 and correction:
        diff = expected - obs
        obs = obs + np.sign(diff) * np.minimum(0.5, np.abs(diff))
    stat = float(np.sum((obs - expected) ** 2 / expected))
    return ContingencyResult(stat, float(chi2_sf(stat, dof)), dof, expected)


def psi_categorical(ref_counts: Any, cur_counts: Any, eps: float = 1e-4) -> float:
    """PSI of a categorical feature from its per-category counts (same category order)."""
    r, c = np.asarray(ref_counts, dtype=float), np.asarray(cur_counts, dtype=float)
    return psi_from_proportions(r / r.sum(), c / c.sum(), eps)


# ---------------------------------------------------------------- the monitor


class DriftMonitor:
    """Compare a sliding window of live rows with a reference sample, feature by feature.

    reference: feature name -> (n_ref,) values (the data the model was validated on).
    categorical: names tested with chi-square (homogeneity of reference vs window counts);
    the rest are numeric and tested with KS. window: rows kept (oldest dropped first).
    alpha: family-wise false-alarm level of one report; a feature drifts when its p-value is
    below ``alpha / n_features`` (Bonferroni). min_rows: rows needed before testing (default:
    a full window); below it the report says ``ready: false`` and flags nothing.
    bins, eps: PSI binning (reference quantiles) and the floor for empty bins.
    categories: optional full list of allowed values per categorical feature, for rare
    categories the reference happens to miss (default: the values seen in the reference).
    ``observe`` and ``report`` may be called from several threads at once.
    """

    def __init__(
        self,
        reference: Mapping[str, Any],
        categorical: Sequence[str] = (),
        window: int = 500,
        alpha: float = 0.05,
        min_rows: int | None = None,
        bins: int = 10,
        eps: float = 1e-4,
        categories: Mapping[str, Sequence[Any]] | None = None,
    ) -> None:
        if window < 1 or not 0.0 < alpha < 1.0:
            raise AiroadError("DriftMonitor needs window >= 1 and 0 < alpha < 1.")
        unknown = set(categorical) - set(reference)
        if not reference or unknown:
            raise AiroadError(
                f"categorical names {sorted(unknown)} are not reference features: "
                "pass a non-empty reference holding every feature to watch."
            )
        self.window, self.alpha, self.bins, self.eps = window, alpha, bins, eps
        self.min_rows = window if min_rows is None else min(max(min_rows, 2), window)
        self.names = list(reference)
        self.categorical = set(categorical)
        self.reference: dict[str, np.ndarray] = {}
        self.levels: dict[str, dict[Any, int]] = {}  # category -> index, per categorical
        for name in self.names:
            if name in self.categorical:
                values = list(np.asarray(reference[name], dtype=object).ravel())
                if not values:
                    raise AiroadError(f"reference feature '{name}' is empty: pass its values.")
                allowed = set(values) | set((categories or {}).get(name, ()))
                self.levels[name] = {v: i for i, v in enumerate(sorted(allowed, key=str))}
                self.reference[name] = self._codes(name, values)
            else:
                self.reference[name] = _clean_numeric(reference[name], f"reference '{name}'")
        self._rows = {name: deque(maxlen=window) for name in self.names}
        self._seen = 0
        self._lock = threading.Lock()

    def _codes(self, name: str, values: Sequence[Any]) -> np.ndarray:
        """Category indices of values; an unseen category is an error naming the feature."""
        index = self.levels[name]
        missing = [v for v in dict.fromkeys(values) if v not in index]
        if missing:
            raise AiroadError(
                f"feature '{name}' has categories {missing[:5]} not in the reference "
                f"{sorted(index, key=str)[:10]}: map them to a known category first."
            )
        return np.fromiter((index[v] for v in values), dtype=int, count=len(values))

    def observe(self, columns: Mapping[str, Sequence[Any]]) -> None:
        """Append a batch of rows (feature name -> values, one per row) to the window.

        Every reference feature must be present, all with the same length; the batch is
        checked whole before any row is kept, so a bad batch leaves the window unchanged.
        """
        if set(columns) != set(self.names):
            raise AiroadError(
                f"observe() got features {sorted(columns)}, expected exactly {sorted(self.names)}."
            )
        batch = {}
        for name in self.names:
            values = list(np.asarray(columns[name], dtype=object).ravel())
            if name in self.categorical:
                batch[name] = self._codes(name, values)
            elif values:
                batch[name] = _clean_numeric(values, f"feature '{name}'")
            else:
                batch[name] = np.zeros(0)
        if len({len(v) for v in batch.values()}) > 1:
            raise AiroadError("observe() got columns of different lengths: one value per row.")
        with self._lock:  # all columns move together, so rows stay aligned across features
            for name, values in batch.items():
                self._rows[name].extend(values.tolist())
            self._seen += len(batch[self.names[0]])

    def snapshot(self) -> dict[str, list[Any]]:
        """The rows in the window now, oldest first: feature name -> values (categories as given)."""
        with self._lock:
            rows = {name: list(values) for name, values in self._rows.items()}
        for name in self.categorical:
            categories = list(self.levels[name])
            rows[name] = [categories[i] for i in rows[name]]
        return rows

    def _feature(self, name: str, current: np.ndarray, threshold: float) -> dict[str, Any]:
        ref = self.reference[name]
        if name in self.categorical:
            k = len(self.levels[name])
            counts = np.stack([np.bincount(ref, minlength=k), np.bincount(current, minlength=k)])
            seen = counts.sum(axis=0) > 0  # categories absent from both carry no information
            res = chi2_contingency(counts[:, seen])
            test, stat, p = "chi2", res.statistic, res.pvalue
            drift_psi = psi_categorical(counts[0], counts[1], self.eps)
        else:
            test, (stat, p) = "ks", ks_2samp(ref, current)
            drift_psi = psi(ref, current, self.bins, self.eps)
        return {"test": test, "statistic": stat, "pvalue": p, "psi": drift_psi,
                "drift": bool(p < threshold)}  # fmt: skip

    def report(self) -> dict[str, Any]:
        """JSON-ready summary of the current window.

        ``{"window", "rows", "seen", "min_rows", "ready", "alpha", "threshold", "drift",
        "drifted", "features": {name: {"test": "ks"|"chi2", "statistic", "pvalue", "psi",
        "drift"}}}``; statistic, pvalue and psi are None while fewer than min_rows rows are
        in the window (``ready`` false), when nothing is flagged.
        """
        with self._lock:
            snapshot = {name: np.array(rows) for name, rows in self._rows.items()}
            seen = self._seen
        n = len(snapshot[self.names[0]])
        threshold = self.alpha / len(self.names)
        ready = n >= self.min_rows
        features = {}
        for name in self.names:
            if ready:
                features[name] = self._feature(name, snapshot[name], threshold)
            else:
                test = "chi2" if name in self.categorical else "ks"
                features[name] = {"test": test, "statistic": None, "pvalue": None,
                                  "psi": None, "drift": False}  # fmt: skip
        drifted = [name for name, f in features.items() if f["drift"]]
        return {
            "window": self.window,
            "rows": n,
            "seen": seen,
            "min_rows": self.min_rows,
            "ready": ready,
            "alpha": self.alpha,
            "threshold": threshold,
            "drift": bool(drifted),
            "drifted": drifted,
            "features": features,
        }
