"""The model-evaluation runner on breast-cancer and a slice of Adult (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import model_evaluation as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("model-evaluation"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_our_metrics_equal_sklearn_metrics(result):
    m = result.metrics
    assert result.key_metric == "ours_roc_auc" and result.library_metric == "sklearn_roc_auc"
    assert m["folds_identical_to_sklearn"] is True
    assert m["max_abs_metric_diff_vs_sklearn"] < 1e-12
    assert m["ours_roc_auc"] == pytest.approx(m["sklearn_roc_auc"], abs=1e-12)
    assert m["ours_roc_auc"] > 0.98  # logistic regression on breast-cancer, malignant = positive


def test_tables_cover_every_model_and_metric(result):
    assert len(result.tables["summary"]) == 6  # 2 datasets x 3 models
    assert len(result.tables["metrics_vs_sklearn"]) == 36  # x 6 metrics
    assert result.metrics["breast_cancer_rows"] == 569
    assert 0.8 < result.metrics["ours_adult_logistic_regression_roc_auc"] < 0.95


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {"roc_curves.png", "pr_curves.png", "confusion_matrices.png", "fold_scores.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
