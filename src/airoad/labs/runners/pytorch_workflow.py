"""Runner for pytorch-workflow on Fashion-MNIST: train a small network twice with the same
seeds, once straight through and once stopped at a checkpoint, reloaded into fresh objects and
resumed; the two loss curves must coincide. Then export TorchScript and check it on the test set."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.neural import pytorch_workflow as ref

CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)


@dataclass(frozen=True)
class Config:
    hidden: int = 256
    dropout: float = 0.2
    epochs: int = 6
    resume_after: int = 3  # the interrupted run stops, saves and reloads after this epoch
    batch_size: int = 128
    lr: float = 1e-3  # Adam
    n_train: int = 60_000
    n_test: int = 10_000
    threads: int = 1
    seed: int = 0


QUICK = {"epochs": 2, "resume_after": 1, "n_train": 3000, "n_test": 2000}


def _fresh(config: Config, train_ds, seed: int):
    import torch

    torch.manual_seed(seed)
    model = ref.SmallNet(config.hidden, config.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return model, optimizer, ref.make_loader(train_ds, config.batch_size, shuffle=True, seed=seed)


def _train(config, train_ds, test_loader, ctx, label, epochs, state=None):
    """Train for `epochs` more epochs; `state` continues a (model, optimizer, loader) triple."""
    model, optimizer, loader = state or _fresh(config, train_ds, config.seed)
    losses, accs = [], []
    for _ in ctx.track(range(epochs), label):
        losses += ref.train_epoch(model, loader, optimizer)
        accs.append(ref.evaluate(model, test_loader)[1])
    return (model, optimizer, loader), losses, accs


def _figures(straight, resumed, acc_straight, acc_resumed, n_before, confusion, ctx) -> list:
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    steps = np.arange(1, len(straight) + 1)
    left.plot(steps, straight, lw=3, alpha=0.4, label="uninterrupted")
    left.plot(steps, resumed, "k-", lw=0.7, label="stopped, reloaded, resumed")
    left.axvline(n_before + 0.5, color="r", ls=":", label="checkpoint")
    left.set(xlabel="batch", ylabel="training loss", yscale="log", title="the same loss curve")
    left.legend()
    epochs = np.arange(1, len(acc_straight) + 1)
    right.plot(epochs, acc_straight, "-o", lw=3, alpha=0.4, label="uninterrupted")
    right.plot(epochs, acc_resumed, "k--x", label="resumed")
    right.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
    right.legend()
    fig.tight_layout()
    paths = [ctx.figure_path("resume_curves")]
    fig.savefig(paths[0], dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 6))
    rates = confusion / confusion.sum(axis=1, keepdims=True)
    ax.imshow(rates, cmap="Blues")
    for i, j in np.ndindex(rates.shape):
        ax.text(
            j,
            i,
            f"{rates[i, j]:.2f}",
            ha="center",
            va="center",
            fontsize=6,
            color="white" if rates[i, j] > 0.5 else "black",
        )
    ax.set_xticks(range(10), CLASSES, rotation=60, fontsize=8)
    ax.set_yticks(range(10), CLASSES, fontsize=8)
    ax.set(xlabel="predicted", ylabel="true", title="confusion (rows sum to 1), TorchScript model")
    fig.tight_layout()
    paths.append(ctx.figure_path("confusion"))
    fig.savefig(paths[1], dpi=100)
    plt.close(fig)
    return paths


def run(config: Config, ctx: RunContext) -> LabResult:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        return _run(config, ctx)
    finally:
        torch.set_num_threads(threads)


def _run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib
    import torch

    matplotlib.use("Agg")
    if not 0 < config.resume_after < config.epochs:
        raise ValueError("resume_after must be between 0 and epochs (exclusive)")
    data = load("fashion-mnist")
    train_ds = ref.ImageDataset(
        data["X_train"][: config.n_train], data["y_train"][: config.n_train]
    )
    test_ds = ref.ImageDataset(data["X_test"][: config.n_test], data["y_test"][: config.n_test])
    test_loader = ref.make_loader(test_ds, 1000, shuffle=False)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    _, straight, acc_straight = _train(
        config, train_ds, test_loader, ctx, "uninterrupted run", config.epochs
    )
    cpu_run, wall_run = time.process_time() - cpu0, time.perf_counter() - wall0

    (model, optimizer, loader), before, acc_before = _train(
        config, train_ds, test_loader, ctx, "run up to the checkpoint", config.resume_after
    )
    ckpt = ctx.out_dir / "checkpoint.pt"
    ref.save_checkpoint(ckpt, model, optimizer, config.resume_after, loader.generator, before)
    # Fresh objects with a different seed: everything that matters must come from the file.
    state = _fresh(config, train_ds, config.seed + 1)
    epoch, history = ref.load_checkpoint(ckpt, state[0], state[1], state[2].generator)
    (model, _, _), after, acc_after = _train(
        config, train_ds, test_loader, ctx, "resumed run", config.epochs - epoch, state
    )
    resumed, acc_resumed = history + after, acc_before + acc_after
    diff = float(np.max(np.abs(np.array(resumed) - np.array(straight))))

    path = ctx.out_dir / "model_torchscript.pt"
    ref.export_torchscript(model, path)
    scripted = torch.jit.load(str(path))
    test_loss, acc = ref.evaluate(model, test_loader)
    script_loss, script_acc = ref.evaluate(scripted, test_loader)
    with torch.no_grad():
        x, y = next(iter(test_loader))
        logit_diff = float((scripted(x) - model(x)).abs().max())
        preds = torch.cat([scripted(xb).argmax(1) for xb, _ in test_loader]).numpy()
    truth = test_ds.labels.numpy()
    confusion = np.bincount(truth * 10 + preds, minlength=100).reshape(10, 10)
    figures = _figures(straight, resumed, acc_straight, acc_resumed, len(before), confusion, ctx)

    metrics = {
        "test_accuracy": acc,
        "test_loss": test_loss,
        "torchscript_test_accuracy": script_acc,
        "torchscript_max_logit_diff": logit_diff,
        "uninterrupted_test_accuracy": acc_straight[-1],
        "resume_max_loss_diff": diff,
        "resume_curves_identical": bool(diff <= 1e-6),
        "cpu_seconds_per_run": cpu_run,
        "wall_seconds_per_run": wall_run,
        "n_train": len(train_ds),
        "n_test": len(test_ds),
        "epochs": config.epochs,
        "checkpoint_kb": ckpt.stat().st_size / 1024,
    }
    rows = [
        {
            "run": "uninterrupted",
            "epochs": config.epochs,
            "final_batch_loss": straight[-1],
            "test_accuracy": acc_straight[-1],
        },
        {
            "run": f"checkpoint after {config.resume_after}, reload, resume",
            "epochs": config.epochs,
            "final_batch_loss": resumed[-1],
            "test_accuracy": acc_resumed[-1],
        },
        {
            "run": "TorchScript export of the resumed model",
            "epochs": config.epochs,
            "final_batch_loss": None,
            "test_accuracy": script_acc,
        },
    ]
    per_class = [
        {"class": c, "recall": float(confusion[i, i] / confusion[i].sum())}
        for i, c in enumerate(CLASSES)
    ]
    worst = min(per_class, key=lambda r: r["recall"])
    notes = [
        f"Resumed vs uninterrupted loss curve over {len(straight)} batches: largest "
        f"difference {diff:.1e} -> "
        + (
            "identical: the checkpoint restored model, optimizer and RNG state."
            if diff <= 1e-6
            else "they diverge!"
        ),
        f"Test accuracy {acc:.4f} after {config.epochs} epochs on {len(train_ds)} images; "
        f"one run took {cpu_run:.1f} CPU s ({wall_run:.1f} s wall).",
        f"TorchScript module: accuracy {script_acc:.4f}, largest logit difference "
        f"{logit_diff:.1e}.",
        f"Hardest class: {worst['class']} (recall {worst['recall']:.2f}).",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="test_accuracy",
        library_metric="torchscript_test_accuracy",
        tables={"runs": rows, "per_class_recall": per_class},
        figures=figures,
        notes=notes,
    )
