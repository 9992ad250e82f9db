"""The time-series-transformer runner on the real NYSE data (quick config), beside the
lstm-time-series runner's quick run to prove both labs score the same series and split."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import lstm_time_series as lstm_runner
from airoad.labs.runners import time_series_transformer as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("time-series-transformer"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


@pytest.fixture(scope="module")
def lstm_lab(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("lstm-time-series"))
    return lstm_runner.run(lstm_runner.Config(**lstm_runner.QUICK), ctx)


def test_same_series_and_split_as_the_lstm_lab(result, lstm_lab):
    m, theirs = result.metrics, lstm_lab.metrics
    for key in ("n_train", "n_val", "n_test", "test_start"):
        assert m[key] == theirs[key], f"{key}: {m[key]} here, {theirs[key]} in lstm-time-series"
    assert m["n_test"] == 1770 and m["test_start"] == "1980-01-02"  # the ISLP book's test years
    # the same least-squares model on the same windows gives the same test MAE, to rounding
    assert math.isclose(m["linear_test_mae"], theirs["ours_linear_test_mae"], rel_tol=1e-12)
    assert math.isclose(m["last_value_test_mae"], theirs["last_value_test_mae"], rel_tol=1e-12)


def test_our_layers_equal_torch_encoder_layers(result):
    m = result.metrics
    assert result.key_metric == "transformer_test_mae"
    assert result.library_metric == "torch_layers_test_mae"
    assert m["torch_max_abs_diff"] < 1e-4  # float32 forecasts in log-volume units
    assert math.isclose(m["torch_layers_test_mae"], m["transformer_test_mae"], rel_tol=1e-5)
    assert m["time_ratio"] > 0


def test_both_networks_learn_and_beat_persistence(result):
    m = result.metrics
    for model in ("transformer", "lstm"):
        assert 0.12 < m[f"{model}_test_mae"] < m["last_value_test_mae"], model  # about 0.14-0.15
    assert 0.13 < m["linear_test_mae"] < 0.14  # 0.1348, as in lstm-time-series
    rows = result.tables["training"]
    assert len(rows) == 2 * len(runner.QUICK["seeds"])  # one LSTM and one transformer per seed
    for row in rows:
        assert row["epochs_run"] == runner.QUICK["epochs"]
        assert row["last_train_mse"] < row["first_train_mse"], f"{row['model']}: loss rose"


def test_verdicts_are_computed_from_the_numbers(result):
    m = result.metrics
    for rival in ("linear", "lstm"):
        gap = m["transformer_test_mae"] / m[f"{rival}_test_mae"] - 1
        word = "beats" if gap < -0.01 else "ties with" if gap <= 0.01 else "loses to"
        assert m[f"verdict_{rival}"].startswith(word)
    maes = {
        "transformer": m["transformer_test_mae"],
        "LSTM": m["lstm_test_mae"],
        "linear": m["linear_test_mae"],
        "last value": m["last_value_test_mae"],
    }
    assert m["best_method"] == min(maes, key=maes.get)
    assert sum(n.startswith("The transformer") for n in result.notes) == 1
    low, high = m["transformer_test_mae_min"], m["transformer_test_mae_max"]
    assert low <= m["transformer_test_mae"] <= high
    if m["n_seeds"] == 1:
        assert m["seed_spread"].startswith("one seed each")
    elif high < m["lstm_test_mae_min"]:
        assert m["seed_spread"].startswith("every transformer seed beats")
    elif low > m["lstm_test_mae_max"]:
        assert m["seed_spread"].startswith("every LSTM seed beats")
    else:
        assert "overlap" in m["seed_spread"]
    assert 0 < m["recent_attention_share"] <= 1 and m["uniform_share"] == pytest.approx(5 / 30)


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {"forecast.png", "attention.png", "training.png"}
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"
