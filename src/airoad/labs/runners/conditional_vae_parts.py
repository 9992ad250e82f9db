"""Parts of the conditional_vae runner: seeded training on binarised MNIST with its labels, the
test ELBO beside torch.distributions, class-conditional samples and style swaps, the saved
conditional generator (TorchScript) and the figures. Binarisation, the torch.distributions ELBO
and the image mosaic come from the vae runner's parts, unchanged."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from airoad.errors import AiroadError
from airoad.generative import conditional_vae as ref
from airoad.generative.vae import gaussian_kl
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.labs.runners.vae_parts import SIDE, binarize, torch_elbo
from airoad.labs.runners.vae_parts import _grid as grid

N_CLASSES = 10

# ---------------------------------------------------------------- training and evaluation


@torch.no_grad()
def test_scores(model: ref.ConditionalVAE, x: Tensor, y: Tensor, seed: int) -> dict[str, float]:
    """Mean test ELBO, its KL and reconstruction terms (nats per image) for one z per image, ours
    (`model.elbo`) beside torch.distributions on the same noise, and their largest difference."""
    ours = model.elbo(x, y, torch.Generator().manual_seed(seed)).double()
    logits, _, mu, logvar = model(x, y, 1, torch.Generator().manual_seed(seed))
    theirs = torch_elbo(x, logits[0], mu, logvar).double()
    kl = float(gaussian_kl(mu, logvar).double().mean())
    return {
        "test_elbo": float(ours.mean()),
        "torch_test_elbo": float(theirs.mean()),
        "elbo_max_abs_diff": float((ours - theirs).abs().max()),
        "test_kl": kl,
        "test_recon": float(ours.mean()) + kl,
    }


def train(
    config: Any,
    x_images: np.ndarray,
    labels: np.ndarray,
    test: tuple[Tensor, Tensor],
    ctx: RunContext,
) -> tuple[ref.ConditionalVAE, list[dict]]:
    """Adam on -ELBO with `ref.train_step`, images redrawn every epoch under "stochastic"
    binarisation (dynamic binarisation). Returns the model and one row per epoch (train and
    test -ELBO, test KL, CPU and wall seconds so far)."""
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the initial weights
    model = ref.ConditionalVAE(SIDE * SIDE, N_CLASSES, tuple(config.hidden), config.latent_dim)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    y_all, fixed = torch.from_numpy(labels).long(), binarize(x_images, config.binarize, gen)
    history, cpu0, wall0 = [], time.process_time(), time.perf_counter()
    for epoch in ctx.track(range(config.epochs), "training the conditional VAE"):
        x = (
            fixed
            if config.binarize == "threshold" or epoch == 0
            else binarize(x_images, "stochastic", gen)
        )
        order, total = torch.randperm(len(x), generator=gen), 0.0
        for start in range(0, len(x), config.batch_size):
            idx = order[start : start + config.batch_size]
            loss = ref.train_step(model, opt, x[idx], y_all[idx], gen)
            if not np.isfinite(loss):
                raise AiroadError(
                    f"training diverged at epoch {epoch + 1} (loss {loss}): lower --set lr "
                    f"(now {config.lr})"
                )
            total += loss * len(idx)
        scores = test_scores(model.eval(), *test, seed=config.seed + 4)
        model.train()
        history.append(
            {
                "epoch": epoch + 1,
                "train_neg_elbo": total / len(x),
                "test_neg_elbo": -scores["test_elbo"],
                "test_kl_nats": scores["test_kl"],
                "cpu_seconds": time.process_time() - cpu0,
                "wall_seconds": time.perf_counter() - wall0,
            }
        )
    return model.eval(), history


def class_samples(
    model: ref.ConditionalVAE, n_per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """n_per_class prior samples of every digit: Bernoulli means (10 n, 784) and their labels,
    ordered 0, 1, ..., 9, 0, 1, ... so any prefix of 10 m images holds m of each class."""
    labels = torch.arange(N_CLASSES).repeat(n_per_class)
    images = model.sample(labels, torch.Generator().manual_seed(seed))
    return images.numpy(), labels.numpy()


@torch.no_grad()
def style_swaps(model: ref.ConditionalVAE, x: Tensor, y: Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Each image's posterior mean z = mu(x, y) decoded under all ten labels: Bernoulli means
    (n, 10, 784) and the asked-for labels (n, 10)."""
    mu, _ = model.encode(x, y)
    z = mu[:, None].expand(-1, N_CLASSES, -1).reshape(-1, model.latent_dim)
    asked = torch.arange(N_CLASSES).repeat(len(x))
    images = torch.sigmoid(model.decode(z, asked)).reshape(len(x), N_CLASSES, -1)
    return images.numpy(), asked.reshape(len(x), N_CLASSES).numpy()


# ---------------------------------------------------------------- the saved generator


class ConditionalMeans(nn.Module):
    """The saved generator: (z (n, L), labels (n,) long) -> Bernoulli means (n, 1, 28, 28)."""

    def __init__(self, model: ref.ConditionalVAE):
        super().__init__()
        self.model = model

    def forward(self, z: Tensor, labels: Tensor) -> Tensor:
        return torch.sigmoid(self.model.decode(z, labels)).reshape(-1, 1, SIDE, SIDE)


def generator_writer(
    model: ref.ConditionalVAE, config: Any, metrics: dict
) -> Callable[[Path], None]:
    """Writes ``generator.pt`` (`ConditionalMeans` traced to TorchScript) and ``lab.json`` (the
    serving contract: kind, latent_dim, n_labels 10, output_range [0, 1])."""

    def write(folder: Path) -> None:
        # trace, not script: no source file needed; one_hot's class count is a constant
        example = (torch.zeros(2, config.latent_dim), torch.tensor([0, 9]))
        traced = torch.jit.trace(ConditionalMeans(model).eval(), example)
        traced.save(str(folder / "generator.pt"))
        spec = {
            "kind": "image-generator",
            "latent_dim": config.latent_dim,
            "n_labels": N_CLASSES,
            "output_range": [0.0, 1.0],
            "dataset": "mnist",
            "binarize": config.binarize,
            "test_elbo": metrics["test_elbo"],
            "class_accuracy_mean": metrics["class_accuracy_mean"],
            "yardstick_score": metrics["yardstick_score"],
        }
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def curves_figure(history: list[dict], ctx: RunContext) -> None:
    ep = [h["epoch"] for h in history]
    with figure(ctx, "training_curves", 1, 2, figsize=(10, 3.8)) as (_, ax):
        ax[0].plot(ep, [h["train_neg_elbo"] for h in history], "o-", label="train")
        ax[0].plot(ep, [h["test_neg_elbo"] for h in history], "s-", label="test")
        ax[0].set(xlabel="epoch", ylabel="nats per image", title="-ELBO = -log p(x|z,y) + KL")
        ax[0].legend()
        ax[1].plot(ep, [h["test_kl_nats"] for h in history], "o-", color="C2")
        ax[1].set(xlabel="epoch", ylabel="nats per image", title="KL(q(z|x,y) || N(0, I)), test")


def samples_figure(images: np.ndarray, n_cols: int, ctx: RunContext) -> None:
    """samples_by_class.png: row d holds n_cols samples asked for digit d (images ordered 0..9, 0..9, ...)."""
    by_row = images[: N_CLASSES * n_cols].reshape(n_cols, N_CLASSES, -1).transpose(1, 0, 2)
    with figure(ctx, "samples_by_class", figsize=(7, 7)) as (fig, ax):
        ax.imshow(
            grid(by_row.reshape(-1, SIDE * SIDE), N_CLASSES, n_cols), cmap="gray", vmin=0, vmax=1
        )
        ax.set_xticks([])
        ax.set_yticks(np.arange(N_CLASSES) * SIDE + SIDE / 2, [str(d) for d in range(N_CLASSES)])
        ax.set_ylabel("label given to the decoder")
        fig.suptitle("decoder means for z ~ N(0, I), one row per label")


def swap_figure(originals: np.ndarray, swaps: np.ndarray, ctx: RunContext) -> None:
    """style_swap.png: each row a test digit, then its z = mu(x, y) decoded under labels 0..9."""
    rows = np.concatenate([originals[:, None], swaps], axis=1)  # (n, 11, 784)
    with figure(ctx, "style_swap", figsize=(8, 0.75 * len(rows) + 0.8)) as (fig, ax):
        ax.imshow(
            grid(rows.reshape(-1, SIDE * SIDE), len(rows), N_CLASSES + 1),
            cmap="gray",
            vmin=0,
            vmax=1,
        )
        ax.set_xticks(
            np.arange(N_CLASSES + 1) * SIDE + SIDE / 2, ["test digit", *map(str, range(N_CLASSES))]
        )
        ax.set_yticks([])
        ax.set_xlabel("label given to the decoder (z fixed along each row)")
        fig.suptitle("one style, ten digits: the encoder's z of a test digit under every label")


def accuracy_figure(rows: list[dict], ctx: RunContext) -> None:
    d = np.arange(N_CLASSES)
    with figure(ctx, "class_accuracy", figsize=(8, 3.6)) as (_, ax):
        for shift, key, name in (
            (-0.27, "real_accuracy", "real test digits"),
            (0.0, "sample_accuracy", "prior samples"),
            (0.27, "swap_accuracy", "style swaps"),
        ):
            ax.bar(d + shift, [r[key] for r in rows], width=0.27, label=name)
        ax.set(
            xticks=d, xlabel="digit asked for", ylabel="classified as that digit", ylim=(0, 1.05)
        )
        ax.legend(loc="lower left")
