"""The transfer-learning runner on real MNIST and Fashion-MNIST (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import transfer_learning as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("transfer-learning"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quick_run_table_of_three_strategies(result):
    m = result.metrics
    assert result.key_metric == "fine_tuning_accuracy"
    assert result.library_metric == "logreg_pixels_accuracy"
    assert m["n_labels"] == 600  # 1% of 60000, 60 per class
    rows = result.tables["strategies"]
    assert [r["strategy"] for r in rows[:3]] == list(runner.STRATEGIES)
    for row in rows:
        assert 0.15 < row["test_accuracy"] <= 1.0, f"{row['strategy']} is at chance level"
    assert m["mnist_test_accuracy"] > 0.5  # even a tiny pretraining learns digits
    assert m["logreg_pixels_accuracy"] > 0.7


def test_only_the_head_trains_in_feature_extraction(result):
    rows = {r["strategy"]: r for r in result.tables["strategies"]}
    head = 64 * 10 + 10
    assert rows["feature extraction"]["trainable_params"] == head
    assert (
        rows["fine-tuning"]["trainable_params"] == rows["from scratch"]["trainable_params"] > head
    )


def test_curves_figure(result):
    assert [p.name for p in result.figures] == ["curves.png"]
    assert result.figures[0].stat().st_size > 5_000
