"""The mlp-from-scratch runner on real MNIST (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import mlp_from_scratch as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("mlp-from-scratch"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quick_run_learns_digits_like_torch(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_test_accuracy" and result.library_metric == "torch_test_accuracy"
    )
    assert m["n_train"] == runner.QUICK["n_train"] and m["architecture"] == "784-128-10"
    assert m["ours_test_accuracy"] > 0.90  # 0.927 after two epochs on 6000 images
    # Same start, same batches, same update rule: only float32 rounding separates the two.
    assert abs(m["ours_test_accuracy"] - m["torch_test_accuracy"]) < 0.005
    assert m["reached_target"] == (m["ours_test_accuracy"] >= 0.975)


def test_gradient_check_and_curves(result):
    assert result.metrics["gradient_check_max_rel_error"] < 1e-6
    epochs = result.tables["epochs"]
    assert len(epochs) == runner.QUICK["epochs"]
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert epochs[0]["lr"] == runner.Config.lr and epochs[-1]["lr"] < epochs[0]["lr"]
    assert [r["implementation"] for r in result.tables["comparison"]][0] == "NumPy (ours)"


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {"curves.png", "misclassified.png", "first_layer_weights.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
