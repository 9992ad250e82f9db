"""Runner for cnn: NumPy conv2d/pooling beside torch.nn.functional, then a small residual CNN
with batch norm and crop/flip augmentation trained on Fashion-MNIST.

Part 1 checks our im2col layers against torch on real images (values, gradients, speed).
Part 2 trains `FashionCNN` with AdamW + one-cycle learning rate and reports test accuracy per
epoch, with CPU time (process_time, all threads) and wall time, plus filters and feature maps."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

# Idle OpenMP threads sleep instead of spinning: on a shared 2-core machine spinning threads
# burn (and bill) several times the CPU time of the real work. Read when torch first loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.neural import cnn as ref

MEAN, STD = 0.2860, 0.3530  # Fashion-MNIST pixel mean / std on the training set (in [0, 1])
CLASSES = (
    "T-shirt",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "boot",
)


@dataclass(frozen=True)
class Config:
    n_train: int = 60_000
    n_test: int = 10_000
    epochs: int = 10
    batch_size: int = 128
    lr: float = 4e-3  # peak of the one-cycle schedule
    weight_decay: float = 5e-4
    channels: tuple[int, ...] = (16, 32)
    hidden: int = 128
    dropout: float = 0.2
    crop_padding: int = 2
    flip: bool = True
    target_accuracy: float = 0.91
    threads: int = 2
    check_images: int = 64  # images for the NumPy-vs-torch layer check
    seed: int = 0


QUICK = {"n_train": 2000, "n_test": 1000, "epochs": 1, "check_images": 8, "threads": 1}


def prepare(images: np.ndarray):
    """uint8 (N, 28, 28) -> standardised float32 tensor (N, 1, 28, 28)."""
    import torch

    return torch.from_numpy(((images.astype(np.float32) / 255.0 - MEAN) / STD)[:, None])


def conv_check(x: np.ndarray, seed: int, repeats: int = 3) -> tuple[list[dict], float]:
    """Our conv2d / pooling vs torch.nn.functional on float64 images: max differences and time.

    Returns the table rows and (our conv forward+backward seconds) / (torch's).
    """
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    rows, ratio = [], float("nan")
    w, b = rng.normal(size=(8, x.shape[1], 3, 3)) / 3, rng.normal(size=8)
    for stride, padding in [(1, 1), (2, 1), (1, 0)]:
        out, cache = ref.conv2d_forward(x, w, b, stride, padding)
        g = rng.normal(size=out.shape)
        dx, dw, db = ref.conv2d_backward(g, cache)
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        ot = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
        ot.backward(torch.from_numpy(g))
        grad_err = max(
            float(np.abs(dx - xt.grad.numpy()).max()),
            float(np.abs(dw - wt.grad.numpy()).max()),
            float(np.abs(db - bt.grad.numpy()).max()),
        )
        rows.append(
            {
                "layer": f"conv2d 3x3 stride {stride} pad {padding}",
                "out_shape": str(out.shape),
                "max_abs_diff_out": float(np.abs(out - ot.detach().numpy()).max()),
                "max_abs_diff_grad": grad_err,
            }
        )
        if stride == 1 and padding == 1:
            ratio = _time_ratio(x, w, b, g, repeats)
    for name, fwd, bwd, lib in [
        ("maxpool2d 2x2", ref.maxpool2d_forward, ref.maxpool2d_backward, F.max_pool2d),
        ("avgpool2d 2x2", ref.avgpool2d_forward, ref.avgpool2d_backward, F.avg_pool2d),
    ]:
        out, cache = fwd(x, 2)
        g = rng.normal(size=out.shape)
        xt = torch.tensor(x, requires_grad=True)
        ot = lib(xt, 2)
        ot.backward(torch.from_numpy(g))
        rows.append(
            {
                "layer": name,
                "out_shape": str(out.shape),
                "max_abs_diff_out": float(np.abs(out - ot.detach().numpy()).max()),
                "max_abs_diff_grad": float(np.abs(bwd(g, cache) - xt.grad.numpy()).max()),
            }
        )
    return rows, ratio


def _time_ratio(x, w, b, g, repeats: int) -> float:
    """Median (ours / torch) seconds of one conv forward+backward, interleaved."""
    import torch
    import torch.nn.functional as F

    ours, theirs = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        _, cache = ref.conv2d_forward(x, w, b, 1, 1)
        ref.conv2d_backward(g, cache)
        ours.append(time.perf_counter() - t)
        t = time.perf_counter()
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        F.conv2d(xt, wt, bt, padding=1).backward(torch.from_numpy(g))
        theirs.append(time.perf_counter() - t)
    return float(np.median(ours) / np.median(theirs))


def evaluate(model, X, y, batch: int = 1000) -> float:
    """Test accuracy of `model` in eval mode."""
    import torch

    model.eval()
    with torch.no_grad():
        pred = torch.cat([model(X[i : i + batch]).argmax(1) for i in range(0, len(X), batch)])
    return float((pred == y).float().mean())


def train(config: Config, data: dict, ctx: RunContext | None = None):
    """Train FashionCNN; returns (model, history rows with accuracy and cumulative CPU/wall s)."""
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    X, y = (
        prepare(data["X_train"][: config.n_train]),
        torch.from_numpy(data["y_train"][: config.n_train]).long(),
    )
    Xte, yte = (
        prepare(data["X_test"][: config.n_test]),
        torch.from_numpy(data["y_test"][: config.n_test]).long(),
    )
    model = ref.FashionCNN(tuple(config.channels), config.hidden, 10, config.dropout)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    steps = (len(X) + config.batch_size - 1) // config.batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.epochs * steps)
    history, cpu0, wall0 = [], time.process_time(), time.perf_counter()
    epochs = (
        range(config.epochs) if ctx is None else ctx.track(range(config.epochs), "training CNN")
    )
    for epoch in epochs:
        model.train()
        order, total = torch.randperm(len(X), generator=gen), 0.0
        for i in range(0, len(X), config.batch_size):
            idx = order[i : i + config.batch_size]
            xb = (
                ref.augment(X[idx], config.crop_padding, gen, config.flip)
                if config.crop_padding or config.flip
                else X[idx]
            )
            loss = F.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / len(X),
                "test_accuracy": evaluate(model, Xte, yte),
                "cpu_seconds": time.process_time() - cpu0,
                "wall_seconds": time.perf_counter() - wall0,
            }
        )
    return model, history, (Xte, yte)


def _figures(model, history, Xte, config: Config, ctx: RunContext) -> list:
    import matplotlib.pyplot as plt
    import torch

    out = []
    fig, ax = plt.subplots(1, 2, figsize=(10, 3.8))
    ep = [h["epoch"] for h in history]
    ax[0].plot(ep, [h["train_loss"] for h in history], "o-")
    ax[0].set(xlabel="epoch", ylabel="train cross-entropy", title="training loss (augmented)")
    ax[1].plot(ep, [h["test_accuracy"] for h in history], "o-")
    ax[1].axhline(
        config.target_accuracy, color="r", ls=":", label=f"target {config.target_accuracy:.0%}"
    )
    ax[1].set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    ax[1].legend()
    out.append(ctx.save_figure(fig, "training_curves"))

    filters = model.stage1[0].weight.detach()[:, 0].numpy()  # (c1, 3, 3)
    cols = 8
    rows = (len(filters) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.2, rows * 1.3))
    for k, a in enumerate(np.ravel(axes)):
        a.axis("off")
        if k < len(filters):
            lim = np.abs(filters[k]).max()
            a.imshow(filters[k], cmap="bwr", vmin=-lim, vmax=lim)
    fig.suptitle("first-layer 3x3 filters (red +, blue -)")
    out.append(ctx.save_figure(fig, "filters"))

    model.eval()
    with torch.no_grad():
        maps = [m[0].numpy() for m in model.features(Xte[:1])]
    fig, axes = plt.subplots(3, 9, figsize=(12, 4.6))
    titles = ["stage 1 (14x14)", "stage 2 (7x7)", "residual (7x7)"]
    for r, fmap in enumerate(maps):
        axes[r, 0].imshow(Xte[0, 0].numpy(), cmap="gray")
        axes[r, 0].set_title("input" if r == 0 else "", fontsize=8)
        axes[r, 0].set_ylabel(titles[r], fontsize=8)
        for c in range(1, 9):
            axes[r, c].imshow(fmap[c - 1], cmap="viridis")
        for a in axes[r]:
            a.set_xticks([])
            a.set_yticks([])
        axes[r, 0].set_ylabel(titles[r], fontsize=8)
    fig.suptitle("feature maps of one test image (first 8 channels per stage)")
    out.append(ctx.save_figure(fig, "feature_maps"))

    gen = torch.Generator().manual_seed(config.seed)
    aug = ref.augment(Xte[:8], max(config.crop_padding, 1), gen, True)
    fig, axes = plt.subplots(2, 8, figsize=(10, 2.8))
    for k in range(8):
        axes[0, k].imshow(Xte[k, 0].numpy(), cmap="gray")
        axes[1, k].imshow(aug[k, 0].numpy(), cmap="gray")
        axes[0, k].axis("off")
        axes[1, k].axis("off")
    fig.suptitle("originals (top) and random crop + flip (bottom)")
    out.append(ctx.save_figure(fig, "augmentation"))
    return out


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    data = load("fashion-mnist")
    check_x = data["X_test"][: config.check_images, None].astype(np.float64) / 255.0
    with ctx.step("NumPy conv2d / pooling vs torch"):
        check_rows, ratio = conv_check(check_x, config.seed)
    model, history, (Xte, _) = train(config, data, ctx)
    figures = _figures(model, history, Xte, config, ctx)

    reached = [h for h in history if h["test_accuracy"] >= config.target_accuracy]
    last = history[-1]
    metrics = {
        "test_accuracy": last["test_accuracy"],
        "cpu_seconds": last["cpu_seconds"],
        "wall_seconds": last["wall_seconds"],
        "epochs": config.epochs,
        "n_train": config.n_train,
        "cpu_seconds_to_target": reached[0]["cpu_seconds"] if reached else float("nan"),
        "wall_seconds_to_target": reached[0]["wall_seconds"] if reached else float("nan"),
        "conv_max_abs_diff_out": max(r["max_abs_diff_out"] for r in check_rows),
        "conv_max_abs_diff_grad": max(r["max_abs_diff_grad"] for r in check_rows),
        "conv_fwd_bwd_time_ratio_ours_over_torch": ratio,
        "n_parameters": sum(p.numel() for p in model.parameters()),
    }
    notes = [
        f"NumPy im2col layers match torch.nn.functional to {metrics['conv_max_abs_diff_out']:.1e} "
        f"(values) and {metrics['conv_max_abs_diff_grad']:.1e} (gradients) in float64; our conv "
        f"forward+backward takes {ratio:.1f}x torch's time on {config.check_images} images.",
        f"CNN ({metrics['n_parameters']} parameters): test accuracy {last['test_accuracy']:.4f} after "
        f"{config.epochs} epochs on {config.n_train} images; {last['cpu_seconds']:.0f} CPU-s "
        f"(process_time over {config.threads} threads), {last['wall_seconds']:.0f} s wall "
        "(wall time is inflated when other jobs share the machine).",
        (
            f"Reached {config.target_accuracy:.0%} at epoch {reached[0]['epoch']} "
            f"({reached[0]['cpu_seconds']:.0f} CPU-s)."
            if reached
            else f"Did not reach {config.target_accuracy:.0%} in this config (the quick run is far too short)."
        ),
    ]
    return LabResult(
        metrics=metrics,
        key_metric="test_accuracy",
        library_metric=None,
        tables={"layer_check": check_rows, "epochs": history},
        figures=figures,
        notes=notes,
    )
