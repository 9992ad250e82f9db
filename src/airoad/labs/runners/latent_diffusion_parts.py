"""Parts of the latent-diffusion runner: the autoencoder artifact and the MNIST codes, the seeded
training loop, batched guided sampling, the sampling-time race against the pixel U-Net, the
generator artifact and the figures."""

from __future__ import annotations

import copy
import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from airoad.errors import AiroadError
from airoad.generative import latent_diffusion as ref
from airoad.generative.diffusion import Schedule
from airoad.generative.unet import UNet
from airoad.labs import artifacts
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.labs.runners.autoencoder_parts import batched, images

# ---------------------------------------------------------------- the autoencoder and the codes


def autoencoder(quick: bool) -> dict:
    """The autoencoder lab's TorchScript encoder/decoder and its lab.json. A missing quick model
    is trained on the spot (seconds); a missing full one (most of an hour) stops the run with
    the command that makes it."""
    folder = artifacts.require("autoencoder", "autoencoder", quick=quick, train_if_missing=quick)
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    load = lambda f: torch.jit.load(str(folder / f), map_location="cpu").eval()  # noqa: E731
    return {
        "encoder": load("encoder.pt"),
        "decoder": load("decoder.pt"),
        "shape": tuple(spec["latent_shape"]),
        "test_mse": spec["test_mse"],
        "folder": folder,
    }


def codes(ae: dict, n_train: int, seed: int) -> dict[str, torch.Tensor]:
    """A seeded subset of the MNIST training digits as standardised codes, with their labels."""
    data = images("mnist", n_train, 100, seed)
    return {"z": batched(ae["encoder"], data["x_train"]), "y": data["y_train"].long()}


# ---------------------------------------------------------------- training


def fit(model: ref.LatentDenoiser, data: dict, schedule: Schedule, config, ctx: RunContext) -> dict:
    """Adam with a cosine learning-rate decay over every batch; per-batch losses, CPU seconds and
    ``ema``: a copy whose weights follow an exponential moving average (decay ``config.ema``)
    of the trained ones, the model that samples (it smooths out the last steps' noise).

    A loss that turns NaN or infinite stops the run with the fix (a smaller learning rate)."""
    gen = torch.Generator().manual_seed(config.seed)
    z, y = data["z"], data["y"]
    starts = range(0, len(z), config.batch_size)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    decay = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.epochs * len(starts))
    ema = copy.deepcopy(model).requires_grad_(False)
    weights, averages = list(model.parameters()), list(ema.parameters())
    losses, epochs, cpu0 = [], [], time.process_time()
    model.train()
    for epoch in range(config.epochs):
        order = torch.randperm(len(z), generator=gen)
        for start in ctx.track(starts, f"denoiser: epoch {epoch + 1}/{config.epochs}"):
            idx = order[start : start + config.batch_size]
            loss = ref.train_step(model, opt, z[idx], y[idx], schedule, config.p_uncond, gen)
            if not math.isfinite(loss):
                raise AiroadError(
                    f"the denoiser diverged (loss {loss}) in epoch {epoch + 1}: lower lr "
                    f"(now {config.lr}) with --set lr=..."
                )
            losses.append(loss)
            decay.step()
            torch._foreach_lerp_(averages, weights, 1.0 - config.ema)
        recent = losses[-len(starts) :]
        epochs.append({"epoch": epoch + 1, "mean_loss": sum(recent) / len(recent),
                       "cpu_seconds": time.process_time() - cpu0})  # fmt: skip
    model.eval()
    return {"losses": losses, "epochs": epochs, "ema": ema.eval(),
            "cpu_seconds": time.process_time() - cpu0}  # fmt: skip


# ---------------------------------------------------------------- sampling


@torch.no_grad()
def sample_images(
    model, decoder, labels: torch.Tensor, noise: torch.Tensor, schedule: Schedule, config,
    w: float, batch: int = 500,
) -> torch.Tensor:  # fmt: skip
    """Guided DDIM codes (config.ddim_steps, config.clip; 0 = no clamp) for ``labels`` from
    start codes ``noise``, decoded to images in [0, 1]."""
    out = []
    for i in range(0, len(labels), batch):
        z = ref.sample_latents(model, labels[i : i + batch], schedule, config.ddim_steps, w,
                               noise[i : i + batch], clip=config.clip or None)  # fmt: skip
        out.append(decoder(z))
    return torch.cat(out).clamp(0.0, 1.0)


def start_noise(n: int, shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """n seeded start codes z_T (n, *shape): every guidance scale starts from the same ones."""
    return torch.randn(n, *shape, generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------- timing


def _median_cpu(fn, repeats: int = 5) -> float:
    """Median CPU milliseconds of ``fn()`` over ``repeats`` calls after one warm-up call."""
    times = []
    for _ in range(repeats + 1):
        start = time.process_time()
        fn()
        times.append(1000 * (time.process_time() - start))
    return float(np.median(times[1:]))


def pixel_unet() -> tuple[nn.Module, str]:
    """The diffusion-ddpm lab's pixel U-Net: its full config's channels when that runner exists,
    else unet.UNet's defaults. Untrained: the time of a forward pass does not depend on the
    weights."""
    try:
        from airoad.labs.runners import diffusion_ddpm

        cfg = diffusion_ddpm.Config()
        kw = {k: tuple(getattr(cfg, k)) if k == "channels" else getattr(cfg, k)
              for k in ("channels", "time_dim") if hasattr(cfg, k)}  # fmt: skip
        return UNet(**kw).eval(), "diffusion-ddpm's full config"
    except (ImportError, TypeError, ValueError):
        return UNet().eval(), "unet.UNet defaults"


@torch.no_grad()
def timing(model, decoder, shape, batch: int, n_steps: int, w: float) -> dict:
    """CPU ms per step for a batch: our guided latent step, an unguided one, the decoder (once
    per sample) and the pixel U-Net's step on images; per-image totals for n_steps."""
    g = torch.Generator().manual_seed(0)
    z, x = torch.randn(batch, *shape, generator=g), torch.randn(batch, 1, 28, 28, generator=g)
    t, labels = torch.full((batch,), 500), torch.arange(batch) % 10
    unet, source = pixel_unet()
    out = {
        "latent_step_ms": _median_cpu(lambda: model(z, t, labels)),
        "latent_guided_step_ms": _median_cpu(lambda: ref.guided_eps(model, z, t, labels, w)),
        "decoder_ms": _median_cpu(lambda: decoder(z)),
        "pixel_step_ms": _median_cpu(lambda: unet(x, t)),
        "denoiser_params": sum(p.numel() for p in model.parameters()),
        "unet_params": sum(p.numel() for p in unet.parameters()),
        "unet_source": source,
    }
    out["latent_ms_per_image"] = (
        n_steps * out["latent_guided_step_ms"] + out["decoder_ms"]
    ) / batch
    out["pixel_ms_per_image"] = n_steps * out["pixel_step_ms"] / batch
    out["step_speedup"] = out["pixel_step_ms"] / out["latent_step_ms"]
    out["sampling_speedup"] = out["pixel_ms_per_image"] / out["latent_ms_per_image"]
    return out


# ---------------------------------------------------------------- the generator artifact


def generator_writer(
    model, decoder, schedule: Schedule, n_steps: int, w: float, clip: float | None, spec: dict
):
    """Writes generator.pt (noise (n, 196) + labels (n,) -> images in [0, 1]) + lab.json."""
    size = math.prod(model.latent_shape)

    def write(folder: Path) -> None:
        gen = ref.LatentDiffusionGenerator(model, decoder, schedule, n_steps, w, clip).eval()
        example = (torch.randn(2, size), torch.tensor([0, 1]))
        with torch.no_grad(), warnings.catch_warnings():  # DDIM's loop unrolls into the trace
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            torch.jit.save(
                torch.jit.trace(gen, example, check_trace=False), str(folder / "generator.pt")
            )
        info = {"kind": "image-generator", "latent_dim": size, "n_labels": model.n_classes,
                "output_range": [0.0, 1.0], "dataset": "mnist", "guidance": w,
                "ddim_steps": n_steps, "clip": clip} | spec  # fmt: skip
        (folder / "lab.json").write_text(json.dumps(info, indent=2), "utf-8")

    return write


# ---------------------------------------------------------------- figures


def _tile(ax, imgs: torch.Tensor, rows: int, title: str, ylabels=None) -> None:
    """(rows * cols, 1, 28, 28) images as one grey picture, row by row."""
    cols = len(imgs) // rows
    tiles = imgs[: rows * cols, 0].reshape(rows, cols, 28, 28).permute(0, 2, 1, 3)
    ax.imshow(tiles.reshape(rows * 28, cols * 28).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([28 * r + 14 for r in range(rows)], ylabels or [""] * rows, fontsize=8)


def class_grid_figure(ctx: RunContext, grid: torch.Tensor, w: float, accuracy: np.ndarray) -> None:
    """Ten samples per class, one row per digit, with the classifier's accuracy on each row."""
    rows = [f"{c}: {a:.0%}" for c, a in enumerate(accuracy)]
    with figure(ctx, "class_grid", figsize=(6.4, 6.8)) as (_, ax):
        _tile(
            ax, grid, 10, f"guided DDIM at w = {w:g}: row = asked-for digit (class accuracy)", rows
        )


def guidance_figure(ctx: RunContext, sweep: list[dict], floor: float, baseline: float) -> None:
    """Conditional accuracy and the yardstick score against the guidance scale."""
    w = [r["w"] for r in sweep]
    with figure(ctx, "guidance_sweep", 1, 2, figsize=(10, 4)) as (_, (ax0, ax1)):
        ax0.plot(w, [r["accuracy"] for r in sweep], "o-")
        ax0.set(xlabel="guidance scale w", ylabel="samples classified as their label",
                ylim=(0, 1.02), title="conditional accuracy (yardstick classifier)")  # fmt: skip
        ax1.plot(w, [r["score"] for r in sweep], "o-", label="latent diffusion")
        ax1.axhline(floor, color="g", ls="--", label=f"real-data floor {floor:.1f}")
        ax1.set(xlabel="guidance scale w", ylabel="Fréchet distance (lower is better)",
                yscale="log", title=f"yardstick score (baseline {baseline:.0f})")  # fmt: skip
        ax1.legend(fontsize=8)


def strips_figure(ctx: RunContext, strips: dict[float, torch.Tensor]) -> None:
    """The same ten start codes (digits 0-9) decoded at every guidance scale, one row each."""
    imgs = torch.cat(list(strips.values()))
    labels = [f"w = {w:g}" for w in strips]
    with figure(ctx, "guidance_strips", figsize=(6.4, 0.75 * len(strips) + 0.8)) as (_, ax):
        _tile(
            ax, imgs, len(strips), "digits 0-9 from the same noise at each guidance scale", labels
        )


def curve_figure(ctx: RunContext, losses: list[float], window: int = 50) -> None:
    """The noise-prediction loss per batch (moving average)."""
    loss = np.asarray(losses)
    w = max(1, min(window, len(loss) // 5))
    with figure(ctx, "training_curve", figsize=(6.5, 4)) as (_, ax):
        ax.plot(np.convolve(loss, np.ones(w) / w, mode="valid"))
        ax.set(xlabel="batch", ylabel="MSE of the predicted noise", yscale="log",
               title=f"denoiser training loss (moving average over {w} batches)")  # fmt: skip
