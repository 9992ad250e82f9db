"""Attention from scratch: masked softmax, scaled dot-product attention, multi-head self- and
cross-attention, and additive (Bahdanau) attention inside a GRU encoder-decoder.

Shapes are batch first. A query set ``q`` is ``(..., Lq, d)``, keys ``k`` are ``(..., Lk, d)``
and values ``v`` are ``(..., Lk, dv)``. Every boolean mask here means True = "may attend"
(the convention of ``F.scaled_dot_product_attention``); ``nn.MultiheadAttention`` uses the
opposite convention for ``key_padding_mask`` and boolean ``attn_mask``, so flip with ``~``.

    attention(q, k, v) = softmax(q k^T / sqrt(d) + mask) v

A row whose keys are all masked gets zero weights and a zero output (torch does the same),
never NaN, and its gradients stay finite.
"""

from __future__ import annotations

import math

import torch
from torch import nn

# ---------------------------------------------------------------- masks and softmax


def causal_mask(q_len: int, k_len: int | None = None, device: torch.device | None = None):
    """(q_len, k_len) bool, True where key j <= query i: no query sees a later position.

    Aligned at the top-left corner like torch's ``is_causal=True`` (``ones(L, S).tril()``).
    """
    k_len = q_len if k_len is None else k_len
    return torch.ones(q_len, k_len, dtype=torch.bool, device=device).tril()


def padding_mask(lengths: torch.Tensor, max_len: int | None = None) -> torch.Tensor:
    """(N, max_len) bool, True at the first ``lengths[n]`` positions of row n (the real tokens)."""
    max_len = int(lengths.max()) if max_len is None else max_len
    return torch.arange(max_len, device=lengths.device)[None, :] < lengths[:, None]


def masked_softmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax over the last axis, with masked scores (mask False) given exactly zero weight.

    Stable: subtract the row maximum over allowed entries before ``exp``. A fully masked row
    returns all zeros (sum 0, not 1) instead of 0/0 = NaN. ``mask`` broadcasts to ``scores``.
    """
    if mask is None:
        return torch.softmax(scores, dim=-1)
    scores = scores.masked_fill(~mask, float("-inf"))
    top = scores.amax(dim=-1, keepdim=True)
    # softmax ignores a constant shift, so the max needs no gradient; -inf (all masked) -> 0.
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top)).detach()
    e = torch.exp(scores - top)  # exp(-inf) = 0 with zero gradient
    return e / e.sum(dim=-1, keepdim=True).clamp_min(torch.finfo(e.dtype).tiny)


def scaled_dot_product_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    causal: bool = False,
    scale: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """softmax(q k^T * scale) v with scale = 1/sqrt(d) by default; like F.scaled_dot_product_attention.

    q (..., Lq, d), k (..., Lk, d), v (..., Lk, dv); ``mask`` bool, broadcastable to
    (..., Lq, Lk), True = may attend; ``causal`` also hides keys after each query.
    Returns (output (..., Lq, dv), weights (..., Lq, Lk)).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.transpose(-2, -1)) * scale
    if causal:
        tri = causal_mask(q.shape[-2], k.shape[-2], device=q.device)
        mask = tri if mask is None else mask & tri
    weights = masked_softmax(scores, mask)
    return weights @ v, weights


# ---------------------------------------------------------------- multi-head attention


def split_heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    """(N, L, n_heads * dh) -> (N, n_heads, L, dh): head h owns features h*dh .. (h+1)*dh - 1."""
    n, length, width = x.shape
    return x.reshape(n, length, n_heads, width // n_heads).transpose(1, 2)


def merge_heads(x: torch.Tensor) -> torch.Tensor:
    """(N, n_heads, L, dh) -> (N, L, n_heads * dh), the inverse of ``split_heads``."""
    n, heads, length, dh = x.shape
    return x.transpose(1, 2).reshape(n, length, heads * dh)


class MultiHeadAttention(nn.Module):
    """n_heads attentions of width d_model / n_heads side by side, then one output projection.

    head_h = attention(q W_q^h, k W_k^h, v W_v^h);  out = concat(head_1..head_H) W_o.
    Self-attention: ``forward(x)``. Cross-attention: ``forward(x, memory)``, where the memory
    (e.g. encoder states) may have another length and another width (``kdim``, ``vdim``).
    """

    def __init__(
        self,
        d_model: int,
        n_heads: int,
        kdim: int | None = None,
        vdim: int | None = None,
        bias: bool = True,
    ):
        super().__init__()
        if d_model % n_heads:
            raise ValueError(f"d_model {d_model} is not divisible by n_heads {n_heads}")
        self.d_model, self.n_heads = d_model, n_heads
        self.q_proj = nn.Linear(d_model, d_model, bias=bias)
        self.k_proj = nn.Linear(kdim or d_model, d_model, bias=bias)
        self.v_proj = nn.Linear(vdim or d_model, d_model, bias=bias)
        self.out_proj = nn.Linear(d_model, d_model, bias=bias)

    def forward(
        self,
        query: torch.Tensor,
        key: torch.Tensor | None = None,
        value: torch.Tensor | None = None,
        key_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (N, Lq, d_model), key (N, Lk, kdim), value (N, Lk, vdim); key=None: self-attention.

        ``key_mask`` (N, Lk) bool, True at real (non-padding) keys; ``causal`` hides later keys.
        Returns (output (N, Lq, d_model), per-head weights (N, n_heads, Lq, Lk)).
        """
        key = query if key is None else key
        value = key if value is None else value
        q = split_heads(self.q_proj(query), self.n_heads)
        k = split_heads(self.k_proj(key), self.n_heads)
        v = split_heads(self.v_proj(value), self.n_heads)
        mask = None if key_mask is None else key_mask[:, None, None, :]  # same for every head
        heads, weights = scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
        return self.out_proj(merge_heads(heads)), weights


@torch.no_grad()
def copy_from_torch(ours: MultiHeadAttention, theirs: nn.MultiheadAttention) -> MultiHeadAttention:
    """Copy ``nn.MultiheadAttention``'s weights into ours; returns ``ours``.

    torch packs W_q, W_k, W_v as the three row blocks of ``in_proj_weight`` (3E, E) when
    kdim = vdim = E, and keeps ``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` apart
    otherwise; the biases are always the row blocks of ``in_proj_bias`` (3E,).
    """
    e = theirs.embed_dim
    if theirs.in_proj_weight is not None:
        w_q, w_k, w_v = theirs.in_proj_weight.split(e)
    else:
        w_q, w_k, w_v = theirs.q_proj_weight, theirs.k_proj_weight, theirs.v_proj_weight
    for proj, w in ((ours.q_proj, w_q), (ours.k_proj, w_k), (ours.v_proj, w_v)):
        proj.weight.copy_(w)
    if theirs.in_proj_bias is not None:
        for proj, b in zip((ours.q_proj, ours.k_proj, ours.v_proj), theirs.in_proj_bias.split(e)):
            proj.bias.copy_(b)
    ours.out_proj.weight.copy_(theirs.out_proj.weight)
    if theirs.out_proj.bias is not None:
        ours.out_proj.bias.copy_(theirs.out_proj.bias)
    return ours


# ---------------------------------------------------------------- additive attention and seq2seq


class AdditiveAttention(nn.Module):
    """Bahdanau attention: score_j = v . tanh(W_q s + W_k h_j), weights = softmax_j(score_j).

    A small MLP compares the decoder state s with every encoder state h_j; the context is the
    weighted mean sum_j a_j h_j. ``W_k h_j`` does not depend on s: compute it once per source.
    """

    def __init__(self, query_dim: int, key_dim: int, attn_dim: int):
        super().__init__()
        self.w_q = nn.Linear(query_dim, attn_dim, bias=False)
        self.w_k = nn.Linear(key_dim, attn_dim, bias=True)
        self.v = nn.Linear(attn_dim, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """keys (N, S, key_dim) -> W_k keys + b (N, S, attn_dim), reused at every decoder step."""
        return self.w_k(keys)

    def forward(
        self,
        query: torch.Tensor,
        keys: torch.Tensor,
        key_mask: torch.Tensor | None = None,
        projected_keys: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """query (N, query_dim), keys (N, S, key_dim), key_mask (N, S) True at real keys.

        ``projected_keys`` is ``project_keys(keys)`` if already computed.
        Returns (context (N, key_dim), weights (N, S)); masked keys get weight 0.
        """
        pk = self.project_keys(keys) if projected_keys is None else projected_keys
        scores = self.v(torch.tanh(self.w_q(query)[:, None, :] + pk)).squeeze(-1)  # (N, S)
        weights = masked_softmax(scores, key_mask)
        return (weights[:, :, None] * keys).sum(dim=1), weights


class Seq2Seq(nn.Module):
    """GRU encoder-decoder, with additive attention (``attention=True``) or without it.

    Encoder: embedding -> bidirectional GRU over the real tokens only (packed), states h_j
    (N, S, 2H) and a summary = [last forward state; last backward state] (N, 2H).
    Decoder step t: context c_t = attention(s_{t-1}, h) with attention, else the summary (the
    same vector at every step: all the source must fit in it); s_t = GRUCell([emb(y_{t-1}); c_t],
    s_{t-1}); logits = W_out [s_t; c_t; emb(y_{t-1})]. s_0 = tanh(W_b summary).
    """

    def __init__(
        self,
        vocab_size: int,
        emb_dim: int = 32,
        hidden: int = 128,
        attention: bool = True,
        pad_id: int = 0,
    ):
        super().__init__()
        self.pad_id, self.hidden = pad_id, hidden
        self.embed = nn.Embedding(vocab_size, emb_dim, padding_idx=pad_id)
        self.encoder = nn.GRU(emb_dim, hidden, batch_first=True, bidirectional=True)
        self.bridge = nn.Linear(2 * hidden, hidden)
        self.attn = AdditiveAttention(hidden, 2 * hidden, hidden) if attention else None
        self.decoder = nn.GRUCell(emb_dim + 2 * hidden, hidden)
        self.out = nn.Linear(hidden + 2 * hidden + emb_dim, vocab_size)

    def encode(
        self, src: torch.Tensor, src_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """src (N, S) token ids, src_mask (N, S) True at real tokens (each row has at least one).

        Returns (states (N, S, 2H), zero at padding; summary (N, 2H)). Padding never enters the
        GRU, so adding PAD tokens to the end of a source changes nothing.
        """
        lengths = src_mask.sum(dim=1).cpu()
        packed = nn.utils.rnn.pack_padded_sequence(
            self.embed(src), lengths, batch_first=True, enforce_sorted=False
        )
        out, h_n = self.encoder(packed)
        states, _ = nn.utils.rnn.pad_packed_sequence(
            out, batch_first=True, total_length=src.shape[1]
        )
        return states, torch.cat([h_n[0], h_n[1]], dim=-1)

    def step(
        self,
        y_prev: torch.Tensor,
        s: torch.Tensor,
        states: torch.Tensor,
        summary: torch.Tensor,
        src_mask: torch.Tensor,
        projected: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """One decoder step from y_prev (N,) and state s (N, H).

        ``projected`` is ``self.attn.project_keys(states)`` (None without attention).
        Returns (logits (N, vocab), new state (N, H), attention weights (N, S) or None).
        """
        e = self.embed(y_prev)
        if self.attn is None:
            context, weights = summary, None
        else:
            context, weights = self.attn(s, states, src_mask, projected)
        s = self.decoder(torch.cat([e, context], dim=-1), s)
        return self.out(torch.cat([s, context, e], dim=-1)), s, weights

    def forward(
        self, src: torch.Tensor, src_mask: torch.Tensor, tgt_in: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Teacher forcing: tgt_in (N, T) is BOS + the target shifted right.

        Returns (logits (N, T, vocab), attention weights (N, T, S) or None); logits at step t
        depend only on tgt_in[:, :t+1].
        """
        states, summary = self.encode(src, src_mask)
        projected = None if self.attn is None else self.attn.project_keys(states)
        s = torch.tanh(self.bridge(summary))
        logits, weights = [], []
        for t in range(tgt_in.shape[1]):
            out, s, w = self.step(tgt_in[:, t], s, states, summary, src_mask, projected)
            logits.append(out)
            weights.append(w)
        attn = None if self.attn is None else torch.stack(weights, dim=1)
        return torch.stack(logits, dim=1), attn

    @torch.no_grad()
    def greedy_decode(
        self, src: torch.Tensor, src_mask: torch.Tensor, max_len: int, bos_id: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Feed back the argmax token for ``max_len`` steps, starting from ``bos_id``.

        Returns (tokens (N, max_len), attention weights (N, max_len, S) or None).
        """
        states, summary = self.encode(src, src_mask)
        projected = None if self.attn is None else self.attn.project_keys(states)
        s = torch.tanh(self.bridge(summary))
        y = torch.full((src.shape[0],), bos_id, dtype=torch.long, device=src.device)
        tokens, weights = [], []
        for _ in range(max_len):
            logits, s, w = self.step(y, s, states, summary, src_mask, projected)
            y = logits.argmax(dim=-1)
            tokens.append(y)
            weights.append(w)
        attn = None if self.attn is None else torch.stack(weights, dim=1)
        return torch.stack(tokens, dim=1), attn
