"""The conditional-gan runner on real MNIST (quick config): both discriminators train, the losses
move, score and conditional accuracy are measured, the figures are drawn, and the saved
conditional generator serves through the serving contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import conditional_gan as runner
from airoad.production.serving import TorchScriptGenerator

KINDS = ("projection", "concat")


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("conditional_gan")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_quick_training_moves_the_losses(result):
    for kind in KINDS:
        log = result.tables[f"dynamics_{kind}"]
        assert [r["step"] for r in log][-1] == runner.QUICK["steps"]
        assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in log)
        # D beats chance (2 ln 2 when it says 1/2 to everything) in every window and its loss
        # falls below the first window's at some point ...
        assert max(r["d_loss"] for r in log) < 2 * math.log(2)
        assert min(r["d_loss"] for r in log[1:]) < log[0]["d_loss"], f"{kind}: D loss never fell"
        # ... and G learns: the untrained G's samples are grey (mean pixel about 0.5), trained
        # ones move towards the digits' mostly black images (mean pixel 0.13)
        evals = result.tables[f"evals_{kind}"]
        assert [e["step"] for e in evals] == [0, 75, 150]
        gaps = [abs(e["mean_pixel"] - 0.1307) for e in evals]
        assert gaps[0] > gaps[1] > gaps[2], f"{kind}: mean pixel {[e['mean_pixel'] for e in evals]}"


def test_score_and_conditional_accuracy_are_measured(result):
    m = result.metrics
    assert result.key_metric == "score" and m["saved"] in KINDS
    assert m["score"] == min(m["projection_score"], m["concat_score"])
    assert 3.0 < m["floor"] < 10.0 and 1000 < m["baseline"] < 2500  # the MNIST anchors
    assert m["floor"] < m["score"] < m["baseline"], "150 small steps beat noise, not real data"
    for kind in KINDS:
        per_class = result.tables[f"evals_{kind}"][-1]["per_class"]
        assert len(per_class) == 10 and all(0.0 <= a <= 1.0 for a in per_class)
        assert m[f"{kind}_accuracy"] == pytest.approx(np.mean(per_class))
        assert 0.0 <= m[f"{kind}_label_sense"] <= 1.0
    assert m["classifier_test_accuracy"] > 0.95
    assert m["projection_max_abs_diff"] < 1e-4, "projection term differs from torch.bmm"
    assert "equals torch.bmm" in result.notes[3]
    assert str(m["weakest_class"]) in result.notes[1]


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == ["class_grid.png", "training_dynamics.png", "class_accuracy.png"]
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_saved_generator_serves_seeded_digits_per_label(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["kind"] == "image-generator" and spec["output_range"] == [-1.0, 1.0]
    assert spec["latent_dim"] == runner.QUICK["latent_dim"] and spec["n_labels"] == 10
    served = TorchScriptGenerator(folder)
    a, b = served.generate(4, 3, 0), served.generate(4, 3, 0)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, served.generate(4, 3, 1)), "another seed, other images"
    assert not np.array_equal(a, served.generate(4, 7, 0)), "another label, other images"
    with pytest.raises(ValueError, match="out of range"):
        served.generate(1, 10, 0)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="conditioning"):
        runner.Config(conditioning="hinge")
    with pytest.raises(ConfigError, match="lr_d"):
        runner.Config(lr_d=float("nan"))
    with pytest.raises(ConfigError, match="eval_every"):
        runner.Config(steps=100, eval_every=500)
    with pytest.raises(ConfigError, match="embed_dim"):
        runner.Config(embed_dim=0)
