"""Runner for autograd-engine: train a small MLP on iris with our NumPy autograd engine and the
same MLP in torch from the same initial weights; compare loss trajectories and test accuracy.

It also rebuilds the loss of a few samples out of scalar ``Value`` nodes and checks that the
scalar engine, the array engine and torch give the same gradients (and how much slower scalars are).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.neural import autograd_engine as ref
from airoad.neural import scalar_autograd


@dataclass(frozen=True)
class Config:
    hidden: int = 16
    lr: float = 0.1
    epochs: int = 500
    test_size: float = 0.3
    scalar_samples: int = 30  # samples whose loss the scalar engine rebuilds node by node
    seed: int = 0


QUICK = {"epochs": 60, "scalar_samples": 5}


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


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from sklearn.model_selection import train_test_split

    df = load("iris")
    X_all, y_all = df.drop(columns="target").to_numpy(), df["target"].to_numpy()
    X_tr, X_te, y_tr, y_te = train_test_split(
        X_all, y_all, test_size=config.test_size, stratify=y_all, random_state=config.seed
    )
    mu, sd = X_tr.mean(0), X_tr.std(0)  # standardise with training statistics only
    X_tr, X_te = (X_tr - mu) / sd, (X_te - mu) / sd

    model = ref.MLP((X_tr.shape[1], config.hidden, 3), seed=config.seed)
    init = [p.data.copy() for p in model.parameters()]
    leaves, forward = _torch_mlp(init)
    opt = torch.optim.SGD(leaves, lr=config.lr)
    tX, ty = torch.tensor(X_tr), torch.tensor(y_tr)

    ours, theirs, sec_ours, sec_torch = [], [], 0.0, 0.0
    for _ in ctx.track(range(config.epochs), "training ours and torch"):
        t0 = time.perf_counter()
        ours += ref.train_mlp(model, X_tr, y_tr, lr=config.lr, epochs=1)
        t1 = time.perf_counter()
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(forward(tX), ty)
        loss.backward()
        opt.step()
        theirs.append(loss.item())
        sec_ours, sec_torch = sec_ours + t1 - t0, sec_torch + time.perf_counter() - t1

    pred_ours = model(X_te).data.argmax(1)
    with torch.no_grad():
        pred_torch = forward(torch.tensor(X_te)).argmax(1).numpy()
    diff = np.abs(np.array(ours) - np.array(theirs))

    # Gradients at the initial weights on a few samples: scalar engine vs array engine vs torch.
    n = min(config.scalar_samples, len(X_tr))
    t0 = time.perf_counter()
    scalar_loss, scalar_w = _scalar_loss(init, X_tr[:n], y_tr[:n])
    scalar_loss.backward()
    sec_scalar = time.perf_counter() - t0
    g_scalar = np.concatenate(
        [np.array([[v.grad for v in row] for row in w]).ravel() for w in scalar_w]
    )
    fresh = ref.MLP((X_tr.shape[1], config.hidden, 3), seed=config.seed)
    t0 = time.perf_counter()
    tensor_loss = ref.cross_entropy(fresh(X_tr[:n]), y_tr[:n])
    tensor_loss.backward()
    sec_tensor = time.perf_counter() - t0
    g_tensor = np.concatenate([p.grad.ravel() for p in fresh.parameters()])
    t_leaves, t_forward = _torch_mlp(init)
    torch.nn.functional.cross_entropy(
        t_forward(torch.tensor(X_tr[:n])), torch.tensor(y_tr[:n])
    ).backward()
    g_torch = np.concatenate([p.grad.numpy().ravel() for p in t_leaves])
    n_nodes = len(scalar_autograd.topological_order(scalar_loss))

    grad_rows = [
        {
            "engine": "scalar Value",
            "loss": scalar_loss.data,
            "max |grad - torch|": float(np.abs(g_scalar - g_torch).max()),
            "graph nodes": n_nodes,
            "seconds": sec_scalar,
        },
        {
            "engine": "array Tensor",
            "loss": float(tensor_loss.data),
            "max |grad - torch|": float(np.abs(g_tensor - g_torch).max()),
            "graph nodes": len(scalar_autograd.topological_order(tensor_loss)),
            "seconds": sec_tensor,
        },
    ]
    metrics = {
        "n_train": len(X_tr),
        "n_test": len(X_te),
        "epochs": config.epochs,
        "ours_test_accuracy": float((pred_ours == y_te).mean()),
        "torch_test_accuracy": float((pred_torch == y_te).mean()),
        "ours_final_loss": ours[-1],
        "torch_final_loss": theirs[-1],
        "max_abs_loss_diff": float(diff.max()),
        "ours_seconds": sec_ours,
        "torch_seconds": sec_torch,
        "scalar_grad_max_abs_diff": grad_rows[0]["max |grad - torch|"],
        "tensor_grad_max_abs_diff": grad_rows[1]["max |grad - torch|"],
        "scalar_graph_nodes": n_nodes,
        "scalar_seconds": sec_scalar,
        "tensor_seconds": sec_tensor,
    }
    checkpoints = sorted({0, config.epochs // 10, config.epochs // 2, config.epochs - 1})
    trajectory = [
        {"epoch": e + 1, "loss ours": ours[e], "loss torch": theirs[e], "abs diff": float(diff[e])}
        for e in checkpoints
    ]

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = np.arange(1, config.epochs + 1)
    left.plot(epochs, ours, lw=4, alpha=0.5, label="ours (NumPy engine)")
    left.plot(epochs, theirs, "k--", label="torch, same initial weights")
    left.set(
        xlabel="epoch (full batch)",
        ylabel="cross-entropy",
        yscale="log",
        title="training loss on iris",
    )
    left.legend()
    right.semilogy(epochs, np.maximum(diff, 1e-18))
    right.set(
        xlabel="epoch", ylabel="|loss ours - loss torch|", title="trajectory difference (float64)"
    )
    figures = [ctx.save_figure(fig, "loss_curves")]

    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
    for ax, pred, name in [(axes[0], pred_ours, "ours"), (axes[1], pred_torch, "torch")]:
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
    figures.append(ctx.save_figure(fig, "confusion_matrices"))

    same = "the same" if metrics["max_abs_loss_diff"] < 1e-8 else "a DIFFERENT"
    notes = [
        f"Ours and torch follow {same} loss trajectory: the largest gap over {config.epochs} epochs is "
        f"{metrics['max_abs_loss_diff']:.2e} (final loss {ours[-1]:.4f} vs {theirs[-1]:.4f}).",
        f"Test accuracy on {len(X_te)} held-out flowers: ours {metrics['ours_test_accuracy']:.3f}, "
        f"torch {metrics['torch_test_accuracy']:.3f}.",
        f"The scalar engine needs {n_nodes} graph nodes for the loss of {n} samples and took "
        f"{sec_scalar / max(sec_tensor, 1e-9):.0f}x as long as the array engine; both match torch's "
        f"gradients to {max(metrics['scalar_grad_max_abs_diff'], metrics['tensor_grad_max_abs_diff']):.1e}.",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_test_accuracy",
        library_metric="torch_test_accuracy",
        tables={"trajectory": trajectory, "gradients": grad_rows},
        figures=figures,
        notes=notes,
    )
