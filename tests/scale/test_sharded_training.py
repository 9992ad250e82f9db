"""Grader for sharded_training: the ZeRO memory model, AdamW on a chunk, and ZeRO stages 1 and 2
on 2 gloo ranks ending with the same parameters and Adam moments as DDP + torch.optim.AdamW."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from scale_testing import group_fixture, impl_ref, load_impl

from airoad.transformer.char_gpt import GPT, GPTConfig

REFERENCE = "airoad.scale.sharded_training"

group = group_fixture(2)
WORKER_FIXTURES = ("group",)  # tests using it run code in workers (for tools/mutate.py)

HYPER = {"lr": 3e-2, "betas": (0.8, 0.95), "eps": 1e-6, "weight_decay": 0.1}
STEPS, VOCAB = 4, 13


def test_memory_model_matches_the_zero_paper(impl):
    """memory_per_rank reproduces the ZeRO paper: 7.5B params, 64 GPUs, 2+2+12 bytes -> 120/31.4/16.6/1.9 GB."""
    gb = [impl.memory_per_rank(7_500_000_000, 64, s, 2, 2, 12)["total"] / 1e9 for s in (0, 1, 2, 3)]
    assert gb == pytest.approx([120.0, 31.40625, 16.640625, 1.875], rel=1e-9)
    ddp = impl.memory_per_rank(1000, 4, 0)
    assert ddp == {"params": 4000, "grads": 4000, "optimizer": 8000, "total": 16000}
    zero2 = impl.memory_per_rank(1000, 4, 2)
    assert zero2 == {"params": 4000, "grads": 1000, "optimizer": 2000, "total": 7000}
    for bad in ((1000, 4, 4), (1000, 0, 1)):
        with pytest.raises(ValueError):
            impl.memory_per_rank(*bad)


@settings(max_examples=30, deadline=None)
@given(numel=st.integers(1, 50), world=st.integers(1, 6))
def test_shard_bounds_partition_the_padded_tensor(impl, numel, world):
    """Chunks are ceil(n / N) slots; the real slices [lo, hi) tile 0..n in rank order."""
    bounds = [impl.shard_bounds(numel, r, world) for r in range(world)]
    assert {c for c, _, _ in bounds} == {-(-numel // world)}
    covered = [i for _, lo, hi in bounds for i in range(lo, hi)]
    assert covered == list(range(numel)), f"slices {bounds} must tile 0..{numel} in order"


def test_adamw_step_on_chunks_equals_torch_adamw(impl):
    """adamw_step_ applied chunk by chunk gives torch.optim.AdamW's parameters and moments."""
    gen = torch.Generator().manual_seed(0)
    ours = torch.randn(7, 3, dtype=torch.float64, generator=gen)
    theirs = torch.nn.Parameter(ours.clone())
    opt = torch.optim.AdamW([theirs], **HYPER)
    m, v = torch.zeros(21, dtype=torch.float64), torch.zeros(21, dtype=torch.float64)
    for step in range(1, 6):
        grad = torch.randn(7, 3, dtype=torch.float64, generator=gen)
        theirs.grad = grad.clone()
        opt.step()
        flat, g = ours.view(-1), grad.view(-1)
        for lo, hi in ((0, 10), (10, 21)):  # two ranks' chunks, updated separately
            impl.adamw_step_(flat[lo:hi], g[lo:hi], m[lo:hi], v[lo:hi], step, **HYPER)
    state = opt.state[theirs]
    torch.testing.assert_close(ours, theirs.detach(), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(m, state["exp_avg"].view(-1), rtol=1e-12, atol=1e-14)
    torch.testing.assert_close(v, state["exp_avg_sq"].view(-1), rtol=1e-12, atol=1e-14)


def _model() -> GPT:
    torch.manual_seed(0)  # the same initial weights on every rank
    return GPT(GPTConfig(vocab_size=VOCAB, block_size=8, n_layer=1, n_head=2, n_embd=6)).double()


def _train_worker(rank, world, ref, stage):
    """stage 0: DDP + torch AdamW; 1, 2: the ZeRO optimizer under test. Same data either way."""
    from torch.nn.parallel import DistributedDataParallel

    model = _model()
    if stage == 0:
        net, opt = DistributedDataParallel(model), torch.optim.AdamW(model.parameters(), **HYPER)
    else:
        net, opt = model, load_impl(ref).ZeroAdamW(model.parameters(), stage=stage, **HYPER)
    gen, held = torch.Generator().manual_seed(1), []
    for _ in range(STEPS):
        batch = torch.randint(VOCAB, (2 * world, 9), generator=gen)[2 * rank : 2 * rank + 2]
        logits = net(batch[:, :-1])
        F.cross_entropy(logits.reshape(-1, VOCAB), batch[:, 1:].reshape(-1)).backward()
        held.append(None if stage == 0 else opt.held_bytes())
        opt.step()
        opt.zero_grad()
    params = [p.detach().clone() for p in model.parameters()]
    if stage == 0:
        moments = [
            (opt.state[p]["exp_avg"], opt.state[p]["exp_avg_sq"]) for p in model.parameters()
        ]
    else:
        moments = list(zip(opt.exp_avg, opt.exp_avg_sq))
    return {"params": params, "moments": moments, "held": held}


@pytest.fixture(scope="module")
def ddp(group):
    return group.run(_train_worker, None, 0)


@pytest.mark.parametrize("stage", [1, 2])
def test_zero_matches_ddp_after_steps(impl, group, ddp, stage):
    """After 4 AdamW steps on 2 ranks, ZeRO stage 1 and 2 parameters equal DDP's on every rank."""
    for rank, out in enumerate(group.run(_train_worker, impl_ref(impl), stage)):
        for i, (ours, theirs) in enumerate(zip(out["params"], ddp[rank]["params"])):
            torch.testing.assert_close(
                ours, theirs, rtol=1e-10, atol=1e-12, msg=f"stage {stage}, rank {rank}, param {i}"
            )


@pytest.mark.parametrize("stage", [1, 2])
def test_each_rank_keeps_only_its_chunk_of_adam_state(impl, group, ddp, stage):
    """Rank r's exp_avg / exp_avg_sq are exactly chunk r of DDP's full Adam moments, nothing more."""
    for rank, out in enumerate(group.run(_train_worker, impl_ref(impl), stage)):
        for p, (m, v), (m_full, v_full) in zip(
            ddp[rank]["params"], out["moments"], ddp[0]["moments"]
        ):
            chunk = -(-p.numel() // 2)
            lo, hi = min(rank * chunk, p.numel()), min((rank + 1) * chunk, p.numel())
            torch.testing.assert_close(m, m_full.reshape(-1)[lo:hi], rtol=1e-9, atol=1e-14)
            torch.testing.assert_close(v, v_full.reshape(-1)[lo:hi], rtol=1e-9, atol=1e-14)


def test_stage_two_holds_half_the_gradient_bytes(impl, group):
    """held_bytes between backward and step: stage 1 keeps all gradients, stage 2 about 1/2 of them."""
    n = sum(p.numel() for p in _model().parameters())
    one, two = (group.run(_train_worker, impl_ref(impl), s)[0]["held"][-1] for s in (1, 2))
    assert one["params"] == two["params"] == 8 * n
    assert one["grads"] == 8 * n, "stage 1 keeps every full (averaged) gradient"
    assert 4 * n <= two["grads"] <= 4 * n + 8 * 50, "stage 2 keeps one chunk of each gradient"
    assert 8 * n <= one["optimizer"] <= 8 * n + 16 * 50, "two moments, one chunk each"
