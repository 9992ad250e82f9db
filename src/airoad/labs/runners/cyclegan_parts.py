"""The cyclegan runner's pieces: the two real domains as tensors, seeded training with a log of
every loss term, class survival and yardstick scores on held-out images, the saved translator,
and the figures."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from airoad.generative import cyclegan as ref
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, frame_xy, split
from airoad.labs.runners.gan_parts import classify

TERMS = ("adv_g", "adv_f", "cycle_digits", "cycle_mnist", "identity_g", "identity_f", "total")


@dataclass(frozen=True)
class Domains:
    """Images in [0, 1] (n, 1, 28, 28) with their labels: digits split seeded, MNIST train subset
    for training and MNIST test images for evaluation."""

    digits_train: torch.Tensor
    digits_test: torch.Tensor
    digits_test_y: np.ndarray
    mnist_train: torch.Tensor
    mnist_test: torch.Tensor
    mnist_test_y: np.ndarray


def domains(digits_frame: Any, mnist: dict, config: Any) -> Domains:
    """Upsample every 8x8 digit to 28x28, split them (stratified, seeded), and take the first
    ``mnist_images`` MNIST training images and the first ``eval_images`` test images."""
    X, y = frame_xy(digits_frame)
    up = ref.upsample_digits(torch.tensor(X, dtype=torch.float32))
    idx_train, idx_test = split(np.arange(len(y)), y, config.test_size, config.seed)[:2]

    def mnist_images(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(x).float().div(255)[:, None]

    return Domains(
        digits_train=up[idx_train],
        digits_test=up[idx_test],
        digits_test_y=y[idx_test].astype(np.int64),
        mnist_train=mnist_images(mnist["X_train"][: config.mnist_images]),
        mnist_test=mnist_images(mnist["X_test"][: config.eval_images]),
        mnist_test_y=mnist["y_test"][: config.eval_images].astype(np.int64),
    )


def train(data: Domains, config: Any, ctx: RunContext) -> tuple[ref.CycleGAN, list[dict]]:
    """Seeded CycleGAN training: each step draws a random batch of each domain (in [-1, 1]) and
    calls `train_step`; every log_every steps the window means of every term are logged."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = ref.CycleGAN(config.g_channels, config.n_res, config.d_channels)
    betas = (config.beta1, 0.999)
    opt_g = torch.optim.Adam(model.generator_parameters(), lr=config.lr, betas=betas)
    opt_d = torch.optim.Adam(model.discriminator_parameters(), lr=config.lr, betas=betas)
    rng = torch.Generator().manual_seed(config.seed)
    xd, xm = data.digits_train * 2 - 1, data.mnist_train * 2 - 1
    log: list[dict] = []
    window: list[dict[str, float]] = []
    b = config.batch_size
    for step in ctx.track(range(1, config.steps + 1), "training the CycleGAN"):
        batch_d = xd[torch.randint(len(xd), (b,), generator=rng)]
        batch_m = xm[torch.randint(len(xm), (b,), generator=rng)]
        window.append(
            ref.train_step(
                model, opt_g, opt_d, batch_d, batch_m, config.lambda_cycle, config.lambda_identity
            )
        )
        if step % config.log_every == 0 or step == config.steps:
            log.append(
                {"step": step} | {k: float(np.mean([w[k] for w in window])) for k in window[0]}
            )
            window = []
    return model, log


def accuracy(ys: Yardstick, images: torch.Tensor, labels: np.ndarray) -> float:
    """Fraction of images the yardstick's MNIST classifier labels with the given class."""
    return float((classify(ys, images).numpy() == labels).mean())


def round_trips(model: ref.CycleGAN, data: Domains) -> dict[str, torch.Tensor]:
    """Held-out images of both domains, their translations and round trips, all in [0, 1]."""
    g_digits = ref.translate(model.g, data.digits_test)
    f_mnist = ref.translate(model.f, data.mnist_test)
    return {
        "digits": data.digits_test,
        "g_digits": g_digits,
        "fg_digits": ref.translate(model.f, g_digits),
        "mnist": data.mnist_test,
        "f_mnist": f_mnist,
        "gf_mnist": ref.translate(model.g, f_mnist),
    }


def class_survival(ys: Yardstick, trips: dict[str, torch.Tensor], data: Domains) -> dict:
    """The MNIST classifier's accuracy against the true labels on every stage of both trips."""
    out = {}
    for key, images in trips.items():
        labels = data.digits_test_y if "digits" in key else data.mnist_test_y
        out[f"acc_{key}"] = accuracy(ys, images, labels)
    return out


def per_class(ys: Yardstick, trips: dict[str, torch.Tensor], data: Domains) -> list[dict]:
    """Per-digit accuracy of the classifier on raw upsampled digits and on G(digits)."""
    raw = ys.class_accuracy(trips["digits"], data.digits_test_y)
    moved = ys.class_accuracy(trips["g_digits"], data.digits_test_y)
    counts = np.bincount(data.digits_test_y, minlength=10)
    return [
        {"digit": c, "n": int(counts[c]), "raw": float(raw[c]), "translated": float(moved[c])}
        for c in range(10)
    ]


def yardstick_scores(ys: Yardstick, trips: dict[str, torch.Tensor], n: int, seed: int) -> dict:
    """Scores at n samples: G(held-out digits), the raw upsampled digits (the do-nothing
    translation), F(G(digits)), the real-data floor and the per-pixel noise baseline."""
    return {
        "score": ys.score(trips["g_digits"], n=n, seed=seed),
        "raw_score": ys.score(trips["digits"], n=n, seed=seed),
        "roundtrip_score": ys.score(trips["fg_digits"], n=n, seed=seed),
        "floor": ys.floor(n=n, seed=seed),
        "baseline": ys.baseline(n=n, seed=seed),
    }


def held_out_losses(trips: dict[str, torch.Tensor], model: ref.CycleGAN) -> dict[str, float]:
    """Cycle L1 on held-out images in the training units ([-1, 1]: twice the [0, 1] error), and
    how far each generator moves its input (mean |G(x) - x|)."""

    def l1(a: torch.Tensor, b: torch.Tensor) -> float:
        return float(ref.cycle_loss(a * 2 - 1, b * 2 - 1))

    return {
        "test_cycle_digits": l1(trips["digits"], trips["fg_digits"]),
        "test_cycle_mnist": l1(trips["mnist"], trips["gf_mnist"]),
        "g_change": l1(trips["digits"], trips["g_digits"]),
        "f_change": l1(trips["mnist"], trips["f_mnist"]),
    }


def library_check(model: ref.CycleGAN, trips: dict[str, torch.Tensor]) -> float:
    """Largest |ours - torch| of the LSGAN and L1 losses written with F.mse_loss / F.l1_loss,
    on held-out images and their translations."""
    x, fake = trips["mnist"][:64] * 2 - 1, trips["g_digits"][:64] * 2 - 1
    rec = trips["fg_digits"][:64] * 2 - 1
    with torch.no_grad():
        real_s, fake_s = model.d_mnist(x), model.d_mnist(fake)
        pairs = [
            (
                ref.lsgan_discriminator_loss(real_s, fake_s),
                0.5
                * (F.mse_loss(real_s, torch.ones_like(real_s)) + F.mse_loss(fake_s, 0 * fake_s)),
            ),
            (ref.lsgan_generator_loss(fake_s), F.mse_loss(fake_s, torch.ones_like(fake_s))),
            (ref.cycle_loss(fake, rec), F.l1_loss(rec, fake)),
        ]
    return max(abs(float(a) - float(b)) for a, b in pairs)


def translator_writer(g: ref.Generator, metrics: dict) -> Callable[[Path], None]:
    """Writes translator.pt (TorchScript trace of G: (n, 1, 28, 28) upsampled digits in [-1, 1]
    -> MNIST-style digits in [-1, 1]) and lab.json (kind "image-translator": serving, which
    loads only image generators, does not pick it up)."""

    def write(folder: Path) -> None:
        was_training = g.training
        g.eval()
        with torch.no_grad(), warnings.catch_warnings():
            # InstanceNorm's shape checks become constants in the trace: fine for (n, 1, 28, 28)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            traced = torch.jit.trace(g, torch.zeros(2, 1, 28, 28))
        g.train(was_training)
        traced.save(str(folder / "translator.pt"))
        spec = {
            "kind": "image-translator",
            "from": "digits",
            "to": "mnist",
            "input": "scikit-learn digits through airoad.generative.cyclegan.upsample_digits, "
            "then x * 2 - 1",
            "input_range": [-1.0, 1.0],
            "output_range": [-1.0, 1.0],
            "shape": [1, 28, 28],
            "module": "airoad.generative.cyclegan.Generator",
            "yardstick_score": metrics["score"],
            "class_accuracy": metrics["acc_g_digits"],
        }
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


# ---------------------------------------------------------------- figures


def _examples(labels: np.ndarray, per_class: int = 1) -> np.ndarray:
    """Indices of the first ``per_class`` images of each digit 0..9, in digit order."""
    return np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in range(10)])


def round_trip_figure(trips: dict[str, torch.Tensor], data: Domains, ctx: RunContext) -> None:
    """Two grids of held-out images, one column per digit: x, G(x), F(G(x)) for digits and
    y, F(y), G(F(y)) for MNIST."""
    rows = {
        "digits -> MNIST -> digits": (("digits", "g_digits", "fg_digits"), data.digits_test_y),
        "MNIST -> digits -> MNIST": (("mnist", "f_mnist", "gf_mnist"), data.mnist_test_y),
    }
    names = {"digits": "x (digits)", "g_digits": "G(x)", "fg_digits": "F(G(x))",
             "mnist": "y (MNIST)", "f_mnist": "F(y)", "gf_mnist": "G(F(y))"}  # fmt: skip
    with figure(ctx, "round_trips", 2, 1, figsize=(11, 4.6)) as (fig, axes):
        for ax, (title, (keys, labels)) in zip(axes, rows.items()):
            idx = torch.from_numpy(_examples(labels, 2))
            grid = torch.cat([trips[k][idx, 0] for k in keys], dim=0)  # (3 * 20, 28, 28)
            grid = grid.reshape(3, len(idx), 28, 28).permute(0, 2, 1, 3).reshape(3 * 28, -1)
            ax.imshow(grid.numpy(), cmap="gray", vmin=0, vmax=1)
            ax.set_yticks([14 + 28 * i for i in range(3)], [names[k] for k in keys])
            ax.set_xticks([])
            ax.set_title(f"{title} (held-out, two of each digit)")


def loss_figure(log: list[dict], ctx: RunContext) -> None:
    """Adversarial, cycle and identity terms of both generators, and both D losses, over steps."""
    steps = [r["step"] for r in log]
    panels = {
        "adversarial (LSGAN)": ("adv_g", "adv_f"),
        "cycle L1": ("cycle_digits", "cycle_mnist"),
        "identity L1": ("identity_g", "identity_f"),
        "discriminators (LSGAN)": ("d_mnist", "d_digits"),
    }
    with figure(ctx, "losses", 1, 4, figsize=(16, 3.8)) as (fig, axes):
        for ax, (title, keys) in zip(axes, panels.items()):
            for key in keys:
                ax.plot(steps, [r[key] for r in log], label=key)
            ax.set(title=title, xlabel="step")
            ax.legend(fontsize=8)
        fig.suptitle("training losses (means over each logged window)")


def class_figure(rows: list[dict], survival: dict, ctx: RunContext) -> None:
    """Per-digit accuracy of the MNIST classifier on raw upsampled digits and on G(digits),
    and the overall accuracy on every stage of both round trips."""
    with figure(ctx, "class_survival", 1, 2, figsize=(13, 4)) as (fig, axes):
        digits = np.arange(10)
        axes[0].bar(digits - 0.2, [r["raw"] for r in rows], 0.4, label="raw upsampled digits")
        axes[0].bar(digits + 0.2, [r["translated"] for r in rows], 0.4, label="G(digits)")
        axes[0].set(title="MNIST classifier accuracy per digit (held-out digits)",
                    xlabel="true digit", ylim=(0, 1), xticks=digits)  # fmt: skip
        axes[0].legend(fontsize=8)
        stages = ["digits", "g_digits", "fg_digits", "mnist", "f_mnist", "gf_mnist"]
        labels = ["x", "G(x)", "F(G(x))", "y", "F(y)", "G(F(y))"]
        colours = ["C0"] * 3 + ["C1"] * 3
        axes[1].bar(labels, [survival[f"acc_{s}"] for s in stages], color=colours)
        axes[1].set(title="overall accuracy (blue: digits trip, orange: MNIST trip)", ylim=(0, 1))
