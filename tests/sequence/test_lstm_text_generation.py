"""Grader for lstm-text-generation: character vocabulary, positional split, batches, the char LSTM,
its loss in nats/bits, temperature sampling with a seeded Generator, and overfitting a string."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.sequence.lstm_text_generation"

FAST = settings(max_examples=25, deadline=None)
TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"


@given(text=st.text(min_size=1, max_size=60))
@FAST
def test_vocab_round_trip(impl, text):
    """decode(encode(text)) == text, and the vocabulary is the sorted set of characters."""
    stoi, itos = impl.build_vocab(text)
    assert itos == sorted(set(text)), "itos must list the distinct characters in sorted order"
    assert all(stoi[c] == i for i, c in enumerate(itos)), "stoi and itos disagree"
    ids = impl.encode(text, stoi)
    assert ids.dtype == torch.long and ids.shape == (len(text),)
    assert impl.decode(ids, itos) == text


def test_split_is_contiguous_by_position(impl):
    """split_by_position keeps order (train the head, validation the tail); fractions outside (0, 1) raise."""
    ids = torch.arange(100)
    train, val = impl.split_by_position(ids, 0.2)
    assert torch.equal(train, torch.arange(80)) and torch.equal(val, torch.arange(80, 100)), (
        "expected the first 80% as train and the last 20% as validation, unshuffled"
    )
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError):
            impl.split_by_position(ids, bad)


def test_get_batch_targets_are_inputs_shifted(impl):
    """get_batch returns (B, T) windows with y the next character of x, any valid start, reproducibly."""
    data = torch.arange(50)
    x, y = impl.get_batch(data, 7, 5, torch.Generator().manual_seed(1))
    assert x.shape == (5, 7) and y.shape == (5, 7), f"shapes {tuple(x.shape)}, {tuple(y.shape)}"
    assert torch.equal(y, x + 1), "y must be x shifted by one position"
    assert torch.equal(x[:, 1:], x[:, :-1] + 1), "each row of x must be a contiguous window"
    assert int(y.max()) <= 49
    x2, _ = impl.get_batch(data, 7, 5, torch.Generator().manual_seed(1))
    assert torch.equal(x, x2), "the same generator seed must give the same batch"
    x, _ = impl.get_batch(torch.arange(10), 7, 200, torch.Generator().manual_seed(2))
    assert set(x[:, 0].tolist()) == {0, 1, 2}, "every start 0 .. len - seq_len - 1 can be drawn"


def _model(impl, vocab, hidden=16):
    torch.manual_seed(0)
    return impl.CharLSTM(vocab, embed_dim=8, hidden_size=hidden)


def test_model_shapes_and_state(impl):
    """CharLSTM returns logits (B, T, V) and an (h, c) state that continues a sequence."""
    model = _model(impl, 11)
    x = torch.randint(0, 11, (3, 9), generator=torch.Generator().manual_seed(0))
    logits, (h, c) = model(x)
    assert logits.shape == (3, 9, 11), f"logits shape {tuple(logits.shape)}, expected (3, 9, 11)"
    first, state = model(x[:, :4])
    rest, _ = model(x[:, 4:], state)
    torch.testing.assert_close(
        torch.cat([first, rest], 1),
        logits,
        atol=1e-6,
        rtol=1e-5,
        msg="feeding the returned state must continue the sequence",
    )


def test_untrained_loss_is_about_log_vocab(impl):
    """An untrained model's loss is close to log(V) nats (a near-uniform guess)."""
    stoi, itos = impl.build_vocab(TEXT)
    ids = impl.encode(TEXT, stoi)
    model = _model(impl, len(itos))
    loss = impl.evaluate_loss(model, ids, seq_len=16, batch_size=4)
    assert loss == pytest.approx(math.log(len(itos)), rel=0.05), (
        f"untrained loss {loss:.3f} nats, expected about log(V) = {math.log(len(itos)):.3f}"
    )
    assert impl.nats_to_bits(loss) == pytest.approx(loss / math.log(2))
    x, y = ids[:-1].view(1, -1), ids[1:].view(1, -1)
    logits, _ = model(x)
    expected = torch.nn.functional.cross_entropy(logits[0], y[0])
    assert impl.sequence_loss(model, x, y).item() == pytest.approx(expected.item(), rel=1e-6)


@given(logits=st.lists(st.floats(-5, 5), min_size=2, max_size=8))
@FAST
def test_temperature_sharpens_and_flattens(impl, logits):
    """next_char_probs: T=1 is softmax, low T concentrates on the argmax, high T nears uniform."""
    z = torch.tensor(logits, dtype=torch.float64)
    p1 = impl.next_char_probs(z, 1.0)
    torch.testing.assert_close(p1, torch.softmax(z, 0))
    entropy = [
        float(-(p * p.clamp_min(1e-300).log()).sum())
        for p in (impl.next_char_probs(z, t) for t in (0.3, 1.0, 3.0))
    ]
    assert entropy[0] <= entropy[1] + 1e-9 <= entropy[2] + 2e-9, (
        f"entropies {entropy} not increasing in T"
    )
    greedy = impl.next_char_probs(z, 0.0)
    assert float(greedy.sum()) == pytest.approx(1.0) and greedy[z.argmax()] == 1.0, (
        "temperature 0 must put all mass on the argmax"
    )


def test_sampling_is_deterministic_given_a_seed(impl):
    """sample() with the same Generator seed returns the same n ids (none for n=0); another seed differs."""
    model = _model(impl, 20)
    prompt = torch.tensor([1, 2, 3])
    a = impl.sample(model, prompt, 40, 1.0, torch.Generator().manual_seed(7))
    b = impl.sample(model, prompt, 40, 1.0, torch.Generator().manual_seed(7))
    c = impl.sample(model, prompt, 40, 1.0, torch.Generator().manual_seed(8))
    assert a.shape == (40,), f"sample returned shape {tuple(a.shape)}, expected (40,)"
    assert torch.equal(a, b), "the same seed must give the same sample"
    assert not torch.equal(a, c), "a different seed should give a different sample"
    assert impl.sample(model, prompt, 0).shape == (0,), "n = 0 must return an empty tensor"


def test_low_temperature_equals_greedy_decoding(impl):
    """Temperature -> 0 equals greedy argmax decoding done by hand."""
    model = _model(impl, 20)
    prompt = torch.tensor([4, 5])
    greedy = impl.sample(model, prompt, 15, 0.0)
    cold = impl.sample(model, prompt, 15, 1e-4, torch.Generator().manual_seed(0))
    seq = prompt.tolist()
    with torch.no_grad():
        for _ in range(15):
            logits, _ = model(torch.tensor([seq]))
            seq.append(int(logits[0, -1].argmax()))
    assert greedy.tolist() == seq[2:], "temperature 0 must be greedy argmax decoding"
    assert cold.tolist() == seq[2:], "a tiny temperature must match greedy decoding"


def test_tiny_model_overfits_a_short_string(impl):
    """A small CharLSTM trained on one short line memorises it (loss < 0.1 nats, greedy replay)."""
    text = "hello lstm, hello world. "
    stoi, itos = impl.build_vocab(text)
    ids = impl.encode(text * 2, stoi)
    model = _model(impl, len(itos), hidden=48)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    x, y = ids[:-1].view(1, -1), ids[1:].view(1, -1)
    for _ in range(150):
        opt.zero_grad()
        loss = impl.sequence_loss(model, x, y)
        loss.backward()
        opt.step()
    assert loss.item() < 0.1, f"training loss {loss.item():.3f} nats; a tiny model should memorise"
    out = impl.decode(impl.sample(model, impl.encode("hello l", stoi), 18, 0.0), itos)
    assert out == "stm, hello world. ", f"greedy continuation was {out!r}"


def test_evaluate_loss_is_the_mean_over_consecutive_windows(impl):
    """evaluate_loss equals torch's cross-entropy over the n = (len-1)//seq_len next-char windows."""
    stoi, itos = impl.build_vocab(TEXT)
    ids = impl.encode(TEXT, stoi)
    model = _model(impl, len(itos))
    loss = impl.evaluate_loss(model, ids, seq_len=9, batch_size=4)  # 9 windows: 4 + 4 + 1
    n = (len(ids) - 1) // 9
    x, y = ids[: n * 9].view(n, 9), ids[1 : n * 9 + 1].view(n, 9)
    with torch.no_grad():
        logits, _ = model.eval()(x)
        expected = torch.nn.functional.cross_entropy(logits.reshape(-1, len(itos)), y.reshape(-1))
    assert loss == pytest.approx(expected.item(), rel=1e-6), "mean over windows and characters"
    with pytest.raises(ValueError):
        impl.evaluate_loss(model, ids[:9], seq_len=9)


def test_next_char_probs_works_on_a_batch_of_logits(impl):
    """next_char_probs acts on the last axis of (B, V) logits: row softmax, row one-hot at T=0."""
    z = torch.randn(3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(impl.next_char_probs(z, 0.5), torch.softmax(z / 0.5, dim=-1))
    torch.testing.assert_close(
        impl.next_char_probs(z, 0.0),
        torch.nn.functional.one_hot(z.argmax(-1), 5).double(),
        msg="temperature 0 gives the one-hot of each row's argmax",
    )
