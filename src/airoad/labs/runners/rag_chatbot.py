"""Runner for rag-chatbot: follow-up questions over the Python docs and airoad's lessons, answered
from a persistent vector store with conversation memory and streamed replies.

1. Store: the corpus's chunks, embedded once by MiniLM (the retrieval lab's cache), go into
   Chroma under ``$AIROAD_HOME/rag-chatbot/chroma`` (reused by the next run: the collection is
   named after a hash of the corpus) or into a throwaway PostgreSQL + pgvector server.
2. Follow-ups: 30 hand-written two-turn conversations; each follow-up is retrieved as it is, as
   rewritten by a rule, as rewritten by SmolLM2, and as the gold stand-alone hand question (the
   ceiling); recall of the gold sections per method.
3. A sample conversation answered live, each reply streamed token by token.
4. Full config: both stores filled from scratch and timed, checked against NumPy's exact top k.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from airoad.home import home
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes
from airoad.labs.runners import rag_chatbot_parts as parts
from airoad.labs.runners import retrieval_parts


@dataclass(frozen=True)
class Config:
    store: str = param("chroma", choices=("chroma", "pgvector"))
    n_conversations: int = param(30, ge=2, le=30)  # the first n hand-written conversations
    chunk_sample: int = param(0, ge=0, le=100_000)  # 0: every chunk; else gold + a sample
    k: int = param(5, ge=1, le=20)  # recall@k cut-off, in sections
    depth: int = param(40, ge=1, le=500)  # chunks fetched from the store per query
    memory_turns: int = param(3, ge=1, le=20)  # turns the memory keeps
    rewrite_tokens: int = param(40, ge=4, le=200)
    answer_tokens: int = param(60, ge=4, le=400)
    passages: int = param(3, ge=1, le=8)  # passages in the answer prompt
    sample: int = param(0, ge=0, le=29)  # which conversation is answered live
    compare_stores: bool = param(True)  # time both stores from scratch (starts PostgreSQL)
    gen_batch: int = param(8, ge=1, le=64)
    batch_size: int = param(64, ge=1, le=1_024)  # texts per MiniLM forward pass
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(self.depth >= self.k, "depth", "must be at least k")
        config_check(self.sample < self.n_conversations, "sample", "must be below n_conversations")


QUICK = {"n_conversations": 3, "chunk_sample": 120, "compare_stores": False, "answer_tokens": 8,
         "rewrite_tokens": 20, "passages": 1}  # fmt: skip

NOTES = (
    "{n_conversations} follow-ups retrieved from {store} ({n_chunks} chunks, collection "
    "{reuse_note}): recall@{k} with no rewrite {none_recall_at_k:.3f}, rule "
    "{rule_recall_at_k:.3f}, SmolLM2 {llm_recall_at_k:.3f}, gold stand-alone question "
    "{gold_recall_at_k:.3f} (the ceiling).",
    "Streamed sample ({sample_cid}): first piece after {first_s:.2f} s, whole reply after "
    "{total_s:.2f} s. User: {sample_user} -> query: {sample_query} -> bot: {sample_reply}",
    "Stores from scratch: {store_note}",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    from airoad.labs.runners.prompt_engineering_parts import SmolLM

    encoder: list = []  # MiniLM, loaded only if a text is not in the embedding cache
    convs = parts.load_conversations()[: config.n_conversations]
    chunks, vectors = _corpus(config, ctx, encoder, convs)
    embed = parts.encoder_fn(config.batch_size, ctx, encoder)
    opened = parts.open_store(config.store, [c.id for c in chunks], vectors, _chroma_home())
    try:
        llm = SmolLM(ctx, config.gen_batch)
        rows, found = _followups(config, convs, llm, opened["store"], chunks, embed)
        chat = parts.sample_chat(convs[config.sample], llm, opened["store"], chunks, embed, config)
    finally:
        parts.close_store(opened)
    timings = _timings(config, ctx, chunks, vectors, embed, convs)
    parts.recall_figure(rows, config.k, config.store, ctx)
    metrics = _metrics(rows, chat, timings, opened) | {
        "n_conversations": len(convs), "n_chunks": len(chunks),
        "sample_cid": convs[config.sample].cid}  # fmt: skip
    return LabResult(
        metrics=metrics,
        key_metric="llm_recall_at_k",
        library_metric="gold_recall_at_k",
        tables={"followups": rows, "queries": found, "sample_chat": chat, "stores": timings},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _chroma_home():
    return home() / "rag-chatbot" / "chroma"


def _corpus(config: Config, ctx: RunContext, encoder: list, convs: list) -> tuple:
    """The corpus's chunks (all, or the conversations' gold sections plus a seeded sample)
    and their MiniLM vectors from the shared cache."""
    from airoad.rag.corpus import load_corpus

    gold = [c.standalone for c in convs] + [c.first for c in convs]
    chunks = retrieval_parts.sample_chunks(load_corpus(), gold, config.chunk_sample, config.seed)
    texts = [f"{c.title}\n{c.text}" for c in chunks]
    return chunks, retrieval_parts.embeddings("chunk-embeddings", texts, config.batch_size, ctx,
                                              encoder)  # fmt: skip


def _followups(config: Config, convs, llm, store, chunks, embed) -> tuple[list, list]:
    """Recall per rewriting method, and one row per follow-up with its four queries."""
    section_of = {c.id: c.section for c in chunks}
    asked = parts.queries(convs, llm, config)
    found = {m: parts.sections_found(store, embed(q), section_of, config.depth)
             for m, q in asked.items()}  # fmt: skip
    rows = parts.recall_rows(found, convs, config.k)
    per_conv = [{"cid": c.cid, "gold": ", ".join(c.gold),
                 **{m: asked[m][i] for m in parts.METHODS},
                 **{f"hit_{m}": bool(set(found[m][i][: config.k]) & set(c.gold))
                    for m in parts.METHODS}} for i, c in enumerate(convs)]  # fmt: skip
    return rows, per_conv


def _timings(config: Config, ctx: RunContext, chunks, vectors, embed, convs) -> list[dict]:
    if not config.compare_stores:
        return []
    q_vecs = embed([c.standalone.question for c in convs])
    return parts.store_timings([c.id for c in chunks], vectors, q_vecs, config.k,
                               ctx.out_dir / "stores")  # fmt: skip


def _metrics(rows: list[dict], chat: list[dict], timings: list[dict], opened: dict) -> dict:
    short = {"no rewrite": "none", "rule": "rule", "SmolLM2": "llm", "gold stand-alone": "gold"}
    out = {f"{short[r['method']]}_{m}": r[m] for r in rows for m in ("recall_at_1", "recall_at_k")}
    last = chat[-1]
    out |= {"first_s": last["first_s"], "total_s": last["total_s"], "sample_user": last["user"],
            "sample_query": last["query"], "sample_reply": last["text"],
            "reused_store": opened["reused"], "store_add_s": opened["add_seconds"],
            "reuse_note": "reused from an earlier run" if opened["reused"] else "filled now"}  # fmt: skip
    out["store_note"] = (
        "; ".join(
            f"{t['store']} adds {t['vectors']} vectors in {t['add_s']:.2f} s, {t['query_ms']:.1f} ms "
            f"per query, top k equal to NumPy's for {t['same_top_k_as_numpy']:.0%} of queries"
            for t in timings
        )
        or "not timed (compare_stores off)"
    )
    out |= {f"{t['store']}_{m}": t[m] for t in timings for m in ("add_s", "query_ms")}
    return out
