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
