"""The layers a transformer block is made of: positions, norms and feed-forward networks.

Shapes: a batch of token vectors is ``(B, T, D)`` (batch, time, model width).

- Positions: attention alone ignores order, so the block gets it from a fixed sinusoidal table,
  a learned table, or by rotating queries and keys (RoPE) so that ``q . k`` sees only ``m - n``.
- Norms: LayerNorm centres and scales each vector; RMSNorm only scales (no mean, no bias).
- Feed-forward: ``W2 act(W1 x)`` per position (ReLU/GELU), or SwiGLU ``W2 (silu(W1 x) * W3 x)``.

Parameter names follow torch (``weight``/``bias`` in the norms, ``linear1``/``linear2`` in the
feed-forward), so copying weights into ``nn.TransformerEncoderLayer`` is a renaming of keys.
`airoad.transformer.transformer_block` assembles them with attention into blocks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------- positions


def sinusoidal_positions(
    n_positions: int, d_model: int, base: float = 10000.0, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """The fixed table of "Attention Is All You Need": (n_positions, d_model).

    ``PE[p, 2i] = sin(p / base^(2i/d))`` and ``PE[p, 2i+1] = cos(p / base^(2i/d))``: pair ``i`` is a
    clock turning at frequency ``base^(-2i/d)``, so ``PE[p + k]`` is ``PE[p]`` rotated by a fixed
    angle per pair. An odd ``d_model`` drops the last cosine column.
    """
    pos = torch.arange(n_positions, dtype=torch.float64)[:, None]
    freq = base ** (-torch.arange(0, d_model, 2, dtype=torch.float64) / d_model)
    angle = pos * freq  # (P, ceil(D/2)), computed in float64 then cast
    table = torch.zeros(n_positions, d_model, dtype=torch.float64)
    table[:, 0::2] = torch.sin(angle)
    table[:, 1::2] = torch.cos(angle[:, : d_model // 2])
    return table.to(dtype)


class LearnedPositionalEmbedding(nn.Module):
    """A trained vector per position, added to the tokens: x (B, T, D) -> x + weight[:T]."""

    def __init__(self, max_len: int, d_model: int):
        super().__init__()
        self.max_len = max_len
        self.weight = nn.Parameter(torch.randn(max_len, d_model) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, D) -> x + weight[:T]; a ValueError when T exceeds max_len (no row to use)."""
        t = x.shape[-2]
        if t > self.max_len:
            raise ValueError(f"sequence length {t} exceeds max_len {self.max_len}")
        return x + self.weight[:t]


def apply_rope(
    x: torch.Tensor, positions: torch.Tensor | None = None, base: float = 10000.0
) -> torch.Tensor:
    """Rotary position embedding: rotate each pair (x[2i], x[2i+1]) by the angle p * theta_i.

    x (..., T, Dh) with Dh even; positions (T,) (default 0..T-1); ``theta_i = base^(-2i/Dh)``.
    Pair i at position p becomes ``(a cos - b sin, a sin + b cos)`` of angle ``p theta_i``: the
    complex number ``a + ib`` times ``e^(i p theta_i)``. Rotations keep lengths and
    ``<R_m q, R_n k> = <q, R_(n-m) k>``, so attention scores depend on the offset only.
    """
    t, dh = x.shape[-2], x.shape[-1]
    if dh % 2:
        raise ValueError(f"RoPE needs an even head width, got {dh}")
    pos = torch.arange(t, device=x.device) if positions is None else positions
    theta = base ** (-torch.arange(0, dh, 2, dtype=torch.float64, device=x.device) / dh)
    angle = pos.to(torch.float64)[:, None] * theta  # (T, Dh/2), exact for large positions
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    a, b = x[..., 0::2], x[..., 1::2]
    return torch.stack((a * cos - b * sin, a * sin + b * cos), dim=-1).flatten(-2)


# ---------------------------------------------------------------- norms


class LayerNorm(nn.Module):
    """``(x - mean) / sqrt(var + eps) * weight + bias`` over the last axis (biased variance)."""

    def __init__(self, d_model: int, eps: float = 1e-5, bias: bool = True):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))
        self.bias = nn.Parameter(torch.zeros(d_model)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) -> same shape; each vector gets mean 0 and variance 1, then the affine map."""
        mean = x.mean(-1, keepdim=True)
        var = (x - mean).pow(2).mean(-1, keepdim=True)
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.weight
        return y if self.bias is None else y + self.bias


class RMSNorm(nn.Module):
    """``x / sqrt(mean(x^2) + eps) * weight``: LayerNorm without centring and without bias."""

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d_model))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) -> same shape, each vector divided by its root mean square."""
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps) * self.weight


# ---------------------------------------------------------------- feed-forward


class FeedForward(nn.Module):
    """Position-wise MLP ``linear2(dropout(act(linear1(x))))``, act = ReLU or exact (erf) GELU."""

    def __init__(
        self,
        d_model: int,
        d_ff: int,
        activation: str = "gelu",
        dropout: float = 0.0,
        bias: bool = True,
    ):
        super().__init__()
        if activation not in ("relu", "gelu"):
            raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
        self.activation = activation
        self.linear1 = nn.Linear(d_model, d_ff, bias=bias)
        self.dropout = nn.Dropout(dropout)
        self.linear2 = nn.Linear(d_ff, d_model, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) -> (..., D) through a (..., d_ff) hidden layer."""
        h = self.linear1(x)
        h = F.relu(h) if self.activation == "relu" else F.gelu(h)
        return self.linear2(self.dropout(h))


class SwiGLU(nn.Module):
    """Gated feed-forward of LLaMA/PaLM: ``w2(dropout(silu(w1 x) * w3 x))``, no biases.

    ``w1`` makes the gate, ``w3`` the value it multiplies, ``w2`` projects back to ``d_model``;
    silu(z) = z * sigmoid(z). Three matrices instead of two, so ``d_ff`` is usually ~2/3 as wide.
    """

    def __init__(self, d_model: int, d_ff: int, dropout: float = 0.0):
        super().__init__()
        self.w1 = nn.Linear(d_model, d_ff, bias=False)
        self.w3 = nn.Linear(d_model, d_ff, bias=False)
        self.w2 = nn.Linear(d_ff, d_model, bias=False)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (..., D) -> (..., D)."""
        return self.w2(self.dropout(F.silu(self.w1(x)) * self.w3(x)))
