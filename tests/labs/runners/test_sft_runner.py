"""The sft runner (quick config): the tiny SFT loop here is the one that makes tiny_lm's cached
policy, the loss goes down, our chat template and packed loss agree with the libraries on
SmolLM2, and the three figures are written."""

from __future__ import annotations

from dataclasses import replace

import pytest

from airoad.alignment import tiny_lm
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import validate_config
from airoad.labs.runners import sft as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("sft")))


def test_tiny_sft_is_tiny_lms_policy(result):
    m, curve = result.metrics, [r["tiny_loss"] for r in result.tables["tiny_curve"]]
    _, info = tiny_lm.load_sft(tiny_lm.QUICK, note=lambda _: None)
    assert curve == pytest.approx(info["sft_losses"], rel=1e-6), "same loop, same losses"
    assert m["tiny_accuracy_after"] == pytest.approx(info["accuracy"])
    assert m["tiny_n_eval"] == tiny_lm.QUICK.n_eval and len(curve) == m["tiny_steps"]
    assert m["tiny_steps"] <= tiny_lm.QUICK.sft_steps and 0.0 <= m["tiny_val_accuracy"] <= 1.0
    assert m["tiny_loss_last"] < m["tiny_loss_first"] - 0.3, "SFT must lower the reply loss"
    assert 0.0 <= m["tiny_accuracy_before"] <= 1.0


def test_real_scale_checks_agree_with_the_libraries(result):
    m = result.metrics
    assert m["template_mismatches"] == 0, "our ChatML rendering must equal apply_chat_template"
    assert m["loss_abs_diff"] < 1e-4, "packed loss must equal Hugging Face's unpacked loss"
    assert m[result.key_metric] == pytest.approx(m[result.library_metric], abs=1e-4)
    assert m["real_n_eval"] == runner.QUICK["real_eval"] == len(result.tables["real_replies"])
    assert m["tokens_real"] <= m["tokens_packed"] and m["lora_params"] > 0
    assert 0.0 <= m["real_accuracy_before"] <= 1.0 and 0.0 <= m["real_accuracy_after"] <= 1.0
    assert len(result.tables["real_curve"]) == runner.QUICK["real_steps"]


def test_figures_are_written(result):
    assert {p.stem for p in result.figures} == {"sft_loss", "accuracy", "packing"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert len(result.notes) == 3 and "nan" not in " ".join(result.notes)


def test_config_out_of_range_is_rejected():
    with pytest.raises(ConfigError, match="real_lr"):
        validate_config(replace(runner.Config(), real_lr=float("nan")))
    with pytest.raises(ConfigError, match="digits"):
        validate_config(replace(runner.Config(), digits=4))
    with pytest.raises(ConfigError, match="lora_targets"):
        validate_config(replace(runner.Config(), lora_targets=("attn",)))
    with pytest.raises(ConfigError, match="tiny"):
        validate_config(replace(runner.Config(), tiny="huge"))
