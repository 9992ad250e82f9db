"""Runner for dcgan: a DCGAN and a WGAN-GP with the same convolutional generator on Fashion-MNIST.

The DCGAN follows the architecture rules (strided convolutions, batch norm, no pooling, ReLU in
G and LeakyReLU in D, tanh output) and trains with gan.py's non-saturating loss; the WGAN-GP
keeps G, drops the critic's batch norm, and trains with the Wasserstein losses and the gradient
penalty (n_critic critic updates per G update). Both start from the same seed. At evenly spaced
checkpoints the same fixed noise is decoded (the sample-evolution figure) and 1,000 samples are
scored by the shared yardstick (Fréchet distance on our small CNN's features, beside the
real-data floor and the per-pixel noise baseline). Our gradient penalty is checked against the
same penalty from per-image gradients by torch.func on real images. The generator with the
better final score is saved as the artifact ``generator`` (TorchScript, tanh range [-1, 1]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airoad.data import load
from airoad.generative.metrics import Yardstick
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import changed_from_full, param, render_notes, validate_config
from airoad.labs.runners import dcgan_parts as parts
from airoad.labs.runners import gan_parts


@dataclass(frozen=True)
class Config:
    dataset: str = param("fashion-mnist", choices=("fashion-mnist", "mnist"))
    train_images: int = param(0, ge=1000, le=60000, also=(0,))  # 0 = all 60,000
    steps: int = param(1200, ge=1, le=100_000)  # DCGAN: each = one D and one G update
    wgan_steps: int = param(250, ge=1, le=100_000)  # WGAN-GP: each = n_critic + one G update
    n_critic: int = param(5, ge=1, le=20)
    batch_size: int = param(64, ge=2, le=1024)  # >= 2: batch norm needs two images
    latent_dim: int = param(64, ge=1, le=1024)
    width: int = param(32, ge=1, le=512)  # channels of G's last / D's first block
    lr: float = param(2e-4, gt=0.0, le=0.1)  # DCGAN's Adam, both players
    beta1: float = param(0.5, ge=0.0, lt=1.0)  # DCGAN's Adam first beta
    wgan_lr: float = param(2e-4, gt=0.0, le=0.1)  # WGAN-GP's Adam (betas 0.5, 0.9), both
    gp_weight: float = param(10.0, ge=0.0, le=1000.0)  # lambda of the gradient penalty
    checkpoints: int = param(6, ge=2, le=20)  # snapshots from step 0 to the last, per variant
    evolution_samples: int = param(8, ge=1, le=16)  # fixed noise vectors shown per checkpoint
    log_every: int = param(50, ge=1)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)


# fmt: off
QUICK = {  # seconds: 5,000 images, narrow networks, few steps
    "train_images": 5000, "steps": 60, "wgan_steps": 12, "n_critic": 2, "batch_size": 32,
    "latent_dim": 16, "width": 8, "lr": 1e-3, "wgan_lr": 1e-3, "checkpoints": 3, "log_every": 6,
}
# fmt: on

NOTES = (
    "{dataset}: the saved generator ({saved}) scores {score:.1f} on the yardstick (1,000 "
    "samples; real-data floor {floor:.1f}, per-pixel noise baseline {baseline:.1f}: "
    "{score_over_baseline:.2f} of the baseline, {score_over_floor:.0f}x the floor). The "
    "features are our small CNN's, not Inception's: not comparable to papers' FID.",
    "DCGAN: {steps} steps in {dcgan_cpu_s:.0f} CPU-s, score {dcgan_score:.1f}. WGAN-GP: "
    "{wgan_steps} generator steps x {n_critic} critic steps in {wgan_cpu_s:.0f} CPU-s, score "
    "{wgan_score:.1f}; its critic's Wasserstein estimate went {w_first:.2f} -> {w_last:.2f}, "
    "penalty {gp_last:.3f} at the end.",
    "Our gradient penalty equals torch.func.vmap(grad)'s per-image one on real images to "
    "{gp_max_abs_diff:.1e} (float64).",
    "Settings changed from the full run: {changed}.",
)


def _train_both(config: Config, ctx: RunContext) -> tuple[list[parts.Trained], Yardstick, Any]:
    """Both variants on the same images and seed, each with its checkpoints."""
    ys = Yardstick(config.dataset)
    x = gan_parts.images(load(config.dataset), config.train_images)  # [-1, 1], as in gan
    return [parts.train(name, x, config, ys, ctx) for name in parts.VARIANTS], ys, x


def _measure(runs: list[parts.Trained], ys: Yardstick, x: Any, config: Config) -> dict[str, Any]:
    """Final scores against floor and baseline, CPU seconds, the critic's estimate, the GP check."""
    dc, wg = runs
    m: dict[str, Any] = {"floor": ys.floor(), "baseline": ys.baseline()}
    m |= {"dcgan_score": dc.score, "wgan_score": wg.score}
    m |= {"dcgan_cpu_s": dc.checkpoints[-1]["cpu_s"], "wgan_cpu_s": wg.checkpoints[-1]["cpu_s"]}
    m["saved"] = "dcgan" if dc.score <= wg.score else "wgan-gp"
    m["score"] = min(dc.score, wg.score)
    m["score_over_floor"] = m["score"] / m["floor"]
    m["score_over_baseline"] = m["score"] / m["baseline"]
    m |= {"w_first": wg.log[0]["wasserstein"], "w_last": wg.log[-1]["wasserstein"]}
    m["gp_last"] = wg.log[-1]["gp"]
    m["gp_max_abs_diff"] = parts.gp_vs_torch_func(wg.opponent, x, config)
    m["changed"] = ", ".join(changed_from_full(config)) or "none"
    return m | {"dataset": config.dataset}


def run(config: Config, ctx: RunContext) -> LabResult:
    runs, ys, x = _train_both(config, ctx)
    metrics = _measure(runs, ys, x, config)

    parts.evolution_figure(runs, ctx)
    parts.losses_figure(runs, ctx)
    parts.samples_figure(runs, ctx)
    best = runs[0] if metrics["saved"] == "dcgan" else runs[1]
    ctx.save_artifact(
        "generator", parts.generator_writer(best.generator, config.dataset, metrics["score"])
    )

    checkpoints = {
        f"checkpoints_{r.name}": [{k: v for k, v in c.items() if k != "images"}
                                  for c in r.checkpoints] for r in runs
    }  # fmt: skip
    return LabResult(
        metrics=metrics,
        key_metric="score",
        library_metric=None,
        tables={f"dynamics_{r.name}": r.log for r in runs} | checkpoints,
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
