"""The lstm-time-series runner on the real NYSE data (quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import lstm_time_series as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("lstm-time-series"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_split_is_the_islp_one(result):
    m = result.metrics
    assert m["n_test"] == 1770 and m["test_start"] == "1980-01-02"  # every day with train == False
    assert m["n_train"] + m["n_val"] + m["n_test"] == 6051 - 30
    assert m["n_val"] == 500


def test_linear_models_match_sklearn_and_beat_naive(result):
    m = result.metrics
    assert (
        result.key_metric == "lstm_test_mae" and result.library_metric == "sklearn_linear_test_mae"
    )
    assert m["max_coef_diff_vs_sklearn"] < 1e-8
    assert math.isclose(m["ours_linear_test_mae"], m["sklearn_linear_test_mae"], rel_tol=1e-9)
    assert 0.13 < m["ours_linear_test_mae"] < 0.14  # about 0.1348 (R^2 0.416, as in the ISLP book)
    assert m["ours_linear_test_mae"] < m["ar_target_only_test_mae"] < m["moving_average_test_mae"]
    assert m["moving_average_test_mae"] < m["last_value_test_mae"]


def test_lstm_is_scored_and_the_verdict_is_computed(result):
    m = result.metrics
    assert 0.12 < m["lstm_test_mae"] < m["last_value_test_mae"]  # even 3 epochs beat persistence
    rows = {r["method"]: r for r in result.tables["test_mae"]}
    assert rows["LSTM"]["test_mae"] == m["lstm_test_mae"] and len(rows) == 8
    verdict = [n for n in result.notes if n.startswith("The LSTM")]
    gap = m["lstm_vs_linear_mae_gap"]
    word = "beats" if gap < -0.01 else "ties with" if gap <= 0.01 else "does NOT beat"
    assert len(verdict) == 1 and word in verdict[0]


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {"forecast.png", "lstm_loss.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
