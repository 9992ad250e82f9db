"""A small encoder-only transformer that forecasts tomorrow from a window of past days.

Shapes: a batch of windows is ``(B, W, F)`` (batch, days in the window, features per day). Each
day becomes a token of width ``D``; attention splits ``D`` into ``H`` heads of ``Dh = D // H``.

- ``sinusoidal_positions``: the fixed table that tells the model which day is which;
- ``causal_mask``: the additive mask that stops day ``t`` from reading days after ``t``;
- ``EncoderLayer``: one pre-LN block, ``x + attn(norm1(x))`` then ``x + ff(norm2(x))``, with the
  attention written out (no ``nn.MultiheadAttention``) and parameters that copy one-to-one into
  ``nn.TransformerEncoderLayer(norm_first=True, batch_first=True)``;
- ``TimeSeriesTransformer``: input projection + positions -> encoder layers -> final LayerNorm
  -> a linear head on the last day's token (or on the mean of all tokens) -> one number.

Attention by itself is blind to order: permute the days of a window and every token's output
is permuted the same way, so a mean-pooled forecast would not change. Positions (or a causal
mask) are what let the model tell yesterday from a month ago.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

POSITIONS = ("sinusoidal", "learned", "none")
POOLING = ("last", "mean")


def sinusoidal_positions(
    length: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The fixed position table of "Attention Is All You Need": (length, d_model).

    ``PE[p, 2i] = sin(p * w_i)`` and ``PE[p, 2i + 1] = cos(p * w_i)`` with ``w_i = base^(-2i/d)``.
    Each (sin, cos) pair is a clock at its own speed, so ``PE[p] . PE[q]`` depends only on
    ``p - q``. An odd ``d_model`` keeps the last sine column and drops its cosine.
    """
    pos = torch.arange(length, dtype=torch.float64)[:, None]
    freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angle = pos * freq  # (length, ceil(d/2)), float64 so large positions stay accurate
    table = torch.zeros(length, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table.to(dtype)


def causal_mask(length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """(length, length) additive mask: 0 where query t may read key s (s <= t), -inf above.

    Added to the scores before the softmax, -inf becomes a weight of exactly 0. Every row keeps
    its diagonal, so no row is fully masked and the softmax never sees all -inf (which is NaN).
    """
    blocked = torch.ones(length, length, dtype=torch.bool).triu(1)
    return torch.zeros(length, length, dtype=dtype).masked_fill(blocked, float("-inf"))


class EncoderLayer(nn.Module):
    """Pre-LN encoder block: ``h = x + attn(norm1(x))``, ``out = h + ff(norm2(h))``.

    Parameter names mirror ``nn.TransformerEncoderLayer``: ``in_proj`` holds W_q, W_k, W_v
    stacked (its ``self_attn.in_proj_weight``), ``out_proj`` is ``self_attn.out_proj``, and
    ``linear1``, ``linear2``, ``norm1``, ``norm2`` keep their names.
    """

    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, activation: str = "gelu"
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        if activation not in ("gelu", "relu"):
            raise ValueError(f"activation must be 'gelu' or 'relu', got {activation!r}")
        self.n_heads, self.activation = n_heads, activation
        self.in_proj = nn.Linear(d_model, 3 * d_model)
        self.out_proj = nn.Linear(d_model, d_model)
        self.linear1 = nn.Linear(d_model, d_ff)
        self.linear2 = nn.Linear(d_ff, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)

    def attention(
        self, x: torch.Tensor, mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Multi-head self-attention of x (B, T, D): returns (output (B, T, D), weights (B, H, T, T)).

        ``q, k, v = x W_q^T + b_q, ...`` split into H heads; ``weights = softmax(q k^T / sqrt(Dh)
        + mask)`` over the keys; heads ``weights @ v`` are concatenated and go through
        ``out_proj``. ``mask`` is additive, (T, T), 0 or -inf. Dropout acts on the weights.
        """
        b, t, d = x.shape
        h = self.n_heads
        q, k, v = self.in_proj(x).view(b, t, 3, h, d // h).permute(2, 0, 3, 1, 4)  # 3x (B,H,T,Dh)
        scores = q @ k.transpose(-2, -1) / math.sqrt(d // h)  # (B, H, T, T)
        if mask is not None:
            scores = scores + mask
        weights = torch.softmax(scores, dim=-1)  # torch's softmax subtracts the row max
        heads = self.dropout(weights) @ v  # (B, H, T, Dh)
        return self.out_proj(heads.transpose(1, 2).reshape(b, t, d)), weights

    def feed_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Position-wise ``linear2(dropout(act(linear1(x))))``: (B, T, D) -> (B, T, D)."""
        act = F.gelu if self.activation == "gelu" else F.relu
        return self.linear2(self.dropout(act(self.linear1(x))))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D): two residual updates, each reading a LayerNormed copy."""
        x = x + self.dropout(self.attention(self.norm1(x), mask)[0])
        return x + self.dropout(self.feed_forward(self.norm2(x)))


class TimeSeriesTransformer(nn.Module):
    """Window (B, W, F) -> forecast (B,): tokens, positions, pre-LN layers, final norm, head.

    ``positions``: "sinusoidal" (fixed table), "learned" (a trained (max_len, D) table, small
    random start) or "none". ``pool``: "last" reads the last day's token, "mean" averages all
    tokens. ``causal=True`` masks the future inside the window, so token t summarises days
    0..t and the last token still sees the whole window. ``seed`` fixes the initial weights
    without touching torch's global random state.
    """

    def __init__(
        self,
        n_features: int,
        d_model: int = 32,
        n_heads: int = 4,
        n_layers: int = 2,
        d_ff: int = 64,
        dropout: float = 0.1,
        positions: str = "sinusoidal",
        pool: str = "last",
        causal: bool = False,
        max_len: int = 512,
        seed: int = 0,
    ):
        super().__init__()
        if positions not in POSITIONS or pool not in POOLING:
            raise ValueError(f"positions must be in {POSITIONS} and pool in {POOLING}")
        self.positions, self.pool, self.causal, self.max_len = positions, pool, causal, max_len
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.input_proj = nn.Linear(n_features, d_model)
            self.pos_embedding = (
                nn.Parameter(0.02 * torch.randn(max_len, d_model))
                if positions == "learned"
                else None
            )
            self.layers = nn.ModuleList(
                EncoderLayer(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
            )
            self.norm = nn.LayerNorm(d_model)
            self.head = nn.Linear(d_model, 1)
        self.dropout = nn.Dropout(dropout)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """Day tokens: ``input_proj(x) + position table[:W]``, (B, W, F) -> (B, W, D).

        A window longer than ``max_len`` raises ValueError (the learned table has no row for it).
        """
        w = x.shape[1]
        if w > self.max_len:
            raise ValueError(f"window {w} exceeds max_len {self.max_len}")
        h = self.input_proj(x)
        if self.positions == "sinusoidal":
            h = h + sinusoidal_positions(w, h.shape[-1], dtype=h.dtype)
        elif self.positions == "learned":
            h = h + self.pos_embedding[:w]
        return self.dropout(h)

    def mask(self, length: int, dtype: torch.dtype = torch.float32) -> torch.Tensor | None:
        """The causal mask for a window of ``length`` days, or None when ``causal`` is False."""
        return causal_mask(length, dtype) if self.causal else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Every day's final representation: embed, each layer with the mask, norm. (B, W, D)."""
        h = self.embed(x)
        mask = self.mask(h.shape[1], h.dtype)
        for layer in self.layers:
            h = layer(h, mask)
        return self.norm(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, W, F) -> forecasts (B,): the head on the last token or on the mean token."""
        z = self.encode(x)
        pooled = z[:, -1] if self.pool == "last" else z.mean(dim=1)
        return self.head(pooled).squeeze(-1)

    def attention_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Each layer's attention weights on x (B, W, F): a list of (B, H, W, W), one per layer.

        Computed in eval mode without gradients (no dropout), along the same path as ``encode``.
        """
        was_training = self.training
        self.eval()
        maps = []
        with torch.no_grad():
            h = self.embed(x)
            mask = self.mask(h.shape[1], h.dtype)
            for layer in self.layers:
                maps.append(layer.attention(layer.norm1(h), mask)[1])
                h = layer(h, mask)
        self.train(was_training)
        return maps
