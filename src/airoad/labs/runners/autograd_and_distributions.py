"""Runner for the `autograd-and-distributions` lab: derivatives, samplers and log-densities checked
against analytic formulas, scipy and torch.distributions; autograd regression on diabetes against
scikit-learn; REINFORCE on a simulated Bernoulli bandit."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from airoad.data import load
from airoad.foundations import autograd_and_distributions as ad
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    dataset: str = "diabetes"
    n_samples: int = 100_000  # draws per distribution
    linreg_epochs: int = 5000  # full-batch GD steps (the problem's condition number is ~470)
    linreg_lr: float = 0.2  # below 2 / L = 0.25 for standardised diabetes
    n_arms: int = 10
    episodes: int = 20_000  # bandit pulls
    batch_size: int = 32  # pulls per REINFORCE update
    policy_lr: float = 1.0
    seed: int = 0


QUICK = {"n_samples": 20_000, "linreg_epochs": 1500, "episodes": 5000}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _derivatives(ctx: RunContext) -> tuple[list[dict], dict[str, float], list]:
    import torch

    plt = _plt()
    funcs = {
        "sin(x) exp(-x^2)": (
            lambda x: torch.sin(x) * torch.exp(-(x**2)),
            lambda x: (torch.cos(x) - 2 * x * torch.sin(x)) * torch.exp(-(x**2)),
        ),
        "tanh(x)": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
        "softplus(x)": (torch.nn.functional.softplus, torch.sigmoid),
    }
    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    rows, worst = [], 0.0
    for name, (f, df) in funcs.items():
        exact = df(x)
        auto = (ad.derivative(f, x) - exact).abs().max().item()
        fd = (ad.central_difference(f, x) - exact).abs().max().item()
        worst = max(worst, auto)
        rows.append(
            {
                "f": name,
                "max |autograd - analytic|": f"{auto:.1e}",
                "max |central diff - analytic|": f"{fd:.1e}",
            }
        )

    # Error against step size: truncation falls with h, rounding grows as eps / h.
    f, df = funcs["sin(x) exp(-x^2)"]
    x0 = torch.tensor([0.7], dtype=torch.float64)
    hs = np.logspace(-13, -1, 49)
    exact = df(x0).item()
    central = [abs(ad.central_difference(f, x0, h).item() - exact) for h in hs]
    forward = [abs(((f(x0 + h) - f(x0)) / h).item() - exact) for h in hs]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.loglog(hs, np.maximum(forward, 1e-18), label="forward (f(x+h) - f(x)) / h")
    ax.loglog(hs, np.maximum(central, 1e-18), label="central (f(x+h) - f(x-h)) / 2h")
    ax.axhline(
        max(abs(ad.derivative(f, x0).item() - exact), 1e-17), color="k", ls="--", label="autograd"
    )
    ax.set_xlabel("step h")
    ax.set_ylabel("|error| at x = 0.7")
    ax.set_title("finite differences vs autograd")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.figure_path("finite_differences"), dpi=110)
    plt.close(fig)
    best_h = float(hs[int(np.argmin(central))])

    # Himmelblau's function: four minima, so the arrows of -grad f point to four basins.
    gx, gy = torch.meshgrid(
        torch.linspace(-5, 5, 25, dtype=torch.float64),
        torch.linspace(-5, 5, 25, dtype=torch.float64),
        indexing="ij",
    )

    def himmelblau(a, b):
        return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2

    dx, dy = ad.gradient_field(himmelblau, gx, gy)
    fine = torch.linspace(-5, 5, 200, dtype=torch.float64)
    fx, fy = torch.meshgrid(fine, fine, indexing="ij")
    fig, ax = plt.subplots(figsize=(6, 5.5))
    ax.contour(
        fx.numpy(), fy.numpy(), np.log1p(himmelblau(fx, fy).numpy()), levels=20, cmap="viridis"
    )
    norm = torch.sqrt(dx**2 + dy**2) + 1e-12  # unit arrows: direction only, the contours show size
    ax.quiver(
        gx.numpy(), gy.numpy(), (-dx / norm).numpy(), (-dy / norm).numpy(), scale=40, width=0.003
    )
    ax.set_title("-grad f by autograd on Himmelblau's function")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    fig.tight_layout()
    fig.savefig(ctx.figure_path("gradient_field"), dpi=110)
    plt.close(fig)
    metrics = {
        "max_autograd_error": worst,
        "best_central_difference_h": best_h,
        "best_central_difference_error": float(min(central)),
    }
    return rows, metrics, [ctx.figure_path("finite_differences"), ctx.figure_path("gradient_field")]


def _distributions(
    ctx: RunContext, cfg: Config
) -> tuple[list[dict], list[dict], dict[str, float], list]:
    import torch
    from scipy import stats
    from torch.distributions import Bernoulli, Categorical, Normal

    plt = _plt()
    g = torch.Generator().manual_seed(cfg.seed)
    n, mu, sigma, p = cfg.n_samples, 1.5, 0.7, 0.3
    probs = torch.tensor([0.1, 0.25, 0.05, 0.4, 0.2], dtype=torch.float64)
    ours = {
        "normal": ad.sample_normal(mu, sigma, n, g),
        "bernoulli": ad.sample_bernoulli(p, n, g),
        "categorical": ad.sample_categorical(probs, n, g),
    }
    with torch.random.fork_rng():  # torch.distributions draws from the global generator
        torch.manual_seed(cfg.seed)
        lib = {
            "normal": Normal(torch.tensor(mu, dtype=torch.float64), sigma).sample((n,)),
            "bernoulli": Bernoulli(torch.tensor(p, dtype=torch.float64)).sample((n,)),
            "categorical": Categorical(probs=probs).sample((n,)),
        }
    k = torch.arange(5, dtype=torch.float64)
    cat_mean = float(probs @ k)
    exact = {
        "normal": (mu, sigma**2),
        "bernoulli": (p, p * (1 - p)),
        "categorical": (cat_mean, float(probs @ k**2) - cat_mean**2),
    }
    moment_rows = []
    for name, (m, v) in exact.items():
        a, b = ours[name].double(), lib[name].double()
        moment_rows.append(
            {
                "distribution": name,
                "exact mean": round(m, 4),
                "ours mean": round(a.mean().item(), 4),
                "torch mean": round(b.mean().item(), 4),
                "exact var": round(v, 4),
                "ours var": round(a.var().item(), 4),
                "torch var": round(b.var().item(), 4),
            }
        )

    xs = torch.linspace(-2, 5, 200, dtype=torch.float64)
    x01 = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ks = torch.arange(5)
    logits = torch.log(probs)
    scipy_cat = np.log(probs.numpy())
    diffs = {
        "normal": (
            ad.normal_log_prob(xs, mu, sigma).numpy(),
            Normal(torch.tensor(mu, dtype=torch.float64), sigma).log_prob(xs).numpy(),
            stats.norm.logpdf(xs.numpy(), mu, sigma),
        ),
        "bernoulli": (
            ad.bernoulli_log_prob(x01, p).numpy(),
            Bernoulli(torch.tensor(p, dtype=torch.float64)).log_prob(x01).numpy(),
            stats.bernoulli.logpmf([0, 1], p),
        ),
        "categorical": (
            ad.categorical_log_prob(ks, logits).numpy(),
            Categorical(logits=logits).log_prob(ks).numpy(),
            scipy_cat,
        ),
    }
    logprob_rows = [
        {
            "distribution": name,
            "max |ours - scipy|": f"{np.max(np.abs(o - s)):.1e}",
            "max |torch.distributions - scipy|": f"{np.max(np.abs(t - s)):.1e}",
        }
        for name, (o, t, s) in diffs.items()
    ]

    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    axes[0].hist(
        ours["normal"].numpy(), bins=80, density=True, alpha=0.5, label="ours (Box-Muller)"
    )
    axes[0].hist(
        lib["normal"].numpy(), bins=80, density=True, histtype="step", label="torch.distributions"
    )
    axes[0].plot(xs, stats.norm.pdf(xs.numpy(), mu, sigma), "k", label="scipy pdf")
    axes[0].set_title(f"Normal({mu}, {sigma}^2), n = {n}")
    width = 0.25
    for ax, name, support, truth in (
        (axes[1], "bernoulli", np.arange(2), np.array([1 - p, p])),
        (axes[2], "categorical", np.arange(5), probs.numpy()),
    ):
        for j, (label, s) in enumerate((("ours", ours[name]), ("torch.distributions", lib[name]))):
            freq = np.bincount(s.long().numpy(), minlength=len(support)) / n
            ax.bar(support + (j - 0.5) * width, freq, width, label=label)
        ax.plot(support, truth, "k_", ms=25, mew=2, label="exact pmf")
        ax.set_xticks(support)
        ax.set_title(f"{name}, n = {n}")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(ctx.figure_path("samples"), dpi=110)
    plt.close(fig)
    worst = max(np.max(np.abs(o - s)) for o, _, s in diffs.values())
    normal_z = (ours["normal"].mean().item() - mu) / (sigma / math.sqrt(n))
    return (
        moment_rows,
        logprob_rows,
        {"max_log_prob_error_vs_scipy": float(worst), "normal_mean_z_score": normal_z},
        [ctx.figure_path("samples")],
    )


def _regression(ctx: RunContext, cfg: Config) -> tuple[list[dict], dict[str, float], list]:
    import torch
    from sklearn.linear_model import LinearRegression

    plt = _plt()
    frame = load(cfg.dataset)
    names = [c for c in frame.columns if c != "target"]
    X = frame[names].to_numpy(float)
    y = frame["target"].to_numpy(float)
    X = (X - X.mean(0)) / X.std(0)  # standardise so one lr suits every coefficient
    y = (y - y.mean()) / y.std()
    with ctx.step("autograd gradient descent"):
        model, losses = ad.fit_linear_regression(
            torch.from_numpy(X), torch.from_numpy(y), cfg.linreg_lr, cfg.linreg_epochs
        )
    sk = LinearRegression().fit(X, y)
    w = model.linear.weight.detach().reshape(-1).numpy()
    with torch.no_grad():
        ours_mse = float(torch.mean((model(torch.from_numpy(X)) - torch.from_numpy(y)) ** 2))
    sk_mse = float(np.mean((sk.predict(X) - y) ** 2))
    rows = [
        {
            "feature": f,
            "ours (autograd GD)": round(float(a), 5),
            "sklearn": round(float(b), 5),
            "|diff|": f"{abs(a - b):.1e}",
        }
        for f, a, b in zip(names, w, sk.coef_)
    ]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.semilogy(np.maximum(losses.numpy() - sk_mse, 1e-16))
    ax.set_xlabel("gradient step")
    ax.set_ylabel("MSE - sklearn's MSE")
    ax.set_title("linear regression on diabetes, autograd gradients")
    fig.tight_layout()
    fig.savefig(ctx.figure_path("linreg_loss"), dpi=110)
    plt.close(fig)
    metrics = {
        "ours_linreg_mse": ours_mse,
        "sklearn_linreg_mse": sk_mse,
        "linreg_max_coef_diff": float(np.max(np.abs(w - sk.coef_))),
    }
    return rows, metrics, [ctx.figure_path("linreg_loss")]


def _bandit(ctx: RunContext, cfg: Config) -> tuple[list[dict], dict[str, Any], list, list[str]]:
    import torch

    plt = _plt()
    # A SIMULATED environment: the arms' pay-out rates are drawn once from a seeded generator.
    means = torch.from_numpy(np.random.default_rng(cfg.seed).uniform(0.1, 0.9, cfg.n_arms))
    best = int(torch.argmax(means))
    runs = {}
    for with_baseline in ctx.track([True, False], "REINFORCE on the bandit"):
        _, hist = ad.train_reinforce(
            means, cfg.episodes, cfg.batch_size, cfg.policy_lr, cfg.seed, with_baseline
        )
        runs[with_baseline] = hist

    logits = torch.linspace(-1, 1, cfg.n_arms, dtype=torch.float64)
    exact = ad.policy_gradient(logits, means)
    grad_rows, grad_err = [], 0.0
    for n in (1_000, 10_000, 100_000):
        grad_err = (ad.reinforce_gradient(logits, means, n, cfg.seed) - exact).abs().max().item()
        grad_rows.append(
            {
                "pulls": n,
                "max |REINFORCE - exact|": f"{grad_err:.4f}",
                "|exact| max": f"{exact.abs().max().item():.4f}",
            }
        )

    pulls = (np.arange(len(runs[True])) + 1) * cfg.batch_size
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for flag, hist in runs.items():
        label = "with baseline" if flag else "no baseline"
        axes[0].plot(pulls, hist[:, best].numpy(), label=label)
        axes[1].plot(pulls, (hist @ means).numpy(), label=label)
    axes[1].axhline(means[best].item(), color="k", ls="--", label="best arm's mean")
    axes[0].set_ylabel("probability of the best arm")
    axes[1].set_ylabel("expected reward of the policy")
    for ax in axes:
        ax.set_xlabel("pulls (episodes)")
        ax.legend(fontsize=8)
    fig.suptitle(f"REINFORCE on a simulated {cfg.n_arms}-armed Bernoulli bandit")
    fig.tight_layout()
    fig.savefig(ctx.figure_path("bandit"), dpi=110)
    plt.close(fig)

    second = float(torch.sort(means).values[-2])
    p_best = float(runs[True][-1, best])
    metrics = {
        "ours_best_arm_prob": p_best,
        "ours_best_arm_prob_no_baseline": float(runs[False][-1, best]),
        "best_arm": best,
        "best_arm_mean": float(means[best]),
        "second_arm_mean": second,
        "policy_expected_reward": float(runs[True][-1] @ means),
        "reinforce_grad_error_100k": grad_err,
    }
    note = (
        f"bandit (simulated, seeded means): best arm {best} pays {means[best]:.3f} vs {second:.3f} for "
        f"the runner-up; after {cfg.episodes} pulls the policy picks it with probability {p_best:.3f}"
    )
    return grad_rows, metrics, [ctx.figure_path("bandit")], [note]


def run(config: Config, ctx: RunContext) -> LabResult:
    deriv_rows, metrics, figures = _derivatives(ctx)
    moment_rows, logprob_rows, m2, f2 = _distributions(ctx, config)
    coef_rows, m3, f3 = _regression(ctx, config)
    grad_rows, m4, f4, notes = _bandit(ctx, config)
    metrics = {**metrics, **m2, **m3, **m4}
    notes = [
        f"autograd derivatives match the analytic ones to {metrics['max_autograd_error']:.0e}; "
        f"central differences are best near h = {metrics['best_central_difference_h']:.0e}",
        f"linear regression by autograd GD: MSE {metrics['ours_linreg_mse']:.6f} vs sklearn "
        f"{metrics['sklearn_linreg_mse']:.6f} (largest coefficient gap "
        f"{metrics['linreg_max_coef_diff']:.1e})",
        *notes,
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_linreg_mse",
        library_metric="sklearn_linreg_mse",
        tables={
            "derivatives": deriv_rows,
            "moments": moment_rows,
            "log_prob_vs_scipy": logprob_rows,
            "regression_coefficients": coef_rows,
            "reinforce_gradient": grad_rows,
        },
        figures=[*figures, *f2, *f3, *f4],
        notes=notes,
    )
