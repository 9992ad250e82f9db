"""The numpy-pandas-basics runner on real data (diabetes, penguins, titanic; quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import numpy_pandas_basics as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("numpy-pandas-basics"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_normal_equations_match_numpy(result):
    m = result.metrics
    assert result.key_metric == "ours_r2" and result.library_metric == "numpy_lstsq_r2"
    assert math.isclose(m["ours_r2"], m["numpy_lstsq_r2"], rel_tol=1e-10)
    assert 0.51 < m["ours_r2"] < 0.52  # diabetes, all ten features plus intercept
    assert m["weights_rel_diff"] < 1e-9


def test_solver_table_side_by_side(result):
    rows = result.tables["solver_vs_numpy"]
    assert [r["n"] for r in rows] == list(runner.QUICK["sizes"])
    for r in rows:
        assert r["rel_diff_x"] < 1e-12 and r["rel_diff_det"] < 1e-10
        assert r["residual_ours"] < 1e-13


def test_derivative_sweep_shows_the_tradeoff(result):
    m = result.metrics
    assert m["central_best_error"] < 1e-9 and m["central_best_error"] < m["forward_best_error"]
    assert m["central_best_h"] > m["forward_best_h"]  # central tolerates a larger step


def test_pandas_part_matches_libraries(result):
    m = result.metrics
    assert m["penguins_cells_missing"] == 19 and m["penguins_sex_missing"] == 11
    assert m["impute_max_abs_diff_vs_sklearn"] == 0.0
    assert m["group_stats_max_abs_diff_vs_pandas"] < 1e-9
    assert m["merge_rows_before"] == m["merge_rows_after"] == 344
    assert m["titanic_passenger_survival"] > m["titanic_crew_survival"]


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {
        "solver_accuracy.png",
        "derivative_error.png",
        "penguins_missing.png",
        "penguins_by_species.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
