"""ZeRO (Rajbhandari et al. 2020) from scratch: data-parallel training where each of N ranks
keeps only 1/N of the optimizer state (stage 1) and also only 1/N of the gradients (stage 2),
with the same result as plain data parallelism (DDP).

With Adam in float32, a model of P parameters costs per rank, in bytes:

    DDP / stage 0:  4P params + 4P grads + 8P Adam moments   = 16P
    ZeRO-1:         4P       + 4P       + 8P / N
    ZeRO-2:         4P       + 4P / N   + 8P / N
    ZeRO-3 (FSDP):  (4P + 4P + 8P) / N                         (params sharded too)

Every parameter, flattened, is padded to a multiple of N and cut into N equal chunks; rank r
owns chunk r (``shard_bounds``). An optimizer step is then:

1. average the gradients: stage 1 all-reduces each full gradient (and keeps it); stage 2
   reduce-scatters each gradient the moment backward finishes it, keeps only its own chunk and
   frees the full gradient, so at most one full gradient is alive at a time;
2. run AdamW on the owned chunk only, with moments of chunk size;
3. all-gather the updated chunks so every rank holds the whole new parameter again.

Averaging is associative, and AdamW is element-wise, so updating chunk by chunk and gathering
gives exactly what every DDP rank computes on the whole tensor.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn


def memory_per_rank(
    n_params: int,
    world: int,
    stage: int,
    param_bytes: int = 4,
    grad_bytes: int = 4,
    optim_bytes: int = 8,
) -> dict[str, float]:
    """Bytes each rank holds for parameters, gradients and optimizer state (ZeRO paper, Fig. 1).

    ``stage`` 0 is DDP (nothing sharded), 1 shards the optimizer state, 2 also the gradients,
    3 also the parameters (FSDP). ``optim_bytes`` is per parameter (8 for Adam's two float32
    moments; 12 with mixed precision's float32 master copy). Returns
    {"params", "grads", "optimizer", "total"}; a stage outside 0..3 or world < 1 is a ValueError.
    """
    if stage not in (0, 1, 2, 3) or world < 1:
        raise ValueError(f"stage must be 0..3 and world >= 1, got stage={stage}, world={world}")
    params = n_params * param_bytes / (world if stage >= 3 else 1)
    grads = n_params * grad_bytes / (world if stage >= 2 else 1)
    optimizer = n_params * optim_bytes / (world if stage >= 1 else 1)
    return {
        "params": params,
        "grads": grads,
        "optimizer": optimizer,
        "total": params + grads + optimizer,
    }


def shard_bounds(numel: int, rank: int, world: int) -> tuple[int, int, int]:
    """Rank's chunk of a flat tensor of ``numel`` elements padded to a multiple of ``world``.

    Returns (chunk, lo, hi): every chunk has ``chunk = ceil(numel / world)`` slots; rank's real
    elements are flat[lo:hi] with lo = min(rank * chunk, numel), hi = min(lo + chunk, numel)
    (hi - lo < chunk only where the padding falls; it may be 0 on the last ranks).
    """
    chunk = -(-numel // world)
    lo = min(rank * chunk, numel)
    return chunk, lo, min(lo + chunk, numel)


@torch.no_grad()
def adamw_step_(
    param: torch.Tensor,
    grad: torch.Tensor,
    exp_avg: torch.Tensor,
    exp_avg_sq: torch.Tensor,
    step: int,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.0,
) -> None:
    """One AdamW update of ``param`` in place (``step`` counts from 1), element-wise, so it works
    on any chunk of a tensor; ``exp_avg`` and ``exp_avg_sq`` (same shape) are updated in place.

    m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p = p (1 - lr wd)      (decoupled decay)
    p = p - lr (m / (1 - b1^t)) / (sqrt(v) / sqrt(1 - b2^t) + eps)     as torch.optim.AdamW,
    in the same order of operations, so float32 results agree to the last bit.
    """
    b1, b2 = betas
    param.mul_(1.0 - lr * weight_decay)
    exp_avg.lerp_(grad, 1.0 - b1)
    exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1.0 - b2)
    denom = (exp_avg_sq.sqrt() / (1.0 - b2**step) ** 0.5).add_(eps)  # torch's order of ops
    param.addcdiv_(exp_avg, denom, value=-lr / (1.0 - b1**step))


class ZeroAdamW:
    """AdamW sharded ZeRO-style over the ranks of ``group`` (stage 1 or 2); use it in place of
    ``DistributedDataParallel`` + ``torch.optim.AdamW``: every rank runs the same model on its
    own batch, then ``loss.backward()``, ``opt.step()``, ``opt.zero_grad()``.

    ``params`` must be identical on every rank at the start (e.g. built from the same seed);
    they stay identical after each step. Stage 2 registers a hook on each parameter that
    reduce-scatters its gradient as soon as backward has accumulated it and then frees it (so
    ``p.grad`` is None after backward); call backward once per step. ``exp_avg[i]`` and
    ``exp_avg_sq[i]`` hold only this rank's chunk of parameter i.
    """

    def __init__(
        self,
        params: Iterable[nn.Parameter],
        stage: int = 1,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        group: dist.ProcessGroup | None = None,
    ):
        if stage not in (1, 2):
            raise ValueError(f"stage must be 1 or 2, got {stage}")
        self.params = list(dict.fromkeys(params))  # a tied parameter once
        self.stage, self.lr, self.betas, self.eps = stage, lr, betas, eps
        self.weight_decay, self.group, self.step_count = weight_decay, group, 0
        self.rank, self.world = dist.get_rank(group), dist.get_world_size(group)
        self.bounds = [shard_bounds(p.numel(), self.rank, self.world) for p in self.params]
        self.exp_avg = [p.new_zeros(hi - lo) for p, (_, lo, hi) in zip(self.params, self.bounds)]
        self.exp_avg_sq = [torch.zeros_like(m) for m in self.exp_avg]
        self.grad_shards: list[torch.Tensor | None] = [None] * len(self.params)
        if stage == 2:
            for i, p in enumerate(self.params):
                p.register_post_accumulate_grad_hook(lambda p, i=i: self._reduce_scatter(i, p))

    @staticmethod
    def _padded(flat: torch.Tensor, size: int) -> torch.Tensor:
        """flat (n,) zero-padded to (size,)."""
        return torch.cat([flat, flat.new_zeros(size - flat.numel())])

    def _reduce_scatter(self, i: int, p: nn.Parameter) -> None:
        """Stage 2: this rank's chunk of the averaged gradient of parameter i; free p.grad."""
        chunk, lo, hi = self.bounds[i]
        out = p.grad.new_empty(chunk)
        dist.reduce_scatter_single(
            out, self._padded(p.grad.reshape(-1), chunk * self.world), group=self.group
        )
        self.grad_shards[i] = out[: hi - lo].div_(self.world)
        p.grad = None

    def _gradient_chunk(self, i: int) -> torch.Tensor:
        """Stage 1: all-reduce parameter i's full gradient (kept, averaged); return our chunk."""
        p, (_, lo, hi) = self.params[i], self.bounds[i]
        dist.all_reduce(p.grad, group=self.group)
        p.grad.div_(self.world)
        return p.grad.reshape(-1)[lo:hi]

    @torch.no_grad()
    def step(self) -> None:
        """Average the gradients, update this rank's chunks with AdamW, all-gather the result."""
        self.step_count += 1
        for i, p in enumerate(self.params):
            chunk, lo, hi = self.bounds[i]
            grad = self._gradient_chunk(i) if self.stage == 1 else self.grad_shards[i]
            flat = p.data.reshape(-1)  # a view: updating a slice updates p
            adamw_step_(
                flat[lo:hi], grad, self.exp_avg[i], self.exp_avg_sq[i], self.step_count,
                self.lr, self.betas, self.eps, self.weight_decay,
            )  # fmt: skip
            gathered = flat.new_empty(chunk * self.world)
            dist.all_gather_single(gathered, self._padded(flat[lo:hi], chunk), group=self.group)
            flat.copy_(gathered[: flat.numel()])

    def zero_grad(self) -> None:
        """Drop the gradients (stage 1) and gradient chunks (stage 2) of the last step."""
        for p in self.params:
            p.grad = None
        self.grad_shards = [None] * len(self.params)

    def held_bytes(self) -> dict[str, int]:
        """Bytes this rank holds now: {"params", "grads", "optimizer"}.

        Call it between backward and step to see the gradient memory of the stage.
        """
        grads = [p.grad for p in self.params if p.grad is not None]
        grads += [g for g in self.grad_shards if g is not None]
        moments = self.exp_avg + self.exp_avg_sq
        return {
            "params": sum(p.numel() * p.element_size() for p in self.params),
            "grads": sum(g.numel() * g.element_size() for g in grads),
            "optimizer": sum(m.numel() * m.element_size() for m in moments),
        }
