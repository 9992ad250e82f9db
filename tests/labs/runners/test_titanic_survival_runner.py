"""The titanic-survival runner on the real Titanic table (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import titanic_survival as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("titanic-survival"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_every_family_is_compared_on_the_same_folds(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_best_cv_accuracy"
        and result.library_metric == "sklearn_best_cv_accuracy"
    )
    assert m["rows"] == 2207 and m["train_rows"] + m["test_rows"] == 2207
    models = [row["model"] for row in result.tables["models"]]
    for family in runner.FAMILIES:
        assert f"{family} (sklearn)" in models
    for row in result.tables["models"]:
        assert 0.72 < row["cv_accuracy"] < 0.86, row["model"]


def test_ours_match_sklearn_where_available(result):
    rows = {row["model"]: row for row in result.tables["models"]}
    if (
        "logistic regression (ours)" in rows
    ):  # same L2 objective: same predictions on the same folds
        assert rows["logistic regression (ours)"]["cv_accuracy"] == pytest.approx(
            rows["logistic regression (sklearn)"]["cv_accuracy"], abs=0.01
        )
    for family in ("random forest", "gradient boosting"):
        if f"{family} (ours)" in rows:
            assert (
                abs(
                    rows[f"{family} (ours)"]["cv_accuracy"]
                    - rows[f"{family} (sklearn)"]["cv_accuracy"]
                )
                < 0.04
            )


def test_honest_test_score_and_figures(result):
    m = result.metrics
    assert m["chosen_model"] in {row["model"] for row in result.tables["models"]}
    assert m["chosen_test_accuracy"] > m["majority_baseline_accuracy"]
    names = {p.name for p in result.figures}
    assert names == {"eda.png", "model_comparison.png", "roc_curves.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
