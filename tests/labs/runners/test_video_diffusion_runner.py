"""The video-diffusion runner on real MNIST digits (quick config): the loss goes down, the frame
scores and motion measures are computed, the figures are drawn, and the saved clip sampler is a
seeded TorchScript module that the image-serving lab refuses."""

from __future__ import annotations

import json
import math

import pytest
import torch

from airoad.errors import AiroadError, ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import video_diffusion as runner
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("video_diffusion")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_quick_training_lowers_the_loss(result):
    log = result.tables["training"]
    assert [r["step"] for r in log][-1] == runner.QUICK["steps"]
    assert all(math.isfinite(r["loss"]) for r in log)
    # the zero-initialised output predicts eps = 0 at first: the loss starts near E[eps^2] = 1
    assert 0.5 < log[0]["loss"] < 1.5 and log[-1]["loss"] < 0.5 * log[0]["loss"], (
        f"loss {log[0]['loss']:.3f} -> {log[-1]['loss']:.3f}"
    )


def test_scores_and_motion_are_measured(result):
    m = result.metrics
    assert result.key_metric == "score" and m["eval_clips"] * 8 >= runner.QUICK["eval_frames"]
    assert 0 < m["floor"] < m["baseline"], "held-out real clips must beat per-pixel noise"
    assert m["score_over_floor"] == pytest.approx(m["score"] / m["floor"])
    # real clips: the same digit in every frame, moving 1-2 px per axis, smooth between bounces
    assert m["real_mass_cv"] < 1e-5 and 1.0 < m["real_step"] < 2 * math.sqrt(8)
    assert m["shuffled_jerk"] > m["real_jerk"], "shuffling the frames must make the path jerky"
    assert m["shuffled_mass_cv"] == pytest.approx(m["real_mass_cv"], abs=1e-6)
    assert all(math.isfinite(m[f"gen_{k}"]) for k in ("step", "jerk", "mass_cv", "frame_diff"))
    assert "real-like" in m["motion_verdict"] or "move like" in m["motion_verdict"]
    assert m["mha_max_abs_diff"] < 1e-5, "our temporal attention differs from torch's"


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == ["real_clips.png", "generated_clips.png", "training_and_motion.png"]
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_saved_sampler_makes_seeded_clips_and_is_not_served(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["kind"] == "video-generator" and spec["output_range"] == [-1.0, 1.0]
    assert (spec["frames"], spec["size"], spec["latent_dim"]) == (8, 16, 8 * 16 * 16)
    sampler = torch.jit.load(str(folder / "generator.pt"))
    noise = torch.randn(3, 2048, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a, b = sampler(noise), sampler(noise.clone())
        other = sampler(torch.randn(5, 2048, generator=torch.Generator().manual_seed(1)))
    assert a.shape == (3, 8, 16, 16) and other.shape == (5, 8, 16, 16), "batch size is traced"
    assert torch.equal(a, b) and a.min() >= -1 and a.max() <= 1
    assert not torch.equal(a, other[:3])
    with pytest.raises(AiroadError, match="not an image generator"):
        TorchScriptGenerator(folder)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="size"):
        runner.Config(size=15)
    with pytest.raises(ConfigError, match="max_speed"):
        runner.Config(size=16, digit_size=10, max_speed=7)
    with pytest.raises(ConfigError, match="channels"):
        runner.Config(channels=(12, 64))
    with pytest.raises(ConfigError, match="lr"):
        runner.Config(lr=float("nan"))
