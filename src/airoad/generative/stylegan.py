"""A style-based generator (StyleGAN, Karras et al. 2019; StyleGAN2, 2020) at 28x28 size.

A plain GAN generator feeds the noise z in at the bottom and lets it flow up. A style-based
generator splits the job in two:

- a **mapping network** turns z (after *pixel norm*, which puts every z on a sphere of radius
  sqrt(latent_dim)) into an intermediate latent ``w`` through a small MLP;
- a **synthesis network** starts from a *learned constant* (C, 7, 7) tensor, not from z, and
  grows it 7 -> 14 -> 28. Every convolution layer gets ``w`` through its own learned affine map
  (the layer's *style*), which sets per-channel scales: with **AdaIN** (StyleGAN) by normalising
  each feature map and re-scaling it, with **modulated convolutions** (StyleGAN2) by scaling the
  convolution weights per sample and then *demodulating* them back to unit output variance;
- per-pixel **noise inputs** with learned per-channel strengths add the random detail (stroke
  texture) that should not be decided by the style.

Because every layer takes its own copy of ``w``, two latents can be *mixed*: ``w1`` for the
first (coarse, low-resolution) layers and ``w2`` for the rest (fine). The layer list is
``resolutions`` (7, 14, 14, 28, 28, 28): five 3x3 styled convolutions and one 1x1 "to gray"
layer, so a generator consumes ``num_ws = 6`` copies of w, shape (n, 6, w_dim).

Images come out linear (no tanh, as in StyleGAN) in the data's [-1, 1] units; `sample` maps them
to [0, 1] and clips.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

STYLE_OPS = ("modconv", "adain")


def pixel_norm(z: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """``z / sqrt(mean(z^2 over dim 1) + eps)``: each row of z (n, d) rescaled to mean square 1."""
    return z * torch.rsqrt(z.pow(2).mean(dim=1, keepdim=True) + eps)


class MappingNetwork(nn.Module):
    """z (n, latent_dim) -> w (n, w_dim): `pixel_norm`, then ``n_layers`` times
    ``Linear -> LeakyReLU(0.2)`` (the first Linear takes latent_dim inputs, the rest w_dim)."""

    def __init__(self, latent_dim: int = 32, w_dim: int = 32, n_layers: int = 4):
        super().__init__()
        widths = (latent_dim,) + (w_dim,) * n_layers
        layers: list[nn.Module] = []
        for w_in, w_out in zip(widths, widths[1:]):
            layers += [nn.Linear(w_in, w_out), nn.LeakyReLU(0.2)]
        self.net = nn.Sequential(*layers)
        for layer in self.net[::2]:  # He init for LeakyReLU: w keeps the scale of z (about 1)
            nn.init.kaiming_normal_(layer.weight, a=0.2, nonlinearity="leaky_relu")
            nn.init.zeros_(layer.bias)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """w (n, w_dim) for z (n, latent_dim); a positive rescaling of z does not change w."""
        return self.net(pixel_norm(z))


def adain(x: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor, eps: float = 1e-5):
    """Adaptive instance norm: ``scale * (x - mean) / sqrt(var + eps) + bias``.

    x (n, c, h, w); mean and the biased variance are over (h, w) of each sample and channel;
    scale and bias (n, c) are per sample (the style), broadcast over the pixels.
    """
    mean = x.mean(dim=(2, 3), keepdim=True)
    var = x.var(dim=(2, 3), unbiased=False, keepdim=True)
    return scale[:, :, None, None] * (x - mean) * torch.rsqrt(var + eps) + bias[:, :, None, None]


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    style: torch.Tensor,
    demodulate: bool = True,
    padding: int = 0,
    eps: float = 1e-8,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution: sample i is convolved with its own weight
    ``w'_i[o, c] = weight[o, c] * style[i, c]``, divided (when ``demodulate``) by
    ``d_i[o] = sqrt(sum_{c, kh, kw} w'_i[o, c, kh, kw]^2 + eps)`` so that unit-variance,
    independent inputs give unit-variance outputs.

    x (n, c_in, h, w), weight (c_out, c_in, k, k), style (n, c_in) -> (n, c_out, h', w').
    Never builds the n weights: scaling input channel c by style[i, c], convolving with the
    shared weight and scaling output channel o by 1 / d_i[o] is the same linear map.
    """
    out = F.conv2d(x * style[:, :, None, None], weight, padding=padding)
    if demodulate:
        # sum_c style[i, c]^2 * sum_{kh, kw} weight[o, c]^2: (n, c_out), no per-sample weights
        demod = torch.rsqrt(style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).T + eps)
        out = out * demod[:, :, None, None]
    return out


class NoiseInjection(nn.Module):
    """``x + strength[c] * noise``: one (n, 1, h, w) noise map per sample, shared by all
    channels, scaled per channel by a learned ``strength`` (c,), initialised to zero."""

    def __init__(self, channels: int):
        super().__init__()
        self.strength = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor, noise: torch.Tensor | None) -> torch.Tensor:
        """x (n, c, h, w) plus scaled noise (n, 1, h, w); ``noise=None`` adds nothing."""
        if noise is None:
            return x
        return x + self.strength[None, :, None, None] * noise


class StyledConv(nn.Module):
    """One synthesis layer: [2x bilinear upsample] -> 3x3 conv styled by w -> noise -> bias ->
    ``sqrt(2) * LeakyReLU(0.2)`` (the sqrt(2) keeps the activations' scale through the layers).

    ``style_op="modconv"``: the affine map gives c_in scales (bias initialised to 1) and the
    conv is `modulated_conv2d` with demodulation. ``"adain"``: a plain conv, then, after the
    activation, `adain` with a per-channel scale (bias init 1) and bias (bias init 0) from w.
    """

    def __init__(self, c_in: int, c_out: int, w_dim: int, upsample: bool, style_op: str):
        super().__init__()
        if style_op not in STYLE_OPS:
            raise ValueError(f"style_op '{style_op}' is not one of {STYLE_OPS}")
        self.upsample, self.style_op = upsample, style_op
        self.weight = nn.Parameter(torch.randn(c_out, c_in, 3, 3))
        self.bias = nn.Parameter(torch.zeros(c_out))
        self.affine = nn.Linear(w_dim, c_in if style_op == "modconv" else 2 * c_out)
        with torch.no_grad():  # styles 1 + O(1) from a w of scale 1, so z matters from step 0
            self.affine.weight.normal_(0.0, 1.0 / math.sqrt(w_dim))
            self.affine.bias.zero_()
            self.affine.bias[: c_in if style_op == "modconv" else c_out] = 1.0
        self.noise = NoiseInjection(c_out)

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise: torch.Tensor | None):
        """x (n, c_in, h, w), w (n, w_dim), noise (n, 1, h', w') or None -> (n, c_out, h', w')
        where h' = 2h when upsampling."""
        if self.upsample:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        style = self.affine(w)
        if self.style_op == "modconv":
            x = modulated_conv2d(x, self.weight, style, demodulate=True, padding=1)
        else:  # a fan-in scaled plain conv; the style acts after the activation
            x = F.conv2d(x, self.weight / math.sqrt(self.weight[0].numel()), padding=1)
        x = self.noise(x, noise) + self.bias[None, :, None, None]
        x = F.leaky_relu(x, 0.2) * math.sqrt(2)
        if self.style_op == "adain":
            scale, bias = style.chunk(2, dim=1)
            x = adain(x, scale, bias)
        return x


class ToGray(nn.Module):
    """1x1 modulated convolution to one channel, no demodulation (the output's scale is the
    image's contrast), plus a bias: (n, c, h, w) -> (n, 1, h, w)."""

    def __init__(self, c_in: int, w_dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, c_in, 1, 1) / math.sqrt(c_in))
        self.bias = nn.Parameter(torch.zeros(1))
        self.affine = nn.Linear(w_dim, c_in)
        nn.init.normal_(self.affine.weight, 0.0, 1.0 / math.sqrt(w_dim))
        nn.init.ones_(self.affine.bias)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """(n, 1, h, w) image from features x (n, c, h, w) styled by w (n, w_dim)."""
        out = modulated_conv2d(x, self.weight, self.affine(w), demodulate=False)
        return out + self.bias


def mix_styles(w1: torch.Tensor, w2: torch.Tensor, num_ws: int, crossover: int) -> torch.Tensor:
    """Per-layer latents (n, num_ws, w_dim): layer i sees ``w1`` (n, w_dim) when
    ``i < crossover`` and ``w2`` otherwise. crossover 0 is all w2, num_ws all w1."""
    if not 0 <= crossover <= num_ws:
        raise ValueError(f"crossover {crossover} is outside 0..{num_ws}")
    first = (torch.arange(num_ws, device=w1.device) < crossover)[None, :, None]
    return torch.where(first, w1[:, None, :], w2[:, None, :])


class Generator(nn.Module):
    """z (n, latent_dim) -> images (n, 1, 28, 28): `MappingNetwork`, a learned constant
    (1, channels[0], 7, 7), styled convolutions at 7, 14, 14, 28, 28 (channels[0] at 7,
    channels[1] at 14, channels[2] at 28) and `ToGray`; ``num_ws = 6`` per-layer latents."""

    def __init__(
        self,
        latent_dim: int = 32,
        w_dim: int = 32,
        channels: tuple[int, int, int] = (64, 32, 16),
        mapping_layers: int = 4,
        style_op: str = "modconv",
    ):
        super().__init__()
        self.latent_dim, self.w_dim = latent_dim, w_dim
        c7, c14, c28 = channels
        self.mapping = MappingNetwork(latent_dim, w_dim, mapping_layers)
        self.const = nn.Parameter(torch.randn(1, c7, 7, 7))
        plan = [(c7, c7, False), (c7, c14, True), (c14, c14, False), (c14, c28, True)]
        plan.append((c28, c28, False))
        self.convs = nn.ModuleList(StyledConv(a, b, w_dim, up, style_op) for a, b, up in plan)
        self.to_gray = ToGray(c28, w_dim)
        self.resolutions = (7, 14, 14, 28, 28, 28)  # of each layer that consumes a w
        self.num_ws = len(self.resolutions)

    def make_noise(self, n: int, generator: torch.Generator) -> list[torch.Tensor]:
        """One standard-normal map (n, 1, r, r) per styled conv (r = its output resolution),
        drawn in layer order from ``generator``: the same seed gives the same noise."""
        return [torch.randn(n, 1, r, r, generator=generator) for r in self.resolutions[:-1]]

    def synthesis(self, ws: torch.Tensor, noise: list[torch.Tensor] | None = None):
        """Images (n, 1, 28, 28) from per-layer latents ws (n, num_ws, w_dim); layer i uses
        ``ws[:, i]``. ``noise`` is `make_noise`'s list, or None for no noise at all."""
        x = self.const.expand(ws.shape[0], -1, -1, -1)
        for i, conv in enumerate(self.convs):
            x = conv(x, ws[:, i], None if noise is None else noise[i])
        return self.to_gray(x, ws[:, -1])

    def forward(
        self,
        z: torch.Tensor,
        noise: list[torch.Tensor] | None = None,
        z_mix: torch.Tensor | None = None,
        crossover: int | None = None,
    ) -> torch.Tensor:
        """Images (n, 1, 28, 28) from z (n, latent_dim): every layer sees w = mapping(z); with
        ``z_mix`` the layers from ``crossover`` on see mapping(z_mix) instead (`mix_styles`)."""
        w = self.mapping(z)
        if z_mix is None:
            ws = w[:, None, :].expand(-1, self.num_ws, -1)
        else:
            ws = mix_styles(w, self.mapping(z_mix), self.num_ws, crossover)
        return self.synthesis(ws, noise)


@torch.no_grad()
def sample(generator: Generator, n: int, seed: int) -> torch.Tensor:
    """n images (n, 1, 28, 28) in [0, 1]: z and then the noise maps drawn from one
    ``torch.Generator().manual_seed(seed)``, ``clip((G(z, noise) + 1) / 2, 0, 1)``.
    Runs G in eval mode and puts back the mode it was in."""
    was_training = generator.training
    generator.eval()
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n, generator.latent_dim, generator=rng)
    images = (generator(z, generator.make_noise(n, rng)) + 1) / 2
    generator.train(was_training)
    return images.clamp(0.0, 1.0)
