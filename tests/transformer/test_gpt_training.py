"""Grader for char-gpt's training loop: vocabulary, batches, the warm-up + cosine schedule against
torch's schedulers, AdamW parameter groups, gradient clipping against torch's, one training step
against a hand-written torch step, checkpoint/resume equal to a straight run, and an exact
per-character validation loss."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from airoad.transformer.char_gpt import GPT, GPTConfig

REFERENCE = "airoad.transformer.gpt_training"

FAST = settings(max_examples=20, deadline=None)


def _gpt(seed: int, dropout: float = 0.0, dtype=torch.float32) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8, dropout=dropout)
    return GPT(config).to(dtype)


class _Bigram(nn.Module):
    """A model whose loss does not depend on the window: -log p(y | x) from a fixed table."""

    def __init__(self, vocab: int, seed: int):
        super().__init__()
        self.table = nn.Parameter(
            torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(seed))
        )

    def loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(self.table[x].reshape(-1, self.table.shape[0]), y.reshape(-1))


@FAST
@given(text=st.text(alphabet="abcXYZ \n.,;'!?", min_size=1, max_size=60))
def test_vocab_round_trip(impl, text):
    """CharVocab ids are positions in the sorted characters; decode(encode(s)) == s."""
    vocab = impl.CharVocab(text)
    ids = vocab.encode(text)
    assert ids.dtype == torch.long and ids.shape == (len(text),), "encode gives int64 ids (N,)"
    assert ids.tolist() == [sorted(set(text)).index(c) for c in text], (
        "ids must follow sorted order"
    )
    assert vocab.decode(ids) == text, "decode(encode(s)) != s"


def test_get_batch_windows_and_shift(impl):
    """x rows are contiguous windows of the data, y is x moved one step on; same seed, same batch."""
    data = torch.arange(100)
    x, y = impl.get_batch(data, 6, 9, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (6, 9), f"x {tuple(x.shape)}, y {tuple(y.shape)}; expected (6, 9)"
    assert torch.equal(x - x[:, :1], torch.arange(9).expand(6, 9)), "rows must be contiguous"
    assert torch.equal(y, x + 1), "y must be x shifted by one position"
    assert int(y.max()) <= 99, "a window ran past the end of the data"
    x2, _ = impl.get_batch(data, 6, 9, torch.Generator().manual_seed(0))
    assert torch.equal(x, x2), "the same generator seed must give the same batch"


@pytest.mark.parametrize("warmup,total", [(5, 20), (1, 7), (10, 60)])
def test_lr_schedule_matches_torch_schedulers(impl, warmup, total):
    """lr_at equals SequentialLR(LinearLR warm-up, CosineAnnealingLR) step by step, then stays at min_lr."""
    max_lr, min_lr = 3e-3, 2e-4
    p = nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=max_lr)
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LinearLR(opt, 1 / warmup, 1.0, max(warmup - 1, 1)),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, total - warmup, min_lr),
        ],
        [warmup],
    )
    for step in range(total + 1):
        expected = opt.param_groups[0]["lr"]
        got = impl.lr_at(step, max_lr, warmup, total, min_lr)
        assert got == pytest.approx(expected, rel=1e-9, abs=1e-15), (
            f"step {step}: {got} != {expected}"
        )
        opt.step()
        sched.step()
    for step in (total + 1, 2 * total):
        assert impl.lr_at(step, max_lr, warmup, total, min_lr) == pytest.approx(min_lr), (
            "after total_steps the rate stays at min_lr"
        )


@FAST
@given(
    warmup=st.integers(1, 50),
    extra=st.integers(1, 200),
    max_lr=st.floats(1e-5, 1.0),
    frac=st.floats(0.0, 1.0),
)
def test_lr_schedule_closed_form(impl, warmup, extra, max_lr, frac):
    """Warm-up rises linearly to max_lr at step W-1; cosine falls monotonically to min_lr at N."""
    total, min_lr = warmup + extra, max_lr * frac
    lrs = [impl.lr_at(s, max_lr, warmup, total, min_lr) for s in range(total + 1)]
    assert lrs[0] == pytest.approx(max_lr / warmup), "step 0 uses max_lr / warmup_steps"
    assert lrs[warmup - 1] == pytest.approx(max_lr) and lrs[warmup] == pytest.approx(max_lr)
    assert all(a <= b + 1e-15 for a, b in zip(lrs[:warmup], lrs[1:warmup])), "warm-up must rise"
    assert all(a >= b - 1e-15 for a, b in zip(lrs[warmup:], lrs[warmup + 1 :])), "decay must fall"
    assert lrs[total] == pytest.approx(min_lr, abs=1e-15), "the schedule ends at min_lr"
    mid = warmup + extra / 2
    if mid.is_integer():
        assert impl.lr_at(int(mid), max_lr, warmup, total, min_lr) == pytest.approx(
            (max_lr + min_lr) / 2
        ), "half-way through the decay the rate is the mean of max_lr and min_lr"


def test_optimizer_decays_only_matrices(impl):
    """make_optimizer: AdamW; every parameter once; dim >= 2 decayed, biases and LayerNorm gains not."""
    model = _gpt(0)
    opt = impl.make_optimizer(model, 1e-3, 0.1, (0.9, 0.95))
    assert isinstance(opt, torch.optim.AdamW), f"expected torch.optim.AdamW, got {type(opt)}"
    decay, no_decay = opt.param_groups
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert opt.defaults["betas"] == (0.9, 0.95), "betas must be passed on"
    ids = [id(p) for g in opt.param_groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters()), "each parameter exactly once"
    assert all(p.dim() >= 2 for p in decay["params"]), "only matrices/embeddings are decayed"
    assert all(p.dim() < 2 for p in no_decay["params"]), "biases and gains are not decayed"


@FAST
@given(max_norm=st.floats(0.01, 10.0), scale=st.floats(0.01, 10.0), seed=st.integers(0, 1000))
def test_clip_grad_norm_matches_torch(impl, max_norm, scale, seed):
    """clip_grad_norm returns the same total norm and leaves the same gradients as clip_grad_norm_."""
    gen = torch.Generator().manual_seed(seed)
    shapes = [(3, 4), (4,), (2, 2, 2)]
    mine = [nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    theirs = [nn.Parameter(torch.zeros(s, dtype=torch.float64)) for s in shapes]
    for a, b in zip(mine, theirs):
        a.grad = torch.randn(a.shape, generator=gen, dtype=torch.float64) * scale
        b.grad = a.grad.clone()
    norm = impl.clip_grad_norm(mine, max_norm)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm)
    assert float(norm) == pytest.approx(float(expected), rel=1e-12), "total norm differs"
    for a, b in zip(mine, theirs):
        torch.testing.assert_close(
            a.grad, b.grad, atol=1e-14, rtol=1e-12, msg="clipped grads differ"
        )


def test_train_step_equals_a_hand_written_torch_step(impl):
    """train_step sets lr, backpropagates, clips with torch's rule and steps: same weights as torch."""
    mine, theirs = _gpt(1, dtype=torch.float64), _gpt(1, dtype=torch.float64)
    opt_a = impl.make_optimizer(mine, 1.0, 0.1)
    opt_b = torch.optim.AdamW(
        [
            {"params": [p for p in theirs.parameters() if p.dim() >= 2], "weight_decay": 0.1},
            {"params": [p for p in theirs.parameters() if p.dim() < 2], "weight_decay": 0.0},
        ],
        lr=1.0,
        betas=(0.9, 0.99),
    )
    idx = torch.randint(0, 13, (4, 9), generator=torch.Generator().manual_seed(1))
    x, y = idx[:, :-1], idx[:, 1:]
    for lr in (3e-3, 1e-3):
        loss, norm = impl.train_step(mine, opt_a, x, y, lr, 0.05)
        for g in opt_b.param_groups:
            g["lr"] = lr
        opt_b.zero_grad()
        ref_loss = theirs.loss(x, y)
        ref_loss.backward()
        ref_norm = torch.nn.utils.clip_grad_norm_(theirs.parameters(), 0.05)
        opt_b.step()
        assert loss == pytest.approx(ref_loss.item(), rel=1e-12), "returned loss is not pre-update"
        assert norm == pytest.approx(ref_norm.item(), rel=1e-10), "returned norm is not pre-clip"
        assert all(g["lr"] == lr for g in opt_a.param_groups), "lr must be set in every group"
    for (name, a), b in zip(mine.named_parameters(), theirs.parameters()):
        torch.testing.assert_close(
            a, b, atol=1e-12, rtol=1e-10, msg=f"{name} differs after 2 steps"
        )


def test_train_steps_follows_the_schedule_and_learns(impl):
    """train_steps runs steps start..stop-1 at lr_at(step), and the loss falls on a repeating text."""
    model = _gpt(2)
    config = impl.TrainConfig(
        batch_size=8, block_size=8, max_lr=1e-2, min_lr=1e-3, warmup_steps=3, total_steps=40
    )
    opt = impl.make_optimizer(model, config.max_lr, config.weight_decay)
    data = torch.arange(13).repeat(30)
    gen = torch.Generator().manual_seed(0)
    losses = impl.train_steps(model, opt, data, config, gen, 0, 40)
    assert len(losses) == 40, f"expected 40 losses, got {len(losses)}"
    assert opt.param_groups[0]["lr"] == pytest.approx(impl.lr_at(39, 1e-2, 3, 40, 1e-3))
    assert sum(losses[-5:]) < 0.7 * sum(losses[:5]), "the loss should fall on a cyclic text"


def test_checkpoint_resume_equals_a_straight_run(impl, tmp_path):
    """N steps straight == N/2 steps, save, load into fresh objects and fresh RNG state, N/2 more."""
    config = impl.TrainConfig(
        batch_size=4, block_size=8, max_lr=5e-3, min_lr=5e-4, warmup_steps=2, total_steps=8
    )
    data = torch.randint(0, 13, (300,), generator=torch.Generator().manual_seed(9))

    def fresh(seed):
        model = _gpt(seed, dropout=0.2)  # dropout draws from torch's global RNG
        return model, impl.make_optimizer(model, 5e-3, 0.1), torch.Generator().manual_seed(seed)

    torch.manual_seed(100)
    model, opt, gen = fresh(0)
    torch.manual_seed(100)
    straight = impl.train_steps(model, opt, data, config, gen, 0, 8)

    a, opt_a, gen_a = fresh(0)
    torch.manual_seed(100)
    first = impl.train_steps(a, opt_a, data, config, gen_a, 0, 4)
    impl.save_checkpoint(tmp_path / "ckpt.pt", a, opt_a, 4, gen_a, config)
    b, opt_b, gen_b = fresh(1)  # other weights, other sampler state
    torch.manual_seed(12345)  # scramble the global RNG, as in a new process
    start = impl.load_checkpoint(tmp_path / "ckpt.pt", b, opt_b, gen_b)
    assert start == 4, f"load_checkpoint returned step {start}, expected 4"
    second = impl.train_steps(b, opt_b, data, config, gen_b, start, 8)
    assert first + second == pytest.approx(straight, rel=1e-6), "resumed losses differ"
    for (name, p), q in zip(model.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, atol=1e-6, rtol=1e-5, msg=f"{name} differs after resume")


@FAST
@given(n=st.integers(2, 60), block=st.integers(1, 9), batch=st.integers(1, 5))
def test_evaluate_scores_every_target_exactly_once(impl, n, block, batch):
    """evaluate = mean -log p over all N-1 next characters (checked with a window-free bigram model)."""
    model = _Bigram(7, seed=n).train()
    data = torch.randint(0, 7, (n,), generator=torch.Generator().manual_seed(n + block))
    got = impl.evaluate(model, data, block, batch)
    expected = model.loss(data[:-1][None], data[1:][None]).item()
    assert got == pytest.approx(expected, rel=1e-5), f"evaluate gave {got}, expected {expected}"
    assert model.training, "evaluate must restore train mode"


def test_evaluate_uses_context_within_each_window(impl):
    """With a GPT, evaluate equals the summed cross-entropy of consecutive windows plus the remainder."""
    model = _gpt(3, dtype=torch.float64).eval()
    data = torch.randint(0, 13, (30,), generator=torch.Generator().manual_seed(3))
    total = 0.0
    for s in range(0, 29, 8):
        x, y = data[s : min(s + 8, 29)], data[s + 1 : min(s + 9, 30)]
        total += F.cross_entropy(model(x[None])[0], y, reduction="sum").item()
    assert impl.evaluate(model, data, 8, 2) == pytest.approx(total / 29, rel=1e-10), (
        "windows must be consecutive, start at 0 and step by block_size"
    )
    assert math.isfinite(total)
