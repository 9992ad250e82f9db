"""The mixture-of-experts runner on real Shakespeare (quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import mixture_of_experts as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    out = tmp_path_factory.mktemp("mixture-of-experts")
    return runner.run(runner.Config(**runner.QUICK), RunContext(out))


def test_both_models_learn_with_equal_active_parameters(result):
    m = result.metrics
    assert result.key_metric == "moe_val_loss" and result.library_metric == "dense_val_loss"
    uniform = math.log(m["vocab_size"])
    # 60 small steps take both from ln(V) = 4.2 to about 3.1-3.2 nats/char
    assert m["dense_val_loss"] < uniform - 0.8 and m["moe_val_loss"] < uniform - 0.8
    c, layers = runner.QUICK["n_embd"], runner.QUICK["n_layer"]
    experts, k = runner.Config.n_experts, runner.Config.top_k
    # active: the dense model's plus, per block, a router (E x C) and k - 1 more output biases
    assert m["moe_active_params"] == m["dense_total_params"] + layers * (experts + k - 1) * c
    assert m["moe_total_params"] > 2 * m["dense_total_params"]
    assert m["dense_active_params"] == m["dense_total_params"]
    winner = "dense" if m["dense_val_loss"] <= m["moe_val_loss"] else "moe"
    assert m["equal_steps_winner"] == winner


def test_equal_time_run_fits_the_faster_models_seconds(result):
    m, rows = result.metrics, {r["run"]: r for r in result.tables["runs"]}
    assert set(rows) == {"dense", "moe", "equal_time"}
    assert rows["dense"]["steps"] == rows["moe"]["steps"] == runner.QUICK["steps"]
    slow, fast = m["equal_time_kind"], m["equal_time_rival"]
    assert {slow, fast} == {"dense", "moe"}
    seconds = "train_cpu_seconds"  # the default clock
    assert rows[slow][seconds] >= rows[fast][seconds]
    per_step = rows[slow][seconds] / rows[slow]["steps"]
    expected = max(runner.QUICK["warmup_steps"] + 1, int(rows[fast][seconds] / per_step))
    assert m["equal_time_seconds"] == rows[fast][seconds]
    assert m["equal_time_steps"] == rows["equal_time"]["steps"] == expected
    assert m["equal_time_val_loss"] == rows["equal_time"]["val_loss"]
    better = m["equal_time_val_loss"] < m["equal_time_rival_val_loss"]
    assert m["equal_time_winner"] == (slow if better else fast)


def test_curves_and_expert_load(result):
    curves = result.tables["curves"]
    for run in ("dense", "moe"):
        rows = [c for c in curves if c["run"] == run]
        assert [r["step"] for r in rows] == [20, 40, 60]
        assert rows[-1]["val_loss"] < rows[0]["val_loss"]
        assert all(a["seconds"] < b["seconds"] for a, b in zip(rows, rows[1:]))
        assert all(a["cpu_seconds"] < b["cpu_seconds"] for a, b in zip(rows, rows[1:]))
    m = result.metrics
    assert 0.0 <= m["moe_drop_rate"] < 1.0 and m["dense_drop_rate_2nd_half"] == 0.0
    assert 1 / runner.Config.n_experts <= m["max_expert_share_layer0"] <= 1.0
    assert m["balance_loss_transformers_diff"] < 1e-6


def test_figures_are_written(result):
    assert [p.name for p in result.figures] == ["val_loss_vs_time.png", "expert_utilisation.png"]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_config_rejects_more_chosen_experts_than_exist():
    with pytest.raises(ConfigError, match="top_k"):
        runner.Config(n_experts=2, top_k=3)
