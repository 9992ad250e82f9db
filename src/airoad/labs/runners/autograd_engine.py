"""Runner for autograd-engine: train a small MLP on iris with our NumPy autograd engine and the
same MLP in torch from the same initial weights; compare loss trajectories and test accuracy.

It also rebuilds the loss of a few samples out of scalar ``Value`` nodes and checks that the
scalar engine, the array engine and torch give the same gradients (and how much slower scalars are).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, frame_xy, param, race, render_notes, split, timed
from airoad.neural import autograd_engine as ref
from airoad.neural import scalar_autograd


@dataclass(frozen=True)
class Config:
    hidden: int = param(16, ge=1, le=1024)
    lr: float = param(0.1, gt=0.0, le=10.0)
    epochs: int = param(500, ge=1, le=100_000)
    test_size: float = param(0.3, ge=0.05, le=0.9)  # of 150 flowers; both sides keep 3 species
    scalar_samples: int = param(30, ge=1, le=150)  # samples the scalar engine rebuilds node by node
    seed: int = param(0, ge=0)


QUICK = {"epochs": 60, "scalar_samples": 5}

NOTES = (
    "Ours and torch follow {same_trajectory} loss trajectory: the largest gap over {epochs} "
    "epochs is {max_abs_loss_diff:.2e} (final loss {ours_final_loss:.4f} vs "
    "{torch_final_loss:.4f}).",
    "Test accuracy on {n_test} held-out flowers: ours {ours_test_accuracy:.3f}, torch "
    "{torch_test_accuracy:.3f}.",
    "The scalar engine needs {scalar_graph_nodes} graph nodes for the loss of {scalar_n} samples "
    "and took {scalar_slowdown:.0f}x as long as the array engine; both match torch's gradients "
    "to {grad_max_abs_diff:.1e}.",
)


def _iris(config: Config) -> list[np.ndarray]:
    """Stratified split, standardised with the training statistics only: Xtr, Xte, ytr, yte."""
    X_tr, X_te, y_tr, y_te = split(*frame_xy(load("iris")), config.test_size, config.seed)
    mu, sd = X_tr.mean(0), X_tr.std(0)
    return [(X_tr - mu) / sd, (X_te - mu) / sd, y_tr, y_te]


def _torch_mlp(params: list[np.ndarray]):
    """Leaf tensors holding copies of our initial weights, and the same forward as ref.MLP."""
    import torch

    leaves = [torch.tensor(p.copy(), requires_grad=True) for p in params]

    def forward(X):
        h = X
        for i in range(0, len(leaves), 2):
            h = h @ leaves[i] + leaves[i + 1]
            if i < len(leaves) - 2:
                h = torch.tanh(h)
        return h

    return leaves, forward


def _train_beside_torch(config: Config, data, ctx: RunContext) -> tuple[dict, dict]:
    """Full-batch gradient descent, one epoch of ours then one of torch, from the same weights."""
    import torch
    import torch.nn.functional as F

    X_tr, X_te, y_tr, y_te = data
    model = ref.MLP((X_tr.shape[1], config.hidden, 3), seed=config.seed)
    init = [p.data.copy() for p in model.parameters()]
    leaves, forward = _torch_mlp(init)
    opt = torch.optim.SGD(leaves, lr=config.lr)
    tX, ty = torch.tensor(X_tr), torch.tensor(y_tr)

    def torch_epoch() -> float:
        opt.zero_grad()
        loss = F.cross_entropy(forward(tX), ty)
        loss.backward()
        opt.step()
        return loss.item()

    def our_epoch() -> list[float]:
        return ref.train_mlp(model, X_tr, y_tr, lr=config.lr, epochs=1)

    ours, theirs, sec_ours, sec_torch = [], [], 0.0, 0.0
    for _ in ctx.track(range(config.epochs), "training ours and torch"):
        r = race(our_epoch, torch_epoch)
        ours += r["ours"]
        theirs.append(r["library"])
        sec_ours, sec_torch = sec_ours + r["ours_seconds"], sec_torch + r["library_seconds"]
    with torch.no_grad():
        pred_torch = forward(torch.tensor(X_te)).argmax(1).numpy()
    pred_ours = model(X_te).data.argmax(1)
    metrics = {
        "n_train": len(X_tr),
        "n_test": len(X_te),
        "epochs": config.epochs,
        "ours_test_accuracy": float((pred_ours == y_te).mean()),
        "torch_test_accuracy": float((pred_torch == y_te).mean()),
        "ours_final_loss": ours[-1],
        "torch_final_loss": theirs[-1],
        "max_abs_loss_diff": float(np.abs(np.array(ours) - np.array(theirs)).max()),
        "ours_seconds": sec_ours,
        "torch_seconds": sec_torch,
    }
    return metrics, {"ours": ours, "torch": theirs, "init": init, "pred": (pred_ours, pred_torch)}


def _gradients_three_ways(config: Config, init, data) -> tuple[dict, list[dict]]:
    """Gradients at the initial weights on a few samples: scalar engine, array engine, torch."""
    import torch
    import torch.nn.functional as F

    X, y = data[0][: config.scalar_samples], data[2][: config.scalar_samples]
    fresh = ref.MLP((X.shape[1], config.hidden, 3), seed=config.seed)  # the initial weights

    def scalar():
        loss, weights = _scalar_loss(init, X, y)
        loss.backward()
        return loss, weights

    def tensor():
        loss = ref.cross_entropy(fresh(X), y)
        loss.backward()
        return loss

    (scalar_loss, scalar_w), sec_scalar = timed(scalar)
    tensor_loss, sec_tensor = timed(tensor)
    t_leaves, t_forward = _torch_mlp(init)
    F.cross_entropy(t_forward(torch.tensor(X)), torch.tensor(y)).backward()
    g_torch = np.concatenate([p.grad.numpy().ravel() for p in t_leaves])
    g_scalar = np.concatenate(
        [np.array([[v.grad for v in row] for row in w]).ravel() for w in scalar_w]
    )
    g_tensor = np.concatenate([p.grad.ravel() for p in fresh.parameters()])
    rows = [
        {
            "engine": engine,
            "loss": float(loss.data),
            "max |grad - torch|": float(np.abs(grad - g_torch).max()),
            "graph nodes": len(scalar_autograd.topological_order(loss)),
            "seconds": seconds,
        }
        for engine, loss, grad, seconds in [
            ("scalar Value", scalar_loss, g_scalar, sec_scalar),
            ("array Tensor", tensor_loss, g_tensor, sec_tensor),
        ]
    ]
    metrics = {
        "scalar_grad_max_abs_diff": rows[0]["max |grad - torch|"],
        "tensor_grad_max_abs_diff": rows[1]["max |grad - torch|"],
        "scalar_graph_nodes": rows[0]["graph nodes"],
        "scalar_seconds": sec_scalar,
        "tensor_seconds": sec_tensor,
    }
    return metrics, rows


def _scalar_loss(params: list[np.ndarray], X: np.ndarray, y: np.ndarray):
    """The MLP's mean cross-entropy built from scalar Values, one sample at a time."""
    weights = [
        [[scalar_autograd.Value(v) for v in row] for row in np.atleast_2d(p)] for p in params
    ]
    total = scalar_autograd.Value(0.0)
    for x, label in zip(X, y):
        h = [scalar_autograd.Value(v) for v in x]
        for i in range(0, len(weights), 2):
            W, b = weights[i], weights[i + 1][0]
            h = [sum((h[k] * W[k][j] for k in range(len(h))), b[j]) for j in range(len(b))]
            if i < len(weights) - 2:
                h = [v.tanh() for v in h]
        top = max(v.data for v in h)  # a constant shift keeps exp from overflowing
        log_norm = sum(((v - top).exp() for v in h), scalar_autograd.Value(0.0)).log() + top
        total = total + (log_norm - h[label])
    return total / len(X), weights


def _trajectory(curves: dict, epochs: int) -> list[dict]:
    """The two loss curves at the first, 10%, 50% and last epoch."""
    checkpoints = sorted({0, epochs // 10, epochs // 2, epochs - 1})
    return [
        {
            "epoch": e + 1,
            "loss ours": curves["ours"][e],
            "loss torch": curves["torch"][e],
            "abs diff": abs(curves["ours"][e] - curves["torch"][e]),
        }
        for e in checkpoints
    ]


def _loss_figure(curves: dict, ctx: RunContext) -> None:
    diff = np.abs(np.array(curves["ours"]) - np.array(curves["torch"]))
    epochs = np.arange(1, len(diff) + 1)
    with figure(ctx, "loss_curves", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        left.plot(epochs, curves["ours"], lw=4, alpha=0.5, label="ours (NumPy engine)")
        left.plot(epochs, curves["torch"], "k--", label="torch, same initial weights")
        left.set(
            xlabel="epoch (full batch)",
            ylabel="cross-entropy",
            yscale="log",
            title="training loss on iris",
        )
        left.legend()
        right.semilogy(epochs, np.maximum(diff, 1e-18))
        right.set(
            xlabel="epoch",
            ylabel="|loss ours - loss torch|",
            title="trajectory difference (float64)",
        )


def _confusion_figure(preds: tuple, y_te: np.ndarray, ctx: RunContext) -> None:
    with figure(ctx, "confusion_matrices", 1, 2, figsize=(8, 3.6)) as (_, axes):
        for ax, pred, name in zip(axes, preds, ("ours", "torch")):
            cm = np.zeros((3, 3), int)
            np.add.at(cm, (y_te, pred), 1)
            ax.imshow(cm, cmap="Blues")
            for i, j in np.ndindex(cm.shape):
                ax.text(j, i, cm[i, j], ha="center", va="center")
            ax.set(
                xlabel="predicted",
                ylabel="true",
                title=f"{name}: test accuracy {(pred == y_te).mean():.3f}",
                xticks=range(3),
                yticks=range(3),
            )


def _note_values(config: Config, metrics: dict) -> dict:
    grad = max(metrics["scalar_grad_max_abs_diff"], metrics["tensor_grad_max_abs_diff"])
    return {
        **asdict(config),
        **metrics,
        "same_trajectory": "the same" if metrics["max_abs_loss_diff"] < 1e-8 else "a DIFFERENT",
        "scalar_n": min(config.scalar_samples, metrics["n_train"]),
        "scalar_slowdown": metrics["scalar_seconds"] / max(metrics["tensor_seconds"], 1e-9),
        "grad_max_abs_diff": grad,
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    data = _iris(config)
    metrics, curves = _train_beside_torch(config, data, ctx)
    grad_metrics, grad_rows = _gradients_three_ways(config, curves["init"], data)
    metrics |= grad_metrics

    _loss_figure(curves, ctx)
    _confusion_figure(curves["pred"], data[3], ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_test_accuracy",
        library_metric="torch_test_accuracy",
        tables={"trajectory": _trajectory(curves, config.epochs), "gradients": grad_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, _note_values(config, metrics)),
    )
