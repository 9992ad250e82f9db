"""Runner for conditional-vae: a class-conditional MLP VAE on binarised MNIST.

The label enters as a one-hot code concatenated to the encoder's image and to the decoder's
latent. Training maximises the conditional ELBO; the test ELBO is computed by our code beside
torch.distributions on the same noise. Then 1,000 prior samples (100 per digit) are read by the
yardstick's classifier (conditional accuracy per class and mean, next to the same classifier on
real test digits and on per-pixel noise) and scored by the yardstick's Fréchet distance (floor
and baseline beside it); test digits are re-drawn under all ten labels to show that z keeps the
style. The decoder is saved as the conditional "generator" artifact (n_labels 10, [0, 1])."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from airoad.data import load
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, cpu_timed, param, render_notes
from airoad.labs.runners import conditional_vae_parts as parts
from airoad.labs.runners.vae import _yardstick as vae_yardstick


@dataclass(frozen=True)
class Config:
    n_train: int = param(60_000, ge=500, le=60_000)  # the first n training images
    n_test: int = param(2_000, ge=10, le=10_000)  # test images for the ELBO (the vae lab's set)
    epochs: int = param(25, ge=1, le=200)
    batch_size: int = param(128, ge=1, le=60_000)
    lr: float = param(1e-3, gt=0.0, le=0.1)
    hidden: tuple[int, ...] = param((512, 256), ge=1, le=4096)
    latent_dim: int = param(16, ge=1, le=256)
    binarize: str = param("stochastic", choices=("stochastic", "threshold"))
    n_per_class: int = param(100, ge=100, le=1_000)  # samples per digit; the yardstick needs 1,000
    n_swap: int = param(8, ge=1, le=100)  # test digits re-drawn under every label (figure rows)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(self.batch_size <= self.n_train, "batch_size", "must be at most n_train")
        config_check(self.n_swap <= self.n_test, "n_swap", "must be at most n_test")


# seconds: a 128-unit model, 4 epochs on 5,000 images (a higher lr so the label is used already)
QUICK = {"n_train": 5000, "n_test": 100, "epochs": 4, "lr": 3e-3, "hidden": (128,), "latent_dim": 8}

NOTES = (
    "Conditional accuracy under the yardstick's classifier, {n_samples} prior samples "
    "({n_per_class} per digit): mean {class_accuracy_mean:.3f}, worst digit {worst_class} "
    "({worst_class_accuracy:.3f}); the same classifier reads real test digits right "
    "{real_accuracy_mean:.3f} of the time and per-pixel noise {baseline_accuracy_mean:.3f}.",
    "Style swap: {n_swap_scored} test digits, each encoded with its own label and decoded under "
    "all ten, are read as the digit asked for {swap_accuracy_mean:.3f} of the time.",
    "Yardstick (our CNN's features, not Inception): {yardstick_score:.1f} for the {n_samples} "
    "samples; real held-out images {yardstick_floor:.2f}, per-pixel noise "
    "{yardstick_baseline:.1f} ({score_over_floor:.1f}x the floor, {score_over_baseline:.3f} of "
    "the baseline: {baseline_verdict}).",
    "Test ELBO on {n_test} {binarize}-binarised digits: {test_elbo:.2f} nats per image "
    "(torch.distributions {torch_test_elbo:.2f}) = reconstruction {test_recon:.2f} - KL "
    "{test_kl:.2f}. Training: {epochs} epochs on {n_train} images, {train_cpu_s:.0f} CPU-s, "
    "{train_wall_s:.0f} s wall.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    train_x, train_y, test_x, test_y, real = _mnist(config)
    (model, history), cpu_s, wall_s = cpu_timed(
        lambda: parts.train(config, train_x, train_y, (test_x, test_y), ctx)
    )
    metrics = parts.test_scores(model, test_x, test_y, config.seed + 4)
    metrics |= {"train_cpu_s": cpu_s, "train_wall_s": wall_s}
    samples, labels = parts.class_samples(model, config.n_per_class, config.seed + 3)
    n_scored = min(100, config.n_test)  # test digits whose swaps are scored (10 images each)
    swaps, asked = parts.style_swaps(model, test_x[:n_scored], test_y[:n_scored])
    with ctx.step("reading the samples with the yardstick's classifier"):
        ys = Yardstick("mnist")
        per_class, stats = _accuracies(ys, samples, labels, swaps, asked, real)
        metrics |= stats | {"n_swap_scored": n_scored}
    metrics |= vae_yardstick(samples, ctx)  # the vae lab's score, floor and baseline

    parts.curves_figure(history, ctx)
    parts.samples_figure(samples, 10, ctx)
    parts.swap_figure(test_x[: config.n_swap].numpy(), swaps[: config.n_swap], ctx)
    parts.accuracy_figure(per_class, ctx)
    ctx.save_artifact("generator", parts.generator_writer(model, config, metrics))
    return LabResult(
        metrics=metrics,
        key_metric="test_elbo",
        library_metric="torch_test_elbo",
        tables={"epochs": history, "per_class": per_class},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _mnist(config: Config):
    """Training images (uint8) and labels, the binarised test set as tensors (the vae lab's
    first n_test digits, drawn from the same seed), and every test digit in [0, 1] (n, 28, 28)."""
    data = load("mnist")
    gen = torch.Generator().manual_seed(config.seed + 1)
    test_x = parts.binarize(data["X_test"][: config.n_test], config.binarize, gen)
    test_y = torch.from_numpy(data["y_test"][: config.n_test]).long()
    real = (data["X_test"].astype(np.float32) / 255, data["y_test"])
    return (
        data["X_train"][: config.n_train],
        data["y_train"][: config.n_train],
        test_x,
        test_y,
        real,
    )


def _accuracies(ys: Yardstick, samples, labels, swaps, asked, real) -> tuple[list[dict], dict]:
    """Per-digit rate at which the classifier reads each image as the digit asked for: prior
    samples, style swaps, real test digits (its own accuracy) and per-pixel noise (chance)."""
    acc = {
        "sample_accuracy": ys.class_accuracy(samples.reshape(-1, 28, 28), labels),
        "swap_accuracy": ys.class_accuracy(swaps.reshape(-1, 28, 28), asked.reshape(-1)),
        "real_accuracy": ys.class_accuracy(*real),
        "baseline_accuracy": ys.class_accuracy(ys.baseline_images(len(labels)), labels),
    }
    rows = [{"digit": d, **{k: float(v[d]) for k, v in acc.items()}} for d in range(10)]
    worst = int(np.argmin(acc["sample_accuracy"]))
    stats = {
        "class_accuracy_mean": float(acc["sample_accuracy"].mean()),
        "worst_class": worst,
        "worst_class_accuracy": float(acc["sample_accuracy"][worst]),
        "swap_accuracy_mean": float(acc["swap_accuracy"].mean()),
        "real_accuracy_mean": float(acc["real_accuracy"].mean()),
        "baseline_accuracy_mean": float(acc["baseline_accuracy"].mean()),
        "n_samples": len(labels),
    }
    return rows, stats | {
        f"class_accuracy_{d}": float(acc["sample_accuracy"][d]) for d in range(10)
    }
