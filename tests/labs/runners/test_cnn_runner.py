"""The cnn runner on real Fashion-MNIST (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import cnn as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("cnn"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


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
