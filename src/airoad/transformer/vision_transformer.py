"""A vision transformer (ViT): an image cut into patches is a sequence of tokens.

Shapes: images are ``(B, C, H, W)``; with patch side ``p`` the image becomes ``N = (H/p)(W/p)``
patches, each flattened to ``C*p*p`` numbers in ``(c, i, j)`` order (the order of a conv weight
``(D, C, p, p)`` flattened), so the patch embedding ``(B, N, C*p*p) @ W^T`` is exactly a
convolution with kernel = stride = p. A learned class token is prepended (``T = N + 1``),
learned position embeddings are added, pre-LN encoder blocks mix the tokens, and the class
token's final vector (after a LayerNorm) is classified.

Attention rollout (Abnar & Zuidema, 2020) asks which input patches the class token's output
came from: average each layer's attention over heads, add the identity for the residual path,
renormalise the rows, and multiply the layers together.

The blocks are ``airoad.transformer.transformer_block``'s ``TransformerBlock`` (pre-LN, GELU),
with an attention that also returns its weights; parameter names follow
``nn.TransformerEncoderLayer`` (``self_attn.in_proj_weight``, ``norm1``, ``ff.linear1`` ...).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from airoad.transformer.transformer_block import (
    LayerNorm,
    LearnedPositionalEmbedding,
    MultiHeadSelfAttention,
    TransformerBlock,
)

# ---------------------------------------------------------------- patches


def patchify(images: torch.Tensor, patch_size: int) -> torch.Tensor:
    """Non-overlapping patches as rows: (B, C, H, W) -> (B, N, C*p*p), N = (H/p)*(W/p).

    Patches run in row-major order over the grid (left to right, then down); each patch is
    flattened in (c, i, j) order. A ValueError when H or W is not a multiple of p.
    """
    b, c, h, w = images.shape
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"image side {h}x{w} is not a multiple of patch_size {p}")
    grid = images.reshape(b, c, h // p, p, w // p, p)  # (B, C, gh, i, gw, j)
    return grid.permute(0, 2, 4, 1, 3, 5).reshape(b, (h // p) * (w // p), c * p * p)


class PatchEmbedding(nn.Module):
    """Each p x p patch through one linear map to d_model: (B, C, H, W) -> (B, N, d_model).

    ``proj`` is an ``nn.Linear(C*p*p, d_model)``; ``forward`` applies it to ``patchify``'s rows,
    ``forward_conv`` computes the same thing as a convolution with kernel = stride = p.
    """

    def __init__(self, patch_size: int, in_channels: int, d_model: int):
        super().__init__()
        self.patch_size, self.in_channels = patch_size, in_channels
        self.proj = nn.Linear(in_channels * patch_size * patch_size, d_model)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, N, d_model) by patchify then the linear map."""
        return self.proj(patchify(images, self.patch_size))

    def forward_conv(self, images: torch.Tensor) -> torch.Tensor:
        """The same output from ``F.conv2d`` with ``proj.weight`` viewed as (D, C, p, p)."""
        p = self.patch_size
        kernel = self.proj.weight.view(-1, self.in_channels, p, p)
        out = F.conv2d(images, kernel, self.proj.bias, stride=p)  # (B, D, H/p, W/p)
        return out.flatten(2).transpose(1, 2)


# ---------------------------------------------------------------- encoder block


class AttentionWithWeights(MultiHeadSelfAttention):
    """``MultiHeadSelfAttention`` that also returns its softmax weights (B, H, T, T).

    The scores are computed explicitly (no fused kernel) because rollout needs them; dropout,
    when training, is applied to the weights as ``nn.MultiheadAttention`` does.
    """

    def __init__(self, d_model: int, n_heads: int, dropout: float = 0.0):
        super().__init__(d_model, n_heads, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> (output (B, T, D), weights (B, H, T, T) whose rows sum to 1)."""
        b, t, d = x.shape
        dh = d // self.n_heads
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = qkv.view(b, t, 3, self.n_heads, dh).permute(2, 0, 3, 1, 4)
        weights = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(dh), dim=-1)
        mixed = F.dropout(weights, self.dropout, self.training) @ v  # (B, H, T, Dh)
        return self.out_proj(mixed.transpose(1, 2).reshape(b, t, d)), weights


class ViTBlock(TransformerBlock):
    """Pre-LN encoder block ``x + attn(norm1(x))`` then ``x + ff(norm2(x))``, GELU feed-forward.

    The same computation as ``nn.TransformerEncoderLayer(d_model, n_heads, d_ff, dropout,
    "gelu", batch_first=True, norm_first=True)``; ``forward`` also returns the attention weights.
    """

    def __init__(self, d_model: int, n_heads: int, d_ff: int, dropout: float = 0.0):
        super().__init__(d_model, n_heads, d_ff, dropout, activation="gelu", norm_first=True)
        self.self_attn = AttentionWithWeights(d_model, n_heads, dropout)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) -> (x (B, T, D), attention weights (B, H, T, T))."""
        attended, weights = self.self_attn(self.norm1(x))
        x = x + self.dropout1(attended)
        return x + self.dropout2(self.ff(self.norm2(x))), weights


# ---------------------------------------------------------------- the model


class VisionTransformer(nn.Module):
    """Patches -> [class token; patch tokens] + positions -> n_layers ViTBlocks -> LayerNorm ->
    the class token's vector -> linear head -> logits (B, n_classes).

    The class token and the position table start as N(0, 0.02^2); ``seed`` fixes every initial
    weight without touching torch's global random state.
    """

    def __init__(
        self,
        image_size: int = 28,
        patch_size: int = 4,
        in_channels: int = 1,
        n_classes: int = 10,
        d_model: int = 64,
        n_heads: int = 4,
        n_layers: int = 4,
        d_ff: int = 128,
        dropout: float = 0.0,
        seed: int | None = None,
    ):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch {patch_size}")
        self.image_size, self.patch_size = image_size, patch_size
        self.grid = image_size // patch_size
        with torch.random.fork_rng(enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.patch_embed = PatchEmbedding(patch_size, in_channels, d_model)
            self.cls_token = nn.Parameter(torch.randn(1, 1, d_model) * 0.02)
            self.pos_emb = LearnedPositionalEmbedding(self.grid**2 + 1, d_model)
            self.blocks = nn.ModuleList(
                ViTBlock(d_model, n_heads, d_ff, dropout) for _ in range(n_layers)
            )
            self.norm = LayerNorm(d_model)
            self.head = nn.Linear(d_model, n_classes)

    def tokens(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> the encoder's input (B, 1 + N, D): class token first, positions added."""
        patches = self.patch_embed(images)
        cls = self.cls_token.expand(patches.shape[0], -1, -1)
        return self.pos_emb(torch.cat([cls, patches], dim=1))

    def forward_with_attention(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(B, C, H, W) -> (logits (B, n_classes), every block's weights, each (B, H, T, T))."""
        h, attentions = self.tokens(images), []
        for block in self.blocks:
            h, weights = block(h)
            attentions.append(weights)
        return self.head(self.norm(h[:, 0])), attentions

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> logits (B, n_classes)."""
        return self.forward_with_attention(images)[0]


# ---------------------------------------------------------------- attention rollout


def attention_rollout(attentions: list[torch.Tensor]) -> torch.Tensor:
    """How much each output token draws on each input token through all layers: (B, T, T).

    For each layer's weights (B, H, T, T): ``A = mean over heads``, ``A = A + I`` (the residual
    path), rows renormalised to sum to 1; then ``R = A_L @ ... @ A_2 @ A_1``. Row t of R is a
    distribution over the input tokens (a product of row-stochastic matrices is one).
    """
    rollout = None
    for weights in attentions:
        a = weights.mean(dim=1)
        a = a + torch.eye(a.shape[-1], dtype=a.dtype, device=a.device)
        a = a / a.sum(dim=-1, keepdim=True)
        rollout = a if rollout is None else a @ rollout
    if rollout is None:
        raise ValueError("attention_rollout needs at least one layer's attention weights")
    return rollout


def class_token_map(rollout: torch.Tensor, grid: int) -> torch.Tensor:
    """The class token's row of the rollout over the patches, as an image: (B, grid, grid).

    Drops column 0 (the class token itself) and reshapes the N = grid^2 patch columns in
    patchify's row-major order; the values are not renormalised.
    """
    return rollout[:, 0, 1:].reshape(-1, grid, grid)
