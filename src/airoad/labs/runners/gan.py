"""Runner for gan: an MLP GAN on MNIST with the non-saturating generator loss, run twice.

The plain run and a run with one mode-collapse remedy (the minibatch standard deviation feature
by default; label smoothing or a lower discriminator learning rate on request) train from the
same seed on the same batches. Each is measured by the shared yardstick (Fréchet distance on
our small CNN's features, 1,000 samples, beside the real-data floor and the per-pixel noise
baseline) and by the class histogram of 1,000 samples under the yardstick's classifier (entropy
in bits and classes covered). Along the way: D and G losses, D(x), D(G(z)) and the size of G's
gradient under the non-saturating and the minimax loss on the same noise. The generator with
the better score is saved as the artifact ``generator`` (TorchScript, tanh range [-1, 1]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airoad.data import load
from airoad.generative import gan as ref
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
from airoad.labs.runners import gan_parts as parts

FIXES = ("minibatch-std", "label-smoothing", "both", "lower-d-lr")


@dataclass(frozen=True)
class Config:
    dataset: str = param("mnist", choices=("mnist", "fashion-mnist"))
    train_images: int = param(0, ge=1000, le=60000, also=(0,))  # 0 = all 60,000
    steps: int = param(6000, ge=10, le=200_000)  # per run; each step = one D and one G update
    batch_size: int = param(64, ge=2, le=1024)  # >= 2: the batch std needs two images
    latent_dim: int = param(64, ge=1, le=1024)
    g_hidden: tuple[int, ...] = param((256, 512), ge=1, le=4096)
    d_hidden: tuple[int, ...] = param((512, 256), ge=1, le=4096)
    lr_g: float = param(2e-4, gt=0.0, le=0.1)
    lr_d: float = param(2e-4, gt=0.0, le=0.1)
    beta1: float = param(0.5, ge=0.0, lt=1.0)  # Adam's first beta (0.5 as in DCGAN)
    g_loss: str = param("nonsaturating", choices=tuple(ref.GENERATOR_LOSSES))
    fix: str = param("both", choices=FIXES)  # the remedy of the second run
    real_label: float = param(0.9, gt=0.5, le=1.0)  # D's target for real images when smoothing
    d_lr_factor: float = param(0.25, gt=0.0, le=1.0)  # lr_d multiplier of the lower-d-lr fix
    log_every: int = param(100, ge=1)
    eval_every: int = param(500, ge=1)  # class coverage of 1,000 samples every this many steps
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(self.log_every <= self.steps, "log_every", "must be at most steps")
        config_check(self.eval_every <= self.steps, "eval_every", "must be at most steps")


# fmt: off
QUICK = {  # 150 steps of small networks on 5,000 images: seconds
    "train_images": 5000, "steps": 150, "batch_size": 32, "latent_dim": 16,
    "g_hidden": (64,), "d_hidden": (64,), "lr_g": 1e-3, "lr_d": 1e-3,
    "log_every": 25, "eval_every": 75,
}
# fmt: on

NOTES = (
    "{dataset}, {steps} steps per run: the saved generator ({saved}) scores {score:.1f} on the "
    "yardstick (1,000 samples; real-data floor {floor:.1f}, per-pixel noise baseline "
    "{baseline:.1f}: {score_over_baseline:.2f} of the baseline, {score_over_floor:.0f}x the "
    "floor). The features are our small CNN's, not Inception's: not comparable to papers' FID.",
    "Mode coverage under the yardstick's classifier (1,000 samples): plain {plain_entropy:.2f} "
    "bits, {plain_covered}/10 digits (score {plain_score:.1f}); {fix} {fix_entropy:.2f} bits, "
    "{fix_covered}/10 (score {fix_score:.1f}). Verdict: {verdict}.",
    "Where D rejected the plain run's fakes most surely (steps to {low_step}: mean D(G(z)) "
    "{low_d_fake:.3f}) G's gradient was {low_grad_ratio:.1f}x larger under the non-saturating "
    "loss than under the minimax one.",
    "Our D loss equals torch's BCE-with-logits form to {bce_max_abs_diff:.1e}. Training took "
    "{train_cpu_s:.0f} CPU-s ({train_wall_s:.0f} s wall) for both runs.",
    "Settings changed from the full run: {changed}.",
)


def _train_both(config: Config, ctx: RunContext) -> tuple[list[parts.Trained], Yardstick, Any]:
    """The plain run and the fixed run on the same images, seed and steps."""
    ys = Yardstick(config.dataset)
    x = parts.images(load(config.dataset), config.train_images)
    return [parts.train(x, v, config, ys, ctx) for v in parts.variants(config)], ys, x


def _measure(runs: list[parts.Trained], ys: Yardstick, x: Any, config: Config) -> dict[str, Any]:
    """Yardstick scores, coverage before/after the fix, the verdict and the early gradients."""
    plain, fixed = runs
    m: dict[str, Any] = {"floor": ys.floor(), "baseline": ys.baseline(), "fix": config.fix}
    m["data_mean_pixel"] = float(x.mean() + 1) / 2  # the training images, in [0, 1] units
    for tag, run in (("plain", plain), ("fix", fixed)):
        m[f"{tag}_score"] = ys.score(ref.sample(run.generator, 1000, seed=config.seed))
        m[f"{tag}_entropy"] = run.coverage[-1]["entropy_bits"]
        m[f"{tag}_covered"] = run.coverage[-1]["covered"]
    helped = m["fix_entropy"] > m["plain_entropy"] + 0.1 and m["fix_score"] < m["plain_score"]
    worse = m["fix_entropy"] < m["plain_entropy"] - 0.1 or m["fix_score"] > m["plain_score"]
    m["verdict"] = (
        f"{config.fix} helped (more digits and a lower score)"
        if helped
        else f"{config.fix} did not help here" + (" (it made things worse)" if worse else "")
    )
    m["saved"] = "plain" if m["plain_score"] <= m["fix_score"] else config.fix
    m["score"] = min(m["plain_score"], m["fix_score"])
    m["score_over_floor"] = m["score"] / m["floor"]
    m["score_over_baseline"] = m["score"] / m["baseline"]
    low = min(plain.log, key=lambda r: r["d_fake"])  # where D rejected the fakes most surely
    m |= {"low_step": low["step"], "low_d_fake": low["d_fake"]}
    m["low_grad_ratio"] = low["grad_nonsaturating"] / max(low["grad_minimax"], 1e-30)
    m["bce_max_abs_diff"] = max(r.bce_max_abs_diff for r in runs)
    m["final_d_real"], m["final_d_fake"] = plain.log[-1]["d_real"], plain.log[-1]["d_fake"]
    m["changed"] = ", ".join(changed_from_full(config)) or "none"
    return m


def run(config: Config, ctx: RunContext) -> LabResult:
    (runs, ys, x), cpu_s, wall_s = cpu_timed(lambda: _train_both(config, ctx))
    metrics = _measure(runs, ys, x, config) | {"train_cpu_s": cpu_s, "train_wall_s": wall_s}
    metrics |= {"steps": config.steps, "dataset": config.dataset}

    scores = {r.variant.name: metrics[f"{tag}_score"] for r, tag in zip(runs, ("plain", "fix"))}
    parts.samples_figure(runs, scores, ctx)
    parts.dynamics_figure(runs, ctx)
    parts.collapse_figure(runs, ctx)
    best = runs[0] if metrics["saved"] == "plain" else runs[1]
    ctx.save_artifact(
        "generator", parts.generator_writer(best.generator, config.dataset, metrics["score"])
    )

    return LabResult(
        metrics=metrics,
        key_metric="score",
        library_metric=None,
        tables={"dynamics_" + r.variant.name: r.log for r in runs}
        | {"coverage_" + r.variant.name: r.coverage for r in runs},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
