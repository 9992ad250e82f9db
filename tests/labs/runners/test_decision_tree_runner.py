"""The decision-tree runner on the real Iris, Wine, breast cancer and diabetes data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import decision_tree as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("decision-tree"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quick_run_reports_ours_beside_sklearn(result):
    m = result.metrics
    assert result.key_metric == "ours_acc" and result.library_metric == "sklearn_acc"
    assert 0.85 < m["ours_acc"] <= 1.0 and 0.85 < m["sklearn_acc"] <= 1.0
    rows = result.tables["accuracy"]
    assert {(r["dataset"], r["criterion"]) for r in rows} == {
        (d, c) for d in ("iris", "wine", "breast-cancer") for c in ("gini", "entropy")
    }
    for r in rows:  # ties make single splits noisy; a quick run still stays within a few points
        assert abs(r["diff_points"]) < 6.0, r


def test_iris_tree_agrees_node_by_node(result):
    m = result.metrics
    assert m["iris_different_quality"] == 0, "a node chose a worse (or better) split than sklearn"
    assert m["iris_same_split"] >= 3 and m["iris_tied_other_split"] >= 1  # the root is a tie


def test_regression_tree_fits_like_sklearn(result):
    reg = result.tables["diabetes_regression"][0]
    assert reg["same_train_predictions"] is True
    assert reg["test_points_predicted_alike"] > 0.97
    assert abs(reg["ours_r2"] - reg["sklearn_r2"]) < 0.05


def test_figures_and_text_are_written(result, tmp_path):
    names = {p.name for p in result.figures}
    assert names == {
        "iris_tree.png",
        "iris_regions.png",
        "depth_curve.png",
        "feature_importances.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
    text = (result.figures[0].parent / "iris_tree.txt").read_text()
    assert text.startswith("|--- petal") and "class: setosa" in text
