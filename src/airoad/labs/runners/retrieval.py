"""Runner for retrieval: BM25, MiniLM dense retrieval and their fusion on the Python docs +
lessons question set, then exact search against FAISS flat, IVF and HNSW on Austen and
Shakespeare sentences.

Part one indexes the chunked corpus of ``airoad.rag.corpus`` (Python language reference topics
and the lessons of built labs) three ways (our BM25, dense search over MiniLM embeddings, and
reciprocal rank fusion of the two) and scores each ranking of sections against the questions'
gold sections; bm25s runs beside our BM25 on the same tokens (same scores, and speed).
Part two embeds a seeded draw of sentences once (kept in the shared artifact cache), takes exact
NumPy top-k as the truth and measures what FAISS's indexes trade: recall against latency.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.errors import AiroadError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes, thread_limit
from airoad.labs.runners import retrieval_parts as parts
from airoad.rag import retrieval as ref


@dataclass(frozen=True)
class Config:
    questions: str = param("all", choices=("all", "hand", "synthetic"))
    k: int = param(10, ge=5, le=100)  # cut-off of recall@k / nDCG@k and of the FAISS searches
    depth: int = param(100, ge=10, le=2000)  # chunks each retriever ranks before fusion
    rrf_c: float = param(60.0, gt=0.0, le=1000.0)  # RRF's constant (60 in Cormack et al.)
    k1: float = param(1.5, gt=0.0, le=10.0)
    b: float = param(0.75, ge=0.0, le=1.0)
    # 0: every chunk. Else the chunks of the questions' gold sections plus a seeded sample of
    # the others, this many in all (the quick config: embedding the corpus is the slow part).
    chunk_sample: int = param(0, ge=0, le=100_000)
    question_sample: int = param(0, ge=0, le=10_000)  # 0: every question; else a seeded sample
    n_sentences: int = param(20_000, ge=1_000, le=60_000)  # documents of the FAISS part
    n_queries: int = param(500, ge=10, le=5_000)  # held-out sentences used as queries
    nlist: int = param(256, ge=4, le=4_096)  # IVF cells (k-means centroids)
    nprobes: tuple[int, ...] = param((1, 2, 4, 8, 16, 32, 64), ge=1, le=4_096)
    hnsw_m: int = param(32, ge=4, le=128)  # HNSW neighbours per node
    ef_construction: int = param(80, ge=8, le=1_024)
    ef_searches: tuple[int, ...] = param((8, 16, 32, 64, 128, 256), ge=1, le=4_096)
    batch_size: int = param(64, ge=1, le=1_024)  # texts per MiniLM forward pass
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(max(self.nprobes) <= self.nlist, "nprobes", "must not exceed nlist")
        config_check(self.depth >= self.k, "depth", "must be at least k")
        config_check(self.n_sentences >= 39 * self.nlist, "nlist", "needs 39 sentences per cell")


QUICK = {
    "questions": "hand",
    "question_sample": 24,
    "chunk_sample": 700,
    "n_sentences": 2_000,
    "n_queries": 100,
    "nlist": 32,
    "nprobes": (1, 4, 16),
    "ef_searches": (8, 32, 128),
}

NOTES = (
    "{n_questions} questions over {n_chunks} chunks ({n_sections} sections): recall@{k} "
    "BM25 {bm25_recall_at_k:.3f}, MiniLM {dense_recall_at_k:.3f}, hybrid (RRF) "
    "{hybrid_recall_at_k:.3f}; MRR {bm25_mrr:.3f} / {dense_mrr:.3f} / {hybrid_mrr:.3f}.",
    "Best retriever by nDCG@{k}: {best_retriever}. On the {n_paraphrased} paraphrased "
    "hand-written questions (mean word overlap with the gold passage {paraphrased_overlap:.2f}) "
    "recall@{k} is BM25 {paraphrased_bm25_recall_at_k:.3f}, MiniLM "
    "{paraphrased_dense_recall_at_k:.3f}, hybrid {paraphrased_hybrid_recall_at_k:.3f}.",
    "Our BM25 equals bm25s to {bm25_max_abs_diff:.1e} on every (question, chunk) score; "
    "nDCG@{k} of bm25s's ranking: ours {bm25s_ndcg_ours:.4f}, sklearn {bm25s_ndcg_sklearn:.4f}.",
    "BM25 speed on the question set: ours {bm25_qps:.0f} queries/s, bm25s {bm25s_qps:.0f} "
    "(one thread; benchmarks/retrieval_bm25.py measures it properly).",
    "FAISS flat returns exact NumPy top-{k} (recall {flat_recall:.3f}); exact search "
    "{exact_ms:.3f} ms/query on {n_sentences} sentences. IVF reaches recall "
    "{ivf_best_recall:.3f} at {ivf_best_ms:.3f} ms, HNSW {hnsw_best_recall:.3f} at "
    "{hnsw_best_ms:.3f} ms; {fastest_095}.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    encoder: list = []  # MiniLM, loaded only when something is not in the cache yet
    metrics, rows = _question_set(config, ctx, encoder)
    ann_metrics, ann_rows = _faiss_sweep(config, ctx, encoder)
    metrics |= ann_metrics
    parts.quality_figure(rows, config.k, ctx)
    parts.ann_figure(ann_rows, metrics["exact_ms"], config, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="hybrid_ndcg_at_k",
        library_metric="bm25s_ndcg_sklearn",
        tables={"retrievers": rows, "faiss": ann_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _question_set(config: Config, ctx: RunContext, encoder: list) -> tuple[dict, list[dict]]:
    """Rank sections three ways (ours) plus bm25s, and score them against the gold sections."""
    import bm25s.stopwords

    from airoad.rag.corpus import load_corpus, load_questions

    questions = load_questions(None if config.questions == "all" else config.questions)
    if not questions:
        raise AiroadError(
            "the question set is empty: src/airoad/rag/data/questions.jsonl is missing"
        )
    if 0 < config.question_sample < len(questions):
        rng = np.random.default_rng(config.seed)
        pick = rng.choice(len(questions), config.question_sample, replace=False)
        questions = [questions[i] for i in sorted(set(pick.tolist()))]
    chunks = parts.sample_chunks(load_corpus(), questions, config.chunk_sample, config.seed)
    sections = np.array([c.section for c in chunks])
    gold = [set(q.gold) for q in questions]
    stop = bm25s.stopwords.STOPWORDS_EN
    tokens = ref.tokenize([f"{c.title}\n{c.text}" for c in chunks], stop)
    q_tokens = ref.tokenize([q.question for q in questions], stop)

    bm25, lib, ids = _rank_chunks(config, chunks, questions, tokens, q_tokens, ctx, encoder)
    ranked = {name: parts.ranked_sections(i, sections) for name, i in ids.items()}
    lib_ranked = parts.ranked_sections(parts.bm25s_search(lib, q_tokens, config.depth), sections)
    lib_scores = np.stack([lib.get_scores(q) if q else np.zeros(len(chunks)) for q in q_tokens])

    rows = parts.quality_rows(ranked, gold, questions, config.k)
    metrics = {
        f"{r['retriever']}_{m}": r[m]
        for r in rows
        if r["questions"] == "all"
        for m in r
        if m not in ("retriever", "questions", "n", "word_overlap")
    }
    metrics |= {
        f"paraphrased_{r['retriever']}_recall_at_k": r["recall_at_k"]
        for r in rows
        if r["questions"] == "hand, paraphrased"
    }
    para = [q.overlap for q in questions if q.origin == "hand" and q.paraphrase]
    best = max(ranked, key=lambda n: metrics[f"{n}_ndcg_at_k"])
    return metrics | {
        "n_paraphrased": len(para),
        "paraphrased_overlap": float(np.mean(para)) if para else float("nan"),
        "n_questions": len(questions),
        "n_chunks": len(chunks),
        "n_sections": len(set(sections)),
        "best_retriever": best,
        "bm25_max_abs_diff": float(np.abs(bm25.scores(q_tokens) - lib_scores).max()),
        "bm25s_ndcg_ours": ref.ndcg_at_k(lib_ranked, gold, config.k),
        "bm25s_ndcg_sklearn": parts.sklearn_ndcg(lib_ranked, gold, config.k),
    } | parts.bm25_race(bm25, lib, q_tokens, config.k), rows


def _rank_chunks(config: Config, chunks, questions, tokens, q_tokens, ctx, encoder) -> tuple:
    """Our BM25 and bm25s on the same tokens; chunk ids (Q, depth) from BM25, dense, hybrid."""
    bm25 = ref.BM25(config.k1, config.b).fit(tokens)
    lib = parts.bm25s_index(tokens, config.k1, config.b)
    texts = [f"{c.title}\n{c.text}" for c in chunks]
    docs = parts.embeddings("chunk-embeddings", texts, config.batch_size, ctx, encoder)
    q_vecs = parts.embeddings(
        "question-embeddings", [q.question for q in questions], config.batch_size, ctx, encoder
    )
    ids = {"bm25": bm25.search(q_tokens, config.depth)[0]}
    ids["dense"] = ref.dense_search(q_vecs, docs, config.depth)[0]
    fused = ref.reciprocal_rank_fusion(
        [ids["bm25"], ids["dense"]], len(chunks), config.depth, config.rrf_c
    )
    return bm25, lib, ids | {"hybrid": fused[0]}


def _faiss_sweep(config: Config, ctx: RunContext, encoder: list) -> tuple[dict, list[dict]]:
    """Exact NumPy top-k on the sentence embeddings, then FAISS's three indexes against it."""
    docs_text, query_text = parts.sentence_split(config.n_sentences, config.n_queries, config.seed)
    vecs = parts.embeddings(
        "sentence-embeddings", docs_text + query_text, config.batch_size, ctx, encoder
    )
    docs, queries = vecs[: config.n_sentences], vecs[config.n_sentences :]
    with thread_limit(1), ctx.step("FAISS flat, IVF and HNSW sweeps"):
        (exact, _), exact_ms = parts.per_query_ms(
            lambda: ref.dense_search(queries, docs, config.k), len(queries)
        )
        rows = parts.faiss_rows(docs, queries, exact, config)
    best = {
        n: max((r for r in rows if r["index"] == n), key=lambda r: r["recall"])
        for n in ("ivf", "hnsw")
    }
    return {
        "exact_ms": exact_ms,
        "flat_recall": rows[0]["recall"],
        "flat_ms": rows[0]["ms"],
        "ivf_best_recall": best["ivf"]["recall"],
        "ivf_best_ms": best["ivf"]["ms"],
        "hnsw_best_recall": best["hnsw"]["recall"],
        "hnsw_best_ms": best["hnsw"]["ms"],
        "fastest_095": parts.fastest_at(rows, exact_ms, 0.95),
    }, rows
