"""The lstm-sentiment runner on the real fine-food reviews (quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import lstm_sentiment as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("lstm-sentiment"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quick_run_compares_lstm_with_tfidf(result):
    m = result.metrics
    assert result.key_metric == "ours_accuracy" and result.library_metric == "library_accuracy"
    assert m["n_train"] == runner.QUICK["n_train"] and m["n_test"] == 1000
    assert math.isclose(m["majority_accuracy"], 0.658)  # 658 of the 1000 test reviews are 'great'
    assert 0.5 < m["ours_accuracy"] <= 1.0
    assert m["library_accuracy"] > m["majority_accuracy"]  # TF-IDF learns something even on 600
    assert math.isclose(m["ours_f1"], m["sklearn_f1_of_ours"], rel_tol=1e-9)


def test_table_and_notes(result):
    rows = result.tables["comparison"]
    assert [r["model"] for r in rows] == [
        "LSTM (ours)",
        "TF-IDF + LogisticRegression",
        "always 'great'",
    ]
    for row in rows:
        assert math.isclose(row["f1_great"], row["sklearn_f1_check"], rel_tol=1e-9)
    verdict = (
        "does not beat"
        if result.metrics["ours_accuracy"] <= result.metrics["library_accuracy"]
        else "beats"
    )
    assert verdict in result.notes[0]
    assert len(result.tables["history"]) == runner.QUICK["epochs"]


def test_figure_is_written(result):
    assert [p.name for p in result.figures] == ["training_curves.png"]
    assert result.figures[0].stat().st_size > 5_000
