"""The naive-bayes runner on the real data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import naive_bayes as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(
        runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("naive-bayes"))
    )


def test_gaussian_matches_sklearn_on_wine_and_iris(result):
    m = result.metrics
    for name in ("wine", "iris"):
        assert m[f"{name}_ours_acc"] == m[f"{name}_sklearn_acc"], name
        assert m[f"{name}_max_proba_diff"] < 1e-10, name
    assert m["wine_ours_acc"] > 0.9 and m["iris_ours_acc"] > 0.9


def test_multinomial_matches_sklearn_on_reviews(result):
    m = result.metrics
    assert result.key_metric == "ours_review_acc" and result.library_metric == "sklearn_review_acc"
    assert m["ours_review_acc"] == m["sklearn_review_acc"]
    assert m["review_identical_predictions"] == 1000
    assert m["review_max_proba_diff"] < 1e-10
    assert m["review_train_rows"] == runner.QUICK["train_reviews"]
    assert m["ours_review_acc"] > m["majority_baseline_acc"] + 0.1  # about 0.79 vs 0.66


def test_log_space_is_needed(result):
    m = result.metrics
    assert m["reviews_underflowing_to_zero"] > 0  # products of word probabilities hit 0.0
    assert m["lowest_joint_log_likelihood"] < -745  # exp(-745) is below the smallest float64


def test_tables_and_figures(result):
    assert [r["alpha"] for r in result.tables["alpha_sweep"]] == list(runner.QUICK["alphas"])
    for row in result.tables["alpha_sweep"]:
        assert row["test_acc"] == row["sklearn_test_acc"], row
    names = {p.name for p in result.figures}
    assert names == {"telling_words.png", "probabilities.png", "gaussian_wine.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
