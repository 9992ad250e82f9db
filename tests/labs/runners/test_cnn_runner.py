"""The cnn runner on real Fashion-MNIST (quick config)."""

from __future__ import annotations

import json

import pytest
import torch

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import cnn as runner
from airoad.neural.cnn import FashionCNN


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("cnn")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_layers_match_torch_on_real_images(result):
    m = result.metrics
    assert m["conv_max_abs_diff_out"] < 1e-10
    assert m["conv_max_abs_diff_grad"] < 1e-9
    assert m["conv_fwd_bwd_time_ratio_ours_over_torch"] > 0
    assert len(result.tables["layer_check"]) == 5


def test_quick_training_learns_something(result):
    m = result.metrics
    assert result.key_metric == "test_accuracy"
    assert m["n_train"] == runner.QUICK["n_train"]
    assert 0.5 < m["test_accuracy"] <= 1.0  # about 0.70 after one epoch on 2000 images
    assert m["cpu_seconds"] > 0 and m["wall_seconds"] > 0
    assert len(result.tables["epochs"]) == runner.QUICK["epochs"]


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {"training_curves.png", "filters.png", "feature_maps.png", "augmentation.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_classifier_artifact_is_saved_and_rebuilds(result, run_dir):
    """Called directly with a plain RunContext, the artifact lands in the run folder."""
    folder = run_dir / "artifacts" / "classifier"
    assert (folder / "model.pt").is_file() and (folder / "model.json").is_file()
    spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert spec["dataset"] == "fashion-mnist"
    assert spec["test_accuracy"] == result.metrics["test_accuracy"]
    model = FashionCNN(**spec["args"])
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))  # strict: all keys
    assert sum(p.numel() for p in model.parameters()) == result.metrics["n_parameters"]
