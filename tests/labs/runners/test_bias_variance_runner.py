"""The bias-variance runner on the real Boston and diabetes data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import bias_variance as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("bias-variance"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_curves_equal_sklearn(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_best_val_r2" and result.library_metric == "sklearn_best_val_r2"
    )
    assert m["ours_best_val_r2"] == m["sklearn_best_val_r2"]
    assert m["validation_curve_max_abs_diff"] < 1e-12 and m["learning_curve_max_abs_diff"] < 1e-12
    assert m["ridge_path_max_abs_diff"] < 1e-8 and m["lasso_path_max_abs_diff"] < 1e-3


def test_regions_from_the_numbers(result):
    m = result.metrics
    # Degree 1 on (LSTAT, RM) is too stiff, degree 2 fits, degree 3+ chases noise.
    assert m["best_degree"] == 2 and m["degrees_good"] == "2"
    assert m["degrees_under_fitting"] == "1" and m["degrees_over_fitting"] == "3,4,5"
    assert 0.65 < m["ours_best_val_r2"] < 0.8
    assert m["ridge_good_alpha_min"] <= m["ridge_best_alpha"] <= m["ridge_good_alpha_max"]
    for row in result.tables["curves"]:
        assert row["label"] in {"under-fitting", "good", "over-fitting"}, row
        assert row["train_r2"] >= row["val_r2"] - 0.05, (
            row
        )  # training data is (almost) always fitted better


def test_lasso_path_first_feature(result):
    assert result.metrics["first_lasso_feature"] == "bmi"  # body-mass index carries the most signal


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {
        "validation_curves.png",
        "learning_curves.png",
        "regularisation_paths.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
