"""The logistic-regression runner on the real data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import logistic_regression as runner

DATASETS = ("cancer", "titanic", "iris2d", "digits")


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("logreg")))


def test_newton_matches_sklearn_on_every_dataset(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_cancer_test_acc"
        and result.library_metric == "sklearn_cancer_test_acc"
    )
    for name in DATASETS:
        assert m[f"{name}_ours_max_abs_diff"] < 1e-4, name
        assert m[f"{name}_ours_test_acc"] == pytest.approx(
            m[f"{name}_sklearn_test_acc"], abs=0.01
        ), name
        ours_loss, sk_loss = m[f"{name}_ours_test_log_loss"], m[f"{name}_sklearn_test_log_loss"]
        assert ours_loss == pytest.approx(sk_loss, rel=1e-4), name
        assert m[f"{name}_ours_iterations"] < 30, name
    assert m["cancer_ours_test_acc"] > 0.94 and m["titanic_ours_test_acc"] > 0.75
    assert m["digits_ours_test_acc"] > 0.9
    assert m["path_max_abs_diff"] < 1e-3


def test_gradient_descent_is_slower_but_heads_the_same_way(result):
    m = result.metrics
    assert m["cancer_gd_iterations"] == runner.QUICK["gd_max_iter"]  # capped in the quick run
    assert m["cancer_gd_max_abs_diff"] < 0.5
    assert m["cancer_gd_test_acc"] == pytest.approx(m["cancer_ours_test_acc"], abs=0.02)


def test_tables_and_figures(result):
    rows = result.tables["comparison"]
    assert len(rows) == 9  # 4 datasets x (ours, sklearn) + gd on breast cancer
    coefs = result.tables["titanic_coefficients"]
    assert coefs[0]["feature"] == "gender_male" and coefs[0]["ours"] < 0
    for row in coefs:
        assert row["ours"] == pytest.approx(row["sklearn"], abs=1e-4), row["feature"]
    names = {p.name for p in result.figures}
    assert names == {"decision_boundary.png", "convergence.png", "regularisation_path.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
