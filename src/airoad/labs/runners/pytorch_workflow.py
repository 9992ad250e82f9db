"""Runner for pytorch-workflow on Fashion-MNIST: train a small network twice with the same
seeds, once straight through and once stopped at a checkpoint, reloaded into fresh objects and
resumed; the two loss curves must coincide. Then export TorchScript and check it on the test set."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import cpu_timed, figure, param, render_notes, thread_limit
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
    hidden: int = param(256, ge=1, le=8192)
    dropout: float = param(0.2, ge=0.0, lt=1.0)
    epochs: int = param(6, ge=2, le=100)
    resume_after: int = param(3, ge=1, le=99)  # stop, save and reload after this epoch (< epochs)
    batch_size: int = param(128, ge=1, le=60_000)
    lr: float = param(1e-3, gt=0.0, le=1.0)  # Adam
    n_train: int = param(60_000, ge=100, le=60_000)
    n_test: int = param(10_000, ge=100, le=10_000)
    threads: int = param(1, ge=1, le=64)
    seed: int = param(0, ge=0)


QUICK = {"epochs": 2, "resume_after": 1, "n_train": 3000, "n_test": 2000}

NOTES = (
    "Resumed vs uninterrupted loss curve over {n_batches} batches: largest difference "
    "{resume_max_loss_diff:.1e} -> {resume_verdict}",
    "Test accuracy {test_accuracy:.4f} after {epochs} epochs on {n_train} images; one run took "
    "{cpu_seconds_per_run:.1f} CPU s ({wall_seconds_per_run:.1f} s wall).",
    "TorchScript module: accuracy {torchscript_test_accuracy:.4f}, largest logit difference "
    "{torchscript_max_logit_diff:.1e}.",
    "Hardest class: {hardest_class} (recall {hardest_recall:.2f}).",
)


def _check_resume_point(config: Config) -> None:
    if not config.resume_after < config.epochs:
        raise ConfigError(
            f"config key 'resume_after' is {config.resume_after}; it must be below epochs "
            f"({config.epochs})"
        )


def _fashion(config: Config) -> dict:
    data = load("fashion-mnist")
    n, m = config.n_train, config.n_test
    train_ds = ref.ImageDataset(data["X_train"][:n], data["y_train"][:n])
    test_ds = ref.ImageDataset(data["X_test"][:m], data["y_test"][:m])
    return {
        "train": train_ds,
        "test": test_ds,
        "test_loader": ref.make_loader(test_ds, 1000, shuffle=False),
    }


def _fresh(config: Config, train_ds, seed: int):
    import torch

    torch.manual_seed(seed)
    model = ref.SmallNet(config.hidden, config.dropout)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    return model, optimizer, ref.make_loader(train_ds, config.batch_size, shuffle=True, seed=seed)


def _train(config: Config, data: dict, ctx: RunContext, label: str, epochs: int, state=None):
    """Train for `epochs` more epochs; `state` continues a (model, optimizer, loader) triple."""
    model, optimizer, loader = state or _fresh(config, data["train"], config.seed)
    losses, accs = [], []
    for _ in ctx.track(range(epochs), label):
        losses += ref.train_epoch(model, loader, optimizer)
        accs.append(ref.evaluate(model, data["test_loader"])[1])
    return (model, optimizer, loader), losses, accs


def _uninterrupted(config: Config, data: dict, ctx: RunContext) -> dict:
    """The reference run, straight through, timed in CPU and wall seconds."""
    (_, losses, accs), cpu, wall = cpu_timed(
        lambda: _train(config, data, ctx, "uninterrupted run", config.epochs)
    )
    return {"losses": losses, "accs": accs, "cpu": cpu, "wall": wall}


def _checkpoint_and_resume(config: Config, data: dict, ctx: RunContext) -> dict:
    """Stop after `resume_after` epochs, save, reload into fresh objects, finish the run."""
    label = "run up to the checkpoint"
    (model, optimizer, loader), before, acc_before = _train(
        config, data, ctx, label, config.resume_after
    )
    ckpt = ctx.out_dir / "checkpoint.pt"
    ref.save_checkpoint(ckpt, model, optimizer, config.resume_after, loader.generator, before)
    # Fresh objects with a different seed: everything that matters must come from the file.
    state = _fresh(config, data["train"], config.seed + 1)
    epoch, history = ref.load_checkpoint(ckpt, state[0], state[1], state[2].generator)
    (model, _, _), after, acc_after = _train(
        config, data, ctx, "resumed run", config.epochs - epoch, state
    )
    return {
        "model": model,
        "losses": history + after,
        "accs": acc_before + acc_after,
        "n_before": len(before),
        "checkpoint": ckpt,
    }


def _export_and_check(model, data: dict, ctx: RunContext) -> dict:
    """Export TorchScript, reload it and score both modules on the test set."""
    import torch

    loader = data["test_loader"]
    path = ctx.out_dir / "model_torchscript.pt"
    ref.export_torchscript(model, path)
    scripted = torch.jit.load(str(path))
    test_loss, acc = ref.evaluate(model, loader)
    _, script_acc = ref.evaluate(scripted, loader)
    with torch.no_grad():
        x, _ = next(iter(loader))
        logit_diff = float((scripted(x) - model(x)).abs().max())
        preds = torch.cat([scripted(xb).argmax(1) for xb, _ in loader]).numpy()
    truth = data["test"].labels.numpy()
    return {
        "test_loss": test_loss,
        "acc": acc,
        "script_acc": script_acc,
        "logit_diff": logit_diff,
        "confusion": np.bincount(truth * 10 + preds, minlength=100).reshape(10, 10),
    }


def _summary(config: Config, data: dict, straight: dict, resumed: dict, export: dict) -> dict:
    diff = float(np.max(np.abs(np.array(resumed["losses"]) - np.array(straight["losses"]))))
    return {
        "test_accuracy": export["acc"],
        "test_loss": export["test_loss"],
        "torchscript_test_accuracy": export["script_acc"],
        "torchscript_max_logit_diff": export["logit_diff"],
        "uninterrupted_test_accuracy": straight["accs"][-1],
        "resume_max_loss_diff": diff,
        "resume_curves_identical": bool(diff <= 1e-6),
        "cpu_seconds_per_run": straight["cpu"],
        "wall_seconds_per_run": straight["wall"],
        "n_train": len(data["train"]),
        "n_test": len(data["test"]),
        "epochs": config.epochs,
        "checkpoint_kb": resumed["checkpoint"].stat().st_size / 1024,
    }


def _runs_table(config: Config, straight: dict, resumed: dict, export: dict) -> list[dict]:
    runs = [
        ("uninterrupted", straight["losses"][-1], straight["accs"][-1]),
        (
            f"checkpoint after {config.resume_after}, reload, resume",
            resumed["losses"][-1],
            resumed["accs"][-1],
        ),
        ("TorchScript export of the resumed model", None, export["script_acc"]),
    ]
    return [
        {"run": run, "epochs": config.epochs, "final_batch_loss": loss, "test_accuracy": acc}
        for run, loss, acc in runs
    ]


def _per_class_recall(confusion: np.ndarray) -> list[dict]:
    return [
        {"class": c, "recall": float(confusion[i, i] / confusion[i].sum())}
        for i, c in enumerate(CLASSES)
    ]


def _resume_figure(straight: dict, resumed: dict, ctx: RunContext) -> None:
    steps = np.arange(1, len(straight["losses"]) + 1)
    epochs = np.arange(1, len(straight["accs"]) + 1)
    with figure(ctx, "resume_curves", 1, 2, figsize=(11, 4)) as (_, (left, right)):
        left.plot(steps, straight["losses"], lw=3, alpha=0.4, label="uninterrupted")
        left.plot(steps, resumed["losses"], "k-", lw=0.7, label="stopped, reloaded, resumed")
        left.axvline(resumed["n_before"] + 0.5, color="r", ls=":", label="checkpoint")
        left.set(xlabel="batch", ylabel="training loss", yscale="log", title="the same loss curve")
        left.legend()
        right.plot(epochs, straight["accs"], "-o", lw=3, alpha=0.4, label="uninterrupted")
        right.plot(epochs, resumed["accs"], "k--x", label="resumed")
        right.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
        right.legend()


def _confusion_figure(confusion: np.ndarray, ctx: RunContext) -> None:
    rates = confusion / confusion.sum(axis=1, keepdims=True)
    with figure(ctx, "confusion", figsize=(7, 6)) as (_, ax):
        ax.imshow(rates, cmap="Blues")
        for i, j in np.ndindex(rates.shape):
            colour = "white" if rates[i, j] > 0.5 else "black"
            ax.text(j, i, f"{rates[i, j]:.2f}", ha="center", va="center", fontsize=6, color=colour)
        ax.set_xticks(range(10), CLASSES, rotation=60, fontsize=8)
        ax.set_yticks(range(10), CLASSES, fontsize=8)
        ax.set(
            xlabel="predicted", ylabel="true", title="confusion (rows sum to 1), TorchScript model"
        )


def _note_values(config: Config, metrics: dict, straight: dict, per_class: list[dict]) -> dict:
    worst = min(per_class, key=lambda r: r["recall"])
    verdict = (
        "identical: the checkpoint restored model, optimizer and RNG state."
        if metrics["resume_curves_identical"]
        else "they diverge!"
    )
    return {
        **asdict(config),
        **metrics,
        "n_batches": len(straight["losses"]),
        "resume_verdict": verdict,
        "hardest_class": worst["class"],
        "hardest_recall": worst["recall"],
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    _check_resume_point(config)
    with thread_limit(config.threads):
        data = _fashion(config)
        straight = _uninterrupted(config, data, ctx)
        resumed = _checkpoint_and_resume(config, data, ctx)
        export = _export_and_check(resumed["model"], data, ctx)
    metrics = _summary(config, data, straight, resumed, export)
    per_class = _per_class_recall(export["confusion"])

    _resume_figure(straight, resumed, ctx)
    _confusion_figure(export["confusion"], ctx)

    return LabResult(
        metrics=metrics,
        key_metric="test_accuracy",
        library_metric="torchscript_test_accuracy",
        tables={
            "runs": _runs_table(config, straight, resumed, export),
            "per_class_recall": per_class,
        },
        figures=ctx.figures,
        notes=render_notes(NOTES, _note_values(config, metrics, straight, per_class)),
    )
