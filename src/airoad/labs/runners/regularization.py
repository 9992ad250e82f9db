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
from airoad.labs.contract import LabResult, RunContext
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
    n_train: int = 10_000  # a small training set makes overfitting (and its cures) visible
    n_val: int = 5_000  # held out of the training images, for early stopping
    n_test: int = 10_000
    epochs: int = 25
    batch_size: int = 64
    hidden: int = 256
    lr: float = 1e-3
    dropout: float = 0.3
    l2: float = 1e-3
    l1: float = 2e-5
    warmup_epochs: int = 2
    patience: int = 4
    variants: tuple[str, ...] = VARIANTS
    threads: int = 1  # small matmuls: a second thread buys little
    seed: int = 0


QUICK = {
    "n_train": 1000,
    "n_val": 500,
    "n_test": 1000,
    "epochs": 4,
    "hidden": 64,
    "warmup_epochs": 1,
    "patience": 1,
}


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


def _figures(curves: dict, config: Config, ctx: RunContext) -> list:
    import matplotlib.pyplot as plt

    out = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, curve in curves.items():
        ep = [c["epoch"] for c in curve]
        axes[0].plot(ep, [c["val_loss"] for c in curve], label=name)
        axes[1].plot(ep, [c["train_acc"] - c["val_acc"] for c in curve], label=name)
    axes[0].set(xlabel="epoch", ylabel="validation cross-entropy", title="validation loss")
    axes[1].set(xlabel="epoch", ylabel="train acc - val acc", title="generalisation gap")
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = ctx.figure_path("ablation_curves")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out.append(path)

    steps = config.epochs * 100
    lrs = [
        ref.warmup_cosine_lr(s, config.lr, config.warmup_epochs * 100, steps) for s in range(steps)
    ]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    ax.plot(np.arange(steps) / 100, lrs)
    ax.set(xlabel="epoch", ylabel="learning rate", title="linear warm-up, then cosine annealing")
    fig.tight_layout()
    path = ctx.figure_path("lr_schedule")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    out.append(path)
    return out


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib
    import torch

    matplotlib.use("Agg")
    unknown = set(config.variants) - set(VARIANTS)
    if unknown:
        from airoad.errors import ConfigError

        raise ConfigError(f"unknown variants {sorted(unknown)}; choose from {', '.join(VARIANTS)}")
    torch.set_num_threads(config.threads)
    d = load("fashion-mnist")

    def prep(images):
        return torch.from_numpy(images.astype(np.float32) / 255.0)

    n, v = config.n_train, config.n_val
    data = (
        prep(d["X_train"][:n]),
        torch.from_numpy(d["y_train"][:n]).long(),
        prep(d["X_train"][-v:]),
        torch.from_numpy(d["y_train"][-v:]).long(),  # val: the tail, disjoint
        prep(d["X_test"][: config.n_test]),
        torch.from_numpy(d["y_test"][: config.n_test]).long(),
    )
    rows, curves = [], {}
    for variant in ctx.track(list(config.variants), "ablation"):
        row, curves[variant] = train_variant(variant, config, data)
        rows.append(row)
    figures = _figures(curves, config, ctx)
    acc_diff = accumulation_check(data[0], data[1], config.seed)

    by = {r["variant"]: r for r in rows}
    metrics: dict = {
        "accumulation_max_grad_diff": acc_diff,
        "n_train": n,
        "epochs": config.epochs,
        "cpu_seconds": sum(r["cpu_seconds"] for r in rows),
    }
    for r in rows:
        key = r["variant"].replace(" ", "_").replace("(", "").replace(")", "").replace("+", "_")
        metrics[f"{key}_test_acc"] = r["test_acc"]
    notes = [
        f"Gradient accumulation 4 x 16 vs one batch of 64: max gradient difference {acc_diff:.1e}."
    ]
    key, lib = "batchnorm_ours_test_acc", "batchnorm_torch_test_acc"
    if key not in metrics or lib not in metrics:
        key, lib = next(k for k in metrics if k.endswith("_test_acc")), None
    else:
        notes.append(
            f"Our BatchNorm {metrics[key]:.4f} vs nn.BatchNorm1d {metrics[lib]:.4f} test accuracy "
            "(same seed, same batches)."
        )
    if "baseline" in by:
        base = by["baseline"]
        best = max(rows, key=lambda r: r["test_acc"])
        notes.append(
            f"Baseline: train {base['train_acc']:.3f} vs test {base['test_acc']:.3f} (gap "
            f"{base['gap_train_minus_test']:+.3f}). Best: {best['variant']} at {best['test_acc']:.4f} "
            f"({best['test_acc'] - base['test_acc']:+.4f} vs baseline)."
        )
        for r in rows:
            if r["variant"] != "baseline":
                notes.append(
                    f"{r['variant']}: test {r['test_acc']:.4f} ({r['test_acc'] - base['test_acc']:+.4f}), "
                    f"gap {r['gap_train_minus_test']:+.3f}, {r['epochs_run']} epochs."
                )
    return LabResult(
        metrics=metrics,
        key_metric=key,
        library_metric=lib,
        tables={"ablation": rows},
        figures=figures,
        notes=notes,
    )
