"""The hypothesis-testing runner on the real Titanic data (quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import hypothesis_testing as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("hypothesis-testing"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quick_run_reports_welch_beside_scipy(result):
    m = result.metrics
    assert result.key_metric == "ours_welch_p" and result.library_metric == "scipy_welch_p"
    assert m["n_rows"] == 1317  # paying passengers only
    assert math.isclose(m["ours_welch_t"], m["scipy_welch_t"], rel_tol=1e-9)
    assert math.isclose(m["ours_welch_p"], m["scipy_welch_p"], rel_tol=1e-8)
    assert 1e-15 < m["ours_welch_p"] < 1e-12  # about 2.8e-14 on this data


def test_every_test_agrees_with_scipy_and_is_decided_from_p(result):
    rows = result.tables["tests"]
    assert len(rows) == 6
    for row in rows:
        if not row["test"].startswith("permutation"):
            assert math.isclose(row["p_ours"], row["p_scipy"], rel_tol=1e-7), row["test"]
        expected = "reject H0" if row["p_ours"] < result.metrics["alpha"] else "do not reject H0"
        assert row["decision"] == expected, row["test"]
    assert result.metrics["fare_conclusion"] == rows[0]["decision"]


def test_permutation_and_binomial_tails(result):
    m = result.metrics
    n_perm = runner.QUICK["n_permutations"]
    assert m["ours_permutation_p"] == pytest.approx(1 / (n_perm + 1))  # no shuffle reaches the data
    assert m["binomial_p_as_one_minus_cdf"] == 0.0  # the cancellation the runner avoids
    assert math.isclose(m["ours_binomial_p"], m["scipy_binomial_p"], rel_tol=1e-8)


def test_bayes_equals_direct_frequency(result):
    for row in result.tables["bayes"]:
        assert math.isclose(row["bayes"], row["direct frequency"], rel_tol=1e-12)
    assert math.isclose(result.metrics["bayes_p_survived_given_1st"], 201 / 324, rel_tol=1e-12)


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {
        "fare_by_survival.png",
        "survival_by_class_gender.png",
        "survival_by_fare_bin.png",
        "permutation_null.png",
        "distributions.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_all_rows_including_crew(tmp_path):
    res = runner.run(runner.Config(passengers_only=False, n_permutations=200), RunContext(tmp_path))
    assert res.metrics["n_rows"] == 2207
    assert math.isclose(res.metrics["ours_welch_p"], res.metrics["scipy_welch_p"], rel_tol=1e-8)
