"""Tensor parallelism of a transformer MLP block, Megatron style: the first Linear is split by
columns (output features), the second by rows (input features), so N ranks each hold 1/N of
both weight matrices and meet only once per forward pass, in one all-reduce.

The block is ``y = gelu(x W1^T + b1) W2^T + b2`` with W1 (H, C) and W2 (C, H). Cut the hidden
width H into N slices of H/N. Rank r keeps the rows W1[r] (H/N, C), b1[r] and the columns
W2[:, r] (C, H/N). GELU acts on each hidden unit alone, so rank r can compute its slice of the
hidden layer with no communication, and the output is a sum over the slices::

    y = sum_r gelu(x W1[r]^T + b1[r]) W2[:, r]^T  + b2       (one all-reduce of (..., C))

Backward needs the mirror image. Two "conjugate" operators mark the borders of the parallel
region (Shoeybi et al. 2019, "Megatron-LM"): f, at the input, is the identity forward and an
all-reduce of dL/dx backward (each rank only holds its slice's share of dL/dx); g, at the
output, is an all-reduce forward and the identity backward (every rank gets the full dL/dy).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn


def shard_bounds(size: int, rank: int, world: int) -> tuple[int, int]:
    """[start, end) of rank's contiguous slice when ``size`` is cut into ``world`` equal parts.

    ``size`` must be divisible by ``world`` (a ValueError otherwise, naming both numbers).
    """
    if size % world:
        raise ValueError(f"size {size} is not divisible by world size {world}")
    step = size // world
    return rank * step, (rank + 1) * step


class _CopyToParallel(torch.autograd.Function):
    """f: identity forward, all-reduce (sum) of the gradient backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        ctx.group = group
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        grad = grad.contiguous().clone()
        dist.all_reduce(grad, group=ctx.group)
        return grad, None


class _ReduceFromParallel(torch.autograd.Function):
    """g: all-reduce (sum) forward, identity backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, group) -> torch.Tensor:
        x = x.contiguous().clone()
        dist.all_reduce(x, group=group)
        return x

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None


def copy_to_parallel(x: torch.Tensor, group=None) -> torch.Tensor:
    """Megatron's f: returns x unchanged; its gradient is summed over the ranks of ``group``."""
    return _CopyToParallel.apply(x, group)


def reduce_from_parallel(x: torch.Tensor, group=None) -> torch.Tensor:
    """Megatron's g: the sum of x over the ranks of ``group``; the gradient passes unchanged."""
    return _ReduceFromParallel.apply(x, group)


class ParallelMLP(nn.Module):
    """Rank ``rank``'s shard of an MLP whose ``c_fc`` (Linear C -> H) and ``c_proj`` (Linear
    H -> C) are split over ``world`` ranks (``char_gpt.MLP``'s layout).

    ``c_fc`` is a Linear C -> H/N holding rows [r H/N, (r+1) H/N) of the full W1 and b1 (column
    parallel); ``c_proj_weight`` (C, H/N) holds the same columns of W2 (row parallel);
    ``c_proj_bias`` (C,) is the full b2, added once AFTER the sum so it is not counted N times.
    The tensors are copies (``clone``), so training a shard never writes into ``mlp``.
    """

    def __init__(self, mlp: nn.Module, rank: int, world: int):
        super().__init__()
        hidden, width = mlp.c_fc.weight.shape
        lo, hi = shard_bounds(hidden, rank, world)
        self.rank, self.world = rank, world
        self.c_fc = nn.Linear(width, hi - lo, dtype=mlp.c_fc.weight.dtype)
        with torch.no_grad():
            self.c_fc.weight.copy_(mlp.c_fc.weight[lo:hi])
            self.c_fc.bias.copy_(mlp.c_fc.bias[lo:hi])
        self.c_proj_weight = nn.Parameter(mlp.c_proj.weight[:, lo:hi].detach().clone())
        self.c_proj_bias = nn.Parameter(mlp.c_proj.bias.detach().clone())

    def partial(self, x: torch.Tensor) -> torch.Tensor:
        """This rank's share of the output WITHOUT b2: gelu(x W1[r]^T + b1[r]) W2[:, r]^T.

        x (..., C) -> (..., C). No communication.
        """
        return F.linear(F.gelu(self.c_fc(x)), self.c_proj_weight)

    def forward(self, x: torch.Tensor, group=None) -> torch.Tensor:
        """The full MLP output on every rank: g(partial(f(x))) + b2, x (..., C) -> (..., C).

        Needs an initialised process group whose ranks each hold their own shard and the same x.
        """
        y = reduce_from_parallel(self.partial(copy_to_parallel(x, group)), group)
        return y + self.c_proj_bias


def sum_of_shards(x: torch.Tensor, shards: list[ParallelMLP]) -> torch.Tensor:
    """What N ranks compute together, on one process: sum of every shard's partial + b2.

    Equal to the unsharded MLP of x up to float rounding. x (..., C) -> (..., C).
    """
    return torch.stack([s.partial(x) for s in shards]).sum(0) + shards[0].c_proj_bias
