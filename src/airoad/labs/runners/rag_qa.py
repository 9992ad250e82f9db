"""Runner for rag-qa: retrieval-augmented answers to the hand-written questions about the
Python docs and airoad's lessons.

1. Chunking: every section of the corpus is cut three ways (fixed word windows with overlap,
   packed sentences, the corpus's heading-aware paragraph split); hybrid retrieval (our BM25 +
   MiniLM, reciprocal rank fusion) over each is scored by recall of the gold sections.
2. Answers: SmolLM2-135M-Instruct answers from the top passages in batches, citing them;
   exact match and token F1 against the short gold answers, citation rate, faithfulness.
3. "I don't know": the same questions asked again with their gold sections removed from the
   index are unanswerable; a threshold on the best MiniLM cosine is swept, abstaining on those
   (wanted) against abstaining on the answerable ones (false).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.errors import AiroadError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes
from airoad.labs.runners import rag_qa_parts as parts
from airoad.labs.runners import retrieval_parts
from airoad.rag import rag_qa as ref


@dataclass(frozen=True)
class Config:
    n_questions: int = param(90, ge=2, le=90)  # hand-written questions (a seeded sample if < 90)
    section_sample: int = param(0, ge=0, le=10_000)  # 0: every section; else gold + a sample
    window_words: int = param(120, ge=10, le=400)  # fixed windows and sentence packs, in words
    overlap: int = param(30, ge=0, le=200)  # words shared by neighbouring fixed windows
    qa_strategy: str = param("heading", choices=parts.STRATEGIES)  # chunks the generator reads
    k: int = param(10, ge=5, le=50)  # recall@k cut-off
    depth: int = param(50, ge=10, le=1_000)  # chunks each retriever ranks before fusion
    rrf_c: float = param(60.0, gt=0.0, le=1_000.0)
    passages: int = param(3, ge=1, le=8)  # passages in the prompt
    max_new_tokens: int = param(40, ge=4, le=200)
    gen_batch: int = param(8, ge=1, le=64)  # prompts per SmolLM2 batch
    batch_size: int = param(64, ge=1, le=1_024)  # texts per MiniLM forward pass
    n_thresholds: int = param(41, ge=3, le=1_000)  # abstain thresholds swept over [0, 1]
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(self.overlap < self.window_words, "overlap", "must be below window_words")
        config_check(self.depth >= self.k, "depth", "must be at least k")


QUICK = {"n_questions": 6, "section_sample": 40, "n_thresholds": 11}

NOTES = (
    "Chunking ({n_questions} hand questions, hybrid retrieval): recall@{k} fixed windows "
    "{fixed_recall_at_k:.3f}, sentences {sentence_recall_at_k:.3f}, heading-aware "
    "{heading_recall_at_k:.3f}; recall@1 {fixed_recall_at_1:.3f} / {sentence_recall_at_1:.3f} / "
    "{heading_recall_at_1:.3f}.",
    "SmolLM2 on {qa_strategy} chunks, top {passages} passages (gold section among them for "
    "{gold_in_passages:.0%}): exact match {em:.3f}, token F1 {f1:.3f}, cites a passage "
    "{citation_rate:.0%} of the time, faithfulness to the cited passages {faithfulness:.3f}; "
    "share of the answer's content words found in the passages shown {support:.3f}.",
    "I don't know: at threshold {threshold:.2f} on the best MiniLM cosine the rule abstains on "
    "{abstain_rate:.0%} of the questions whose gold sections were removed and on "
    "{false_abstain_rate:.0%} of the answerable ones.",
    "Generation took {gen_seconds:.0f} s for {n_questions} answers ({saved_tokens} prompt tokens "
    "saved by the shared system-prompt cache).",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    encoder: list = []  # MiniLM, loaded only if something is not in the embedding cache
    questions = _questions(config)
    secs = parts.sections(questions, config.section_sample, config.seed)
    q_vecs = retrieval_parts.embeddings(
        "question-embeddings", [q.question for q in questions], config.batch_size, ctx, encoder
    )
    chunk_rows, indexes = _chunking(config, ctx, encoder, secs, questions, q_vecs)
    index = indexes[config.qa_strategy]
    ids, best = index.search(questions, q_vecs)
    _, best_unanswerable = index.search(questions, q_vecs, drop_gold=True)
    answers, gen = _answers(config, ctx, questions, ids, index)
    sweep, abstain = _abstain(config, best, best_unanswerable)
    parts.chunking_figure(chunk_rows, config.k, ctx)
    parts.abstain_figure(*[np.array([r[c] for r in sweep]) for c in ("threshold", "abstain_rate",
                         "false_abstain_rate")], abstain["threshold"], ctx)  # fmt: skip
    metrics = _chunk_metrics(chunk_rows) | gen | abstain
    metrics |= {"n_questions": len(questions), "n_sections": len(secs)}
    return LabResult(
        metrics=metrics,
        key_metric="f1",
        library_metric="heading_recall_at_k",
        tables={"chunking": chunk_rows, "answers": answers, "abstain_sweep": sweep},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _questions(config: Config) -> list:
    """The hand-written questions, or a seeded sample of them."""
    from airoad.rag.corpus import load_questions

    questions = load_questions("hand")
    if not questions:
        raise AiroadError(
            "no hand-written questions: src/airoad/rag/data/questions.jsonl is missing"
        )
    if config.n_questions < len(questions):
        pick = np.random.default_rng(config.seed).choice(len(questions), config.n_questions, False)
        questions = [questions[i] for i in sorted(pick.tolist())]
    return questions


def _chunking(config: Config, ctx, encoder, secs, questions, q_vecs) -> tuple[list, dict]:
    """One hybrid index per chunking strategy and its recall@1 / @5 / @k."""
    rows, indexes = [], {}
    for strategy in parts.STRATEGIES:
        chunks = parts.chunk(secs, strategy, config.window_words, config.overlap)
        index = indexes[strategy] = parts.Index(chunks, config, ctx, encoder, strategy)
        ids, _ = index.search(questions, q_vecs)
        rows.append({
            "strategy": strategy, "chunks": len(chunks),
            "mean_words": float(np.mean([len(c.text.split()) for c in chunks])),
            **{f"recall_at_{c}": index.recall(ids, questions, k)
               for c, k in (("1", 1), ("5", 5), ("k", config.k))},
        })  # fmt: skip
    return rows, indexes


def _chunk_metrics(rows: list[dict]) -> dict:
    return {f"{r['strategy']}_{m}": r[m] for r in rows for m in r if m.startswith("recall")}


def _answers(config: Config, ctx, questions, ids, index) -> tuple[list, dict]:
    """SmolLM2's answers and their mean scores; the time generation took."""
    import time

    start = time.perf_counter()
    rows, saved = parts.answer(questions, ids, index, config, ctx)
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    return rows, {
        "em": mean("em"), "f1": mean("f1"), "citation_rate": mean("cites"),
        "faithfulness": mean("faithfulness"), "support": mean("support"),
        "gold_in_passages": mean("gold_in_passages"),
        "gen_seconds": time.perf_counter() - start, "saved_tokens": saved,
    }  # fmt: skip


def _abstain(config: Config, answerable: np.ndarray, unanswerable: np.ndarray) -> tuple:
    """The threshold sweep, and the threshold with the largest gap between the two rates."""
    thresholds = np.linspace(0.0, 1.0, config.n_thresholds)
    hit, false = ref.abstain_curve(answerable, unanswerable, thresholds)
    sweep = [{"threshold": float(t), "abstain_rate": float(h), "false_abstain_rate": float(f)}
             for t, h, f in zip(thresholds, hit, false, strict=True)]  # fmt: skip
    best = sweep[int(np.argmax(hit - false))]
    return sweep, best | {
        "best_score_answerable": float(np.mean(answerable)),
        "best_score_unanswerable": float(np.mean(unanswerable)),
    }
