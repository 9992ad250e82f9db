"""Runner for diffusion-ddpm: a small U-Net learns to predict the noise DDPM adds to MNIST digits.

First the forward process is checked on real images (the closed-form jump q(x_t|x_0) against T
single noising steps whose noises are composed by the reparameterisation). Then the U-Net trains
on the noise-prediction loss (Adam, one-cycle learning rate, an EMA copy of the weights for
sampling). Ancestral (DDPM) sampling runs all T steps for a 16-image grid; DDIM (eta = 0) draws
1,000 samples from one fixed x_T at each of a few step counts, each scored by the shared
yardstick (Fréchet distance on our small CNN's features, not Inception's) beside the real-data
floor and the per-pixel noise baseline. The EMA U-Net wrapped in DDIM is saved as the artifact
``generator`` (TorchScript: (n, 784) noise -> (n, 1, 28, 28) in [-1, 1]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airoad.data import load
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import (
    changed_from_full,
    config_check,
    cpu_timed,
    param,
    render_notes,
    validate_config,
)
from airoad.labs.runners import diffusion_ddpm_parts as parts


@dataclass(frozen=True)
class Config:
    dataset: str = param("mnist", choices=("mnist", "fashion-mnist"))
    train_images: int = param(0, ge=1000, le=60000, also=(0,))  # 0 = all 60,000
    steps: int = param(1200, ge=10, le=200_000)  # optimiser steps
    batch_size: int = param(64, ge=1, le=1024)
    lr: float = param(2e-3, gt=0.0, le=0.1)  # the one-cycle schedule's peak
    ema: float = param(0.99, ge=0.0, lt=1.0)  # decay of the weight average used for sampling
    channels: tuple[int, ...] = param((16, 32), ge=2, le=256, min_len=2)
    time_dim: int = param(32, ge=2, le=512)
    T: int = param(1000, ge=50, le=4000)  # diffusion steps
    schedule: str = param("linear", choices=("linear", "cosine"))
    ddim_steps: tuple[int, ...] = param((10, 25, 50), ge=1, le=4000, min_len=1)
    artifact_steps: int = param(25, ge=1, le=4000)  # DDIM steps of the saved generator
    log_every: int = param(50, ge=1)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(len(self.channels) == 2, "channels", "must be two numbers (c1, c2)")
        groups_ok = all(c in (2, 4) or c % 8 == 0 for c in self.channels)  # 8 groups, also at 2*c
        config_check(groups_ok, "channels", "must each be 2, 4 or a multiple of 8 (GroupNorm)")
        config_check(self.time_dim % 2 == 0, "time_dim", "must be even (sines and cosines)")
        config_check(max(self.ddim_steps) <= self.T, "ddim_steps", "must be at most T")
        config_check(self.artifact_steps <= self.T, "artifact_steps", "must be at most T")
        config_check(self.log_every <= self.steps, "log_every", "must be at most steps")


# fmt: off
QUICK = {  # a tiny U-Net, 40 steps on 2,000 images, a 100-step chain: seconds
    "train_images": 2000, "steps": 40, "batch_size": 32, "channels": (8, 16), "time_dim": 16,
    "T": 100, "ddim_steps": (1, 3), "artifact_steps": 3, "log_every": 10, "ema": 0.9,
}
# fmt: on

NOTES = (
    "{dataset}: the closed-form jump q(x_T|x_0) equals {T} iterated noising steps to "
    "{closed_form_max_abs_diff:.1e} on 16 real images (alpha_bar_T = {alpha_bar_T:.1e}, so x_T "
    "is noise: std {x_T_std:.3f}).",
    "A {n_params:,}-parameter U-Net trained {steps} steps (batch {batch_size}): loss "
    "{first_loss:.3f} -> {last_loss:.3f}, {train_cpu_s:.0f} CPU-s ({train_wall_s:.0f} s wall).",
    "Yardstick (1,000 DDIM samples, our small CNN's features, not Inception): {steps_scores}; "
    "real held-out images {floor:.1f}, per-pixel noise {baseline:.0f}. Best {score:.1f} = "
    "{score_over_floor:.0f}x the floor, {score_over_baseline:.3f} of the baseline ({verdict}).",
    "Ancestral sampling of 16 images took {ddpm_cpu_s:.0f} CPU-s for {T} steps; DDIM with "
    "{fastest_steps} steps took {fastest_cpu_s:.0f} CPU-s for 1,000.",
    "Settings changed from the full run: {changed}.",
)


def _train(config: Config, ctx: RunContext) -> dict[str, Any]:
    """The data, the schedule, the forward-process check and the trained EMA U-Net."""
    x = parts.images(load(config.dataset), config.train_images)
    schedule = parts.make_schedule(config)
    (net, log), cpu_s, wall_s = cpu_timed(lambda: parts.train(x, schedule, config, ctx))
    return {"x": x, "schedule": schedule, "net": net, "log": log,
            "metrics": parts.forward_check(x, schedule, config.seed) | {
                "train_cpu_s": cpu_s, "train_wall_s": wall_s,
                "n_params": sum(p.numel() for p in net.parameters()),
                "first_loss": log[0]["loss"], "last_loss": log[-1]["loss"]}}  # fmt: skip


def _measure(rows: list[dict], ys: Yardstick, config: Config) -> dict[str, Any]:
    """Floor, baseline, the best DDIM score and how it compares."""
    m: dict[str, Any] = {"floor": ys.floor(), "baseline": ys.baseline()}
    best = min(rows, key=lambda r: r["score"])
    fastest = min(rows, key=lambda r: r["steps"])
    m |= {"score": best["score"], "best_steps": best["steps"], "fastest_steps": fastest["steps"],
          "fastest_cpu_s": fastest["cpu_s"]}  # fmt: skip
    m["score_over_floor"] = m["score"] / m["floor"]
    m["score_over_baseline"] = m["score"] / m["baseline"]
    half = m["score"] <= m["baseline"] / 2
    m["verdict"] = "at most half the baseline" if half else "NOT below half the baseline"
    m["steps_scores"] = ", ".join(f"{r['steps']} steps {r['score']:.1f}" for r in rows)
    m["changed"] = ", ".join(changed_from_full(config)) or "none"
    return m | {f"score_ddim_{r['steps']}": r["score"] for r in rows}


def run(config: Config, ctx: RunContext) -> LabResult:
    trained = _train(config, ctx)
    net, schedule = trained["net"], trained["schedule"]
    ys = Yardstick(config.dataset)
    rows, _ = parts.ddim_scores(net, schedule, config, ys, ctx)
    grid, ddpm_cpu_s = parts.ddpm_grid(net, schedule, config.seed)
    metrics = trained["metrics"] | _measure(rows, ys, config) | {"ddpm_cpu_s": ddpm_cpu_s}
    metrics |= {"dataset": config.dataset, "steps": config.steps}

    parts.forward_figure(trained["x"], schedule, config.seed, ctx)
    parts.samples_figure(grid, ddpm_cpu_s, config.T, ctx)
    parts.steps_figure(rows, metrics["floor"], metrics["baseline"], ctx)
    parts.loss_figure(trained["log"], ctx)
    generator = parts.DDIMGenerator(net, schedule, config.artifact_steps)
    ctx.save_artifact(
        "generator", parts.generator_writer(generator, config.dataset, metrics["score"])
    )
    return LabResult(
        metrics=metrics,
        key_metric="score",
        library_metric=None,
        tables={"training": trained["log"], "ddim_steps": rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
