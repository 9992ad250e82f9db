"""The stylegan runner's pieces: a small conv discriminator, seeded training with style-mixing
regularisation and a weight average of G, the style-mixing and noise measurements, the saved
generator and the figures."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from airoad.generative import gan
from airoad.generative import stylegan as ref
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.labs.runners import gan_parts
from airoad.labs.runners.gan_parts import _grid, classify

EVAL_SAMPLES = 1000  # the yardstick always scores this many samples
EVAL_SEED = 12345  # the same noise at every evaluation, so scores over training compare


def discriminator(width: int) -> nn.Sequential:
    """The simple D: two strided 4x4 convs (28 -> 14 -> 7; width, 2 width channels, LeakyReLU
    0.2) and a Linear to one logit per image, shape (n,)."""
    return nn.Sequential(
        nn.Conv2d(1, width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Conv2d(width, 2 * width, 4, 2, 1),
        nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(2 * width * 49, 1),
        nn.Flatten(0),
    )


@dataclass
class Trained:
    """A finished run: the weight-averaged generator, the logged losses and the score trail."""

    generator: ref.Generator
    log: list[dict[str, float]] = field(default_factory=list)
    scores: list[dict[str, float]] = field(default_factory=list)


def _mixing_generator(gen: ref.Generator, rng: torch.Generator, prob: float) -> Callable:
    """G as gan.py's steps call it, z -> images: fresh noise maps every call, and with
    probability ``prob`` a second z taking over from a random crossover (mixing regularisation:
    neighbouring layers cannot rely on seeing the same w)."""

    def generate(z: torch.Tensor) -> torch.Tensor:
        noise = gen.make_noise(len(z), rng)
        if float(torch.rand((), generator=rng)) >= prob:
            return gen(z, noise)
        crossover = int(torch.randint(1, gen.num_ws, (), generator=rng))
        z_mix = torch.randn(z.shape, generator=rng)
        return gen(z, noise, z_mix, crossover)

    return generate


def _score(ys: Yardstick, gen: ref.Generator, step: int) -> dict[str, float]:
    return {"step": step, "score": ys.score(ref.sample(gen, EVAL_SAMPLES, EVAL_SEED))}


def train(x: torch.Tensor, config: Any, ys: Yardstick, ctx: RunContext) -> Trained:
    """Seeded alternating D and G steps with gan.py's non-saturating losses; G's weights are
    averaged (EMA, ``ema_beta``) into the generator that is measured and saved."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        gen = ref.Generator(
            config.latent_dim, config.w_dim, config.channels, config.mapping_layers,
            config.style_op,
        )  # fmt: skip
        disc = discriminator(config.d_width)
    ema = copy.deepcopy(gen).requires_grad_(False)
    betas = (config.beta1, 0.99)
    mapping = list(gen.mapping.parameters())
    rest = [p for n, p in gen.named_parameters() if not n.startswith("mapping.")]
    opt_g = torch.optim.Adam(
        [{"params": rest}, {"params": mapping, "lr": config.lr * config.mapping_lr_mult}],
        lr=config.lr, betas=betas,
    )  # fmt: skip
    opt_d = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=betas)
    rng = torch.Generator().manual_seed(config.seed)
    g_fn = _mixing_generator(gen, rng, config.mixing_prob)
    run, window, b = Trained(ema), [], config.batch_size
    run.scores.append(_score(ys, ema, 0))
    for step in ctx.track(range(1, config.steps + 1), "training the style-based GAN"):
        real = x[torch.randint(len(x), (b,), generator=rng)]
        z_d, z_g = torch.randn(2, b, config.latent_dim, generator=rng)
        d = gan.discriminator_step(g_fn, disc, opt_d, real, z_d)
        g = gan.generator_step(g_fn, disc, opt_g, z_g, "nonsaturating")
        with torch.no_grad():
            for p_ema, p in zip(ema.parameters(), gen.parameters()):
                p_ema.lerp_(p, 1.0 - config.ema_beta)
        window.append([d["d_loss"], g["g_loss"], d["d_real"], d["d_fake"]])
        if step % config.log_every == 0 or step == config.steps:
            keys = ("d_loss", "g_loss", "d_real", "d_fake")
            run.log.append({"step": step, **dict(zip(keys, np.mean(window, axis=0).tolist()))})
            window = []
        if step % config.eval_every == 0 or step == config.steps:
            run.scores.append(_score(ys, ema, step))
    return run


# ---------------------------------------------------------------- measurements


@torch.no_grad()
def mixing_table(ys: Yardstick, gen: ref.Generator, pairs: int, seed: int) -> list[dict]:
    """For each crossover k (layers < k styled by A, the rest by B), the share of mixed images
    the yardstick's classifier calls A's class and B's, over pairs whose classes differ."""
    rng = torch.Generator().manual_seed(seed)
    z_a, z_b = torch.randn(2, pairs, gen.latent_dim, generator=rng)
    noise = gen.make_noise(pairs, rng)
    w_a, w_b = gen.mapping(z_a), gen.mapping(z_b)

    def labels(ws: torch.Tensor) -> torch.Tensor:
        return classify(ys, ((gen.synthesis(ws, noise) + 1) / 2).clamp(0, 1))

    a = labels(ref.mix_styles(w_a, w_b, gen.num_ws, gen.num_ws))
    b = labels(ref.mix_styles(w_a, w_b, gen.num_ws, 0))
    differ = a != b
    rows = []
    for k in range(gen.num_ws + 1):
        mixed = labels(ref.mix_styles(w_a, w_b, gen.num_ws, k))[differ]
        res = gen.resolutions[k - 1] if k else 0
        rows.append({"crossover": k, "a_up_to_resolution": res, "pairs": int(differ.sum()),
                     "class_of_a": float((mixed == a[differ]).float().mean()),
                     "class_of_b": float((mixed == b[differ]).float().mean())})  # fmt: skip
    return rows


@torch.no_grad()
def noise_effect(gen: ref.Generator, seed: int, n_w: int = 16, draws: int = 32) -> dict:
    """Per-pixel standard deviation (in [0, 1] units) over ``draws`` noise draws for fixed w,
    averaged over ``n_w`` latents, beside the same over ``n_w * draws`` different z; plus the
    mean |strength| of each layer's learned noise strength."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(n_w, gen.latent_dim, generator=rng).repeat_interleave(draws, 0)
    same_w = (gen(z, gen.make_noise(len(z), rng)) + 1) / 2
    z_new = torch.randn(len(z), gen.latent_dim, generator=rng)
    other_w = (gen(z_new, gen.make_noise(len(z), rng)) + 1) / 2
    by_noise = same_w.clamp(0, 1).view(n_w, draws, 28, 28).std(dim=1)
    strengths = [float(c.noise.strength.abs().mean()) for c in gen.convs]
    return {
        "noise_pixel_std": float(by_noise.mean()),
        "style_pixel_std": float(other_w.clamp(0, 1).std(dim=0).mean()),
        "noise_strengths": strengths,
        "std_map": by_noise[0].numpy(),
    }


def modconv_check(gen: ref.Generator, seed: int) -> float:
    """max |our modulated conv - a loop of F.conv2d with each sample's scaled, demodulated
    weight| with the trained weight and affine map of the first 14x14 layer: the library check."""
    conv, rng = gen.convs[1], torch.Generator().manual_seed(seed)
    x = torch.randn(4, conv.weight.shape[1], 7, 7, generator=rng, dtype=torch.float64)
    with torch.no_grad():
        style = conv.affine(gen.mapping(torch.randn(4, gen.latent_dim, generator=rng))).double()
        weight = conv.weight.double()
        ours = ref.modulated_conv2d(x, weight, style, padding=1)
        loop = []
        for i in range(len(x)):
            wi = weight * style[i][None, :, None, None]
            wi = wi / wi.pow(2).sum(dim=(1, 2, 3), keepdim=True).add(1e-8).sqrt()
            loop.append(F.conv2d(x[i : i + 1], wi, padding=1))
    return float((ours - torch.cat(loop)).abs().max())


class _Served(nn.Module):
    """z -> G(z) with the noise maps fixed (StyleGAN2's "const" noise), so one seed always
    gives one image."""

    def __init__(self, gen: ref.Generator, seed: int):
        super().__init__()
        self.gen, self.latent_dim = gen, gen.latent_dim
        noise = gen.make_noise(1, torch.Generator().manual_seed(seed))
        for i, n in enumerate(noise):
            self.register_buffer(f"noise{i}", n)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        count = len(self.gen.convs)
        noise = [getattr(self, f"noise{i}").expand(z.shape[0], -1, -1, -1) for i in range(count)]
        return self.gen(z, noise)


def generator_writer(gen: ref.Generator, dataset: str, score: float, seed: int) -> Callable:
    """gan's writer (generator.pt, a TorchScript trace: (n, latent_dim) noise -> (n, 1, 28, 28),
    linear output in the data's [-1, 1] units, clipped by the server; and lab.json) applied to
    G with fixed noise maps, then lab.json names this module and the noise seed."""
    base = gan_parts.generator_writer(_Served(copy.deepcopy(gen).eval(), seed), dataset, score)

    def write(folder: Path) -> None:
        base(folder)
        spec = json.loads((folder / "lab.json").read_text(encoding="utf-8"))
        spec |= {"module": "airoad.generative.stylegan.Generator", "noise": f"fixed, seed {seed}"}
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def _show(ax: Any, image: Any, title: str = "") -> None:
    ax.imshow(image, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title, fontsize=8)
    ax.axis("off")


@torch.no_grad()
def mixing_figure(gen: ref.Generator, crossovers: tuple[int, ...], seed: int, ctx: RunContext):
    """One grid per crossover: row i = source A_i, column j = source B_j, cell = layers below
    the crossover styled by A_i (coarse), the rest by B_j (fine); the same noise everywhere."""
    n = 5
    rng = torch.Generator().manual_seed(seed)
    w = gen.mapping(torch.randn(2 * n, gen.latent_dim, generator=rng))
    noise = [m.expand(n, -1, -1, -1) for m in gen.make_noise(1, rng)]
    w_a, w_b = w[:n], w[n:]

    def draw(ws: torch.Tensor) -> np.ndarray:
        return ((gen.synthesis(ws, noise) + 1) / 2).clamp(0, 1)[:, 0].numpy()

    size = (3.3 * len(crossovers), 3.6)
    with figure(ctx, "style_mixing", 1, len(crossovers), figsize=size) as (fig, axes):
        for ax, k in zip(np.atleast_1d(axes), crossovers):
            canvas = np.ones(((n + 1) * 29, (n + 1) * 29))
            full_a = draw(ref.mix_styles(w_a, w_b, gen.num_ws, gen.num_ws))
            full_b = draw(ref.mix_styles(w_a, w_b, gen.num_ws, 0))
            for i in range(n):
                canvas[(i + 1) * 29 : (i + 1) * 29 + 28, :28] = full_a[i]
                canvas[:28, (i + 1) * 29 : (i + 1) * 29 + 28] = full_b[i]
                row = draw(ref.mix_styles(w_a[i].expand(n, -1), w_b, gen.num_ws, k))
                for j in range(n):
                    canvas[(i + 1) * 29 : (i + 1) * 29 + 28, (j + 1) * 29 : (j + 1) * 29 + 28] = (
                        row[j]
                    )
            res = gen.resolutions[k - 1]
            _show(ax, canvas, f"crossover {k}: A styles layers up to {res}x{res}")
        fig.suptitle("style mixing: rows A (left column), columns B (top row)")


@torch.no_grad()
def noise_figure(gen: ref.Generator, effect: dict, seed: int, ctx: RunContext) -> None:
    """Four fixed w: no noise, five noise draws, and the per-pixel std over 32 draws."""
    rng = torch.Generator().manual_seed(seed)
    z = torch.randn(4, gen.latent_dim, generator=rng)
    with figure(ctx, "noise_resampling", 4, 7, figsize=(9, 5.6)) as (fig, axes):
        for i in range(4):
            zi = z[i : i + 1].expand(5, -1)
            plain = ((gen(z[i : i + 1]) + 1) / 2).clamp(0, 1)[0, 0]
            drawn = ((gen(zi, gen.make_noise(5, rng)) + 1) / 2).clamp(0, 1)[:, 0]
            _show(axes[i, 0], plain.numpy(), "no noise" if i == 0 else "")
            for j in range(5):
                _show(axes[i, j + 1], drawn[j].numpy(), f"noise draw {j + 1}" if i == 0 else "")
        axes[0, 6].imshow(effect["std_map"], cmap="magma")
        axes[0, 6].set_title("pixel std, 32 draws", fontsize=8)
        for ax in axes[:, 6]:
            ax.axis("off")
        fig.suptitle("the same w, different noise maps")


def samples_figure(run: Trained, score: float, ctx: RunContext) -> None:
    """64 seeded samples, and the yardstick score over training."""
    with figure(ctx, "samples", 1, 2, figsize=(9.5, 4.6)) as (fig, axes):
        _show(axes[0], _grid(ref.sample(run.generator, 64, seed=0)), f"score {score:.0f}")
        axes[1].plot([s["step"] for s in run.scores], [s["score"] for s in run.scores], "o-")
        axes[1].set(title="yardstick score (1,000 samples)", xlabel="step", yscale="log")
        fig.suptitle("style-based GAN samples (weight-averaged G, seeded noise)")
