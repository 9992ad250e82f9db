"""The vae runner on real binarised MNIST (quick config)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import vae as runner
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("vae")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_training_loss_goes_down(result):
    epochs = result.tables["epochs"]
    assert len(epochs) == runner.QUICK["epochs"]
    assert epochs[-1]["train_neg_elbo"] < epochs[0]["train_neg_elbo"] - 10, epochs
    for row in epochs:  # -ELBO = reconstruction + KL, both positive
        total = row["train_recon_nats"] + row["train_kl_nats"]
        assert row["train_kl_nats"] > 0 and abs(total - row["train_neg_elbo"]) < 1e-6 * total


def test_bounds_are_ordered_and_equal_torch(result):
    m = result.metrics
    assert result.key_metric == "iw_log_likelihood"
    assert abs(m["iw_log_likelihood"] - m["torch_iw_log_likelihood"]) < 1e-3
    assert abs(m["test_elbo"] - m["torch_test_elbo"]) < 1e-3
    assert m["log_weight_max_abs_diff"] < 1e-3 and m["elbo_max_abs_diff"] < 1e-3
    assert -400 < m["test_elbo"] < m["iw_log_likelihood"] < 0, "the k-sample bound beats the ELBO"
    rows = result.tables["iw_by_k"]
    assert [r["k"] for r in rows] == [1, 2, 5, 10, runner.QUICK["iw_samples"]]
    assert rows[-1]["log_likelihood"] > rows[0]["log_likelihood"]
    assert m["iw_k1"] == rows[0]["log_likelihood"]
    assert 1 <= m["active_units"] <= runner.QUICK["latent_dim"]


def test_yardstick_is_reported(result):
    m = result.metrics
    assert m["yardstick_n"] == 1000
    assert 0 < m["yardstick_floor"] < m["yardstick_score"] <= 1.2 * m["yardstick_baseline"]
    assert np.isclose(m["score_over_baseline"], m["yardstick_score"] / m["yardstick_baseline"])
    assert "not the full config" in result.notes[-1]


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    expected = {"training_curves.png", "samples.png", "reconstructions.png", "traversals.png"}
    assert names == expected
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_generator_artifact_serves(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text(encoding="utf-8"))
    assert spec["kind"] == "image-generator" and spec["output_range"] == [0.0, 1.0]
    assert spec["latent_dim"] == runner.QUICK["latent_dim"] and spec["n_labels"] == 0
    gen = TorchScriptGenerator(folder)
    a, b = gen.generate(4, None, 0), gen.generate(4, None, 0)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    assert np.array_equal(a, b) and not np.array_equal(a, gen.generate(4, None, 1))


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"lr": 0.0}, "lr"),
        ({"iw_samples": 0}, "iw_samples"),
        ({"binarize": "otsu"}, "binarize"),
        ({"n_train": 500, "batch_size": 501}, "batch_size"),
        ({"lr": float("nan")}, "lr"),
    ],
)
def test_bad_config_is_one_clear_error(overrides, key):
    with pytest.raises(ConfigError, match=key):
        make_config(runner.Config, {}, False, overrides)
