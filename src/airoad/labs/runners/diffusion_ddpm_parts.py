"""The diffusion-ddpm runner's pieces: data in [-1, 1], seeded noise-prediction training with an
EMA copy of the U-Net, the forward-process check on real images, sampling with the yardstick,
the saved DDIM generator, and the figures."""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from airoad.errors import AiroadError
from airoad.generative import diffusion as ref
from airoad.generative.metrics import Yardstick
from airoad.generative.unet import UNet
from airoad.labs.contract import RunContext
from airoad.labs.kit import cpu_timed, figure

SIDE = 28
STRIP_STEPS = (0, 50, 100, 200, 350, 500, 750, 999)  # forward-process columns (scaled to T)


def images(dataset: dict, train_images: int) -> torch.Tensor:
    """Training images as float32 (n, 1, 28, 28) in [-1, 1]: the scale the noise is added at."""
    x = dataset["X_train"] if train_images == 0 else dataset["X_train"][:train_images]
    return torch.from_numpy(x).float().div(127.5).sub(1.0)[:, None]


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """[-1, 1] samples as [0, 1] images (n, 28, 28) for the yardstick and the figures."""
    return ((x.clamp(-1, 1) + 1) / 2)[:, 0]


def make_schedule(config: Any) -> ref.Schedule:
    """The configured schedule; the linear one's betas scale by 1000 / T, so x_T is noise at any T."""
    if config.schedule == "cosine":
        return ref.cosine_schedule(config.T)
    scale = 1000 / config.T
    return ref.linear_schedule(config.T, 1e-4 * scale, 0.02 * scale)


def train(
    x: torch.Tensor, schedule: ref.Schedule, config: Any, ctx: RunContext
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Adam on the noise-prediction loss, one-cycle learning rate; returns the EMA model (eval
    mode) and the loss log, one row of mean loss per log_every steps."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        net = UNet(1, config.channels, config.time_dim)
    ema = AveragedModel(net, multi_avg_fn=get_ema_multi_avg_fn(config.ema))
    opt = torch.optim.Adam(net.parameters(), lr=config.lr)
    lr_sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    rng, log, window = torch.Generator().manual_seed(config.seed), [], []
    for step in ctx.track(range(1, config.steps + 1), "training the U-Net to predict noise"):
        batch = x[torch.randint(len(x), (config.batch_size,), generator=rng)]
        loss = ref.noise_prediction_loss(net, batch, schedule, rng)
        if not torch.isfinite(loss):
            raise AiroadError(f"the loss became {float(loss)} at step {step}: lower lr")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        lr_sched.step()
        ema.update_parameters(net)
        window.append(loss.item())
        if step % config.log_every == 0 or step == config.steps:
            log.append({"step": step, "loss": float(np.mean(window))})
            window = []
    return ema.module.eval(), log


def forward_check(x: torch.Tensor, schedule: ref.Schedule, seed: int) -> dict[str, float]:
    """On 16 real images (float64): q_sample with the step noises composed by the
    reparameterisation against T single noising steps, and the spread of x_T."""
    x0 = x[:16].double()
    g = torch.Generator().manual_seed(seed)
    xt, weighted = x0.clone(), torch.zeros_like(x0)
    for k in range(schedule.T):
        e = torch.randn(x0.shape, generator=g, dtype=torch.float64)
        xt = ref.q_step(xt, torch.full((16,), k), e, schedule)
        weighted = math.sqrt(schedule.alphas[k]) * weighted + math.sqrt(schedule.betas[k]) * e
    last = torch.full((16,), schedule.T - 1)
    eps = weighted / math.sqrt(1 - schedule.alpha_bars[-1])
    jump = ref.q_sample(x0, last, eps, schedule)
    return {
        "closed_form_max_abs_diff": float((jump - xt).abs().max()),
        "alpha_bar_T": float(schedule.alpha_bars[-1]),
        "x_T_std": float(xt.std()),
    }


def ddim_scores(
    net: nn.Module, schedule: ref.Schedule, config: Any, ys: Yardstick, ctx: RunContext
) -> tuple[list[dict[str, Any]], dict[int, torch.Tensor]]:
    """Yardstick score and sampling CPU time of 1,000 DDIM samples per step count (the same x_T
    for every count), 500 images per batch."""
    n = 1000
    x_T = torch.randn((n, 1, SIDE, SIDE), generator=torch.Generator().manual_seed(config.seed + 1))
    rows, samples = [], {}
    for k in ctx.track(config.ddim_steps, "DDIM sampling for the yardstick"):

        def draw(k=k):
            parts = [
                ref.ddim_sample(net, (len(z), 1, SIDE, SIDE), schedule, k, x_T=z, clip=1.0)
                for z in x_T.split(500)
            ]
            return torch.cat(parts)

        x, cpu_s, wall_s = cpu_timed(draw)
        samples[k] = x
        rows.append({"steps": k, "score": ys.score(to_unit(x), n=n), "cpu_s": cpu_s,
                     "wall_s": wall_s})  # fmt: skip
    return rows, samples


def ddpm_grid(net: nn.Module, schedule: ref.Schedule, seed: int) -> tuple[torch.Tensor, float]:
    """16 ancestral samples (all T steps) and the CPU seconds they took."""
    g = torch.Generator().manual_seed(seed + 2)
    x, cpu_s, _ = cpu_timed(
        lambda: ref.ddpm_sample(net, (16, 1, SIDE, SIDE), schedule, g, clip=1.0)
    )
    return to_unit(x), cpu_s


class DDIMGenerator(nn.Module):
    """(n, 784) noise x_T -> (n, 1, 28, 28) images in [-1, 1]: DDIM, eta 0, n_steps U-Net calls."""

    def __init__(self, net: nn.Module, schedule: ref.Schedule, n_steps: int):
        super().__init__()
        self.net, self.schedule, self.n_steps = net, schedule, n_steps

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x_T = z.reshape(-1, 1, SIDE, SIDE)
        x = ref.ddim_sample(self.net, tuple(x_T.shape), self.schedule, self.n_steps, x_T=x_T,
                            clip=1.0)  # fmt: skip
        return x.clamp(-1.0, 1.0)


def generator_writer(gen: DDIMGenerator, dataset: str, score: float) -> Callable[[Path], None]:
    """Writes generator.pt (the DDIM loop traced, so the n_steps U-Net calls are unrolled) and
    lab.json (an unconditional image generator with latent_dim 784, output range [-1, 1])."""

    def write(folder: Path) -> None:
        with torch.no_grad(), warnings.catch_warnings():
            # the timesteps are Python numbers baked into the trace on purpose
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(gen, torch.zeros(2, SIDE * SIDE), check_trace=False)
        traced.save(str(folder / "generator.pt"))
        spec = {
            "kind": "image-generator",
            "latent_dim": SIDE * SIDE,
            "n_labels": 0,
            "output_range": [-1.0, 1.0],
            "dataset": dataset,
            "module": "airoad.generative.unet.UNet + diffusion.ddim_sample",
            "ddim_steps": gen.n_steps,
            "yardstick_score": score,
        }
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def _grid(pictures: torch.Tensor, rows: int) -> np.ndarray:
    """(rows*rows, 28, 28) images as one (rows*28, rows*28) array."""
    x = pictures[: rows * rows].numpy()
    return x.reshape(rows, rows, SIDE, SIDE).transpose(0, 2, 1, 3).reshape(rows * SIDE, -1)


def forward_figure(x: torch.Tensor, schedule: ref.Schedule, seed: int, ctx: RunContext) -> None:
    """Four real images noised to a row of timesteps with one fixed noise, and sqrt(alpha_bar)."""
    steps = sorted({min(round(s * schedule.T / 1000), schedule.T - 1) for s in STRIP_STEPS})
    x0 = x[:4]
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed))
    cols = len(steps) + 1
    with figure(ctx, "forward_process", 4, cols, figsize=(1.5 * cols, 6.4)) as (fig, axes):
        for j, s in enumerate(steps):
            xt = ref.q_sample(x0, torch.full((4,), s), noise, schedule)
            for i in range(4):
                axes[i, j].imshow(to_unit(xt)[i], cmap="gray", vmin=0, vmax=1)
                axes[i, j].axis("off")
            axes[0, j].set_title(f"t = {s}", fontsize=9)
        gs = axes[0, -1].get_gridspec()
        for ax in axes[:, -1]:
            ax.remove()
        curve = fig.add_subplot(gs[:, -1])
        t = np.arange(schedule.T)
        curve.plot(t, schedule.alpha_bars.sqrt().numpy(), label="signal sqrt(ab)")
        curve.plot(t, (1 - schedule.alpha_bars).sqrt().numpy(), label="noise sqrt(1-ab)")
        curve.set(xlabel="t", title="coefficients")
        curve.legend(fontsize=7)
        fig.suptitle("forward process q(x_t | x_0): the same noise, growing t")


def samples_figure(grid: torch.Tensor, cpu_s: float, T: int, ctx: RunContext) -> None:
    """The 16 ancestral (DDPM) samples as a 4 x 4 grid."""
    with figure(ctx, "ddpm_samples", figsize=(4.6, 5.0)) as (fig, ax):
        ax.imshow(_grid(grid, 4), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"ancestral sampling, {T} steps ({cpu_s:.0f} CPU-s for 16)")
        ax.axis("off")


def steps_figure(rows: list[dict], floor: float, baseline: float, ctx: RunContext) -> None:
    """Yardstick score against the number of DDIM steps, with the floor and baseline lines."""
    with figure(ctx, "score_vs_ddim_steps", figsize=(6.4, 4.4)) as (fig, ax):
        steps = [r["steps"] for r in rows]
        ax.plot(steps, [r["score"] for r in rows], "o-", label="DDIM samples (1,000)")
        ax.axhline(floor, c="C2", ls="--", label=f"real held-out images ({floor:.1f})")
        ax.axhline(baseline, c="C3", ls=":", label=f"per-pixel noise ({baseline:.0f})")
        ax.axhline(baseline / 2, c="grey", ls=":", lw=0.8, label="half the baseline")
        ax.set(xscale="log", yscale="log", xlabel="DDIM steps (eta = 0)",
               ylabel="yardstick score (lower is better)", xticks=steps)  # fmt: skip
        ax.set_xticklabels([str(s) for s in steps])
        ax.tick_params(axis="x", which="minor", labelbottom=False)
        ax.legend(fontsize=8)


def loss_figure(log: list[dict], ctx: RunContext) -> None:
    with figure(ctx, "training_loss", figsize=(6, 3.8)) as (fig, ax):
        ax.plot([r["step"] for r in log], [r["loss"] for r in log])
        ax.set(xlabel="step", ylabel="noise-prediction MSE", yscale="log",
               title="training loss (mean per logged window)")  # fmt: skip
