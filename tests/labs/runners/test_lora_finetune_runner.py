"""The lora-finetune runner on the real models (quick config: MiniLM, SmolLM2, one LoRA process)."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import lora_finetune as runner
from airoad.llm import nf4


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("lora-finetune"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quantisation_table_orders_the_formats(result):
    rows = {r["format"]: r for r in result.tables["quantisation"]}
    err = {name: r["relative_rms_error"] for name, r in rows.items()}
    # fp16 keeps 10 mantissa bits, bf16 7; int8 beats both 4-bit formats by an order of magnitude
    assert err["fp16"] < err["bf16"] < err["int8 absmax"] < err["nf4"] / 5
    assert err["nf4"] < err["int4 absmax"]  # same 4 bits, quantiles beat even spacing
    assert abs(err["nf4 + double quant"] - err["nf4"]) < 0.01 * err["nf4"]
    assert rows["nf4 + double quant"]["bits_per_weight"] == nf4.bits_per_parameter(64, True)
    assert result.metrics["nf4_vs_int4"] == "lower"


def test_fine_tuning_lowers_the_loss_and_peft_agrees(result):
    m = result.metrics
    assert result.key_metric == "accuracy_after"
    assert result.library_metric == "peft_accuracy_after"
    assert m["n_val"] == runner.QUICK["n_val"] and m["n_train"] > 100
    assert m["loss_after"] < m["loss_before"]  # two steps on answer tokens already help
    assert m["peft_loss_after"] == pytest.approx(m["loss_after"], abs=1e-4)
    assert m["peft_accuracy_after"] == m["accuracy_after"]
    assert m["merge_max_abs_diff"] < 1e-5
    # LoRA on q_proj and v_proj of 30 layers, r = 8: r * (576 + 576) + r * (576 + 192) per layer
    assert m["lora_trainable"] == 30 * 8 * (576 + 576 + 576 + 192)
    answers = result.tables["answers"]
    assert len(answers) == runner.QUICK["n_val"]
    assert all(a["after"] == a["peft"] for a in answers)


def test_measuring_process_reports_lora(result):
    (row,) = result.tables["methods"]
    assert row["method"] == "lora" and row["status"] == "ok", row["status"]
    assert row["trainable_params"] == result.metrics["lora_trainable"]
    assert row["s_per_step"] > 0 and row["train_peak_rss_mib"] > 100
    assert math.isnan(result.metrics.get("full_s_per_step", math.nan))


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == ["loss_curve.png", "quantisation_error.png", "methods.png"]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
