"""The conditional-gan runner's pieces: seeded label-conditioned adversarial training with a log of
the dynamics, conditional accuracy under the yardstick's classifier, the discriminator's own
label sense, the saved conditional generator, and the figures."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from airoad.generative import conditional_gan as ref
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.labs.runners import gan_parts

N_CLASSES = 10
PER_CLASS = 100  # 1,000 samples, 100 per class: the yardstick's sample count
EVAL_SEED = 12345  # one fixed noise batch, so evaluations over training compare like with like
KINDS = ("projection", "concat")


@dataclass
class Trained:
    """A finished run: the generator, the discriminator, the logged dynamics and evaluations."""

    kind: str
    generator: ref.ConditionalGenerator
    discriminator: torch.nn.Module
    log: list[dict[str, float]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)


def images_and_labels(dataset: dict, train_images: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Training images (n, 1, 28, 28) in [-1, 1] (the gan lab's scaling) and labels (n,) long."""
    x = gan_parts.images(dataset, train_images)
    return x, torch.from_numpy(dataset["y_train"][: len(x)]).long()


def kinds(conditioning: str) -> list[str]:
    """The discriminators to train: one of KINDS, or both (projection first)."""
    return list(KINDS) if conditioning == "both" else [conditioning]


def build(kind: str, config: Any) -> tuple[ref.ConditionalGenerator, torch.nn.Module]:
    """G and D (projection or concat), initialised from the config's seed."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = ref.ConditionalGenerator(
            config.latent_dim, N_CLASSES, config.embed_dim, config.g_hidden
        )
        if kind == "projection":
            disc = ref.ProjectionDiscriminator(N_CLASSES, config.d_hidden)
        else:
            disc = ref.ConcatDiscriminator(N_CLASSES, config.embed_dim, config.d_hidden)
    return gen, disc


def evaluate(ys: Yardstick, gen: ref.ConditionalGenerator, step: int) -> dict[str, Any]:
    """Yardstick score and per-class conditional accuracy of 100 fixed-noise samples per class."""
    labels = ref.class_labels(PER_CLASS, N_CLASSES)
    pictures = ref.sample(gen, labels, EVAL_SEED)
    per_class = ys.class_accuracy(pictures, labels)
    return {
        "step": step,
        "score": ys.score(pictures, n=len(labels)),
        "accuracy_mean": float(per_class.mean()),
        "per_class": per_class.tolist(),
        "mean_pixel": float(pictures.mean()),
    }


@torch.no_grad()
def label_sense(disc: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """How often argmax_c D(x, c) is x's true class on real images: what D knows about labels."""
    logits = torch.stack([disc(x, torch.full_like(y, c)) for c in range(N_CLASSES)], dim=1)
    return float((logits.argmax(1) == y).double().mean())


@torch.no_grad()
def projection_check(disc: ref.ProjectionDiscriminator, x: torch.Tensor, y: torch.Tensor) -> float:
    """|our projection term - torch.bmm of the embedding rows with the features|, max over x."""
    h = disc.features(x)
    e = torch.nn.functional.embedding(y, disc.embed.weight)
    library = torch.bmm(e.unsqueeze(1), h.unsqueeze(2)).reshape(-1)
    return float((ref.projection_term(h, disc.embed.weight, y) - library).abs().max())


def train(
    x: torch.Tensor, y: torch.Tensor, kind: str, config: Any, ys: Yardstick, ctx: RunContext
) -> Trained:
    """Seeded alternating D and G steps: D on a real batch and fakes for the same labels, G on
    fresh uniform labels. Every log_every steps the mean losses, D(x) and D(G(z, y)); every
    eval_every steps the score and conditional accuracy of the fixed evaluation batch."""
    gen, disc = build(kind, config)
    betas = (config.beta1, 0.999)
    opt_g = torch.optim.Adam(gen.parameters(), lr=config.lr_g, betas=betas)
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr_d, betas=betas)
    rng = torch.Generator().manual_seed(config.seed)
    run, window, b = Trained(kind, gen, disc), [], config.batch_size
    run.evals.append(evaluate(ys, gen, 0))
    for step in ctx.track(range(1, config.steps + 1), f"training the conditional GAN ({kind})"):
        idx = torch.randint(len(x), (b,), generator=rng)
        z_d, z_g = torch.randn(2, b, config.latent_dim, generator=rng)
        y_g = torch.randint(N_CLASSES, (b,), generator=rng)
        d = ref.discriminator_step(gen, disc, opt_d, x[idx], y[idx], z_d, config.real_label)
        g = ref.generator_step(gen, disc, opt_g, z_g, y_g)
        window.append([d["d_loss"], g["g_loss"], d["d_real"], d["d_fake"]])
        if step % config.log_every == 0 or step == config.steps:
            means = np.mean(window, axis=0).tolist()
            run.log.append(
                {"step": step, **dict(zip(("d_loss", "g_loss", "d_real", "d_fake"), means))}
            )
            window = []
        if step % config.eval_every == 0 or step == config.steps:
            run.evals.append(evaluate(ys, gen, step))
    return run


def generator_writer(
    gen: ref.ConditionalGenerator, dataset: str, score: float
) -> Callable[[Path], None]:
    """Writes generator.pt (TorchScript trace: noise (n, latent_dim) and labels (n,) long ->
    (n, 1, 28, 28) in [-1, 1]) and lab.json (the serving contract, n_labels 10)."""

    def write(folder: Path) -> None:
        was_training = gen.training
        gen.eval()
        example = (torch.zeros(2, gen.latent_dim), torch.tensor([0, 1]))
        with torch.no_grad():
            traced = torch.jit.trace(gen, example)
        gen.train(was_training)
        traced.save(str(folder / "generator.pt"))
        spec = {
            "kind": "image-generator",
            "latent_dim": gen.latent_dim,
            "n_labels": gen.n_classes,
            "output_range": [-1.0, 1.0],
            "dataset": dataset,
            "module": "airoad.generative.conditional_gan.ConditionalGenerator",
            "yardstick_score": score,
        }
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def class_grid_figure(runs: list[Trained], titles: dict[str, str], ctx: RunContext) -> None:
    """For each run a 10 x 10 grid: row c holds ten samples asked for class c (seeded noise)."""
    labels = ref.class_labels(N_CLASSES, N_CLASSES)
    with figure(ctx, "class_grid", 1, len(runs), figsize=(4.4 * len(runs), 4.9)) as (fig, axes):
        for ax, run in zip(np.atleast_1d(axes), runs):
            pictures = ref.sample(run.generator, labels, seed=0)[:, 0].numpy()
            grid = pictures.reshape(N_CLASSES, N_CLASSES, 28, 28).transpose(0, 2, 1, 3)
            ax.imshow(grid.reshape(N_CLASSES * 28, N_CLASSES * 28), cmap="gray", vmin=0, vmax=1)
            ax.set_title(titles[run.kind], fontsize=9)
            ax.set_yticks(np.arange(N_CLASSES) * 28 + 14, [str(c) for c in range(N_CLASSES)])
            ax.set_xticks([])
            ax.set_ylabel("requested class")
        fig.suptitle("conditional GAN samples: one row per requested class")


def dynamics_figure(runs: list[Trained], ctx: RunContext) -> None:
    """Losses, D(x) and D(G(z, y)), and conditional accuracy and score over training."""
    with figure(ctx, "training_dynamics", 1, 3, figsize=(15, 4.2)) as (fig, axes):
        twin = axes[2].twinx()  # the score on its own (log) axis beside the accuracy
        for run, style in zip(runs, ("-", "--")):
            steps = [r["step"] for r in run.log]
            for key, colour in (("d_loss", "C0"), ("g_loss", "C1")):
                axes[0].plot(steps, [r[key] for r in run.log], style, c=colour,
                             label=f"{key} {run.kind}")  # fmt: skip
            for key, colour, name in (("d_real", "C2", "D(x)"), ("d_fake", "C3", "D(G(z,y))")):
                axes[1].plot(steps, [r[key] for r in run.log], style, c=colour,
                             label=f"{name} {run.kind}")  # fmt: skip
            ev_steps = [e["step"] for e in run.evals]
            axes[2].plot(ev_steps, [e["accuracy_mean"] for e in run.evals], style + "o", c="C4",
                         label=f"accuracy {run.kind}")  # fmt: skip
            twin.plot(ev_steps, [e["score"] for e in run.evals], style, c="C5",
                      label=f"score {run.kind}")  # fmt: skip
        axes[0].set(title="losses (mean per logged window)", xlabel="step")
        axes[1].set(title="discriminator outputs", xlabel="step", ylim=(0, 1))
        axes[2].axhline(0.1, c="grey", ls=":", label="chance (0.1)")
        axes[2].set(title="conditional accuracy (purple) and score (brown)", xlabel="step",
                    ylabel="mean conditional accuracy", ylim=(0, 1.35))  # fmt: skip
        twin.set(ylabel="yardstick score (log)", yscale="log")
        lo, hi = twin.get_ylim()
        twin.set_ylim(lo, hi * 4)  # room for the legends above the curves
        for ax in axes[:2]:
            ax.legend(fontsize=7)
        axes[2].legend(fontsize=7, loc="upper left")
        twin.legend(fontsize=7, loc="upper right")


def accuracy_figure(runs: list[Trained], test_accuracy: float, ctx: RunContext) -> None:
    """Final per-class conditional accuracy of each run, beside the classifier's test accuracy."""
    with figure(ctx, "class_accuracy", figsize=(8, 4.2)) as (fig, ax):
        width = 0.8 / len(runs)
        for i, run in enumerate(runs):
            final = run.evals[-1]
            ax.bar(np.arange(N_CLASSES) + i * width, final["per_class"], width,
                   label=f"{run.kind}: mean {final['accuracy_mean']:.3f}")  # fmt: skip
        ax.axhline(
            test_accuracy, c="grey", ls="--", label=f"classifier on real test {test_accuracy:.3f}"
        )
        ax.axhline(0.1, c="grey", ls=":", label="chance 0.1")
        ax.set(title="samples classified as the class they were asked for (100 per class)",
               xlabel="requested class", ylabel="accuracy", ylim=(0, 1.3),
               xticks=np.arange(N_CLASSES) + 0.4 * (1 - width))  # fmt: skip
        ax.set_xticklabels(range(N_CLASSES))
        ax.legend(fontsize=8, loc="upper center", ncol=2)
