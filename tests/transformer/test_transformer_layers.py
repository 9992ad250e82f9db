"""Grader for transformer-block's layers: positions (sinusoidal, learned, RoPE), LayerNorm and
RMSNorm, the feed-forward layers, each against PyTorch's own modules or the closed form
(values and gradients in float64)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformer_testing import complex_rope, randomise

REFERENCE = "airoad.transformer.transformer_layers"

FAST = settings(max_examples=15, deadline=None)
F64 = torch.float64
TIGHT = {"atol": 1e-10, "rtol": 1e-9}


# ---------------------------------------------------------------- positions


@pytest.mark.parametrize("d_model", [6, 5])
def test_sinusoidal_positions_match_the_formula(impl, d_model):
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same angle); shape (n_positions, d)."""
    pe = impl.sinusoidal_positions(9, d_model, dtype=F64)
    assert tuple(pe.shape) == (9, d_model), f"shape {tuple(pe.shape)}, expected (9, {d_model})"
    expected = np.zeros((9, d_model))
    for p in range(9):
        for j in range(d_model):
            angle = p / 10000 ** (2 * (j // 2) / d_model)
            expected[p, j] = math.sin(angle) if j % 2 == 0 else math.cos(angle)
    np.testing.assert_allclose(pe.numpy(), expected, atol=1e-12, err_msg="table differs")


@FAST
@given(shift=st.integers(0, 200), start=st.integers(0, 200))
def test_sinusoidal_shift_is_a_fixed_rotation(impl, shift, start):
    """PE[p + k] is PE[p] with pair i rotated by k * freq_i, the same rotation for every p."""
    d = 8
    pe = impl.sinusoidal_positions(start + shift + 1, d, dtype=F64)
    freq = 10000 ** (-torch.arange(0, d, 2, dtype=F64) / d)
    c, s = torch.cos(shift * freq), torch.sin(shift * freq)
    sin_p, cos_p = pe[start, 0::2], pe[start, 1::2]
    rotated = torch.stack((sin_p * c + cos_p * s, cos_p * c - sin_p * s), dim=-1).flatten()
    torch.testing.assert_close(
        pe[start + shift], rotated, **TIGHT, msg="PE[p + k] is not PE[p] rotated by k"
    )


def test_learned_positions_add_rows_and_train_only_those_used(impl):
    """LearnedPositionalEmbedding adds weight[:T]; only the first T rows get a gradient."""
    torch.manual_seed(0)
    pos = impl.LearnedPositionalEmbedding(10, 4).double()
    x = torch.randn(2, 6, 4, dtype=F64)
    out = pos(x)
    torch.testing.assert_close(out, x + pos.weight[:6], **TIGHT, msg="output is not x + weight[:T]")
    g = torch.randn(2, 6, 4, dtype=F64)
    out.backward(g)
    torch.testing.assert_close(pos.weight.grad[:6], g.sum(0), **TIGHT, msg="row t's gradient")
    assert torch.all(pos.weight.grad[6:] == 0), "rows beyond T must get a zero gradient"
    with pytest.raises(ValueError):
        pos(torch.randn(1, 11, 4, dtype=F64))


def test_rope_matches_complex_multiplication(impl):
    """apply_rope rotates pairs (x[2i], x[2i+1]) like LLaMA's complex product: values and grads."""
    torch.manual_seed(1)
    x = torch.randn(2, 3, 5, 8, dtype=F64, requires_grad=True)
    positions = torch.tensor([0, 3, 4, 17, 1000])
    for pos_arg, pos in [(None, torch.arange(5)), (positions, positions)]:
        ours = impl.apply_rope(x, pos_arg)
        theirs = complex_rope(x, pos)
        torch.testing.assert_close(ours, theirs, **TIGHT, msg=f"values differ, positions {pos}")
        g = torch.randn_like(ours)
        (gx,) = torch.autograd.grad(ours, x, g)
        (gx_ref,) = torch.autograd.grad(theirs, x, g)
        torch.testing.assert_close(gx, gx_ref, **TIGHT, msg="gradient differs")


@FAST
@given(
    m=st.integers(0, 2000),
    n=st.integers(0, 2000),
    shift=st.integers(-500, 500),
    half=st.integers(1, 8),
    seed=st.integers(0, 10_000),
)
def test_rope_scores_depend_only_on_the_offset(impl, m, n, shift, half, seed):
    """<rope(q, m), rope(k, n)> equals <rope(q, m+s), rope(k, n+s)> and rotations keep lengths."""
    gen = torch.Generator().manual_seed(seed)
    q, k = torch.randn(2, 1, 2 * half, generator=gen, dtype=F64)
    m, n = max(m, -shift), max(n, -shift)  # positions stay >= 0 after the shift

    def at(v, p):
        return impl.apply_rope(v, torch.tensor([p]))[0]

    score = at(q, m) @ at(k, n)
    shifted = at(q, m + shift) @ at(k, n + shift)
    assert shifted.item() == pytest.approx(score.item(), abs=1e-9), (
        f"score changed under a shift of {shift}: {score.item()} vs {shifted.item()}"
    )
    assert at(q, m).norm().item() == pytest.approx(q.norm().item(), rel=1e-12), "norm changed"


# ---------------------------------------------------------------- norms


@FAST
@given(
    shape=st.sampled_from([(3, 4), (2, 3, 5), (1, 7)]),
    eps=st.sampled_from([1e-5, 1e-2]),
    bias=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_layer_norm_matches_torch(impl, shape, eps, bias, seed):
    """LayerNorm equals nn.LayerNorm (biased variance, eps inside the root): values and grads."""
    ours = randomise(impl.LayerNorm(shape[-1], eps=eps, bias=bias).double(), seed)
    theirs = nn.LayerNorm(shape[-1], eps=eps, bias=bias).double()
    theirs.load_state_dict(ours.state_dict())
    x = (
        3 * torch.randn(shape, dtype=F64, generator=torch.Generator().manual_seed(seed)) + 1
    ).requires_grad_()
    out, ref = ours(x), theirs(x)
    torch.testing.assert_close(out, ref, **TIGHT, msg="LayerNorm values differ from nn.LayerNorm")
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, [x, *ours.parameters()], g)
    want = torch.autograd.grad(ref, [x, *theirs.parameters()], g)
    for a, b, name in zip(got, want, ["x", "weight", "bias"]):
        torch.testing.assert_close(a, b, **TIGHT, msg=f"LayerNorm gradient of {name} differs")


@pytest.mark.parametrize("eps", [1e-6, 1e-2])
def test_rms_norm_matches_torch(impl, eps):
    """RMSNorm equals nn.RMSNorm: x / sqrt(mean(x^2) + eps) * weight, values and grads."""
    ours = randomise(impl.RMSNorm(6, eps=eps).double())
    theirs = nn.RMSNorm(6, eps=eps).double()
    theirs.load_state_dict(ours.state_dict())
    x = (2 * torch.randn(2, 3, 6, dtype=F64) + 0.5).requires_grad_()
    out, ref = ours(x), theirs(x)
    torch.testing.assert_close(out, ref, **TIGHT, msg="RMSNorm values differ from nn.RMSNorm")
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, [x, ours.weight], g)
    want = torch.autograd.grad(ref, [x, theirs.weight], g)
    for a, b, name in zip(got, want, ["x", "weight"]):
        torch.testing.assert_close(a, b, **TIGHT, msg=f"RMSNorm gradient of {name} differs")


# ---------------------------------------------------------------- feed-forward


@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_feed_forward_matches_torch_layers(impl, activation):
    """FeedForward is Linear -> ReLU/GELU (exact erf) -> Linear: values and grads match torch."""
    torch.manual_seed(2)
    ours = impl.FeedForward(5, 11, activation=activation).double()
    act = nn.ReLU() if activation == "relu" else nn.GELU()
    theirs = nn.Sequential(nn.Linear(5, 11), act, nn.Linear(11, 5)).double()
    theirs[0].load_state_dict(ours.linear1.state_dict())
    theirs[2].load_state_dict(ours.linear2.state_dict())
    x = torch.randn(2, 4, 5, dtype=F64, requires_grad=True)
    out, ref = ours(x), theirs(x)
    torch.testing.assert_close(out, ref, **TIGHT, msg=f"{activation} feed-forward values differ")
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, [x, ours.linear1.weight, ours.linear2.bias], g)
    want = torch.autograd.grad(ref, [x, theirs[0].weight, theirs[2].bias], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, **TIGHT, msg=f"{activation} feed-forward gradient differs")


def test_swiglu_matches_its_formula(impl):
    """SwiGLU is w2(silu(w1 x) * w3 x) with bias-free layers: values and grads."""
    torch.manual_seed(3)
    ours = impl.SwiGLU(6, 10).double()
    assert all(m.bias is None for m in (ours.w1, ours.w2, ours.w3)), "SwiGLU layers have no bias"
    x = torch.randn(3, 2, 6, dtype=F64, requires_grad=True)
    out = ours(x)
    w1, w2, w3 = (ours.w1.weight, ours.w2.weight, ours.w3.weight)
    ref = F.linear(F.silu(F.linear(x, w1)) * F.linear(x, w3), w2)
    torch.testing.assert_close(out, ref, **TIGHT, msg="SwiGLU values differ from the formula")
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, [x, w1, w2, w3], g)
    want = torch.autograd.grad(ref, [x, w1, w2, w3], g)
    for a, b, name in zip(got, want, ["x", "w1", "w2", "w3"]):
        torch.testing.assert_close(a, b, **TIGHT, msg=f"SwiGLU gradient of {name} differs")
