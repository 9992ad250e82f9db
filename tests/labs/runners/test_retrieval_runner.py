"""The retrieval runner on the real question set and real Austen + Shakespeare sentences
(quick config), and our MiniLM embeddings against sentence-transformers'."""

from __future__ import annotations

import numpy as np
import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import retrieval as runner
from airoad.rag import retrieval as ref

SENTENCES = [
    "Elizabeth walked to Netherfield through the muddy fields.",
    "A hash table maps keys to values in constant expected time.",
    "Is this a dagger which I see before me?",
]


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("ret")))


def test_bm25_equals_bm25s_and_metrics_equal_sklearn(result):
    m = result.metrics
    assert result.key_metric == "hybrid_ndcg_at_k" and result.library_metric in m
    assert m["bm25_max_abs_diff"] < 1e-4  # float32 weights on both sides
    assert m["bm25s_ndcg_ours"] == pytest.approx(m["bm25s_ndcg_sklearn"], abs=1e-12)
    assert m["n_questions"] == runner.QUICK["question_sample"] and m["n_sections"] > 50
    assert m["n_chunks"] == runner.QUICK["chunk_sample"], "the quick config samples the corpus"


def test_retrievers_find_gold_sections(result):
    m = result.metrics
    for name in ("bm25", "dense", "hybrid"):
        assert 0 <= m[f"{name}_recall_at_1"] <= m[f"{name}_recall_at_5"] <= m[f"{name}_recall_at_k"]
        assert m[f"{name}_recall_at_k"] > 0.5, f"{name} misses most gold sections"
        assert m[f"{name}_mrr"] <= m[f"{name}_recall_at_k"] + 1e-12
    # fusion should not fall below the weaker of its two inputs
    assert m["hybrid_recall_at_k"] >= min(m["bm25_recall_at_k"], m["dense_recall_at_k"])
    groups = {(r["retriever"], r["questions"]) for r in result.tables["retrievers"]}
    assert ("dense", "hand, paraphrased") in groups
    assert m["n_paraphrased"] >= 5 and 0 < m["paraphrased_overlap"] < 0.6


def test_faiss_flat_is_exact_and_knobs_trade_speed_for_recall(result):
    rows = result.tables["faiss"]
    assert result.metrics["flat_recall"] == 1.0
    for name, knobs in (("ivf", runner.QUICK["nprobes"]), ("hnsw", runner.QUICK["ef_searches"])):
        sub = [r for r in rows if r["index"] == name]
        assert [r["knob"] for r in sub] == list(knobs)
        recalls = [r["recall"] for r in sub]
        assert recalls[-1] > recalls[0] and recalls[-1] >= 0.9, (name, recalls)
    assert [p.name for p in result.figures] == ["retriever_quality.png", "ann_tradeoff.png"]
    assert all(p.stat().st_size > 10_000 for p in result.figures)


def test_minilm_encode_equals_sentence_transformers():
    from sentence_transformers import SentenceTransformer

    from airoad.data import load
    from airoad.data.models import MINILM, load_minilm_encoder

    model, tok = load_minilm_encoder()
    ours = ref.encode(model, tok, SENTENCES, batch_size=2)
    theirs = SentenceTransformer(str(load(MINILM)), device="cpu").encode(SENTENCES)
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-5)
