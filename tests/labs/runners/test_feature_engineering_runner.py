"""The feature-engineering runner on Penguins, a slice of Adult and Titanic (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import feature_engineering as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("feature-engineering"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_our_transformers_reproduce_sklearns_pipeline(result):
    m = result.metrics
    assert result.key_metric == "ours_adult_test_accuracy"
    assert m["ours_adult_test_accuracy"] == pytest.approx(
        m["sklearn_adult_test_accuracy"], abs=1e-12
    )
    assert m["max_abs_diff_transformed_vs_sklearn"] < 1e-9
    assert m["feature_names_match_sklearn"] is True
    assert m["target_encoder_max_abs_diff_vs_sklearn"] < 1e-12
    for row in result.tables["imputation"]:
        assert row["ours"] == row["sklearn"], row["column"]


def test_leakage_is_measured(result):
    m = result.metrics
    assert abs(m["leak_scaler_roc_auc_gap"]) < 0.01  # a scaler learns no label: tiny either way
    assert (
        m["leak_target_encoder_roc_auc_gap"] > 0.05
    )  # encoding rare categories on all rows leaks y
    assert len(result.tables["leakage"]) == 4
    assert any("leak" in note for note in result.notes)


def test_encodings_and_figures(result):
    assert [r["encoding"] for r in result.tables["encodings"]] == ["onehot", "ordinal", "target"]
    assert result.metrics["titanic_rows"] == 2207
    assert 0.7 < result.metrics["titanic_cv_accuracy"] < 0.9
    names = {p.name for p in result.figures}
    assert names == {"missing_values.png", "target_encoding.png", "encodings_and_leakage.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
