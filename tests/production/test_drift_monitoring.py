"""Grader for drift-monitoring: PSI by hand, KS and chi-square against scipy.stats on tiny
arrays (exact and asymptotic KS modes), and the DriftMonitor's window, report format, alarm
threshold, thread safety and errors on bad input."""

from __future__ import annotations

import json
import math
import threading
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from airoad.errors import AiroadError

REFERENCE = "airoad.production.drift_monitoring"

FAST = settings(max_examples=25, deadline=None)
SAMPLE = st.lists(st.integers(0, 6), min_size=1, max_size=25)  # small, with many ties


# ---------------------------------------------------------------- PSI


def test_psi_hand_computed(impl):
    """PSI = sum((a - e) ln(a / e)) on bins cut at the reference's quantiles."""
    ref = [1.0, 2.0, 3.0, 4.0]  # 2 bins cut at the median 2.5: shares (0.5, 0.5)
    got = impl.psi(ref, [1.0, 1.0, 1.0, 4.0], bins=2)  # shares (0.75, 0.25)
    assert got == pytest.approx(0.25 * math.log(1.5) + 0.25 * math.log(2.0), rel=1e-12)
    assert impl.psi(ref, ref, bins=2) == 0.0, "identical samples must give PSI 0"


def test_psi_floors_empty_bins_at_eps(impl):
    """An empty bin counts as a share of eps, so PSI stays finite."""
    got = impl.psi([1.0, 2.0, 3.0, 4.0], [1.0, 1.0], bins=2, eps=1e-4)
    want = 0.5 * math.log(2.0) + (1e-4 - 0.5) * math.log(1e-4 / 0.5)
    assert got == pytest.approx(want, rel=1e-12), "empty current bin should be floored at eps"
    assert impl.psi_from_proportions([0.5, 0.5, 0.0], [0.5, 0.5, 0.0], eps=1e-4) == 0.0


def test_quantile_cuts_and_bin_shares(impl):
    """Cuts are the reference's interior quantiles (ties merged); bins are [cut_i, cut_i+1)."""
    ref = np.array([0, 1, 1, 1, 1, 2, 3, 5, 8, 13.0])
    cuts = impl.quantile_cuts(ref, bins=5)
    np.testing.assert_allclose(cuts, np.unique(np.quantile(ref, [0.2, 0.4, 0.6, 0.8])))
    x = np.array([-10.0, 1.0, 1.0, 2.5, 4.0, 100.0])
    shares = impl.bin_proportions(x, cuts)
    want = np.bincount(np.searchsorted(cuts, x, side="right"), minlength=len(cuts) + 1) / x.size
    np.testing.assert_allclose(shares, want, err_msg="a value equal to a cut goes to the bin above")


@FAST
@given(SAMPLE, SAMPLE)
def test_psi_is_nonnegative_and_zero_on_itself(impl, a, b):
    """PSI >= 0 for any two samples, 0 for a sample against itself."""
    assert impl.psi(a, b, bins=4) >= 0.0
    assert impl.psi(a, a, bins=4) == 0.0


# ---------------------------------------------------------------- KS


@FAST
@given(SAMPLE, SAMPLE, st.sampled_from(["exact", "asymp", "auto"]))
def test_ks_2samp_matches_scipy(impl, a, b, method):
    """KS statistic and p-value equal scipy.stats.ks_2samp (two-sided) in each mode."""
    if method == "asymp" and round(len(a) * len(b) / (len(a) + len(b))) == 0:
        return  # scipy's asymptotic tail is undefined for n1 = n2 = 1
    ours = impl.ks_2samp(a, b, method=method)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        lib = stats.ks_2samp(a, b, method=method)
    assert ours.statistic == pytest.approx(lib.statistic, rel=1e-12, abs=1e-15)
    if any("Exact calculation unsuccessful" in str(w.message) for w in caught):
        # scipy's sum came out at 1 + 2e-16 (D = 1/n, equal sizes) and it fell back to asymp
        assert ours.pvalue == pytest.approx(1.0, abs=1e-12), "P(D >= 1/n) is 1 for n1 = n2"
        return
    assert ours.pvalue == pytest.approx(lib.pvalue, rel=1e-9, abs=1e-15), f"{method} p-value"


def test_ks_identical_samples_give_zero(impl):
    """Identical samples: D = 0 and p = 1."""
    x = [3.0, 1.0, 4.0, 1.0, 5.0]
    res = impl.ks_2samp(x, list(reversed(x)))
    assert (res.statistic, res.pvalue) == (0.0, 1.0)


def test_ks_small_pvalue_keeps_relative_accuracy(impl):
    """A far-apart pair of samples gets scipy's tiny exact p-value to 1e-9 relative."""
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.0, 1.0, 90), rng.normal(2.0, 1.0, 70)
    ours, lib = impl.ks_2samp(a, b), stats.ks_2samp(a, b)
    assert lib.pvalue < 1e-12
    assert ours.pvalue == pytest.approx(lib.pvalue, rel=1e-9), "tiny exact p-value differs"
    assert ours.statistic == pytest.approx(lib.statistic, rel=1e-12)


def test_ks_auto_uses_asymptotic_above_10000(impl):
    """method='auto' switches to the asymptotic p-value when a sample has over 10,000 values."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(0.0, 1.0, 10_001), rng.normal(0.3, 1.0, 40)
    lib = stats.ks_2samp(a, b, method="asymp")
    assert impl.ks_2samp(a, b).pvalue == pytest.approx(lib.pvalue, rel=1e-9)
    assert impl.ks_2samp(a[:10_000], b).pvalue == pytest.approx(
        stats.ks_2samp(a[:10_000], b, method="exact").pvalue, rel=1e-9
    )


# ---------------------------------------------------------------- chi-square


@FAST
@given(
    st.integers(1, 3),
    st.integers(2, 4),
    st.lists(st.integers(1, 30), min_size=12, max_size=12),
    st.booleans(),
)
def test_chi2_contingency_matches_scipy(impl, r, c, counts, correction):
    """Statistic, p-value, dof and expected equal scipy.stats.chi2_contingency (Yates at dof 1)."""
    table = np.array(counts[: r * c]).reshape(r, c)
    ours = impl.chi2_contingency(table, correction=correction)
    lib = stats.chi2_contingency(table, correction=correction)
    assert ours.dof == lib.dof
    assert ours.statistic == pytest.approx(lib.statistic, rel=1e-10, abs=1e-12)
    assert ours.pvalue == pytest.approx(lib.pvalue, rel=1e-9, abs=1e-15)
    np.testing.assert_allclose(ours.expected, lib.expected_freq, rtol=1e-12)


@FAST
@given(st.lists(st.integers(0, 40), min_size=2, max_size=8), st.integers(0, 10**6))
def test_chisquare_matches_scipy(impl, observed, seed):
    """Goodness of fit equals scipy.stats.chisquare, with uniform and with given expected counts."""
    o = np.array(observed, dtype=float) + 1.0
    e = np.random.default_rng(seed).uniform(0.5, 2.0, o.size)
    e *= o.sum() / e.sum()
    for expected in (None, e):
        ours, lib = impl.chisquare(o, expected), stats.chisquare(o, expected)
        assert ours.statistic == pytest.approx(lib.statistic, rel=1e-10, abs=1e-12)
        assert ours.pvalue == pytest.approx(lib.pvalue, rel=1e-9, abs=1e-15)


def test_statistics_reject_bad_input(impl):
    """Empty samples and NaN raise AiroadError with a sentence saying what to fix."""
    with pytest.raises(AiroadError, match="empty"):
        impl.ks_2samp([], [1.0, 2.0])
    with pytest.raises(AiroadError, match="NaN"):
        impl.ks_2samp([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(AiroadError, match="NaN"):
        impl.psi([1.0, 2.0, 3.0], [float("nan")])
    with pytest.raises(AiroadError, match="zero"):
        impl.chi2_contingency([[0, 0], [3, 4]])


# ---------------------------------------------------------------- the monitor


def _reference(n=400, seed=0):
    rng = np.random.default_rng(seed)
    return {"x": rng.normal(0.0, 1.0, n), "colour": rng.choice(["red", "green", "blue"], n)}


def test_monitor_window_keeps_the_last_rows(impl):
    """The window holds the last `window` rows in order; `seen` counts every row observed."""
    mon = impl.DriftMonitor(_reference(), categorical=["colour"], window=5, min_rows=3)
    mon.observe({"x": [0.0, 1.0, 2.0], "colour": ["red", "red", "blue"]})
    mon.observe({"x": [3.0, 4.0, 5.0, 6.0], "colour": ["green", "red", "blue", "blue"]})
    snap = mon.snapshot()
    assert snap["x"] == [2.0, 3.0, 4.0, 5.0, 6.0]
    assert snap["colour"] == ["blue", "green", "red", "blue", "blue"]
    rep = mon.report()
    assert (rep["rows"], rep["seen"], rep["window"], rep["ready"]) == (5, 7, 5, True)


def test_monitor_report_matches_scipy_on_the_window(impl):
    """Each feature's statistic and p-value equal scipy's KS / chi2_contingency on the window."""
    ref = _reference()
    mon = impl.DriftMonitor(ref, categorical=["colour"], window=60)
    rng = np.random.default_rng(5)
    x, colour = rng.normal(0.4, 1.0, 80), rng.choice(["red", "blue"], 80)
    mon.observe({"x": x, "colour": colour})
    rep = mon.report()
    ks = stats.ks_2samp(ref["x"], x[-60:])
    fx = rep["features"]["x"]
    assert fx["test"] == "ks"
    assert fx["statistic"] == pytest.approx(ks.statistic, rel=1e-12)
    assert fx["pvalue"] == pytest.approx(ks.pvalue, rel=1e-9)
    assert fx["psi"] == pytest.approx(impl.psi(ref["x"], x[-60:]), rel=1e-12)
    levels = ["blue", "green", "red"]
    table = [[np.sum(np.asarray(v) == c) for c in levels] for v in (ref["colour"], colour[-60:])]
    chi = stats.chi2_contingency(np.array(table))
    fc = rep["features"]["colour"]
    assert fc["test"] == "chi2"
    assert fc["statistic"] == pytest.approx(chi.statistic, rel=1e-10)
    assert fc["pvalue"] == pytest.approx(chi.pvalue, rel=1e-9)


def test_monitor_report_format_and_bonferroni_flag(impl):
    """The report is strict JSON; a feature drifts when p < alpha / n_features."""
    ref = _reference()
    mon = impl.DriftMonitor(ref, categorical=["colour"], window=100, alpha=0.1)
    rng = np.random.default_rng(2)
    mon.observe({"x": rng.normal(1.0, 1.0, 100), "colour": rng.choice(ref["colour"], 100)})
    rep = json.loads(json.dumps(mon.report(), allow_nan=False))
    keys = {"window", "rows", "seen", "min_rows", "ready", "alpha", "threshold", "drift"}
    assert keys | {"drifted", "features"} <= set(rep)
    assert rep["threshold"] == pytest.approx(0.05), "Bonferroni: alpha / number of features"
    for name, f in rep["features"].items():
        assert {"test", "statistic", "pvalue", "psi", "drift"} <= set(f), name
        assert f["drift"] == (f["pvalue"] < rep["threshold"]), name
    assert rep["features"]["x"]["drift"] and not rep["features"]["colour"]["drift"]
    assert rep["drift"] and rep["drifted"] == ["x"]


def test_monitor_is_quiet_until_min_rows(impl):
    """Below min_rows the report is not ready, has no statistics and flags nothing."""
    mon = impl.DriftMonitor(_reference(), categorical=["colour"], window=50, min_rows=10)
    rep = mon.report()
    assert rep["rows"] == 0 and not rep["ready"] and not rep["drift"]
    mon.observe({"x": [9.0] * 9, "colour": ["red"] * 9})
    rep = mon.report()
    assert not rep["ready"] and rep["features"]["x"]["pvalue"] is None
    mon.observe({"x": [9.0], "colour": ["red"]})
    assert mon.report()["ready"] and mon.report()["features"]["x"]["drift"]


def test_monitor_observe_from_many_threads(impl):
    """Concurrent observe() and report() lose no row and keep each row's columns together."""
    mon = impl.DriftMonitor(_reference(), categorical=["colour"], window=10_000, min_rows=2)
    names = ["red", "green", "blue"]

    def worker(t):
        for i in range(40):
            ids = [t * 1000 + i * 5 + j for j in range(5)]
            mon.observe({"x": ids, "colour": [names[v % 3] for v in ids]})
            if i % 10 == 0:
                mon.report()

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = mon.snapshot()
    assert mon.report()["seen"] == len(snap["x"]) == 6 * 40 * 5
    assert sorted(snap["x"]) == sorted(t * 1000 + k for t in range(6) for k in range(200))
    assert all(c == names[int(v) % 3] for v, c in zip(snap["x"], snap["colour"])), "rows split"


def test_monitor_rejects_bad_batches_and_keeps_the_window(impl):
    """NaN, an unknown category, a missing feature or ragged columns raise and change nothing."""
    mon = impl.DriftMonitor(_reference(), categorical=["colour"], window=20, min_rows=2)
    mon.observe({"x": [0.5, 0.7], "colour": ["red", "blue"]})
    bad = [
        ({"x": [1.0, float("nan")], "colour": ["red", "red"]}, "NaN"),
        ({"x": [1.0], "colour": ["purple"]}, "purple"),
        ({"x": [1.0]}, "colour"),
        ({"x": [1.0, 2.0], "colour": ["red"]}, "length"),
    ]
    for batch, word in bad:
        with pytest.raises(AiroadError, match=word):
            mon.observe(batch)
    assert mon.snapshot() == {"x": [0.5, 0.7], "colour": ["red", "blue"]}
    with pytest.raises(AiroadError):
        impl.DriftMonitor({"x": [1.0, float("nan")]})


class _WordCountPredictor:
    """A stand-in model: 'great' when the text says so, 'other' otherwise."""

    labels = ["other", "great"]

    def predict_proba(self, texts):
        great = np.array([0.9 if "great" in t else 0.1 for t in texts])
        return np.stack([1.0 - great, great], axis=1)


def test_drift_endpoint_reports_shifted_traffic(impl):
    """The model service's /drift serves the monitor's report and flags longer texts."""
    import asyncio

    import httpx

    from airoad.production.model_api import ServiceSettings, create_app

    rng = np.random.default_rng(0)
    ref = {"n_words": rng.integers(3, 9, 300), "label": rng.choice(["other", "great"], 300)}
    mon = impl.DriftMonitor(ref, categorical=["label"], window=40)
    app = create_app(_WordCountPredictor(), ServiceSettings(require_auth=False), monitor=mon)

    def texts(lo, hi, n):
        return [
            " ".join(["great" if i % 2 else "fine"] * int(rng.integers(lo, hi))) for i in range(n)
        ]

    async def drive():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            for batch in (texts(3, 9, 20), texts(20, 40, 20), texts(20, 40, 20)):
                r = await client.post("/predict/batch", json={"texts": batch})
                assert r.status_code == 200, r.text
            return await client.get("/drift")

    response = asyncio.run(drive())
    assert response.status_code == 200, response.text
    rep = response.json()
    assert rep["ready"] and rep["rows"] == 40 and rep["seen"] == 60
    assert rep["drift"] and rep["drifted"] == ["n_words"], "long texts should flag n_words only"


def test_monitor_declared_categories_and_bad_settings(impl):
    """Declared categories absent from the reference are counted; bad settings raise."""
    ref = _reference()
    mon = impl.DriftMonitor(ref, ["colour"], window=30, categories={"colour": ["pink"]})
    mon.observe({"x": np.zeros(30), "colour": ["pink"] * 15 + ["red"] * 15})
    rep = mon.report()["features"]["colour"]
    levels = ["blue", "green", "pink", "red"]
    table = [[int(np.sum(ref["colour"] == c)) for c in levels], [0, 0, 15, 15]]
    chi = stats.chi2_contingency(np.array(table))
    assert rep["statistic"] == pytest.approx(chi.statistic, rel=1e-10)
    assert rep["psi"] > 1.0, "a new category taking half the window is a large shift"
    for kwargs in ({"window": 0}, {"alpha": 0.0}, {"alpha": 1.0}, {"categorical": ["nope"]}):
        with pytest.raises(AiroadError):
            impl.DriftMonitor(ref, **kwargs)
    with pytest.raises(AiroadError, match="method"):
        impl.ks_2samp([1.0], [2.0], method="fast")
    with pytest.raises(AiroadError, match="total"):
        impl.chisquare([1, 2, 3], [2, 2, 3])
    with pytest.raises(AiroadError, match="positive"):
        impl.chisquare([1, 2, 3], [0, 3, 3])
    one = impl.DriftMonitor(ref, ["colour"], window=1, min_rows=1)  # the smallest window
    one.observe({"x": [1.0, 2.0], "colour": ["red", "blue"]})
    assert one.snapshot() == {"x": [2.0], "colour": ["blue"]} and one.report()["ready"]
