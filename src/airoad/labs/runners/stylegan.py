"""Runner for stylegan: a style-based generator (mapping network, learned constant, modulated
convolutions, noise inputs) trained on MNIST against a small conv discriminator with gan.py's
non-saturating loss and style-mixing regularisation.

After training it measures what the style ideas do: how often a mixed image keeps the digit of
the source that styled its coarse layers (under the yardstick's classifier), how much the noise
inputs change an image compared with a new w, and the shared yardstick score (Fréchet distance on
our small CNN's features, 1,000 samples, beside the real-data floor and the per-pixel noise
baseline). Our modulated convolution is checked against a per-sample loop of F.conv2d on the
trained weights. The weight-averaged generator is saved as the artifact ``generator``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from airoad.data import load
from airoad.generative import stylegan as ref
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
from airoad.labs.runners import stylegan_parts as parts
from airoad.labs.runners.gan_parts import images


@dataclass(frozen=True)
class Config:
    dataset: str = param("mnist", choices=("mnist", "fashion-mnist"))
    train_images: int = param(0, ge=1000, le=60000, also=(0,))  # 0 = all 60,000
    steps: int = param(1500, ge=10, le=100_000)  # each step = one D and one G update
    batch_size: int = param(64, ge=2, le=1024)
    latent_dim: int = param(32, ge=1, le=512)
    w_dim: int = param(32, ge=1, le=512)
    channels: tuple[int, ...] = param((64, 32, 16), ge=1, le=512)  # at 7, 14 and 28 pixels
    mapping_layers: int = param(4, ge=1, le=8)
    style_op: str = param("modconv", choices=ref.STYLE_OPS)
    d_width: int = param(32, ge=1, le=512)
    lr: float = param(1e-3, gt=0.0, le=0.1)
    mapping_lr_mult: float = param(0.1, gt=0.0, le=1.0)  # StyleGAN slows the mapping network
    beta1: float = param(0.0, ge=0.0, lt=1.0)
    mixing_prob: float = param(0.5, ge=0.0, le=1.0)  # share of batches trained with two w
    ema_beta: float = param(0.99, ge=0.0, lt=1.0)  # 0 = measure G itself, no averaging
    crossovers: tuple[int, ...] = param((1, 3), ge=1, le=5)  # grids of the mixing figure
    mixing_pairs: int = param(500, ge=10, le=5000)
    log_every: int = param(50, ge=1)
    eval_every: int = param(500, ge=1)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(len(self.channels) == 3, "channels", "needs three widths (7, 14, 28 px)")
        config_check(self.log_every <= self.steps, "log_every", "must be at most steps")
        config_check(self.eval_every <= self.steps, "eval_every", "must be at most steps")


# fmt: off
QUICK = {  # 120 steps of a narrow generator on 5,000 images: seconds
    "train_images": 5000, "steps": 120, "batch_size": 32, "channels": (16, 16, 8),
    "d_width": 16, "lr": 2e-3, "mixing_pairs": 100, "log_every": 20, "eval_every": 60,
}
# fmt: on

NOTES = (
    "{dataset}, {steps} steps: the weight-averaged generator scores {score:.1f} on the yardstick "
    "(1,000 samples; real-data floor {floor:.1f}, per-pixel noise baseline {baseline:.1f}: "
    "{score_over_baseline:.2f} of the baseline, {score_over_floor:.0f}x the floor). The "
    "features are our small CNN's, not Inception's: not comparable to papers' FID.",
    "Style mixing over {mixing_pairs_differ} pairs of different digits: with A styling the "
    "layers up to 7x7 the classifier calls the mix A's digit {mix_a_at_7:.0%} of the time "
    "(B's {mix_b_at_7:.0%}); up to 14x14, A's {mix_a_at_14:.0%} (B's {mix_b_at_14:.0%}). "
    "The digit is decided by {digit_layers} layers.",
    "Noise inputs: resampling the noise for a fixed w moves a pixel by {noise_pixel_std:.3f} "
    "(std in [0, 1] units), a new w by {style_pixel_std:.3f} ({noise_over_style:.1%}).",
    "Our modulated convolution equals a loop of F.conv2d with per-sample demodulated weights to "
    "{modconv_max_abs_diff:.1e} (float64). Training took {train_cpu_s:.0f} CPU-s "
    "({train_wall_s:.0f} s wall).",
    "Settings changed from the full run: {changed}.",
)


def _train(config: Config, ctx: RunContext) -> tuple[parts.Trained, Yardstick]:
    """The dataset's training images in [-1, 1], then the adversarial training."""
    ys = Yardstick(config.dataset)
    x = images(load(config.dataset), config.train_images)
    return parts.train(x, config, ys, ctx), ys


def _measure(run: parts.Trained, ys: Yardstick, config: Config) -> tuple[dict, list, dict]:
    """Yardstick anchors, the mixing shares at 7x7 and 14x14, the noise effect and the check."""
    gen = run.generator
    m: dict[str, Any] = {"floor": ys.floor(), "baseline": ys.baseline()}
    m["score"] = run.scores[-1]["score"]
    m["score_over_floor"], m["score_over_baseline"] = (
        m["score"] / m["floor"],
        m["score"] / m["baseline"],
    )
    mixing = parts.mixing_table(ys, gen, config.mixing_pairs, config.seed)
    for res, k in ((7, 1), (14, 3)):  # crossover 1: only 7x7 from A; 3: up to 14x14
        m[f"mix_a_at_{res}"], m[f"mix_b_at_{res}"] = (
            mixing[k][c] for c in ("class_of_a", "class_of_b")
        )
    m["mixing_pairs_differ"] = mixing[0]["pairs"]
    m["digit_layers"] = (
        "no layers yet (every pair drew one digit)" if not m["mixing_pairs_differ"]
        else "the coarse" if m["mix_a_at_14"] > 0.5 else "the fine"
    )  # fmt: skip
    effect = parts.noise_effect(gen, config.seed)
    m |= {k: effect[k] for k in ("noise_pixel_std", "style_pixel_std", "noise_strengths")}
    m["noise_over_style"] = m["noise_pixel_std"] / max(m["style_pixel_std"], 1e-12)
    m["modconv_max_abs_diff"] = parts.modconv_check(gen, config.seed)
    m["changed"] = ", ".join(changed_from_full(config)) or "none"
    return m | {"steps": config.steps, "dataset": config.dataset}, mixing, effect


def run(config: Config, ctx: RunContext) -> LabResult:
    (trained, ys), cpu_s, wall_s = cpu_timed(lambda: _train(config, ctx))
    metrics, mixing, effect = _measure(trained, ys, config)
    metrics |= {"train_cpu_s": cpu_s, "train_wall_s": wall_s}

    parts.samples_figure(trained, metrics["score"], ctx)
    parts.mixing_figure(trained.generator, config.crossovers, config.seed, ctx)
    parts.noise_figure(trained.generator, effect, config.seed, ctx)
    writer = parts.generator_writer(
        trained.generator, config.dataset, metrics["score"], config.seed
    )
    ctx.save_artifact("generator", writer)

    return LabResult(
        metrics=metrics,
        key_metric="score",
        library_metric=None,
        tables={"dynamics": trained.log, "scores": trained.scores, "mixing": mixing},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
