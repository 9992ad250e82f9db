"""A small time-conditioned U-Net that predicts the noise in a noisy image: eps_model(x_t, t).

    x (n, C, H, W), t (n,) or (1,) long  ->  predicted noise (n, C, H, W)

The timestep enters as a sinusoidal embedding (the transformer's positional encoding, applied to
t) passed through a small MLP; every residual block adds a learned projection of it to its
feature maps, so the same weights denoise lightly at small t and heavily at large t. The
resolution goes 28 -> 14 -> 7 and back (H and W must be divisible by 4); skip connections carry
each level's features across to the decoder, so fine detail does not have to squeeze through the
7 x 7 bottleneck. GroupNorm instead of BatchNorm: the statistics are per image, so a batch of
images at mixed noise levels does not mix them up, and sampling with one image behaves like
training.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.nn import functional as F


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10000.0) -> Tensor:
    """Timesteps t (n,) -> (n, dim) float32 features ``[sin(t f_0..f_{h-1}), cos(t f_0..f_{h-1})]``.

    h = dim // 2 frequencies ``f_k = max_period ** (-k / h)``, k = 0..h-1, from 1 (fast) down
    towards 1 / max_period (slow); sines fill the first half, cosines the second. dim must be
    even (ValueError otherwise). Nearby timesteps get nearby vectors; far ones, different ones.
    """
    if dim % 2:
        raise ValueError(f"the embedding dimension must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t.to(torch.float32).reshape(-1, 1) * freqs.to(t.device)
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv3x3, add time_proj(temb), GroupNorm -> SiLU -> conv3x3, + skip.

    ``h = conv1(silu(norm1(x))) + time_proj(temb)[:, :, None, None]``;
    ``out = conv2(silu(norm2(h))) + skip(x)``, where skip is a 1x1 conv when the channel count
    changes and the identity otherwise. x (n, c_in, H, W), temb (n or 1, time_dim) ->
    (n, c_out, H, W); convolutions pad by 1, so H and W are kept.
    """

    def __init__(self, c_in: int, c_out: int, time_dim: int, groups: int = 8):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(groups, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.time_proj = nn.Linear(time_dim, c_out)
        self.norm2 = nn.GroupNorm(min(groups, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x))) + self.time_proj(temb)[:, :, None, None]
        return self.conv2(F.silu(self.norm2(h))) + self.skip(x)


class UNet(nn.Module):
    """Two-level U-Net, channels (c1, c2): 28x28 at c1 -> 14x14 at c2 -> 7x7 at c2 and back.

    ``forward(x, t)``: temb = time_mlp(sinusoidal_embedding(t, time_dim)) with time_mlp =
    Linear(time_dim, time_dim), SiLU, Linear(time_dim, time_dim). Then

    - h0 = conv_in(x);          s1 = res1(h0, temb)                       (c1, 28, 28)
    - s2 = res2(down1(s1), temb)                                          (c2, 14, 14)
    - m  = mid(down2(s2), temb)                                           (c2, 7, 7)
    - u2 = res_up2(cat[up2(m), s2], temb)                                 (c2, 14, 14)
    - u1 = res_up1(cat[up1(u2), s1], temb)                                (c1, 28, 28)
    - out = conv_out(silu(norm_out(u1)))                                  (C, 28, 28)

    down1/down2 are stride-2 3x3 convolutions (padding 1); up2/up1 are nearest-neighbour 2x
    upsampling followed by a 3x3 convolution (c2 -> c2 and c2 -> c1); cat joins channels,
    upsampled first. conv_out starts at zero, so the untrained net predicts zero noise.
    """

    def __init__(
        self,
        in_channels: int = 1,
        channels: tuple[int, int] = (16, 32),
        time_dim: int = 32,
        groups: int = 8,
    ):
        super().__init__()
        c1, c2 = channels
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(
            nn.Linear(time_dim, time_dim), nn.SiLU(), nn.Linear(time_dim, time_dim)
        )
        self.conv_in = nn.Conv2d(in_channels, c1, 3, padding=1)
        self.res1 = ResBlock(c1, c1, time_dim, groups)
        self.down1 = nn.Conv2d(c1, c1, 3, stride=2, padding=1)
        self.res2 = ResBlock(c1, c2, time_dim, groups)
        self.down2 = nn.Conv2d(c2, c2, 3, stride=2, padding=1)
        self.mid = ResBlock(c2, c2, time_dim, groups)
        self.up2 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c2, c2, 3, padding=1))
        self.res_up2 = ResBlock(2 * c2, c2, time_dim, groups)
        self.up1 = nn.Sequential(nn.Upsample(scale_factor=2), nn.Conv2d(c2, c1, 3, padding=1))
        self.res_up1 = ResBlock(2 * c1, c1, time_dim, groups)
        self.norm_out = nn.GroupNorm(min(groups, c1), c1)
        self.conv_out = nn.Conv2d(c1, in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        temb = self.time_mlp(sinusoidal_embedding(t, self.time_dim).to(x.dtype))
        s1 = self.res1(self.conv_in(x), temb)
        s2 = self.res2(self.down1(s1), temb)
        m = self.mid(self.down2(s2), temb)
        u2 = self.res_up2(torch.cat([self.up2(m), s2], dim=1), temb)
        u1 = self.res_up1(torch.cat([self.up1(u2), s1], dim=1), temb)
        return self.conv_out(F.silu(self.norm_out(u1)))
