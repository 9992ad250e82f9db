"""The pytorch-workflow runner on real Fashion-MNIST (quick config)."""

from __future__ import annotations

import pytest
import torch

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import pytorch_workflow as runner


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("pytorch-workflow")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_resumed_curve_equals_uninterrupted(result):
    m = result.metrics
    assert m["resume_max_loss_diff"] == 0.0 and m["resume_curves_identical"] is True
    runs = result.tables["runs"]
    assert runs[0]["test_accuracy"] == runs[1]["test_accuracy"] == m["test_accuracy"]


def test_quick_run_learns_and_torchscript_agrees(result):
    m = result.metrics
    assert (
        result.key_metric == "test_accuracy"
        and result.library_metric == "torchscript_test_accuracy"
    )
    assert m["n_train"] == 3000 and m["n_test"] == 2000
    assert m["test_accuracy"] > 0.72  # 0.779 after two epochs on 3000 images
    assert m["torchscript_test_accuracy"] == m["test_accuracy"]
    assert m["torchscript_max_logit_diff"] < 1e-5
    recalls = {r["class"]: r["recall"] for r in result.tables["per_class_recall"]}
    assert len(recalls) == 10 and recalls["Trouser"] > recalls["Shirt"]


def test_artifacts_are_written(result, run_dir):
    assert {p.name for p in result.figures} == {"resume_curves.png", "confusion.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == runner.QUICK["resume_after"]
    assert {"model", "optimizer", "generator", "torch_rng", "history"} <= set(state)
    assert (run_dir / "model_torchscript.pt").stat().st_size > 10_000
