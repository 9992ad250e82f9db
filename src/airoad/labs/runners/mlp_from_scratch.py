"""Runner for mlp-from-scratch: a NumPy MLP trained on full MNIST beside the same network in
torch (same initial weights, same mini-batches, same learning-rate schedule).

Reports test accuracy, CPU seconds (``time.process_time``) and wall seconds of both, a
finite-difference gradient check, and figures: curves, misclassified digits, first-layer weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import changed_from_full, cpu_timed, figure, param, render_notes, thread_limit
from airoad.neural import mlp_from_scratch as ref

MEAN, STD = 0.1307, 0.3081  # MNIST pixel mean and std after scaling to [0, 1]


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...] = param((512, 256), ge=1, le=8192)
    epochs: int = param(10, ge=1, le=200)
    batch_size: int = param(128, ge=1, le=60_000)
    lr: float = param(0.05, gt=0.0, le=10.0)  # peak learning rate, cosine-annealed to 0
    momentum: float = param(0.9, ge=0.0, lt=1.0)
    weight_decay: float = param(0.0, ge=0.0, le=1.0)
    n_train: int = param(60_000, ge=32, le=60_000)  # the first n_train training images
    torch_baseline: bool = param(True)
    target_accuracy: float = param(0.975, gt=0.0, le=1.0)  # the full run's target
    threads: int = param(1, ge=1, le=64)  # BLAS / torch threads; 1 wastes the least CPU time
    seed: int = param(0, ge=0)


QUICK = {"hidden": (128,), "epochs": 2, "n_train": 6000}

# The fields that make a run "the full run" the target was set for (besides the target itself).
TARGET_SETUP = ("hidden", "epochs", "batch_size", "lr", "momentum", "weight_decay", "n_train")

NOTES = (
    "{architecture} on {n_train} images, {epochs} epochs: test accuracy "
    "{ours_test_accuracy:.4f}{target_clause}; training took {ours_cpu_seconds:.1f} CPU s "
    "({ours_wall_seconds:.1f} s wall).",
    "Gradient check (float64, central differences): largest relative error "
    "{gradient_check_max_rel_error:.1e} - {gradient_verdict}",
    "{n_wrong} of {n_test} test digits are misclassified.",
)
TORCH_NOTES = (
    "torch with the same start and batches: {torch_test_accuracy:.4f} ({gap:+.4f} for ours) in "
    "{torch_cpu_seconds:.1f} CPU s; the two differ only by float32 rounding, which grows over "
    "thousands of steps.",
)


def _prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) -> standardised float32 (n, 784)."""
    return ((images.reshape(len(images), -1).astype(np.float32) / 255.0) - MEAN) / STD


def _mnist(config: Config) -> dict:
    data = load("mnist")
    return {
        "X": _prepare(data["X_train"][: config.n_train]),
        "y": np.asarray(data["y_train"][: config.n_train], dtype=np.int64),
        "Xt": _prepare(data["X_test"]),
        "yt": np.asarray(data["y_test"], dtype=np.int64),
        "images_test": data["X_test"],
    }


def _lr(config: Config, epoch: int) -> float:
    return config.lr * 0.5 * (1.0 + np.cos(np.pi * epoch / config.epochs))


def _gradient_check(config: Config, data: dict) -> float:
    """A small float64 network on 32 real images (float32 is too coarse for differences)."""
    small = ref.MLP((784, 16, 10), seed=config.seed, dtype=np.float64)
    return ref.gradient_check(small, data["X"][:32].astype(np.float64), data["y"][:32], n_checks=10)


def _train_ours(config: Config, data: dict, ctx: RunContext) -> dict:
    X, y, Xt, yt = data["X"], data["y"], data["Xt"], data["yt"]
    net = ref.MLP((X.shape[1], *config.hidden, 10), seed=config.seed)
    init = ([w.copy() for w in net.weights], [b.copy() for b in net.biases])
    rng = np.random.default_rng(config.seed)
    hist = {"loss": [], "test_loss": [], "test_acc": []}

    def loop() -> None:
        for epoch in ctx.track(range(config.epochs), "training the NumPy MLP"):
            lr = _lr(config, epoch)
            losses = ref.train_epoch(
                net, X, y, lr, config.batch_size, config.momentum, config.weight_decay, rng
            )
            logits = np.concatenate(
                [net.forward(Xt[i : i + 5000]) for i in range(0, len(Xt), 5000)]
            )
            hist["loss"].append(float(np.mean(losses)))
            hist["test_loss"].append(ref.softmax_cross_entropy(logits, yt)[0])
            hist["test_acc"].append(float((logits.argmax(1) == yt).mean()))

    _, hist["cpu"], hist["wall"] = cpu_timed(loop)
    hist["net"], hist["init"], hist["pred"] = net, init, net.predict(Xt)
    return hist


def _train_torch(config: Config, data: dict, init: tuple, ctx: RunContext) -> dict:
    """The same network in torch: copied initial weights, the same shuffles (same seed)."""
    import torch
    import torch.nn.functional as F

    layers = [torch.nn.Linear(w.shape[0], w.shape[1]) for w in init[0]]
    with torch.no_grad():
        for lin, w, b in zip(layers, *init):
            lin.weight.copy_(torch.from_numpy(w.T))
            lin.bias.copy_(torch.from_numpy(b))
    net = torch.nn.Sequential(*[m for lin in layers for m in (lin, torch.nn.ReLU())][:-1])
    opt = torch.optim.SGD(
        [
            {"params": [lin.weight for lin in layers], "weight_decay": config.weight_decay},
            {"params": [lin.bias for lin in layers], "weight_decay": 0.0},
        ],
        lr=config.lr,
        momentum=config.momentum,
    )
    Xg, yg, Xtt = (torch.from_numpy(data[k]) for k in ("X", "y", "Xt"))
    yt, n = data["yt"], len(data["X"])
    rng = np.random.default_rng(config.seed)
    hist = {"loss": [], "test_loss": [], "test_acc": []}

    def loop() -> None:
        for epoch in ctx.track(range(config.epochs), "training the same MLP in torch"):
            for group in opt.param_groups:
                group["lr"] = _lr(config, epoch)
            order = torch.from_numpy(rng.permutation(n))
            losses = []
            for start in range(0, n, config.batch_size):
                idx = order[start : start + config.batch_size]
                loss = F.cross_entropy(net(Xg[idx]), yg[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
                losses.append(loss.item())
            with torch.no_grad():
                logits = net(Xtt)
            hist["loss"].append(float(np.mean(losses)))
            hist["test_loss"].append(float(F.cross_entropy(logits, torch.from_numpy(yt))))
            hist["test_acc"].append(float((logits.argmax(1).numpy() == yt).mean()))

    _, hist["cpu"], hist["wall"] = cpu_timed(loop)
    return hist


def _summary(config: Config, data: dict, ours: dict, theirs: dict | None, grad_err: float):
    """Metrics and the comparison table (ours, then torch when it ran)."""
    acc = float((ours["pred"] == data["yt"]).mean())
    metrics = {
        "ours_test_accuracy": acc,
        "ours_cpu_seconds": ours["cpu"],
        "ours_wall_seconds": ours["wall"],
        "ours_final_train_loss": ours["loss"][-1],
        "gradient_check_max_rel_error": grad_err,
        "n_train": len(data["X"]),
        "epochs": config.epochs,
        "architecture": "-".join(str(s) for s in (784, *config.hidden, 10)),
        "reached_target": bool(acc >= config.target_accuracy),
    }
    sides = [("NumPy (ours)", ours, acc)]
    if theirs is not None:
        sides.append(("torch (same init, same batches)", theirs, theirs["test_acc"][-1]))
        metrics |= {
            "torch_test_accuracy": theirs["test_acc"][-1],
            "torch_cpu_seconds": theirs["cpu"],
            "torch_wall_seconds": theirs["wall"],
        }
    rows = [
        {
            "implementation": name,
            "test_accuracy": test_acc,
            "final_train_loss": hist["loss"][-1],
            "final_test_loss": hist["test_loss"][-1],
            "cpu_seconds": hist["cpu"],
            "wall_seconds": hist["wall"],
        }
        for name, hist, test_acc in sides
    ]
    return metrics, rows


def _per_epoch(config: Config, ours: dict, theirs: dict | None) -> list[dict]:
    return [
        {
            "epoch": e + 1,
            "lr": _lr(config, e),
            "train_loss": ours["loss"][e],
            "test_loss": ours["test_loss"][e],
            "test_accuracy": ours["test_acc"][e],
            **({"torch_test_accuracy": theirs["test_acc"][e]} if theirs else {}),
        }
        for e in range(config.epochs)
    ]


def _curves_figure(ours: dict, theirs: dict | None, ctx: RunContext) -> None:
    epochs = np.arange(1, len(ours["loss"]) + 1)
    with figure(ctx, "curves", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        for hist, name, style in [(ours, "NumPy", "-o"), (theirs, "torch", "--x")]:
            if hist is None:
                continue
            left.plot(epochs, hist["loss"], style, label=f"{name} train")
            left.plot(epochs, hist["test_loss"], style, alpha=0.5, label=f"{name} test")
            right.plot(epochs, hist["test_acc"], style, label=name)
        left.set(xlabel="epoch", ylabel="cross-entropy", yscale="log", title="loss")
        right.set(xlabel="epoch", ylabel="test accuracy", title="test accuracy")
        left.legend()
        right.legend()


def _misclassified_figure(images_test, yt, pred, ctx: RunContext) -> None:
    wrong = np.flatnonzero(pred != yt)[:32]
    with figure(ctx, "misclassified", 4, 8, figsize=(10, 5.6)) as (fig, axes):
        for ax, i in zip(axes.ravel(), wrong):
            ax.imshow(images_test[i], cmap="gray_r")
            ax.set_title(f"{pred[i]} (true {yt[i]})", fontsize=8)
        for ax in axes.ravel():
            ax.axis("off")
        fig.suptitle("misclassified test digits: predicted (true)")


def _weights_figure(net, ctx: RunContext) -> None:
    w = net.weights[0]
    with figure(ctx, "first_layer_weights", 6, 8, figsize=(9, 7)) as (fig, axes):
        for j, ax in enumerate(axes.ravel()):
            img = w[:, j].reshape(28, 28)
            lim = np.abs(img).max()
            ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
            ax.axis("off")
        fig.suptitle("first-layer weights of 48 hidden units (red +, blue -)")


def _target_clause(config: Config, acc: float) -> str:
    """Reached or missed, said only for the config the target belongs to (the full run's
    training setup, or any run whose target was set by hand)."""
    target = config.target_accuracy
    if target == Config().target_accuracy and changed_from_full(config, TARGET_SETUP):
        return f" (the {target:.3f} target is for the full run)"
    return f", which {'reaches' if acc >= target else 'misses'} the {target:.3f} target"


def _notes(config: Config, metrics: dict, ours: dict, yt) -> list[str]:
    acc = metrics["ours_test_accuracy"]
    grad_err = metrics["gradient_check_max_rel_error"]
    values = {
        **asdict(config),
        **metrics,
        "target_clause": _target_clause(config, acc),
        "gradient_verdict": "backward is right." if grad_err < 1e-6 else "too large!",
        "n_wrong": int((ours["pred"] != yt).sum()),
        "n_test": len(yt),
        "gap": acc - metrics.get("torch_test_accuracy", acc),
    }
    templates = NOTES + (TORCH_NOTES if "torch_test_accuracy" in metrics else ())
    return render_notes(templates, values)


def run(config: Config, ctx: RunContext) -> LabResult:
    with thread_limit(config.threads):
        data = _mnist(config)
        grad_err = _gradient_check(config, data)
        ours = _train_ours(config, data, ctx)
        theirs = _train_torch(config, data, ours["init"], ctx) if config.torch_baseline else None
        metrics, rows = _summary(config, data, ours, theirs, grad_err)

        _curves_figure(ours, theirs, ctx)
        _misclassified_figure(data["images_test"], data["yt"], ours["pred"], ctx)
        _weights_figure(ours["net"], ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_test_accuracy",
        library_metric="torch_test_accuracy" if theirs is not None else None,
        tables={"comparison": rows, "epochs": _per_epoch(config, ours, theirs)},
        figures=ctx.figures,
        notes=_notes(config, metrics, ours, data["yt"]),
    )
