"""Grader for lstm-sentiment: tokenizer, vocabulary, padding, the packed LSTM classifier (shape and
padding invariance), one training step, and accuracy/F1 against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import accuracy_score
from sklearn.metrics import f1_score as sk_f1

REFERENCE = "airoad.sequence.lstm_sentiment"

FAST = settings(max_examples=25, deadline=None)
WORDS = st.lists(
    st.lists(st.sampled_from(["tea", "good", "bad", "dog", "food", "!"]), max_size=8),
    min_size=1,
    max_size=8,
)


def test_tokenize_lowercases_and_keeps_marks(impl):
    """tokenize lower-cases, splits on non-letters, keeps apostrophe words and ! / ?."""
    assert impl.tokenize("Great taste!! Don't buy?") == [
        "great",
        "taste",
        "!",
        "!",
        "don't",
        "buy",
        "?",
    ]
    assert impl.tokenize("  ") == []


def test_vocab_reserves_pad_unk_and_orders_by_count(impl):
    """build_vocab puts <pad>=0, <unk>=1, then words by falling count (ties alphabetical)."""
    docs = [["b", "a", "a"], ["c", "b", "a"], ["d"]]
    vocab = impl.build_vocab(docs, min_count=2)
    assert vocab == {"<pad>": 0, "<unk>": 1, "a": 2, "b": 3}, f"got {vocab}"
    small = impl.build_vocab(docs, min_count=1, max_size=4)
    assert small == {"<pad>": 0, "<unk>": 1, "a": 2, "b": 3}, f"max_size=4 gave {small}"
    bare = impl.build_vocab(docs, min_count=1, max_size=2)
    assert bare == {"<pad>": 0, "<unk>": 1}, f"max_size=2 leaves room for no word, gave {bare}"


@given(docs=WORDS, min_count=st.integers(1, 3))
@FAST
def test_vocab_ids_contiguous_and_encode_maps_unknown(impl, docs, min_count):
    """Vocabulary ids are 0..V-1, and encode sends every rare/unseen word to <unk>."""
    vocab = impl.build_vocab(docs, min_count=min_count)
    assert sorted(vocab.values()) == list(range(len(vocab))), "ids must be contiguous from 0"
    counts: dict[str, int] = {}
    for d in docs:
        for w in d:
            counts[w] = counts.get(w, 0) + 1
    for d in docs:
        ids = impl.encode(d + ["zebra"], vocab)
        assert len(ids) == len(d) + 1
        assert ids[-1] == 1, "an unseen word must encode to the <unk> id 1"
        for w, i in zip(d, ids):
            assert i == (vocab[w] if counts[w] >= min_count else 1), f"word {w!r} encoded as {i}"


def test_pad_batch_truncates_pads_and_reports_lengths(impl):
    """pad_batch right-pads with 0, truncates to max_len, and returns the true lengths."""
    ids, lengths = impl.pad_batch([[5, 6, 7], [8], [2, 3, 4, 5, 6, 7]], max_len=4)
    assert ids.shape == (3, 4), f"ids shape {tuple(ids.shape)}, expected (3, 4)"
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7, 0], [8, 0, 0, 0], [2, 3, 4, 5]]
    assert lengths.tolist() == [3, 1, 4]
    ids, lengths = impl.pad_batch([[5], [6, 7]], max_len=10)
    assert ids.shape == (2, 2), "width is the longest (truncated) sequence, not max_len"


def _model(impl, vocab=30):
    torch.manual_seed(0)
    return impl.LSTMClassifier(vocab, embed_dim=8, hidden_size=6, n_classes=2)


def test_classifier_output_shape(impl):
    """LSTMClassifier(ids (n, L), lengths (n,)) returns logits of shape (n, n_classes)."""
    model = _model(impl)
    ids, lengths = impl.pad_batch([[3, 4, 5], [6, 7], [8]], max_len=5)
    out = model(ids, lengths)
    assert out.shape == (3, 2), f"logits shape {tuple(out.shape)}, expected (3, 2)"


def test_padding_does_not_change_logits(impl):
    """A sequence gives the same logits alone or padded inside a longer batch (packing)."""
    model = _model(impl).eval()
    seq = [3, 9, 4, 12]
    alone = model(torch.tensor([seq]), torch.tensor([4]))
    ids, lengths = impl.pad_batch([[5] * 11, seq, [7, 8]], max_len=20)
    batched = model(ids, lengths)
    torch.testing.assert_close(
        batched[1:2],
        alone,
        atol=1e-6,
        rtol=1e-6,
        msg="padding changed the logits: pack the sequence before the LSTM",
    )
    # and the state really is the last real token's: it differs from reading the pads
    unpacked = model(ids[1:2], torch.tensor([ids.shape[1]]))
    assert not torch.allclose(unpacked, alone, atol=1e-6), "lengths are ignored"


def test_one_training_step_reduces_loss(impl):
    """train_epoch on a tiny batch lowers the cross-entropy and returns the mean loss."""
    model = _model(impl)
    ids, lengths = impl.pad_batch([[3, 4, 5], [6, 7], [8, 9, 10, 11], [12]], max_len=5)
    y = torch.tensor([1, 0, 1, 0])
    opt = torch.optim.Adam(model.parameters(), lr=0.05)

    def loss():
        with torch.no_grad():
            return torch.nn.functional.cross_entropy(model(ids, lengths), y).item()

    before = loss()
    reported = impl.train_epoch(
        model, opt, ids, lengths, y, batch_size=4, generator=torch.Generator().manual_seed(0)
    )
    assert reported == pytest.approx(before, rel=1e-4), (
        "train_epoch should return the loss it stepped on"
    )
    assert loss() < before, "one Adam step on the batch did not reduce its loss"


def test_predict_is_argmax_of_logits(impl):
    """predict returns argmax class ids (n,) in eval mode."""
    model = _model(impl)
    ids, lengths = impl.pad_batch([[3, 4, 5], [6, 7], [8]], max_len=5)
    pred = impl.predict(model, ids, lengths, batch_size=2)
    with torch.no_grad():
        expected = model.eval()(ids, lengths).argmax(1)
    assert pred.shape == (3,) and torch.equal(pred, expected)


@given(y=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=40))
@FAST
def test_metrics_match_sklearn(impl, y):
    """accuracy and f1_score (positive class 1) equal scikit-learn's."""
    t = np.array([a for a, _ in y])
    p = np.array([b for _, b in y])
    assert impl.accuracy(torch.tensor(t), torch.tensor(p)) == pytest.approx(accuracy_score(t, p))
    expected = sk_f1(t, p, pos_label=1, zero_division=0.0)
    assert impl.f1_score(torch.tensor(t), torch.tensor(p)) == pytest.approx(expected), (
        f"F1 differs from sklearn for y_true={t.tolist()}, y_pred={p.tolist()}"
    )
    assert impl.f1_score(torch.tensor(t), torch.tensor(p), positive=0) == pytest.approx(
        sk_f1(t, p, pos_label=0, zero_division=0.0)
    ), "f1_score ignores `positive`"


def test_pad_id_embeds_to_zero_and_unknown_id_trains(impl):
    """Like nn.Embedding(padding_idx=0): id 0 embeds to zeros with no gradient; <unk> (id 1) learns."""
    model = _model(impl)
    ids, lengths = impl.pad_batch([[1, 3, 1], [4, 1], [0, 5]], max_len=5)
    model(ids, lengths).sum().backward()
    weight, grad = model.embedding.weight, model.embedding.weight.grad
    assert torch.count_nonzero(weight[0]) == 0, "the <pad> row must be zeros"
    assert torch.count_nonzero(grad[0]) == 0, "the <pad> row must get no gradient"
    assert torch.count_nonzero(grad[1]) > 0, "the <unk> row is a normal, trainable embedding"
