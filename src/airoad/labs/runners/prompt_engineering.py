"""Runner for prompt-engineering: SmolLM2-135M-Instruct prompted in different styles on tasks
with checkable answers, accuracy per style with Wilson intervals.

- arithmetic: generated word problems (``word_problems``: seeded, a difficulty knob, exact
  answers), zero-shot, few-shot (k solved problems as earlier chat turns), chain-of-thought
  (capped at ``cot_tokens``) and self-consistency (``n_samples`` sampled chains, majority vote);
- sentiment: Amazon fine-food reviews (test split; 'great' = positive, 'other' = negative),
  zero-shot and few-shot;
- extraction: generated one-sentence biographies to JSON ``Person``, free generation against
  the JSON-constrained decoder (parse rate, field accuracy, all fields right).

Every cell decodes its items in batches after the shared prompt prefix's KV cache, computed once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import changed_from_full, param, render_notes
from airoad.labs.runners import prompt_engineering_parts as parts


@dataclass(frozen=True)
class Config:
    n_items: int = param(60, ge=2, le=1000)  # items per cell
    difficulty: int = param(1, ge=1, le=6)  # steps per word problem
    k_shot: int = param(4, ge=1, le=16)  # few-shot examples
    answer_tokens: int = param(16, ge=1, le=64)  # reply cap of zero- and few-shot answers
    cot_tokens: int = param(64, ge=4, le=512)  # chain-of-thought cap
    n_samples: int = param(3, ge=1, le=20)  # self-consistency chains per problem
    temperature: float = param(0.7, gt=0.0, le=2.0)  # self-consistency sampling
    json_tokens: int = param(40, ge=1, le=256)  # extraction budget (free and constrained)
    review_words: int = param(40, ge=5, le=500)  # reviews are cut to this many words
    batch_size: int = param(30, ge=1, le=256)  # rows per generation batch
    level: float = param(0.95, gt=0.5, lt=1.0)
    n_examples: int = param(2, ge=1, le=20)  # example replies per cell in the table
    seed: int = param(0, ge=0)


QUICK = {"n_items": 3, "k_shot": 2, "answer_tokens": 3, "cot_tokens": 8, "n_samples": 2,
         "json_tokens": 4, "review_words": 20, "n_examples": 1}  # fmt: skip

NOTES = (
    "Arithmetic ({n_items} generated word problems, {difficulty} steps each): zero-shot "
    "{arithmetic_zero_shot:.0%} [{arithmetic_zero_shot_low:.0%}, {arithmetic_zero_shot_high:.0%}]"
    ", few-shot ({k_shot} examples) {arithmetic_few_shot:.0%} [{arithmetic_few_shot_low:.0%}, "
    "{arithmetic_few_shot_high:.0%}], chain-of-thought ({cot_tokens} tokens) "
    "{arithmetic_chain_of_thought:.0%}, self-consistency ({n_samples} chains at T = "
    "{temperature}) {arithmetic_self_consistency:.0%}; best: {arithmetic_best_style} "
    "({level:.0%} Wilson intervals). {run_scope}",
    "Sentiment ({n_items} fine-food test reviews): zero-shot {sentiment_zero_shot:.0%}, "
    "few-shot {sentiment_few_shot:.0%}; always answering the larger class scores "
    "{sentiment_majority:.0%}.",
    "Extraction to JSON ({n_items} generated biographies): free generation parses "
    "{extraction_free_parse_rate:.0%} with {extraction_free_field_accuracy:.0%} of the fields "
    "right; constrained decoding parses {extraction_constrained_parse_rate:.0%} with "
    "{extraction_constrained_field_accuracy:.0%} right (the shortest object is "
    "{extraction_constrained_min_tokens:.0f} tokens).",
    "Generation took {generation_seconds:.0f} s; the cached prompt prefixes saved "
    "{prefix_tokens_saved} tokens of prefill. Our Wilson intervals equal scipy's to "
    "{wilson_max_abs_diff:.1e}.",
)


def _metrics(rows: list[dict], cells: list, lm: parts.SmolLM, config: Config) -> dict:
    metrics: dict = {}
    for r, cell in zip(rows, cells):
        key = f"{r['task']}_{r['style'].replace('-', '_')}"
        metrics |= {key: r["accuracy"], f"{key}_low": r["low"], f"{key}_high": r["high"]}
        metrics |= {f"{key}_{k}": v for k, v in cell.extra.items() if k not in ("majority",)}
    arith = [r for r in rows if r["task"] == "arithmetic"]
    best = max(arith, key=lambda r: r["accuracy"])  # the first style wins a tie
    metrics |= {
        "arithmetic_best_accuracy": best["accuracy"],
        "arithmetic_best_style": best["style"],
    }
    metrics["sentiment_majority"] = cells[4].extra["majority"]
    metrics |= {"generation_seconds": lm.seconds, "prefix_tokens_saved": lm.saved_tokens}
    changed = changed_from_full(config, ["n_items", "cot_tokens", "n_samples", "json_tokens"])
    metrics["run_scope"] = "Full config." if not changed else f"Changed from full: {changed}."
    return metrics


def run(config: Config, ctx: RunContext) -> LabResult:
    reviews = load("fine-food")
    lm = parts.SmolLM(ctx, config.batch_size)
    arithmetic, votes = parts.arithmetic_cells(lm, config)
    cells = (
        arithmetic + parts.sentiment_cells(lm, config, reviews) + parts.extraction_cells(lm, config)
    )
    rows, wilson_diff = parts.accuracy_rows(cells, config.level)
    metrics = _metrics(rows, cells, lm, config) | {"wilson_max_abs_diff": wilson_diff}
    curve = parts.vote_curve(votes, arithmetic[0].truth)
    metrics |= {f"vote_accuracy_{m}": acc for m, acc in enumerate(curve, start=1)}
    parts.accuracy_figure(rows, config.level, ctx)
    parts.vote_figure(curve, rows[2]["accuracy"], config.temperature, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="arithmetic_best_accuracy",
        library_metric=None,  # no library evaluates prompts; the graders hold the comparisons
        tables={"accuracy": rows, "examples": parts.example_rows(cells, config.n_examples)},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
