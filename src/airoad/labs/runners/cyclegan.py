"""Runner for cyclegan: unpaired translation between scikit-learn's 8x8 digits and MNIST.

The 1,797 digits are upsampled to 28x28 (bilinear to the 20x20 MNIST digit box, zero padding to
28x28) and split seeded into training and held-out images; MNIST's first ``mnist_images``
training images are the other domain. A CycleGAN (two small conv generators, two PatchGAN
discriminators, least-squares adversarial + cycle L1 + identity L1) trains on random unpaired
batches. On held-out images of both domains it measures whether the digit's class survives:
the yardstick's MNIST classifier on x, G(x), F(G(x)) for digits and y, F(y), G(F(y)) for MNIST,
against the true labels. The shared yardstick scores G(held-out digits) beside the do-nothing
translation (the raw upsampled digits), the real-data floor and the noise baseline, all at the
same n (the digits' held-out split is smaller than the usual 1,000). G is saved as the
``translator`` artifact (TorchScript, kind ``image-translator``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from airoad.data import load
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import (
    changed_from_full,
    config_check,
    cpu_timed,
    param,
    render_notes,
    validate_config,
)
from airoad.labs.runners import cyclegan_parts as parts

DIGITS_COUNT = 1797  # scikit-learn's bundled digits


@dataclass(frozen=True)
class Config:
    mnist_images: int = param(20000, ge=100, le=60000)  # the first k MNIST training images
    test_size: float = param(0.3, ge=0.1, le=0.9)  # held-out share of the 1,797 digits
    eval_images: int = param(1000, ge=50, le=10000)  # held-out MNIST test images
    yardstick_n: int = param(500, ge=50, le=1000)  # images per score (<= held-out digits)
    steps: int = param(2000, ge=10, le=100_000)
    batch_size: int = param(16, ge=1, le=512)
    g_channels: tuple[int, ...] = param((16, 32), ge=1, le=256)
    n_res: int = param(1, ge=0, le=8)
    d_channels: tuple[int, ...] = param((16, 32), ge=1, le=256)
    lr: float = param(2e-4, gt=0.0, le=0.1)
    beta1: float = param(0.5, ge=0.0, lt=1.0)
    lambda_cycle: float = param(10.0, ge=0.0, le=1000.0)
    lambda_identity: float = param(5.0, ge=0.0, le=1000.0)
    log_every: int = param(50, ge=1)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        for key in ("g_channels", "d_channels"):
            config_check(len(getattr(self, key)) == 2, key, "needs two widths, e.g. 16,32")
        held_out = math.ceil(DIGITS_COUNT * self.test_size)
        config_check(
            self.yardstick_n <= held_out,
            "yardstick_n",
            f"must be at most the {held_out} held-out digits (raise test_size)",
        )
        config_check(self.log_every <= self.steps, "log_every", "must be at most steps")


# fmt: off
QUICK = {  # 60 steps of tiny networks: seconds
    "mnist_images": 2000, "eval_images": 300, "yardstick_n": 200, "steps": 60,
    "batch_size": 8, "g_channels": (8, 16), "d_channels": (8, 16), "lr": 1e-3, "log_every": 10,
}
# fmt: on

NOTES = (
    "Class survival under the yardstick's MNIST classifier ({n_digits_test} held-out digits, "
    "{eval_images} MNIST test images): raw upsampled digits {acc_digits:.3f}, G(x) "
    "{acc_g_digits:.3f}, F(G(x)) {acc_fg_digits:.3f}; MNIST y {acc_mnist:.3f}, F(y) "
    "{acc_f_mnist:.3f}, G(F(y)) {acc_gf_mnist:.3f}. Verdict: {verdict}.",
    "Yardstick at n = {yardstick_n} (our small CNN's features, not Inception; not comparable "
    "with papers' FID): G(held-out digits) {score:.1f}, the do-nothing translation (raw "
    "upsampled digits) {raw_score:.1f}, real-data floor {floor:.1f}, per-pixel noise baseline "
    "{baseline:.1f} ({score_over_baseline:.2f} of the baseline, {score_over_floor:.0f}x the "
    "floor).",
    "Held-out cycle L1 in [-1, 1] units: digits {test_cycle_digits:.3f}, MNIST "
    "{test_cycle_mnist:.3f}; G moves a digit by {g_change:.3f} on average. Our losses equal "
    "the F.mse_loss / F.l1_loss forms to {loss_max_abs_diff:.1e}. Training took "
    "{train_cpu_s:.0f} CPU-s ({train_wall_s:.0f} s wall).",
    "Settings changed from the full run: {changed}.",
)


def _data(config: Config) -> parts.Domains:
    """Both domains, upsampled, split and scaled to [0, 1]."""
    return parts.domains(load("digits"), load("mnist"), config)


def _measure(model: Any, log: list, data: parts.Domains, config: Config) -> tuple[dict, Any]:
    """Round trips of held-out images, class survival, yardstick scores and the loss checks."""
    ys = Yardstick("mnist")
    trips = parts.round_trips(model, data)
    m = parts.class_survival(ys, trips, data) | parts.held_out_losses(trips, model)
    m |= parts.yardstick_scores(ys, trips, config.yardstick_n, config.seed)
    m["score_over_floor"], m["score_over_baseline"] = (
        m["score"] / m["floor"],
        m["score"] / m["baseline"],
    )
    m["loss_max_abs_diff"] = parts.library_check(model, trips)
    kept = m["acc_g_digits"] - m["acc_digits"]
    m["verdict"] = (
        f"G keeps the class ({kept:+.3f} against the raw digits)"
        if kept >= -0.05
        else f"G loses the class for some digits ({kept:+.3f} against the raw digits)"
    )
    m |= {"n_digits_test": len(data.digits_test), "eval_images": len(data.mnist_test)}
    m |= {"first_total": log[0]["total"], "last_total": log[-1]["total"]}
    m["changed"] = ", ".join(changed_from_full(config)) or "none"
    return m, (trips, parts.per_class(ys, trips, data))


def run(config: Config, ctx: RunContext) -> LabResult:
    data = _data(config)
    (model, log), cpu_s, wall_s = cpu_timed(lambda: parts.train(data, config, ctx))
    metrics, (trips, per_class) = _measure(model, log, data, config)
    metrics |= {"train_cpu_s": cpu_s, "train_wall_s": wall_s}

    parts.round_trip_figure(trips, data, ctx)
    parts.loss_figure(log, ctx)
    parts.class_figure(per_class, metrics, ctx)
    ctx.save_artifact("translator", parts.translator_writer(model.g, metrics))

    return LabResult(
        metrics=metrics,
        key_metric="acc_g_digits",
        library_metric=None,
        tables={"losses": log, "per_class": per_class},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
