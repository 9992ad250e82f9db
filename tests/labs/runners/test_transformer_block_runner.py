"""The transformer-block runner on real Shakespeare text (quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import transformer_block as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    config = runner.Config(**runner.QUICK)
    return runner.run(config, RunContext(tmp_path_factory.mktemp("transformer_block")))


def test_parts_equal_torch_on_real_text(result):
    m = result.metrics
    assert m["block_max_abs_diff_out"] < 1e-12, "our block differs from nn.TransformerEncoderLayer"
    assert m["block_max_abs_diff_grad"] < 1e-11
    assert m["norm_max_abs_diff"] < 1e-12
    assert m["rope_shift_max_abs_diff"] < 1e-9
    parts = [r["part"] for r in result.tables["parts_vs_torch"]]
    assert parts == ["LayerNorm", "RMSNorm", "block, post-LN, causal", "block, pre-LN, causal"]


def test_torch_twin_trains_like_ours(result):
    m = result.metrics
    assert result.library_metric == "torch_pre_ln_val_loss"
    assert m["twin_init_logits_max_abs_diff"] < 1e-4, "the twin does not start from our weights"
    assert m["twin_val_loss_abs_diff"] < 5e-3, "same init, batches and lr must give the same loss"
    assert m["ours_ms_per_step"] > 0 and m["torch_ms_per_step"] > 0


def test_sweep_trains_on_shakespeare(result):
    m = result.metrics
    assert m["vocab_size"] > 50  # letters, digits and punctuation of the plays
    assert result.key_metric == "pre_ln_best_val_loss"
    assert m["pre_ln_best_val_loss"] < m["unigram_val_loss"] < math.log(m["vocab_size"])
    sweep = result.tables["sweep"]
    assert len(sweep) == 2 * len(runner.QUICK["lrs"])
    assert {r["layout"] for r in sweep} == {"post-LN", "pre-LN"}
    assert m["pre_ln_lrs_that_learn"] >= m["post_ln_lrs_that_learn"]
    assert isinstance(m["stability_verdict"], str) and "learning rates" in m["stability_verdict"]


def test_every_position_encoding_is_trained(result):
    rows = {r["position"]: r["val_loss"] for r in result.tables["positions"]}
    assert set(rows) == {"sinusoidal", "learned", "rope", "none"}
    assert all(v < math.log(result.metrics["vocab_size"]) for v in rows.values())


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {"stability.png", "early_training.png", "positions.png"}
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_config_checks_the_head_width():
    with pytest.raises(ConfigError, match="n_heads"):
        runner.Config(d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="val_chars"):
        runner.Config(val_chars=10, seq_len=64)
