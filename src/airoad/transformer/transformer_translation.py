"""The encoder-decoder transformer of "Attention Is All You Need" (Vaswani et al. 2017), with
its training loss and learning-rate schedule.

Shapes are batch first: source ids ``src`` (B, S), decoder input ids ``tgt_in`` (B, T) = BOS +
the target shifted right, vectors (B, L, D). Masks are bool with True = a real token (the
convention of ``airoad.transformer.attention``); ``nn.Transformer`` takes the opposite
(``key_padding_mask`` True = padding), so flip with ``~`` when calling torch.

- Encoder: n layers of self-attention (padding keys hidden) + feed-forward, the
  ``TransformerBlock`` of the transformer-block lab.
- Decoder: n layers of causal self-attention, cross-attention to the encoder's output (the
  memory) and feed-forward, each in a residual and a LayerNorm (post-LN as in the paper, or
  pre-LN with ``norm_first=True``, which then ends each stack with a final LayerNorm).
- One shared vocabulary: source embedding, target embedding and output projection are the same
  matrix (the paper's weight tying); embeddings are scaled by sqrt(D) before the fixed sinusoidal
  positions are added.

Greedy and beam search live in `airoad.transformer.translation_decoding`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from airoad.transformer.attention import MultiHeadAttention
from airoad.transformer.transformer_block import (
    FeedForward,
    LayerNorm,
    MultiHeadSelfAttention,
    TransformerBlock,
    sinusoidal_positions,
)

# ---------------------------------------------------------------- loss and schedule


def label_smoothed_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, eps: float = 0.1, ignore_index: int = -100
) -> torch.Tensor:
    """Mean over the non-ignored targets of ``(1 - eps) * nll + eps * mean_c(-log p_c)``.

    logits (..., V), target (...) int; the smoothed target puts ``1 - eps`` on the true token
    and spreads ``eps`` evenly over all V tokens (the true one included), as
    ``F.cross_entropy(logits, target, label_smoothing=eps, ignore_index=ignore_index)`` does.
    """
    logp = torch.log_softmax(logits.reshape(-1, logits.shape[-1]), dim=-1)
    target = target.reshape(-1)
    keep = target != ignore_index
    # weight the rows instead of indexing them: a (N, V) boolean gather is slow on CPU
    nll = -logp.gather(1, torch.where(keep, target, 0)[:, None]).squeeze(1)
    uniform = -logp.mean(dim=-1)  # cross-entropy against the uniform distribution
    per_token = (1.0 - eps) * nll + eps * uniform
    return (per_token * keep).sum() / keep.sum()


def inverse_sqrt_lr(step: int, d_model: int, warmup: int, scale: float = 1.0) -> float:
    """The paper's rate at optimiser step ``step`` (counted from 1):
    ``scale * d_model^-0.5 * min(step^-0.5, step * warmup^-1.5)``.

    It rises linearly for ``warmup`` steps, peaks at ``step = warmup`` with
    ``scale / sqrt(d_model * warmup)``, then decays as 1/sqrt(step).
    """
    step = max(step, 1)
    return scale * d_model**-0.5 * min(step**-0.5, step * warmup**-1.5)


# ---------------------------------------------------------------- the decoder layer


class DecoderLayer(nn.Module):
    """Causal self-attention, cross-attention to the memory, feed-forward; residual + norm each.

    post-LN (norm_first=False)                  pre-LN (norm_first=True)
        y = norm1(y + self_attn(y))                 y = y + self_attn(norm1(y))
        y = norm2(y + cross_attn(y, memory))        y = y + cross_attn(norm2(y), memory)
        y = norm3(y + ff(y))                        y = y + ff(norm3(y))

    computes what ``nn.TransformerDecoderLayer(d_model, n_heads, d_ff, dropout, "relu",
    batch_first=True, norm_first=norm_first)`` computes (dropout after each sub-layer).
    """

    def __init__(
        self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0, norm_first: bool = False
    ):
        super().__init__()
        self.norm_first = norm_first
        self.self_attn = MultiHeadSelfAttention(d_model, n_heads, dropout)
        self.cross_attn = MultiHeadAttention(d_model, n_heads)
        self.ff = FeedForward(d_model, d_ff, "relu", dropout)
        self.norm1, self.norm2, self.norm3 = (LayerNorm(d_model) for _ in range(3))
        self.drop1, self.drop2, self.drop3 = (nn.Dropout(dropout) for _ in range(3))

    def forward(
        self, y: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """y (B, T, D), memory (B, S, D), src_mask (B, S) True at real source tokens.

        Returns (y (B, T, D), cross-attention weights (B, heads, T, S)). Target padding sits at
        the end, after every real token, so the causal mask already hides it from real queries.
        """

        def cross(h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out, weights = self.cross_attn(h, memory, key_mask=src_mask)
            return self.drop2(out), weights

        if self.norm_first:
            y = y + self.drop1(self.self_attn(self.norm1(y), causal=True))
            out, weights = cross(self.norm2(y))
            y = y + out
            return y + self.drop3(self.ff(self.norm3(y))), weights
        y = self.norm1(y + self.drop1(self.self_attn(y, causal=True)))
        out, weights = cross(y)
        y = self.norm2(y + out)
        return self.norm3(y + self.drop3(self.ff(y))), weights


# ---------------------------------------------------------------- the model


class TranslationTransformer(nn.Module):
    """Encoder-decoder transformer over one shared (source + target) vocabulary.

    ``encode(src)`` runs the encoder once per source; ``decode(tgt_in, memory, src_mask)`` gives
    next-token logits at every target position (position t sees tgt_in[:, :t+1] only);
    ``forward(src, tgt_in)`` is both, for teacher-forced training. ``seed`` fixes the initial
    weights without touching torch's global random state.
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        n_heads: int = 4,
        n_encoder_layers: int = 3,
        n_decoder_layers: int = 3,
        d_ff: int = 512,
        dropout: float = 0.1,
        pad_id: int = 0,
        max_len: int = 256,
        norm_first: bool = False,
        seed: int | None = None,
    ):
        super().__init__()
        self.d_model, self.pad_id, self.max_len = d_model, pad_id, max_len
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.embedding = nn.Embedding(vocab_size, d_model, padding_idx=pad_id)
            with torch.no_grad():  # std D^-1/2, so that x sqrt(D) gives unit-scale vectors
                self.embedding.weight.normal_(std=d_model**-0.5)
                self.embedding.weight[pad_id].zero_()
            self.encoder_layers = nn.ModuleList(
                TransformerBlock(d_model, n_heads, d_ff, dropout, "relu", norm_first)
                for _ in range(n_encoder_layers)
            )
            self.decoder_layers = nn.ModuleList(
                DecoderLayer(d_model, n_heads, d_ff, dropout, norm_first)
                for _ in range(n_decoder_layers)
            )
        # a pre-LN stack's residual stream is never normalised otherwise; post-LN's already is
        self.encoder_norm = LayerNorm(d_model) if norm_first else nn.Identity()
        self.decoder_norm = LayerNorm(d_model) if norm_first else nn.Identity()
        self.dropout = nn.Dropout(dropout)

    def embed(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (B, L) -> embedding * sqrt(D) + sinusoidal position table[:L] (then dropout)."""
        if ids.shape[1] > self.max_len:
            raise ValueError(f"sequence length {ids.shape[1]} exceeds max_len {self.max_len}")
        x = self.embedding(ids) * math.sqrt(self.d_model)
        return self.dropout(x + sinusoidal_positions(ids.shape[1], self.d_model, dtype=x.dtype))

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """src (B, S) ids -> (memory (B, S, D), src_mask (B, S) True at non-pad tokens)."""
        src_mask = src != self.pad_id
        x = self.embed(src)
        for layer in self.encoder_layers:
            x = layer(x, key_padding_mask=~src_mask)
        return self.encoder_norm(x), src_mask

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        return_attention: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """tgt_in (B, T) ids -> logits (B, T, V) through the tied output projection.

        With ``return_attention`` also the last decoder layer's cross-attention weights
        (B, heads, T, S): where each target position looked in the source.
        """
        y = self.embed(tgt_in)
        for layer in self.decoder_layers:
            y, weights = layer(y, memory, src_mask)
        logits = self.decoder_norm(y) @ self.embedding.weight.T
        return (logits, weights) if return_attention else logits

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: src (B, S), tgt_in (B, T) -> logits (B, T, V)."""
        memory, src_mask = self.encode(src)
        return self.decode(tgt_in, memory, src_mask)
