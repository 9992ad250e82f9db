"""The text-preprocessing runner on the real fine-food reviews (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import text_preprocessing as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("text-preprocessing"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_ours_matches_sklearn_for_every_token_variant(result):
    m = result.metrics
    assert result.key_metric == "ours_raw_accuracy"
    assert result.library_metric == "sklearn_raw_accuracy"
    assert m["max_abs_tfidf_diff"] < 1e-12
    for row in result.tables["accuracy"]:
        assert row["acc_ours"] == row["acc_sklearn"], row["tokens"]
    assert [r["tokens"] for r in result.tables["accuracy"]] == ["raw", "stemmed", "lemmatised"]


def test_normalising_shrinks_vocabulary_and_beats_chance(result):
    m = result.metrics
    assert m["n_train"] == runner.QUICK["n_train"] and m["n_test"] == runner.QUICK["n_test"]
    assert m["vocab_stemmed"] < m["vocab_raw"] and m["vocab_lemmatised"] < m["vocab_raw"]
    assert 0.5 < m["ours_raw_accuracy"] <= 1.0


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {"tokens_and_accuracy.png", "top_terms.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
