"""Parts of the retrieval runner: MiniLM embeddings kept in the shared artifact cache, the
question set scored per retriever (ours and bm25s side by side), the FAISS index sweeps
against exact search, and the two figures.

Embeddings are stored by a hash of each text they encode, so the Austen and Shakespeare
sentences and the chunked corpus are embedded once per machine, then loaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from airoad.data.models import MINILM, load_minilm_encoder
from airoad.errors import AiroadError
from airoad.labs import artifacts
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, timed
from airoad.rag import retrieval as ref

LAB = "retrieval"
BLOCK = 512  # texts per progress step while embedding


# ---------------------------------------------------------------- embeddings


def embeddings(
    name: str, texts: Sequence[str], batch_size: int, ctx: RunContext, encoder: list
) -> np.ndarray:
    """(n, 384) MiniLM unit vectors of ``texts``. The cache entry ``name`` maps a hash of each
    text to its vector, so only texts never embedded before go through the model (a changed
    lesson re-embeds its own chunks, not the corpus). ``encoder`` is a one-slot list holding the
    loaded (model, tokenizer), or nothing until the model is needed."""
    key = {"model": MINILM, "max_length": 256, "store": name}
    hashes = np.array([hashlib.sha1(t.encode()).hexdigest() for t in texts])
    found = artifacts.lookup(LAB, key, name)
    known, vectors = np.array([], dtype=hashes.dtype), np.zeros((0, 384), np.float32)
    if found is not None:
        known, vectors = np.load(found / "hashes.npy"), np.load(found / "embeddings.npy")
    row = {h: i for i, h in enumerate(known)}
    missing = sorted({i for i, h in enumerate(hashes) if h not in row})
    if missing:
        new = encode([texts[i] for i in missing], batch_size, ctx, encoder, f"embedding {name}")
        fresh = hashes[missing]
        keep = np.unique(fresh, return_index=True)[1]  # a repeated text is stored once
        known, vectors = np.concatenate([known, fresh[keep]]), np.concatenate([vectors, new[keep]])
        row = {h: i for i, h in enumerate(known)}

        def write(folder: Path) -> None:
            np.save(folder / "hashes.npy", known)
            np.save(folder / "embeddings.npy", vectors)

        artifacts.save(LAB, key, name, write)
    return vectors[[row[h] for h in hashes]]


def encode(
    texts: Sequence[str], batch_size: int, ctx: RunContext, encoder: list, what: str
) -> np.ndarray:
    """``ref.encode`` in blocks, with a progress bar; loads MiniLM on first use."""
    if not encoder:
        encoder.append(load_minilm_encoder())
    model, tok = encoder[0]
    blocks = range(0, len(texts), BLOCK)
    return np.concatenate(
        [ref.encode(model, tok, texts[i : i + BLOCK], batch_size) for i in ctx.track(blocks, what)]
    )


# ---------------------------------------------------------------- the question set


def sample_chunks(chunks: list, questions: list, n: int, seed: int) -> list:
    """Every chunk (n = 0), or the chunks of the questions' gold sections plus a seeded sample
    of the other chunks, n in all, in corpus order."""
    if n <= 0 or n >= len(chunks):
        return chunks
    gold = {g for q in questions for g in q.gold}
    keep = [i for i, c in enumerate(chunks) if c.section in gold]
    rest = np.array([i for i, c in enumerate(chunks) if c.section not in gold])
    extra = np.random.default_rng(seed).permutation(rest)[: max(n - len(keep), 0)]
    return [chunks[i] for i in sorted(keep + extra.tolist())]


def ranked_sections(ids: np.ndarray, sections: np.ndarray) -> list[list[str]]:
    """Each query's chunk ranking as a ranking of distinct sections (first chunk counts)."""
    return [ref.first_occurrences(sections[row].tolist()) for row in ids]


def scores(ranked: list[list[str]], gold: list[set[str]], k: int) -> dict[str, float]:
    """recall@1, recall@5, recall@k, MRR@k and nDCG@k of section rankings."""
    return {
        "recall_at_1": ref.recall_at_k(ranked, gold, 1),
        "recall_at_5": ref.recall_at_k(ranked, gold, 5),
        "recall_at_k": ref.recall_at_k(ranked, gold, k),
        "mrr": ref.mrr(ranked, gold, k),
        "ndcg_at_k": ref.ndcg_at_k(ranked, gold, k),
    }


def sklearn_ndcg(ranked: list[list[str]], gold: list[set[str]], k: int) -> float:
    """scikit-learn's ndcg_score on the same rankings: 0/1 relevance over every section named,
    the ranking turned into descending scores (unranked sections score lowest)."""
    from sklearn.metrics import ndcg_score

    names = sorted({s for row in ranked for s in row} | {s for g in gold for s in g})
    col = {s: i for i, s in enumerate(names)}
    y_true, y_score = np.zeros((len(ranked), len(names))), np.full((len(ranked), len(names)), -1.0)
    for q, (row, rel) in enumerate(zip(ranked, gold, strict=True)):
        y_true[q, [col[s] for s in rel]] = 1.0
        y_score[q, [col[s] for s in row]] = np.arange(len(row), 0, -1)
    return float(ndcg_score(y_true, y_score, k=k))


def bm25s_index(tokens: list[list[str]], k1: float, b: float) -> Any:
    """The library's BM25 (bm25s, Lucene variant) on the same tokens."""
    import bm25s

    lib = bm25s.BM25(k1=k1, b=b)
    lib.index(tokens, show_progress=False)
    return lib


def bm25s_search(lib: Any, queries: list[list[str]], k: int) -> np.ndarray:
    """bm25s's top-k ids (a query with no known word gets an all-zero ranking, as in ours)."""
    return np.asarray(lib.retrieve(queries, k=k, show_progress=False, n_threads=1)[0])


def subsets(questions: list) -> dict[str, np.ndarray]:
    """Masks of the question groups the table reports (origins only when both are present)."""
    origin = np.array([q.origin for q in questions])
    hand_para = (origin == "hand") & np.array([q.paraphrase for q in questions])
    groups = {"all": np.ones(len(questions), bool)}
    if len(set(origin)) > 1:
        groups |= {"hand": origin == "hand", "synthetic": origin == "synthetic"}
    return groups | {
        "hand, paraphrased": hand_para,
        "hand, literal": (origin == "hand") & ~hand_para,
    }


def quality_rows(
    rankings: dict[str, list[list[str]]], gold: list[set[str]], questions: list, k: int
) -> list[dict]:
    """One row per (retriever, question group) with its ranking scores."""
    rows = []
    for group, mask in subsets(questions).items():
        if mask.any():
            idx = np.flatnonzero(mask)
            for name, ranked in rankings.items():
                sub = scores([ranked[i] for i in idx], [gold[i] for i in idx], k)
                overlap = float(np.mean([questions[i].overlap for i in idx]))
                rows.append({"retriever": name, "questions": group, "n": len(idx)} | sub)
                rows[-1]["word_overlap"] = overlap  # question words found in the gold passage
    return rows


def bm25_race(
    ours: ref.BM25, lib: Any, queries: list[list[str]], k: int, repeats: int = 3
) -> dict[str, float]:
    """Queries per second of our batched search and bm25s's retrieve (best of ``repeats``)."""
    ours_s = min(timed(ours.search, queries, k)[1] for _ in range(repeats))
    lib_s = min(
        timed(lambda: lib.retrieve(queries, k=k, show_progress=False, n_threads=1))[1]
        for _ in range(repeats)
    )
    return {"bm25_qps": len(queries) / ours_s, "bm25s_qps": len(queries) / lib_s}


# ---------------------------------------------------------------- FAISS sweeps


def recall_vs_exact(ids: np.ndarray, exact: np.ndarray) -> float:
    """Mean share of the exact top-k that an approximate top-k found."""
    k = exact.shape[1]
    return float(np.mean([len(np.intersect1d(a, e)) / k for a, e in zip(ids, exact, strict=True)]))


def per_query_ms(search: Callable[[], Any], n_queries: int, repeats: int = 2) -> tuple[Any, float]:
    """Run ``search`` (all queries in one call); its result and milliseconds per query."""
    runs = [timed(search) for _ in range(repeats)]
    return runs[0][0], 1000 * min(s for _, s in runs) / n_queries


def faiss_rows(docs: np.ndarray, queries: np.ndarray, exact: np.ndarray, config: Any) -> list[dict]:
    """Flat, IVF (one row per nprobe) and HNSW (one row per efSearch): recall@k against exact
    search and latency, all on one thread."""
    import faiss

    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # latency per query on one core, as for exact search
    try:
        return _faiss_rows(faiss, docs, queries, exact, config)
    finally:
        faiss.omp_set_num_threads(threads)


def _faiss_rows(
    faiss: Any, docs: np.ndarray, queries: np.ndarray, exact: np.ndarray, config: Any
) -> list[dict]:
    d, k, rows = docs.shape[1], config.k, []
    flat = faiss.IndexFlatIP(d)
    flat.add(docs)
    (_, ids), ms = per_query_ms(lambda: flat.search(queries, k), len(queries))
    rows.append({"index": "flat", "knob": 0, "recall": recall_vs_exact(ids, exact), "ms": ms})

    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, config.nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.seed = config.seed  # k-means initialisation of the coarse centroids
    (_, build) = timed(lambda: (ivf.train(docs), ivf.add(docs)))
    for nprobe in config.nprobes:
        ivf.nprobe = nprobe
        (_, ids), ms = per_query_ms(lambda: ivf.search(queries, k), len(queries))
        rows.append(
            {
                "index": "ivf",
                "knob": nprobe,
                "recall": recall_vs_exact(ids, exact),
                "ms": ms,
                "build_s": build,
            }
        )

    hnsw = faiss.IndexHNSWFlat(d, config.hnsw_m, faiss.METRIC_INNER_PRODUCT)
    hnsw.hnsw.efConstruction = config.ef_construction
    (_, build) = timed(hnsw.add, docs)
    for ef in config.ef_searches:
        hnsw.hnsw.efSearch = ef
        (_, ids), ms = per_query_ms(lambda: hnsw.search(queries, k), len(queries))
        rows.append(
            {
                "index": "hnsw",
                "knob": ef,
                "recall": recall_vs_exact(ids, exact),
                "ms": ms,
                "build_s": build,
            }
        )
    return rows


def fastest_at(rows: list[dict], exact_ms: float, target: float) -> str:
    """Which approximate setting reaches ``target`` recall soonest, against exact search."""
    fast = [r for r in rows if r["index"] != "flat" and r["recall"] >= target]
    if not fast:
        return f"no IVF or HNSW setting reached recall {target}"
    r = min(fast, key=lambda r: r["ms"])
    ratio = exact_ms / r["ms"]
    than = f"{ratio:.1f}x faster than" if ratio >= 1 else f"{1 / ratio:.1f}x slower than"
    knob = "nprobe" if r["index"] == "ivf" else "efSearch"
    return (
        f"the fastest setting with recall >= {target} is {r['index']} ({knob} {r['knob']}, "
        f"recall {r['recall']:.3f}) at {r['ms']:.3f} ms, {than} exact search"
    )


def sentence_split(n_docs: int, n_queries: int, seed: int) -> tuple[list[str], list[str]]:
    """A seeded draw of distinct Austen + Shakespeare sentences: (documents, queries)."""
    from airoad.labs.runners.ner_parts import sentences

    pool = sorted({s for _, s in sentences()})
    if n_docs + n_queries > len(pool):
        raise AiroadError(
            f"n_sentences + n_queries = {n_docs + n_queries} is more than the {len(pool)} "
            f"distinct sentences: lower one of them with --set"
        )
    pick = np.random.default_rng(seed).permutation(len(pool))[: n_docs + n_queries]
    chosen = [pool[i] for i in pick]
    return chosen[:n_docs], chosen[n_docs:]


# ---------------------------------------------------------------- figures


def ann_figure(rows: list[dict], exact_ms: float, config: Any, ctx: RunContext) -> None:
    """Recall@k against exact search vs milliseconds per query, one curve per index."""
    with figure(ctx, "ann_tradeoff", figsize=(7, 4.5)) as (_, ax):
        ax.axvline(exact_ms, color="grey", ls=":", label=f"exact NumPy top-k ({exact_ms:.2f} ms)")
        for name, marker, knob in (("flat", "s", ""), ("ivf", "o", "nprobe"), ("hnsw", "^", "ef")):
            sub = [r for r in rows if r["index"] == name]
            ax.plot([r["ms"] for r in sub], [r["recall"] for r in sub], marker=marker, label=name)
            for r in sub[1:] if knob else []:
                ax.annotate(
                    f"{knob}={r['knob']}",
                    (r["ms"], r["recall"]),
                    fontsize=7,
                    xytext=(3, -9),
                    textcoords="offset points",
                )
        ax.set(
            xscale="log",
            xlabel="milliseconds per query (one thread, log scale)",
            ylabel=f"recall@{config.k} against exact search",
            title=f"{config.n_sentences} sentences, {config.n_queries} query sentences",
        )
        ax.legend(loc="lower right", fontsize=8)


def quality_figure(rows: list[dict], k: int, ctx: RunContext) -> None:
    """recall@k and nDCG@k of each retriever on each question group."""
    groups = list(dict.fromkeys(r["questions"] for r in rows))
    names = list(dict.fromkeys(r["retriever"] for r in rows))
    n = {r["questions"]: r["n"] for r in rows}
    labels = [f"{g.replace(', ', chr(10))}\n(n = {n[g]})" for g in groups]
    with figure(ctx, "retriever_quality", 1, 2, figsize=(10, 4), sharey=True) as (_, axes):
        for ax, metric in zip(axes, ("recall_at_k", "ndcg_at_k"), strict=True):
            width = 0.8 / len(names)
            for j, name in enumerate(names):
                vals = [
                    next(r[metric] for r in rows if r["retriever"] == name and r["questions"] == g)
                    for g in groups
                ]
                ax.bar(np.arange(len(groups)) + j * width, vals, width, label=name)
            ax.set_xticks(np.arange(len(groups)) + 0.4 - width / 2, labels, fontsize=8)
            ax.set(title=metric.replace("_at_k", f"@{k}"), ylim=(0, 1.1))
        axes[1].legend(fontsize=8, loc="upper right", ncols=3)
