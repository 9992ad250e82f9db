"""Helpers the transformer graders share (kept beside them; pytest puts this folder on sys.path)."""

from __future__ import annotations

import torch
from torch import nn

F64 = torch.float64
TOL64 = {"atol": 1e-10, "rtol": 1e-10}  # float64 comparisons with torch


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def randn64(g: torch.Generator, *shape: int, grad: bool = True) -> torch.Tensor:
    """A float64 standard-normal tensor from `g`, with requires_grad unless grad=False."""
    return torch.randn(*shape, generator=g, dtype=F64).requires_grad_(grad)


def randomise(module: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Move every parameter away from its initial value (ones/zeros would hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def complex_rope(x: torch.Tensor, positions: torch.Tensor, base: float = 10000.0):
    """RoPE as in Meta's LLaMA code: pairs as complex numbers times e^(i p theta)."""
    dh = x.shape[-1]
    theta = base ** (-torch.arange(0, dh, 2, dtype=F64) / dh)
    rot = torch.polar(torch.ones(len(positions), dh // 2, dtype=F64), positions[:, None] * theta)
    z = torch.view_as_complex(x.reshape(*x.shape[:-1], dh // 2, 2).contiguous())
    return torch.view_as_real(z * rot).flatten(-2)


# Attention graders (test_attention.py).


def random_mask(g: torch.Generator, *shape: int, keep_one: bool = True) -> torch.Tensor:
    """Random bool mask; with keep_one, key 0 of every row stays visible (no empty row)."""
    mask = torch.rand(*shape, generator=g) < 0.6
    if keep_one:
        mask[..., 0] = True
    return mask


def grads(out: torch.Tensor, g_out: torch.Tensor, tensors) -> list[torch.Tensor]:
    return list(torch.autograd.grad(out, tensors, g_out))


def mha_pair(impl, e, h, kdim=None, vdim=None, seed=0):
    """(ours, theirs): the learner's MultiHeadAttention with nn.MultiheadAttention's weights
    copied in (float64, non-zero biases)."""
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(e, h, kdim=kdim, vdim=vdim, batch_first=True).double()
    with torch.no_grad():  # torch initialises biases to 0: make them count in the comparison
        theirs.in_proj_bias.normal_()
        theirs.out_proj.bias.normal_()
    ours = impl.MultiHeadAttention(e, h, kdim=kdim, vdim=vdim).double()
    return impl.copy_from_torch(ours, theirs), theirs


def their_proj_grads(theirs):
    if theirs.in_proj_weight is not None:
        return list(theirs.in_proj_weight.grad.split(theirs.embed_dim))
    return [theirs.q_proj_weight.grad, theirs.k_proj_weight.grad, theirs.v_proj_weight.grad]
