"""Sparse and dense retrieval from scratch: BM25, MiniLM embeddings, exact top-k, rank fusion,
and the three numbers that score a ranking (recall@k, MRR, nDCG@k).

- Sparse: a document is a bag of words; BM25 weighs each shared word by how rare it is (idf)
  and by how often it occurs in the document, saturating and normalised by length.
- Dense: a document is one unit vector (the masked mean of MiniLM's token states); the score
  is a dot product, i.e. the cosine similarity.
- Hybrid: reciprocal rank fusion adds ``1 / (c + rank)`` over the retrievers' rankings, so
  neither retriever's score scale matters.

BM25's weights depend only on (document, word), so ``fit`` computes them once into a sparse
matrix ``W`` (documents x vocabulary); scoring a batch of queries is one sparse product
``Q @ W.T`` with ``Q`` the queries' word counts (a repeated query word counts twice).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Hashable, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

TOKEN_PATTERN = re.compile(r"(?u)\b\w\w+\b")  # scikit-learn's and bm25s's default words


def tokenize(texts: Sequence[str], stopwords: Collection[str] = ()) -> list[list[str]]:
    """Lower-case each text, keep runs of two or more word characters, drop ``stopwords``.

    ``tokenize(["The KV cache, again"], {"the"})`` -> ``[["kv", "cache", "again"]]``.
    """
    stop = set(stopwords)
    return [[w for w in TOKEN_PATTERN.findall(t.lower()) if w not in stop] for t in texts]


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` best columns of each row of ``scores`` (Q, N), best first: (ids, values), (Q, k).

    ``np.argpartition`` finds the k largest in O(N) per row; only those k are then sorted.
    Equal scores are ordered by column index; which of several tied candidates makes the cut
    at the k-th place is arbitrary.
    """
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part.sort(axis=1)  # ties then come out in index order (the sort below is stable)
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-vals, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(vals, order, axis=1)


class BM25:
    """Okapi BM25 with Lucene's idf (``method="lucene"``, bm25s's default) or BM25+.

    lucene: ``score(q, d) = sum_{w in q} idf(w) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))``,
    ``idf(w) = log(1 + (N - df + 0.5) / (df + 0.5))`` (never negative).
    bm25+: ``idf(w) * (delta + (k1 + 1) * tf / (tf + k1 * (1 - b + b * |d| / avgdl)))`` with
    ``idf(w) = log((N + 1) / df)``: every document, containing ``w`` or not, gets
    ``delta * idf(w)`` (rank_bm25's ``BM25Plus`` and bm25s's ``method="bm25+"``).
    Query words not in the vocabulary are ignored. Fitted: ``vocab_`` (word -> column),
    ``idf_`` (V,), ``doc_len_`` (N,), ``avgdl_``, ``weights_`` (N, V) sparse, ``offset_`` (V,).
    """

    def __init__(
        self, k1: float = 1.5, b: float = 0.75, method: str = "lucene", delta: float = 0.5
    ) -> None:
        if method not in ("lucene", "bm25+"):
            raise ValueError(f"method must be 'lucene' or 'bm25+', got {method!r}")
        self.k1, self.b, self.method, self.delta = k1, b, method, delta

    def fit(self, corpus: Sequence[Sequence[str]]) -> BM25:
        """Index tokenised documents: word counts, idf and the (N, V) matrix of BM25 weights."""
        self.vocab_: dict[str, int] = {}
        cols = np.array([self.vocab_.setdefault(w, len(self.vocab_)) for d in corpus for w in d])
        self.doc_len_ = np.array([len(d) for d in corpus], dtype=np.float64)
        rows = np.repeat(np.arange(len(corpus)), self.doc_len_.astype(np.int64))
        n, v = len(corpus), len(self.vocab_)
        tf = sp.csr_matrix((np.ones(len(cols)), (rows, cols)), shape=(n, v))  # sums repeats
        df = np.bincount(tf.indices, minlength=v)
        self.avgdl_ = float(self.doc_len_.mean()) if n else 0.0
        if self.method == "lucene":
            self.idf_ = np.log1p((n - df + 0.5) / (df + 0.5))
            self.offset_ = np.zeros(v, dtype=np.float32)
            gain = 1.0
        else:
            self.idf_ = np.log((n + 1) / df)
            self.offset_ = (self.delta * self.idf_).astype(np.float32)
            gain = self.k1 + 1.0
        norm = self.k1 * (1 - self.b + self.b * self.doc_len_ / max(self.avgdl_, 1e-12))
        norm = np.repeat(norm, np.diff(tf.indptr))  # one per stored (doc, word) entry
        data = self.idf_[tf.indices] * gain * tf.data / (tf.data + norm)
        self.weights_ = sp.csr_matrix((data, tf.indices, tf.indptr), shape=(n, v))
        self._weights_t = self.weights_.T.tocsr().astype(np.float32)  # (V, N) for Q @ W.T
        return self

    def query_counts(self, queries: Sequence[Sequence[str]]) -> sp.csr_matrix:
        """(Q, V) sparse counts of each query's in-vocabulary words."""
        ids = [[self.vocab_[w] for w in q if w in self.vocab_] for q in queries]
        lens = np.array([len(q) for q in ids], dtype=np.int64)
        rows = np.repeat(np.arange(len(ids)), lens)
        cols = np.fromiter((i for q in ids for i in q), dtype=np.int64, count=int(lens.sum()))
        shape = (len(ids), len(self.vocab_))
        return sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)), shape=shape)

    def scores(self, queries: Sequence[Sequence[str]]) -> np.ndarray:
        """(Q, N) BM25 score of every document for each tokenised query."""
        q = self.query_counts(queries)
        return (q @ self._weights_t).toarray() + (q @ self.offset_)[:, None]

    def search(
        self, queries: Sequence[Sequence[str]], k: int, batch_size: int = 256
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` documents per query, best first: (ids, scores), each (Q, k).

        Only documents sharing a word with the query can score above the rest, so the sparse
        product is searched row by row (``top_k_sparse``) instead of a dense (Q, N) block.
        """
        out = []
        for i in _starts(queries, batch_size):
            q = self.query_counts(queries[i : i + batch_size])
            ids, vals = top_k_sparse((q @ self._weights_t).tocsr(), k)
            out.append((ids, vals + (q @ self.offset_)[:, None]))  # bm25+: delta * idf for all
        return _stack(out, k)


def top_k_sparse(hits: sp.csr_matrix, k: int) -> tuple[np.ndarray, np.ndarray]:
    """``top_k`` of a sparse (Q, N) matrix of non-negative scores whose missing entries are 0:
    each row's stored entries are ranked (``argpartition`` then sort, ties by column), and a row
    with fewer than ``k`` of them is padded with the lowest unlisted columns at score 0."""
    n_q, n = hits.shape
    k = min(k, n)
    ids, vals = np.empty((n_q, k), dtype=np.int64), np.zeros((n_q, k), dtype=hits.dtype)
    for r in range(n_q):
        cols = hits.indices[hits.indptr[r] : hits.indptr[r + 1]]
        v = hits.data[hits.indptr[r] : hits.indptr[r + 1]]
        if len(v) > k:
            pick = np.argpartition(-v, k - 1)[:k]
            cols, v = cols[pick], v[pick]
        order = np.lexsort((cols, -v))
        m = len(order)
        ids[r, :m], vals[r, :m] = cols[order], v[order]
        ids[r, m:] = np.setdiff1d(np.arange(min(n, k + m)), cols)[: k - m]
    return ids, vals


def mean_pool(states: Any, mask: Any) -> Any:
    """Sentence embeddings (B, d) from token states (B, T, d) and the attention mask (B, T):
    the mean over real tokens (padding masked out), scaled to unit length."""
    import torch

    m = mask.unsqueeze(-1).to(states.dtype)
    mean = (states * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(mean, dim=-1)


def encode(
    model: Any, tokenizer: Any, texts: Sequence[str], batch_size: int = 64, max_length: int = 256
) -> np.ndarray:
    """(n, d) float32 unit vectors of ``texts`` through a BERT-style encoder and ``mean_pool``.

    Texts are batched longest first (less padding per batch) and returned in input order.
    """
    import torch

    order = np.argsort([-len(t) for t in texts], kind="stable")
    parts = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            batch = [texts[j] for j in order[i : i + batch_size]]
            enc = tokenizer(
                batch, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            )
            states = model(
                input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]
            ).last_hidden_state
            parts.append(mean_pool(states, enc["attention_mask"]).float().numpy())
    out = np.empty((len(texts), parts[0].shape[1] if parts else 0), dtype=np.float32)
    out[order] = np.concatenate(parts) if parts else out
    return out


def dense_search(
    queries: np.ndarray, docs: np.ndarray, k: int, batch_size: int = 512
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top ``k`` by inner product (cosine for unit vectors): (ids, scores), each (Q, k).

    ``queries`` (Q, d) and ``docs`` (N, d); one matrix product per batch of queries.
    """
    out = [top_k(queries[i : i + batch_size] @ docs.T, k) for i in _starts(queries, batch_size)]
    return _stack(out, k)


def reciprocal_rank_fusion(
    rankings: Sequence[np.ndarray], n_docs: int, k: int, c: float = 60.0
) -> tuple[np.ndarray, np.ndarray]:
    """Fuse rankings (each (Q, m_i) document ids, best first, no repeats within a row) into the
    top ``k``: ``score(d) = sum_i 1 / (c + rank_i(d))`` with ranks from 1, summed only over the
    rankings that contain ``d``. Returns (ids, scores), each (Q, k)."""
    n_q = rankings[0].shape[0]
    fused = np.zeros((n_q, n_docs))
    rows = np.arange(n_q)[:, None]
    for ranking in rankings:
        fused[rows, ranking] += 1.0 / (c + np.arange(1, ranking.shape[1] + 1))
    return top_k(fused, k)


def first_occurrences(labels: Sequence[Hashable]) -> list[Hashable]:
    """``labels`` with repeats dropped, order kept (chunks -> the sections they come from)."""
    return list(dict.fromkeys(labels))


def hits(
    ranked: Sequence[Sequence[Hashable]], gold: Sequence[Collection[Hashable]], k: int
) -> np.ndarray:
    """(Q, k) booleans: is the item at rank i of query q relevant? Short rows pad with False."""
    out = np.zeros((len(ranked), k), dtype=bool)
    for q, (row, rel) in enumerate(zip(ranked, gold, strict=True)):
        out[q, : min(k, len(row))] = [item in rel for item in row[:k]]
    return out


def recall_at_k(
    ranked: Sequence[Sequence[Hashable]], gold: Sequence[Collection[Hashable]], k: int
) -> float:
    """Mean over queries of (relevant items in the top ``k``) / (relevant items).

    ``ranked`` rows hold distinct items, best first; ``gold`` holds each query's relevant set.
    """
    n_rel = np.array([len(g) for g in gold], dtype=np.float64)
    return float(np.mean(hits(ranked, gold, k).sum(1) / n_rel))


def mrr(
    ranked: Sequence[Sequence[Hashable]], gold: Sequence[Collection[Hashable]], k: int
) -> float:
    """Mean reciprocal rank: mean over queries of 1 / (rank of the first relevant item), ranks
    from 1, counted 0 when none is in the top ``k``."""
    h = hits(ranked, gold, k)
    return float(np.mean((h / np.arange(1, k + 1)).max(1)))


def ndcg_at_k(
    ranked: Sequence[Sequence[Hashable]], gold: Sequence[Collection[Hashable]], k: int
) -> float:
    """Mean nDCG@k with binary relevance: DCG = sum_i rel_i / log2(i + 1) over ranks i = 1..k,
    divided by the DCG of an ideal ranking (all relevant items first). A ranking has no ties.
    With 0/1 relevance the linear gain (scikit-learn's) and ``2**rel - 1`` agree."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits(ranked, gold, k) @ discount
    ideal = np.cumsum(discount)[np.minimum([len(g) for g in gold], k) - 1]
    return float(np.mean(dcg / ideal))


def _starts(items: Sequence[Any], size: int) -> range:
    return range(0, len(items), size)


def _stack(parts: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    if not parts:
        return np.zeros((0, k), dtype=np.int64), np.zeros((0, k))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
