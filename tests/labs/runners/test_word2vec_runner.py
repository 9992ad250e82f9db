"""The word2vec runner on real Shakespeare (quick config: 30k words of each author, one epoch)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import word2vec as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("word2vec"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_trains_and_lowers_the_loss(result):
    m = result.metrics
    assert m["n_tokens"] == runner.QUICK["max_tokens"]
    assert 1_000 < m["vocab_size"] < 5_000
    # all-zero output vectors start at (1 + K) ln 2 = 4.16; one epoch must go well below
    assert m["final_loss"] < 3.2


def test_analogies_scored_on_the_same_questions(result):
    m = result.metrics
    assert result.key_metric == "ours_analogy_accuracy"
    assert result.library_metric == "spacy_md_analogy_accuracy"
    assert m["analogy_questions_total"] == 19_544
    assert 100 < m["analogy_questions_common"] <= m["analogy_questions_own_vocab"]
    for key in ("ours_analogy_accuracy", "spacy_md_analogy_accuracy"):
        assert 0.0 <= m[key] <= 1.0
    rows = result.tables["analogy_sections"]
    assert sum(r["questions"] for r in rows) == m["analogy_questions_common"]


def test_neighbours_and_figure(result):
    rows = result.tables["neighbours"]
    assert rows and all(len(r["ours"].split(", ")) == 5 for r in rows)
    assert all(r["word"] not in r["ours"].split(", ") for r in rows)
    assert [p.name for p in result.figures] == ["loss_and_clusters.png"]
    assert result.figures[0].stat().st_size > 10_000


@pytest.mark.parametrize("key", ["ours_analogy_accuracy", "spacy_md_analogy_accuracy"])
def test_notes_report_both_accuracies(result, key):
    assert f"{result.metrics[key]:.1%}" in result.notes[0]
