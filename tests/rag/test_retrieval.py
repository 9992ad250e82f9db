"""Grader for retrieval: tokenisation and BM25 scores against bm25s and rank_bm25, exact top-k
and dense search against FAISS's flat index, mean pooling against torch's EmbeddingBag
mean, reciprocal rank fusion against its formula, and recall@k, MRR and
nDCG@k against scikit-learn on tiny corpora."""

from __future__ import annotations

import bm25s
import faiss
import numpy as np
import pytest
import rank_bm25
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import ndcg_score

REFERENCE = "airoad.rag.retrieval"

FAST = settings(max_examples=20, deadline=None)
TEXTS = [
    "The cat sat on the mat, and the cat slept.",
    "A dog chased the cat across the yard.",
    "Birds sing in the early morning; the dog barks.",
    "Python lists are mutable sequences of items.",
    "Tuples are immutable sequences in Python.",
    "A dictionary maps hashable keys to values.",
    "The KV cache keeps keys and values of earlier tokens.",
]
QUERIES = ["cat dog", "python sequences sequences", "keys values cache", "morning zebra"]
WORDS = st.sampled_from(["aa", "bb", "cc", "dd", "ee", "ff", "gg"])
CORPORA = st.lists(st.lists(WORDS, min_size=1, max_size=12), min_size=2, max_size=12)
QUERY_LISTS = st.lists(st.lists(WORDS, min_size=1, max_size=4), min_size=1, max_size=4)


def _bm25s_scores(corpus, queries, **kw) -> np.ndarray:
    model = bm25s.BM25(**kw)
    model.index(corpus, show_progress=False)
    return np.stack([model.get_scores(q) for q in queries])


def test_tokenize_matches_bm25s(impl):
    """tokenize lower-cases, keeps words of 2+ word characters and drops stopwords, as bm25s."""
    stop = ["the", "a", "and", "of", "in", "to"]
    theirs = bm25s.tokenize(TEXTS, stopwords=stop, return_ids=False, show_progress=False)
    assert impl.tokenize(TEXTS, stop) == theirs, "tokens differ from bm25s.tokenize"


@FAST
@given(corpus=CORPORA, queries=QUERY_LISTS)
def test_bm25_lucene_scores_equal_bm25s(impl, corpus, queries):
    """BM25 (lucene idf, k1=1.5, b=0.75) scores every document as bm25s's default does."""
    ours = impl.BM25().fit(corpus).scores(queries)
    np.testing.assert_allclose(
        ours, _bm25s_scores(corpus, queries), rtol=1e-5, atol=1e-6, err_msg="!= bm25s lucene"
    )


@FAST
@given(corpus=CORPORA, queries=QUERY_LISTS, k1=st.floats(0.5, 2.0), b=st.floats(0.0, 1.0))
def test_bm25_plus_scores_equal_rank_bm25_and_bm25s(impl, corpus, queries, k1, b):
    """BM25+ (idf log((N+1)/df), delta for absent words) equals rank_bm25.BM25Plus and bm25s."""
    ours = impl.BM25(k1=k1, b=b, method="bm25+", delta=1.0).fit(corpus).scores(queries)
    lib = rank_bm25.BM25Plus(corpus, k1=k1, b=b, delta=1.0)
    theirs = np.stack([lib.get_scores(q) for q in queries])
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-6, err_msg="!= rank_bm25 BM25+")
    theirs = _bm25s_scores(corpus, queries, k1=k1, b=b, method="bm25+", delta=1.0)
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5, err_msg="!= bm25s bm25+")


def test_bm25_search_matches_bm25s_retrieve_on_text(impl):
    """BM25.search returns bm25s's top-k scores, best first, skipping unknown query words."""
    corpus, queries = impl.tokenize(TEXTS), impl.tokenize(QUERIES)
    ids, scores = impl.BM25().fit(corpus).search(queries, k=3)
    model = bm25s.BM25()
    model.index(corpus, show_progress=False)
    _, theirs = model.retrieve(queries, k=3, show_progress=False)
    assert ids.shape == scores.shape == (len(QUERIES), 3)
    np.testing.assert_allclose(scores, theirs, rtol=1e-5, err_msg="top-k scores != bm25s's")
    full = _bm25s_scores(corpus, queries)
    np.testing.assert_allclose(np.take_along_axis(full, ids, 1), scores, rtol=1e-5)


@FAST
@given(seed=st.integers(0, 10_000), k=st.integers(1, 9))
def test_top_k_picks_the_largest_in_order(impl, seed, k):
    """top_k returns each row's k largest scores, best first, with their column ids."""
    scores = np.random.default_rng(seed).normal(size=(3, 9))
    ids, vals = impl.top_k(scores, k)
    want = np.argsort(-scores, axis=1)[:, :k]
    np.testing.assert_array_equal(ids, want, err_msg="ids are not the k best, best first")
    np.testing.assert_array_equal(vals, np.take_along_axis(scores, want, 1))


def test_dense_search_equals_faiss_flat(impl):
    """dense_search gives FAISS IndexFlatIP's exact neighbours and inner products."""
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(200, 16)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    queries = docs[:7] + 0.3 * rng.normal(size=(7, 16)).astype(np.float32)
    index = faiss.IndexFlatIP(16)
    index.add(docs)
    want_s, want_i = index.search(queries, 5)
    ids, scores = impl.dense_search(queries, docs, k=5, batch_size=3)
    np.testing.assert_array_equal(ids, want_i, err_msg="neighbours differ from FAISS flat")
    np.testing.assert_allclose(scores, want_s, rtol=1e-5, atol=1e-6)


def test_mean_pool_equals_embedding_bag_mean_then_unit_norm(impl):
    """mean_pool is torch's EmbeddingBag mean over unmasked tokens, scaled to unit length."""
    torch.manual_seed(0)
    states = torch.randn(3, 5, 8, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]])
    flat = torch.nonzero(mask.reshape(-1)).squeeze(1)  # positions of real tokens, row by row
    offsets = torch.cat([torch.zeros(1, dtype=torch.long), mask.sum(1).cumsum(0)[:-1]])
    mean = torch.nn.functional.embedding_bag(flat, states.reshape(15, 8), offsets, mode="mean")
    want = mean / torch.linalg.vector_norm(mean, dim=1, keepdim=True)
    ours = impl.mean_pool(states, mask)
    torch.testing.assert_close(ours, want, rtol=1e-12, atol=1e-12)
    g_ours, g_want = (torch.autograd.grad(x[:, 0].sum(), states)[0] for x in (ours, want))
    torch.testing.assert_close(g_ours, g_want, rtol=1e-10, atol=1e-12)
    assert g_ours[1, 2:].abs().max() == 0, "padding positions must get no gradient"


def test_rrf_matches_its_formula(impl):
    """reciprocal_rank_fusion sums 1 / (c + rank) over the rankings that contain a document."""
    rng = np.random.default_rng(1)
    rankings = [np.stack([rng.permutation(20)[:m] for _ in range(4)]) for m in (6, 9)]
    ids, scores = impl.reciprocal_rank_fusion(rankings, n_docs=20, k=5, c=10.0)
    for q in range(4):
        fused: dict[int, float] = {}
        for r in rankings:
            for rank, doc in enumerate(r[q], start=1):
                fused[int(doc)] = fused.get(int(doc), 0.0) + 1.0 / (10.0 + rank)
        best = sorted(fused.values(), reverse=True)[:5]
        np.testing.assert_allclose(scores[q], best, err_msg=f"fused scores of query {q}")
        np.testing.assert_allclose([fused[int(d)] for d in ids[q]], scores[q])


def _ranked_and_gold(seed: int, n_q: int = 5, n_items: int = 12, depth: int = 8):
    rng = np.random.default_rng(seed)
    ranked = [list(rng.permutation(n_items)[:depth]) for _ in range(n_q)]
    gold = [set(rng.choice(n_items, rng.integers(1, 4), replace=False)) for _ in range(n_q)]
    return ranked, gold


@FAST
@given(seed=st.integers(0, 10_000), k=st.integers(1, 8))
def test_ndcg_equals_sklearn(impl, seed, k):
    """ndcg_at_k equals sklearn.metrics.ndcg_score with 0/1 relevance and the ranking as scores."""
    ranked, gold = _ranked_and_gold(seed)
    y_true = np.array([[i in g for i in range(12)] for g in gold], dtype=float)
    y_score = np.full((len(ranked), 12), -1.0)  # unretrieved items rank last
    for q, row in enumerate(ranked):
        y_score[q, row] = np.arange(len(row), 0, -1)
    want = ndcg_score(y_true, y_score, k=k)
    assert impl.ndcg_at_k(ranked, gold, k) == pytest.approx(want, abs=1e-12)


@FAST
@given(seed=st.integers(0, 10_000), k=st.integers(1, 8))
def test_recall_and_mrr_by_their_definitions(impl, seed, k):
    """recall@k is found / relevant; MRR is 1 / rank of the first relevant item (0 if none)."""
    ranked, gold = _ranked_and_gold(seed)
    recall = np.mean([len(set(r[:k]) & g) / len(g) for r, g in zip(ranked, gold, strict=True)])
    first = [
        next((i + 1 for i, x in enumerate(r[:k]) if x in g), None)
        for r, g in zip(ranked, gold, strict=True)
    ]
    rr = np.mean([1.0 / f if f else 0.0 for f in first])
    assert impl.recall_at_k(ranked, gold, k) == pytest.approx(recall, abs=1e-12)
    assert impl.mrr(ranked, gold, k) == pytest.approx(rr, abs=1e-12)


def test_first_occurrences_maps_chunks_to_sections(impl):
    """first_occurrences keeps the first copy of each label, in order (chunk ranks -> sections)."""
    assert impl.first_occurrences(["b", "a", "b", "c", "a"]) == ["b", "a", "c"]


def _tiny_bert():
    """A seeded 2-layer BertModel and a word-level fast tokenizer over TEXTS' words."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    words = sorted({w for t in TEXTS for w in t.lower().replace(",", " ").split()})
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *words])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
    )
    return BertModel(config).eval(), fast


def test_encode_batches_and_unpads_like_one_text_at_a_time(impl):
    """encode returns unit vectors in input order, equal to encoding each text alone (no pads)."""
    model, tok = _tiny_bert()
    texts = [t.lower() for t in TEXTS]
    ours = impl.encode(model, tok, texts, batch_size=3)
    with torch.no_grad():
        alone = [model(**tok([t], return_tensors="pt")).last_hidden_state[0].mean(0) for t in texts]
    want = torch.nn.functional.normalize(torch.stack(alone), dim=-1).numpy()
    assert ours.shape == (len(texts), 16) and ours.dtype == np.float32
    np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-5, err_msg="batched != one by one")


def test_encode_feeds_longest_texts_first_and_handles_one_batch(impl):
    """encode sends the longest texts in the first batch, and works when all fit in one batch."""
    model, tok = _tiny_bert()
    seen: list[list[str]] = []

    def spy(batch, **kw):
        seen.append(list(batch))
        return tok(batch, **kw)

    texts = [t.lower() for t in TEXTS]
    impl.encode(model, spy, texts, batch_size=3)
    longest = sorted(texts, key=len, reverse=True)[:3]
    assert sorted(seen[0]) == sorted(longest), f"first batch {seen[0]} is not the longest texts"
    one = impl.encode(model, tok, texts[:2], batch_size=8)
    assert one.shape == (2, 16), f"one batch gave shape {one.shape}"


def test_searches_with_no_queries_return_empty_arrays(impl):
    """BM25.search and dense_search on zero queries return (0, k) ids and (0, k) scores."""
    bm25 = impl.BM25().fit(impl.tokenize(TEXTS))
    rng = np.random.default_rng(0)
    docs = rng.standard_normal((5, 4)).astype(np.float32)
    for ids, scores in (
        bm25.search([], 3),
        impl.dense_search(np.zeros((0, 4), np.float32), docs, 3),
    ):
        assert ids.shape == (0, 3) and scores.shape == (0, 3), (ids.shape, scores.shape)


@FAST
@given(seed=st.integers(0, 10_000), k=st.integers(1, 12), density=st.floats(0.0, 0.6))
def test_top_k_sparse_equals_dense_top_k(impl, seed, k, density):
    """top_k_sparse ranks each row's stored scores and pads with zero-score columns, as top_k."""
    import scipy.sparse as sp

    rng = np.random.default_rng(seed)
    dense = np.where(rng.random((4, 10)) < density, rng.random((4, 10)) + 0.1, 0.0)
    ids, vals = impl.top_k_sparse(sp.csr_matrix(dense), k)
    want = np.sort(dense, axis=1)[:, ::-1][:, : min(k, 10)]
    np.testing.assert_allclose(vals, want, err_msg="top-k scores differ from the dense ones")
    np.testing.assert_allclose(np.take_along_axis(dense, ids, 1), vals)
    assert all(len(set(row)) == len(row) for row in ids.tolist()), "a column listed twice"
