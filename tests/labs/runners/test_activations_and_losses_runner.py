"""The activations-and-losses runner on a small Fashion-MNIST subset (quick config)."""

from __future__ import annotations

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import activations_and_losses as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("activations-and-losses"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_our_functions_match_torch_on_real_data(result):
    rows = {r["function"] for r in result.tables["functions"]}
    assert {
        "sigmoid",
        "tanh",
        "relu",
        "gelu",
        "gelu (tanh approx.)",
        "softmax",
        "cross-entropy",
        "hinge (multi-class)",
        "triplet",
    } <= rows
    assert result.metrics["max_fn_value_diff"] < 1e-12
    assert result.metrics["max_fn_grad_diff"] < 1e-12


def test_grid_trains_and_ours_tracks_torch(result):
    m, rows = result.metrics, result.tables["experiment"]
    assert (
        result.key_metric == "ours_best_test_accuracy"
        and result.library_metric == "torch_best_test_accuracy"
    )
    assert len(rows) == 12  # 4 activations x 3 optimizers
    assert m["max_abs_acc_diff"] <= 0.01  # same weights and batches; only float32 rounding differs
    for r in rows:
        assert r["train loss ours"] == pytest.approx(r["train loss torch"], rel=1e-3), (
            r["activation"],
            r["optimizer"],
        )
    assert m["ours_best_test_accuracy"] > 0.5  # well above the 0.1 of guessing, even in seconds
    assert m["best_cell"] != m["worst_cell"]


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {
        "activations.png",
        "training_curves.png",
        "accuracy_grid.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_unknown_activation_is_rejected_before_the_run():
    with pytest.raises(ConfigError, match="'activations' is 'swish'"):
        make_config(runner.Config, runner.QUICK, True, {"activations": ("swish",)})
