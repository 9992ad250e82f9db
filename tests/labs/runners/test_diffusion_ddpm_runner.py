"""The diffusion-ddpm runner on real MNIST (quick config): the forward process checks out on real
images, the noise-prediction loss goes down, DDIM samples are scored against the floor and the
baseline, the figures are drawn, and the saved DDIM generator serves seeded digits."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import diffusion_ddpm as runner
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("diffusion_ddpm")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_forward_process_and_training(result):
    m, log = result.metrics, result.tables["training"]
    assert m["closed_form_max_abs_diff"] < 1e-9, "q(x_T|x_0) differs from the iterated steps"
    assert m["alpha_bar_T"] < 0.5 and 0.5 < m["x_T_std"] < 1.5
    assert [r["step"] for r in log][-1] == runner.QUICK["steps"]
    assert all(math.isfinite(r["loss"]) for r in log)
    # the untrained U-Net predicts zero noise (loss = E[eps^2] = 1); training must go below that
    assert m["first_loss"] > m["last_loss"] and m["last_loss"] < 0.8, f"loss log {log}"


def test_ddim_scores_sit_between_floor_and_baseline(result):
    m, rows = result.metrics, result.tables["ddim_steps"]
    assert [r["steps"] for r in rows] == list(runner.QUICK["ddim_steps"])
    assert 3.0 < m["floor"] < 10.0 and 1000 < m["baseline"] < 2500  # the MNIST anchors
    assert all(m["floor"] < r["score"] for r in rows), "a tiny quick model cannot beat real data"
    assert m["score"] == min(r["score"] for r in rows) and result.key_metric == "score"
    assert m["score_over_baseline"] == pytest.approx(m["score"] / m["baseline"])
    assert m["ddpm_cpu_s"] > 0 and all(r["cpu_s"] > 0 for r in rows)


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    expected = ["forward_process.png", "ddpm_samples.png", "score_vs_ddim_steps.png",
                "training_loss.png"]  # fmt: skip
    assert names == expected
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_saved_generator_is_the_traced_ddim_sampler(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["kind"] == "image-generator" and spec["output_range"] == [-1.0, 1.0]
    assert spec["latent_dim"] == 784 and spec["n_labels"] == 0
    served = TorchScriptGenerator(folder)
    a, b = served.generate(4, None, 0), served.generate(4, None, 0)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, served.generate(4, None, 1))
    # the trace was made on 2 images; it must run any batch, each image on its own
    module = torch.jit.load(str(folder / "generator.pt"))
    z = torch.randn(3, 784, generator=torch.Generator().manual_seed(5))
    with torch.no_grad():
        three, one = module(z), module(z[1:2])
    assert three.shape == (3, 1, 28, 28) and float(three.abs().max()) <= 1.0
    torch.testing.assert_close(three[1:2], one, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(three[0], three[1]), "different noise must give different images"


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="ddim_steps"):
        runner.Config(T=100, ddim_steps=(10, 200))
    with pytest.raises(ConfigError, match="lr"):
        runner.Config(lr=float("nan"))
    with pytest.raises(ConfigError, match="channels"):
        runner.Config(channels=(12, 24))
    with pytest.raises(ConfigError, match="time_dim"):
        runner.Config(time_dim=7)
