"""Runner for latent-diffusion: class-conditional diffusion in the autoencoder lab's code space.

1. The autoencoder lab's conv model (artifact "autoencoder": TorchScript encoder and decoder,
   codes (4, 7, 7) standardised per channel) encodes the MNIST training digits.
2. A residual-MLP denoiser learns the noise in those codes (DDPM loss from
   `airoad.generative.diffusion`), with labels dropped to a learned null label at rate p_uncond.
3. Guided DDIM at several guidance scales w: the yardstick score (Fréchet distance on our small
   CNN's features, beside the real-data floor, the noise baseline and the autoencoder's own
   reconstructions) and the conditional accuracy (the yardstick classifier's).
4. Sampling time: one step of our denoiser (guided and plain) plus the decoder, against one
   step of the diffusion-ddpm lab's pixel U-Net on the same batch (CPU ms; weights do not
   change the time, so the U-Net may be untrained).
The generator (noise (n, 196) + labels -> guided DDIM -> decoder) is saved as "generator".
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from airoad.generative import diffusion
from airoad.generative import latent_diffusion as ref
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes, thread_limit, validate_config
from airoad.labs.runners import latent_diffusion_parts as parts


@dataclass(frozen=True)
class Config:
    autoencoder: str = param("full", choices=("full", "quick"))  # which autoencoder artifact
    n_train: int = param(60_000, ge=256, le=60_000)  # a seeded subset of the training digits
    epochs: int = param(20, ge=1, le=1000)
    batch_size: int = param(256, ge=8, le=4096)
    lr: float = param(1e-3, gt=0.0, le=1.0)  # Adam, cosine decay to 0 over the run
    ema: float = param(0.999, ge=0.0, lt=1.0)  # decay of the weight average that samples
    hidden: int = param(512, ge=8, le=4096)
    n_blocks: int = param(3, ge=1, le=32)
    emb_dim: int = param(128, ge=2, le=1024)  # even: sines and cosines
    T: int = param(1000, ge=10, le=4000)
    schedule: str = param("linear", choices=("linear", "cosine"))
    p_uncond: float = param(0.1, gt=0.0, lt=1.0)  # how often a label is swapped for the null one
    ddim_steps: int = param(50, ge=1, le=4000)
    clip: float = param(
        4.0, gt=0.0, le=100.0, also=(0.0,)
    )  # clamp of the clean-code estimate; 0 = none
    guidance: float = param(3.0, ge=0.0, le=50.0)  # the class grid's and the saved generator's w
    guidance_scales: tuple[float, ...] = param((0.0, 1.0, 3.0, 5.0), ge=0.0, le=50.0)
    n_score: int = param(1000, ge=100, le=5000)  # images per yardstick score
    timing_batch: int = param(100, ge=1, le=2000)
    threads: int = param(1, ge=1, le=64)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(self.emb_dim % 2 == 0, "emb_dim", "must be even (sines and cosines)")
        config_check(self.ddim_steps <= self.T, "ddim_steps", f"must be at most T ({self.T})")


QUICK = {
    "autoencoder": "quick",
    "n_train": 2048,
    "epochs": 4,
    "batch_size": 64,
    "lr": 3e-3,
    "ema": 0.9,
    "hidden": 64,
    "n_blocks": 2,
    "emb_dim": 32,
    "T": 200,
    "ddim_steps": 10,
    "guidance_scales": (0.0, 3.0),
    "n_score": 200,
    "timing_batch": 16,
}

NOTES = (
    "Denoiser ({denoiser_params:,} weights) trained {epochs} epoch(s) on {n_codes} MNIST codes "
    "(autoencoder test MSE {ae_test_mse:.4f}): loss {first_loss:.3f} -> {last_loss:.3f} in "
    "{train_cpu_seconds:.0f} CPU-s.",
    "Yardstick on {n_score} images (our CNN's features, not FID): guided samples at w = "
    "{guidance:g} score {score:.1f} with {accuracy:.1%} of them classified as their label; real "
    "floor {floor:.1f}, noise baseline {baseline:.1f}, the decoder's own reconstructions "
    "{recon_score:.1f}. Score/floor {score_over_floor:.1f}, score/baseline "
    "{score_over_baseline:.3f}.",
    "Guidance sweep: {sweep_note}. Best score at w = {best_score_w:g}, best accuracy at w = "
    "{best_accuracy_w:g}.",
    "Sampling cost, CPU ms for a batch of {timing_batch}: a guided latent step "
    "{latent_guided_step_ms:.1f} (plain {latent_step_ms:.1f}), the decoder once "
    "{decoder_ms:.1f}; a pixel U-Net step ({unet_params:,} weights, {unet_source}) "
    "{pixel_step_ms:.1f}. With {ddim_steps} DDIM steps: {latent_ms_per_image:.2f} ms per image "
    "in latent space vs {pixel_ms_per_image:.2f} in pixel space ({sampling_speedup:.1f}x).",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    ys = Yardstick("mnist", note=lambda _: None)  # loads MNIST: a missing dataset stops here
    ae = parts.autoencoder(quick=config.autoencoder == "quick")
    schedule = _schedule(config)
    with thread_limit(config.threads):
        data = parts.codes(ae, config.n_train, config.seed)
        fit = parts.fit(_new_denoiser(config, ae["shape"]), data, schedule, config, ctx)
        model = fit["ema"]  # the averaged weights sample
        sweep = _guidance_sweep(config, ctx, ys, model, ae, schedule)
        metrics = _scores(config, ys, ae, sweep) | _class_grid(config, ctx, ys, model, ae, schedule)
        metrics |= parts.timing(model, ae["decoder"], ae["shape"], config.timing_batch,
                                config.ddim_steps, config.guidance)  # fmt: skip
    metrics |= _training_facts(fit, data, ae)
    parts.curve_figure(ctx, fit["losses"])
    spec = {"score": metrics["score"], "floor": metrics["floor"], "accuracy": metrics["accuracy"]}
    ctx.save_artifact(
        "generator",
        parts.generator_writer(model, ae["decoder"], schedule, config.ddim_steps,
                               config.guidance, config.clip or None, spec),
    )  # fmt: skip
    return LabResult(
        metrics=metrics,
        key_metric="score",
        library_metric=None,
        tables={"guidance_sweep": sweep, "epochs": fit["epochs"]},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _schedule(config: Config) -> diffusion.Schedule:
    if config.schedule == "cosine":
        return diffusion.cosine_schedule(config.T)
    return diffusion.linear_schedule(config.T)


def _new_denoiser(config: Config, shape: tuple[int, ...]) -> ref.LatentDenoiser:
    """A seeded denoiser; the global RNG is forked so the caller's random state is untouched."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        return ref.LatentDenoiser(shape, 10, config.hidden, config.n_blocks, config.emb_dim)


def _scales(config: Config) -> list[float]:
    return sorted(set(config.guidance_scales) | {config.guidance})


def _guidance_sweep(config, ctx, ys, model, ae, schedule) -> list[dict]:
    """n_score samples (labels 0-9 in turn, the same start codes) per guidance scale: score and
    conditional accuracy; the first ten of each scale make the strips figure."""
    labels = torch.arange(config.n_score) % 10
    noise = parts.start_noise(config.n_score, ae["shape"], config.seed + 1)
    rows, strips = [], {}
    for w in ctx.track(_scales(config), "sampling at each guidance scale"):
        imgs = parts.sample_images(model, ae["decoder"], labels, noise, schedule, config, w)
        acc = ys.class_accuracy(imgs, labels)
        score = ys.score(imgs, n=config.n_score)
        rows.append({"w": w, "score": score, "accuracy": float(np.nanmean(acc)),
                     "worst_class_accuracy": float(acc.min())})  # fmt: skip
        strips[w] = imgs[:10]
    parts.guidance_figure(ctx, rows, ys.floor(config.n_score), ys.baseline(config.n_score))
    parts.strips_figure(ctx, strips)
    return rows


def _scores(config: Config, ys: Yardstick, ae: dict, sweep: list[dict]) -> dict:
    """The anchors (floor, baseline, the decoder's reconstructions) and the sweep's headline."""
    real = ys._real(config.n_score, 0, 1)  # the floor's own images, encoded and decoded
    recon = parts.batched(lambda x: ae["decoder"](ae["encoder"](x)), real).clamp(0.0, 1.0)
    at = {r["w"]: r for r in sweep}
    out = {
        "score": at[config.guidance]["score"],
        "accuracy": at[config.guidance]["accuracy"],
        "floor": ys.floor(config.n_score),
        "baseline": ys.baseline(config.n_score),
        "recon_score": ys.score(recon, n=config.n_score),
        "best_score_w": min(sweep, key=lambda r: r["score"])["w"],
        "best_accuracy_w": max(sweep, key=lambda r: r["accuracy"])["w"],
        "sweep_note": "; ".join(
            f"w = {r['w']:g}: score {r['score']:.1f}, accuracy {r['accuracy']:.1%}" for r in sweep
        ),
    }
    out["score_over_floor"] = out["score"] / out["floor"]
    out["score_over_baseline"] = out["score"] / out["baseline"]
    return out


def _class_grid(config, ctx, ys, model, ae, schedule) -> dict:
    """Ten samples of each digit at the configured scale (fresh start codes) as a 10-row grid."""
    labels = torch.arange(10).repeat_interleave(10)
    noise = parts.start_noise(100, ae["shape"], config.seed + 2)
    imgs = parts.sample_images(
        model, ae["decoder"], labels, noise, schedule, config, config.guidance
    )
    acc = ys.class_accuracy(imgs, labels)
    parts.class_grid_figure(ctx, imgs, config.guidance, acc)
    return {"grid_accuracy": float(acc.mean())}


def _training_facts(fit: dict, data: dict, ae: dict) -> dict:
    """First and last training losses (means of up to 20 batches), CPU seconds, data sizes."""
    loss = fit["losses"]
    k = max(1, min(20, len(loss) // 4))
    return {
        "first_loss": sum(loss[:k]) / k,
        "last_loss": sum(loss[-k:]) / k,
        "train_cpu_seconds": fit["cpu_seconds"],
        "n_codes": len(data["z"]),
        "ae_test_mse": ae["test_mse"],
    }
