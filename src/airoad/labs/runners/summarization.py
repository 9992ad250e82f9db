"""Runner for summarization: lead sentence, TextRank and prompted SmolLM2-135M-Instruct on the
Python standard library's docstrings, scored with our ROUGE against each docstring's own PEP 257
summary line.

The lead sentence and TextRank summarise every document; SmolLM2 summarises a seeded subset of
at least 50 (the slow part), and all three are compared on that same subset with bootstrap
intervals and a paired difference. Every score is recomputed with ``rouge-score`` and every
PageRank with ``networkx.pagerank``; the largest differences are metrics of the run.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import (
    changed_from_full,
    config_check,
    param,
    render_notes,
    subsample,
    validate_config,
)
from airoad.labs.runners import summarization_parts as parts
from airoad.llm import summarization as ref


@dataclass(frozen=True)
class Config:
    n_documents: int = param(0, ge=3, also=(0,))  # 0 = every pair in stdlib-docstrings
    n_abstractive: int = param(64, ge=1, le=1000)  # the seeded subset SmolLM2 summarises
    prompt: str = param("named", choices=("named", "plain"))  # named: the prompt names the object
    max_new_tokens: int = param(40, ge=1, le=256)
    batch_size: int = param(8, ge=1, le=64)
    damping: float = param(0.85, gt=0.0, lt=1.0)
    use_stemmer: bool = False  # Porter-stem tokens longer than 3 characters before matching
    n_boot: int = param(2000, ge=100, le=100_000)
    level: float = param(0.95, gt=0.5, lt=1.0)
    n_examples: int = param(8, ge=1, le=100)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        ok = self.n_documents == 0 or self.n_abstractive <= self.n_documents
        config_check(ok, "n_abstractive", f"is {self.n_abstractive}, above n_documents")


QUICK = {"n_documents": 12, "n_abstractive": 3, "max_new_tokens": 8, "n_boot": 200, "n_examples": 3}

NOTES = (
    "{n_abstractive} docstrings, mean ROUGE-L F1 against the PEP 257 summary line: lead "
    "sentence {lead_rougeL:.3f} [{lead_rougeL_low:.3f}, {lead_rougeL_high:.3f}], TextRank "
    "{textrank_rougeL:.3f} [{textrank_rougeL_low:.3f}, {textrank_rougeL_high:.3f}], SmolLM2 "
    "{smollm2_rougeL:.3f} [{smollm2_rougeL_low:.3f}, {smollm2_rougeL_high:.3f}] ({level:.0%} "
    "bootstrap intervals). {run_scope}",
    "SmolLM2 minus lead, paired over the same documents: {smollm2_vs_lead_rougeL:+.3f} "
    "[{smollm2_vs_lead_low:+.3f}, {smollm2_vs_lead_high:+.3f}]; SmolLM2's ROUGE-L against the "
    "lead sentence's: {smollm2_vs_lead_verdict}.",
    "All {n_documents} docstrings: lead {lead_all_rougeL:.3f}, TextRank {textrank_all_rougeL:.3f} "
    "ROUGE-L; TextRank's top sentence is the first one in {textrank_picks_lead:.0%} of them.",
    "Our ROUGE equals rouge-score to {rouge_max_abs_diff:.1e} and our PageRank equals "
    "networkx to {pagerank_max_abs_diff:.1e}. SmolLM2 took {generation_seconds:.0f} s "
    "({seconds_per_document:.1f} s per docstring, batches of {batch_size}); its kept summaries "
    "hold {summary_tokens} tokens.",
)


def _documents(config: Config) -> tuple:
    """All pairs (or a seeded subset of n_documents) and the seeded abstractive subset."""
    frame = load("stdlib-docstrings")
    if config.n_documents:
        frame = frame.iloc[subsample(len(frame), config.n_documents, config.seed)]
    picked = subsample(len(frame), config.n_abstractive, config.seed + 1)
    return frame.reset_index(drop=True), frame.iloc[picked].reset_index(drop=True)


def _extractive(frame, config: Config) -> dict[str, list[str]]:
    return {
        "lead": [ref.lead_summary(d) for d in frame.document],
        "textrank": [ref.textrank_summary(d, 1, config.damping) for d in frame.document],
    }


def _abstractive(subset, config: Config, ctx: RunContext) -> tuple[list[str], dict]:
    """SmolLM2's one-line summaries of the subset, and how long generating them took."""
    from airoad.data.models import load_smollm2

    with ctx.step("loading SmolLM2-135M-Instruct"):
        model, tokenizer = load_smollm2()
    named = config.prompt == "named"
    names = [f"{m}.{q}" for m, q in zip(subset.module, subset.qualname)] if named else None
    docs, kinds = list(subset.document), list(subset.kind)
    # chunks of similar length (little padding), one batch each, so the bar moves per batch
    order = np.argsort([len(d) for d in docs], kind="stable")
    chunks = [order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)]
    texts = [""] * len(docs)
    start = time.perf_counter()
    for chunk in ctx.track(chunks, f"SmolLM2 summarising {len(docs)} docstrings"):
        out = ref.summarize(
            model, tokenizer, [docs[i] for i in chunk], [names[i] for i in chunk] if names else None,
            [kinds[i] for i in chunk], config.max_new_tokens, config.batch_size,
        )  # fmt: skip
        for i, text in zip(chunk, out):
            texts[i] = text
    seconds = time.perf_counter() - start
    tokens = sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts)
    timing = {"generation_seconds": seconds, "summary_tokens": tokens}
    return texts, timing | {"seconds_per_document": seconds / max(len(docs), 1)}


def _score(summaries: dict[str, list[str]], references, config: Config) -> tuple[dict, float]:
    """Per-document F1 of each method, and the worst disagreement with rouge-score."""
    scores, worst = {}, 0.0
    for method, texts in summaries.items():
        scores[method], diff = parts.score_all(list(references), texts, config.use_stemmer)
        worst = max(worst, diff)
    return scores, worst


def _metrics(all_rows, sub_rows, scores_sub, config: Config) -> dict:
    metrics = {f"{r['method']}_all_{k}": r[k] for r in all_rows for k in parts.KINDS}
    for r in sub_rows:
        for k in parts.KINDS:
            metrics |= {f"{r['method']}_{k}{s}": r[f"{k}{s}"] for s in ("", "_low", "_high")}
    diff = parts.paired_difference(
        scores_sub["smollm2"]["rougeL"], scores_sub["lead"]["rougeL"], config.n_boot,
        config.level, config.seed,
    )  # fmt: skip
    metrics |= {"smollm2_vs_lead_rougeL": diff["diff"], "smollm2_vs_lead_verdict": diff["verdict"]}
    metrics |= {"smollm2_vs_lead_low": diff["low"], "smollm2_vs_lead_high": diff["high"]}
    changed = changed_from_full(config, ["n_documents", "n_abstractive", "max_new_tokens"])
    metrics["run_scope"] = "Full config." if not changed else f"Changed from full: {changed}."
    return metrics


def run(config: Config, ctx: RunContext) -> LabResult:
    frame, subset = _documents(config)
    extractive = _extractive(frame, config)
    scores_all, diff_all = _score(extractive, frame.summary, config)
    generated, timing = _abstractive(subset, config, ctx)
    summaries = _extractive(subset, config) | {"smollm2": generated}
    scores_sub, diff_sub = _score(summaries, subset.summary, config)
    boot = (config.n_boot, config.level, config.seed)
    all_rows = parts.rouge_rows(scores_all, "all", *boot)
    sub_rows = parts.rouge_rows(scores_sub, "abstractive subset", *boot)
    pagerank_diff, picks_lead = parts.pagerank_check(list(frame.document), config.damping)

    metrics = _metrics(all_rows, sub_rows, scores_sub, config) | timing
    metrics |= {"n_documents": len(frame), "n_abstractive": len(subset)}
    metrics |= {"rouge_max_abs_diff": max(diff_all, diff_sub), "textrank_picks_lead": picks_lead}
    metrics |= {"pagerank_max_abs_diff": pagerank_diff}
    metrics["smollm2_rougeL_rouge_score"] = parts.library_mean(
        subset.summary, generated, "rougeL", config.use_stemmer
    )
    parts.rouge_figure(sub_rows, config.level, ctx)
    parts.length_figure(list(subset.summary), summaries, ctx)
    examples = parts.example_rows(subset, summaries, scores_sub, config.n_examples)
    return LabResult(
        metrics=metrics,
        key_metric="smollm2_rougeL",
        library_metric="smollm2_rougeL_rouge_score",
        tables={"rouge": sub_rows + all_rows, "examples": examples},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
