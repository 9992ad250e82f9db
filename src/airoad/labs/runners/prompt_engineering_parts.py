"""The prompt-engineering runner's helpers: SmolLM2 behind one batched, prefix-cached generation
call, the task cells (arithmetic, sentiment, extraction), scoring with Wilson intervals, the
example table and the two figures."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.llm import json_constrained as jc
from airoad.llm import prompt_engineering as ref

ARITH = "Solve the word problem. Reply with the final number only."
COT = (
    "Solve the word problem. Think step by step, then finish with 'Answer: N' where N is the "
    "final number."
)
SENTIMENT = (
    "Classify the sentiment of the product review. Reply with one word: positive or negative."
)
EXTRACT = (
    'Extract the person from the sentence as JSON with the keys "name" (string), "age" '
    '(integer) and "city" (string). Reply with the JSON object only.'
)
LABELS = ("positive", "negative")
COLOURS = {"arithmetic": "tab:blue", "sentiment": "tab:orange", "extraction": "tab:green"}


@dataclass
class Cell:
    """One task x style: its inputs, true answers, replies, parsed answers and correctness."""

    task: str
    style: str
    inputs: list[str]
    truth: list[Any]
    replies: list[str] = field(default_factory=list)
    answers: list[Any] = field(default_factory=list)
    correct: list[bool] = field(default_factory=list)
    extra: dict[str, float] = field(default_factory=dict)


class SmolLM:
    """SmolLM2 with its tokenizer, stop tokens and the batch size; counts saved prefill."""

    def __init__(self, ctx: RunContext, batch_size: int):
        from airoad.data.models import load_smollm2

        with ctx.step("loading SmolLM2-135M-Instruct"):
            self.model, self.tok = load_smollm2()
        tok = self.tok
        self.eos = tok.eos_token_id
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else self.eos
        text = tok.convert_tokens_to_string
        self.lines = {i for t, i in tok.get_vocab().items() if "\n" in text([t])} | {self.eos}
        self.ctx, self.batch_size = ctx, batch_size
        self.saved_tokens, self.seconds = 0, 0.0

    def replies(
        self,
        messages: Sequence[list[dict]],
        max_new_tokens: int,
        label: str,
        one_line: bool = True,
        temperature: float = 0.0,
        n_samples: int = 1,
        seed: int = 0,
        processor: Callable[[], Any] | None = None,
    ) -> list[list[str]]:
        """Decoded replies, ``[item][sample]``, all items after one cached shared prefix."""
        pairs = [ref.chat_ids(self.tok, m) for m in messages]
        prefix = pairs[0][0]
        assert all(p == prefix for p, _ in pairs), "a cell's items share one prefix"
        start = time.perf_counter()
        cache = ref.prefix_cache(self.model, prefix)
        stops = self.lines if one_line else {self.eos}
        per_batch = max(self.batch_size // n_samples, 1)
        chunks = [pairs[i : i + per_batch] for i in range(0, len(pairs), per_batch)]
        out: list[list[str]] = []
        for c, chunk in enumerate(self.ctx.track(chunks, label)):
            suffixes = [s for _, s in chunk]
            procs = [processor()] if processor else []
            budget = procs[0].budget + 1 if procs else max_new_tokens  # + 1 for the <eos>
            if n_samples == 1 and temperature == 0:
                rows = [[r] for r in ref.generate(self.model, suffixes, budget, self.pad, stops,
                                                  cache, processors=procs)]  # fmt: skip
            else:
                rows = ref.sample_chains(self.model, suffixes, n_samples, budget, self.pad,
                                         temperature, seed + c, stops, cache)  # fmt: skip
            out += [[self.tok.decode(r, skip_special_tokens=True).strip() for r in s] for s in rows]
        self.seconds += time.perf_counter() - start
        self.saved_tokens += len(prefix) * (len(pairs) * n_samples - 1)
        return out


# ---------------------------------------------------------------- the cells


def arithmetic_cells(lm: SmolLM, config: Any) -> tuple[list[Cell], list[list[int | None]]]:
    """Zero-shot, few-shot, chain-of-thought and self-consistency on generated word problems;
    also every self-consistency chain's parsed answer."""
    problems = ref.word_problems(config.n_items, config.difficulty, config.seed)
    shots = [(q, str(a)) for q, a in ref.word_problems(config.k_shot, config.difficulty,
                                                       config.seed + 1)]  # fmt: skip
    questions, truth = [q for q, _ in problems], [a for _, a in problems]
    plain = [ref.chat_messages(ARITH, q) for q in questions]
    few = [ref.chat_messages(ARITH, q, shots) for q in questions]
    cot = [ref.chat_messages(COT, q) for q in questions]
    n, steps = config.answer_tokens, config.cot_tokens
    styles = {
        "zero-shot": lm.replies(plain, n, "arithmetic, zero-shot"),
        "few-shot": lm.replies(few, n, "arithmetic, few-shot"),
        "chain-of-thought": lm.replies(cot, steps, "arithmetic, chain-of-thought", False),
    }
    chains = lm.replies(cot, steps, "arithmetic, self-consistency", False, config.temperature,
                        config.n_samples, config.seed)  # fmt: skip
    votes = [[ref.extract_number(r) for r in item] for item in chains]
    cells = []
    for style, replies in styles.items():
        answers = [ref.extract_number(r[0]) for r in replies]
        cells.append(Cell("arithmetic", style, questions, truth, [r[0] for r in replies], answers))
    voted = [ref.majority_vote(v) for v in votes]
    shown = [" | ".join(item) for item in chains]
    cells.append(Cell("arithmetic", "self-consistency", questions, truth, shown, voted))
    for cell in cells:
        cell.correct = [a == t for a, t in zip(cell.answers, cell.truth)]
    marked = np.mean(["answer" in r.lower() for r in cells[2].replies])
    cells[2].extra["answer_marked"] = float(marked)
    return cells, votes


def _short(review: str, words: int) -> str:
    split = review.split()
    return " ".join(split[:words]) + (" ..." if len(split) > words else "")


def sentiment_cells(lm: SmolLM, config: Any, reviews: tuple) -> list[Cell]:
    """Zero-shot and few-shot (k balanced training reviews) on a seeded test subset."""
    from airoad.labs.kit import subsample

    train, test = reviews
    items = test.iloc[subsample(len(test), config.n_items, config.seed)]
    texts = [_short(r, config.review_words) for r in items.review]
    truth = ["positive" if s == "great" else "negative" for s in items.score]
    rng = np.random.default_rng(config.seed + 2)
    shots = []
    for i in range(config.k_shot):  # alternate the labels so neither dominates the examples
        pool = train[(train.score == "great") == (i % 2 == 0)]
        shots.append((_short(pool.review.iloc[rng.integers(len(pool))], config.review_words),
                      "positive" if i % 2 == 0 else "negative"))  # fmt: skip
    n, cells = config.answer_tokens, []
    for style, examples in (("zero-shot", ()), ("few-shot", shots)):
        messages = [ref.chat_messages(SENTIMENT, t, examples) for t in texts]
        replies = [r[0] for r in lm.replies(messages, n, f"sentiment, {style}")]
        answers = [ref.extract_label(r, LABELS) for r in replies]
        cell = Cell("sentiment", style, texts, truth, replies, answers)
        cell.correct = [a == t for a, t in zip(answers, truth)]
        cells.append(cell)
    positive = float(np.mean([t == "positive" for t in truth]))
    cells[0].extra["majority"] = max(positive, 1.0 - positive)  # always answering one label
    return cells


def extraction_cells(lm: SmolLM, config: Any) -> list[Cell]:
    """Free generation vs JSON-constrained decoding of generated one-sentence biographies."""
    rows = ref.people(config.n_items, config.seed)
    texts, truth = [t for t, _ in rows], [f for _, f in rows]
    messages = [ref.chat_messages(EXTRACT, t) for t in texts]
    with lm.ctx.step("token trie for the JSON decoder"):
        strings = jc.token_strings(lm.tok)
        automaton = jc.schema_automaton(jc.schema_fields(ref.Person))
        transitions = jc.token_transitions(automaton, strings)
        costs = jc.closing_costs(transitions, automaton.accept)

    def processor() -> jc.JsonLogitsProcessor:
        return jc.JsonLogitsProcessor(transitions, costs, automaton.accept, lm.eos,
                                      config.json_tokens)  # fmt: skip

    cells = []
    for style, make in (("free", None), ("constrained", processor)):
        replies = [r[0] for r in lm.replies(messages, config.json_tokens, f"extraction, {style}",
                                            False, processor=make)]  # fmt: skip
        parsed = [ref.parse_json_object(r) for r in replies]
        cell = Cell("extraction", style, texts, truth, replies, parsed)
        cell.correct = [ref.field_accuracy(p, t) == 1.0 for p, t in zip(parsed, truth)]
        cell.extra["parse_rate"] = float(np.mean([p is not None for p in parsed]))
        cell.extra["field_accuracy"] = float(np.mean([ref.field_accuracy(p, t)
                                                      for p, t in zip(parsed, truth)]))  # fmt: skip
        cells.append(cell)
    cells[1].extra["min_tokens"] = float(costs[0])
    return cells


# ---------------------------------------------------------------- scoring and reporting


def accuracy_rows(cells: Sequence[Cell], level: float) -> tuple[list[dict], float]:
    """One row per cell with accuracy and Wilson interval; and our largest difference from
    scipy's Wilson interval."""
    from scipy.stats import binomtest

    rows, worst = [], 0.0
    for cell in cells:
        k, n = int(sum(cell.correct)), len(cell.correct)
        low, high = ref.wilson_interval(k, n, level)
        theirs = binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
        worst = max(worst, abs(low - theirs.low), abs(high - theirs.high))
        row = {"task": cell.task, "style": cell.style, "n": n, "accuracy": k / n}
        json_cols = {c: cell.extra.get(c) for c in ("parse_rate", "field_accuracy")}
        rows.append(row | {"low": low, "high": high} | json_cols)
    return rows, float(worst)


def vote_curve(votes: Sequence[Sequence[int | None]], truth: Sequence[int]) -> list[float]:
    """Accuracy of the majority vote over the first m chains, m = 1 .. n_samples."""
    n = len(votes[0])
    return [float(np.mean([ref.majority_vote(v[:m]) == t for v, t in zip(votes, truth)]))
            for m in range(1, n + 1)]  # fmt: skip


def example_rows(cells: Sequence[Cell], n_examples: int) -> list[dict]:
    """The first replies of every cell, cut to a readable length."""
    rows = []
    for cell in cells:
        for i in range(min(n_examples, len(cell.inputs))):
            answer = cell.answers[i]
            shown = answer.model_dump() if hasattr(answer, "model_dump") else answer
            rows.append({"task": cell.task, "style": cell.style, "input": cell.inputs[i][:90],
                         "reply": cell.replies[i][:160], "parsed": str(shown),
                         "truth": str(cell.truth[i]), "correct": cell.correct[i]})  # fmt: skip
    return rows


def accuracy_figure(rows: Sequence[dict], level: float, ctx: RunContext) -> None:
    """Accuracy per task and style with Wilson error bars."""
    with figure(ctx, "accuracy_by_style", figsize=(9, 4)) as (fig, ax):
        x = np.arange(len(rows))
        acc = np.array([r["accuracy"] for r in rows])
        err = np.array([[a - r["low"], r["high"] - a] for a, r in zip(acc, rows)]).T.clip(0)
        ax.bar(x, acc, yerr=err, capsize=4, color=[COLOURS[r["task"]] for r in rows])
        ax.set_xticks(x, [f"{r['task']}\n{r['style']}" for r in rows], fontsize=7)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(f"accuracy ({level:.0%} Wilson interval)")
        ax.set_title("SmolLM2-135M-Instruct: accuracy by task and prompt style")


def vote_figure(curve: Sequence[float], greedy: float, temperature: float, ctx: RunContext) -> None:
    """Self-consistency: accuracy of the vote against the number of sampled chains."""
    with figure(ctx, "self_consistency_votes", figsize=(5, 3.5)) as (fig, ax):
        m = np.arange(1, len(curve) + 1)
        ax.plot(m, curve, "o-", label=f"majority of m chains (T = {temperature})")
        ax.axhline(greedy, color="gray", ls="--", label="greedy chain-of-thought")
        ax.set_xlabel("sampled chains m")
        ax.set_ylabel("arithmetic accuracy")
        ax.set_xticks(m)
        ax.legend(fontsize=8)
