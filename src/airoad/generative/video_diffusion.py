"""Diffusion for short videos: clips of one moving MNIST digit and a space-time denoiser.

The data: a real MNIST digit, shrunk to ``digit_size`` x ``digit_size`` pixels, pasted into a
black ``size`` x ``size`` frame at a seeded start and moved with a seeded integer velocity for
``n_frames`` frames, bouncing off the edges. Positions are whole pixels, so every frame holds
exactly the same pixels of the digit (its ink, the "mass", is conserved) at a new place.

The model: a noise predictor ``eps(x_t, t)`` over clips (n, 1, T, H, W) built from factorised
space-time blocks. Space: a 2-D convolution applied to every frame on its own (the same as a
3-D convolution whose kernel spans one frame). Time: self-attention across the T frames at every
pixel, i.e. on the (n * H * W, T, C) sequences, with a learned embedding per frame (without it,
attention cannot tell frame 2 from frame 7: permuting the frames just permutes the output).
The diffusion maths (schedule, q_sample, loss, DDIM) come from `airoad.generative.diffusion`.

Clip tensors: (n, T, H, W) for data and measures; (n, C, T, H, W) inside the model.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from airoad.generative.unet import ResBlock, sinusoidal_embedding

# ---------------------------------------------------------------- moving digits


def downscale_digits(images, digit_size: int = 10) -> Tensor:
    """Shrink (n, 28, 28) digits (uint8 0..255 or float 0..1) to (n, s, s) float32 in [0, 1].

    Each output pixel is the mean of the input pixels it covers: ``F.adaptive_avg_pool2d``
    (for 28 -> 10 the windows overlap by a pixel, so no input pixel is dropped).
    """
    x = torch.as_tensor(np.asarray(images))
    x = x.float() / 255.0 if not x.is_floating_point() else x.float()
    return F.adaptive_avg_pool2d(x[:, None], digit_size)[:, 0]


def bounce_path(start: Tensor, velocity: Tensor, n_frames: int, span: int) -> Tensor:
    """Integer positions (n, T, 2) of points moving at ``velocity`` inside [0, span], bouncing.

    start, velocity: (n, 2) long with 0 <= start <= span and |velocity| <= span. Unfold the walls:
    the free path u = start + velocity * t, folded into [0, span] by the triangle wave
    ``span - |(u mod 2 span) - span|`` (a mirror at each wall), with no loop over frames.
    """
    t = torch.arange(n_frames)[None, :, None]
    u = start[:, None, :] + velocity[:, None, :] * t
    if span == 0:
        return torch.zeros_like(u)
    return span - (u.remainder(2 * span) - span).abs()


def render_clips(digits: Tensor, positions: Tensor, size: int = 16) -> Tensor:
    """Paste digit i at positions[i, t] = (row, col) of its top-left corner in frame t.

    digits (n, s, s), positions (n, T, 2) long with 0 <= position <= size - s. Returns
    (n, T, size, size): frame pixel (y, x) = digit[y - row, x - col] where that lies inside the
    digit, else 0. One gather for all clips and frames (indices clamped, then masked).
    """
    n, s = digits.shape[0], digits.shape[-1]
    grid = torch.arange(size)
    rows = grid[None, None, :] - positions[..., 0:1]  # (n, T, size): digit row of frame row y
    cols = grid[None, None, :] - positions[..., 1:2]
    inside = ((rows >= 0) & (rows < s))[..., :, None] & ((cols >= 0) & (cols < s))[..., None, :]
    i = torch.arange(n)[:, None, None, None]
    pixels = digits[i, rows.clamp(0, s - 1)[..., :, None], cols.clamp(0, s - 1)[..., None, :]]
    return pixels * inside


def moving_digit_clips(
    images,
    n_frames: int = 8,
    size: int = 16,
    digit_size: int = 10,
    max_speed: int = 2,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    """One clip (T, size, size) in [0, 1] per digit image, and its top-left path (n, T, 2).

    Seeded by ``seed`` alone (a ``torch.Generator``): start uniform in 0..size-digit_size on each
    axis, velocity uniform in {-max_speed..max_speed} without 0 on each axis (so every clip
    moves), then `bounce_path` and `render_clips` on the `downscale_digits` of the images.
    """
    span = size - digit_size
    if span < 1 or not 1 <= max_speed <= span or n_frames < 2:
        raise ValueError(
            f"need digit_size < size, 1 <= max_speed <= size - digit_size and n_frames >= 2; "
            f"got size={size}, digit_size={digit_size}, max_speed={max_speed}, n_frames={n_frames}"
        )
    digits = downscale_digits(images, digit_size)
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, span + 1, (len(digits), 2), generator=g)
    speed = torch.randint(1, max_speed + 1, (len(digits), 2), generator=g)
    sign = torch.randint(0, 2, (len(digits), 2), generator=g) * 2 - 1
    path = bounce_path(start, speed * sign, n_frames, span)
    return render_clips(digits, path, size), path


# ---------------------------------------------------------------- temporal measures


def centre_of_mass(clips: Tensor, eps: float = 1e-8) -> Tensor:
    """Intensity-weighted mean (row, col) of every frame: (n, T, H, W) -> (n, T, 2).

    ``sum_yx p(y, x) * (y, x) / sum_yx p(y, x)`` with pixels clipped at 0 (a blank frame gives
    the frame's corner, not NaN, thanks to ``eps``).
    """
    p = clips.clamp_min(0)
    mass = p.sum((-2, -1)) + eps
    rows = torch.arange(p.shape[-2], dtype=p.dtype)
    cols = torch.arange(p.shape[-1], dtype=p.dtype)
    r = (p.sum(-1) * rows).sum(-1) / mass
    c = (p.sum(-2) * cols).sum(-1) / mass
    return torch.stack([r, c], -1)


def motion_stats(clips: Tensor) -> dict[str, float]:
    """How a set of clips (n, T, H, W) moves, as four floats averaged over clips:

    - ``step``: mean distance the centre of mass travels per frame (pixels);
    - ``jerk``: mean size of its second difference |c[t+1] - 2 c[t] + c[t-1]| (0 on a straight
      path at constant speed; a bounce adds at most twice the speed);
    - ``mass_cv``: the per-clip coefficient of variation of the frame's total ink over time
      (0 when every frame holds the same digit, as in the real clips);
    - ``frame_diff``: mean absolute pixel change between consecutive frames.
    """
    com = centre_of_mass(clips)
    step = (com[:, 1:] - com[:, :-1]).norm(dim=-1)
    jerk = (com[:, 2:] - 2 * com[:, 1:-1] + com[:, :-2]).norm(dim=-1)
    mass = clips.clamp_min(0).sum((-2, -1))
    cv = mass.std(1, unbiased=False) / mass.mean(1).clamp_min(1e-8)
    diff = (clips[:, 1:] - clips[:, :-1]).abs().mean()
    values = (step.mean(), jerk.mean(), cv.mean(), diff)
    return dict(zip(("step", "jerk", "mass_cv", "frame_diff"), map(float, values)))


# ---------------------------------------------------------------- the space-time denoiser


class FrameConv(nn.Module):
    """A 2-D convolution applied to every frame alone: (n, C_in, T, H, W) -> (n, C_out, T, H, W).

    Fold time into the batch, (n * T, C, H, W), convolve with "same" padding, unfold. It equals
    ``F.conv3d`` with the kernel ``weight[:, :, None]`` (one frame deep) and padding (0, k//2,
    k//2): no pixel of one frame ever reaches another frame.
    """

    def __init__(self, c_in: int, c_out: int, kernel_size: int = 3):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, kernel_size, padding=kernel_size // 2)

    def forward(self, x: Tensor) -> Tensor:
        return unfold_frames(self.conv(fold_frames(x)), x.shape[2])


class TemporalAttention(nn.Module):
    """Multi-head self-attention across the T frames at every pixel: (n, C, T, H, W) -> same.

    Every pixel (y, x) of every clip is one sequence of T tokens of C channels, so the input is
    rearranged to (n * H * W, T, C), optionally plus a learned frame embedding (T_max, C), and
    ``softmax(q k^T / sqrt(d)) v`` runs per head (d = C / n_heads) with q, k, v = in_proj(tokens)
    split in that order, then out_proj, then back to (n, C, T, H, W). The weights are laid out as
    ``nn.MultiheadAttention``'s (in_proj (3C, C), out_proj (C, C)), so they can be copied across.
    The frame embedding (when ``n_frames`` is given) starts as N(0, 0.02^2) noise. Without it,
    permuting the frames permutes the output the same way.
    """

    def __init__(self, channels: int, n_heads: int = 4, n_frames: int | None = None):
        super().__init__()
        if channels % n_heads:
            raise ValueError(f"channels ({channels}) must be divisible by n_heads ({n_heads})")
        self.n_heads = n_heads
        self.in_proj = nn.Linear(channels, 3 * channels)
        self.out_proj = nn.Linear(channels, channels)
        self.frame_embedding = (
            nn.Parameter(0.02 * torch.randn(n_frames, channels)) if n_frames else None
        )

    def forward(self, x: Tensor) -> Tensor:
        n, c, t, h, w = x.shape
        tokens = x.permute(0, 3, 4, 2, 1).reshape(n * h * w, t, c)
        if self.frame_embedding is not None:
            tokens = tokens + self.frame_embedding[:t]
        q, k, v = self.in_proj(tokens).chunk(3, dim=-1)
        heads = (n * h * w, t, self.n_heads, c // self.n_heads)
        q, k, v = (z.reshape(heads).transpose(1, 2) for z in (q, k, v))  # (B, heads, T, d)
        out = F.scaled_dot_product_attention(q, k, v)  # the softmax above, in one fused call
        out = out.transpose(1, 2).reshape(n * h * w, t, c)
        return self.out_proj(out).reshape(n, h, w, t, c).permute(0, 4, 3, 1, 2)


def fold_frames(x: Tensor) -> Tensor:
    """(n, C, T, H, W) -> (n * T, C, H, W): every frame becomes an image of its own."""
    n, c, t, h, w = x.shape
    return x.transpose(1, 2).reshape(n * t, c, h, w)


def unfold_frames(x: Tensor, n_frames: int) -> Tensor:
    """The inverse of `fold_frames`: (n * T, C, H, W) -> (n, C, T, H, W)."""
    nt, c, h, w = x.shape
    return x.reshape(nt // n_frames, n_frames, c, h, w).transpose(1, 2)


class SpaceTimeBlock(nn.Module):
    """A factorised space-time block: space per frame, then time per pixel.

    Space: the image U-Net's `ResBlock` (two 3x3 convolutions with the step embedding added
    between them, plus a skip) run on every frame as its own image (`fold_frames`, the step
    embedding repeated for each frame). Time: ``x + TemporalAttention(GroupNorm(x))`` when
    ``attend``. (n, C_in, T, H, W) and a step embedding (n, E) -> (n, C_out, T, H, W).
    """

    def __init__(
        self,
        c_in: int,
        c_out: int,
        emb_dim: int,
        n_heads: int = 4,
        n_frames: int | None = None,
        attend: bool = True,
    ):
        super().__init__()
        self.res = ResBlock(c_in, c_out, emb_dim)
        self.norm = nn.GroupNorm(min(8, c_out), c_out) if attend else None
        self.attn = TemporalAttention(c_out, n_heads, n_frames) if attend else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        t = x.shape[2]
        x = unfold_frames(self.res(fold_frames(x), emb.repeat_interleave(t, dim=0)), t)
        return x if self.attn is None else x + self.attn(self.norm(x))


class VideoDenoiser(nn.Module):
    """eps(x_t, t): predicted noise (n, 1, T, H, W) for noisy clips x_t and steps t (n,) long.

    A two-level U-Net of `SpaceTimeBlock`s: ``inp`` (a 3x3 `FrameConv`), block ``down`` at
    H x W with ``channels[0]``, 2x2 average pooling of every frame, blocks ``mid1`` and ``mid2``
    at H/2 x W/2 with ``channels[1]``, nearest 2x upsampling of every frame, the ``down``
    output concatenated after it, block ``up`` back to ``channels[0]``, then GroupNorm, SiLU and
    a zero-initialised 3x3 `FrameConv` (the untrained model predicts 0). The step embedding is
    ``step_mlp(sinusoidal_embedding(t, channels[0]))`` of width 4 * channels[0]. Temporal
    attention runs in the H/2 blocks, and in the H x W ones too with ``full_res_attention``;
    ``frame_embedding=False`` leaves the attention blind to frame order. H, W even.
    """

    def __init__(
        self,
        channels: tuple[int, int] = (32, 64),
        n_heads: int = 4,
        n_frames: int = 8,
        frame_embedding: bool = True,
        full_res_attention: bool = False,
    ):
        super().__init__()
        c0, c1 = channels
        frames = n_frames if frame_embedding else None
        emb = 4 * c0
        self.step_dim = c0
        self.step_mlp = nn.Sequential(nn.Linear(c0, emb), nn.SiLU(), nn.Linear(emb, emb))
        self.inp = FrameConv(1, c0)
        self.down = SpaceTimeBlock(c0, c0, emb, n_heads, frames, full_res_attention)
        self.mid1 = SpaceTimeBlock(c0, c1, emb, n_heads, frames)
        self.mid2 = SpaceTimeBlock(c1, c1, emb, n_heads, frames)
        self.up = SpaceTimeBlock(c1 + c0, c0, emb, n_heads, frames, full_res_attention)
        self.out_norm = nn.GroupNorm(min(8, c0), c0)
        self.out = FrameConv(c0, 1)
        nn.init.zeros_(self.out.conv.weight)
        nn.init.zeros_(self.out.conv.bias)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.step_mlp(sinusoidal_embedding(t.reshape(-1), self.step_dim).to(x.dtype))
        skip = self.down(self.inp(x), emb)
        h = F.avg_pool3d(skip, (1, 2, 2))
        h = self.mid2(self.mid1(h, emb), emb)
        h = F.interpolate(h, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        h = self.up(torch.cat([h, skip], dim=1), emb)
        return self.out(F.silu(self.out_norm(h)))
