"""Parts of the rag-chatbot runner: the hand-written conversations, the chunk vectors in a
persistent store (Chroma in ``$AIROAD_HOME`` or a throwaway PostgreSQL + pgvector), the four
queries per follow-up, a streamed sample conversation, store timings and the figure."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

import numpy as np

from airoad.errors import AiroadError
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.labs.runners import retrieval_parts
from airoad.rag import rag_chatbot as ref
from airoad.rag import retrieval
from airoad.rag import vector_stores as vs

CONVERSATIONS = "conversations.jsonl"
METHODS = ("no rewrite", "rule", "SmolLM2", "gold stand-alone")
PG_FIX = "pip install pgserver==0.1.4 (it bundles PostgreSQL 16 with pgvector)"


@dataclass(frozen=True)
class Conversation:
    """A first hand question (with its gold answer as the assistant's reply), a follow-up that
    needs it, the hand question the follow-up stands for, and that question's gold sections."""

    cid: str
    first: Any  # corpus.Question
    follow_up: str
    standalone: Any  # corpus.Question
    gold: tuple[str, ...]


def load_conversations() -> list[Conversation]:
    """The conversations of ``rag/data/conversations.jsonl``, questions resolved by qid."""
    from airoad.rag.corpus import load_questions

    by_id = {q.qid: q for q in load_questions("hand")}
    text = files("airoad.rag").joinpath("data", CONVERSATIONS).read_text(encoding="utf-8")
    rows = [json.loads(line) for line in text.splitlines() if line.strip()]
    return [Conversation(r["cid"], by_id[r["first"]], r["follow_up"], by_id[r["standalone"]],
                         tuple(r["gold"])) for r in rows]  # fmt: skip


# ---------------------------------------------------------------- the stores


def pg_bin_dir() -> Path:
    """The PostgreSQL binaries bundled by the ``pgserver`` package."""
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise AiroadError(f"pgvector needs the pgserver package: {PG_FIX}") from None
    return Path(POSTGRES_BIN_PATH)


def open_store(name: str, ids: list[str], vectors: np.ndarray, folder: Path) -> dict:
    """The store ``name`` holding ``ids`` / ``vectors``: {"store", "server", "reused",
    "add_seconds"}. Chroma lives in ``folder`` and is reused when an earlier run filled it;
    pgvector gets a fresh server (stop it with ``close_store``)."""
    start = time.perf_counter()
    if name == "chroma":
        from airoad.home import writable_dir

        store, reused = vs.open_chroma(writable_dir(folder, "the Chroma folder"), ids, vectors)
        return {"store": store, "server": None, "reused": reused,
                "add_seconds": time.perf_counter() - start}  # fmt: skip
    server = vs.PostgresServer(pg_bin_dir())
    try:
        server.start()
    except RuntimeError as exc:
        raise AiroadError(f"PostgreSQL did not start ({str(exc).splitlines()[0]}): "
                          f"use --set store=chroma, or {PG_FIX}") from None  # fmt: skip
    store = vs.PgVectorStore(server.dsn)
    store.add(ids, vectors)
    return {"store": store, "server": server, "reused": False,
            "add_seconds": time.perf_counter() - start}  # fmt: skip


def close_store(opened: dict) -> None:
    if opened["server"] is not None:
        opened["store"].close()
        opened["server"].stop()


def store_timings(ids: list[str], vectors: np.ndarray, queries: np.ndarray, k: int,
                  folder: Path) -> list[dict]:  # fmt: skip
    """Both stores filled from scratch: seconds to add, ms per query, share of queries whose
    top k equals NumPy's exact top k."""
    exact = retrieval.dense_search(queries, vectors, k)[0]
    exact_ids = [[ids[i] for i in row] for row in exact]
    rows = []
    for name in ("chroma", "pgvector"):
        opened = open_store(name, ids, vectors, folder / name)
        try:
            start = time.perf_counter()
            found = opened["store"].search(queries, k)
            ms = 1000 * (time.perf_counter() - start) / max(len(queries), 1)
        finally:
            close_store(opened)
        same = float(np.mean([a == b for a, b in zip(found, exact_ids, strict=True)]))
        rows.append({"store": name, "vectors": len(ids), "add_s": opened["add_seconds"],
                     "query_ms": ms, "same_top_k_as_numpy": same})  # fmt: skip
    return rows


# ---------------------------------------------------------------- queries and recall


def queries(convs: list[Conversation], llm: Any, config: Any) -> dict[str, list[str]]:
    """Per method, the query each follow-up is retrieved with. The history is the first
    question and its gold answer (the same for every method)."""
    mems = [_memory(c, config.memory_turns) for c in convs]
    asks = [ref.rewrite_messages(c.follow_up, m) for c, m in zip(convs, mems, strict=True)]
    replies = llm.replies(asks, config.rewrite_tokens, "SmolLM2 rewriting follow-ups")
    return {
        "no rewrite": [c.follow_up for c in convs],
        "rule": [ref.rule_rewrite(c.follow_up, m) for c, m in zip(convs, mems, strict=True)],
        "SmolLM2": [
            ref.clean_rewrite(r, c.follow_up) for (r,), c in zip(replies, convs, strict=True)
        ],  # fmt: skip
        "gold stand-alone": [c.standalone.question for c in convs],
    }


def _memory(conv: Conversation, max_turns: int) -> ref.ConversationMemory:
    memory = ref.ConversationMemory(max_turns)
    memory.add(conv.first.question, conv.first.answer)
    return memory


def sections_found(store: Any, q_vecs: np.ndarray, section_of: dict, depth: int) -> list:
    """Each query's ranked distinct sections from the store's top ``depth`` chunks."""
    return [retrieval.first_occurrences([section_of[i] for i in row])
            for row in store.search(q_vecs, depth)]  # fmt: skip


def recall_rows(found: dict[str, list], convs: list[Conversation], k: int) -> list[dict]:
    """recall@1 and @k of the gold sections per method."""
    gold = [set(c.gold) for c in convs]
    return [{"method": m, "recall_at_1": retrieval.recall_at_k(found[m], gold, 1),
             "recall_at_k": retrieval.recall_at_k(found[m], gold, k)} for m in METHODS]  # fmt: skip


# ---------------------------------------------------------------- the streamed sample


def stream_reply(llm: Any, messages: list[dict], max_new_tokens: int) -> dict:
    """SmolLM2's greedy one-line reply streamed piece by piece (a newline ends it, as in
    rag-qa: the small model otherwise repeats itself): the text, the seconds to the first piece
    and to the end, and the number of pieces."""
    from airoad.llm.prompt_engineering import chat_ids

    head, tail = chat_ids(llm.tok, messages)
    start, first, pieces = time.perf_counter(), None, []
    tokens = ref.stream_greedy(llm.model, head + tail, max_new_tokens, llm.lines)
    for piece in ref.stream_text(llm.tok, tokens):
        first = first if first is not None else time.perf_counter() - start
        pieces.append(piece)
    total = time.perf_counter() - start
    return {"text": "".join(pieces).strip(), "first_s": first or total, "total_s": total,
            "pieces": len(pieces)}  # fmt: skip


def sample_chat(conv: Conversation, llm: Any, store: Any, chunks: list, q_vec: Any,
                config: Any) -> list[dict]:  # fmt: skip
    """The conversation's two user turns answered live: rewrite (SmolLM2), retrieve from the
    store, answer from the top passages with the memory in the prompt, streamed."""
    memory, rows = ref.ConversationMemory(config.memory_turns), []
    by_id = {c.id: c for c in chunks}
    for turn, question in enumerate((conv.first.question, conv.follow_up), 1):
        ask = ref.rewrite_messages(question, memory)
        query = (
            question
            if turn == 1
            else ref.clean_rewrite(
                llm.replies([ask], config.rewrite_tokens, "rewriting")[0][0], question
            )
        )
        top = [by_id[i] for i in store.search(q_vec([query]), config.passages)[0]]
        msgs = ref.chat_messages(question, [c.text[:1200] for c in top],
                                 [c.title for c in top], memory)  # fmt: skip
        reply = stream_reply(llm, msgs, config.answer_tokens)
        memory.add(question, reply["text"])
        rows.append({"turn": turn, "user": question, "query": query,
                     "sections": ", ".join(c.section for c in top), **reply})  # fmt: skip
    return rows


def recall_figure(rows: list[dict], k: int, store: str, ctx: RunContext) -> None:
    """recall@1 and @k of the follow-ups' gold sections per rewriting method."""
    with figure(ctx, "followup_recall", figsize=(7, 4)) as (_, ax):
        x = np.arange(len(rows))
        for j, (key, label) in enumerate((("recall_at_1", "recall@1"),
                                          ("recall_at_k", f"recall@{k}"))):  # fmt: skip
            vals = [r[key] for r in rows]
            bars = ax.bar(x + (j - 0.5) * 0.38, vals, 0.38, label=label)
            ax.bar_label(bars, fmt="%.2f", fontsize=8)
        ax.set_xticks(x, [r["method"] for r in rows])
        ax.set(ylabel="share of gold sections retrieved", ylim=(0, 1.15),
               title=f"Follow-up questions retrieved from {store}, by rewrite")  # fmt: skip
        ax.legend(fontsize=8, loc="upper left")


def encoder_fn(batch_size: int, ctx: RunContext, encoder: list) -> Any:
    """A function embedding a list of texts with MiniLM (cached by text hash)."""
    return lambda texts: retrieval_parts.embeddings(
        "question-embeddings", list(texts), batch_size, ctx, encoder
    )
