"""Weight-only int4 quantisation with group-wise scales, and magnitude / structured pruning,
from scratch.

int4, group-wise. Each row of a Linear weight ``W`` (out, in) is cut into groups of
``group_size`` consecutive input columns; every group gets its own fp32 scale, so one large
weight only coarsens the grid of its own group::

    symmetric:  s = max|w| / 7                  u = clamp(round(w / s), -8, 7) + 8   w_hat = (u - 8) s
    asymmetric: s = (hi - lo) / 15              z = round(-lo / s)   (lo = min(w, 0), hi = max(w, 0))
                u = clamp(round(w / s) + z, 0, 15)                                   w_hat = (u - z) s

``u`` is a 4-bit code in 0..15; two codes share a byte (even column in the low nibble, odd
column in the high nibble), so a weight costs 4 bits plus 32/group_size bits of scale (plus
8/group_size for the asymmetric zero point). Rounding to the nearest code moves no weight by
more than s/2. ``Int4Linear`` keeps only the packed codes and the scales, and rebuilds the fp32
weight when it runs (dequantise on the fly): memory and disk shrink, arithmetic stays fp32.

Pruning. Magnitude (unstructured) pruning zeroes the ``round(amount * n)`` weights of smallest
``|w|`` in a tensor (``torch.nn.utils.prune.l1_unstructured``); structured pruning zeroes whole
rows (dim 0: output neurons) or columns (dim 1) with the smallest L_n norm
(``prune.ln_structured``). Both return a 0/1 mask of the weight's shape; ``w * mask`` prunes.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class Int4Weight:
    """A quantised (out, in) weight: ``packed`` (out, padded_in // 2) uint8, ``scales``
    (out, n_groups) fp32, ``zeros`` (out, n_groups) uint8 (asymmetric) or None (symmetric,
    zero point 8), the original ``shape`` and the ``group_size``. ``padded_in`` is ``in``
    rounded up to whole groups (the padding columns are zeros and are dropped on the way out)."""

    packed: torch.Tensor
    scales: torch.Tensor
    zeros: torch.Tensor | None
    shape: tuple[int, int]
    group_size: int

    def nbytes(self) -> int:
        """Bytes of the stored tensors (codes, scales, zero points)."""
        parts = [self.packed, self.scales] + ([self.zeros] if self.zeros is not None else [])
        return sum(t.numel() * t.element_size() for t in parts)


def pack_int4(codes: torch.Tensor) -> torch.Tensor:
    """Two 4-bit codes per byte along the last axis: ``codes`` (..., 2k) integers in 0..15 ->
    (..., k) uint8 with ``byte = codes[..., 0::2] | codes[..., 1::2] << 4``."""
    if codes.shape[-1] % 2:
        raise ValueError(f"pack_int4 needs an even last axis, got {codes.shape[-1]}")
    c = codes.to(torch.uint8)
    return c[..., 0::2] | (c[..., 1::2] << 4)


def unpack_int4(packed: torch.Tensor) -> torch.Tensor:
    """Inverse of ``pack_int4``: (..., k) uint8 -> (..., 2k) uint8 codes in 0..15."""
    low, high = packed & 0x0F, packed >> 4
    return torch.stack([low, high], dim=-1).flatten(-2)


def _groups(weight: torch.Tensor, group_size: int) -> torch.Tensor:
    """(out, in) -> (out, n_groups, group_size), zero-padded to whole groups."""
    out_features, in_features = weight.shape
    padded = F.pad(weight, (0, -in_features % group_size))
    return padded.view(out_features, -1, group_size)


def quantize_int4(weight: torch.Tensor, group_size: int = 64, symmetric: bool = True) -> Int4Weight:
    """Group-wise int4 codes of a 2-D ``weight`` (out, in) and their scales (formulas in the
    module docstring). ``group_size`` must be even; an all-zero group gets scale 1 (any scale
    represents it exactly)."""
    if weight.dim() != 2 or group_size < 2 or group_size % 2:
        raise ValueError("quantize_int4 needs a 2-D weight and an even group_size >= 2")
    g = _groups(weight.detach().float(), group_size)
    if symmetric:
        scales = g.abs().amax(dim=-1) / 7.0
        scales = torch.where(scales > 0, scales, torch.ones_like(scales))
        codes = torch.clamp(torch.round(g / scales[..., None]), -8, 7) + 8
        zeros = None
    else:
        # the range always holds 0, so 0 (padding, pruned weights) is exact and z fits 0..15
        lo, hi = g.amin(dim=-1).clamp(max=0), g.amax(dim=-1).clamp(min=0)
        scales = (hi - lo) / 15.0
        scales = torch.where(scales > 0, scales, torch.ones_like(scales))
        zeros = torch.round(-lo / scales)
        codes = torch.clamp(torch.round(g / scales[..., None]) + zeros[..., None], 0, 15)
        zeros = zeros.to(torch.uint8)
    packed = pack_int4(codes.flatten(1))
    return Int4Weight(packed, scales, zeros, tuple(weight.shape), group_size)


def dequantize_int4(q: Int4Weight) -> torch.Tensor:
    """The fp32 weight (out, in) that the codes stand for: ``(u - zero) * scale`` per group."""
    out_features, in_features = q.shape
    codes = unpack_int4(q.packed).view(out_features, -1, q.group_size).float()
    zeros = q.zeros.float() if q.zeros is not None else torch.full_like(q.scales, 8.0)
    w = (codes - zeros[..., None]) * q.scales[..., None]
    return w.view(out_features, -1)[:, :in_features]


class Int4Linear(nn.Module):
    """``y = x W_hat^T + b`` with ``W_hat = dequantize_int4(...)`` rebuilt at every call from
    the stored int4 codes and scales (no fp32 weight is kept). Same shapes as ``nn.Linear``."""

    def __init__(self, q: Int4Weight, bias: torch.Tensor | None = None) -> None:
        super().__init__()
        self.shape, self.group_size = q.shape, q.group_size
        self.in_features, self.out_features = q.shape[1], q.shape[0]
        self.register_buffer("packed", q.packed)
        self.register_buffer("scales", q.scales)
        self.register_buffer("zeros", q.zeros)
        self.bias = None if bias is None else nn.Parameter(bias.detach().clone())

    @classmethod
    def from_linear(
        cls, linear: nn.Linear, group_size: int = 64, symmetric: bool = True
    ) -> Int4Linear:
        """An ``Int4Linear`` holding ``linear``'s weight quantised by ``quantize_int4``."""
        return cls(quantize_int4(linear.weight, group_size, symmetric), linear.bias)

    def weight_int4(self) -> Int4Weight:
        """The stored codes and scales as an ``Int4Weight``."""
        return Int4Weight(self.packed, self.scales, self.zeros, self.shape, self.group_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, dequantize_int4(self.weight_int4()).to(x.dtype), self.bias)


def _linears(model: nn.Module, names: Iterable[str] | None) -> list[tuple[str, nn.Linear]]:
    wanted = None if names is None else set(names)
    found = [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    return [(n, m) for n, m in found if wanted is None or n in wanted]


def quantize_linears_int4(
    model: nn.Module,
    group_size: int = 64,
    symmetric: bool = True,
    names: Iterable[str] | None = None,
) -> nn.Module:
    """Replace every ``nn.Linear`` of ``model`` (or only those in ``names``, as given by
    ``named_modules``) by an ``Int4Linear``, in place; returns ``model``."""
    for name, linear in _linears(model, names):
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, Int4Linear.from_linear(linear, group_size, symmetric))
    return model


def _n_to_prune(amount: float | int, size: int) -> int:
    """``amount`` as a count: an int is a count, a float in [0, 1] a fraction (Python round)."""
    if isinstance(amount, bool) or not isinstance(amount, (int, float)):
        raise TypeError(f"amount must be an int or a float, not {type(amount).__name__}")
    count = amount if isinstance(amount, int) else round(amount * size)
    if isinstance(amount, float) and not 0.0 <= amount <= 1.0 or not 0 <= count <= size:
        raise ValueError(f"cannot prune {amount} of {size} units")
    return count


def l1_unstructured_mask(weight: torch.Tensor, amount: float | int) -> torch.Tensor:
    """0/1 mask (weight's shape and dtype) that zeroes the ``amount`` entries of smallest
    ``|w|`` (a fraction rounded to a count, or a count), like ``prune.l1_unstructured``."""
    k = _n_to_prune(amount, weight.numel())
    mask = torch.ones_like(weight)
    if k:
        smallest = torch.topk(weight.detach().abs().flatten(), k, largest=False).indices
        mask.view(-1)[smallest] = 0
    return mask


def ln_structured_mask(
    weight: torch.Tensor, amount: float | int, n: float = 2, dim: int = 0
) -> torch.Tensor:
    """0/1 mask that zeroes the ``amount`` slices along ``dim`` (rows for dim 0) whose L_n norm
    over the other axes is smallest, like ``prune.ln_structured(..., n=n, dim=dim)``."""
    size = weight.shape[dim]
    keep = size - _n_to_prune(amount, size)
    others = [d for d in range(weight.dim()) if d != dim % weight.dim()]
    norms = torch.linalg.vector_norm(weight.detach(), ord=n, dim=others)
    kept = torch.topk(norms, keep, largest=True).indices
    shape = [1] * weight.dim()
    shape[dim] = size
    channel = torch.zeros(size, dtype=weight.dtype, device=weight.device)
    channel[kept] = 1
    return channel.view(shape).expand_as(weight).clone()


@torch.no_grad()
def prune_linears(
    model: nn.Module,
    amount: float,
    structured: bool = False,
    names: Iterable[str] | None = None,
) -> dict[str, torch.Tensor]:
    """Prune the weight of every ``nn.Linear`` (or those in ``names``) in place, each layer on
    its own: magnitude pruning, or with ``structured`` whole output rows by L2 norm. Returns
    the masks by module name."""
    masks = {}
    for name, linear in _linears(model, names):
        w = linear.weight
        mask = (
            ln_structured_mask(w, amount, 2, 0) if structured else l1_unstructured_mask(w, amount)
        )
        w.mul_(mask)
        masks[name] = mask
    return masks
