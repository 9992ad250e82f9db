"""Latent diffusion: run the diffusion process on an autoencoder's small codes, not on pixels.

A trained autoencoder squeezes each 28x28 digit (784 numbers) into a (4, 7, 7) code (196
numbers) and its decoder turns codes back into images. Latent diffusion (Rombach et al., 2022,
the idea behind Stable Diffusion) trains the denoiser ``eps(z_t, t, y)`` on those codes instead
of on pixels: the denoiser is smaller and faster, and the decoder paints the fine detail once,
at the end. The forward process, the loss and the DDIM sampler are the pixel ones, imported from
`airoad.generative.diffusion`; only the data (codes, standardised per channel) changes.

Class conditioning with classifier-free guidance (Ho & Salimans, 2021): one network learns both
the conditional ``eps(z_t, t, y)`` and the unconditional ``eps(z_t, t, null)``, because during
training each label is swapped for an extra "null" label (index ``n_classes``) with probability
``p_uncond``. At sampling time the two predictions are mixed with a guidance scale w:

    eps_guided = eps_uncond + w (eps_cond - eps_uncond)

w = 0 is the unconditional model, w = 1 the conditional one, and w > 1 pushes further in the
direction that makes the sample look like its class (sharper classes, less variety).

Shapes: codes (n, 4, 7, 7) float; timesteps t (n,) long in 0..T-1; labels (n,) long in
0..n_classes, where n_classes is the null label.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from airoad.generative import diffusion
from airoad.generative.diffusion import Schedule
from airoad.generative.unet import sinusoidal_embedding


class ResidualBlock(nn.Module):
    """One residual MLP block conditioned on an embedding (time + label).

    ``h + fc2(silu(fc1(silu(norm(h))) + proj(silu(emb)))``: a pre-norm two-layer MLP whose
    hidden units get the embedding added. ``fc2`` starts at zero, so a fresh block is the
    identity and a deep stack trains from the first step.
    """

    def __init__(self, hidden: int, emb_dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(hidden)
        self.fc1 = nn.Linear(hidden, hidden)
        self.proj = nn.Linear(emb_dim, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        nn.init.zeros_(self.fc2.weight)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, h: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        """h (n, hidden), emb (n, emb_dim) -> (n, hidden)."""
        inner = self.fc1(F.silu(self.norm(h))) + self.proj(F.silu(emb))
        return h + self.fc2(F.silu(inner))


class LatentDenoiser(nn.Module):
    """The noise predictor ``eps(z_t, t, y)`` for codes of ``latent_shape``: a residual MLP.

    The code is flattened (4 x 7 x 7 = 196 numbers) and mapped to ``hidden`` units by ``inp``;
    the conditioning ``emb = time_mlp(sinusoidal_embedding(t, emb_dim)) + label_emb(y)``, with
    ``time_mlp`` = Linear, SiLU, Linear (emb_dim wide) and the pixel U-Net's time features
    (imported from `airoad.generative.unet`), feeds every `ResidualBlock`; then ``out_norm``
    (LayerNorm), SiLU and ``out`` (Linear) give back 196 numbers in the code's shape. On a 7x7
    grid a few 3x3 convolutions already see the whole code, and an MLP costs about a fifth of
    the CPU time of a conv stack of the same depth here, so the denoiser is an MLP.
    ``label_emb`` has ``n_classes + 1`` rows: the last one (``null_label = n_classes``) is the
    learned "no label" that classifier-free guidance needs.
    """

    def __init__(
        self,
        latent_shape: tuple[int, ...] = (4, 7, 7),
        n_classes: int = 10,
        hidden: int = 512,
        n_blocks: int = 3,
        emb_dim: int = 128,
    ):
        super().__init__()
        self.latent_shape, self.n_classes = tuple(latent_shape), n_classes
        self.null_label, self.emb_dim = n_classes, emb_dim
        size = math.prod(self.latent_shape)
        self.time_mlp = nn.Sequential(
            nn.Linear(emb_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.label_emb = nn.Embedding(n_classes + 1, emb_dim)
        self.inp = nn.Linear(size, hidden)
        self.blocks = nn.ModuleList(ResidualBlock(hidden, emb_dim) for _ in range(n_blocks))
        self.out_norm = nn.LayerNorm(hidden)
        self.out = nn.Linear(hidden, size)

    def forward(self, z_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Noisy codes z_t (n, *latent_shape), t (n,) long, labels (n,) long in 0..n_classes
        -> predicted noise, z_t's shape."""
        sincos = sinusoidal_embedding(t, self.emb_dim).to(z_t.dtype)
        emb = self.time_mlp(sincos) + self.label_emb(labels)
        h = self.inp(z_t.flatten(1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(F.silu(self.out_norm(h))).reshape(z_t.shape)


def drop_labels(
    labels: torch.Tensor, p_uncond: float, null_label: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Labels (n,) with each one replaced by ``null_label`` with probability p_uncond.

    Draw ``u = torch.rand(labels.shape, generator=generator)`` and drop where ``u < p_uncond``
    (so 0 keeps every label and 1 drops every one). p_uncond outside [0, 1] is a ValueError.
    """
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond is {p_uncond}: it is a probability in [0, 1]")
    drop = torch.rand(labels.shape, generator=generator) < p_uncond
    return torch.where(drop, torch.full_like(labels, null_label), labels)


def guided_eps(
    model: LatentDenoiser, z_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor, w: float
) -> torch.Tensor:
    """Classifier-free guidance: ``eps_uncond + w (eps_cond - eps_uncond)``, z_t's shape.

    eps_cond = model(z_t, t, labels) and eps_uncond = model(z_t, t, null) with every label set to
    ``model.null_label``; both come from ONE forward pass on the batch stacked twice (twice the
    rows, half the calls).
    """
    null = torch.full_like(labels, model.null_label)
    eps = model(torch.cat([z_t, z_t]), torch.cat([t, t]), torch.cat([labels, null]))
    cond, uncond = eps.chunk(2)
    return uncond + w * (cond - uncond)


def cfg_loss(
    model: LatentDenoiser,
    z0: torch.Tensor,
    labels: torch.Tensor,
    schedule: Schedule,
    p_uncond: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """The training loss of a guided model: the DDPM noise-prediction MSE on codes z0 (n, ...),
    with labels dropped to the null label at rate p_uncond.

    Order of draws from ``generator``: first `drop_labels`, then
    ``diffusion.noise_prediction_loss`` (its t and noise) with ``eps_model(x, t) = model(x, t,
    dropped_labels)``. A scalar, differentiable in the model's parameters.
    """
    kept = drop_labels(labels, p_uncond, model.null_label, generator)
    return diffusion.noise_prediction_loss(lambda x, t: model(x, t, kept), z0, schedule, generator)


def train_step(
    model: LatentDenoiser,
    optimizer: torch.optim.Optimizer,
    z0: torch.Tensor,
    labels: torch.Tensor,
    schedule: Schedule,
    p_uncond: float,
    generator: torch.Generator | None = None,
) -> float:
    """One optimiser step on `cfg_loss` (zero the grads, backward, step); the loss as a float."""
    loss = cfg_loss(model, z0, labels, schedule, p_uncond, generator)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def sample_latents(
    model: LatentDenoiser,
    labels: torch.Tensor,
    schedule: Schedule,
    n_steps: int,
    w: float,
    z_T: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    clip: float | None = None,
) -> torch.Tensor:
    """Guided DDIM (eta = 0) in code space: one code (n, *latent_shape) per label.

    ``diffusion.ddim_sample`` with ``eps_model(z, t) = guided_eps(model, z, t, labels, w)``,
    starting from z_T when given, else from ``torch.randn`` with ``generator``. With ``clip``
    each step's estimate of the clean code is clamped to [-clip, clip] (and eps recomputed from
    it): standardised codes stay within about 4.5, and an under-trained model's estimate at
    large t can be far outside the range the decoder has seen.
    """
    shape = (labels.shape[0], *model.latent_shape)
    return diffusion.ddim_sample(
        lambda z, t: guided_eps(model, z, t, labels, w), shape, schedule, n_steps, generator,
        x_T=z_T, clip=clip,
    )  # fmt: skip


class LatentDiffusionGenerator(nn.Module):
    """The whole image generator: noise (n, 196) + labels (n,) -> images (n, 1, 28, 28).

    The noise is reshaped to the start code z_T, `sample_latents` runs ``n_steps`` guided DDIM
    steps at scale ``w`` (clamping the clean-code estimate at ``clip`` when given), and
    ``decoder`` (codes -> images in [0, 1]) turns the result into pixels. Deterministic: the
    same noise and labels give the same images.
    """

    def __init__(
        self, denoiser: LatentDenoiser, decoder: nn.Module, schedule: Schedule, n_steps: int,
        w: float, clip: float | None = None,
    ):  # fmt: skip
        super().__init__()
        self.denoiser, self.decoder = denoiser, decoder
        self.schedule, self.n_steps, self.w, self.clip = schedule, n_steps, w, clip

    def forward(self, noise: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """noise (n, prod(latent_shape)), labels (n,) long in 0..n_classes-1 -> (n, 1, 28, 28)."""
        z_T = noise.reshape(noise.shape[0], *self.denoiser.latent_shape)
        z0 = sample_latents(
            self.denoiser, labels, self.schedule, self.n_steps, self.w, z_T, clip=self.clip
        )
        return self.decoder(z0)
