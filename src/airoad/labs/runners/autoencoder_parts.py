"""Parts of the autoencoder runner: the images, the seeded training loop, batched encoding and
reconstruction, the TorchScript exports other labs load, and the figures."""

from __future__ import annotations

import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from airoad.data import load
from airoad.errors import AiroadError
from airoad.generative import autoencoder as ref
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, subsample


def images(name: str, n_train: int, n_test: int, seed: int) -> dict[str, torch.Tensor]:
    """A seeded subset of a registry image set as float (n, 1, 28, 28) in [0, 1] plus labels."""
    data = load(name)
    tr = subsample(len(data["X_train"]), n_train, seed)
    te = subsample(len(data["X_test"]), n_test, seed)
    as_x = lambda a: torch.from_numpy(a).float().div(255)[:, None]  # noqa: E731
    return {
        "x_train": as_x(data["X_train"][tr]), "y_train": torch.from_numpy(data["y_train"][tr]),
        "x_test": as_x(data["X_test"][te]), "y_test": torch.from_numpy(data["y_test"][te]),
    }  # fmt: skip


def new_model(kind: str, config, seed: int) -> nn.Module:
    """A freshly initialised model; the global RNG is forked so init is seeded and side-effect free."""
    upsample = ref.ConvTranspose2d if config.upsample == "ours" else nn.ConvTranspose2d
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "dense-2":
            return ref.DenseAutoencoder(2, config.hidden)
        if kind == "dense":
            return ref.DenseAutoencoder(config.dense_latent, config.hidden)
        return ref.ConvAutoencoder(config.latent_channels, tuple(config.channels), upsample)


def fit(
    model: nn.Module, x: torch.Tensor, epochs: int, config, ctx: RunContext, name: str,
    corruption: str | None = None,
) -> dict:  # fmt: skip
    """Adam on shuffled mini-batches with `ref.train_step`; the per-batch losses and CPU time.

    A loss that turns NaN or infinite stops the run with the fix (a smaller learning rate)."""
    gen = torch.Generator().manual_seed(config.seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses, cpu0, wall0 = [], time.process_time(), time.perf_counter()
    model.train()
    for epoch in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        starts = range(0, len(x), config.batch_size)
        for start in ctx.track(starts, f"{name}: epoch {epoch + 1}/{epochs}"):
            batch = x[order[start : start + config.batch_size]]
            loss = ref.train_step(
                model, optimizer, batch, config.loss, corruption, config.noise_level, gen
            )
            if not math.isfinite(loss):
                raise AiroadError(
                    f"{name} diverged (loss {loss}) in epoch {epoch + 1}: lower lr "
                    f"(now {config.lr}) with --set lr=..."
                )
            losses.append(loss)
    model.eval()
    return {
        "losses": losses,
        "cpu_seconds": time.process_time() - cpu0,
        "wall_seconds": time.perf_counter() - wall0,
    }


@torch.no_grad()
def batched(fn, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    """``fn`` applied to x in chunks (no gradients), concatenated."""
    return torch.cat([fn(x[i : i + batch]) for i in range(0, len(x), batch)])


def reconstruct(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Reconstructions in [0, 1] (sigmoid of the decoder's logits)."""
    return batched(lambda b: torch.sigmoid(model(b)), x)


def loss_scores(model: nn.Module, x_in: torch.Tensor, target: torch.Tensor) -> dict:
    """Per-pixel MSE, and our summed BCE per image beside torch's F.binary_cross_entropy."""
    logits = batched(model, x_in)
    probs = torch.sigmoid(logits)
    torch_bce = nn.functional.binary_cross_entropy(probs, target, reduction="sum") / len(target)
    return {
        "mse": float((probs - target).pow(2).mean()),
        "bce": float(ref.bce_with_logits(logits, target)),
        "bce_torch": float(torch_bce),
    }


# ---------------------------------------------------------------- artifacts


class ScaledEncoder(nn.Module):
    """Images in [0, 1] -> codes standardised per channel: ``(encoder(x) - mean) / std``."""

    def __init__(self, net: nn.Module, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("mean", mean.reshape(-1, 1, 1).clone())
        self.register_buffer("std", std.reshape(-1, 1, 1).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (self.net(x) - self.mean) / self.std


class ScaledDecoder(ScaledEncoder):
    """Standardised codes -> images in [0, 1]: ``sigmoid(decoder(z std + mean))``."""

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(z * self.std + self.mean))


def _trace(module: nn.Module, example: torch.Tensor, path: Path) -> None:
    # the shapes the transposed conv reads become constants: fine, the image size is fixed
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.jit.save(torch.jit.trace(module.eval(), example, check_trace=False), str(path))


def autoencoder_writer(model, codes: torch.Tensor, spec: dict):
    """Writes encoder.pt / decoder.pt (TorchScript, codes standardised per channel) + lab.json."""
    mean, std = codes.mean((0, 2, 3)), codes.std((0, 2, 3)).clamp(min=1e-6)

    def write(folder: Path) -> None:
        _trace(
            ScaledEncoder(model.encoder, mean, std), torch.rand(2, 1, 28, 28), folder / "encoder.pt"
        )
        _trace(ScaledDecoder(model.decoder, mean, std), torch.randn(2, *model.latent_shape),
               folder / "decoder.pt")  # fmt: skip
        info = spec | {
            "latent_shape": list(model.latent_shape),
            "latent_mean": mean.tolist(), "latent_std": std.tolist(),
            "encoder": "images (n, 1, 28, 28) in [0, 1] -> standardised codes (raw - mean) / std",
            "decoder": "standardised codes -> images (n, 1, 28, 28) in [0, 1]",
        }  # fmt: skip
        (folder / "lab.json").write_text(json.dumps(info, indent=2), "utf-8")

    return write


def generator_writer(sampler: ref.LatentSampler, spec: dict):
    """Writes generator.pt (noise (n, d) -> images in [0, 1]) + lab.json for TorchScriptGenerator."""

    def write(folder: Path) -> None:
        _trace(sampler, torch.randn(2, sampler.mean.shape[0]), folder / "generator.pt")
        info = {"kind": "image-generator", "latent_dim": int(sampler.mean.shape[0]),
                "n_labels": 0, "output_range": [0.0, 1.0]} | spec  # fmt: skip
        (folder / "lab.json").write_text(json.dumps(info, indent=2), "utf-8")

    return write


# ---------------------------------------------------------------- figures


def _grid(ax, imgs: torch.Tensor, rows: int, title: str) -> None:
    """Tile (rows * cols, 1, 28, 28) images into one grey picture on ``ax``."""
    cols = len(imgs) // rows
    tiles = imgs[: rows * cols, 0].reshape(rows, cols, 28, 28).permute(0, 2, 1, 3)
    ax.imshow(tiles.reshape(rows * 28, cols * 28).numpy(), cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=9)
    ax.axis("off")


def strips_figure(ctx: RunContext, name: str, strips: dict[str, torch.Tensor], title: str) -> None:
    """One row of images per labelled strip (all strips the same length)."""
    with figure(ctx, name, len(strips), 1, figsize=(9, 1.1 * len(strips) + 0.4)) as (fig, axes):
        for ax, (label, imgs) in zip(np.atleast_1d(axes), strips.items(), strict=True):
            _grid(ax, imgs, 1, label)
        fig.suptitle(title, fontsize=10)


def samples_figure(ctx: RunContext, name: str, panels: dict[str, torch.Tensor]) -> None:
    """Side-by-side 8x8 grids (e.g. real test digits next to decoded Gaussian draws)."""
    with figure(ctx, name, 1, len(panels), figsize=(3.6 * len(panels), 3.9)) as (_, axes):
        for ax, (label, imgs) in zip(np.atleast_1d(axes), panels.items(), strict=True):
            _grid(ax, imgs[:64], 8, label)


def latent_map_figure(ctx: RunContext, model, x: torch.Tensor, y: torch.Tensor, grid: int) -> None:
    """The 2-d codes of test digits coloured by class, and the decoder's picture of that plane."""
    z = batched(model.encode, x).numpy()
    lo, hi = np.percentile(z, 2, axis=0), np.percentile(z, 98, axis=0)
    with figure(ctx, "latent_map", 1, 2, figsize=(12, 5.6)) as (_, (ax0, ax1)):
        points = ax0.scatter(z[:, 0], z[:, 1], c=y.numpy(), cmap="tab10", s=3, alpha=0.7)
        ax0.legend(*points.legend_elements(), title="digit", fontsize=7, loc="best")
        ax0.set(xlim=(lo[0], hi[0]), ylim=(lo[1], hi[1]), xlabel="z1", ylabel="z2",
                title="test digits in the 2-d code of the dense autoencoder")  # fmt: skip
        u, v = np.linspace(lo[0], hi[0], grid), np.linspace(hi[1], lo[1], grid)
        codes = torch.tensor([[a, b] for b in v for a in u], dtype=torch.float32)
        _grid(ax1, reconstruct_codes(model, codes), grid, "decoded grid over the same box")


def reconstruct_codes(model, z: torch.Tensor) -> torch.Tensor:
    """Decoded images in [0, 1] of codes z."""
    return batched(lambda b: torch.sigmoid(model.decode(b)), z)


def curves_figure(ctx: RunContext, runs: dict[str, dict], window: int) -> None:
    """Training loss per batch (moving average) of every model."""
    with figure(ctx, "training_curves", figsize=(7, 4.2)) as (_, ax):
        for label, run in runs.items():
            loss = np.asarray(run["losses"])
            w = max(1, min(window, len(loss) // 5))
            ax.plot(np.convolve(loss, np.ones(w) / w, mode="valid"), label=label)
        ax.set(xlabel="batch", ylabel="loss per image (sum over pixels)", yscale="log",
               title=f"training loss (moving average over {window} batches)")  # fmt: skip
        ax.legend(fontsize=8)
