"""Part 1 of the transformer-block runner: the block's parts beside torch's, in float64.

Weights are copied into ``nn.LayerNorm``, ``nn.RMSNorm`` and ``nn.TransformerEncoderLayer``
(both ``norm_first`` settings); outputs and every gradient are compared. RoPE scores are checked
to depend only on the offset. Split from the runner to keep each file short."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from airoad.transformer import transformer_block as ref


def _compare(ours: nn.Module, theirs: nn.Module, x: torch.Tensor, kw: dict, kw_torch: dict):
    """Max |ours - torch| over the outputs and over the gradients of x and every parameter."""
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, want = ours(xa, **kw), theirs(xb, **kw_torch)
    g = torch.randn(out.shape, dtype=out.dtype, generator=torch.Generator().manual_seed(1))
    out.backward(g)
    want.backward(g)
    named = dict(theirs.named_parameters())
    grads = [(xa.grad, xb.grad)] + [
        (p.grad, named[n.removeprefix("ff.")].grad) for n, p in ours.named_parameters()
    ]
    diff_out = float((out - want).detach().abs().max())
    return diff_out, max(float((a - b).abs().max()) for a, b in grads)


def parts_vs_torch(x_ids: torch.Tensor, vocab: int, config: Any) -> list[dict]:
    """Norms and both block layouts against torch in float64 on embedded Shakespeare windows."""
    torch.manual_seed(config.seed)
    x = nn.Embedding(vocab, config.d_model).double()(x_ids).detach()
    d, h, ff = config.d_model, config.n_heads, config.d_ff
    causal = {
        "src_mask": torch.ones(config.seq_len, config.seq_len).bool().triu(1),
        "is_causal": True,
    }
    pairs = [
        ("LayerNorm", ref.LayerNorm(d), nn.LayerNorm(d), {}, {}),
        ("RMSNorm", ref.RMSNorm(d), nn.RMSNorm(d, eps=1e-6), {}, {}),
    ] + [
        (
            f"block, {'pre' if nf else 'post'}-LN, causal",
            ref.TransformerBlock(d, h, ff, 0.0, config.activation, nf),
            nn.TransformerEncoderLayer(
                d, h, ff, 0.0, config.activation, batch_first=True, norm_first=nf
            ),
            {"causal": True},
            causal,
        )
        for nf in (False, True)
    ]
    rows = []
    for name, ours, theirs, kw, kw_torch in pairs:
        with torch.no_grad():
            for p in ours.parameters():
                p.add_(0.1 * torch.randn(p.shape))  # affine params away from ones and zeros
        ours, theirs = ours.double(), theirs.double()
        theirs.load_state_dict({k.removeprefix("ff."): v for k, v in ours.state_dict().items()})
        diff_out, diff_grad = _compare(ours, theirs, x, kw, kw_torch)
        rows.append({"part": name, "max_abs_diff_out": diff_out, "max_abs_diff_grad": diff_grad})
    return rows


def rope_offsets(config: Any, starts=(0, 50, 500, 5000)) -> tuple[float, dict]:
    """q.k against the offset n - m for one (q, k), with the query at several positions m.

    Returns the curves and their largest gap to the m = 0 curve (0 up to rounding for RoPE).
    """
    dh = config.d_model // config.n_heads
    q, k = torch.randn(2, 1, dh, generator=torch.Generator().manual_seed(config.seed)).double()
    ks = k.expand(64, dh)
    curves = {
        m: (ref.apply_rope(q, torch.tensor([m])) @ ref.apply_rope(ks, m + torch.arange(64)).T)
        .ravel()
        .numpy()
        for m in starts
    }
    return max(float(np.abs(c - curves[0]).max()) for c in curves.values()), curves
