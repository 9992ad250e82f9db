"""The autograd-engine runner on the real iris data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import autograd_engine as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("autograd-engine"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quick_run_matches_torch_trajectory(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_test_accuracy" and result.library_metric == "torch_test_accuracy"
    )
    assert (m["n_train"], m["n_test"]) == (105, 45)
    assert m["max_abs_loss_diff"] < 1e-10  # same weights, same data, float64: the same curve
    assert m["ours_test_accuracy"] == m["torch_test_accuracy"]
    assert m["ours_final_loss"] < 0.5  # starts near log(3) = 1.10


def test_trajectory_table_and_scalar_gradients(result):
    rows = result.tables["trajectory"]
    assert rows[0]["epoch"] == 1 and rows[-1]["epoch"] == runner.QUICK["epochs"]
    assert rows[-1]["loss ours"] < rows[0]["loss ours"]
    grads = {row["engine"]: row for row in result.tables["gradients"]}
    assert grads["scalar Value"]["max |grad - torch|"] < 1e-12
    assert grads["array Tensor"]["max |grad - torch|"] < 1e-12
    assert grads["scalar Value"]["graph nodes"] > 50 * grads["array Tensor"]["graph nodes"]
    assert grads["scalar Value"]["loss"] == pytest.approx(grads["array Tensor"]["loss"], rel=1e-12)


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {"loss_curves.png", "confusion_matrices.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
