"""The sharded-training runner on real Shakespeare (quick config, 2 gloo processes)."""

from __future__ import annotations

import math

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import sharded_training as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("shard")))


def test_every_mode_ends_where_ddp_ends(result):
    m = result.metrics
    assert result.key_metric == "zero2_final_loss" and result.library_metric == "ddp_final_loss"
    rows = {r["mode"]: r for r in result.tables["modes"]}
    assert list(rows) == ["ddp", "zero1", "zero2", "fsdp2"]
    for mode, row in rows.items():
        assert row["max_diff_vs_ddp"] < 1e-6, f"{mode} drifted from DDP"
        assert abs(row["val_loss"] - rows["ddp"]["val_loss"]) < 1e-5
    curve = result.tables["loss_curve"]
    assert len(curve) == runner.QUICK["steps"]
    assert curve[-1]["ddp"] < curve[0]["ddp"] - 0.3, "the GPT should learn from real text"
    assert math.isfinite(m["ddp_final_loss"]) and m["zero2_final_loss"] == m["ddp_final_loss"]


def test_held_bytes_follow_the_zero_model(result):
    rows = {r["mode"]: r for r in result.tables["modes"]}
    for mode, row in rows.items():  # padding adds at most a few elements per parameter
        assert row["held_mb"] == pytest.approx(row["analytic_mb"], rel=2e-3), mode
        assert row["peak_rss_mb"] > 0
    assert rows["ddp"]["held_mb"] > rows["zero1"]["held_mb"] > rows["zero2"]["held_mb"]
    assert rows["zero2"]["held_mb"] > rows["fsdp2"]["held_mb"]
    assert rows["zero2"]["grads_mb"] == pytest.approx(rows["zero1"]["grads_mb"] / 2, rel=2e-3)
    big = result.tables["memory_model"][-1]
    assert big["world"] == 64 and big["fsdp2_mb"] == pytest.approx(big["ddp_mb"] / 64)


def test_tensor_parallel_and_pipeline(result):
    m = result.metrics
    assert m["tp_single_process_diff"] < 1e-5 and m["tp_max_diff"] < 1e-5
    assert m["tp_torch_diff"] < 1e-5 and m["tp_grad_diff"] < 1e-4
    assert m["tp_shard_fraction"] < 0.6  # half of both matrices, plus the full output bias
    assert m["pipe_max_formula_gap"] < 1e-12
    assert m["one_f_one_b_peak"] == m["gantt_stages"] < m["gantt_micro"]
    names = sorted(p.name for p in result.figures)
    assert names == ["loss_curves.png", "memory_per_rank.png", "pipeline_bubble.png"]
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert "from DDP's parameters" in result.notes[0]


def test_config_rejects_a_width_the_ranks_cannot_split():
    with pytest.raises(ConfigError, match="n_embd"):
        runner.Config(n_embd=8, n_head=2, world=3)  # 32 hidden units do not split 3 ways
