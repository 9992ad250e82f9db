"""Runner for cnn: NumPy conv2d/pooling beside torch.nn.functional, then a small residual CNN
with batch norm and crop/flip augmentation trained on Fashion-MNIST.

Part 1 checks our im2col layers against torch on real images (values, gradients, speed).
Part 2 trains `FashionCNN` with AdamW + one-cycle learning rate and reports test accuracy per
epoch, with CPU time (process_time, all threads) and wall time, plus filters and feature maps."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import changed_from_full, figure, param, race, render_notes
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
    n_train: int = param(60_000, ge=100, le=60_000)
    n_test: int = param(10_000, ge=100, le=10_000)
    epochs: int = param(10, ge=1, le=100)
    batch_size: int = param(128, ge=1, le=60_000)
    lr: float = param(4e-3, gt=0.0, le=1.0)  # peak of the one-cycle schedule
    weight_decay: float = param(5e-4, ge=0.0, le=1.0)
    channels: tuple[int, ...] = param((16, 32), ge=1, le=512, min_len=2)  # exactly two stages
    hidden: int = param(128, ge=1, le=8192)
    dropout: float = param(0.2, ge=0.0, lt=1.0)
    crop_padding: int = param(2, ge=0, le=14)
    flip: bool = param(True)
    target_accuracy: float = param(0.91, gt=0.0, le=1.0)  # the full run's target
    threads: int = param(2, ge=1, le=64)
    check_images: int = param(64, ge=1, le=10_000)  # images for the NumPy-vs-torch layer check
    seed: int = param(0, ge=0)


QUICK = {"n_train": 2000, "n_test": 1000, "epochs": 1, "check_images": 8, "threads": 1}

# Fields that do not change what the target was set for: the full run keeps its target with them.
NOT_SETUP = ("target_accuracy", "threads", "check_images", "seed")

NOTES = (
    "NumPy im2col layers match torch.nn.functional to {conv_max_abs_diff_out:.1e} (values) and "
    "{conv_max_abs_diff_grad:.1e} (gradients) in float64; our conv forward+backward takes "
    "{conv_fwd_bwd_time_ratio_ours_over_torch:.1f}x torch's time on {check_images} images.",
    "CNN ({n_parameters} parameters): test accuracy {test_accuracy:.4f} after {epochs} epochs on "
    "{n_train} images; {cpu_seconds:.0f} CPU-s (process_time over {threads} threads), "
    "{wall_seconds:.0f} s wall (wall time is inflated when other jobs share the machine).",
    "{target_sentence}",
)


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

    def ours() -> None:
        _, cache = ref.conv2d_forward(x, w, b, 1, 1)
        ref.conv2d_backward(g, cache)

    def theirs() -> None:
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        F.conv2d(xt, wt, bt, padding=1).backward(torch.from_numpy(g))

    races = [race(ours, theirs) for _ in range(repeats)]
    ours_s = np.median([r["ours_seconds"] for r in races])
    return float(ours_s / np.median([r["library_seconds"] for r in races]))


def _stopwatch() -> Callable[[], tuple[float, float]]:
    """A clock started now: each call returns (CPU seconds, all threads; wall seconds) so far."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    return lambda: (time.process_time() - cpu0, time.perf_counter() - wall0)


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
    history, clock = [], _stopwatch()
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
        acc = evaluate(model, Xte, yte)
        cpu, wall = clock()
        history.append(
            {
                "epoch": epoch + 1,
                "train_loss": total / len(X),
                "test_accuracy": acc,
                "cpu_seconds": cpu,
                "wall_seconds": wall,
            }
        )
    return model, history, (Xte, yte)


def _check_channels(config: Config) -> None:
    if len(config.channels) != 2:
        raise ConfigError(
            f"config key 'channels' has {len(config.channels)} values; FashionCNN takes exactly "
            "two (stage 1, stage 2), e.g. --set channels=16,32"
        )


def _layer_check(config: Config, data: dict, ctx: RunContext) -> tuple[list[dict], float]:
    """Part 1: our conv2d / pooling against torch on the first test images, in float64."""
    check_x = data["X_test"][: config.check_images, None].astype(np.float64) / 255.0
    with ctx.step("NumPy conv2d / pooling vs torch"):
        return conv_check(check_x, config.seed)


def _summary(config: Config, model, history, check_rows, ratio) -> dict:
    reached = [h for h in history if h["test_accuracy"] >= config.target_accuracy]
    last = history[-1]
    return {
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


def _target_is_ours(config: Config) -> bool:
    """The target belongs to the full run's setup, or to any run whose target was set by hand."""
    setup = [f.name for f in fields(Config) if f.name not in NOT_SETUP]
    by_hand = config.target_accuracy != Config().target_accuracy
    return by_hand or not changed_from_full(config, setup)


def _target_sentence(config: Config, history: list[dict]) -> str:
    target = config.target_accuracy
    if not _target_is_ours(config):
        full = Config()
        return (
            f"The {target:.0%} target is for the full run ({full.epochs} epochs on "
            f"{full.n_train} images)."
        )
    reached = [h for h in history if h["test_accuracy"] >= target]
    if reached:
        first = reached[0]
        return f"Reached {target:.0%} at epoch {first['epoch']} ({first['cpu_seconds']:.0f} CPU-s)."
    return f"Did not reach {target:.0%} in this config."


def _curves_figure(history: list[dict], config: Config, ctx: RunContext) -> None:
    ep = [h["epoch"] for h in history]
    label = "target" if _target_is_ours(config) else "full-run target"
    with figure(ctx, "training_curves", 1, 2, figsize=(10, 3.8)) as (_, ax):
        ax[0].plot(ep, [h["train_loss"] for h in history], "o-")
        ax[0].set(xlabel="epoch", ylabel="train cross-entropy", title="training loss (augmented)")
        ax[1].plot(ep, [h["test_accuracy"] for h in history], "o-")
        ax[1].axhline(
            config.target_accuracy, color="r", ls=":", label=f"{label} {config.target_accuracy:.0%}"
        )
        ax[1].set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
        ax[1].legend()


def _filters_figure(model, ctx: RunContext) -> None:
    filters = model.stage1[0].weight.detach()[:, 0].numpy()  # (c1, 3, 3)
    cols = 8
    rows = (len(filters) + cols - 1) // cols
    with figure(ctx, "filters", rows, cols, figsize=(cols * 1.2, rows * 1.3)) as (fig, axes):
        for k, a in enumerate(np.ravel(axes)):
            a.axis("off")
            if k < len(filters):
                lim = np.abs(filters[k]).max()
                a.imshow(filters[k], cmap="bwr", vmin=-lim, vmax=lim)
        fig.suptitle("first-layer 3x3 filters (red +, blue -)")


def _feature_maps_figure(model, Xte, ctx: RunContext) -> None:
    import torch

    model.eval()
    with torch.no_grad():
        maps = [m[0].numpy() for m in model.features(Xte[:1])]
    titles = ["stage 1 (14x14)", "stage 2 (7x7)", "residual (7x7)"]
    with figure(ctx, "feature_maps", 3, 9, figsize=(12, 4.6)) as (fig, axes):
        for r, fmap in enumerate(maps):
            axes[r, 0].imshow(Xte[0, 0].numpy(), cmap="gray")
            axes[r, 0].set_title("input" if r == 0 else "", fontsize=8)
            for c in range(1, 9):
                axes[r, c].imshow(fmap[c - 1], cmap="viridis")
            for a in axes[r]:
                a.set_xticks([])
                a.set_yticks([])
            axes[r, 0].set_ylabel(titles[r], fontsize=8)
        fig.suptitle("feature maps of one test image (first 8 channels per stage)")


def _augmentation_figure(Xte, config: Config, ctx: RunContext) -> None:
    import torch

    gen = torch.Generator().manual_seed(config.seed)
    aug = ref.augment(Xte[:8], max(config.crop_padding, 1), gen, True)
    with figure(ctx, "augmentation", 2, 8, figsize=(10, 2.8)) as (fig, axes):
        for k in range(8):
            axes[0, k].imshow(Xte[k, 0].numpy(), cmap="gray")
            axes[1, k].imshow(aug[k, 0].numpy(), cmap="gray")
            axes[0, k].axis("off")
            axes[1, k].axis("off")
        fig.suptitle("originals (top) and random crop + flip (bottom)")


def _classifier_writer(model, config: Config, test_accuracy: float) -> Callable[[Path], None]:
    """Writes `model.pt` (the state_dict) and `model.json` (how to rebuild and feed it)."""
    import torch

    def write(folder: Path) -> None:
        torch.save(model.state_dict(), folder / "model.pt")
        spec = {
            "module": "airoad.neural.cnn.FashionCNN",
            "args": {
                "channels": list(config.channels),
                "hidden": config.hidden,
                "n_classes": len(CLASSES),
                "dropout": config.dropout,
            },
            "dataset": "fashion-mnist",
            "test_accuracy": test_accuracy,
            "n_test": config.n_test,
            "input": {"shape": [1, 28, 28], "scale": 1 / 255, "mean": MEAN, "std": STD},
            "classes": list(CLASSES),
        }
        (folder / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


def run(config: Config, ctx: RunContext) -> LabResult:
    _check_channels(config)
    data = load("fashion-mnist")
    check_rows, ratio = _layer_check(config, data, ctx)
    model, history, (Xte, _) = train(config, data, ctx)
    metrics = _summary(config, model, history, check_rows, ratio)

    _curves_figure(history, config, ctx)
    _filters_figure(model, ctx)
    _feature_maps_figure(model, Xte, ctx)
    _augmentation_figure(Xte, config, ctx)
    ctx.save_artifact("classifier", _classifier_writer(model, config, metrics["test_accuracy"]))

    values = {**asdict(config), **metrics, "target_sentence": _target_sentence(config, history)}
    return LabResult(
        metrics=metrics,
        key_metric="test_accuracy",
        library_metric=None,
        tables={"layer_check": check_rows, "epochs": history},
        figures=ctx.figures,
        notes=render_notes(NOTES, values),
    )
