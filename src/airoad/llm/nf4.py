"""4-bit NormalFloat (NF4) quantisation and QLoRA, from scratch (Dettmers et al., 2023).

Block-wise absmax quantisation cuts a weight tensor into blocks of ``block_size`` numbers (64),
divides each block by its largest magnitude (the block's *absmax*, kept in fp32) so it lies in
[-1, 1], and replaces every number by the index of the nearest value of a small code book::

    index = argmin_j |w / absmax - code[j]|        w_hat = absmax * code[index]

int8 uses 255 evenly spaced values (``round(127 w / absmax)``), int4 15 of them. NF4 keeps 16
values but places them at quantiles of the standard normal, because trained weights are roughly
normal: each code value then stands for about the same share of the weights. 8 quantiles on the
positive side and 7 on the negative side (so that 0 is exact), normalised to [-1, 1]::

    offset = 1 - (1/30 + 1/32) / 2 = 0.9677083
    positive = Phi^-1(linspace(offset, 1/2, 9)[:-1]),  negative = -Phi^-1(linspace(offset, 1/2, 8)[:-1])

Double quantisation: 32-bit absmax per 64 weights costs 0.5 bit per weight. Subtract their mean
and quantise them again, to int8 in blocks of 256 (bitsandbytes uses an 8-bit float code there;
the storage is the same), which costs ``8/64 + 32/(64*256) = 0.127`` bit per weight instead.

QLoRA freezes the base model in NF4 and trains fp32 LoRA adapters on top. The weight is
dequantised when a layer runs, and again in the backward pass (the product ``x W^T`` needs ``W``
for the input's gradient) rather than keeping every dequantised weight alive until then.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from airoad.llm.lora_finetune import LoRALinear, wrap_linears

NF4_OFFSET = 1.0 - (1.0 / 30.0 + 1.0 / 32.0) / 2.0  # 0.9677083, halfway between 1-1/30 and 1-1/32


def nf4_code(offset: float = NF4_OFFSET) -> torch.Tensor:
    """The 16 NF4 values, sorted, in [-1, 1] with an exact 0: normal quantiles (see the module
    docstring) scaled by their largest value. float32, shape (16,)."""
    pos = torch.special.ndtri(torch.linspace(offset, 0.5, 9, dtype=torch.float64)[:-1])
    neg = -torch.special.ndtri(torch.linspace(offset, 0.5, 8, dtype=torch.float64)[:-1])
    code = torch.cat([neg, torch.zeros(1, dtype=torch.float64), pos]).sort().values
    return (code / code.max()).float()


def blockwise_absmax(x: torch.Tensor, block_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x`` flattened and zero-padded to whole blocks, as (n_blocks, block_size), and each
    block's largest magnitude (n_blocks,). Padding zeros never change an absmax."""
    flat = x.reshape(-1)
    blocks = F.pad(flat, (0, -flat.numel() % block_size)).view(-1, block_size)
    return blocks, blocks.abs().amax(dim=1)


def nearest_code(x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
    """Index (uint8) of the value of the sorted ``code`` nearest to each element of ``x``,
    without building a len(x) x len(code) table: compare with the midpoints between codes."""
    midpoints = (code[1:] + code[:-1]) / 2
    return torch.bucketize(x, midpoints.to(x.dtype)).to(torch.uint8)


def absmax_quantize(
    x: torch.Tensor, bits: int = 8, block_size: int = 64
) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric linear block-wise quantisation: ``q = round(x / absmax * L)`` with
    ``L = 2**(bits-1) - 1`` levels a side. Returns (q as int8, shape (n_blocks, block_size),
    padded) and the fp32 absmax per block (n_blocks,). An all-zero block gets q = 0."""
    levels = 2 ** (bits - 1) - 1
    blocks, absmax = blockwise_absmax(x.float(), block_size)
    scale = absmax.clamp_min(torch.finfo(torch.float32).tiny)[:, None]  # 0 / tiny = 0
    return torch.round(blocks / scale * levels).to(torch.int8), absmax


def absmax_dequantize(
    q: torch.Tensor, absmax: torch.Tensor, bits: int, shape: Sequence[int]
) -> torch.Tensor:
    """Undo ``absmax_quantize``: ``q * absmax / L`` per block, padding dropped, reshaped to
    ``shape``; float32."""
    levels = 2 ** (bits - 1) - 1
    flat = (q.float() * absmax[:, None] / levels).reshape(-1)
    return flat[: math.prod(shape)].reshape(tuple(shape))


@dataclass
class NF4Tensor:
    """A weight stored in NF4: two 4-bit code indices per byte and the block constants.

    Without double quantisation ``absmax`` is fp32 (n_blocks,). With it, ``absmax`` holds int8
    codes (padded to whole blocks of ``dq_block_size``), ``absmax_scale`` their fp32 absmax per
    block of constants, and ``absmax_mean`` the fp32 mean that was subtracted first.
    """

    packed: torch.Tensor  # uint8, (n_blocks * block_size / 2,): high nibble first
    absmax: torch.Tensor
    shape: tuple[int, ...]
    block_size: int
    absmax_scale: torch.Tensor | None = None
    absmax_mean: torch.Tensor | None = None
    dq_block_size: int = 256

    def nbytes(self) -> int:
        """Bytes of every stored tensor (the 4-bit codes and all the constants)."""
        tensors = (self.packed, self.absmax, self.absmax_scale, self.absmax_mean)
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def nf4_quantize(
    w: torch.Tensor, block_size: int = 64, double_quant: bool = True, dq_block_size: int = 256
) -> NF4Tensor:
    """Quantise ``w`` (any shape) to NF4 block by block, optionally double-quantising the
    absmax constants to int8 in blocks of ``dq_block_size`` after subtracting their mean."""
    if block_size % 2:
        raise ValueError(f"block_size must be even (two 4-bit codes a byte), got {block_size}")
    blocks, absmax = blockwise_absmax(w.detach().float(), block_size)
    scale = absmax.clamp_min(torch.finfo(torch.float32).tiny)[:, None]
    index = nearest_code(blocks / scale, nf4_code()).view(-1)
    packed = (index[0::2] << 4) | index[1::2]
    shape = tuple(w.shape)
    if not double_quant:
        return NF4Tensor(packed, absmax, shape, block_size)
    mean = absmax.mean()  # centred constants use the int8 range on both sides
    q2, scale2 = absmax_quantize(absmax - mean, 8, dq_block_size)
    return NF4Tensor(packed, q2.view(-1), shape, block_size, scale2, mean, dq_block_size)


def block_absmax(q: NF4Tensor) -> torch.Tensor:
    """The fp32 absmax per block of ``q`` (n_blocks,), undoing the double quantisation if any."""
    if q.absmax_scale is None:
        return q.absmax
    n_blocks = 2 * q.packed.numel() // q.block_size
    q2 = q.absmax.view(-1, q.dq_block_size)
    return absmax_dequantize(q2, q.absmax_scale, 8, (n_blocks,)) + q.absmax_mean


def nf4_dequantize(q: NF4Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``absmax * code[index]`` for every element, in ``q.shape`` and ``dtype``."""
    index = torch.stack([q.packed >> 4, q.packed & 15], dim=1).view(-1).long()
    values = nf4_code().to(dtype)[index].view(-1, q.block_size)
    values = values * block_absmax(q).to(dtype)[:, None]
    return values.view(-1)[: math.prod(q.shape)].view(q.shape)


def bits_per_parameter(
    block_size: int = 64, double_quant: bool = True, dq_block_size: int = 256, bits: int = 4
) -> float:
    """Storage per weight in bits, closed form: ``bits + 32/block`` with fp32 constants, or
    ``bits + 8/block + 32/(block * dq_block)`` with double quantisation (the one fp32 mean is
    left out: it is a few bits for the whole tensor)."""
    if not double_quant:
        return bits + 32 / block_size
    return bits + 8 / block_size + 32 / (block_size * dq_block_size)


class _NF4MatMul(torch.autograd.Function):
    """``x W^T`` with ``W`` dequantised from NF4 in forward AND in backward, so no dequantised
    weight is kept for the backward pass. ``W`` is frozen: only ``x`` gets a gradient."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, q: NF4Tensor) -> torch.Tensor:
        ctx.q = q  # the 4-bit weight only; x is not needed either (W gets no gradient)
        return x @ nf4_dequantize(q, x.dtype).T

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        return grad_out @ nf4_dequantize(ctx.q, grad_out.dtype), None


class NF4Linear(nn.Module):
    """A frozen ``nn.Linear`` whose weight is stored in NF4 and dequantised on the fly.

    ``forward(x) = x W_hat^T + b`` with ``W_hat = nf4_dequantize(self.weight_q)`` in the input's
    dtype; the bias (if any) stays in full precision as a frozen buffer.
    """

    def __init__(
        self,
        base: nn.Linear,
        block_size: int = 64,
        double_quant: bool = True,
        dq_block_size: int = 256,
    ):
        super().__init__()
        self.in_features, self.out_features = base.in_features, base.out_features
        self.compute_dtype = base.weight.dtype
        self.weight_q = nf4_quantize(base.weight.detach(), block_size, double_quant, dq_block_size)
        bias = None if base.bias is None else base.bias.detach().clone()
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(..., in) -> (..., out) through the dequantised weight."""
        y = _NF4MatMul.apply(x, self.weight_q)
        return y if self.bias is None else y + self.bias.to(y.dtype)


class QLoRALinear(LoRALinear):
    """LoRA on an NF4 base: ``NF4Linear(base)(x) + (alpha / r) dropout(x) A^T B^T``; only A, B train."""

    def __init__(
        self,
        base: nn.Linear,
        r: int = 8,
        alpha: float = 16.0,
        dropout: float = 0.0,
        generator: torch.Generator | None = None,
        block_size: int = 64,
        double_quant: bool = True,
    ):
        super().__init__(NF4Linear(base, block_size, double_quant), r, alpha, dropout, generator)


def add_qlora(
    model: nn.Module,
    target_modules: Sequence[str] = ("q_proj", "v_proj"),
    quantize_modules: Sequence[str] = ("k_proj", "o_proj", "gate_proj", "up_proj", "down_proj"),
    r: int = 8,
    alpha: float = 16.0,
    dropout: float = 0.0,
    seed: int = 0,
    block_size: int = 64,
    double_quant: bool = True,
) -> list[str]:
    """Freeze ``model``; wrap ``target_modules`` in ``QLoRALinear`` (one generator seeded with
    ``seed``) and replace ``quantize_modules`` by ``NF4Linear``, in place. Only the LoRA
    matrices train. Returns the names given LoRA adapters."""
    model.requires_grad_(False)
    gen = torch.Generator().manual_seed(seed)

    def lora(lin: nn.Module) -> nn.Module:
        return QLoRALinear(lin, r, alpha, dropout, gen, block_size, double_quant)

    names = wrap_linears(model, target_modules, lora)
    if quantize_modules:
        wrap_linears(model, quantize_modules, lambda lin: NF4Linear(lin, block_size, double_quant))
    return names
