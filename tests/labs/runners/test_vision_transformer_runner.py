"""The vision-transformer runner on real Fashion-MNIST (quick config)."""

from __future__ import annotations

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import vision_transformer as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    out = tmp_path_factory.mktemp("vision-transformer")
    return runner.run(runner.Config(**runner.QUICK), RunContext(out))


def test_both_models_learn_within_the_same_cpu_budget(result):
    m, budget = result.metrics, runner.QUICK["budget_cpu_s"]
    assert result.key_metric == "vit_accuracy"
    assert result.library_metric == "torch_layers_accuracy"
    # chance is 0.10; a few CPU seconds on 3000 images already reach about 0.75
    assert m["vit_accuracy"] > 0.6 and m["cnn_accuracy"] > 0.6
    for name in ("vit", "cnn"):
        assert budget <= m[f"{name}_cpu_s"] < budget + 2.0, f"{name} did not stop on its budget"
        assert m[f"{name}_epochs"] > 0
    assert m["n_tokens"] == (28 // runner.Config.patch_size) ** 2 + 1


def test_torch_layers_score_the_same(result):
    m = result.metrics
    # the same weights in nn.Conv2d + nn.TransformerEncoderLayer; float32 may flip a rare tie
    assert abs(m["torch_layers_accuracy"] - m["vit_accuracy"]) <= 2 / runner.QUICK["n_test"]


def test_curves_start_at_zero_and_rise(result):
    rows = result.tables["curves"]
    for name in ("ViT", "CNN"):
        curve = [r for r in rows if r["model"] == name]
        assert len(curve) == runner.QUICK["curve_points"] + 1
        assert curve[0]["cpu_seconds"] == 0 and curve[0]["steps"] == 0
        cpu = [r["cpu_seconds"] for r in curve]
        assert cpu == sorted(cpu)
        assert curve[-1]["acc"] > curve[0]["acc"] + 0.3


def test_rollout_share_and_notes(result):
    m = result.metrics
    assert 0 < m["garment_patch_share"] < 1
    assert 0 < m["rollout_on_garment"] <= 1
    assert any("target is for the full config" in note for note in result.notes)


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == [
        "accuracy_vs_cpu_seconds.png",
        "attention_rollout.png",
        "position_similarity.png",
    ]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_config_rejects_heads_that_do_not_divide_the_width():
    with pytest.raises(ConfigError, match="d_model"):
        runner.Config(d_model=30, n_heads=4)
