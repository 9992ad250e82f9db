"""The stylegan runner on real MNIST (quick config): the score falls as G trains, the mixing and
noise measurements are made, the figures are drawn, and the saved generator serves seeded
digits through the serving contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import stylegan as runner
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("stylegan")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_quick_training_learns(result):
    log = result.tables["dynamics"]
    assert [r["step"] for r in log][-1] == runner.QUICK["steps"]
    assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in log)
    # D beats chance (2 ln 2 when it says 1/2 to everything) in every logged window ...
    assert max(r["d_loss"] for r in log) < 2 * math.log(2)
    # ... its loss goes down as it learns to tell the two apart, while G's samples move towards
    # the data: the yardstick score of the weight-averaged G falls
    assert log[-1]["d_loss"] < log[0]["d_loss"], [r["d_loss"] for r in log]
    scores = [s["score"] for s in result.tables["scores"]]
    assert [s["step"] for s in result.tables["scores"]] == [0, 60, 120]
    assert scores[-1] < 0.97 * scores[0], f"the score did not fall: {scores}"


def test_measurements(result):
    m = result.metrics
    assert result.key_metric == "score" and m["score"] == result.tables["scores"][-1]["score"]
    assert 3.0 < m["floor"] < 10.0 and 1000 < m["baseline"] < 2500  # the MNIST anchors
    assert m["floor"] < m["score"] < m["baseline"]
    assert m["score_over_floor"] == pytest.approx(m["score"] / m["floor"])
    assert m["modconv_max_abs_diff"] < 1e-10, "modulated conv differs from the F.conv2d loop"
    mixing = result.tables["mixing"]
    assert [r["crossover"] for r in mixing] == list(range(7))
    for row in mixing:  # a mix is one digit or another, never both
        if row["pairs"]:
            assert row["class_of_a"] + row["class_of_b"] <= 1.0 + 1e-9
    if mixing[0]["pairs"]:  # crossover 0 is all B, crossover 6 all A
        assert mixing[0]["class_of_b"] == 1.0 and mixing[-1]["class_of_a"] == 1.0
    assert 0 < m["noise_pixel_std"] and 0 < m["style_pixel_std"]
    assert len(m["noise_strengths"]) == 5 and all(s > 0 for s in m["noise_strengths"])


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == ["samples.png", "style_mixing.png", "noise_resampling.png"]
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_saved_generator_serves_seeded_digits(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["kind"] == "image-generator" and spec["output_range"] == [-1.0, 1.0]
    assert spec["latent_dim"] == runner.Config().latent_dim and spec["n_labels"] == 0
    served = TorchScriptGenerator(folder)
    a, b = served.generate(4, None, 0), served.generate(4, None, 0)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, served.generate(4, None, 1))
    assert served.generate(1, None, 0).shape == (1, 28, 28)  # traced at 2, served at any n


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="channels"):
        runner.Config(channels=(8, 8))
    with pytest.raises(ConfigError, match="lr"):
        runner.Config(lr=float("nan"))
    with pytest.raises(ConfigError, match="mixing_prob"):
        runner.Config(mixing_prob=1.5)
    with pytest.raises(ConfigError, match="crossovers"):
        runner.Config(crossovers=(0,))
    with pytest.raises(ConfigError, match="eval_every"):
        runner.Config(steps=100, eval_every=500)
