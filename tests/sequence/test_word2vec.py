"""Grader for word2vec: vocabulary, subsampling, skip-gram pairs, negative sampling, the SGNS loss
and its gradients (torch and finite differences), nearest neighbours and the analogy scorer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.sequence.word2vec"

FAST = settings(max_examples=25, deadline=None)


def _direct_loss(v, u, n):
    """The SGNS loss written out with sigmoid and log, one example at a time."""
    total = 0.0
    for b in range(v.shape[0]):
        term = torch.log(torch.sigmoid(u[b] @ v[b]))
        for k in range(n.shape[1]):
            term = term + torch.log(torch.sigmoid(-(n[b, k] @ v[b])))
        total = total - term
    return total / v.shape[0]


def test_tokenize_keeps_lowercase_words(impl):
    """tokenize lower-cases and keeps words (with inner apostrophes), dropping digits/punctuation."""
    assert impl.tokenize("To be, or NOT to be: 'tis 2 o'clock!") == [
        "to",
        "be",
        "or",
        "not",
        "to",
        "be",
        "tis",
        "o'clock",
    ]


def test_vocabulary_min_count_and_order(impl):
    """build_vocabulary keeps words seen >= min_count times, ids by descending count then a-z."""
    tokens = "b a c a b a d d e".split()
    vocab, counts = impl.build_vocabulary(tokens, min_count=2)
    assert vocab == {"a": 0, "b": 1, "d": 2}, vocab
    np.testing.assert_array_equal(counts, [3, 2, 2])


def test_subsampling_drops_frequent_words(impl):
    """keep_probability is min(1, sqrt(t/f) + t/f); subsample keeps rare words, thins frequent ones."""
    counts = np.array([9000, 900, 90, 10])
    keep = impl.keep_probability(counts, threshold=1e-2)
    f = counts / counts.sum()
    np.testing.assert_allclose(keep, np.minimum(1, np.sqrt(1e-2 / f) + 1e-2 / f), rtol=1e-12)
    ids = np.repeat(np.arange(4), counts)
    kept = impl.subsample(ids, keep, np.random.default_rng(0))
    got = np.bincount(kept, minlength=4)
    assert got[3] == 10 and got[2] == 90, "rare words (keep >= 1) must always survive"
    assert abs(got[0] / 9000 - keep[0]) < 0.02, f"kept {got[0]} of 9000, expected ~{keep[0]:.3f}"


@FAST
@given(n=st.integers(0, 40), window=st.integers(1, 6))
def test_skipgram_pair_counts(impl, n, window):
    """skipgram_pairs yields 2*sum_d max(n-d, 0) pairs, each at distance <= window, both ways."""
    ids = np.arange(n) * 10  # id encodes position
    c, o = impl.skipgram_pairs(ids, window)
    assert c.shape == o.shape, "centers and contexts must have the same shape"
    assert len(c) == 2 * sum(max(n - d, 0) for d in range(1, window + 1))
    dist = np.abs(c - o) // 10
    assert np.all((dist >= 1) & (dist <= window)), "pair outside the window (or a self-pair)"
    assert sorted(zip(c.tolist(), o.tolist())) == sorted(zip(o.tolist(), c.tolist()))


def test_noise_distribution_and_negatives(impl):
    """noise_distribution is count**0.75 normalised; sample_negatives draws (B, K) ids from it."""
    counts = np.array([100, 10, 1, 0])
    p = impl.noise_distribution(counts)
    np.testing.assert_allclose(p, counts**0.75 / (counts**0.75).sum(), rtol=1e-12)
    g = torch.Generator().manual_seed(0)
    neg = impl.sample_negatives(torch.tensor(p), (2000, 5), g)
    assert tuple(neg.shape) == (2000, 5), f"negatives shape {tuple(neg.shape)}, expected (2000, 5)"
    freq = np.bincount(neg.flatten().numpy(), minlength=4) / neg.numel()
    np.testing.assert_allclose(freq, p, atol=0.01)


def test_sgns_loss_value_and_gradients_match_direct(impl):
    """sgns_loss and its gradients equal the written-out -log sig(u.v) - sum log sig(-n.v)."""
    g = torch.Generator().manual_seed(1)
    v, u = (
        torch.randn(4, 3, generator=g, dtype=torch.float64),
        torch.randn(4, 3, generator=g, dtype=torch.float64),
    )
    n = torch.randn(4, 2, 3, generator=g, dtype=torch.float64)
    args = [t.clone().requires_grad_() for t in (v, u, n)]
    ref_args = [t.clone().requires_grad_() for t in (v, u, n)]
    ours, ref = impl.sgns_loss(*args), _direct_loss(*ref_args)
    assert ours.dim() == 0, "sgns_loss must return a scalar (mean over the batch)"
    torch.testing.assert_close(ours, ref, rtol=1e-12, atol=1e-12)
    ours.backward()
    ref.backward()
    for a, b in zip(args, ref_args):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        impl.sgns_loss, tuple(t.clone().requires_grad_() for t in (v, u, n))
    )


def test_sgns_loss_is_finite_for_large_scores(impl):
    """sgns_loss stays finite (log-sigmoid, not log(sigmoid)) when scores reach +-200."""
    v = torch.full((1, 2), 10.0)
    loss = impl.sgns_loss(v, -v, v.unsqueeze(1))  # u.v = -200, n.v = +200: both terms huge
    assert torch.isfinite(loss), f"loss overflowed to {loss}"
    assert abs(loss.item() - 400.0) < 1e-3


def test_skipgram_module_shapes_init_and_step(impl):
    """SkipGram: (n_words, dim) embeddings, input U(+-0.5/dim) and zero output init, loss ln2*(1+K), falls."""
    torch.manual_seed(0)
    model = impl.SkipGram(20, 8, seed=0)
    assert tuple(model.inp.weight.shape) == (20, 8) and tuple(model.out.weight.shape) == (20, 8)
    assert model.vectors().shape == (20, 8)
    w = model.inp.weight.detach()
    assert w.abs().max() <= 0.5 / 8, "input vectors start uniform in +-0.5/dim (word2vec, gensim)"
    assert abs(w.mean()) < 0.25 * 0.5 / 8, "input vectors should start centred on 0"
    c, o = torch.tensor([0, 1, 2, 3]), torch.tensor([1, 0, 3, 2])
    neg = torch.tensor([[5, 6], [7, 8], [9, 10], [11, 12]])
    loss0 = model(c, o, neg)
    assert abs(loss0.item() - 3 * np.log(2)) < 1e-5, "zero output vectors give loss (1+K) ln 2"
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(50):
        opt.zero_grad()
        loss = model(c, o, neg)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * loss0.item(), "training on fixed pairs should cut the loss"


def test_nearest_neighbours_by_cosine(impl):
    """nearest_neighbours ranks by cosine (not dot product) and leaves out the query word."""
    vocab = {"king": 0, "queen": 1, "apple": 2, "big": 3}
    vecs = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [10.0, 8.0]])
    got = impl.nearest_neighbours(vecs, vocab, "king", k=2)
    assert [w for w, _ in got] == ["queen", "big"], got
    assert got[0][1] == pytest.approx(0.9 / np.hypot(0.9, 0.1))


def test_analogy_accuracy_on_hand_made_embedding(impl):
    """analogy_accuracy: 3CosAdd with a, b, c excluded, only questions fully in the vocabulary."""
    vocab = {w: i for i, w in enumerate(["man", "woman", "king", "queen", "boy", "girl", "x"])}
    vecs = np.array(
        [[1, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1], [2, 0, 0.1], [2, 2, 0.1], [0, 0, 5]],
        dtype=float,
    )
    qs = [
        ("s", "man", "woman", "king", "queen"),
        ("s", "man", "woman", "boy", "girl"),
        ("s", "king", "queen", "man", "woman"),
        ("s", "man", "woman", "king", "x"),
        ("s", "man", "woman", "prince", "princess"),
    ]  # the last one is not in the vocabulary
    acc, n = impl.analogy_accuracy(vecs, vocab, qs)
    assert n == 4, f"{n} questions used; only those with all 4 words in the vocabulary count"
    assert acc == pytest.approx(0.75)
    # b - a + c = c when a == b: the answer c itself must be excluded, so this is never right
    acc, n = impl.analogy_accuracy(vecs, vocab, [("s", "man", "man", "king", "king")])
    assert n == 1 and acc == 0.0, "a, b and c must be excluded from the answers"
    assert impl.analogy_accuracy(vecs, vocab, qs[-1:]) == (0.0, 0)


def test_restrict_questions_keeps_fully_known(impl):
    """restrict_questions keeps (a, b, c, d) of the questions whose 4 words are all known."""
    qs = [("sec", "a", "b", "c", "d"), ("sec", "a", "b", "c", "e")]
    assert impl.restrict_questions(qs, {"a", "b", "c", "d"}) == [("a", "b", "c", "d")]
