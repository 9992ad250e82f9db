"""The rnn-lstm-gru runner on the real airline series (quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import rnn_lstm_gru as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("rnn-lstm-gru"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quick_run_reports_ours_beside_torch(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_lstm_train_mse"
        and result.library_metric == "torch_lstm_train_mse"
    )
    assert m["n_months"] == 144 and m["n_windows"] == 144 - runner.QUICK["seq_len"]
    assert m["max_output_diff_vs_torch"] < 1e-5  # same weights, float32
    for mode in runner.MODES:
        assert math.isclose(m[f"ours_{mode}_train_mse"], m[f"torch_{mode}_train_mse"], rel_tol=1e-3)
        assert m[f"ours_{mode}_train_mse"] < 1.0  # better than predicting the (standardised) mean


def test_gradient_table_decays_at_init(result):
    rows = result.tables["gradient_norm_by_lag"]
    assert len(rows) == 2 * len(runner.MODES)
    lags = runner.QUICK["lags"]
    for row in rows:
        values = [row[f"lag {lag}"] for lag in lags]
        assert all(0 <= v for v in values)
        if row["weights"] == "init":
            assert values == sorted(values, reverse=True), row  # further back, smaller
            assert values[-1] < 1e-2 * values[0], row


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {"vanishing_gradient.png", "training_curves.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
    assert len(result.notes) == 3
