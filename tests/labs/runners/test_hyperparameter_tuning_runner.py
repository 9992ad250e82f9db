"""The hyperparameter-tuning runner on the real Adult data (quick config)."""

from __future__ import annotations

import math

import optuna
import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import hyperparameter_tuning as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("hyperparameter-tuning"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_grid_search_equals_gridsearchcv(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_grid_best_score"
        and result.library_metric == "sklearn_grid_best_score"
    )
    assert m["grid_same_best_params"] and m["grid_max_abs_score_diff"] < 1e-12
    assert math.isclose(m["ours_grid_best_score"], m["sklearn_grid_best_score"], abs_tol=1e-12)
    for row in result.tables["grid_vs_sklearn"]:
        assert row["ours_rank"] == row["sklearn_rank"], row
    assert 0.8 < m["ours_grid_best_score"] < 1.0  # ROC AUC of income > 50K


def test_every_method_gets_the_same_budget(result):
    rows = result.tables["methods"]
    assert [r["evaluations"] for r in rows] == [4, 4, 4, 4]
    for r in rows:
        assert 0.8 < r["best_cv_score"] < 1.0 and 0.8 < r["test_score"] < 1.0, r


def test_two_worker_processes_share_the_sqlite_study(result):
    m = result.metrics
    assert m["optuna_trials"] == 4 and m["optuna_workers"] == 2 and m["optuna_distinct_pids"] == 2
    trials = result.tables["optuna_trials"]
    assert sorted(t["worker"] for t in trials) == [0, 0, 1, 1]
    study = optuna.load_study(study_name="adult-hgb", storage=f"sqlite:///{m['study_db']}")
    assert len(study.trials) == 4 and math.isclose(study.best_value, m["optuna_best_score"])


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {"best_score_vs_trials.png", "optuna_trials.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
