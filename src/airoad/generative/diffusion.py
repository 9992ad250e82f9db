"""Denoising diffusion (DDPM, Ho et al. 2020) and its fast deterministic sampler (DDIM, Song et
al. 2021) as pure functions on tensors of any trailing shape.

Forward process: T small Gaussian noising steps with variances beta_1..beta_T,

    q(x_t | x_{t-1}) = N(sqrt(1 - beta_t) x_{t-1}, beta_t I),

which compose into one closed-form jump from the clean data (alpha_t = 1 - beta_t,
alpha_bar_t = prod_{s<=t} alpha_s):

    q(x_t | x_0) = N(sqrt(alpha_bar_t) x_0, (1 - alpha_bar_t) I),
    x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps,   eps ~ N(0, I).

A network eps_model(x_t, t) learns to predict eps (a plain MSE); sampling runs the chain
backwards from x_T ~ N(0, I). Timesteps are 0-based here: t = 0 .. T-1, where index t holds
beta_{t+1} of the paper, and "t = -1" means the clean data (alpha_bar = 1).

Every function broadcasts the per-timestep coefficients over the trailing dimensions, so images
(n, 1, 28, 28), latents (n, 4, 7, 7) and clips (n, 1, 8, 16, 16) all work. The schedule is kept
in float64; coefficients are cast to the data's dtype when used.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

EpsModel = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Schedule:
    """The noise schedule: ``betas``, ``alphas = 1 - betas`` and ``alpha_bars = cumprod(alphas)``,
    each a float64 tensor of shape (T,)."""

    betas: Tensor
    alphas: Tensor
    alpha_bars: Tensor

    @property
    def T(self) -> int:
        """The number of diffusion steps."""
        return int(self.betas.shape[0])


def _from_betas(betas: Tensor) -> Schedule:
    alphas = 1.0 - betas
    return Schedule(betas=betas, alphas=alphas, alpha_bars=torch.cumprod(alphas, dim=0))


def linear_schedule(T: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> Schedule:
    """DDPM's schedule: T betas evenly spaced from beta_start to beta_end (float64).

    ``betas = linspace(beta_start, beta_end, T)``; with T = 1000 the defaults leave
    alpha_bar_T of about 4e-5, so x_T is almost pure noise. Requires T >= 1 and
    0 < beta_start <= beta_end < 1 (ValueError otherwise).
    """
    if T < 1 or not 0.0 < beta_start <= beta_end < 1.0:
        raise ValueError(
            f"need T >= 1 and 0 < beta_start <= beta_end < 1, got {T}, {beta_start}, {beta_end}"
        )
    return _from_betas(torch.linspace(beta_start, beta_end, T, dtype=torch.float64))


def cosine_schedule(T: int, s: float = 0.008) -> Schedule:
    """Nichol & Dhariwal's (2021) schedule: alpha_bar follows a squared cosine in t / T.

    ``f(u) = cos((u + s) / (1 + s) * pi / 2) ** 2`` and, for t = 0 .. T-1,
    ``betas[t] = min(1 - f((t + 1) / T) / f(t / T), 0.999)`` (the clip stops the last step from
    being a division by ~0); alphas and alpha_bars follow from the betas as usual (float64).
    It destroys information more slowly than the linear schedule at small t.
    """
    if T < 1 or s < 0:
        raise ValueError(f"need T >= 1 and s >= 0, got T={T}, s={s}")
    u = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    return _from_betas(torch.clamp(1.0 - f[1:] / f[:-1], max=0.999))


def _coef(values: Tensor, t: Tensor, like: Tensor, fill: float = 1.0) -> Tensor:
    """values[t] as like's dtype, shaped (n, 1, ..., 1) to broadcast over like; t < 0 gives fill."""
    t = torch.as_tensor(t, dtype=torch.long, device=values.device).reshape(-1)
    picked = torch.where(t >= 0, values[t.clamp(min=0)], torch.full_like(values[:1], fill))
    return picked.to(like.dtype).reshape(-1, *([1] * (like.dim() - 1)))


def q_step(x_prev: Tensor, t: Tensor, noise: Tensor, schedule: Schedule) -> Tensor:
    """One forward noising step x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise.

    x_prev (n, ...); t (n,) long in 0..T-1; noise like x_prev. Iterating it for t = 0..k
    draws from the same distribution as one ``q_sample`` jump to k.
    """
    beta = _coef(schedule.betas, t, x_prev)
    return torch.sqrt(1.0 - beta) * x_prev + torch.sqrt(beta) * noise


def q_sample(x0: Tensor, t: Tensor, noise: Tensor, schedule: Schedule) -> Tensor:
    """The closed-form jump x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) noise.

    x0 (n, ...) clean data; t (n,) long in 0..T-1 (one timestep per example); noise like x0.
    Differentiable in x0 and noise; the output has x0's shape and dtype.
    """
    ab = _coef(schedule.alpha_bars, t, x0)
    return torch.sqrt(ab) * x0 + torch.sqrt(1.0 - ab) * noise


def predict_x0(x_t: Tensor, t: Tensor, eps: Tensor, schedule: Schedule) -> Tensor:
    """Invert q_sample for x0 given a noise estimate: (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).

    With the true noise this returns the true x0 (up to rounding).
    """
    ab = _coef(schedule.alpha_bars, t, x_t)
    return (x_t - torch.sqrt(1.0 - ab) * eps) / torch.sqrt(ab)


def q_posterior(x0: Tensor, x_t: Tensor, t: Tensor, schedule: Schedule) -> tuple[Tensor, Tensor]:
    """Mean and variance of q(x_{t-1} | x_t, x0), a Gaussian (Ho et al. eq. 6-7).

    ``mean = sqrt(alpha_bar_{t-1}) beta_t / (1 - alpha_bar_t) x0
           + sqrt(alpha_t) (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) x_t``,
    ``var = (1 - alpha_bar_{t-1}) / (1 - alpha_bar_t) beta_t`` (alpha_bar_{-1} = 1, so at t = 0
    the mean is x0 and the variance 0). mean has x_t's shape; var is (n, 1, ..., 1).
    """
    ab = _coef(schedule.alpha_bars, t, x_t)
    ab_prev = _coef(schedule.alpha_bars, t - 1, x_t)
    beta, alpha = _coef(schedule.betas, t, x_t), _coef(schedule.alphas, t, x_t)
    mean = (torch.sqrt(ab_prev) * beta * x0 + torch.sqrt(alpha) * (1.0 - ab_prev) * x_t) / (
        1.0 - ab
    )
    return mean, (1.0 - ab_prev) / (1.0 - ab) * beta


def noise_prediction_loss(
    eps_model: EpsModel, x0: Tensor, schedule: Schedule, generator: torch.Generator | None = None
) -> Tensor:
    """The DDPM training loss: mean squared error between eps_model(x_t, t) and the true noise.

    Draw, in this order and with ``generator``: ``t = torch.randint(0, T, (n,))`` and
    ``noise = torch.randn(x0.shape)`` (x0's dtype); then x_t = q_sample(x0, t, noise) and
    ``F.mse_loss(eps_model(x_t, t), noise)`` averaged over every element. Scalar, differentiable
    in the model's parameters.
    """
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device)
    noise = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    return F.mse_loss(eps_model(q_sample(x0, t, noise, schedule), t), noise)


def _x0_and_eps(eps_model, x, t, schedule, clip):
    """The model's noise estimate and its x0; with clip, x0 is clamped and eps made consistent."""
    eps = eps_model(x, t)
    x0 = predict_x0(x, t, eps, schedule)
    if clip is not None:
        x0 = x0.clamp(-clip, clip)
        ab = _coef(schedule.alpha_bars, t, x)
        eps = (x - torch.sqrt(ab) * x0) / torch.sqrt(1.0 - ab)
    return x0, eps


@torch.no_grad()
def ddpm_sample(
    eps_model: EpsModel,
    shape: tuple[int, ...],
    schedule: Schedule,
    generator: torch.Generator | None = None,
    clip: float | None = None,
) -> Tensor:
    """Ancestral sampling: x_T ~ N(0, I), then T steps x_{t-1} ~ q(x_{t-1} | x_t, x0_hat).

    Draws ``x = torch.randn(shape, generator=generator)`` (float32), then for t = T-1 .. 0:
    ``x0_hat = predict_x0(x, t, eps_model(x, t))`` (clamped to [-clip, clip] when clip is
    given), ``mean, var = q_posterior(x0_hat, x, t)`` and, for t > 0,
    ``x = mean + sqrt(var) * torch.randn(shape, generator=generator)``; at t = 0 the mean
    (= x0_hat) is returned. The same generator seed gives the same samples.
    """
    x = torch.randn(shape, generator=generator)
    for step in range(schedule.T - 1, -1, -1):
        t = torch.full((shape[0],), step, dtype=torch.long)
        x0_hat, _ = _x0_and_eps(eps_model, x, t, schedule, clip)
        mean, var = q_posterior(x0_hat, x, t, schedule)
        x = mean + torch.sqrt(var) * torch.randn(shape, generator=generator) if step > 0 else mean
    return x


def ddim_timesteps(T: int, n_steps: int) -> Tensor:
    """The n_steps timesteps DDIM visits, descending: ``linspace(T - 1, 0, n_steps).round()`` (long).

    Starts at the noisiest step T-1 and ends at 0; requires 1 <= n_steps <= T (ValueError).
    """
    if not 1 <= n_steps <= T:
        raise ValueError(f"n_steps must be in 1..{T}, got {n_steps}")
    return torch.linspace(T - 1, 0, n_steps, dtype=torch.float64).round().long()


def ddim_step(
    x_t: Tensor,
    t: Tensor,
    t_prev: Tensor,
    eps: Tensor,
    schedule: Schedule,
    eta: float = 0.0,
    noise: Tensor | None = None,
) -> Tensor:
    """One DDIM update from step t to an earlier step t_prev (t_prev = -1: the clean data).

    ``x0 = predict_x0(x_t, t, eps)``,
    ``sigma = eta * sqrt((1 - ab_prev) / (1 - ab_t) * (1 - ab_t / ab_prev))``,
    ``x_prev = sqrt(ab_prev) x0 + sqrt(1 - ab_prev - sigma^2) eps + sigma * noise``
    (ab = alpha_bar, ab_prev = 1 at t_prev = -1). eta = 0 is deterministic (noise unused): with
    the true eps it moves exactly along q_sample(x0, ., eps); eta = 1 matches DDPM's variance.
    """
    ab, ab_prev = _coef(schedule.alpha_bars, t, x_t), _coef(schedule.alpha_bars, t_prev, x_t)
    x0 = predict_x0(x_t, t, eps, schedule)
    sigma = eta * torch.sqrt((1.0 - ab_prev) / (1.0 - ab) * (1.0 - ab / ab_prev))
    x_prev = torch.sqrt(ab_prev) * x0 + torch.sqrt((1.0 - ab_prev - sigma**2).clamp(min=0)) * eps
    return x_prev + sigma * noise if eta > 0 else x_prev


@torch.no_grad()
def ddim_sample(
    eps_model: EpsModel,
    shape: tuple[int, ...],
    schedule: Schedule,
    n_steps: int,
    generator: torch.Generator | None = None,
    eta: float = 0.0,
    x_T: Tensor | None = None,
    clip: float | None = None,
) -> Tensor:
    """DDIM sampling in n_steps model calls (eta = 0: deterministic given x_T).

    x_T defaults to ``torch.randn(shape, generator=generator)`` (float32). Visits
    ``ddim_timesteps(T, n_steps)`` and then -1 with ``ddim_step``; when eta > 0 each step draws
    ``torch.randn(shape, generator=generator)`` for its noise. With clip, x0 is clamped to
    [-clip, clip] and eps recomputed from it before each step. Returns x0 of ``shape``.
    """
    x = torch.randn(shape, generator=generator) if x_T is None else x_T
    steps = ddim_timesteps(schedule.T, n_steps).tolist() + [-1]
    for step, prev in zip(steps, steps[1:]):
        t = torch.full((x.shape[0],), step, dtype=torch.long)
        _, eps = _x0_and_eps(eps_model, x, t, schedule, clip)
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype) if eta > 0 else None
        x = ddim_step(x, t, torch.full_like(t, prev), eps, schedule, eta, z)
    return x
