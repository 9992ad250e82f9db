"""Parts of the rag-qa runner: the corpus's sections chunked three ways, hybrid retrieval over
each (BM25 + MiniLM fused by reciprocal rank, the ``retrieval`` lab's code and embedding
cache), SmolLM2's batched answers, and the two figures."""

from __future__ import annotations

from typing import Any

import numpy as np

from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.labs.runners import retrieval_parts
from airoad.rag import corpus, retrieval
from airoad.rag import rag_qa as ref

STRATEGIES = ("fixed", "sentence", "heading")


def sections(questions: list, n: int, seed: int) -> dict[str, tuple[str, str]]:
    """{section id: (title, text)} of the Python docs topics and the built labs' lesson sections:
    all of them (n = 0), or the questions' gold sections plus a seeded sample, n in all."""
    from pydoc_data.topics import topics

    out = {f"pydoc:{name}": (name, topics[name]) for name in sorted(topics)}
    for lab_id, text in sorted(corpus.built_lessons().items()):
        for heading, body in corpus.lesson_sections(text):
            out[f"lesson:{lab_id}#{heading}"] = (f"{lab_id}: {heading}", body)
    if n <= 0 or n >= len(out):
        return out
    gold = {g for q in questions for g in q.gold if g in out}
    rest = np.random.default_rng(seed).permutation(sorted(set(out) - gold)).tolist()
    keep = gold | set(rest[: max(n - len(gold), 0)])
    return {s: v for s, v in out.items() if s in keep}


def chunk(secs: dict[str, tuple[str, str]], strategy: str, words: int, overlap: int) -> list:
    """``corpus.Chunk``s of every section: fixed word windows, packed sentences, or the
    corpus's own heading-aware split (paragraphs packed within 256 MiniLM word pieces)."""
    out = []
    for sid, (title, text) in secs.items():
        if strategy == "fixed":
            pieces = ref.fixed_windows(text, words, overlap)
        elif strategy == "sentence":
            pieces = ref.sentence_pack(text, words)
        else:
            pieces = corpus.split_text(text)
        out += [corpus.Chunk(f"{sid}/{i}", sid, title, p) for i, p in enumerate(pieces)]
    return out


class Index:
    """Hybrid retrieval over ``chunks``: our BM25 and MiniLM cosine, fused by RRF."""

    def __init__(self, chunks: list, config: Any, ctx: RunContext, encoder: list, name: str):
        import bm25s.stopwords

        self.chunks, self.config = chunks, config
        self.sections = np.array([c.section for c in chunks])
        texts = [f"{c.title}\n{c.text}" for c in chunks]
        self.stop = bm25s.stopwords.STOPWORDS_EN
        self.bm25 = retrieval.BM25().fit(retrieval.tokenize(texts, self.stop))
        # the retrieval lab's hash-keyed store: chunks it (or an earlier run) embedded are reused
        self.vectors = retrieval_parts.embeddings(
            "chunk-embeddings", texts, config.batch_size, ctx, encoder
        )
        self.name = name

    def search(self, questions: list, q_vecs: np.ndarray, drop_gold: bool = False) -> tuple:
        """(fused chunk ids (Q, depth), best MiniLM cosine (Q,)); ``drop_gold`` hides each
        question's gold sections first (the question becomes unanswerable from this index)."""
        depth = min(self.config.depth, len(self.chunks))
        bm25 = self.bm25.scores(retrieval.tokenize([q.question for q in questions], self.stop))
        dense = q_vecs @ self.vectors.T
        if drop_gold:
            hidden = np.array([np.isin(self.sections, q.gold) for q in questions])
            bm25, dense = np.where(hidden, -np.inf, bm25), np.where(hidden, -np.inf, dense)
        ranks = [retrieval.top_k(s, depth)[0] for s in (bm25, dense)]
        fused = retrieval.reciprocal_rank_fusion(ranks, len(self.chunks), depth, self.config.rrf_c)
        return fused[0], dense.max(1)

    def recall(self, ids: np.ndarray, questions: list, k: int) -> float:
        """recall@k of the sections the chunk ranking reaches, against the gold sections."""
        ranked = retrieval_parts.ranked_sections(ids, self.sections)
        return retrieval.recall_at_k(ranked, [set(q.gold) for q in questions], k)


def answer(questions: list, ids: np.ndarray, index: Index, config: Any, ctx: RunContext) -> tuple:
    """SmolLM2's greedy answers from the top ``passages`` chunks, in batches after a cached
    system prompt, scored by EM, F1, citations and faithfulness: (one dict per question, prompt
    tokens the cache saved)."""
    from transformers import NoRepeatNGramLogitsProcessor

    from airoad.labs.runners.prompt_engineering_parts import SmolLM
    from airoad.rag.ask_answer import MAX_PASSAGE_CHARS, NO_REPEAT_NGRAM

    class NoRepeat(NoRepeatNGramLogitsProcessor):
        budget = config.max_new_tokens  # SmolLM.replies reads the token budget from it

    top = [[index.chunks[i] for i in row[: config.passages]] for row in ids]
    messages = [
        ref.prompt_messages(
            q.question, [c.text[:MAX_PASSAGE_CHARS] for c in cs], [c.title for c in cs]
        )  # fmt: skip
        for q, cs in zip(questions, top, strict=True)
    ]
    llm = SmolLM(ctx, config.gen_batch)
    replies = llm.replies(messages, config.max_new_tokens, "SmolLM2 answering", one_line=True,
                          processor=lambda: NoRepeat(NO_REPEAT_NGRAM))  # fmt: skip
    rows = []
    for q, cs, (reply,) in zip(questions, top, replies, strict=True):
        cited = ref.parse_citations(reply, len(cs))
        text = ref.strip_citations(reply)
        rows.append({
            "qid": q.qid, "gold_in_passages": any(c.section in q.gold for c in cs),
            "em": ref.exact_match(text, q.answer), "f1": ref.token_f1(text, q.answer),
            "cites": bool(cited),
            "faithfulness": ref.faithfulness(reply, [cs[n - 1].text for n in cited]),
            # the same check against every passage shown, for answers that cite nothing
            "support": ref.faithfulness(reply, [c.text for c in cs]),
            "answer": reply, "gold": q.answer,
        })  # fmt: skip
    return rows, llm.saved_tokens


def chunking_figure(rows: list[dict], k: int, ctx: RunContext) -> None:
    """recall@1 / @5 / @k of the hybrid retriever per chunking strategy."""
    cuts = ("recall_at_1", "recall_at_5", "recall_at_k")
    with figure(ctx, "chunking_recall", figsize=(7, 4)) as (_, ax):
        width = 0.8 / len(cuts)
        for j, cut in enumerate(cuts):
            ax.bar(np.arange(len(rows)) + j * width, [r[cut] for r in rows], width,
                   label=cut.replace("_at_", "@").replace("@k", f"@{k}"))  # fmt: skip
        ax.set_xticks(np.arange(len(rows)) + width,
                      [f"{r['strategy']}\n{r['chunks']} chunks, {r['mean_words']:.0f} words"
                       for r in rows], fontsize=8)  # fmt: skip
        ax.set(ylabel="share of gold sections retrieved", ylim=(0, 1.22),
               title="Hybrid retrieval (BM25 + MiniLM, RRF) by chunking")  # fmt: skip
        ax.legend(fontsize=8, loc="upper center", ncols=3)


def abstain_figure(thresholds: np.ndarray, hit: np.ndarray, false: np.ndarray, chosen: float,
                   ctx: RunContext) -> None:  # fmt: skip
    """Abstain rate on unanswerable questions and false-abstain rate on answerable ones."""
    with figure(ctx, "abstain_sweep", figsize=(7, 4)) as (_, ax):
        ax.plot(thresholds, hit, marker="o", ms=3, label="unanswerable: abstained (wanted)")
        ax.plot(thresholds, false, marker="s", ms=3, label="answerable: abstained (false)")
        ax.axvline(chosen, color="grey", ls=":", label=f"best gap at {chosen:.2f}")
        ax.set(xlabel="threshold on the best MiniLM cosine score", ylabel="share of questions",
               title="The \"I don't know\" rule over a threshold sweep", ylim=(-0.02, 1.02))  # fmt: skip
        ax.legend(fontsize=8)
