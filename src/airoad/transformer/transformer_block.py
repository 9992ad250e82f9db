"""The transformer block: attention plus the layers of `transformer_layers`, with residuals.

Shapes: a batch of token vectors is ``(B, T, D)`` (batch, time, model width); attention splits
``D`` into ``H`` heads of ``Dh = D // H`` and works on ``(B, H, T, Dh)``.

- Residuals: post-LN ``x = norm(x + f(x))`` (the 2017 paper, ``nn.TransformerEncoderLayer``'s
  default) or pre-LN ``x = x + f(norm(x))`` (GPT-2 and later), which keeps an identity path from
  the output back to the input and trains deep stacks without a warm-up.
- The layers (positions, LayerNorm/RMSNorm, feed-forward, SwiGLU) live in
  `airoad.transformer.transformer_layers` and are re-exported here.

Parameter names follow ``nn.TransformerEncoderLayer`` (``self_attn.in_proj_weight``, ``norm1``,
``linear1`` inside ``ff``...), so copying weights into torch's layer is a renaming of keys.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from airoad.transformer.transformer_layers import (  # re-exported: the block's parts
    FeedForward,
    LayerNorm,
    LearnedPositionalEmbedding,
    RMSNorm,
    SwiGLU,
    apply_rope,
    sinusoidal_positions,
)

__all__ = [
    "FeedForward",
    "LayerNorm",
    "LearnedPositionalEmbedding",
    "MultiHeadSelfAttention",
    "RMSNorm",
    "SwiGLU",
    "TransformerBlock",
    "TransformerLM",
    "apply_rope",
    "attention_bias",
    "lm_loss",
    "n_parameters",
    "sinusoidal_positions",
]


# ---------------------------------------------------------------- attention


def attention_bias(
    seq_len: int,
    key_padding_mask: torch.Tensor | None = None,
    causal: bool = False,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor | None:
    """Additive mask for the scores: 0 where query t may look at key s, a huge negative elsewhere.

    key_padding_mask (B, T) is True at padding keys (torch's convention); causal blocks s > t.
    Returns (B or 1, 1, T, T), or None when nothing is blocked. Blocked entries get
    ``finfo(dtype).min`` rather than -inf: a row with every key blocked then softmaxes to a
    finite (uniform) row instead of 0/0 = NaN, and a real row is unchanged (exp underflows to 0).
    """
    if key_padding_mask is None and not causal:
        return None
    blocked = torch.zeros(1, 1, seq_len, seq_len, dtype=torch.bool)
    if causal:
        blocked = blocked | torch.ones(seq_len, seq_len, dtype=torch.bool).triu(1)
    if key_padding_mask is not None:
        blocked = blocked | key_padding_mask.to(torch.bool)[:, None, None, :]
    zeros = torch.zeros(blocked.shape, dtype=dtype)
    return zeros.masked_fill(blocked, torch.finfo(dtype).min)


class MultiHeadSelfAttention(nn.Module):
    """Multi-head self-attention laid out like ``nn.MultiheadAttention`` (one fused q/k/v matrix).

    ``q, k, v = x W_in^T + b_in`` split into H heads; per head
    ``softmax(q k^T / sqrt(Dh) + mask) v``; heads concatenated and mixed by ``out_proj``. With
    ``rope=True`` queries and keys (never values) are rotated by their positions first.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        rope: bool = False,
        rope_base: float = 10000.0,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.n_heads, self.dropout, self.rope, self.rope_base = n_heads, dropout, rope, rope_base
        self.in_proj_weight = nn.Parameter(torch.empty(3 * d_model, d_model))
        nn.init.xavier_uniform_(self.in_proj_weight)  # as nn.MultiheadAttention does
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d_model)) if bias else None
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)
        if bias:
            nn.init.zeros_(self.out_proj.bias)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        causal: bool = False,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D); key_padding_mask (B, T) True at pads; positions (T,) for RoPE."""
        b, t, d = x.shape
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (B, T, 3D)
        q, k, v = qkv.view(b, t, 3, self.n_heads, d // self.n_heads).permute(2, 0, 3, 1, 4)
        if self.rope:
            q = apply_rope(q, positions, self.rope_base)
            k = apply_rope(k, positions, self.rope_base)
        # Causal alone needs no mask tensor: is_causal lets the fused kernel skip the T x T mask.
        mask = (
            None
            if key_padding_mask is None
            else attention_bias(t, key_padding_mask, causal, x.dtype)
        )
        out = F.scaled_dot_product_attention(
            q,
            k,
            v,
            attn_mask=mask,
            dropout_p=self.dropout if self.training else 0.0,
            is_causal=causal and mask is None,
        )
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


# ---------------------------------------------------------------- the block


class TransformerBlock(nn.Module):
    """Self-attention and a feed-forward layer, each wrapped in a residual and a norm.

    post-LN (norm_first=False)             pre-LN (norm_first=True)
        x = norm1(x + drop(attn(x)))           x = x + drop(attn(norm1(x)))
        x = norm2(x + drop(ff(x)))             x = x + drop(ff(norm2(x)))

    With norm="layer" and activation "relu" or "gelu" it computes exactly what
    ``nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout, activation, eps,
    batch_first=True, norm_first=norm_first)`` does. activation="swiglu", norm="rms" and
    rope=True give a LLaMA-style block instead.
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        d_ff: int,
        dropout: float = 0.0,
        activation: str = "relu",
        norm_first: bool = False,
        norm: str = "layer",
        eps: float = 1e-5,
        bias: bool = True,
        rope: bool = False,
    ):
        super().__init__()
        if norm not in ("layer", "rms"):
            raise ValueError(f"norm must be 'layer' or 'rms', got {norm!r}")
        self.norm_first = norm_first
        self.self_attn = MultiHeadSelfAttention(d_model, n_heads, dropout, bias=bias, rope=rope)
        if activation == "swiglu":
            self.ff: nn.Module = SwiGLU(d_model, d_ff, dropout)
        else:
            self.ff = FeedForward(d_model, d_ff, activation, dropout, bias=bias)
        if norm == "layer":
            self.norm1, self.norm2 = LayerNorm(d_model, eps, bias), LayerNorm(d_model, eps, bias)
        else:
            self.norm1, self.norm2 = RMSNorm(d_model, eps), RMSNorm(d_model, eps)
        self.dropout1, self.dropout2 = nn.Dropout(dropout), nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        key_padding_mask: torch.Tensor | None = None,
        causal: bool = False,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """x (B, T, D) -> (B, T, D); masks and positions go to the attention."""

        def attend(h: torch.Tensor) -> torch.Tensor:
            return self.dropout1(self.self_attn(h, key_padding_mask, causal, positions))

        if self.norm_first:
            x = x + attend(self.norm1(x))
            return x + self.dropout2(self.ff(self.norm2(x)))
        x = self.norm1(x + attend(x))
        return self.norm2(x + self.dropout2(self.ff(x)))


class TransformerLM(nn.Module):
    """A causal language model: token embedding + positions -> n_layers blocks -> logits.

    ``position`` is "sinusoidal" (fixed table added), "learned" (trained table added), "rope"
    (rotary, inside every attention) or "none". A pre-LN stack ends with a final norm before the
    head (its residual stream is never normalised otherwise); a post-LN stack already is.
    ``seed`` fixes the initial weights without touching torch's global random state.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 6,
        d_ff: int = 256,
        max_len: int = 256,
        position: str = "learned",
        norm_first: bool = True,
        activation: str = "gelu",
        norm: str = "layer",
        dropout: float = 0.0,
        seed: int | None = None,
    ):
        super().__init__()
        if position not in ("sinusoidal", "learned", "rope", "none"):
            raise ValueError(f"unknown position encoding {position!r}")
        self.position, self.norm_first, self.max_len = position, norm_first, max_len
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.tok_emb = nn.Embedding(vocab_size, d_model)
            self.pos_emb = (
                LearnedPositionalEmbedding(max_len, d_model) if position == "learned" else None
            )
            self.blocks = nn.ModuleList(
                TransformerBlock(
                    d_model,
                    n_heads,
                    d_ff,
                    dropout,
                    activation,
                    norm_first,
                    norm,
                    rope=position == "rope",
                )
                for _ in range(n_layers)
            )
            final_norm = LayerNorm(d_model) if norm == "layer" else RMSNorm(d_model)
            self.norm_f = final_norm if norm_first else nn.Identity()
            self.head = nn.Linear(d_model, vocab_size)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) -> next-token logits (B, T, vocab); position t sees tokens <= t only."""
        t = idx.shape[1]
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len {self.max_len}")
        h = self.tok_emb(idx)
        if self.pos_emb is not None:
            h = self.pos_emb(h)
        elif self.position == "sinusoidal":
            h = h + sinusoidal_positions(t, h.shape[-1], dtype=h.dtype)
        for block in self.blocks:
            h = block(h, causal=True)
        return self.head(self.norm_f(h))


def lm_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy (nats): x, y (B, T) with y = x shifted left by one."""
    logits = model(x)
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


def n_parameters(model: nn.Module) -> int:
    """Number of trainable scalars."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
