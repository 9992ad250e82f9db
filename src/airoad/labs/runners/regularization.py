"""Runner for regularization: an ablation of dropout, batch norm, L1/L2, warm-up + cosine and
early stopping on a Fashion-MNIST MLP trained on a small subset (so overfitting shows).

Every variant starts from the same seed and sees the same batches; our BatchNorm is trained
beside nn.BatchNorm1d (the library row), and gradient accumulation (4 x 16) is checked against
one batch of 64 on real images."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes
from airoad.neural import regularization as ref

VARIANTS = (
    "baseline",
    "dropout",
    "batchnorm (ours)",
    "batchnorm (torch)",
    "L2",
    "L1",
    "warmup+cosine",
    "early stopping",
    "all combined",
)


@dataclass(frozen=True)
class Config:
    n_train: int = param(10_000, ge=100, le=59_900)  # small, so overfitting (and cures) show
    n_val: int = param(5_000, ge=100, le=59_900)  # the tail of the training images (disjoint)
    n_test: int = param(10_000, ge=100, le=10_000)
    epochs: int = param(25, ge=1, le=200)
    batch_size: int = param(64, ge=1, le=60_000)
    hidden: int = param(256, ge=1, le=8192)
    lr: float = param(1e-3, gt=0.0, le=1.0)
    dropout: float = param(0.3, ge=0.0, lt=1.0)
    l2: float = param(1e-3, ge=0.0, le=10.0)
    l1: float = param(2e-5, ge=0.0, le=1.0)
    warmup_epochs: int = param(2, ge=0, le=200)
    patience: int = param(4, ge=1, le=200)
    variants: tuple[str, ...] = param(VARIANTS, choices=VARIANTS)
    threads: int = param(1, ge=1, le=64)  # small matmuls: a second thread buys little
    seed: int = param(0, ge=0)


QUICK = {
    "n_train": 1000,
    "n_val": 500,
    "n_test": 1000,
    "epochs": 4,
    "hidden": 64,
    "warmup_epochs": 1,
    "patience": 1,
}
N_TRAIN_IMAGES = 60_000  # Fashion-MNIST training images: n_train from the head, n_val from the tail

NOTES = (
    "Gradient accumulation 4 x 16 vs one batch of 64: max gradient difference "
    "{accumulation_max_grad_diff:.1e}.",
)
BATCHNORM_NOTE = (
    "Our BatchNorm {batchnorm_ours_test_acc:.4f} vs nn.BatchNorm1d {batchnorm_torch_test_acc:.4f} "
    "test accuracy (same seed, same batches)."
)
BASELINE_NOTE = (
    "Baseline: train {train_acc:.3f} vs test {test_acc:.3f} (gap {gap_train_minus_test:+.3f}). "
    "Best: {best} at {best_acc:.4f} ({best_gain:+.4f} vs baseline)."
)
VARIANT_NOTE = (
    "{variant}: test {test_acc:.4f} ({gain:+.4f}), gap {gap_train_minus_test:+.3f}, "
    "{epochs_run} epochs."
)


def make_mlp(config: Config, variant: str):
    """784 -> hidden -> hidden -> 10 with the variant's normalisation / dropout layers."""
    from torch import nn

    def block(n_in: int, k: int) -> list:
        layers = [nn.Linear(n_in, config.hidden)]
        if variant in ("batchnorm (ours)", "all combined"):
            layers.append(ref.BatchNorm(config.hidden))
        elif variant == "batchnorm (torch)":
            layers.append(nn.BatchNorm1d(config.hidden))
        layers.append(nn.ReLU())
        if variant in ("dropout", "all combined"):
            layers.append(ref.Dropout(config.dropout, seed=config.seed + k))
        return layers

    return nn.Sequential(
        nn.Flatten(), *block(784, 0), *block(config.hidden, 1), nn.Linear(config.hidden, 10)
    )


def _accuracy_and_loss(model, X, y) -> tuple[float, float]:
    import torch
    import torch.nn.functional as F

    model.eval()
    with torch.no_grad():
        logits = model(X)
    return float((logits.argmax(1) == y).float().mean()), float(F.cross_entropy(logits, y))


def train_variant(variant: str, config: Config, data: tuple) -> tuple[dict, list[dict]]:
    """Train one ablation variant; returns (table row, per-epoch curve)."""
    import torch
    import torch.nn.functional as F

    Xtr, ytr, Xva, yva, Xte, yte = data
    torch.manual_seed(config.seed)
    model = make_mlp(config, variant)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)  # same batch order for every variant
    steps_per_epoch = (len(Xtr) + config.batch_size - 1) // config.batch_size
    total_steps, warmup = config.epochs * steps_per_epoch, config.warmup_epochs * steps_per_epoch
    weights = [p for n, p in model.named_parameters() if n.endswith("weight") and p.dim() > 1]
    stopper = (
        ref.EarlyStopping(config.patience)
        if variant in ("early stopping", "all combined")
        else None
    )
    best_state, curve, step, start = None, [], 0, time.process_time()
    for epoch in range(config.epochs):
        model.train()
        for idx in torch.randperm(len(Xtr), generator=gen).split(config.batch_size):
            if variant in ("warmup+cosine", "all combined"):
                for group in opt.param_groups:
                    group["lr"] = ref.warmup_cosine_lr(step, config.lr, warmup, total_steps)
            loss = F.cross_entropy(model(Xtr[idx]), ytr[idx])
            if variant in ("L2", "all combined"):
                loss = loss + ref.l2_penalty(weights, config.l2)
            if variant == "L1":
                loss = loss + ref.l1_penalty(weights, config.l1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
        train_acc, train_loss = _accuracy_and_loss(model, Xtr, ytr)
        val_acc, val_loss = _accuracy_and_loss(model, Xva, yva)
        curve.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "train_acc": train_acc,
                "val_acc": val_acc,
            }
        )
        if stopper is not None:
            stop = stopper.step(val_loss)
            if stopper.best_epoch == epoch:
                best_state = copy.deepcopy(model.state_dict())
            if stop:
                break
    if best_state is not None:  # early stopping restores the weights of the best epoch
        model.load_state_dict(best_state)
    train_acc, _ = _accuracy_and_loss(model, Xtr, ytr)
    val_acc, val_loss = _accuracy_and_loss(model, Xva, yva)
    test_acc, _ = _accuracy_and_loss(model, Xte, yte)
    small = sum(int((w.abs() < 1e-3).sum()) for w in weights) / sum(w.numel() for w in weights)
    row = {
        "variant": variant,
        "train_acc": train_acc,
        "val_acc": val_acc,
        "test_acc": test_acc,
        "gap_train_minus_test": train_acc - test_acc,
        "epochs_run": len(curve),
        "best_val_loss": min(c["val_loss"] for c in curve),
        "frac_weights_below_1e-3": small,
        "cpu_seconds": time.process_time() - start,
    }
    return row, curve


def _check_split(config: Config) -> None:
    if config.n_train + config.n_val > N_TRAIN_IMAGES:
        raise ConfigError(
            f"config keys 'n_train' + 'n_val' are {config.n_train + config.n_val}; at most "
            f"{N_TRAIN_IMAGES}, so the validation images stay out of the training set"
        )


def _fashion(config: Config) -> tuple:
    """Train from the head of the training images, validation from the tail, then the test set."""
    import torch

    d = load("fashion-mnist")

    def images(x):
        return torch.from_numpy(x.astype(np.float32) / 255.0)

    def labels(y):
        return torch.from_numpy(y).long()

    n, v, m = config.n_train, config.n_val, config.n_test
    return (
        images(d["X_train"][:n]),
        labels(d["y_train"][:n]),
        images(d["X_train"][-v:]),
        labels(d["y_train"][-v:]),
        images(d["X_test"][:m]),
        labels(d["y_test"][:m]),
    )


def _ablation(config: Config, data: tuple, ctx: RunContext) -> tuple[list[dict], dict]:
    """Every variant from the same seed and batch order: table rows and per-epoch curves."""
    rows, curves = [], {}
    for variant in ctx.track(list(config.variants), "ablation"):
        row, curves[variant] = train_variant(variant, config, data)
        rows.append(row)
    return rows, curves


def accumulation_check(X, y, seed: int) -> float:
    """Max |grad(4 x 16 accumulated) - grad(batch 64)| of a float64 MLP on 64 real images."""
    import torch
    import torch.nn.functional as F
    from torch import nn

    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 64), nn.ReLU(), nn.Linear(64, 10)).double()
    x, t = X[:64].double(), y[:64]
    model.zero_grad()
    F.cross_entropy(model(x), t).backward()
    full = [p.grad.clone() for p in model.parameters()]
    ref.accumulate_gradients(model, F.cross_entropy, x, t, 16)
    return max(float((p.grad - g).abs().max()) for p, g in zip(model.parameters(), full))


def _metric_key(variant: str) -> str:
    return variant.replace(" ", "_").replace("(", "").replace(")", "").replace("+", "_")


def _summary(config: Config, rows: list[dict], acc_diff: float) -> dict:
    metrics: dict = {
        "accumulation_max_grad_diff": acc_diff,
        "n_train": config.n_train,
        "epochs": config.epochs,
        "cpu_seconds": sum(r["cpu_seconds"] for r in rows),
    }
    return metrics | {f"{_metric_key(r['variant'])}_test_acc": r["test_acc"] for r in rows}


def _headline(metrics: dict) -> tuple[str, str | None]:
    """Our BatchNorm beside torch's when both ran, else the first variant alone."""
    key, lib = "batchnorm_ours_test_acc", "batchnorm_torch_test_acc"
    if key in metrics and lib in metrics:
        return key, lib
    return next(k for k in metrics if k.endswith("_test_acc")), None


def _notes(metrics: dict, rows: list[dict]) -> list[str]:
    """The accumulation check, BatchNorm beside torch's, then each variant against the baseline."""
    notes = render_notes(NOTES, metrics)
    if _headline(metrics)[1] is not None:
        notes += render_notes((BATCHNORM_NOTE,), metrics)
    base = next((r for r in rows if r["variant"] == "baseline"), None)
    if base is None:
        return notes
    best = max(rows, key=lambda r: r["test_acc"])
    best_gain = best["test_acc"] - base["test_acc"]
    best_values = {"best": best["variant"], "best_acc": best["test_acc"], "best_gain": best_gain}
    notes += render_notes((BASELINE_NOTE,), base | best_values)
    for r in rows:
        if r["variant"] != "baseline":
            notes += render_notes((VARIANT_NOTE,), r | {"gain": r["test_acc"] - base["test_acc"]})
    return notes


def _curves_figure(curves: dict, ctx: RunContext) -> None:
    with figure(ctx, "ablation_curves", 1, 2, figsize=(11, 4)) as (_, axes):
        for name, curve in curves.items():
            ep = [c["epoch"] for c in curve]
            axes[0].plot(ep, [c["val_loss"] for c in curve], label=name)
            axes[1].plot(ep, [c["train_acc"] - c["val_acc"] for c in curve], label=name)
        axes[0].set(xlabel="epoch", ylabel="validation cross-entropy", title="validation loss")
        axes[1].set(xlabel="epoch", ylabel="train acc - val acc", title="generalisation gap")
        axes[0].legend(fontsize=7)


def _schedule_figure(config: Config, ctx: RunContext) -> None:
    """The warm-up + cosine schedule drawn for 100 steps per epoch."""
    steps = config.epochs * 100
    warmup = config.warmup_epochs * 100
    lrs = [ref.warmup_cosine_lr(s, config.lr, warmup, steps) for s in range(steps)]
    with figure(ctx, "lr_schedule", figsize=(6, 3.2)) as (_, ax):
        ax.plot(np.arange(steps) / 100, lrs)
        ax.set(
            xlabel="epoch", ylabel="learning rate", title="linear warm-up, then cosine annealing"
        )


def run(config: Config, ctx: RunContext) -> LabResult:
    import torch

    _check_split(config)
    torch.set_num_threads(config.threads)
    data = _fashion(config)
    rows, curves = _ablation(config, data, ctx)
    _curves_figure(curves, ctx)
    _schedule_figure(config, ctx)
    metrics = _summary(config, rows, accumulation_check(data[0], data[1], config.seed))

    key, lib = _headline(metrics)
    return LabResult(
        metrics=metrics,
        key_metric=key,
        library_metric=lib,
        tables={"ablation": rows},
        figures=ctx.figures,
        notes=_notes(metrics, rows),
    )
