"""Runner for the `gradient-descent` lab: fit y = m x + b on diabetes (bmi -> disease progression)
with every optimizer and schedule, replay the same batches through torch.optim, and compare the
end points with the closed-form least-squares line."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from functools import partial
from typing import Any

import numpy as np

from airoad.data import load
from airoad.foundations import gradient_descent as gd
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes


@dataclass(frozen=True)
class Config:
    dataset: str = param("diabetes", choices=("diabetes",))  # bmi -> disease progression
    epochs: int = param(100, ge=1, le=1000)
    batch_size: int = param(32, ge=1, le=442)  # diabetes has 442 rows
    # plain SGD: batch and mini-batch GD, and the schedules' base lr (above 1 it diverges)
    lr: float = param(0.05, gt=0.0, le=1.5)
    stochastic_lr: float = param(0.01, gt=0.0, le=1.0)  # batch size 1 needs a smaller step
    # momentum runs use lr * (1 - momentum): same long-run step size
    momentum: float = param(0.9, gt=0.0, lt=1.0)
    adaptive_lr: float = param(0.01, gt=0.0, le=1.0)  # RMSProp and Adam
    seed: int = param(0, ge=0)


QUICK = {"epochs": 10}
PATH_STEPS = 200

NOTES = (
    "least squares (sklearn): m = {ls_m:.4f}, b = {ls_b:.1e}, MSE = {sklearn_ls_mse:.4f} "
    "(np.polyfit agrees to {polyfit_vs_sklearn_m_diff:.1e})",
    "closest variant: {closest_variant} (excess MSE {closest_excess_mse:.1e})",
    "our optimizers track torch.optim on the same batches to {max_loss_diff_vs_torch:.1e} in loss",
)


class _PathRecorder:
    """Wrap an optimizer to remember every parameter vector it produces (for the path figure)."""

    def __init__(self, opt: Any):
        self.opt = opt
        self.path: list[np.ndarray] = []

    @property
    def lr(self) -> float:
        return self.opt.lr

    @lr.setter
    def lr(self, value: float) -> None:
        self.opt.lr = value  # fit_line sets lr from the schedule; pass it through

    def step(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        params = self.opt.step(params, grads)
        self.path.append(params)
        return params


def _variants(cfg: Config, iters: int) -> list[dict[str, Any]]:
    """name, group, optimizer (ours and torch's), batch size, schedule."""
    mom_lr = cfg.lr * (1 - cfg.momentum)
    mb = cfg.batch_size
    sched = {
        "step decay": partial(
            gd.step_decay, base_lr=cfg.lr, step_size=max(iters // 4, 1), gamma=0.3
        ),
        "cosine": partial(gd.cosine_annealing, base_lr=cfg.lr, t_max=iters),
        "warm-up + cosine": partial(
            gd.warmup_cosine, base_lr=cfg.lr, warmup_steps=max(iters // 10, 1), total_steps=iters
        ),
    }
    rows = [
        ("batch GD", "batch size", "SGD", {"lr": cfg.lr}, None, None),
        ("stochastic GD", "batch size", "SGD", {"lr": cfg.stochastic_lr}, 1, None),
        ("mini-batch GD", "batch size", "SGD", {"lr": cfg.lr}, mb, None),
        ("momentum", "optimizer", "SGD", {"lr": mom_lr, "momentum": cfg.momentum}, mb, None),
        (
            "nesterov",
            "optimizer",
            "SGD",
            {"lr": mom_lr, "momentum": cfg.momentum, "nesterov": True},
            mb,
            None,
        ),
        ("RMSProp", "optimizer", "RMSprop", {"lr": cfg.adaptive_lr}, mb, None),
        ("Adam", "optimizer", "Adam", {"lr": cfg.adaptive_lr}, mb, None),
    ] + [(name, "schedule", "SGD", {"lr": cfg.lr}, mb, s) for name, s in sched.items()]
    return [
        dict(name=n, group=g, opt=o, kwargs=k, batch_size=b, schedule=s)
        for n, g, o, k, b, s in rows
    ]


def _torch_losses(
    x: np.ndarray,
    y: np.ndarray,
    opt_name: str,
    kwargs: dict,
    batches: list[np.ndarray],
    schedule: Callable[[int], float] | None,
) -> np.ndarray:
    """Full-data MSE history of torch.optim on exactly the same batches (float64)."""
    import torch

    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = getattr(torch.optim, opt_name)([p], **kwargs)
    out = [float(torch.mean(yt**2))]
    for t, idx in enumerate(batches):
        if schedule is not None:
            opt.param_groups[0]["lr"] = schedule(t)
        i = torch.from_numpy(idx)
        opt.zero_grad()
        torch.mean((p[0] * xt[i] + p[1] - yt[i]) ** 2).backward()
        opt.step()
        with torch.no_grad():
            out.append(float(torch.mean((p[0] * xt + p[1] - yt) ** 2)))
    return np.array(out)


def _standardised(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """bmi and the target, both standardised: the loss surface becomes round-ish and one lr
    suits every variant."""
    frame = load(config.dataset)
    x_raw, y_raw = frame["bmi"].to_numpy(float), frame["target"].to_numpy(float)
    return (x_raw - x_raw.mean()) / x_raw.std(), (y_raw - y_raw.mean()) / y_raw.std()


def _least_squares(x: np.ndarray, y: np.ndarray, ctx: RunContext) -> tuple[dict, list[dict]]:
    """The closed-form line every variant is judged against: np.polyfit beside sklearn."""
    from sklearn.linear_model import LinearRegression

    with ctx.step("closed-form least squares"):
        m_poly, b_poly = np.polyfit(x, y, 1)
        sk = LinearRegression().fit(x[:, None], y)
        m_ls, b_ls = float(sk.coef_[0]), float(sk.intercept_)
        mse_ls = gd.mse_loss(np.array([m_ls, b_ls]), x, y)
    metrics = {
        "ls_m": m_ls,
        "ls_b": b_ls,
        "sklearn_ls_mse": mse_ls,
        "n_samples": len(x),
        "polyfit_vs_sklearn_m_diff": abs(m_poly - m_ls),
    }
    rows = [
        {"fit": "np.polyfit", "m": round(float(m_poly), 6), "b": f"{b_poly:.1e}"},
        {"fit": "sklearn LinearRegression", "m": round(m_ls, 6), "b": f"{b_ls:.1e}"},
    ]
    return metrics, rows


def _updates(config: Config, n: int) -> int:
    """Mini-batch updates in the run: what the schedules count down."""
    return config.epochs * int(np.ceil(n / config.batch_size))


def _fit_variants(x: np.ndarray, y: np.ndarray, config: Config, ctx: RunContext) -> list[dict]:
    """Every variant with our optimizer, then torch.optim replaying exactly the same batches."""
    n = len(x)
    runs = []
    for v in ctx.track(_variants(config, _updates(config, n)), "fitting the line"):
        rec = _PathRecorder(getattr(gd, v["opt"])(**v["kwargs"]))
        theta, losses = gd.fit_line(
            x, y, rec, v["batch_size"], config.epochs, config.seed, v["schedule"]
        )
        batches = gd.batch_indices(n, v["batch_size"] or n, config.epochs, config.seed)
        torch_losses = _torch_losses(x, y, v["opt"], v["kwargs"], batches, v["schedule"])
        runs.append(
            dict(v, theta=theta, losses=losses, path=np.array(rec.path), torch_losses=torch_losses)
        )
    return runs


def _compare(runs: list[dict], ls: dict) -> tuple[dict, list[dict], list[dict], dict]:
    """Per variant: final MSE, slope error and torch's final MSE; the closest to least squares."""
    n, m_ls, mse_ls = ls["n_samples"], ls["ls_m"], ls["sklearn_ls_mse"]
    metrics: dict[str, Any] = {}
    variant_rows, torch_rows = [], []
    for r in runs:
        key = re.sub(r"[^a-z0-9]+", "_", r["name"].lower()).strip("_")
        final = float(r["losses"][-1])
        metrics[f"ours_{key}_mse"] = final
        metrics[f"ours_{key}_abs_m_error"] = abs(float(r["theta"][0]) - m_ls)
        metrics[f"torch_{key}_mse"] = float(r["torch_losses"][-1])
        gap = float(np.max(np.abs(r["losses"] - r["torch_losses"])))
        variant_rows.append(
            {
                "variant": r["name"],
                "batch": r["batch_size"] or n,
                "updates": len(r["losses"]) - 1,
                "m": round(float(r["theta"][0]), 5),
                "b": round(float(r["theta"][1]), 5),
                "final MSE": round(final, 6),
                "excess over LS": f"{final - mse_ls:.2e}",
            }
        )
        torch_rows.append(
            {
                "variant": r["name"],
                "ours final MSE": round(final, 8),
                "torch.optim final MSE": round(float(r["torch_losses"][-1]), 8),
                "max |loss diff| over the run": f"{gap:.1e}",
            }
        )
    metrics["max_loss_diff_vs_torch"] = max(
        float(np.max(np.abs(r["losses"] - r["torch_losses"]))) for r in runs
    )
    best = min(runs, key=lambda r: r["losses"][-1])
    closest = {"closest_variant": best["name"], "closest_excess_mse": best["losses"][-1] - mse_ls}
    return metrics, variant_rows, torch_rows, closest


def _loss_figure(runs: list[dict], mse_ls: float, n: int, ctx: RunContext) -> None:
    """Loss above the least-squares floor, one panel per group of variants."""
    with figure(ctx, "loss_curves", 1, 3, figsize=(16, 4.5)) as (_, axes):
        for ax, group in zip(axes, ["batch size", "optimizer", "schedule"]):
            for r in (r for r in runs if r["group"] == group):
                steps = np.arange(len(r["losses"]))
                if group == "batch size":  # different batch sizes: compare per epoch
                    steps = steps / int(np.ceil(n / (r["batch_size"] or n)))
                ax.plot(steps, np.maximum(r["losses"] - mse_ls, 1e-12), label=r["name"], lw=1)
            ax.set_yscale("log")
            ax.set_xlabel("epoch" if group == "batch size" else "update (mini-batch)")
            ax.set_ylabel("MSE - least-squares MSE")
            ax.set_title(f"by {group}")
            ax.legend(fontsize=8)


def _schedule_figure(runs: list[dict], iters: int, lr: float, ctx: RunContext) -> None:
    t = np.arange(iters)
    with figure(ctx, "lr_schedules", figsize=(6, 4)) as (_, ax):
        for r in (r for r in runs if r["group"] == "schedule"):
            ax.plot(t, [r["schedule"](k) for k in t], label=r["name"])
        ax.set_xlabel("update")
        ax.set_ylabel("learning rate")
        ax.set_title(f"schedules over {iters} updates (base lr {lr})")
        ax.legend()


def _path_figure(runs: list[dict], x: np.ndarray, y: np.ndarray, ls: dict, ctx: RunContext):
    """The first PATH_STEPS updates of four variants on the contours of the MSE."""
    mm, bb = np.meshgrid(np.linspace(-0.2, 1.0, 120), np.linspace(-0.6, 0.6, 120))
    # MSE(m, b) of standardised data is a quadratic: expand it instead of looping over the grid.
    sxx, sxy, syy, sx, sy = np.mean(x * x), np.mean(x * y), np.mean(y * y), np.mean(x), np.mean(y)
    grid = mm**2 * sxx + bb**2 + syy + 2 * mm * bb * sx - 2 * mm * sxy - 2 * bb * sy
    with figure(ctx, "paths", figsize=(6, 5)) as (_, ax):
        levels = np.quantile(grid, np.linspace(0.01, 0.9, 14))
        ax.contour(mm, bb, grid, levels=levels, cmap="Greys", linewidths=0.7)
        shown = ("batch GD", "stochastic GD", "momentum", "Adam")
        for r in (r for r in runs if r["name"] in shown):
            path = np.vstack([np.zeros(2), r["path"][:PATH_STEPS]])  # the early steps tell it
            ax.plot(path[:, 0], path[:, 1], lw=0.8, label=r["name"], alpha=0.85)
        ax.plot([ls["ls_m"]], [ls["ls_b"]], "k*", ms=12, label="least squares")
        ax.set_xlabel("slope m")
        ax.set_ylabel("intercept b")
        ax.set_title(f"first {PATH_STEPS} updates on the MSE surface")
        ax.legend(fontsize=8)


def run(config: Config, ctx: RunContext) -> LabResult:
    x, y = _standardised(config)
    ls_metrics, ls_rows = _least_squares(x, y, ctx)
    runs = _fit_variants(x, y, config, ctx)
    metrics, variant_rows, torch_rows, closest = _compare(runs, ls_metrics)
    metrics = {**ls_metrics, **metrics}

    _loss_figure(runs, ls_metrics["sklearn_ls_mse"], len(x), ctx)
    _schedule_figure(runs, _updates(config, len(x)), config.lr, ctx)
    _path_figure(runs, x, y, ls_metrics, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_adam_mse",
        library_metric="torch_adam_mse",
        tables={
            "variants": variant_rows,
            "ours_vs_torch_optim": torch_rows,
            "least_squares": ls_rows,
        },
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **closest}),
    )
