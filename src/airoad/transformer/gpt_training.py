"""Training a GPT: a character vocabulary, random windows, AdamW with warm-up and cosine decay,
gradient clipping, checkpoint/resume and an exact validation loss per character.

Any ``model`` here is an ``nn.Module`` with a ``loss(x, y)`` method returning the mean
next-token cross-entropy (nats) of windows x, y (B, T), like ``char_gpt.GPT``. One optimizer
step is: set this step's learning rate, compute the loss, backpropagate, clip the gradient norm,
update. A checkpoint holds everything that step depends on (weights, AdamW moments, the step
number, the batch sampler's and torch's random states), so a resumed run continues exactly where
the saved one stopped.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn


class CharVocab:
    """The sorted set of characters of a text; ids are positions in that list."""

    def __init__(self, text: str):
        self.chars: list[str] = sorted(set(text))
        self.stoi: dict[str, int] = {ch: i for i, ch in enumerate(self.chars)}

    def encode(self, text: str) -> torch.Tensor:
        """text of length N -> int64 ids (N,); a character outside the vocabulary is a KeyError."""
        return torch.tensor([self.stoi[ch] for ch in text], dtype=torch.long)

    def decode(self, ids: Iterable[int] | torch.Tensor) -> str:
        """ids -> text; decode(encode(s)) == s."""
        return "".join(self.chars[int(i)] for i in ids)


def get_batch(
    data: torch.Tensor, batch_size: int, block_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """batch_size random windows of data (N,): x (B, T) and the next tokens y (B, T).

    y[b, t] = x[b, t + 1] inside a window: y is x shifted left by one. Start offsets are uniform
    over 0..N - T - 1, drawn from ``generator`` (so a run is reproducible from its seed).
    """
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = starts[:, None] + torch.arange(block_size)  # (B, T)
    return data[offsets], data[offsets + 1]


def lr_at(step: int, max_lr: float, warmup_steps: int, total_steps: int, min_lr: float) -> float:
    """The learning rate for optimizer step ``step`` (0-based): warm-up, then cosine decay.

    step < W:       max_lr * (step + 1) / W                   (linear, reaching max_lr at W - 1)
    W <= step <= N: min_lr + (max_lr - min_lr) * (1 + cos(pi * (step - W) / (N - W))) / 2
    step > N:       min_lr
    with W = warmup_steps and N = total_steps (N > W). The same curve as torch's
    ``SequentialLR(LinearLR(1/W, 1, W - 1), CosineAnnealingLR(N - W, min_lr), [W])``.
    """
    if step < warmup_steps:
        return max_lr * (step + 1) / warmup_steps
    if step > total_steps:
        return min_lr
    progress = (step - warmup_steps) / (total_steps - warmup_steps)
    return min_lr + (max_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def make_optimizer(
    model: nn.Module, lr: float, weight_decay: float, betas: tuple[float, float] = (0.9, 0.99)
) -> torch.optim.AdamW:
    """AdamW with two parameter groups: weight decay on matrices and embeddings (dim >= 2),
    none on biases and LayerNorm gains (dim < 2). A tied weight is one parameter, listed once.

    Group 0 is the decayed one, group 1 the other.
    """
    params = list(model.parameters())  # shared tensors appear once
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas)


def clip_grad_norm(parameters: Iterable[nn.Parameter], max_norm: float) -> torch.Tensor:
    """Scale every gradient in place by min(1, max_norm / (||g|| + 1e-6)), where ||g|| is the
    2-norm of all gradients joined into one vector; returns ||g|| before clipping (a 0-d tensor).

    Like ``torch.nn.utils.clip_grad_norm_``: the direction of the update is kept, only its
    length is capped, so one bad batch cannot throw the weights far away.
    """
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
    scale = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.detach().mul_(scale)
    return total


@dataclass(frozen=True)
class TrainConfig:
    """What one training run needs besides the model and the data."""

    batch_size: int = 32
    block_size: int = 128
    max_lr: float = 2e-3
    min_lr: float = 2e-4
    warmup_steps: int = 100
    total_steps: int = 2000
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    bf16: bool = False  # bfloat16 autocast for the forward pass (fast on CPUs with AMX)


def train_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    lr: float,
    grad_clip: float,
    bf16: bool = False,
) -> tuple[float, float]:
    """One update at learning rate ``lr``: returns (loss before the update, gradient norm).

    Sets lr in every parameter group, zeroes the gradients, backpropagates model.loss(x, y),
    clips the gradient norm to ``grad_clip`` and steps the optimizer. With ``bf16`` the forward
    pass runs under ``torch.autocast("cpu", torch.bfloat16)``: matrix products in bfloat16,
    weights, gradients and optimizer state stay float32.
    """
    for group in optimizer.param_groups:
        group["lr"] = lr
    optimizer.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = model.loss(x, y)
    loss.backward()
    norm = clip_grad_norm(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item(), norm.item()


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    start: int,
    stop: int,
) -> list[float]:
    """Optimizer steps ``start`` .. ``stop - 1`` on random batches of data (N,); their losses.

    Step s uses ``lr_at(s, ...)``, so running 0..k then k..n equals running 0..n in one go.
    """
    model.train()
    losses = []
    for step in range(start, stop):
        x, y = get_batch(data, config.batch_size, config.block_size, generator)
        lr = lr_at(step, config.max_lr, config.warmup_steps, config.total_steps, config.min_lr)
        losses.append(train_step(model, optimizer, x, y, lr, config.grad_clip, config.bf16)[0])
    return losses


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    step: int,
    generator: torch.Generator,
    config: TrainConfig,
) -> None:
    """Write everything a resumed run needs to ``path`` with ``torch.save``.

    Keys: model (state_dict), optimizer (state_dict: AdamW's moments and step counts), step (the
    next step to run), generator (the batch sampler's state), torch_rng (torch's global CPU
    state, which dropout draws from) and train_config (a dict).
    """
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "train_config": asdict(config),
        },
        path,
    )


def load_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    generator: torch.Generator,
) -> int:
    """Restore model, optimizer, generator and torch's RNG from ``path``; return the next step."""
    state = torch.load(path, weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["step"])


@torch.no_grad()
def evaluate(model: nn.Module, data: torch.Tensor, block_size: int, batch_size: int = 64) -> float:
    """Mean next-token loss (nats per token) over ALL of data (N,), in eval mode.

    data is cut into consecutive windows of block_size inputs (plus one shorter window for the
    remainder), so each of the N - 1 targets is scored exactly once, seeing only the context
    since its window began; the result is the mean over those N - 1 targets.
    The model's train/eval mode is restored afterwards.
    """
    was_training = model.training
    model.eval()
    n_full, t = (len(data) - 1) // block_size, block_size
    x = data[: n_full * t].view(n_full, t)
    y = data[1 : n_full * t + 1].view(n_full, t)
    total = 0.0
    for i in range(0, n_full, batch_size):
        total += (
            model.loss(x[i : i + batch_size], y[i : i + batch_size]).item()
            * x[i : i + batch_size].numel()
        )
    rest = len(data) - 1 - n_full * t  # the targets after the last full window
    if rest:
        total += model.loss(data[n_full * t : -1][None], data[n_full * t + 1 :][None]).item() * rest
    model.train(was_training)
    return total / (len(data) - 1)
