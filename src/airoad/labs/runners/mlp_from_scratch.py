"""Runner for mlp-from-scratch: a NumPy MLP trained on full MNIST beside the same network in
torch (same initial weights, same mini-batches, same learning-rate schedule).

Reports test accuracy, CPU seconds (``time.process_time``) and wall seconds of both, a
finite-difference gradient check, and figures: curves, misclassified digits, first-layer weights."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.neural import mlp_from_scratch as ref

MEAN, STD = 0.1307, 0.3081  # MNIST pixel mean and std after scaling to [0, 1]


@dataclass(frozen=True)
class Config:
    hidden: tuple[int, ...] = (512, 256)
    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.05  # peak learning rate, cosine-annealed to 0 over the epochs
    momentum: float = 0.9
    weight_decay: float = 0.0
    n_train: int = 60_000  # the first n_train training images (60000 = all of MNIST)
    torch_baseline: bool = True
    target_accuracy: float = 0.975
    threads: int = 1  # BLAS / torch threads; 1 spends the least CPU time on a shared machine
    seed: int = 0


QUICK = {"hidden": (128,), "epochs": 2, "n_train": 6000}


def _prepare(images: np.ndarray) -> np.ndarray:
    """uint8 (n, 28, 28) -> standardised float32 (n, 784)."""
    return ((images.reshape(len(images), -1).astype(np.float32) / 255.0) - MEAN) / STD


def _lr(config: Config, epoch: int) -> float:
    return config.lr * 0.5 * (1.0 + np.cos(np.pi * epoch / config.epochs))


def _train_ours(config, X, y, Xt, yt, ctx) -> dict:
    net = ref.MLP((X.shape[1], *config.hidden, 10), seed=config.seed)
    init = ([w.copy() for w in net.weights], [b.copy() for b in net.biases])
    rng = np.random.default_rng(config.seed)
    hist = {"loss": [], "test_loss": [], "test_acc": []}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for epoch in ctx.track(range(config.epochs), "training the NumPy MLP"):
        losses = ref.train_epoch(
            net,
            X,
            y,
            _lr(config, epoch),
            config.batch_size,
            config.momentum,
            config.weight_decay,
            rng,
        )
        logits = np.concatenate([net.forward(Xt[i : i + 5000]) for i in range(0, len(Xt), 5000)])
        hist["loss"].append(float(np.mean(losses)))
        hist["test_loss"].append(ref.softmax_cross_entropy(logits, yt)[0])
        hist["test_acc"].append(float((logits.argmax(1) == yt).mean()))
    hist["cpu"], hist["wall"] = time.process_time() - cpu0, time.perf_counter() - wall0
    hist["net"], hist["init"] = net, init
    return hist


def _train_torch(config, X, y, Xt, yt, init, ctx) -> dict:
    """The same network in torch: copied initial weights, the same shuffles (same seed)."""
    import torch
    import torch.nn.functional as F

    layers = [torch.nn.Linear(w.shape[0], w.shape[1]) for w in init[0]]
    with torch.no_grad():
        for lin, w, b in zip(layers, *init):
            lin.weight.copy_(torch.from_numpy(w.T))
            lin.bias.copy_(torch.from_numpy(b))
    net = torch.nn.Sequential(*[m for lin in layers for m in (lin, torch.nn.ReLU())][:-1])
    decay = [lin.weight for lin in layers]
    opt = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": [lin.bias for lin in layers], "weight_decay": 0.0},
        ],
        lr=config.lr,
        momentum=config.momentum,
    )
    Xg, yg, Xtt = torch.from_numpy(X), torch.from_numpy(y), torch.from_numpy(Xt)
    rng = np.random.default_rng(config.seed)
    hist = {"loss": [], "test_loss": [], "test_acc": []}
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for epoch in ctx.track(range(config.epochs), "training the same MLP in torch"):
        for group in opt.param_groups:
            group["lr"] = _lr(config, epoch)
        order = torch.from_numpy(rng.permutation(len(X)))
        losses = []
        for start in range(0, len(X), config.batch_size):
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
    hist["cpu"], hist["wall"] = time.process_time() - cpu0, time.perf_counter() - wall0
    return hist


def _figures(ours, theirs, images_test, yt, pred, ctx) -> list:
    import matplotlib.pyplot as plt

    out = []
    epochs = np.arange(1, len(ours["loss"]) + 1)
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
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
    out.append(ctx.save_figure(fig, "curves"))

    wrong = np.flatnonzero(pred != yt)[:32]
    fig, axes = plt.subplots(4, 8, figsize=(10, 5.6))
    for ax, i in zip(axes.ravel(), wrong):
        ax.imshow(images_test[i], cmap="gray_r")
        ax.set_title(f"{pred[i]} (true {yt[i]})", fontsize=8)
    for ax in axes.ravel():
        ax.axis("off")
    fig.suptitle("misclassified test digits: predicted (true)")
    out.append(ctx.save_figure(fig, "misclassified"))

    w = ours["net"].weights[0]
    fig, axes = plt.subplots(6, 8, figsize=(9, 7))
    for j, ax in enumerate(axes.ravel()):
        img = w[:, j].reshape(28, 28)
        lim = np.abs(img).max()
        ax.imshow(img, cmap="RdBu_r", vmin=-lim, vmax=lim)
        ax.axis("off")
    fig.suptitle("first-layer weights of 48 hidden units (red +, blue -)")
    out.append(ctx.save_figure(fig, "first_layer_weights"))
    return out


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib
    import torch
    from threadpoolctl import threadpool_limits

    matplotlib.use("Agg")
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(config.threads)
    try:
        with threadpool_limits(config.threads):
            return _run(config, ctx)
    finally:
        torch.set_num_threads(torch_threads)


def _run(config: Config, ctx: RunContext) -> LabResult:
    data = load("mnist")
    X = _prepare(data["X_train"][: config.n_train])
    y = np.asarray(data["y_train"][: config.n_train], dtype=np.int64)
    Xt, yt = _prepare(data["X_test"]), np.asarray(data["y_test"], dtype=np.int64)

    # Gradient check on a small float64 network and 32 real images (float32 is too coarse).
    small = ref.MLP((784, 16, 10), seed=config.seed, dtype=np.float64)
    grad_err = ref.gradient_check(small, X[:32].astype(np.float64), y[:32], n_checks=10)

    ours = _train_ours(config, X, y, Xt, yt, ctx)
    theirs = (
        _train_torch(config, X, y, Xt, yt, ours["init"], ctx) if config.torch_baseline else None
    )
    pred = ours["net"].predict(Xt)
    acc = float((pred == yt).mean())
    arch = "-".join(str(s) for s in (784, *config.hidden, 10))

    rows = [
        {
            "implementation": "NumPy (ours)",
            "test_accuracy": acc,
            "final_train_loss": ours["loss"][-1],
            "final_test_loss": ours["test_loss"][-1],
            "cpu_seconds": ours["cpu"],
            "wall_seconds": ours["wall"],
        }
    ]
    metrics = {
        "ours_test_accuracy": acc,
        "ours_cpu_seconds": ours["cpu"],
        "ours_wall_seconds": ours["wall"],
        "ours_final_train_loss": ours["loss"][-1],
        "gradient_check_max_rel_error": grad_err,
        "n_train": len(X),
        "epochs": config.epochs,
        "architecture": arch,
        "reached_target": bool(acc >= config.target_accuracy),
    }
    library = None
    if theirs is not None:
        rows.append(
            {
                "implementation": "torch (same init, same batches)",
                "test_accuracy": theirs["test_acc"][-1],
                "final_train_loss": theirs["loss"][-1],
                "final_test_loss": theirs["test_loss"][-1],
                "cpu_seconds": theirs["cpu"],
                "wall_seconds": theirs["wall"],
            }
        )
        metrics.update(
            {
                "torch_test_accuracy": theirs["test_acc"][-1],
                "torch_cpu_seconds": theirs["cpu"],
                "torch_wall_seconds": theirs["wall"],
            }
        )
        library = "torch_test_accuracy"
    per_epoch = [
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
    figures = _figures(ours, theirs, data["X_test"], yt, pred, ctx)

    verdict = "reaches" if acc >= config.target_accuracy else "misses"
    notes = [
        f"{arch} on {len(X)} images, {config.epochs} epochs: test accuracy {acc:.4f}, "
        f"which {verdict} the {config.target_accuracy:.3f} target; training took "
        f"{ours['cpu']:.1f} CPU s ({ours['wall']:.1f} s wall).",
        f"Gradient check (float64, central differences): largest relative error "
        f"{grad_err:.1e}" + (" - backward is right." if grad_err < 1e-6 else " - too large!"),
        f"{int((pred != yt).sum())} of {len(yt)} test digits are misclassified.",
    ]
    if theirs is not None:
        gap = acc - theirs["test_acc"][-1]
        notes.append(
            f"torch with the same start and batches: {theirs['test_acc'][-1]:.4f} "
            f"({gap:+.4f} for ours) in {theirs['cpu']:.1f} CPU s; the two differ only "
            "by float32 rounding, which grows over thousands of steps."
        )
    return LabResult(
        metrics=metrics,
        key_metric="ours_test_accuracy",
        library_metric=library,
        tables={"comparison": rows, "epochs": per_epoch},
        figures=figures,
        notes=notes,
    )
