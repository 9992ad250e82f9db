"""The autoencoder runner on real MNIST (quick config), its two artifacts and its refusals."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from airoad.errors import AiroadError, ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import autoencoder as runner
from airoad.labs.runners import autoencoder_parts as parts
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("autoencoder")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_every_model_learns_and_losses_match_torch(result):
    m = result.metrics
    for name in ("dense_2", "dense", "conv", "denoise"):
        assert m[f"{name}_last_loss"] < 0.9 * m[f"{name}_first_loss"], f"{name} did not learn"
        np.testing.assert_allclose(m[f"{name}_test_bce"], m[f"{name}_test_bce_torch"], rtol=1e-4)
        assert 0 < m[f"{name}_test_mse"] < 0.2
    # 32 quick batches reach about the mean image (0.065); an all-black guess scores 0.104
    assert 0.05 < m["mean_image_mse"] < 0.08 and m["dense_2_test_mse"] < 0.09
    assert m["upsample_max_abs_diff"] < 1e-4  # our transposed conv == nn.ConvTranspose2d
    assert len(result.tables["models"]) == 4


def test_scores_have_their_anchors(result):
    m = result.metrics
    assert 0 < m["floor"] < m["recon_score"] and m["floor"] < m["baseline"]
    assert m["sample_over_floor"] == pytest.approx(m["sample_score"] / m["floor"])
    assert np.isfinite(m["diag_sample_score"]) and m["noisy_mse"] > 0.05
    assert "skipped" in m["fashion_note"]


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    expected = {"denoising", "samples", "reconstructions", "latent_map", "interpolation"}
    assert names == {f"{n}.png" for n in expected | {"training_curves"}}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_autoencoder_artifact_round_trips(result, run_dir):
    """The TorchScript encoder/decoder pair latent-diffusion loads: standardised 4x7x7 codes."""
    folder = run_dir / "artifacts" / "autoencoder"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["latent_shape"] == [4, 7, 7] and spec["dataset"] == "mnist"
    assert spec["test_mse"] == result.metrics["conv_test_mse"]
    encoder, decoder = (torch.jit.load(str(folder / f)) for f in ("encoder.pt", "decoder.pt"))
    x = parts.images("mnist", 256, 100, seed=1)["x_train"]
    with torch.no_grad():
        z = encoder(x)
        out = decoder(z[:3])
    assert z.shape == (256, 4, 7, 7) and out.shape == (3, 1, 28, 28)
    assert 0 <= out.min() and out.max() <= 1
    assert abs(float(z.mean())) < 0.5 and 0.5 < float(z.std()) < 2.0  # roughly unit scale


def test_generator_artifact_serves(run_dir):
    """TorchScriptGenerator loads the saved sampler: uint8 (4, 28, 28), same seed same images."""
    gen = TorchScriptGenerator(run_dir / "artifacts" / "generator")
    a, b, c = gen.generate(4, None, 0), gen.generate(4, None, 0), gen.generate(4, None, 1)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert a.std() > 10  # digit-like strokes, not a flat image


@pytest.mark.parametrize(
    "key, value", [("noise_level", 1.5), ("lr", float("nan")), ("n_train", 10), ("upsample", "x")]
)
def test_bad_config_is_refused_before_work(key, value):
    with pytest.raises(ConfigError, match=key):
        make_config(runner.Config, runner.QUICK, True, {key: value})


def test_diverging_training_stops_with_the_fix(monkeypatch, tmp_path):
    monkeypatch.setattr(parts.ref, "train_step", lambda *a, **k: float("nan"))
    config = runner.Config(**runner.QUICK)
    model = parts.new_model("dense-2", config, 0)
    with pytest.raises(AiroadError, match="lower lr"):
        parts.fit(model, torch.rand(32, 1, 28, 28), 1, config, RunContext(tmp_path), "dense-2")


def test_missing_dataset_stops_before_training(tmp_path, monkeypatch):
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path))
    with pytest.raises(AiroadError, match="airoad data fetch mnist"):
        runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path / "run"))
