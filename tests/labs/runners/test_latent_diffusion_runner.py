"""The latent-diffusion runner on real MNIST codes (quick config, the quick autoencoder artifact):
the loss goes down, every guidance scale is scored and timed, the figures are drawn, and the
saved conditional generator serves through the serving contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from airoad.errors import AiroadError, ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import latent_diffusion as runner
from airoad.labs.runners import latent_diffusion_parts as parts
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("latent_diffusion")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_quick_training_lowers_the_loss(result):
    m = result.metrics
    assert m["last_loss"] < 0.9 * m["first_loss"], f"{m['first_loss']} -> {m['last_loss']}"
    assert m["n_codes"] == runner.QUICK["n_train"]
    epochs = result.tables["epochs"]
    assert [e["epoch"] for e in epochs] == list(range(1, runner.QUICK["epochs"] + 1))
    assert epochs[-1]["mean_loss"] < epochs[0]["mean_loss"]


def test_every_guidance_scale_is_scored(result):
    m, sweep = result.metrics, result.tables["guidance_sweep"]
    assert [r["w"] for r in sweep] == sorted({*runner.QUICK["guidance_scales"], 3.0})
    for r in sweep:
        assert math.isfinite(r["score"]) and r["score"] > 0
        assert 0.0 <= r["worst_class_accuracy"] <= r["accuracy"] <= 1.0
    assert 0 < m["floor"] < m["baseline"] and m["recon_score"] > 0
    assert m["score"] == [r["score"] for r in sweep if r["w"] == 3.0][0]
    assert m["score_over_floor"] == pytest.approx(m["score"] / m["floor"])
    assert m["best_score_w"] in {r["w"] for r in sweep}
    assert "w = 0: score" in m["sweep_note"]


def test_latent_steps_are_cheaper_than_pixel_steps(result):
    m = result.metrics
    for key in ("latent_step_ms", "latent_guided_step_ms", "decoder_ms", "pixel_step_ms"):
        assert m[key] > 0, f"{key} was not measured"
    # a 196-number MLP step against a U-Net over 784 pixels: tens of times cheaper
    assert m["latent_step_ms"] < m["pixel_step_ms"] and m["sampling_speedup"] > 1
    expected = (10 * m["latent_guided_step_ms"] + m["decoder_ms"]) / runner.QUICK["timing_batch"]
    assert m["latent_ms_per_image"] == pytest.approx(expected)


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    expected = {"guidance_sweep", "guidance_strips", "class_grid", "training_curve"}
    assert names == {f"{n}.png" for n in expected}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_saved_generator_serves_seeded_digits_per_label(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["kind"] == "image-generator" and spec["n_labels"] == 10
    assert spec["latent_dim"] == 196 and spec["output_range"] == [0.0, 1.0]
    assert spec["score"] == result.metrics["score"]
    served = TorchScriptGenerator(folder)
    a, b = served.generate(4, 3, 0), served.generate(4, 3, 0)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, served.generate(4, 3, 1))
    with pytest.raises(ValueError, match="conditional"):
        served.generate(4, None, 0)


@pytest.mark.parametrize(
    "pairs, key",
    [
        ({"p_uncond": 1.0}, "p_uncond"),
        ({"lr": float("nan")}, "lr"),
        ({"emb_dim": 33}, "emb_dim"),
        ({"T": 20, "ddim_steps": 50}, "ddim_steps"),
        ({"guidance_scales": ()}, "guidance_scales"),
        ({"autoencoder": "huge"}, "autoencoder"),
        ({"clip": -1.0}, "clip"),
        ({"ema": 1.0}, "ema"),
    ],
)
def test_bad_config_is_refused_before_work(pairs, key):
    with pytest.raises(ConfigError, match=key):
        make_config(runner.Config, runner.QUICK, True, pairs)


def test_diverging_training_stops_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(parts.ref, "train_step", lambda *a, **k: float("nan"))
    config = runner.Config(**runner.QUICK)
    model = runner._new_denoiser(config, (4, 7, 7))
    data = {"z": torch.randn(32, 4, 7, 7), "y": torch.arange(32) % 10}
    with pytest.raises(AiroadError, match="lower lr"):
        parts.fit(model, data, runner._schedule(config), config, RunContext(tmp_path))


def test_missing_full_autoencoder_names_the_command(monkeypatch):
    monkeypatch.setattr(parts.artifacts, "lookup", lambda *a, **k: None)
    with pytest.raises(AiroadError, match="airoad run autoencoder`"):
        parts.autoencoder(quick=False)


def test_missing_dataset_stops_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path))
    with pytest.raises(AiroadError, match="airoad data fetch mnist"):
        runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path / "run"))
