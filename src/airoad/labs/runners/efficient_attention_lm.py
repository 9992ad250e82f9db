"""The language-model experiment of the efficient-attention lab: one tiny causal transformer
on Austen characters, trained with full (our tiled attention and its recomputing backward),
sliding-window and linear attention on the same seed and batches. Split from the runner to keep
each file short; `quality(config, ctx)` is the experiment the runner calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from airoad.labs.contract import RunContext
from airoad.labs.kit import thread_limit
from airoad.transformer import efficient_attention as ref

LM_KINDS = ("full", "window", "linear")
Config = Any  # the runner's Config; only its fields are read here


class _Block(nn.Module):
    """Pre-LN transformer block whose attention is any (q, k, v) -> out function."""

    def __init__(self, d: int, heads: int, attend: Callable):
        super().__init__()
        self.heads, self.attend = heads, attend
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (b, heads, t, d / heads)
        x = x + self.proj(self.attend(q, k, v).transpose(1, 2).reshape(b, t, d))
        return x + self.mlp(self.norm2(x))


class _TinyLM(nn.Module):
    def __init__(self, vocab: int, config: Config, attend: Callable):
        super().__init__()
        d = config.d_model
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(config.context, d)
        self.blocks = nn.ModuleList(
            _Block(d, config.lm_heads, attend) for _ in range(config.layers)
        )
        self.norm, self.head = nn.LayerNorm(d), nn.Linear(d, vocab)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tok(idx) + self.pos(torch.arange(idx.shape[1]))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def _lm_attention(kind: str, config: Config) -> Callable:
    """The causal attention of each model: ours (tiled+recompute), window, linear, or SDPA."""
    return {
        "full": lambda q, k, v: ref.flash_attention(q, k, v, True, None, 64, 64),
        "window": lambda q, k, v: ref.sliding_window_attention(
            q, k, v, config.lm_window, True, None, 64
        ),
        "linear": lambda q, k, v: ref.linear_attention(q, k, v, causal=True, chunk=64),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
    }[kind]


def _austen_ids() -> tuple[np.ndarray, int]:
    """All six novels joined, as character ids (int64), and the vocabulary size."""
    from airoad.data import load

    text = "\n\n".join(load("austen").values())
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    chars, ids = np.unique(codes, return_inverse=True)
    return ids.astype(np.int64), len(chars)


def _batch(
    ids: torch.Tensor, config: Config, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    starts = torch.randint(0, len(ids) - config.context - 1, (config.batch_size,), generator=gen)
    x = torch.stack([ids[s : s + config.context + 1] for s in starts.tolist()])
    return x[:, :-1], x[:, 1:]


def _val_loss(model: nn.Module, val: list[tuple[torch.Tensor, torch.Tensor]]) -> float:
    model.eval()
    with torch.no_grad():
        losses = [F.cross_entropy(model(x).flatten(0, 1), y.flatten()).item() for x, y in val]
    model.train()
    return float(np.mean(losses))


def _train_lm(
    kind: str, config: Config, train: torch.Tensor, val: list, vocab: int, ctx: RunContext
) -> tuple[_TinyLM, list[dict]]:
    """AdamW on seeded batches (the same for every kind); validation loss every eval_every steps."""
    torch.manual_seed(config.seed)  # the same initial weights for every kind
    model = _TinyLM(vocab, config, _lm_attention(kind, config))
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=0.01)
    gen, start, curve = torch.Generator().manual_seed(config.seed), time.perf_counter(), []
    for step in ctx.track(range(1, config.steps + 1), f"training with {kind} attention"):
        x, y = _batch(train, config, gen)
        loss = F.cross_entropy(model(x).flatten(0, 1), y.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % config.eval_every == 0 or step == config.steps:
            curve.append(
                {
                    "kind": kind,
                    "step": step,
                    "train_loss": loss.item(),
                    "val_loss": _val_loss(model, val),
                    "seconds": time.perf_counter() - start,
                }
            )
    return model, curve


def quality(config: Config, ctx: RunContext) -> tuple[dict, list[dict]]:
    """Train the three kinds on the first 90% of the text; validate on fixed windows of the rest."""
    ids, vocab = _austen_ids()
    cut = int(0.9 * len(ids))
    train, held_out = torch.from_numpy(ids[:cut]), torch.from_numpy(ids[cut:])
    gen = torch.Generator().manual_seed(config.seed + 1)
    val = [_batch(held_out, config, gen) for _ in range(config.eval_batches)]
    metrics, curves = {"vocab": vocab}, []
    with thread_limit(config.threads):
        for kind in LM_KINDS:
            model, curve = _train_lm(kind, config, train, val, vocab, ctx)
            curves += curve
            metrics[f"lm_{kind}_val_loss"] = curve[-1]["val_loss"]
            metrics[f"lm_{kind}_train_seconds"] = curve[-1]["seconds"]
            if kind == "full":
                for block in model.blocks:
                    block.attend = _lm_attention("sdpa", config)
                metrics["lm_full_sdpa_val_loss"] = _val_loss(model, val)
    return metrics, curves
