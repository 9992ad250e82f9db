"""Runner for activations-and-losses: our NumPy activations and losses beside
torch.nn.functional on real Fashion-MNIST numbers, then an activations x optimizers experiment.

Every cell of the experiment trains the same MLP twice from the same initial weights and batch
order: once with OUR forward/backward functions plugged into torch through
``torch.autograd.Function`` (ours), once with ``torch.nn.functional`` (the library)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, race, render_notes
from airoad.neural import activations_and_losses as ref

ACTIVATIONS = ("sigmoid", "tanh", "relu", "gelu")
OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class Config:
    n_train: int = param(12_000, ge=20, le=60_000)  # a random subset of the 60000 train images
    n_test: int = param(5_000, ge=20, le=10_000)
    hidden: tuple[int, ...] = param((128, 128), ge=1, le=4096)
    epochs: int = param(8, ge=1, le=200)
    batch_size: int = param(128, ge=1, le=60_000)
    activations: tuple[str, ...] = param(ACTIVATIONS, choices=ACTIVATIONS)
    optimizers: tuple[str, ...] = param(OPTIMIZERS, choices=OPTIMIZERS)
    lr_sgd: float = param(0.05, gt=0.0, le=10.0)  # plain SGD and SGD with momentum 0.9
    lr_adam: float = param(1e-3, gt=0.0, le=1.0)
    seed: int = param(0, ge=0)


QUICK = {"n_train": 1_000, "n_test": 500, "epochs": 2, "hidden": (64, 64)}

NOTES = (
    "On real Fashion-MNIST numbers our functions match torch.nn.functional to "
    "{max_fn_value_diff:.1e} (values) and {max_fn_grad_diff:.1e} (gradients), float64.",
    "Best cell: {best_cell} at {ours_best_test_accuracy:.3f} test accuracy; worst: {worst_cell} "
    "at {worst_test_accuracy:.3f} ({epochs} epochs, {n_train} images).",
    "Training with our functions and with torch's gives test accuracies at most "
    "{max_abs_acc_diff:.4f} apart (float32 rounding); ours took {ours_seconds:.1f} s, torch "
    "{torch_seconds:.1f} s.",
)
RANKING_NOTE = "{optimizer}: {ranking}"  # one per optimizer, best activation first


def _torch_activations() -> dict:
    """torch's version of each activation, by name."""
    import torch
    import torch.nn.functional as F

    return {"sigmoid": torch.sigmoid, "tanh": torch.tanh, "relu": F.relu, "gelu": F.gelu}


def _torch_pieces():
    """autograd.Functions that run our NumPy forward and hand-written backward inside torch."""
    import torch
    import torch.nn.functional as F

    class OurActivation(torch.autograd.Function):
        @staticmethod
        def forward(fctx, x, name):
            fctx.save_for_backward(x)
            fctx.name = name
            return torch.from_numpy(
                np.asarray(getattr(ref, name)(x.detach().numpy()), dtype=np.float32)
            )

        @staticmethod
        def backward(fctx, grad_out):
            (x,) = fctx.saved_tensors
            grad = getattr(ref, fctx.name + "_backward")(x.numpy(), grad_out.numpy())
            return torch.from_numpy(np.asarray(grad, dtype=np.float32)), None

    class OurCrossEntropy(torch.autograd.Function):
        @staticmethod
        def forward(fctx, logits, labels):
            fctx.save_for_backward(logits, labels)
            return torch.tensor(
                ref.cross_entropy(logits.detach().numpy(), labels.numpy()), dtype=logits.dtype
            )

        @staticmethod
        def backward(fctx, grad_out):
            logits, labels = fctx.saved_tensors
            grad = ref.cross_entropy_backward(logits.numpy(), labels.numpy())
            return grad_out * torch.from_numpy(np.asarray(grad, dtype=np.float32)), None

    library = _torch_activations()

    class Act(torch.nn.Module):
        def __init__(self, name: str, ours: bool):
            super().__init__()
            self.name, self.ours = name, ours

        def forward(self, x):
            return OurActivation.apply(x, self.name) if self.ours else library[self.name](x)

    def loss_fn(ours: bool):
        return (lambda z, y: OurCrossEntropy.apply(z, y)) if ours else F.cross_entropy

    return Act, loss_fn


def _train(act: str, opt_name: str, ours: bool, data, config: Config, pieces) -> dict:
    """Train one MLP; returns per-epoch train loss and test accuracy."""
    import torch

    Act, loss_fn = pieces
    X_tr, y_tr, X_te, y_te = data
    torch.manual_seed(config.seed)  # the same initial weights for every cell, ours and torch
    sizes = (X_tr.shape[1], *config.hidden)
    layers = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), Act(act, ours)]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(sizes[-1], 10))
    if opt_name == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=config.lr_adam)
    else:
        opt = torch.optim.SGD(
            model.parameters(), lr=config.lr_sgd, momentum=0.9 if opt_name == "momentum" else 0.0
        )
    criterion = loss_fn(ours)
    gen = torch.Generator().manual_seed(config.seed)  # the same batch order too
    losses, accs = [], []
    for _ in range(config.epochs):
        order, total = torch.randperm(len(X_tr), generator=gen), 0.0
        for start in range(0, len(X_tr), config.batch_size):
            idx = order[start : start + config.batch_size]
            opt.zero_grad()
            loss = criterion(model(X_tr[idx]), y_tr[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        with torch.no_grad():
            accs.append(float((model(X_te).argmax(1) == y_te).float().mean()))
        losses.append(total / len(X_tr))
    return {"loss": losses, "acc": accs}


def _function_table(X: np.ndarray, y: np.ndarray, seed: int) -> list[dict]:
    """Ours vs torch.nn.functional on real numbers: first-layer pre-activations of images."""
    import torch
    import torch.nn.functional as F

    rng = np.random.default_rng(seed)
    z = (
        X @ rng.normal(scale=1.0 / np.sqrt(X.shape[1]), size=(X.shape[1], 10)) * 3.0
    )  # (n, 10) float64
    up = rng.normal(size=z.shape)
    rows = []

    def compare(name, ours_v, ours_g, torch_fn, *arrays):
        leaves = [torch.tensor(a, requires_grad=True) for a in arrays]
        out = torch_fn(*leaves)
        out.backward(torch.tensor(up) if out.dim() else None)
        ours_g = ours_g if isinstance(ours_g, tuple) else (ours_g,)
        rows.append(
            {
                "function": name,
                "max |value - torch|": float(
                    np.max(np.abs(np.asarray(ours_v) - out.detach().numpy()))
                ),
                "max |grad - torch|": float(
                    max(np.abs(g - t.grad.numpy()).max() for g, t in zip(ours_g, leaves))
                ),
            }
        )

    for name, kw, fn in [
        ("sigmoid", {}, torch.sigmoid),
        ("tanh", {}, torch.tanh),
        ("relu", {}, F.relu),
        ("gelu", {"approximate": "none"}, F.gelu),
        ("gelu", {"approximate": "tanh"}, lambda t: F.gelu(t, approximate="tanh")),
    ]:
        label = name + (" (tanh approx.)" if kw.get("approximate") == "tanh" else "")
        compare(
            label, getattr(ref, name)(z, **kw), getattr(ref, name + "_backward")(z, up, **kw), fn, z
        )
    compare(
        "softmax", ref.softmax(z), ref.softmax_backward(z, up), lambda t: torch.softmax(t, 1), z
    )
    onehot = np.eye(10)[y]
    compare(
        "mse (softmax vs one-hot)",
        ref.mse(ref.softmax(z), onehot),
        ref.mse_backward(ref.softmax(z), onehot),
        lambda t: F.mse_loss(t, torch.tensor(onehot)),
        ref.softmax(z),
    )
    ty = torch.tensor(y)
    compare(
        "cross-entropy",
        ref.cross_entropy(z, y),
        ref.cross_entropy_backward(z, y),
        lambda t: F.cross_entropy(t, ty),
        z,
    )
    compare(
        "hinge (multi-class)",
        ref.hinge(z, y),
        ref.hinge_backward(z, y),
        lambda t: F.multi_margin_loss(t, ty),
        z,
    )
    # Triplets: the positive is a random image of the anchor's class, the negative one of another class.
    by_class = {c: np.flatnonzero(y == c) for c in range(10)}
    pos = np.array([rng.choice(by_class[c]) for c in y])
    neg = np.array([rng.choice(np.flatnonzero(y != c)) for c in y])
    a, p, n = z, z[pos], z[neg]
    compare(
        "triplet",
        ref.triplet(a, p, n),
        ref.triplet_backward(a, p, n),
        lambda u, v, w: F.triplet_margin_loss(u, v, w),
        a,
        p,
        n,
    )
    return rows


def _fashion(config: Config) -> dict:
    """Seeded random subsets, scaled by one pixel mean and std of the training subset."""
    data = load("fashion-mnist")
    rng = np.random.default_rng(config.seed)
    tr = rng.permutation(len(data["y_train"]))[: config.n_train]
    te = rng.permutation(len(data["y_test"]))[: config.n_test]
    X_tr = data["X_train"][tr].reshape(len(tr), -1) / 255.0
    X_te = data["X_test"][te].reshape(len(te), -1) / 255.0
    mu, sd = X_tr.mean(), X_tr.std()
    return {
        "X_tr": (X_tr - mu) / sd,
        "X_te": (X_te - mu) / sd,
        "y_tr": data["y_train"][tr],
        "y_te": data["y_test"][te],
    }


def _train_cell(act: str, opt: str, tensors, config: Config, pieces) -> dict:
    """One cell of the grid: ours then torch's functions, same weights, same batches."""
    return race(
        lambda: _train(act, opt, True, tensors, config, pieces),
        lambda: _train(act, opt, False, tensors, config, pieces),
    )


def _grid(config: Config, data: dict, ctx: RunContext) -> tuple[list[dict], dict, dict]:
    """Every activation x optimizer cell; returns the table rows, the curves and the seconds."""
    import torch

    tensors = (
        torch.tensor(data["X_tr"], dtype=torch.float32),
        torch.tensor(data["y_tr"]),
        torch.tensor(data["X_te"], dtype=torch.float32),
        torch.tensor(data["y_te"]),
    )
    pieces = _torch_pieces()
    cells = [(a, o) for a in config.activations for o in config.optimizers]
    curves, rows, seconds = {}, [], {"ours": 0.0, "torch": 0.0}
    for act, opt in ctx.track(cells, "activations x optimizers"):
        r = _train_cell(act, opt, tensors, config, pieces)
        o = curves[act, opt, "ours"] = r["ours"]
        t = curves[act, opt, "torch"] = r["library"]
        seconds["ours"] += r["ours_seconds"]
        seconds["torch"] += r["library_seconds"]
        rows.append(
            {
                "activation": act,
                "optimizer": opt,
                "test acc ours": o["acc"][-1],
                "test acc torch": t["acc"][-1],
                "train loss ours": o["loss"][-1],
                "train loss torch": t["loss"][-1],
            }
        )
    return rows, curves, seconds


def _summary(config: Config, data: dict, rows, fn_rows, seconds) -> dict:
    best = max(rows, key=lambda r: r["test acc ours"])
    worst = min(rows, key=lambda r: r["test acc ours"])
    best_torch = max(rows, key=lambda r: r["test acc torch"])
    return {
        "n_train": len(data["y_tr"]),
        "n_test": len(data["y_te"]),
        "epochs": config.epochs,
        "ours_best_test_accuracy": best["test acc ours"],
        "torch_best_test_accuracy": best_torch["test acc torch"],
        "best_cell": f"{best['activation']}+{best['optimizer']}",
        "worst_cell": f"{worst['activation']}+{worst['optimizer']}",
        "worst_test_accuracy": worst["test acc ours"],
        "max_abs_acc_diff": max(abs(r["test acc ours"] - r["test acc torch"]) for r in rows),
        "max_fn_value_diff": max(r["max |value - torch|"] for r in fn_rows),
        "max_fn_grad_diff": max(r["max |grad - torch|"] for r in fn_rows),
        "ours_seconds": seconds["ours"],
        "torch_seconds": seconds["torch"],
        **{f"acc_{r['activation']}_{r['optimizer']}": r["test acc ours"] for r in rows},
    }


def _activations_figure(ctx: RunContext) -> None:
    """Our activations and backward functions (lines) with torch's values and autograd (dots)."""
    import torch

    x = np.linspace(-4, 4, 161)
    with figure(ctx, "activations", 1, 2, figsize=(10, 4)) as (_, axes):
        for name, torch_fn in _torch_activations().items():
            tx = torch.tensor(x, requires_grad=True)
            out = torch_fn(tx)
            out.sum().backward()
            (line,) = axes[0].plot(x, getattr(ref, name)(x), lw=3, alpha=0.6, label=name)
            axes[0].plot(x[::8], out.detach().numpy()[::8], "k.", ms=3)
            derivative = getattr(ref, name + "_backward")(x, np.ones_like(x))
            axes[1].plot(x, derivative, lw=3, alpha=0.6, color=line.get_color())
            axes[1].plot(x[::8], tx.grad.numpy()[::8], "k.", ms=3)
        axes[0].set(title="activations (lines ours, dots torch)", xlabel="x")
        axes[1].set(title="derivatives (our backward, dots torch autograd)", xlabel="x")
        axes[0].legend()


def _curves_figure(config: Config, curves: dict, ctx: RunContext) -> None:
    n_opt = len(config.optimizers)
    epochs = np.arange(1, config.epochs + 1)
    with figure(ctx, "training_curves", 2, n_opt, figsize=(4.2 * n_opt, 7), squeeze=False) as (
        _,
        axes,
    ):
        for j, opt in enumerate(config.optimizers):
            for act in config.activations:
                o, t = curves[act, opt, "ours"], curves[act, opt, "torch"]
                (line,) = axes[0, j].plot(epochs, o["loss"], "-o", ms=3, label=act)
                axes[0, j].plot(epochs, t["loss"], "k:", lw=1)
                axes[1, j].plot(epochs, o["acc"], "-o", ms=3, color=line.get_color(), label=act)
                axes[1, j].plot(epochs, t["acc"], "k:", lw=1)
            axes[0, j].set(title=f"{opt}: train loss (dotted: torch)", xlabel="epoch", yscale="log")
            axes[1, j].set(title=f"{opt}: test accuracy", xlabel="epoch")
            axes[1, j].legend(fontsize=8)


def _grid_figure(config: Config, rows: list[dict], ctx: RunContext) -> None:
    acc = {(r["activation"], r["optimizer"]): r["test acc ours"] for r in rows}
    grid = np.array([[acc[a, o] for o in config.optimizers] for a in config.activations])
    size = (1.6 * len(config.optimizers) + 2, 0.7 * len(config.activations) + 1.5)
    with figure(ctx, "accuracy_grid", figsize=size) as (_, ax):
        ax.imshow(grid, cmap="viridis")
        for i, j in np.ndindex(grid.shape):
            ax.text(j, i, f"{grid[i, j]:.3f}", ha="center", va="center", color="w")
        ax.set(
            xticks=range(len(config.optimizers)),
            xticklabels=config.optimizers,
            yticks=range(len(config.activations)),
            yticklabels=config.activations,
            title=f"test accuracy after {config.epochs} epochs",
        )


def _notes(config: Config, metrics: dict, rows: list[dict]) -> list[str]:
    """The headline notes, then one line per optimizer ranking the activations."""
    notes = render_notes(NOTES, {**asdict(config), **metrics})
    for opt in config.optimizers:
        col = {r["activation"]: r["test acc ours"] for r in rows if r["optimizer"] == opt}
        ranked = sorted(col.items(), key=lambda kv: -kv[1])
        ranking = ", ".join(f"{a} {v:.3f}" for a, v in ranked)
        notes += render_notes((RANKING_NOTE,), {"optimizer": opt, "ranking": ranking})
    return notes


def run(config: Config, ctx: RunContext) -> LabResult:
    data = _fashion(config)
    fn_rows = _function_table(data["X_te"][:512], data["y_te"][:512], config.seed)
    rows, curves, seconds = _grid(config, data, ctx)
    metrics = _summary(config, data, rows, fn_rows, seconds)

    _activations_figure(ctx)
    _curves_figure(config, curves, ctx)
    _grid_figure(config, rows, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_best_test_accuracy",
        library_metric="torch_best_test_accuracy",
        tables={"experiment": rows, "functions": fn_rows},
        figures=ctx.figures,
        notes=_notes(config, metrics, rows),
    )
