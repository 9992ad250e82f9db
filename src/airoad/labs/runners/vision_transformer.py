"""Runner for vision-transformer: a small ViT on Fashion-MNIST against the cnn lab's CNN.

Both models go through the same loop (``vision_transformer_parts.train_for_budget``): AdamW,
linear warm-up then cosine decay, indexed by the fraction of a CPU-second budget used, and both
get the same budget (``time.process_time`` around training steps only). The curve is test
accuracy on the first ``curve_test`` test images; the final numbers use ``n_test`` images. The
trained ViT is rebuilt from ``nn.Conv2d`` and ``nn.TransformerEncoderLayer`` and scored again,
and the class token's attention rollout is measured against where the garment is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import changed_from_full, config_check, param, render_notes, validate_config
from airoad.labs.runners import cnn as cnn_lab
from airoad.labs.runners import vision_transformer_parts as parts
from airoad.labs.runners.cnn import evaluate, prepare
from airoad.neural.cnn import FashionCNN
from airoad.transformer import vision_transformer as ref


@dataclass(frozen=True)
class Config:
    n_train: int = param(60_000, ge=500, le=60_000)
    n_test: int = param(10_000, ge=100, le=10_000)
    curve_test: int = param(2_000, ge=100, le=10_000)  # test images scored along the way
    patch_size: int = param(7, choices=(1, 2, 4, 7, 14, 28))
    d_model: int = param(64, ge=4, le=1024)
    n_heads: int = param(4, ge=1, le=32)
    n_layers: int = param(4, ge=1, le=24)
    d_ff: int = param(128, ge=4, le=8192)
    dropout: float = param(0.0, ge=0.0, lt=1.0)
    budget_cpu_s: float = param(300.0, gt=0.0, le=10_000.0)  # training CPU-s for EACH model
    batch_size: int = param(128, ge=8, le=4096)
    max_lr: float = param(3e-3, gt=0.0, le=1.0)  # the ViT's peak learning rate
    cnn_lr: float = param(cnn_lab.Config.lr, gt=0.0, le=1.0)  # the cnn lab's peak rate
    weight_decay: float = param(0.05, ge=0.0, le=1.0)
    warmup_fraction: float = param(0.05, ge=0.0, lt=1.0)
    min_lr_ratio: float = param(0.01, ge=0.0, le=1.0)  # the cosine ends at max_lr * this
    crop_padding: int = param(0, ge=0, le=6)  # > 0: random crop + flip for both models
    curve_points: int = param(12, ge=1, le=200)
    rollout_images: int = param(8, ge=1, le=16)
    target_accuracy: float = param(0.88, gt=0.0, le=1.0)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(self.d_model % self.n_heads == 0, "d_model", "must be a multiple of n_heads")
        config_check(self.curve_test <= self.n_test, "curve_test", "must be at most n_test")
        config_check(self.batch_size <= self.n_train, "batch_size", "must be at most n_train")


# fmt: off
QUICK = {"n_train": 3000, "n_test": 1000, "curve_test": 500, "d_model": 32, "n_layers": 2,
         "d_ff": 64, "budget_cpu_s": 3.0, "max_lr": 5e-3, "curve_points": 3, "rollout_images": 4}
# fmt: on

NOT_SETUP = ("curve_test", "curve_points", "rollout_images", "target_accuracy", "seed")

NOTES = (
    "ViT ({vit_parameters} parameters, {patch_size}x{patch_size} patches = {n_tokens} tokens "
    "with the class token): test accuracy {vit_accuracy:.4f} on {n_test} images after "
    "{vit_epochs:.1f} epochs in {budget_cpu_s:.0f} CPU-s of training ({vit_wall_s:.0f} s wall).",
    "FashionCNN of the cnn lab ({cnn_parameters} parameters), same loop and budget: "
    "{cnn_accuracy:.4f} after {cnn_epochs:.1f} epochs ({cnn_wall_s:.0f} s wall). {comparison}",
    "The trained ViT rebuilt from nn.Conv2d and nn.TransformerEncoderLayer scores "
    "{torch_layers_accuracy:.4f} (ours {vit_accuracy:.4f}).",
    "Attention rollout: the class token draws {rollout_on_garment:.0%} of its patch mass from "
    "patches that show the garment, which are {garment_patch_share:.0%} of all patches.",
    "{target_sentence}",
)


def _data(config: Config) -> dict[str, torch.Tensor]:
    d = load("fashion-mnist")
    return {
        "X": prepare(d["X_train"][: config.n_train]),
        "y": torch.from_numpy(d["y_train"][: config.n_train]).long(),
        "Xte": prepare(d["X_test"][: config.n_test]),
        "yte": torch.from_numpy(d["y_test"][: config.n_test]).long(),
        "raw_test": d["X_test"][: config.n_test],
    }


def _race(config: Config, data: dict, ctx: RunContext):
    """The ViT, then the CNN, each trained for budget_cpu_s CPU seconds in the same loop."""
    train = (
        data["X"],
        data["y"],
        data["Xte"][: config.curve_test],
        data["yte"][: config.curve_test],
    )
    vit = ref.VisionTransformer(
        28, config.patch_size, 1, 10, config.d_model, config.n_heads, config.n_layers,
        config.d_ff, config.dropout, seed=config.seed,
    )  # fmt: skip
    torch.manual_seed(config.seed)
    lab = cnn_lab.Config()  # the cnn lab's network exactly as its full config builds it
    cnn = FashionCNN(tuple(lab.channels), lab.hidden, 10, lab.dropout)
    budget = config.budget_cpu_s
    curves = {
        "ViT": parts.train_for_budget(vit, train, budget, config.max_lr, config, ctx, "ViT"),
        "CNN": parts.train_for_budget(cnn, train, budget, config.cnn_lr, config, ctx, "CNN"),
    }
    return vit, cnn, curves


def _scores(vit, cnn, curves: dict, data: dict, config: Config) -> dict:
    Xte, yte = data["Xte"], data["yte"]
    vit_end, cnn_end = curves["ViT"][-1], curves["CNN"][-1]
    return {
        "vit_accuracy": evaluate(vit, Xte, yte),
        "cnn_accuracy": evaluate(cnn, Xte, yte),
        "torch_layers_accuracy": parts.torch_twin_accuracy(vit, Xte, yte),
        "vit_parameters": sum(p.numel() for p in vit.parameters()),
        "cnn_parameters": sum(p.numel() for p in cnn.parameters()),
        "n_tokens": vit.grid**2 + 1,
        "vit_epochs": vit_end["epochs"],
        "cnn_epochs": cnn_end["epochs"],
        "vit_cpu_s": vit_end["cpu_seconds"],
        "cnn_cpu_s": cnn_end["cpu_seconds"],
        "vit_wall_s": vit_end["wall_seconds"],
        "cnn_wall_s": cnn_end["wall_seconds"],
    }


def _rollout_share(vit: ref.VisionTransformer, data: dict, config: Config) -> dict:
    """Share of the class token's rollout (over patches) on patches with garment pixels, and
    the share of such patches, over the curve images. Background pixels are exactly 0."""
    vit.eval()
    with torch.no_grad():
        _, attentions = vit.forward_with_attention(data["Xte"][: config.curve_test])
    maps = ref.class_token_map(ref.attention_rollout(attentions), vit.grid).numpy()
    raw = torch.from_numpy(data["raw_test"][: config.curve_test].astype(np.float32))[:, None]
    garment = ref.patchify(raw, vit.patch_size).amax(-1).reshape(maps.shape).numpy() > 0
    on = (maps * garment).sum((1, 2)) / maps.sum((1, 2))
    return {"rollout_on_garment": float(on.mean()), "garment_patch_share": float(garment.mean())}


def _verdicts(m: dict, config: Config) -> dict[str, str]:
    gap = m["vit_accuracy"] - m["cnn_accuracy"]
    leader = "the ViT" if gap > 0 else "the CNN"
    comparison = f"At equal CPU time {leader} leads by {abs(gap) * 100:.1f} points."
    setup = [k for k in asdict(config) if k not in NOT_SETUP]
    target = config.target_accuracy
    if changed_from_full(config, setup) and target == Config().target_accuracy:
        sentence = f"The {target:.0%} target is for the full config."
    else:
        reached = "reaches" if m["vit_accuracy"] >= target else "does not reach"
        sentence = f"The ViT {reached} the {target:.0%} target in this budget."
    return {"comparison": comparison, "target_sentence": sentence}


def run(config: Config, ctx: RunContext) -> LabResult:
    data = _data(config)
    vit, cnn, curves = _race(config, data, ctx)
    metrics = _scores(vit, cnn, curves, data, config)
    metrics |= _rollout_share(vit, data, config)

    parts.accuracy_figure(curves, config.target_accuracy, ctx)
    k = config.rollout_images
    parts.rollout_figure(vit, data["Xte"][:k], data["yte"][:k], data["raw_test"][:k], ctx)
    parts.position_figure(vit, ctx)

    values = {**asdict(config), **metrics, **_verdicts(metrics, config)}
    rows = [{"model": name, **point} for name, curve in curves.items() for point in curve]
    return LabResult(
        metrics=metrics,
        key_metric="vit_accuracy",
        library_metric="torch_layers_accuracy",
        tables={"curves": rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, values),
    )
