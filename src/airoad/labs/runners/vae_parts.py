"""Parts of the vae runner: binarised MNIST, seeded training, the evaluation of the ELBO and the
importance-weighted bound beside torch.distributions on the same noise, the saved generator
(TorchScript decoder) and the figures."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch import distributions as D

from airoad.errors import AiroadError
from airoad.generative import vae as ref
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure

SIDE = 28


def binarize(images: np.ndarray, mode: str, generator: torch.Generator) -> Tensor:
    """uint8 (n, 28, 28) -> float (n, 784) in {0, 1}: pixel > 127 ("threshold"), or each pixel
    drawn as Bernoulli(intensity / 255) from the seeded generator ("stochastic")."""
    x = torch.from_numpy(images.reshape(len(images), -1)).float().div(255)
    return (x > 0.5).float() if mode == "threshold" else torch.bernoulli(x, generator=generator)


# ---------------------------------------------------------------- torch.distributions twins


def torch_elbo(x: Tensor, logits: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """The ELBO from torch.distributions: Bernoulli log_prob minus kl_divergence to N(0, I)."""
    q = D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1)
    prior = D.Independent(D.Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    return D.Independent(D.Bernoulli(logits=logits), 1).log_prob(x) - D.kl_divergence(q, prior)


def torch_log_weights(x: Tensor, logits: Tensor, z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """log p(x|z) + log p(z) - log q(z|x) from torch.distributions' log_prob, shape (k, n)."""
    q = D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1)
    prior = D.Independent(D.Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    log_px = D.Independent(D.Bernoulli(logits=logits), 1).log_prob(x.expand_as(logits))
    return log_px + prior.log_prob(z) - q.log_prob(z)


# ---------------------------------------------------------------- training


def train(config: Any, x_images: np.ndarray, ctx: RunContext) -> tuple[ref.VAE, list[dict]]:
    """Adam on -ELBO; with "stochastic" binarisation the images are redrawn every epoch
    (dynamic binarisation). Returns the model and one row per epoch."""
    gen = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)  # the initial weights
    model = ref.VAE(SIDE * SIDE, tuple(config.hidden), config.latent_dim)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    fixed = binarize(x_images, config.binarize, gen)
    history, cpu0, wall0 = [], time.process_time(), time.perf_counter()
    for epoch in ctx.track(range(config.epochs), "training the VAE"):
        x = (
            fixed
            if config.binarize == "threshold" or epoch == 0
            else binarize(x_images, "stochastic", gen)
        )
        order, sums = torch.randperm(len(x), generator=gen), np.zeros(2)
        for start in range(0, len(x), config.batch_size):
            xb = x[order[start : start + config.batch_size]]
            logits, _, mu, logvar = model(xb, 1, gen)
            recon, kl = ref.bernoulli_log_likelihood(logits[0], xb), ref.gaussian_kl(mu, logvar)
            loss = (kl - recon).mean()  # -ELBO, nats per image
            if not torch.isfinite(loss):
                raise AiroadError(
                    f"training diverged at epoch {epoch + 1} (loss {loss.item()}): "
                    f"lower --set lr (now {config.lr})"
                )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sums += [-recon.sum().item(), kl.sum().item()]
        history.append(
            {
                "epoch": epoch + 1,
                "train_neg_elbo": float(sums.sum() / len(x)),
                "train_recon_nats": float(sums[0] / len(x)),
                "train_kl_nats": float(sums[1] / len(x)),
                "cpu_seconds": time.process_time() - cpu0,
                "wall_seconds": time.perf_counter() - wall0,
            }
        )
    return model.eval(), history


# ---------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(model: ref.VAE, x: Tensor, k: int, seed: int, ctx: RunContext):
    """k latents per test image; ours and torch.distributions' log-weights and ELBOs on the same
    noise. Returns log-weights (k, n) of both, per-image ELBO and KL of both, and mu (n, L)."""
    gen = torch.Generator().manual_seed(seed)
    batch = max(1, 10_000 // k)  # about 10,000 decoded images (31 MB of logits) at a time
    out: dict[str, list[Tensor]] = {
        n: [] for n in ("w", "w_torch", "elbo", "elbo_torch", "kl", "mu")
    }
    for start in ctx.track(range(0, len(x), batch), f"importance weights ({k} per image)"):
        xb = x[start : start + batch]
        logits, z, mu, logvar = model(xb, k, gen)
        out["w"].append(ref.log_importance_weights(xb, logits, z, mu, logvar))
        out["w_torch"].append(torch_log_weights(xb, logits, z, mu, logvar))
        out["elbo"].append(ref.elbo(xb, logits[0], mu, logvar))
        out["elbo_torch"].append(torch_elbo(xb, logits[0], mu, logvar))
        out["kl"].append(ref.gaussian_kl(mu, logvar))
        out["mu"].append(mu)
    return {
        name: torch.cat(parts, dim=1 if name.startswith("w") else 0) for name, parts in out.items()
    }


def iw_by_k(log_w: Tensor, log_w_torch: Tensor) -> list[dict]:
    """The bound for the first k samples of each image, k = 1, 2, 5, 10, ... up to all of them."""
    ks = [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if k < len(log_w)]
    rows = []
    for k in [*ks, len(log_w)]:
        per_image = ref.log_mean_exp(log_w[:k]).double()
        rows.append(
            {
                "k": k,
                "log_likelihood": float(per_image.mean()),
                "std_error": float(per_image.std() / np.sqrt(len(per_image)))
                if len(per_image) > 1
                else 0.0,
                "torch_log_likelihood": float(ref.log_mean_exp(log_w_torch[:k]).double().mean()),
            }
        )
    return rows


def active_units(mu: Tensor, threshold: float = 0.01) -> tuple[int, np.ndarray]:
    """Latent units whose posterior mean varies across images (variance > threshold, Burda et
    al.), and every unit's variance; an inactive unit is ignored by the decoder."""
    var = mu.double().var(dim=0).numpy()
    return int((var > threshold).sum()), var


class BernoulliMeans(nn.Module):
    """The saved generator: latents (n, L) -> Bernoulli means (n, 1, 28, 28) in [0, 1]."""

    def __init__(self, model: ref.VAE):
        super().__init__()
        self.decoder, self.to_logits = model.decoder, model.to_logits

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.to_logits(self.decoder(z))).reshape(-1, 1, 28, 28)


def generator_writer(model: ref.VAE, config: Any, metrics: dict) -> Callable[[Path], None]:
    """Writes ``generator.pt`` (`BernoulliMeans` traced to TorchScript) and ``lab.json`` (the serving
    contract: kind, latent_dim, n_labels 0, output_range [0, 1])."""

    def write(folder: Path) -> None:
        # trace, not script: tracing needs no source file, only one example batch
        example = torch.zeros(2, config.latent_dim)
        torch.jit.trace(BernoulliMeans(model).eval(), example).save(str(folder / "generator.pt"))
        spec = {
            "kind": "image-generator",
            "latent_dim": config.latent_dim,
            "n_labels": 0,
            "output_range": [0.0, 1.0],
            "dataset": "mnist",
            "binarize": config.binarize,
            "iw_log_likelihood": metrics["iw_log_likelihood"],
            "yardstick_score": metrics["yardstick_score"],
        }
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def _grid(images: np.ndarray, rows: int, cols: int) -> np.ndarray:
    """(rows * cols, 784) -> one (rows * 28, cols * 28) mosaic."""
    tiles = images[: rows * cols].reshape(rows, cols, SIDE, SIDE)
    return tiles.transpose(0, 2, 1, 3).reshape(rows * SIDE, cols * SIDE)


def curves_figure(history: list[dict], rows: list[dict], test_elbo: float, ctx: RunContext) -> None:
    ep = [h["epoch"] for h in history]
    with figure(ctx, "training_curves", 1, 3, figsize=(13, 3.8)) as (_, ax):
        ax[0].plot(ep, [h["train_neg_elbo"] for h in history], "o-", label="train -ELBO")
        ax[0].axhline(-test_elbo, color="r", ls=":", label=f"test -ELBO {-test_elbo:.1f}")
        ax[0].set(xlabel="epoch", ylabel="nats per image", title="negative ELBO")
        ax[0].legend()
        ax[1].plot(ep, [h["train_recon_nats"] for h in history], "o-", label="-log p(x|z)")
        ax[1].plot(ep, [h["train_kl_nats"] for h in history], "s-", label="KL(q || p)")
        ax[1].set(xlabel="epoch", ylabel="nats per image", title="the two terms (train)")
        ax[1].legend()
        ks = [r["k"] for r in rows]  # paired: every k reuses the same first samples
        ax[2].plot(ks, [r["log_likelihood"] for r in rows], "o-", label="k-sample bound")
        ax[2].axhline(test_elbo, color="r", ls=":", label="ELBO (closed-form KL)")
        ax[2].set(xscale="log", xlabel="importance samples k per image", ylabel="nats per image")
        ax[2].set_title("test log p(x) bound vs k")
        ax[2].legend()


def image_figures(
    model: ref.VAE, samples: np.ndarray, x_test: Tensor, order: np.ndarray, ctx: RunContext
) -> None:
    """samples.png (8x8 prior samples), reconstructions.png, traversals.png (the 8 most active
    units of one test digit's mean, each swept over -3..3)."""
    with figure(ctx, "samples", figsize=(6, 6)) as (fig, ax):
        ax.imshow(_grid(samples, 8, 8), cmap="gray", vmin=0, vmax=1)
        ax.axis("off")
        fig.suptitle("decoder means for z ~ N(0, I)")
    with torch.no_grad():
        mu, _ = model.encode(x_test[:12])
        recon = torch.sigmoid(model.decode(mu)).numpy()
        units = order[:8]
        steps = torch.linspace(-3.0, 3.0, 9)
        z = mu[:1].repeat(len(units) * len(steps), 1)
        z[torch.arange(len(z)), torch.from_numpy(np.repeat(units, len(steps)))] = steps.repeat(
            len(units)
        )
        sweep = torch.sigmoid(model.decode(z)).numpy()
    with figure(ctx, "reconstructions", figsize=(10, 2)) as (fig, ax):
        ax.imshow(
            _grid(np.concatenate([x_test[:12].numpy(), recon]), 2, 12), cmap="gray", vmin=0, vmax=1
        )
        ax.axis("off")
        fig.suptitle("binarised test digits (top) and decoder means at z = mu (bottom)")
    with figure(ctx, "traversals", figsize=(6, 6)) as (fig, ax):
        ax.imshow(_grid(sweep, len(units), len(steps)), cmap="gray", vmin=0, vmax=1)
        ax.set_xticks(np.arange(len(steps)) * SIDE + SIDE / 2, [f"{s:.1f}" for s in steps.tolist()])
        ax.set_yticks(np.arange(len(units)) * SIDE + SIDE / 2, [f"z{u}" for u in units])
        ax.set_xlabel("value of the unit (others at the first test digit's mean)")
        fig.suptitle("latent traversals, most active units first")
