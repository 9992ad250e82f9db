"""Convolutional networks: conv2d and pooling from scratch in NumPy (im2col), then a PyTorch CNN.

Shapes follow PyTorch: images are ``(N, C, H, W)``, conv weights ``(F, C, KH, KW)``. With
padding ``p`` and stride ``s`` the output side is ``OH = (H + 2p - KH) // s + 1``.

im2col turns convolution into one matrix product: every receptive field (a ``C*KH*KW`` patch)
becomes a column, so ``out = W.reshape(F, -1) @ cols``. Its adjoint, col2im, adds the columns
back into image positions (overlapping patches sum) and gives the input gradient.
"""

from __future__ import annotations

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view
from torch import nn


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a window of `kernel` sliding over `size` (+ `padding` each side) by `stride`."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x: np.ndarray, kh: int, kw: int, stride: int = 1, padding: int = 0) -> np.ndarray:
    """Patches of x (N, C, H, W) as columns: returns (N, C*kh*kw, OH*OW).

    Row index runs over (c, i, j) in C order, matching ``w.reshape(F, C*kh*kw)``.
    """
    n, c = x.shape[:2]
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    # windows: (N, C, H', W', kh, kw) as a strided view, then keep every stride-th position.
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::stride, ::stride]
    oh, ow = win.shape[2], win.shape[3]
    return win.transpose(0, 1, 4, 5, 2, 3).reshape(n, c * kh * kw, oh * ow)


def col2im(
    cols: np.ndarray, x_shape: tuple[int, ...], kh: int, kw: int, stride: int = 1, padding: int = 0
) -> np.ndarray:
    """Adjoint of im2col: add columns (N, C*kh*kw, OH*OW) back into an array of `x_shape`.

    Positions covered by several patches receive the sum; padding is cropped off at the end.
    """
    n, c, h, w = x_shape
    oh, ow = conv_output_size(h, kh, stride, padding), conv_output_size(w, kw, stride, padding)
    cols = cols.reshape(n, c, kh, kw, oh, ow)
    xp = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    # One strided add per kernel offset (kh*kw of them), each over every sample at once.
    for i in range(kh):
        for j in range(kw):
            xp[:, :, i : i + stride * oh : stride, j : j + stride * ow : stride] += cols[:, :, i, j]
    return xp[:, :, padding : padding + h, padding : padding + w]


def conv2d_forward(
    x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None, stride: int = 1, padding: int = 0
) -> tuple[np.ndarray, tuple]:
    """Cross-correlation like ``F.conv2d``: x (N, C, H, W), w (F, C, KH, KW), b (F,) or None.

    Returns (out (N, F, OH, OW), cache) where cache holds what the backward pass needs.
    """
    n = x.shape[0]
    f, _, kh, kw = w.shape
    cols = im2col(x, kh, kw, stride, padding)  # (N, CKK, L)
    out = np.einsum("fk,nkl->nfl", w.reshape(f, -1), cols, optimize=True)
    if b is not None:
        out = out + b[None, :, None]
    oh = conv_output_size(x.shape[2], kh, stride, padding)
    ow = conv_output_size(x.shape[3], kw, stride, padding)
    return out.reshape(n, f, oh, ow), (x.shape, cols, w, stride, padding)


def conv2d_backward(dout: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a loss w.r.t. x, w and b given dL/dout (N, F, OH, OW) and the forward cache.

    dW = sum_n dout_n @ cols_n^T;  dcols = W^T @ dout;  dx = col2im(dcols);  db = sum of dout.
    """
    x_shape, cols, w, stride, padding = cache
    n, f = dout.shape[:2]
    d = dout.reshape(n, f, -1)  # (N, F, L)
    dw = np.einsum("nfl,nkl->fk", d, cols, optimize=True).reshape(w.shape)
    dcols = np.einsum("fk,nfl->nkl", w.reshape(f, -1), d, optimize=True)
    dx = col2im(dcols, x_shape, w.shape[2], w.shape[3], stride, padding)
    return dx, dw, d.sum(axis=(0, 2))


def _pool_cols(x: np.ndarray, kernel: int, stride: int) -> np.ndarray:
    """Windows of each channel separately: (N, C, kernel*kernel, OH*OW)."""
    n, c = x.shape[:2]
    cols = im2col(x.reshape(n * c, 1, *x.shape[2:]), kernel, kernel, stride)
    return cols.reshape(n, c, kernel * kernel, -1)


def maxpool2d_forward(
    x: np.ndarray, kernel: int = 2, stride: int | None = None
) -> tuple[np.ndarray, tuple]:
    """Max over each kernel x kernel window (stride defaults to kernel), like ``F.max_pool2d``.

    x (N, C, H, W) -> (out (N, C, OH, OW), cache with the argmax of every window).
    """
    stride = kernel if stride is None else stride
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kernel, stride), conv_output_size(w, kernel, stride)
    cols = _pool_cols(x, kernel, stride)
    arg = cols.argmax(axis=2)  # (N, C, L): first max wins, like torch
    out = np.take_along_axis(cols, arg[:, :, None], axis=2)[:, :, 0]
    return out.reshape(n, c, oh, ow), (x.shape, arg, kernel, stride)


def maxpool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Route each window's gradient to the position that held its max; returns dx (N, C, H, W)."""
    x_shape, arg, kernel, stride = cache
    n, c, h, w = x_shape
    dcols = np.zeros((n, c, kernel * kernel, arg.shape[-1]), dtype=dout.dtype)
    np.put_along_axis(dcols, arg[:, :, None], dout.reshape(n, c, 1, -1), axis=2)
    dx = col2im(dcols.reshape(n * c, kernel * kernel, -1), (n * c, 1, h, w), kernel, kernel, stride)
    return dx.reshape(x_shape)


def avgpool2d_forward(
    x: np.ndarray, kernel: int = 2, stride: int | None = None
) -> tuple[np.ndarray, tuple]:
    """Mean over each kernel x kernel window (stride defaults to kernel), like ``F.avg_pool2d``."""
    stride = kernel if stride is None else stride
    n, c, h, w = x.shape
    oh, ow = conv_output_size(h, kernel, stride), conv_output_size(w, kernel, stride)
    out = _pool_cols(x, kernel, stride).mean(axis=2)
    return out.reshape(n, c, oh, ow), (x.shape, kernel, stride)


def avgpool2d_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """Each window member gets 1/(kernel*kernel) of the window's gradient; returns dx (N, C, H, W)."""
    x_shape, kernel, stride = cache
    n, c, h, w = x_shape
    share = dout.reshape(n * c, 1, -1) / (kernel * kernel)
    dcols = np.broadcast_to(share, (n * c, kernel * kernel, share.shape[-1]))
    dx = col2im(np.ascontiguousarray(dcols), (n * c, 1, h, w), kernel, kernel, stride)
    return dx.reshape(x_shape)


# ---------------------------------------------------------------- the PyTorch CNN


def augment(
    x: torch.Tensor, padding: int, generator: torch.Generator, flip: bool = True
) -> torch.Tensor:
    """Random crop (zero-pad by `padding`, cut back to H x W at a random offset) + random
    horizontal flip with probability 1/2, independently per image. x (N, C, H, W) -> same shape.
    """
    n, c, h, w = x.shape
    xp = nn.functional.pad(x, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator)
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # (N, H, 1)
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # (N, 1, W)
    if flip:
        mirror = torch.rand(n, generator=generator) < 0.5
        cols = torch.where(mirror[:, None, None], cols.flip(-1), cols)
    # Advanced indexing gathers every image's own window: result (N, H, W, C).
    out = xp.permute(0, 2, 3, 1)[torch.arange(n)[:, None, None], rows, cols]
    return out.permute(0, 3, 1, 2).contiguous()


class ResidualBlock(nn.Module):
    """Two 3x3 conv-batchnorm layers with an identity shortcut: relu(x + bn(conv(relu(bn(conv(x))))))."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, C, H, W) -> (N, C, H, W); the shortcut lets the gradient skip the two convs."""
        h = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(h)))


class FashionCNN(nn.Module):
    """[conv3x3-bn-relu-maxpool2] x 2 -> residual block -> dropout -> dense -> 10 logits.

    Input (N, 1, 28, 28) -> 14x14 -> 7x7 feature maps -> logits (N, n_classes).
    """

    def __init__(
        self,
        channels: tuple[int, int] = (32, 64),
        hidden: int = 128,
        n_classes: int = 10,
        dropout: float = 0.3,
    ):
        super().__init__()
        c1, c2 = channels
        self.stage1 = nn.Sequential(
            nn.Conv2d(1, c1, 3, padding=1, bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.stage2 = nn.Sequential(
            nn.Conv2d(c1, c2, 3, padding=1, bias=False),
            nn.BatchNorm2d(c2),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.residual = ResidualBlock(c2)
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(c2 * 7 * 7, hidden),
            nn.ReLU(),
            nn.Linear(hidden, n_classes),
        )

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Feature maps after stage 1 (N, c1, 14, 14), stage 2 (N, c2, 7, 7) and the residual block."""
        h1 = self.stage1(x)
        h2 = self.stage2(h1)
        return [h1, h2, self.residual(h2)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, 1, 28, 28) -> logits (N, n_classes)."""
        return self.head(self.features(x)[-1])
