"""BM25 queries per second: ours (one sparse product per batch of queries) against bm25s
(one query at a time, its NumPy backend) on the same corpus and the same tokens.

Run from the repository root:  python benchmarks/retrieval_bm25.py [--docs 50000 --queries 2000]
Prints a markdown table and writes it (with the set-up) to benchmarks/results/retrieval_bm25.md.

Two corpora: Austen and Shakespeare sentences (a seeded draw of ``--docs`` documents and
``--queries`` other sentences as queries), and the chunked Python docs + lessons with the
evaluation questions as queries. Both libraries get the same token lists (our ``tokenize``,
bm25s's English stopwords), Lucene BM25 with k1 = 1.5, b = 0.75, and return the top 10.
Indexing and searching are timed separately, ``--repeats`` times each, alternating which goes
first (median); the top-10 scores of the two must agree. Everything runs on one thread (bm25s
is told ``n_threads=1``; numba is not installed, so bm25s uses its NumPy backend).
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

import bm25s
import bm25s.stopwords
import numpy as np
from threadpoolctl import threadpool_limits

from airoad.labs.kit import cpu_timed
from airoad.labs.runners.retrieval_parts import bm25s_index, sentence_split
from airoad.rag.retrieval import BM25, tokenize

RESULTS = Path(__file__).resolve().parent / "results" / "retrieval_bm25.md"
K = 10


def _corpora(n_docs: int, n_queries: int) -> dict[str, tuple[list, list]]:
    """name -> (document tokens, query tokens)."""
    from airoad.rag.corpus import load_corpus, load_questions

    stop = bm25s.stopwords.STOPWORDS_EN
    docs, queries = sentence_split(n_docs, n_queries, seed=0)
    out = {f"{n_docs:,} sentences": (tokenize(docs, stop), tokenize(queries, stop))}
    try:
        chunks, questions = load_corpus(), load_questions()
    except OSError:  # the question set is not written yet
        chunks, questions = [], []
    if questions:
        texts = [f"{c.title}\n{c.text}" for c in chunks]
        name = f"{len(chunks):,} docs chunks"
        out[name] = (tokenize(texts, stop), tokenize([q.question for q in questions], stop))
    return out


def _race(docs: list, queries: list, repeats: int) -> dict[str, dict]:
    """Median wall and CPU seconds of indexing and of searching, per library, and top-k scores."""
    runs = {
        "ours": (lambda: BM25().fit(docs), lambda m: m.search(queries, K)[1]),
        "bm25s": (
            lambda: bm25s_index(docs, 1.5, 0.75),
            lambda m: m.retrieve(queries, k=K, show_progress=False, n_threads=1)[1],
        ),
    }
    times = {name: {"index": [], "search": []} for name in runs}
    top = {}
    for i in range(repeats):
        order = list(runs.items())
        for name, (build, search) in order if i % 2 == 0 else order[::-1]:
            model, cpu, wall = cpu_timed(build)
            times[name]["index"].append((wall, cpu))
            top[name], cpu, wall = cpu_timed(lambda s=search, m=model: s(m))
            times[name]["search"].append((wall, cpu))
            print(f"  {name}: search {wall:.2f} s wall, {cpu:.2f} s CPU", flush=True)
    return {
        name: {
            f"{part}_{kind}": statistics.median(x[j] for x in t[part])
            for part in ("index", "search")
            for j, kind in enumerate(("wall", "cpu"))
        }
        | {"top": top[name]}
        for name, t in times.items()
    }


def _table(results: dict[str, tuple[dict, int, int]]) -> str:
    lines = [
        "| corpus | library | docs | queries | index s (CPU) | search s (CPU) | queries/s "
        "(wall) | queries/s (CPU) | ours / bm25s (CPU) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for corpus, (rows, n_docs, n_q) in results.items():
        for name, r in rows.items():
            ratio = rows["bm25s"]["search_cpu"] / r["search_cpu"]
            lines.append(
                f"| {corpus} | {name} | {n_docs:,} | {n_q:,} | {r['index_wall']:.2f} "
                f"({r['index_cpu']:.2f}) | {r['search_wall']:.3f} ({r['search_cpu']:.3f}) | "
                f"{n_q / r['search_wall']:,.0f} | {n_q / r['search_cpu']:,.0f} | "
                f"{ratio:.1f}x |"
            )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument("--queries", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    start, load0 = time.perf_counter(), os.getloadavg()[0]
    results, verdicts = {}, []
    with threadpool_limits(1):
        for corpus, (docs, queries) in _corpora(args.docs, args.queries).items():
            print(corpus, flush=True)
            rows = _race(docs, queries, args.repeats)
            results[corpus] = (rows, len(docs), len(queries))
            diff = float(np.abs(rows["ours"]["top"] - rows["bm25s"]["top"]).max())
            speed = rows["bm25s"]["search_cpu"] / rows["ours"]["search_cpu"]
            verdicts.append(
                f"{corpus}: ours answers {speed:.1f}x as many queries per CPU second as bm25s "
                f"(target at least 1x: {'met' if speed >= 1 else 'missed'}); top-{K} scores "
                f"agree to {diff:.1e}."
            )
    seconds, load1 = time.perf_counter() - start, os.getloadavg()[0]
    table, verdict = _table(results), " ".join(verdicts)
    print(f"\n{table}\n\n{verdict}")
    setup = (
        f"{date.today()}, Python {sys.version.split()[0]}, bm25s {bm25s.__version__}, NumPy "
        f"{np.__version__}, {platform.machine()}, {os.cpu_count()} cores shared with other jobs "
        f"(1-minute load average {load0:.1f} at the start, {load1:.1f} at the end); one thread; "
        f"median of {args.repeats} alternating runs; {seconds / 60:.1f} minutes in all."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        f"# BM25 search speed: ours against bm25s\n\n{setup}\n\n"
        "`python benchmarks/retrieval_bm25.py`\n\n"
        "Both index the same token lists (lower-cased words of 2+ characters, bm25s's English "
        "stopwords removed) with Lucene BM25 (k1 1.5, b 0.75) and return the top 10 per query. "
        "Ours precomputes every (document, word) weight into a sparse matrix and scores a batch "
        "of queries with one sparse product, then `np.argpartition`; bm25s (also eager) sums "
        "the stored weights of each query's words one query at a time. The CPU columns are the "
        "like-for-like ones on a shared machine.\n\n"
        f"{table}\n\n{verdict}\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
