"""The cyclegan runner on real MNIST and scikit-learn digits (quick config): the losses fall,
class survival and the yardstick are measured on held-out images, the figures are drawn, and
the saved translator maps upsampled digits to MNIST-style digits (and is not served)."""

from __future__ import annotations

import json

import pytest
import torch

from airoad.errors import AiroadError, ConfigError
from airoad.generative.cyclegan import upsample_digits
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import cyclegan as runner
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cyclegan")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_quick_training_lowers_the_losses(result):
    log = result.tables["losses"]
    assert [r["step"] for r in log][-1] == runner.QUICK["steps"]
    first, last = log[0], log[-1]
    assert last["total"] < 0.5 * first["total"], f"total {first['total']} -> {last['total']}"
    for key in ("cycle_digits", "cycle_mnist", "identity_g", "identity_f"):
        assert last[key] < 0.6 * first[key], f"{key} did not fall: {first[key]} -> {last[key]}"
    assert all(0 < r["d_mnist"] < 1 and 0 < r["d_digits"] < 1 for r in log)


def test_class_survival_and_scores_are_measured(result):
    m = result.metrics
    assert m["n_digits_test"] == 540 and m["eval_images"] == runner.QUICK["eval_images"]
    assert m["acc_mnist"] > 0.95, "the yardstick classifier reads real MNIST"
    assert 0.5 < m["acc_digits"] < 0.98, "upsampled 8x8 digits are readable but out of domain"
    for key in ("acc_g_digits", "acc_fg_digits", "acc_f_mnist", "acc_gf_mnist"):
        assert 0.2 < m[key] <= 1.0, f"{key} = {m[key]}: the quick run should keep many classes"
    assert m["floor"] < m["score"] < m["baseline"] and m["floor"] < m["raw_score"] < m["baseline"]
    assert m["score_over_baseline"] == pytest.approx(m["score"] / m["baseline"])
    assert m["test_cycle_digits"] < 0.5 and m["test_cycle_mnist"] < 0.5
    assert m["loss_max_abs_diff"] < 1e-6, "our losses differ from F.mse_loss / F.l1_loss"
    rows = result.tables["per_class"]
    assert [r["digit"] for r in rows] == list(range(10)) and sum(r["n"] for r in rows) == 540
    assert "keeps the class" in m["verdict"] or "loses the class" in m["verdict"]


def test_figures_are_written(result):
    assert [p.name for p in result.figures] == [
        "round_trips.png",
        "losses.png",
        "class_survival.png",
    ]
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_saved_translator_maps_digits_and_is_not_served(result, run_dir):
    folder = run_dir / "artifacts" / "translator"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["kind"] == "image-translator" and (spec["from"], spec["to"]) == ("digits", "mnist")
    assert spec["output_range"] == [-1.0, 1.0] == spec["input_range"]
    assert spec["class_accuracy"] == result.metrics["acc_g_digits"]
    module = torch.jit.load(str(folder / "translator.pt"))
    x = upsample_digits(torch.randint(0, 17, (5, 64))) * 2 - 1
    with torch.no_grad():
        out = module(x)
        alone = module(x[:1])
    assert tuple(out.shape) == (5, 1, 28, 28) and float(out.abs().max()) <= 1.0
    torch.testing.assert_close(alone, out[:1], msg="one image alone gives the same")
    with pytest.raises(AiroadError, match="not an image generator"):
        TorchScriptGenerator(folder)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="yardstick_n"):
        runner.Config(test_size=0.2, yardstick_n=500)  # only 360 held-out digits
    with pytest.raises(ConfigError, match="g_channels"):
        runner.Config(g_channels=(8, 16, 32))
    with pytest.raises(ConfigError, match="lr"):
        runner.Config(lr=float("nan"))
    with pytest.raises(ConfigError, match="test_size"):
        runner.Config(test_size=1.5)
