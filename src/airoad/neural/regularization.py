"""Regularisation and training tricks, written out with tensor ops and checked against torch.

- inverted dropout: zero each unit with probability p, scale the survivors by 1/(1-p), so the
  expected activation is unchanged and evaluation needs no rescaling;
- batch norm: y = gamma * (x - mean_B) / sqrt(var_B + eps) + beta with batch statistics in
  training and running averages (momentum m: r <- (1-m) r + m * stat, unbiased variance) in eval;
- L1 / L2 penalties, early stopping, linear warm-up + cosine annealing of the learning rate;
- gradient accumulation: k micro-batches, each loss scaled by its share of the batch, sum to
  the gradient of one big batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn


def dropout(
    x: torch.Tensor, p: float, training: bool = True, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Inverted dropout: keep each entry with probability 1-p and divide kept entries by 1-p.

    Identity when not training or p == 0; all zeros when p == 1. Same shape as x.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return torch.zeros_like(x)
    keep = torch.rand(x.shape, generator=generator, dtype=x.dtype) >= p
    return x * keep / (1.0 - p)


class Dropout(nn.Module):
    """Module wrapper of `dropout` with its own seeded Generator (active only in train mode)."""

    def __init__(self, p: float = 0.5, seed: int = 0):
        super().__init__()
        self.p = p
        self.generator = torch.Generator().manual_seed(seed)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply inverted dropout in training mode; return x unchanged in eval mode."""
        return dropout(x, self.p, self.training, self.generator)


def batch_norm(
    x: torch.Tensor,
    gamma: torch.Tensor,
    beta: torch.Tensor,
    running_mean: torch.Tensor,
    running_var: torch.Tensor,
    training: bool,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> torch.Tensor:
    """Batch norm over every axis except 1 (x is (N, C) or (N, C, H, W); gamma, beta (C,)).

    Training: normalise with the batch mean and biased variance, and update the running
    buffers in place with the unbiased variance, r <- (1 - momentum) r + momentum * stat.
    Eval: normalise with the running buffers. Returns a tensor shaped like x.
    """
    axes = [0] + list(range(2, x.dim()))
    shape = [1, -1] + [1] * (x.dim() - 2)  # broadcast (C,) over (N, C, ...)
    if training:
        mean = x.mean(dim=axes)
        var = x.var(dim=axes, unbiased=False)
        count = x.numel() // x.shape[1]
        with torch.no_grad():
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / max(count - 1, 1))
    else:
        mean, var = running_mean, running_var
    x_hat = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + eps)
    return gamma.reshape(shape) * x_hat + beta.reshape(shape)


class BatchNorm(nn.Module):
    """Batch norm for (N, C) or (N, C, H, W) inputs, a drop-in for nn.BatchNorm1d / 2d."""

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5):
        super().__init__()
        self.momentum, self.eps = momentum, eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Batch statistics in train mode (updating the running buffers), running ones in eval."""
        return batch_norm(
            x,
            self.weight,
            self.bias,
            self.running_mean,
            self.running_var,
            self.training,
            self.momentum,
            self.eps,
        )


def l1_penalty(params: Iterable[torch.Tensor], lam: float) -> torch.Tensor:
    """lam * sum |w| over the given tensors (gradient lam * sign(w): pushes weights to exactly 0)."""
    return lam * sum(p.abs().sum() for p in params)


def l2_penalty(params: Iterable[torch.Tensor], lam: float) -> torch.Tensor:
    """(lam / 2) * sum w^2 over the given tensors; its gradient lam * w is SGD's weight_decay=lam."""
    return 0.5 * lam * sum((p * p).sum() for p in params)


class EarlyStopping:
    """Stop when the monitored value has not improved by more than min_delta for `patience` calls.

    `step(value)` returns True when training should stop; `best`, `best_epoch` (0-based call
    index) and `bad_epochs` describe the history. mode "min" for losses, "max" for accuracies.
    """

    def __init__(self, patience: int = 5, min_delta: float = 0.0, mode: str = "min"):
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        self.patience, self.min_delta, self.mode = patience, min_delta, mode
        self.best: float | None = None
        self.best_epoch = -1
        self.bad_epochs = 0
        self.calls = 0

    def step(self, value: float) -> bool:
        """Record one epoch's value; True once `patience` epochs in a row failed to improve."""
        sign = 1.0 if self.mode == "min" else -1.0
        if self.best is None or sign * (self.best - value) > self.min_delta:
            self.best, self.best_epoch, self.bad_epochs = value, self.calls, 0
        else:
            self.bad_epochs += 1
        self.calls += 1
        return self.bad_epochs >= self.patience


def warmup_cosine_lr(
    step: int,
    base_lr: float,
    warmup_steps: int,
    total_steps: int,
    min_lr: float = 0.0,
    start_factor: float = 0.1,
) -> float:
    """Learning rate at `step` (0-based): linear warm-up, then cosine annealing to min_lr.

    step < warmup: base_lr * (start_factor + (1 - start_factor) * step / warmup_steps)
    after:         min_lr + (base_lr - min_lr) * (1 + cos(pi * t / T)) / 2,
                   t = step - warmup_steps, T = total_steps - warmup_steps.
    """
    if step < warmup_steps:
        return base_lr * (start_factor + (1.0 - start_factor) * step / warmup_steps)
    t, period = step - warmup_steps, max(total_steps - warmup_steps, 1)
    return min_lr + (base_lr - min_lr) * (1.0 + math.cos(math.pi * min(t, period) / period)) / 2.0


def accumulate_gradients(
    model: nn.Module,
    loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    y: torch.Tensor,
    micro_batch: int,
) -> float:
    """Zero the gradients, then backprop x, y in chunks of `micro_batch` rows.

    Each chunk's mean loss is weighted by len(chunk) / len(x), so the summed .grad equals the
    gradient of the mean loss over the whole batch. Returns that mean loss as a float.
    The caller then takes one optimizer step.
    """
    model.zero_grad()
    total = 0.0
    for start in range(0, len(x), micro_batch):
        xb, yb = x[start : start + micro_batch], y[start : start + micro_batch]
        loss = loss_fn(model(xb), yb) * (len(xb) / len(x))
        loss.backward()
        total += loss.item()
    return total
