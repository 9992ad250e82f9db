"""A decoder-only GPT in one file: causal self-attention, pre-LN blocks, tied embeddings, and
generation with a key/value cache.

Shapes: token ids ``idx`` are ``(B, T)`` (batch, time); hidden states ``(B, T, C)`` with
``C = n_embd``; one attention head works on ``(B, H, T, D)`` with ``D = C / H``. The model maps
``idx`` to logits ``(B, T, V)``: the logits at position t score the token at t + 1 and see only
tokens 0..t, so one forward pass trains on T next-token predictions at once.

The data path, for L layers::

    x = wte[idx] + wpe[pos]                        token + learned position embeddings
    x = x + attn(ln_1(x));  x = x + mlp(ln_2(x))   L pre-LN blocks (the residual stream)
    logits = ln_f(x) @ wte^T                       the output layer reuses the input embedding

A KV cache keeps every layer's keys and values of the tokens seen so far, so generating one more
token runs the network on that token only instead of on the whole context again.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class GPTConfig:
    """The model's sizes: vocabulary V, context length, depth, heads and width C."""

    vocab_size: int
    block_size: int = 128
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0


def causal_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, dropout_p: float = 0.0
) -> torch.Tensor:
    """softmax(q k^T / sqrt(D) + M) v, where M is -inf wherever a key lies in a query's future.

    q (B, H, T, D); k, v (B, H, S, D) with S >= T. The T queries are the LAST T of the S
    positions (S > T when the first S - T keys come from a KV cache), so query i may look at keys
    j <= i + S - T. With S == T this is ``F.scaled_dot_product_attention(..., is_causal=True)``.
    Every query sees at least one key, so no row of the softmax is all -inf.
    ``dropout_p`` drops attention weights (pass 0 at evaluation). Returns (B, H, T, D).
    """
    t, s = q.shape[-2], k.shape[-2]
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, H, T, S)
    future = torch.ones(t, s, dtype=torch.bool, device=q.device).triu(s - t + 1)
    weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    if dropout_p > 0.0:
        weights = F.dropout(weights, dropout_p)
    return weights @ v


class KVCache:
    """Keys and values of every layer for the positions processed so far.

    ``keys[layer]`` and ``values[layer]`` are (B, H, S, D) tensors (None before the first token).
    """

    def __init__(self, n_layer: int):
        self.keys: list[torch.Tensor | None] = [None] * n_layer
        self.values: list[torch.Tensor | None] = [None] * n_layer

    def __len__(self) -> int:
        """S, the number of positions cached (0 when empty)."""
        first = self.keys[0]
        return 0 if first is None else first.shape[-2]

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Append k, v (B, H, T, D) to ``layer``'s cache and return all of them: (B, H, S + T, D).

        The first call for a layer just stores k and v.
        """
        if self.keys[layer] is not None:
            k = torch.cat([self.keys[layer], k], dim=-2)
            v = torch.cat([self.values[layer], v], dim=-2)
        self.keys[layer], self.values[layer] = k, v
        return k, v


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: one Linear makes q, k, v; heads attend; c_proj mixes them.

    ``c_attn.weight`` is (3C, C) with the q, k, v rows in that order, the layout of
    ``nn.MultiheadAttention.in_proj_weight``.
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, layer: int = 0):
        super().__init__()
        if n_embd % n_head:
            raise ValueError(f"n_embd={n_embd} is not divisible by n_head={n_head}")
        self.n_head, self.dropout, self.layer = n_head, dropout, layer
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C). With a cache, x holds the newest T positions only."""
        b, t, c = x.shape
        q, k, v = self.c_attn(x).split(c, dim=2)
        q, k, v = (z.view(b, t, self.n_head, c // self.n_head).transpose(1, 2) for z in (q, k, v))
        if cache is not None:
            k, v = cache.update(self.layer, k, v)
        y = causal_attention(q, k, v, self.dropout if self.training else 0.0)
        return self.resid_drop(self.c_proj(y.transpose(1, 2).reshape(b, t, c)))


class MLP(nn.Module):
    """Position-wise feed-forward: C -> 4C -> GELU -> C (exact erf GELU, like nn.GELU()).

    ``hidden`` replaces the 4C width (a mixture-of-experts layer uses narrower experts).
    """

    def __init__(self, n_embd: int, dropout: float = 0.0, hidden: int | None = None):
        super().__init__()
        hidden = 4 * n_embd if hidden is None else hidden
        self.c_fc = nn.Linear(n_embd, hidden)
        self.c_proj = nn.Linear(hidden, n_embd)
        self.drop = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., C) -> (..., C)."""
        return self.drop(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """A pre-LN transformer block: x + attn(ln_1(x)), then + mlp(ln_2(x)).

    Each sub-layer adds to the residual stream instead of replacing it, so the gradient has a
    straight path from the loss to every layer. ``mlp`` replaces the feed-forward module (any
    (..., C) -> (..., C) module, e.g. a mixture of experts); None builds the dense ``MLP``.
    """

    def __init__(
        self,
        n_embd: int,
        n_head: int,
        dropout: float = 0.0,
        layer: int = 0,
        mlp: nn.Module | None = None,
    ):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention(n_embd, n_head, dropout, layer)
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = MLP(n_embd, dropout) if mlp is None else mlp

    def forward(self, x: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """x (B, T, C) -> (B, T, C)."""
        x = x + self.attn(self.ln_1(x), cache)
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    """Token + position embeddings, ``n_layer`` blocks, a final LayerNorm and a tied output layer.

    ``lm_head.weight`` IS ``wte.weight`` (one (V, C) tensor used twice): the logit of token v is
    the dot product of the final hidden state with v's input embedding. Weights start at
    N(0, 0.02); the projections that write into the residual stream (``c_proj``) at
    N(0, 0.02 / sqrt(2 L)), so the stream's variance does not grow with depth (GPT-2's rule).
    ``mlp(layer)``, when given, makes each block's feed-forward module (initialised the same way).
    """

    def __init__(self, config: GPTConfig, mlp: Callable[[int], nn.Module] | None = None):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(
            Block(config.n_embd, config.n_head, config.dropout, layer, mlp and mlp(layer))
            for layer in range(config.n_layer)
        )
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying
        for name, p in self.named_parameters():  # each shared tensor is listed once
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, 0.0, 0.02 / math.sqrt(2 * config.n_layer))
            elif p.dim() >= 2:
                nn.init.normal_(p, 0.0, 0.02)
            elif name.endswith("bias"):
                nn.init.zeros_(p)

    def forward(self, idx: torch.Tensor, cache: KVCache | None = None) -> torch.Tensor:
        """idx (B, T) token ids -> logits (B, T, V).

        With a cache the T tokens continue the cached ones: their positions start at len(cache),
        and every layer appends its keys and values. Positions must stay below block_size.
        """
        b, t = idx.shape
        start = 0 if cache is None else len(cache)
        if start + t > self.config.block_size:
            raise ValueError(
                f"positions {start}..{start + t - 1} exceed block_size={self.config.block_size}"
            )
        pos = torch.arange(start, start + t, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(pos))
        for block in self.blocks:
            x = block(x, cache)
        return self.lm_head(self.ln_f(x))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy in nats per token: idx, targets (B, T) -> scalar."""
        logits = self(idx)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Extend idx (B, T0) by ``max_new_tokens`` sampled tokens: returns (B, T0 + new).

        Without a cache every step re-runs the model on the last block_size tokens. With one,
        the first step runs on that window and fills the cache, then each step feeds only the
        newest token. Both give the same logits while the text fits in block_size; when the
        cache is full it is refilled from the last block_size // 2 tokens (positions restart at
        0), the price of learned absolute positions. Runs in eval mode, then restores the mode.
        """
        was_training, block = self.training, self.config.block_size
        self.eval()
        cache: KVCache | None = None
        for _ in range(max_new_tokens):
            if not use_cache:
                logits = self(idx[:, -block:])
            elif cache is None or len(cache) == block:
                keep = block if cache is None else block // 2
                cache = KVCache(self.config.n_layer)
                logits = self(idx[:, -keep:], cache)
            else:
                logits = self(idx[:, -1:], cache)
            nxt = sample_next(logits[:, -1], temperature, top_k, generator)
            idx = torch.cat([idx, nxt], dim=1)
        self.train(was_training)
        return idx


def sample_next(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """One token per row from logits (B, V): returns (B, 1) ids.

    temperature 0 is greedy (argmax). Otherwise divide the logits by the temperature, keep the
    ``top_k`` largest (the rest become -inf) and draw from their softmax with ``generator``.
    """
    if temperature == 0.0:
        return logits.argmax(dim=-1, keepdim=True)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator)
