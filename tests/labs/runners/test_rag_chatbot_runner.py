"""The rag-chatbot runner on the real hand-written conversations (quick config): four queries
per follow-up scored against the gold sections, a streamed two-turn sample, the Chroma store
reused by a second open; and the conversations file itself (every gold id exists)."""

from __future__ import annotations

import numpy as np
import pytest

from airoad.errors import AiroadError, ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import rag_chatbot as runner
from airoad.labs.runners import rag_chatbot_parts as parts
from airoad.rag import rag_chatbot as ref
from airoad.rag.corpus import load_corpus


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("chat")))


def test_conversations_file_is_consistent():
    convs = parts.load_conversations()
    sections = {c.section for c in load_corpus()}
    assert len(convs) == 30 and len({c.cid for c in convs}) == 30
    for c in convs:
        assert c.gold and set(c.gold) <= sections, f"{c.cid}: unknown gold section"
        assert c.gold == c.standalone.gold, f"{c.cid}: gold differs from its stand-alone question"
        assert c.first.qid != c.standalone.qid and c.follow_up != c.standalone.question
    referring = sum(ref.needs_history(c.follow_up) for c in convs)
    assert referring >= 25, f"only {referring} follow-ups point back into the conversation"


def test_followups_are_scored_per_method(result):
    rows, m = result.tables["followups"], result.metrics
    assert [r["method"] for r in rows] == list(parts.METHODS)
    for r in rows:
        assert 0 <= r["recall_at_1"] <= r["recall_at_k"] <= 1
    assert m["gold_recall_at_k"] >= 0.5, "the gold stand-alone questions should find their gold"
    assert m["n_conversations"] == runner.QUICK["n_conversations"]
    convs = parts.load_conversations()[: runner.QUICK["n_conversations"]]
    for q, c in zip(result.tables["queries"], convs, strict=True):
        assert q["no rewrite"] == c.follow_up and q["gold stand-alone"] == c.standalone.question
        assert q["rule"] == f"{c.first.question} {c.follow_up}" and q["SmolLM2"].strip()
    hits = np.mean([q["hit_rule"] for q in result.tables["queries"]])
    assert m["rule_recall_at_k"] >= hits / 2 - 1e-9, "recall cannot be below half the hit rate"


def test_sample_is_streamed_and_figure_drawn(result, tmp_path):
    chat = result.tables["sample_chat"]
    assert [t["turn"] for t in chat] == [1, 2] and all(t["text"] for t in chat)
    assert all(0 < t["first_s"] <= t["total_s"] and t["pieces"] >= 2 for t in chat)
    assert result.tables["stores"] == [] and "not timed" in result.metrics["store_note"]
    assert [p.stem for p in result.figures] == ["followup_recall"]
    assert result.figures[0].stat().st_size > 10_000
    assert result.key_metric == "llm_recall_at_k"


def test_store_is_reused_and_bad_settings_refused(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(30, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = [f"s/{i}" for i in range(30)]
    first = parts.open_store("chroma", ids, vecs, tmp_path / "chroma")
    second = parts.open_store("chroma", ids, vecs, tmp_path / "chroma")
    assert (first["reused"], second["reused"]) == (False, True)
    assert second["store"].search(vecs[:3], 1) == [["s/0"], ["s/1"], ["s/2"]]
    (tmp_path / "file").write_text("x")
    with pytest.raises(AiroadError, match="not a folder"):
        parts.open_store("chroma", ids, vecs, tmp_path / "file")
    with pytest.raises(ConfigError, match="sample"):
        runner.Config(n_conversations=3, sample=3)
