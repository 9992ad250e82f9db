"""The knn runner on the real data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import knn as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("knn")))


def test_digits_predictions_identical_to_sklearn(result):
    m = result.metrics
    assert result.key_metric == "ours_digits_acc" and result.library_metric == "sklearn_digits_acc"
    assert m["digits_mismatches"] == 0
    assert m["digits_predictions_compared"] == len(result.tables["digits_by_k"]) * 540
    assert m["ours_digits_acc"] == m["sklearn_digits_acc"]
    assert m["ours_digits_acc"] == pytest.approx(0.9796, abs=1e-3)  # 529 of 540 at k = 5
    assert m["cv_best_k"] in runner.QUICK["k_values"]
    for row in result.tables["digits_by_k"]:
        assert row["ours_acc"] == row["sklearn_acc"] and row["different_predictions"] == 0, row


def test_scaling_matters_on_wine(result):
    m = result.metrics
    assert m["wine_raw_acc"] == m["wine_sklearn_raw_acc"]
    assert m["wine_scaled_acc"] == m["wine_sklearn_scaled_acc"]
    assert m["wine_scaled_acc"] > m["wine_raw_acc"] + 0.15  # about 0.72 -> 0.96


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {
        "accuracy_vs_k.png",
        "decision_boundaries.png",
        "misclassified_neighbours.png",
        "wine_scaling.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
