"""The conditional_vae runner on real binarised MNIST (quick config)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import conditional_vae as runner
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("conditional_vae")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_training_loss_goes_down(result):
    epochs = result.tables["epochs"]
    assert len(epochs) == runner.QUICK["epochs"]
    for key in ("train_neg_elbo", "test_neg_elbo"):
        assert epochs[-1][key] < epochs[0][key] - 10, (key, epochs)
    assert all(row["test_kl_nats"] > 0 for row in epochs)


def test_elbo_equals_torch_distributions(result):
    m = result.metrics
    assert result.key_metric == "test_elbo" and result.library_metric == "torch_test_elbo"
    assert abs(m["test_elbo"] - m["torch_test_elbo"]) < 1e-3 and m["elbo_max_abs_diff"] < 1e-3
    assert -400 < m["test_elbo"] < 0
    assert np.isclose(m["test_recon"] - m["test_kl"], m["test_elbo"])


def test_the_label_steers_the_samples(result):
    """Even the quick model draws the asked-for digit far more often than noise is read as it."""
    m, rows = result.metrics, result.tables["per_class"]
    assert [r["digit"] for r in rows] == list(range(10))
    assert m["n_samples"] == 1000
    assert np.isclose(m["class_accuracy_mean"], np.mean([r["sample_accuracy"] for r in rows]))
    assert m["class_accuracy_mean"] > 0.2 and m["swap_accuracy_mean"] > 0.2, m
    assert m["real_accuracy_mean"] > 0.95 and m["baseline_accuracy_mean"] < 0.2, m
    worst = min(r["sample_accuracy"] for r in rows)
    assert m["worst_class_accuracy"] == worst == m[f"class_accuracy_{m['worst_class']}"]


def test_yardstick_is_reported(result):
    m = result.metrics
    assert 0 < m["yardstick_floor"] < m["yardstick_score"] <= 1.2 * m["yardstick_baseline"]
    assert np.isclose(m["score_over_baseline"], m["yardstick_score"] / m["yardstick_baseline"])
    assert "not Inception" in result.notes[2]


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    expected = {"training_curves", "samples_by_class", "style_swap", "class_accuracy"}
    assert names == {f"{n}.png" for n in expected}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_conditional_generator_artifact_serves(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text(encoding="utf-8"))
    assert spec["kind"] == "image-generator" and spec["output_range"] == [0.0, 1.0]
    assert spec["latent_dim"] == runner.QUICK["latent_dim"] and spec["n_labels"] == 10
    gen = TorchScriptGenerator(folder)
    a, b = gen.generate(4, 3, 0), gen.generate(4, 3, 0)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    assert np.array_equal(a, b) and not np.array_equal(a, gen.generate(4, 3, 1))
    assert not np.array_equal(a, gen.generate(4, 7, 0)), "the label must change the image"
    with pytest.raises(ValueError, match="conditional"):
        gen.generate(4, None, 0)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        ({"lr": 0.0}, "lr"),
        ({"n_per_class": 99}, "n_per_class"),
        ({"binarize": "otsu"}, "binarize"),
        ({"n_train": 500, "batch_size": 501}, "batch_size"),
        ({"n_test": 10, "n_swap": 11}, "n_swap"),
        ({"epochs": float("nan")}, "epochs"),
    ],
)
def test_bad_config_is_one_clear_error(overrides, key):
    with pytest.raises(ConfigError, match=key):
        make_config(runner.Config, {}, False, overrides)
