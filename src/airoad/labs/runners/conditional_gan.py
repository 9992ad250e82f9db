"""Runner for conditional-gan: a label-conditioned MLP GAN on MNIST, with a projection
discriminator and, for comparison, a concatenation one.

Both runs share the generator design (label embedding joined to the noise), the seed, the
batches and the number of steps; only how D takes the label differs. Each is measured on 1,000
fixed-noise samples, 100 asked for each class: the shared yardstick's score (beside the real-data
floor and the per-pixel noise baseline) and the conditional accuracy (the fraction of samples
the yardstick's classifier puts in the class they were asked for, per class and mean). The
discriminator's own label sense (argmax over labels of D on real test images) and the
projection term against ``torch.bmm`` are reported too. The generator with the better score is
saved as the artifact ``generator`` (TorchScript, conditional: n_labels 10, range [-1, 1]).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch

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
from airoad.labs.runners import conditional_gan_parts as parts


@dataclass(frozen=True)
class Config:
    dataset: str = param("mnist", choices=("mnist", "fashion-mnist"))
    train_images: int = param(0, ge=1000, le=60000, also=(0,))  # 0 = all 60,000
    conditioning: str = param("both", choices=(*parts.KINDS, "both"))  # D's label input
    steps: int = param(6000, ge=10, le=200_000)  # per run; each step = one D and one G update
    batch_size: int = param(64, ge=1, le=1024)
    latent_dim: int = param(64, ge=1, le=1024)
    embed_dim: int = param(16, ge=1, le=256)  # G's label embedding (and the concat D's)
    g_hidden: tuple[int, ...] = param((256, 512), ge=1, le=4096)
    d_hidden: tuple[int, ...] = param((512, 256), ge=1, le=4096)
    lr_g: float = param(2e-4, gt=0.0, le=0.1)
    lr_d: float = param(2e-4, gt=0.0, le=0.1)
    beta1: float = param(0.5, ge=0.0, lt=1.0)  # Adam's first beta (0.5 as in DCGAN)
    real_label: float = param(0.9, gt=0.5, le=1.0)  # one-sided label smoothing (gan lab)
    log_every: int = param(100, ge=1)
    eval_every: int = param(1000, ge=1)  # score + conditional accuracy every this many steps
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(self.log_every <= self.steps, "log_every", "must be at most steps")
        config_check(self.eval_every <= self.steps, "eval_every", "must be at most steps")


# fmt: off
QUICK = {  # 150 steps of small networks on 5,000 images: seconds
    "train_images": 5000, "steps": 150, "batch_size": 32, "latent_dim": 16, "embed_dim": 8,
    "g_hidden": (64,), "d_hidden": (64,), "lr_g": 1e-3, "lr_d": 1e-3,
    "log_every": 25, "eval_every": 75,
}
# fmt: on

NOTES = (
    "{dataset}, {steps} steps per run: the saved generator ({saved}) scores {score:.1f} on the "
    "yardstick (1,000 samples, 100 per class; real-data floor {floor:.1f}, per-pixel noise "
    "baseline {baseline:.1f}: {score_over_baseline:.2f} of the baseline, {score_over_floor:.0f}x "
    "the floor). The features are our small CNN's, not Inception's: not comparable to papers' FID.",
    "Conditional accuracy (the classifier names the requested class): {accuracy_summary}; the "
    "classifier itself gets {classifier_test_accuracy:.3f} on real test digits, chance is 0.1. "
    "Weakest class of the saved run: {weakest_class} ({weakest_accuracy:.2f}).",
    "D's own label sense (argmax over the 10 labels of D(x, y) on 1,000 real test images): "
    "{label_sense_summary}.",
    "{projection_note} Training took {train_cpu_s:.0f} CPU-s ({train_wall_s:.0f} s wall).",
    "Settings changed from the full run: {changed}.",
)


def _train(config: Config, ctx: RunContext) -> tuple[list[parts.Trained], Yardstick, dict]:
    """One run per discriminator kind on the same images, labels, seed and steps."""
    ys, data = Yardstick(config.dataset), load(config.dataset)
    x, y = parts.images_and_labels(data, config.train_images)
    runs = [parts.train(x, y, kind, config, ys, ctx) for kind in parts.kinds(config.conditioning)]
    return runs, ys, data


def _measure(runs: list[parts.Trained], ys: Yardstick, data: dict, config: Config) -> dict:
    """Anchors, each run's final score and accuracy, D's label sense, the library check."""
    m: dict[str, Any] = {"floor": ys.floor(), "baseline": ys.baseline()}
    m["classifier_test_accuracy"] = ys.test_accuracy
    x_test = torch.from_numpy(data["X_test"][:1000]).float().div(127.5).sub(1.0)[:, None]
    y_test = torch.from_numpy(data["y_test"][:1000]).long()
    for run in runs:
        final = run.evals[-1]
        m[f"{run.kind}_score"] = final["score"]
        m[f"{run.kind}_accuracy"] = final["accuracy_mean"]
        m[f"{run.kind}_label_sense"] = parts.label_sense(run.discriminator, x_test, y_test)
    best = min(runs, key=lambda r: r.evals[-1]["score"])
    m["saved"], m["score"] = best.kind, best.evals[-1]["score"]
    m["accuracy_mean"] = best.evals[-1]["accuracy_mean"]
    per_class = best.evals[-1]["per_class"]
    m["weakest_class"] = min(range(len(per_class)), key=per_class.__getitem__)
    m["weakest_accuracy"] = per_class[m["weakest_class"]]
    m["score_over_floor"], m["score_over_baseline"] = (
        m["score"] / m["floor"],
        m["score"] / m["baseline"],
    )
    m["accuracy_summary"] = "; ".join(
        f"{r.kind} {m[f'{r.kind}_accuracy']:.3f} (score {m[f'{r.kind}_score']:.1f})" for r in runs
    )
    m["label_sense_summary"] = "; ".join(f"{r.kind} {m[f'{r.kind}_label_sense']:.3f}" for r in runs)
    proj = [r for r in runs if r.kind == "projection"]
    m["projection_max_abs_diff"] = (
        parts.projection_check(proj[0].discriminator, x_test, y_test) if proj else float("nan")
    )
    m["projection_note"] = (
        "Our projection term equals torch.bmm of the embedding rows and the features to "
        f"{m['projection_max_abs_diff']:.1e}."
        if proj
        else "No projection run, so no check of the projection term against torch.bmm."
    )
    m["changed"] = ", ".join(changed_from_full(config)) or "none"
    return m


def run(config: Config, ctx: RunContext) -> LabResult:
    (runs, ys, data), cpu_s, wall_s = cpu_timed(lambda: _train(config, ctx))
    metrics = _measure(runs, ys, data, config) | {"train_cpu_s": cpu_s, "train_wall_s": wall_s}
    metrics |= {"steps": config.steps, "dataset": config.dataset}

    titles = {
        r.kind: f"{r.kind} D: score {metrics[f'{r.kind}_score']:.0f}, "
        f"accuracy {metrics[f'{r.kind}_accuracy']:.2f}"
        for r in runs
    }
    parts.class_grid_figure(runs, titles, ctx)
    parts.dynamics_figure(runs, ctx)
    parts.accuracy_figure(runs, ys.test_accuracy, ctx)
    best = next(r for r in runs if r.kind == metrics["saved"])
    ctx.save_artifact(
        "generator", parts.generator_writer(best.generator, config.dataset, metrics["score"])
    )

    return LabResult(
        metrics=metrics,
        key_metric="score",
        library_metric=None,
        tables={"dynamics_" + r.kind: r.log for r in runs}
        | {"evals_" + r.kind: r.evals for r in runs},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
