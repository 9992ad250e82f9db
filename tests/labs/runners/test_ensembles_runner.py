"""The ensembles runner on real Titanic and (a subset of) Adult data (quick config)."""

from __future__ import annotations

import numpy as np
import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import ensembles as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("ensembles"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_every_model_runs_on_both_datasets(result):
    rows = result.tables["models"]
    impls = {(r["dataset"], r["model"], r["implementation"]) for r in rows}
    for ds in ("titanic", "adult"):
        for family in ("random forest", "gradient boosting", "adaboost"):
            assert (ds, family, "ours") in impls and (ds, family, "sklearn") in impls
        assert (ds, "gradient boosting", "xgboost") in impls and (
            ds,
            "gradient boosting",
            "lightgbm",
        ) in impls
    for r in rows:
        assert 0.75 < r["accuracy"] < 0.9, r


def test_ours_matches_sklearn(result):
    assert result.key_metric == "ours_acc" and result.library_metric == "sklearn_acc"
    for r in result.tables["ours_vs_sklearn"]:
        if r["model"] == "random forest":
            assert abs(r["diff_points"]) <= 2.0, r  # different random draws
        else:
            assert abs(r["diff_points"]) <= 0.1, r  # boosting follows sklearn step by step


def test_encoding_lines_up_train_and_test():
    config = runner.Config(**runner.QUICK)
    Xtr, Xte, ytr, yte, names = runner.load_encoded("adult", config)
    assert Xtr.shape == (3000, len(names)) and Xte.shape == (16281, len(names))
    assert not np.isnan(Xtr).any() and set(np.unique(ytr)) == {0, 1}
    assert "workclass_missing" in names  # '?' became NaN in the loader, then its own category


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {
        "titanic_staged_accuracy.png",
        "adult_staged_accuracy.png",
        "accuracy_and_time.png",
        "forest_importances.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
