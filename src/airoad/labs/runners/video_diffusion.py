"""Runner for video-diffusion: a space-time denoiser that generates clips of one moving digit.

Training clips are made on the fly from real MNIST training digits (`moving_digit_clips`: the
digit shrunk to 10x10 in a 16x16 frame, a seeded start and velocity, bouncing off the edges, 8
frames). The model (`VideoDenoiser`: per-frame convolutions + temporal attention across the
frames at every pixel) learns the DDPM noise-prediction loss of `airoad.generative.diffusion`
and samples with DDIM. Scores: the MNIST yardstick's classifier features on every frame,
upsampled to 28x28, against the frames of held-out clips made from MNIST test digits (Fréchet
distance on 1,000 frames; floor: another held-out sample; baseline: per-pixel Gaussian noise
matched to the clips), and the motion of the digit's centre of mass (step length, jerk, ink
variation over time) for real, generated and frame-shuffled real clips. The DDIM sampler is
saved as the artifact ``generator`` (kind "video-generator": the serving lab does not load it).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import (
    changed_from_full,
    config_check,
    cpu_timed,
    param,
    render_notes,
    validate_config,
)
from airoad.labs.runners import video_diffusion_parts as parts


@dataclass(frozen=True)
class Config:
    train_digits: int = param(0, ge=100, le=60000, also=(0,))  # 0 = all 60,000
    n_frames: int = param(8, ge=3, le=16)
    size: int = param(16, ge=8, le=28)  # frame side; even (the U-Net halves it)
    digit_size: int = param(10, ge=4, le=26)
    max_speed: int = param(2, ge=1, le=8)  # pixels per frame on each axis
    channels: tuple[int, ...] = param((32, 64), ge=8, le=256)  # multiples of 8 (GroupNorm)
    n_heads: int = param(4, ge=1, le=16)
    frame_embedding: bool = param(True)
    full_res_attention: bool = param(False)  # temporal attention at 16x16 too (slower)
    schedule: str = param("cosine", choices=("cosine", "linear"))
    diffusion_steps: int = param(1000, ge=10, le=4000)
    steps: int = param(600, ge=10, le=100_000)
    batch_size: int = param(32, ge=2, le=512)
    lr: float = param(2e-3, gt=0.0, le=0.1)
    ema_decay: float = param(0.995, ge=0.0, lt=1.0)  # the sampler uses the averaged weights
    log_every: int = param(25, ge=1)
    ddim_steps: int = param(25, ge=2, le=1000)
    eval_frames: int = param(1000, ge=64, le=4000)  # frames per yardstick set
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(self.size % 2 == 0, "size", "must be even (the denoiser halves it)")
        config_check(self.digit_size < self.size, "digit_size", "must be smaller than size")
        span = self.size - self.digit_size
        config_check(
            self.max_speed <= span, "max_speed", f"must be at most size - digit_size = {span}"
        )
        ok = len(self.channels) == 2 and all(
            c % 8 == 0 and c % self.n_heads == 0 for c in self.channels
        )
        config_check(ok, "channels", "must be two multiples of 8, each divisible by n_heads")
        config_check(self.log_every <= self.steps, "log_every", "must be at most steps")
        config_check(
            self.ddim_steps <= self.diffusion_steps, "ddim_steps", "must be at most diffusion_steps"
        )


# fmt: off
QUICK = {  # a tiny denoiser, 40 steps of 8 clips, 128-frame scores: seconds
    "train_digits": 5000, "channels": (16, 16), "steps": 40, "batch_size": 8,
    "log_every": 8, "ddim_steps": 5, "eval_frames": 128, "ema_decay": 0.8,
}
# fmt: on

NOTES = (
    "{steps} steps of {batch_size} clips ({n_frames} frames of {size}x{size}): the loss went "
    "from {loss_first:.3f} to {loss_last:.3f}. Training took {train_cpu_s:.0f} CPU-s "
    "({train_wall_s:.0f} s wall); DDIM with {ddim_steps} steps made {eval_clips} clips in "
    "{sample_cpu_s:.0f} CPU-s.",
    "Frames on the MNIST yardstick ({eval_frames} frames upsampled to 28x28, our small CNN's "
    "features, not Inception's): generated {score:.1f}, real held-out clips {floor:.1f} (the "
    "floor), per-pixel noise {baseline:.1f} (the baseline): {score_over_baseline:.2f} of the "
    "baseline, {score_over_floor:.0f}x the floor.",
    "Motion (centre of mass per frame): real clips step {real_step:.2f} px with jerk "
    "{real_jerk:.2f} and ink variation {real_mass_cv:.3f}; generated step {gen_step:.2f}, jerk "
    "{gen_jerk:.2f}, ink variation {gen_mass_cv:.3f}; real clips with shuffled frames (same "
    "frames, no motion) step {shuffled_step:.2f}, jerk {shuffled_jerk:.2f}. Verdict: {motion_verdict}.",
    "Our temporal attention equals nn.MultiheadAttention on the (n*H*W, T, C) sequences to "
    "{mha_max_abs_diff:.1e}. Settings changed from the full run: {changed}.",
)


def _data(config: Config) -> dict[str, Any]:
    """Training digits, and two disjoint held-out clip sets made from MNIST test digits."""
    mnist = load("mnist")
    train = (
        mnist["X_train"] if config.train_digits == 0 else mnist["X_train"][: config.train_digits]
    )
    n_clips = -(-config.eval_frames // config.n_frames)
    test = mnist["X_test"][np.random.default_rng(config.seed).permutation(len(mnist["X_test"]))]
    held = [
        parts.clips(test[i * n_clips : (i + 1) * n_clips], config, config.seed + 1 + i)
        for i in (0, 1)
    ]
    return {"train": train, "reference": held[0], "other": held[1], "n_clips": n_clips}


def _train(config: Config, data: dict, ctx: RunContext) -> tuple[Any, list[dict]]:
    """The averaged (EMA) denoiser and the training log."""
    return parts.train(parts.new_model(config), data["train"], config, ctx)


def _measure(model, log, data: dict, config: Config) -> tuple[dict[str, Any], torch.Tensor]:
    """Sample the eval clips, score their frames and their motion, check the attention."""
    generated, sample_cpu_s, _ = cpu_timed(
        lambda: parts.sample(model, data["n_clips"], config, config.seed)
    )
    m = parts.yardstick_scores(generated, data, config)
    m |= parts.motion_metrics(data["reference"], generated, config.seed)
    m |= {"loss_first": log[0]["loss"], "loss_last": log[-1]["loss"], "sample_cpu_s": sample_cpu_s}
    m |= {
        "eval_clips": data["n_clips"],
        "mha_max_abs_diff": parts.attention_vs_torch(model, config),
    }
    m["changed"] = ", ".join(changed_from_full(config)) or "none"
    return m, generated


def run(config: Config, ctx: RunContext) -> LabResult:
    data = _data(config)
    (model, log), cpu_s, wall_s = cpu_timed(lambda: _train(config, data, ctx))
    metrics, generated = _measure(model, log, data, config)
    metrics |= {"train_cpu_s": cpu_s, "train_wall_s": wall_s}

    parts.strip_figure(
        ctx, "real_clips", data["reference"][:6], "real clips (held-out MNIST digits)"
    )
    parts.strip_figure(
        ctx, "generated_clips", generated[:6], f"generated clips (DDIM, {config.ddim_steps} steps)"
    )
    parts.training_and_motion_figure(ctx, log, data["reference"], generated)
    ctx.save_artifact("generator", parts.sampler_writer(model, config, metrics["score"]))

    return LabResult(
        metrics=metrics,
        key_metric="score",
        library_metric=None,
        tables={"training": log},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
