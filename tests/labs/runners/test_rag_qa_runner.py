"""The rag-qa runner on real hand-written questions over the Python docs and lessons (quick
config): chunkers index every section, retrieval finds the gold sections, SmolLM2 answers each
question, scores stay in range and the abstain sweep behaves."""

from __future__ import annotations

import numpy as np
import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import rag_qa as runner
from airoad.labs.runners import rag_qa_parts as parts
from airoad.rag import rag_qa as ref
from airoad.rag.corpus import load_questions


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("rag")))


def test_chunking_keeps_every_section_and_finds_gold(result):
    m, rows = result.metrics, result.tables["chunking"]
    assert [r["strategy"] for r in rows] == list(parts.STRATEGIES)
    assert m["n_questions"] == runner.QUICK["n_questions"]
    assert m["n_sections"] == runner.QUICK["section_sample"]
    for r in rows:
        assert 0 <= r["recall_at_1"] <= r["recall_at_5"] <= r["recall_at_k"] <= 1
        assert r["recall_at_k"] >= 0.5, f"{r['strategy']} retrieval misses most gold sections"
    fixed = next(r for r in rows if r["strategy"] == "fixed")
    assert fixed["mean_words"] <= runner.Config().window_words


def test_answers_are_scored_like_squad(result):
    answers = result.tables["answers"]
    assert len(answers) == runner.QUICK["n_questions"]
    assert all(a["answer"].strip() for a in answers), "SmolLM2 returned an empty answer"
    for a in answers:
        assert a["f1"] == pytest.approx(ref.token_f1(ref.strip_citations(a["answer"]), a["gold"]))
        assert 0 <= a["faithfulness"] <= a["support"] + 1e-12 <= 1 + 1e-12
    m = result.metrics
    assert m["em"] <= m["f1"] and 0 <= m["citation_rate"] <= 1
    assert result.key_metric == "f1" and m["f1"] == pytest.approx(
        np.mean([a["f1"] for a in answers])
    )


def test_abstain_sweep_is_monotone(result):
    sweep = result.tables["abstain_sweep"]
    hit, false = (np.array([r[c] for r in sweep]) for c in ("abstain_rate", "false_abstain_rate"))
    assert hit[0] == false[0] == 0 and hit[-1] == false[-1] == 1
    assert np.all(np.diff(hit) >= 0) and np.all(np.diff(false) >= 0)
    m = result.metrics
    assert m["best_score_unanswerable"] < m["best_score_answerable"], (
        "removing the gold sections should lower the best retrieval score"
    )
    assert m["abstain_rate"] - m["false_abstain_rate"] > 0
    assert {p.stem for p in result.figures} == {"chunking_recall", "abstain_sweep"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)


def test_sections_sample_keeps_gold():
    qs = load_questions("hand")[:5]
    secs = parts.sections(qs, 30, seed=1)
    assert len(secs) == 30 and {g for q in qs for g in q.gold} <= set(secs)
    chunks = parts.chunk(secs, "sentence", 50, 0)
    assert {c.section for c in chunks} <= set(secs) and all(c.text for c in chunks)
