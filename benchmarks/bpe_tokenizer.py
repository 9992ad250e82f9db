"""Training time of three byte-level BPE trainers on the same 1 MB of Shakespeare: ours
(incremental pair counts), tokenizers' Rust `BpeTrainer`, and a naive trainer that recounts
every pair before each merge.

Run from the repository root:  python benchmarks/bpe_tokenizer.py [--chars 1000000 --vocab 1024]
Prints a markdown table and writes it (with the set-up) to benchmarks/results/bpe_tokenizer.md.

All three start from the same text (the works joined in title order, the first ``--chars``
characters), split it with GPT-2's pre-tokenisation regex, count each distinct pre-token once
with its frequency, and learn merges up to ``--vocab`` tokens with min_frequency 2. Each timing
covers the whole job, pre-tokenisation included. Ours and tokenizers' run ``--repeats`` times,
alternately (median); the naive trainer runs once. The three merge lists must be equal.
tokenizers uses its own thread pool (every core); ours and the naive one use one. A fourth row
feeds tokenizers the same text line by line, its fastest way in (merges nearly the same).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

import tokenizers
from tokenizers import ByteLevelBPETokenizer

from airoad.data import load
from airoad.labs.kit import cpu_timed
from airoad.labs.runners.bpe_tokenizer_parts import hf_bpe, hf_merges
from airoad.transformer.bpe_tokenizer import train_bpe, train_bpe_naive

RESULTS = Path(__file__).resolve().parent / "results" / "bpe_tokenizer.md"


def _text(chars: int) -> str:
    works = load("shakespeare")
    return "\n".join(works[name] for name in sorted(works))[:chars]


def _hf_lines(text: str, vocab: int):
    """tokenizers' fastest way in: one item per line, pre-tokenised on every core. Not quite
    the same job: a pre-token can no longer span a line break ('\\n ' becomes '\\n', ' ')."""
    tok = ByteLevelBPETokenizer()
    lines = text.splitlines(keepends=True)
    tok.train_from_iterator(lines, vocab_size=vocab, min_frequency=2, show_progress=False)
    return tok


def _race(text: str, vocab: int, repeats: int) -> dict[str, dict]:
    """Wall and CPU seconds of each trainer (median over repeats) and its merges."""
    runs = {
        "ours (incremental, Python)": lambda: train_bpe(text, vocab).merges,
        "tokenizers BpeTrainer (Rust)": lambda: hf_merges(hf_bpe(text, vocab, 2)),
        "tokenizers, fed line by line (parallel)": lambda: hf_merges(_hf_lines(text, vocab)),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in runs}
    merges = {}
    for i in range(repeats):
        order = list(runs.items())
        for name, fn in order if i % 2 == 0 else order[::-1]:
            merges[name], cpu, wall = cpu_timed(fn)
            times[name].append((wall, cpu))
            print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    name = "naive (recount all pairs per merge, Python)"
    merges[name], cpu, wall = cpu_timed(lambda: train_bpe_naive(text, vocab).merges)
    times[name] = [(wall, cpu)]
    print(f"{name}: {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return {
        name: {
            "wall": statistics.median(w for w, _ in t),
            "cpu": statistics.median(c for _, c in t),
            "merges": merges[name],
        }
        for name, t in times.items()
    }


def _prefix(a: list, b: list) -> int:
    """How many leading merges two lists share."""
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def _table(rows: dict[str, dict]) -> str:
    ours = rows["ours (incremental, Python)"]
    lines = [
        "| trainer | wall s | CPU s | wall / ours | CPU / ours | merges |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['wall']:.2f} | {r['cpu']:.2f} | {r['wall'] / ours['wall']:.2f} | "
            f"{r['cpu'] / ours['cpu']:.2f} | {len(r['merges'])} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chars", type=int, default=1_000_000)
    parser.add_argument("--vocab", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    text = _text(args.chars)
    start, load0 = time.perf_counter(), os.getloadavg()[0]
    rows = _race(text, args.vocab, args.repeats)
    seconds, load1 = time.perf_counter() - start, os.getloadavg()[0]
    names = list(rows)
    ours, rust, lines, naive = (rows[n] for n in names)
    same = all(rows[n]["merges"] == ours["merges"] for n in (names[1], names[3]))
    same_lines = sum(a == b for a, b in zip(lines["merges"], ours["merges"]))
    table = _table(rows)
    slower = ours["wall"] / rust["wall"]
    faster = naive["wall"] / ours["wall"]
    verdict = (
        f"Ours is {slower:.1f}x the Rust trainer's wall time (goal: within 20x: "
        f"{'met' if slower <= 20 else 'missed'}) and {faster:.1f}x faster than the naive "
        f"trainer (goal: at least 20x: {'met' if faster >= 20 else 'missed'}). "
        f"CPU time: {ours['cpu'] / rust['cpu']:.1f}x the Rust trainer's. "
        f"Ours, the Rust trainer and the naive one learned the same {len(ours['merges'])} "
        f"merges: {'yes' if same else 'NO'}. Fed line by line, tokenizers took "
        f"{lines['wall']:.2f} s ({ours['wall'] / lines['wall']:.1f}x faster than ours) and "
        f"agreed with the others on the first {_prefix(lines['merges'], ours['merges'])} "
        f"merges ({same_lines} of {len(ours['merges'])} at the same rank)."
    )
    print(f"\n{table}\n\n{verdict}")
    setup = (
        f"{date.today()}, Python {sys.version.split()[0]}, tokenizers {tokenizers.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs (1-minute load "
        f"average {load0:.1f} at the start, {load1:.1f} at the end); {len(text):,} characters "
        f"({len(text.encode('utf-8')):,} bytes) of Shakespeare, vocabulary {args.vocab}, "
        f"min_frequency 2; median of {args.repeats} alternating runs for ours and tokenizers' two ways in, "
        f"one run of the naive trainer; {seconds / 60:.1f} minutes in all."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        f"# BPE training benchmark\n\n{setup}\n\n`python benchmarks/bpe_tokenizer.py`\n\n"
        "Each time covers pre-tokenisation (GPT-2's regex), word de-duplication and every merge. "
        "tokenizers runs on its own thread pool (all cores), ours and the naive trainer on one "
        "thread, so the CPU column is the like-for-like one.\n\n"
        f"{table}\n\n{verdict}\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
