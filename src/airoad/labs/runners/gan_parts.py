"""The gan runner's pieces: seeded adversarial training with a log of the dynamics, mode coverage
under the yardstick's classifier, the saved generator, and the figures."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from airoad.generative import gan as ref
from airoad.generative.metrics import Yardstick, check_images
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure

COVERAGE_SAMPLES = 1000  # the classifier's class histogram is always of this many samples
COVERAGE_SEED = 12345  # one fixed noise batch, so coverage over training compares like with like


@dataclass(frozen=True)
class Variant:
    """One training run: which collapse remedy is on (none for the plain run)."""

    name: str
    minibatch_std: bool = False
    real_label: float = 1.0
    d_lr_factor: float = 1.0


@dataclass
class Trained:
    """A finished run: the generator, its logged dynamics and coverage over training."""

    variant: Variant
    generator: ref.Generator
    log: list[dict[str, float]] = field(default_factory=list)
    coverage: list[dict[str, Any]] = field(default_factory=list)
    bce_max_abs_diff: float = 0.0


def variants(config: Any) -> list[Variant]:
    """The plain run and the run with the configured fix (the same seed, data and steps)."""
    fix = config.fix
    fixed = Variant(
        name=fix,
        minibatch_std=fix in ("minibatch-std", "both"),
        real_label=config.real_label if fix in ("label-smoothing", "both") else 1.0,
        d_lr_factor=config.d_lr_factor if fix == "lower-d-lr" else 1.0,
    )
    return [Variant("plain"), fixed]


def images(dataset: dict, train_images: int) -> torch.Tensor:
    """Training images as float32 (n, 1, 28, 28) in [-1, 1], the generator's tanh range."""
    x = dataset["X_train"] if train_images == 0 else dataset["X_train"][:train_images]
    return torch.from_numpy(x).float().div(127.5).sub(1.0)[:, None]


@torch.no_grad()
def classify(ys: Yardstick, pictures: torch.Tensor) -> torch.Tensor:
    """The yardstick classifier's labels (n,) for images in [0, 1]."""
    x = check_images(pictures, "generated images")
    return torch.cat([ys.model(x[i : i + 500]).argmax(1) for i in range(0, len(x), 500)])


def coverage(ys: Yardstick, generator: ref.Generator, step: int) -> dict[str, Any]:
    """Yardstick score, mean pixel, class histogram, entropy and classes covered of
    COVERAGE_SAMPLES fixed-noise samples."""
    pictures = ref.sample(generator, COVERAGE_SAMPLES, COVERAGE_SEED)
    out = ref.class_coverage(classify(ys, pictures))
    score = ys.score(pictures, n=COVERAGE_SAMPLES)
    mean = float(pictures.mean())  # G learns the black background first: this falls early
    return {
        "step": step,
        "score": score,
        "mean_pixel": mean,
        **out,
        "counts": out["counts"].tolist(),
    }


def _grad_norms(gen: ref.Generator, disc: ref.Discriminator, z: torch.Tensor) -> dict[str, float]:
    """Norm of G's gradient under each G loss on the same noise, D as it is now."""
    logits = disc(gen(z))
    out = {}
    for name, loss in ref.GENERATOR_LOSSES.items():
        grads = torch.autograd.grad(loss(logits), list(gen.parameters()), retain_graph=True)
        out[f"grad_{name}"] = float(torch.sqrt(sum((g * g).sum() for g in grads)))
    disc.zero_grad(set_to_none=True)
    return out


def _bce_diff(disc: ref.Discriminator, real: torch.Tensor, fake: torch.Tensor, t: float) -> float:
    """|our D loss - torch's BCE-with-logits form| on a real batch: the library check."""
    with torch.no_grad():
        r, f = disc(real), disc(fake)
        ours = ref.discriminator_loss(r, f, t)
        torch_form = F.binary_cross_entropy_with_logits(r, torch.full_like(r, t))
        torch_form = torch_form + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
    return abs(float(ours) - float(torch_form))


def train(
    x: torch.Tensor, variant: Variant, config: Any, ys: Yardstick, ctx: RunContext
) -> Trained:
    """Seeded alternating D and G steps; every log_every steps the mean losses, D(x), D(G(z)),
    G's gradient norm under both G losses; every eval_every steps the class coverage."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = ref.Generator(config.latent_dim, config.g_hidden)
        disc = ref.Discriminator(config.d_hidden, use_minibatch_std=variant.minibatch_std)
    betas = (config.beta1, 0.999)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_g, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d * variant.d_lr_factor, betas=betas)
    rng = torch.Generator().manual_seed(config.seed)
    probe = torch.randn(256, config.latent_dim, generator=torch.Generator().manual_seed(7))
    run, window = Trained(variant, gen), []
    run.coverage.append(coverage(ys, gen, 0))
    b = config.batch_size
    for step in ctx.track(range(1, config.steps + 1), f"training the GAN ({variant.name})"):
        real = x[torch.randint(len(x), (b,), generator=rng)]
        z_d, z_g = torch.randn(2, b, config.latent_dim, generator=rng)
        d = ref.discriminator_step(gen, disc, opt_d, real, z_d, variant.real_label)
        g = ref.generator_step(gen, disc, opt_g, z_g, config.g_loss)
        window.append([d["d_loss"], g["g_loss"], d["d_real"], d["d_fake"]])
        if step % config.log_every == 0 or step == config.steps:
            means = np.mean(window, axis=0)
            keys = ("d_loss", "g_loss", "d_real", "d_fake")
            run.log.append({"step": step, **dict(zip(keys, means.tolist()))})
            run.log[-1] |= _grad_norms(gen, disc, probe)
            window = []
        if step % config.eval_every == 0 or step == config.steps:
            run.coverage.append(coverage(ys, gen, step))
    fake = gen(z_d).detach()
    run.bce_max_abs_diff = _bce_diff(disc, real, fake, variant.real_label)
    return run


def generator_writer(gen: ref.Generator, dataset: str, score: float) -> Callable[[Path], None]:
    """Writes generator.pt (TorchScript trace: (n, latent_dim) noise -> (n, 1, 28, 28) in
    [-1, 1]) and lab.json (the serving contract of an unconditional image generator)."""

    def write(folder: Path) -> None:
        was_training = gen.training
        gen.eval()
        example = torch.zeros(2, gen.latent_dim)
        with torch.no_grad():
            traced = torch.jit.trace(gen, example)
        gen.train(was_training)
        traced.save(str(folder / "generator.pt"))
        spec = {
            "kind": "image-generator",
            "latent_dim": gen.latent_dim,
            "n_labels": 0,
            "output_range": [-1.0, 1.0],
            "dataset": dataset,
            "module": "airoad.generative.gan.Generator",
            "yardstick_score": score,
        }
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def _grid(pictures: torch.Tensor, rows: int = 8) -> np.ndarray:
    """(rows*cols, 1, 28, 28) images as one (rows*28, cols*28) array."""
    x = pictures[: rows * rows, 0].numpy()
    return x.reshape(rows, rows, 28, 28).transpose(0, 2, 1, 3).reshape(rows * 28, rows * 28)


def samples_figure(runs: list[Trained], scores: dict[str, float], ctx: RunContext) -> None:
    """64 samples of each run side by side, titled with its yardstick score."""
    with figure(ctx, "samples", 1, len(runs), figsize=(4.2 * len(runs), 4.6)) as (fig, axes):
        for ax, run in zip(np.atleast_1d(axes), runs):
            ax.imshow(_grid(ref.sample(run.generator, 64, seed=0)), cmap="gray", vmin=0, vmax=1)
            ax.set_title(f"{run.variant.name}: score {scores[run.variant.name]:.0f}")
            ax.axis("off")
        fig.suptitle("GAN samples (seeded noise)")


def dynamics_figure(runs: list[Trained], ctx: RunContext) -> None:
    """Losses, D(x) and D(G(z)), and G's gradient norm under both G losses, over steps."""
    with figure(ctx, "training_dynamics", 1, 3, figsize=(15, 4.2)) as (fig, axes):
        for run, style in zip(runs, ("-", "--")):
            steps = [r["step"] for r in run.log]
            tag = run.variant.name
            for key, colour in (("d_loss", "C0"), ("g_loss", "C1")):
                axes[0].plot(
                    steps, [r[key] for r in run.log], style, c=colour, label=f"{key} {tag}"
                )
            for key, colour in (("d_real", "C2"), ("d_fake", "C3")):
                label = {"d_real": "D(x)", "d_fake": "D(G(z))"}[key] + f" {tag}"
                axes[1].plot(steps, [r[key] for r in run.log], style, c=colour, label=label)
            for key, colour in (("grad_nonsaturating", "C4"), ("grad_minimax", "C5")):
                axes[2].plot(
                    steps, [r[key] for r in run.log], style, c=colour, label=f"{key[5:]} {tag}"
                )
        axes[0].set(title="losses (mean per logged window)", xlabel="step")
        axes[1].set(title="discriminator outputs", xlabel="step", ylim=(0, 1))
        axes[2].set(title="|grad of G| under each G loss", xlabel="step", yscale="log")
        for ax in axes:
            ax.legend(fontsize=7)


def collapse_figure(runs: list[Trained], ctx: RunContext) -> None:
    """Class entropy over training for each run, and each run's final class histogram."""
    with figure(ctx, "mode_collapse", 1, 2, figsize=(12, 4.2)) as (fig, axes):
        width = 0.8 / len(runs)
        for i, run in enumerate(runs):
            cov = run.coverage
            axes[0].plot([c["step"] for c in cov], [c["entropy_bits"] for c in cov], "o-",
                         label=run.variant.name)  # fmt: skip
            final = cov[-1]
            label = f"{run.variant.name}: {final['entropy_bits']:.2f} bits, {final['covered']}/10"
            axes[1].bar(np.arange(10) + i * width, final["counts"], width, label=label)
        axes[0].axhline(np.log2(10), c="grey", ls=":", label="all ten equally (3.32)")
        axes[0].set(title="class entropy of 1,000 samples", xlabel="step", ylabel="bits")
        axes[1].set(title="final class histogram (yardstick classifier)", xlabel="digit",
                    ylabel="samples", xticks=np.arange(10) + 0.4 * (1 - width))  # fmt: skip
        axes[1].set_xticklabels(range(10))
        for ax in axes:
            ax.legend(fontsize=8)
