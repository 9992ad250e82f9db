"""The dcgan runner's pieces: one seeded training loop for both variants (the DCGAN with gan.py's
non-saturating steps, the WGAN-GP with critic steps), fixed-noise snapshots and yardstick scores
at checkpoints, the gradient-penalty check against torch.func, the saved generator, figures."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from airoad.generative import dcgan as ref
from airoad.generative import gan
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.labs.runners import gan_parts

VARIANTS = ("dcgan", "wgan-gp")
SCORE_SAMPLES = 1000  # every yardstick score uses this many samples
EVOLUTION_SEED = 7  # the fixed noise decoded at every checkpoint


@dataclass
class Trained:
    """A finished run: its generator, logged dynamics, and checkpoints (step, CPU seconds,
    yardstick score, the fixed-noise images in [0, 1])."""

    name: str
    generator: ref.Generator
    opponent: ref.Discriminator
    log: list[dict[str, float]] = field(default_factory=list)
    checkpoints: list[dict[str, Any]] = field(default_factory=list)

    @property
    def score(self) -> float:
        return self.checkpoints[-1]["score"]


def _players(name: str, config: Any) -> tuple[ref.Generator, ref.Discriminator, Any, Any]:
    """Seeded G and D (batch norm) or critic (none), DCGAN-initialised, and their Adams."""
    gen = ref.init_weights(ref.Generator(config.latent_dim, config.width), config.seed)
    opp = ref.Discriminator(config.width, batch_norm=name == "dcgan")
    opp = ref.init_weights(opp, config.seed + 1)
    lr, betas = (
        (config.lr, (config.beta1, 0.999)) if name == "dcgan" else (config.wgan_lr, (0.5, 0.9))
    )  # WGAN-GP's paper uses beta2 = 0.9
    opt_g = torch.optim.Adam(gen.parameters(), lr=lr, betas=betas)
    return gen, opp, opt_g, torch.optim.Adam(opp.parameters(), lr=lr, betas=betas)


def _step_fn(name: str, x: torch.Tensor, config: Any, rng: torch.Generator) -> Callable:
    """One generator step of the variant: DCGAN = one D and one G update (gan.py's steps),
    WGAN-GP = n_critic critic updates, then one G update. Returns the logged numbers."""
    b, d = config.batch_size, config.latent_dim

    def batch() -> torch.Tensor:
        return x[torch.randint(len(x), (b,), generator=rng)]

    def dcgan(gen, disc, opt_g, opt_d) -> dict[str, float]:
        out = gan.discriminator_step(gen, disc, opt_d, batch(), torch.randn(b, d, generator=rng))
        return out | gan.generator_step(gen, disc, opt_g, torch.randn(b, d, generator=rng))

    def wgan(gen, critic, opt_g, opt_c) -> dict[str, float]:
        rows = [
            ref.critic_step(
                gen,
                critic,
                opt_c,
                batch(),
                torch.randn(b, d, generator=rng),
                torch.rand(b, generator=rng),
                config.gp_weight,
            )  # fmt: skip
            for _ in range(config.n_critic)
        ]
        out = {k: float(np.mean([r[k] for r in rows])) for k in rows[0]}
        return out | ref.wgan_generator_step(gen, critic, opt_g, torch.randn(b, d, generator=rng))

    return dcgan if name == "dcgan" else wgan


def checkpoint_steps(steps: int, n: int) -> list[int]:
    """n evenly spaced steps from 0 to steps (both ends included, no repeats)."""
    return sorted({int(round(s)) for s in np.linspace(0, steps, n)})


def _checkpoint(gen: ref.Generator, ys: Yardstick, z: torch.Tensor, step: int, cpu: float):
    """Yardstick score of SCORE_SAMPLES seeded samples and the fixed noise decoded now."""
    was = gen.training
    gen.eval()
    with torch.no_grad():
        fixed = (gen(z) + 1) / 2
    gen.train(was)
    score = ys.score(gan.sample(gen, SCORE_SAMPLES, seed=0), n=SCORE_SAMPLES)
    return {"step": step, "cpu_s": cpu, "score": score, "images": fixed}


def train(name: str, x: torch.Tensor, config: Any, ys: Yardstick, ctx: RunContext) -> Trained:
    """Seeded training of one variant; logs window means every log_every steps and a checkpoint
    (score + fixed-noise images) at `checkpoint_steps`. CPU seconds exclude the checkpoints."""
    gen, opp, opt_g, opt_o = _players(name, config)
    steps = config.steps if name == "dcgan" else config.wgan_steps
    step_fn = _step_fn(name, x, config, torch.Generator().manual_seed(config.seed))
    z = torch.randn(config.evolution_samples, config.latent_dim,
                    generator=torch.Generator().manual_seed(EVOLUTION_SEED))  # fmt: skip
    marks, run, window, cpu = (
        checkpoint_steps(steps, config.checkpoints),
        Trained(name, gen, opp),
        [],
        0.0,
    )
    run.checkpoints.append(_checkpoint(gen, ys, z, 0, 0.0))
    for step in ctx.track(range(1, steps + 1), f"training the {name}"):
        t0 = time.process_time()
        window.append(step_fn(gen, opp, opt_g, opt_o))
        cpu += time.process_time() - t0
        if step % config.log_every == 0 or step == steps:
            run.log.append({"step": step} | {k: float(np.mean([w[k] for w in window]))
                                             for k in window[0]})  # fmt: skip
            window = []
        if step in marks:
            run.checkpoints.append(_checkpoint(gen, ys, z, step, cpu))
    return run


def gp_vs_torch_func(critic: ref.Discriminator, x: torch.Tensor, config: Any) -> float:
    """|our gradient penalty - the same penalty from per-image gradients by torch.func.vmap(grad)|
    on a real batch against shuffled real images, the trained critic in float64."""
    critic = copy.deepcopy(critic).double()  # float64 copy; the trained one is untouched
    g = torch.Generator().manual_seed(config.seed)
    real = x[:32].double()
    fake = x[torch.randperm(len(x), generator=g)[:32]].double()
    eps = torch.rand(32, generator=g, dtype=torch.float64)
    ours = ref.gradient_penalty(critic, real, fake, eps, config.gp_weight)

    def one(image: torch.Tensor) -> torch.Tensor:
        return critic(image[None])[0]

    grads = torch.func.vmap(torch.func.grad(one))(ref.interpolate(real, fake, eps))
    theirs = config.gp_weight * ((grads.flatten(1).norm(dim=1) - 1) ** 2).mean()
    return abs(float(ours.detach()) - float(theirs.detach()))


def generator_writer(gen: ref.Generator, dataset: str, score: float) -> Callable[[Path], None]:
    """gan's writer (TorchScript trace in eval mode, so batch norm uses its running statistics,
    and lab.json, the serving contract), with lab.json naming this lab's Generator."""
    write_gan = gan_parts.generator_writer(gen, dataset, score)

    def write(folder: Path) -> None:
        write_gan(folder)
        spec = json.loads((folder / "lab.json").read_text(encoding="utf-8"))
        spec["module"] = "airoad.generative.dcgan.Generator"
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def _strip(pictures: torch.Tensor) -> np.ndarray:
    """(k, 1, 28, 28) images side by side as one (28, k*28) array."""
    return pictures[:, 0].numpy().transpose(1, 0, 2).reshape(28, -1)


def evolution_figure(runs: list[Trained], ctx: RunContext) -> None:
    """The same fixed noise decoded at every checkpoint: one row per checkpoint, per variant."""
    rows = max(len(r.checkpoints) for r in runs)
    with figure(ctx, "sample_evolution", 1, len(runs), figsize=(6 * len(runs), 0.9 * rows + 1)) as (
        fig,
        axes,
    ):
        for ax, run in zip(np.atleast_1d(axes), runs):
            ax.imshow(np.vstack([_strip(c["images"]) for c in run.checkpoints]), cmap="gray",
                      vmin=0, vmax=1)  # fmt: skip
            ax.set_yticks([28 * i + 14 for i in range(len(run.checkpoints))])
            ax.set_yticklabels([f"step {c['step']}\nscore {c['score']:.0f}"
                                for c in run.checkpoints], fontsize=7)  # fmt: skip
            ax.set_xticks([])
            ax.set_title(run.name)
        fig.suptitle("the same noise decoded as training goes on (rows: checkpoints)")


def losses_figure(runs: list[Trained], ctx: RunContext) -> None:
    """DCGAN losses and D outputs; WGAN-GP's Wasserstein estimate, penalty and G loss; the
    yardstick score of both over training CPU seconds."""
    by = {r.name: r for r in runs}
    with figure(ctx, "losses", 1, 3, figsize=(16, 4.2)) as (fig, axes):
        if "dcgan" in by:
            log = by["dcgan"].log
            steps = [r["step"] for r in log]
            for key in ("d_loss", "g_loss", "d_real", "d_fake"):
                axes[0].plot(steps, [r[key] for r in log], label=key)
            axes[0].set(title="DCGAN: D and G losses, D(x), D(G(z))", xlabel="step")
        if "wgan-gp" in by:
            log = by["wgan-gp"].log
            steps = [r["step"] for r in log]
            for key, label in (("wasserstein", "critic's W estimate"), ("gp", "penalty"),
                               ("g_loss", "G loss -mean f(G(z))")):  # fmt: skip
                axes[1].plot(steps, [r[key] for r in log], label=label)
            axes[1].set(title="WGAN-GP (means over the critic steps)", xlabel="generator step")
        for run in runs:
            cps = run.checkpoints
            axes[2].plot([c["cpu_s"] for c in cps], [c["score"] for c in cps], "o-", label=run.name)
        axes[2].set(title="yardstick score (lower is better)", xlabel="training CPU seconds",
                    yscale="log")  # fmt: skip
        for ax in axes:
            ax.legend(fontsize=8)


def samples_figure(runs: list[Trained], ctx: RunContext) -> None:
    """64 final samples of each variant (seed 0), titled with its yardstick score."""
    with figure(ctx, "samples", 1, len(runs), figsize=(4.2 * len(runs), 4.6)) as (fig, axes):
        for ax, run in zip(np.atleast_1d(axes), runs):
            x = gan.sample(run.generator, 64, seed=0)[:, 0].numpy()
            ax.imshow(x.reshape(8, 8, 28, 28).transpose(0, 2, 1, 3).reshape(224, 224),
                      cmap="gray", vmin=0, vmax=1)  # fmt: skip
            ax.set_title(f"{run.name}: score {run.score:.0f}")
            ax.axis("off")
