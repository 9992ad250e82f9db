"""The svm runner on the real breast-cancer and digits data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import svm as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("svm")))


def test_key_metric_is_digits_rbf_accuracy_beside_svc(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_digits_rbf_acc"
        and result.library_metric == "sklearn_digits_rbf_acc"
    )
    assert m["n_digits"] == runner.QUICK["max_digits"]
    assert m["ours_digits_rbf_acc"] == m["sklearn_digits_rbf_acc"] > 0.95


def test_smo_matches_libsvm_on_every_kernel(result):
    rows = result.tables["kernels"]
    assert len(rows) == 2 * len(runner.QUICK["kernels"])
    for row in rows:
        assert abs(row["ours_acc"] - row["sklearn_acc"]) <= 0.01, row
        assert row["max_abs_decision_gap"] < 5e-3, row
        assert row["sv_sym_diff"] <= 0.02 * row["sklearn_n_sv"] + 2, row


def test_pegasos_within_two_points_of_linear_svc(result):
    m = result.metrics
    assert abs(m["ours_pegasos_cancer_acc"] - m["linearsvc_cancer_acc"]) <= 0.02
    assert m["ours_pegasos_digits_acc"] >= m["linearsvc_digits_acc"] - 0.02


def test_c_sweep_and_figures(result):
    sweep = result.tables["c_sweep"]
    assert [r["C"] for r in sweep] == list(runner.QUICK["c_grid"])
    assert sweep[0]["ours_n_sv"] > sweep[-1]["ours_n_sv"], (
        "a softer margin keeps more support vectors"
    )
    assert all(r["ours_n_sv"] == r["sklearn_n_sv"] for r in sweep)
    assert {p.name for p in result.figures} == {"margin_2d.png", "c_sweep.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
