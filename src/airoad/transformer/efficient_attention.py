"""Attention for long sequences: exact tiled attention with an online softmax (the FlashAttention
idea), sliding-window attention, and linear attention with a kernel feature map.

Shapes are batch first: ``q`` (..., Lq, d), ``k`` (..., Lk, d), ``v`` (..., Lk, dv), with the
same leading (batch, heads) dims. Standard attention builds the (..., Lq, Lk) score matrix:

    attention(q, k, v) = softmax(q k^T * scale) v,        scale = 1 / sqrt(d)

which costs O(L^2) memory. The three ideas here avoid holding that matrix:

- tiled: the same exact result, one (block_q, block_k) tile of scores at a time. A softmax can be
  built up block by block if we keep, per query row, the running max ``m``, the running sum
  ``l = sum exp(s - m)`` and the running output ``acc = sum exp(s - m) v``; when a new block
  raises the max to ``m'``, the old sums are rescaled by ``exp(m - m')``. Memory O(L d).
- sliding window: each query sees only its ``window`` neighbours, so only a band is computed.
  O(L * window) time and memory; a different (sparser) model, not the same numbers.
- linear: replace exp(q.k) by phi(q).phi(k) with a positive feature map phi (elu + 1). Then
  sum_j phi(q_i).phi(k_j) v_j = phi(q_i)^T (sum_j phi(k_j) v_j^T): the sum over keys is done once
  (a d x dv matrix), or as a running prefix sum for causal attention. O(L d dv), no L^2 at all.

Causal masks are aligned at the top-left corner like ``is_causal=True`` in
``F.scaled_dot_product_attention``: query i sees key j iff j <= i.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

NEG_INF = float("-inf")


def attention_matrix_bytes(
    batch_heads: int, q_len: int, k_len: int, dtype: torch.dtype = torch.float32
) -> int:
    """Bytes of ONE materialised score matrix (batch_heads, q_len, k_len) of ``dtype``.

    E.g. 2 heads at L = 8192 in float32: 2 * 8192 * 8192 * 4 bytes = 512 MiB.
    """
    itemsize = torch.empty((), dtype=dtype).element_size()
    return batch_heads * q_len * k_len * itemsize


def naive_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
) -> torch.Tensor:
    """softmax(q k^T * scale) v the textbook way, building the whole (..., Lq, Lk) matrix.

    Returns (..., Lq, dv). This is the O(L^2)-memory baseline the other functions avoid.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q * scale) @ k.transpose(-2, -1)
    if causal:
        above = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(above, NEG_INF)
    return torch.softmax(scores, dim=-1) @ v


# ---------------------------------------------------------------- online softmax, tiled attention


def online_softmax_step(
    row_max: torch.Tensor,
    row_sum: torch.Tensor,
    acc: torch.Tensor,
    scores: torch.Tensor,
    v_block: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fold one block of scores into the running softmax state; returns the new (m, l, acc).

    row_max m (..., Lq, 1), row_sum l (..., Lq, 1) = sum of exp(s - m) so far, acc (..., Lq, dv)
    = sum of exp(s - m) v so far; scores (..., Lq, Bk) with -inf where masked; v_block (..., Bk, dv).

        m' = max(m, max_j s_j),  l' = exp(m - m') l + sum_j exp(s_j - m'),
        acc' = exp(m - m') acc + exp(s - m') @ v_block

    Start from m = -inf, l = 0, acc = 0. After the last block, acc / l is the softmax-weighted
    sum of the values and m + log(l) the row's log-sum-exp. The max is only a numerical shift
    (the result does not depend on it), so it carries no gradient. A row that has seen only
    -inf so far keeps l = 0 and acc = 0 (no NaN).
    """
    m_new = torch.maximum(row_max, scores.detach().amax(dim=-1, keepdim=True))
    shift = torch.where(torch.isfinite(m_new), m_new, torch.zeros_like(m_new))  # -inf rows -> 0
    alpha = torch.exp(row_max - shift)  # rescales the old sums; exp(-inf) = 0 on the first block
    p = torch.exp(scores - shift)
    return m_new, alpha * row_sum + p.sum(dim=-1, keepdim=True), alpha * acc + p @ v_block


def _score_tile(
    q_tile: torch.Tensor, k_tile: torch.Tensor, scale: float, i0: int, j0: int, causal: bool
) -> torch.Tensor:
    """Scores of queries i0.. against keys j0..: (q_tile * scale) k_tile^T, -inf above the diagonal."""
    s = (q_tile * scale) @ k_tile.transpose(-2, -1)
    if causal and j0 + k_tile.shape[-2] - 1 > i0:  # the tile reaches past query i0's diagonal
        rows = torch.arange(i0, i0 + q_tile.shape[-2], device=s.device)[:, None]
        cols = torch.arange(j0, j0 + k_tile.shape[-2], device=s.device)[None, :]
        s = s.masked_fill(cols > rows, NEG_INF)
    return s


def tiled_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact softmax attention, one (block_q, block_k) tile of scores at a time.

    For each block of queries, loop over the key blocks with ``online_softmax_step``; with
    ``causal`` the key blocks entirely after the last query of the block are skipped (about
    half the work). Block sizes need not divide the lengths.
    Returns (output (..., Lq, dv), lse (..., Lq)) where lse is each row's log-sum-exp of the
    scaled scores, all that a memory-efficient backward pass needs to rebuild the softmax.
    Autograd can differentiate through it (but then stores every tile: O(L^2) again).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    lq, lk, lead = q.shape[-2], k.shape[-2], q.shape[:-2]
    outs, lses = [], []
    for i0 in range(0, lq, block_q):
        q_tile = q[..., i0 : i0 + block_q, :]
        rows = q_tile.shape[-2]
        m = q.new_full((*lead, rows, 1), NEG_INF)
        row_sum = q.new_zeros((*lead, rows, 1))
        acc = q.new_zeros((*lead, rows, v.shape[-1]))
        k_end = min(lk, i0 + rows) if causal else lk  # later keys are masked for every row here
        for j0 in range(0, k_end, block_k):
            s = _score_tile(q_tile, k[..., j0 : j0 + block_k, :], scale, i0, j0, causal)
            m, row_sum, acc = online_softmax_step(m, row_sum, acc, s, v[..., j0 : j0 + block_k, :])
        outs.append(acc / row_sum)
        lses.append((m + torch.log(row_sum)).squeeze(-1))
    return torch.cat(outs, dim=-2), torch.cat(lses, dim=-1)


def tiled_attention_backward(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    grad_out: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients (dq, dk, dv) of attention from the saved output and lse, tile by tile.

    Nothing of size L^2 was kept: each tile's probabilities are recomputed as
    P = exp(s - lse). With dO = grad_out and D_i = sum_c dO_ic O_ic (one number per query):

        dV += P^T dO,   dP = dO V^T,   dS = P * (dP - D),   dQ += scale dS K,   dK += scale dS^T Q

    (dS is the softmax backward: dS_ij = P_ij (dP_ij - sum_j' P_ij' dP_ij') and that sum is D_i.)
    Shapes as in ``tiled_attention``; out (..., Lq, dv), lse (..., Lq), grad_out like out.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    dq, dk, dv = torch.zeros_like(q), torch.zeros_like(k), torch.zeros_like(v)
    delta = (grad_out * out).sum(dim=-1, keepdim=True)  # (..., Lq, 1)
    for i0 in range(0, q.shape[-2], block_q):
        rows = slice(i0, i0 + block_q)
        q_tile, do_tile = q[..., rows, :], grad_out[..., rows, :]
        k_end = min(k.shape[-2], i0 + q_tile.shape[-2]) if causal else k.shape[-2]
        for j0 in range(0, k_end, block_k):
            cols = slice(j0, j0 + block_k)
            k_tile, v_tile = k[..., cols, :], v[..., cols, :]
            p = torch.exp(_score_tile(q_tile, k_tile, scale, i0, j0, causal) - lse[..., rows, None])
            dv[..., cols, :] += p.transpose(-2, -1) @ do_tile
            ds = p * (do_tile @ v_tile.transpose(-2, -1) - delta[..., rows, :])
            dq[..., rows, :] += scale * (ds @ k_tile)
            dk[..., cols, :] += scale * (ds.transpose(-2, -1) @ q_tile)
    return dq, dk, dv


class FlashAttention(torch.autograd.Function):
    """Tiled forward + recomputing backward: exact attention whose training memory is O(L d)."""

    @staticmethod
    def forward(ctx, q, k, v, causal=False, scale=None, block_q=64, block_k=64):  # noqa: D102
        """Run ``tiled_attention`` and keep only q, k, v, the output and the lse for backward."""
        out, lse = tiled_attention(q, k, v, causal, scale, block_q, block_k)
        ctx.save_for_backward(q, k, v, out, lse)
        ctx.options = (causal, scale, block_q, block_k)
        return out

    @staticmethod
    def backward(ctx, grad_out):  # noqa: D102
        """(dq, dk, dv) from ``tiled_attention_backward``; the non-tensor arguments get None."""
        q, k, v, out, lse = ctx.saved_tensors
        grads = tiled_attention_backward(q, k, v, out, lse, grad_out, *ctx.options)
        return (*grads, None, None, None, None)


def flash_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    scale: float | None = None,
    block_q: int = 64,
    block_k: int = 64,
) -> torch.Tensor:
    """Exact attention (..., Lq, dv) through ``FlashAttention``: use it where gradients are needed."""
    return FlashAttention.apply(q, k, v, causal, scale, block_q, block_k)


# ---------------------------------------------------------------- sliding-window attention


def sliding_window_mask(
    length: int, window: int, causal: bool = True, device: torch.device | None = None
) -> torch.Tensor:
    """(length, length) bool band, True where query i may see key j.

    causal: 0 <= i - j < window (itself and the window - 1 keys before it);
    otherwise |i - j| < window (window - 1 keys on each side). window >= 1.
    """
    offset = torch.arange(length, device=device)[:, None] - torch.arange(length, device=device)
    return (offset >= 0) & (offset < window) if causal else offset.abs() < window


def sliding_window_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    window: int,
    causal: bool = True,
    scale: float | None = None,
    block: int = 64,
) -> torch.Tensor:
    """Self-attention restricted to the ``sliding_window_mask`` band, never building L x L.

    q, k, v (..., L, d|dv) of one length L. Queries [i0, i1) can only see keys
    [i0 - window + 1, i1) (causal) or [i0 - window + 1, i1 + window - 1), so each block of
    queries scores just that slice: O(L (block + window) d) time, O(block (block + window))
    extra memory. Equals softmax attention with the band as an explicit mask. Returns (..., L, dv).
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    length, outs = q.shape[-2], []
    for i0 in range(0, length, block):
        i1 = min(length, i0 + block)
        j0, j1 = max(0, i0 - window + 1), i1 if causal else min(length, i1 + window - 1)
        s = (q[..., i0:i1, :] * scale) @ k[..., j0:j1, :].transpose(-2, -1)
        offset = torch.arange(i0, i1, device=q.device)[:, None] - torch.arange(
            j0, j1, device=q.device
        )
        band = (offset >= 0) & (offset < window) if causal else offset.abs() < window
        s = s.masked_fill(~band, NEG_INF)  # every row keeps itself, so no row is all -inf
        outs.append(torch.softmax(s, dim=-1) @ v[..., j0:j1, :])
    return torch.cat(outs, dim=-2)


# ---------------------------------------------------------------- linear attention


def elu_feature_map(x: torch.Tensor) -> torch.Tensor:
    """phi(x) = elu(x) + 1: positive everywhere (so the normaliser never vanishes), ~x + 1 for x > 0."""
    return F.elu(x) + 1.0


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    causal: bool = False,
    feature_map: Callable[[torch.Tensor], torch.Tensor] = elu_feature_map,
    chunk: int = 64,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Kernelised attention out_i = phi(q_i)^T S / (phi(q_i)^T z + eps), no softmax, no L x L.

    S = sum_j phi(k_j) v_j^T (d x dv) and z = sum_j phi(k_j) (d); with ``causal`` both sums run
    over j <= i only. Causal is computed chunk by chunk: the keys of earlier chunks enter as
    the prefix sums (S, z), the keys inside the chunk through a small (chunk x chunk) lower-
    triangular matrix of phi(q).phi(k), then the chunk is added to (S, z). Any ``chunk`` gives
    the same numbers. q, k (..., L, d), v (..., L, dv) -> (..., Lq, dv); no 1/sqrt(d) scale.
    """
    fq, fk = feature_map(q), feature_map(k)
    if not causal:
        s, z = fk.transpose(-2, -1) @ v, fk.sum(dim=-2)  # (..., d, dv), (..., d)
        return (fq @ s) / (fq @ z.unsqueeze(-1) + eps)
    s = q.new_zeros((*q.shape[:-2], q.shape[-1], v.shape[-1]))
    z = q.new_zeros((*q.shape[:-2], q.shape[-1], 1))
    outs = []
    for c0 in range(0, q.shape[-2], chunk):
        fq_c, fk_c, v_c = (
            fq[..., c0 : c0 + chunk, :],
            fk[..., c0 : c0 + chunk, :],
            v[..., c0 : c0 + chunk, :],
        )
        a = (fq_c @ fk_c.transpose(-2, -1)).tril()  # phi(q_i).phi(k_j) for j <= i in the chunk
        num = fq_c @ s + a @ v_c
        den = fq_c @ z + a.sum(dim=-1, keepdim=True)
        outs.append(num / (den + eps))
        s = s + fk_c.transpose(-2, -1) @ v_c
        z = z + fk_c.sum(dim=-2).unsqueeze(-1)
    return torch.cat(outs, dim=-2)
