"""Runner for the `autograd-and-distributions` lab: derivatives, samplers and log-densities checked
against analytic formulas, scipy and torch.distributions; autograd regression on diabetes against
scikit-learn; REINFORCE on a simulated Bernoulli bandit."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.foundations import autograd_and_distributions as ad
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, figure, frame_xy, param, render_notes


@dataclass(frozen=True)
class Config:
    dataset: str = param("diabetes", choices=("diabetes",))
    n_samples: int = param(100_000, ge=100, le=10_000_000)  # draws per distribution
    # full-batch GD steps (the problem's condition number is ~470)
    linreg_epochs: int = param(5000, ge=1, le=100_000)
    linreg_lr: float = param(0.2, gt=0.0, lt=0.25)  # below 2 / L = 0.25 for standardised diabetes
    n_arms: int = param(10, ge=2, le=1000)
    episodes: int = param(20_000, ge=1, le=10_000_000)  # bandit pulls
    batch_size: int = param(32, ge=1, le=10_000)  # pulls per REINFORCE update
    policy_lr: float = param(1.0, gt=0.0, le=100.0)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(
            self.episodes >= self.batch_size, "episodes", "must be at least batch_size (one update)"
        )


QUICK = {"n_samples": 20_000, "linreg_epochs": 1500, "episodes": 5000}

NOTES = (
    "autograd derivatives match the analytic ones to {max_autograd_error:.0e}; "
    "central differences are best near h = {best_central_difference_h:.0e}",
    "linear regression by autograd GD: MSE {ours_linreg_mse:.6f} vs sklearn "
    "{sklearn_linreg_mse:.6f} (largest coefficient gap {linreg_max_coef_diff:.1e})",
    "bandit (simulated, seeded means): best arm {best_arm} pays {best_arm_mean:.3f} vs "
    "{second_arm_mean:.3f} for the runner-up; after {episodes} pulls the policy picks it with "
    "probability {ours_best_arm_prob:.3f}",
)

NORMAL, BERNOULLI_P = (1.5, 0.7), 0.3  # Normal(mu, sigma) and Bernoulli(p) of the samplers
CATEGORICAL = (0.1, 0.25, 0.05, 0.4, 0.2)


def _functions() -> dict:
    """name -> (f, analytic f'), on float64 tensors."""
    import torch

    return {
        "sin(x) exp(-x^2)": (
            lambda x: torch.sin(x) * torch.exp(-(x**2)),
            lambda x: (torch.cos(x) - 2 * x * torch.sin(x)) * torch.exp(-(x**2)),
        ),
        "tanh(x)": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
        "softplus(x)": (torch.nn.functional.softplus, torch.sigmoid),
    }


def _derivatives() -> tuple[list[dict], dict]:
    """Autograd and central differences against the analytic derivative on [-3, 3]."""
    import torch

    x = torch.linspace(-3, 3, 601, dtype=torch.float64)
    rows, worst = [], 0.0
    for name, (f, df) in _functions().items():
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
    return rows, {"max_autograd_error": worst}


def _step_sweep() -> tuple[dict, dict]:
    """Error against step size at x = 0.7: truncation falls with h, rounding grows as eps / h."""
    import torch

    f, df = _functions()["sin(x) exp(-x^2)"]
    x0 = torch.tensor([0.7], dtype=torch.float64)
    hs = np.logspace(-13, -1, 49)
    exact = df(x0).item()
    central = [abs(ad.central_difference(f, x0, h).item() - exact) for h in hs]
    forward = [abs(((f(x0 + h) - f(x0)) / h).item() - exact) for h in hs]
    autograd = abs(ad.derivative(f, x0).item() - exact)
    metrics = {
        "best_central_difference_h": float(hs[int(np.argmin(central))]),
        "best_central_difference_error": float(min(central)),
    }
    return metrics, {"hs": hs, "central": central, "forward": forward, "autograd": autograd}


def _sampling(cfg: Config) -> tuple[list[dict], dict, dict]:
    """n draws of each distribution from our samplers and from torch.distributions; their
    means and variances beside the exact ones."""
    import torch
    from torch.distributions import Bernoulli, Categorical, Normal

    g = torch.Generator().manual_seed(cfg.seed)
    n, (mu, sigma), p = cfg.n_samples, NORMAL, BERNOULLI_P
    probs = torch.tensor(CATEGORICAL, dtype=torch.float64)
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
    rows = []
    for name, (m, v) in exact.items():
        a, b = ours[name].double(), lib[name].double()
        rows.append(
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
    normal_z = (ours["normal"].mean().item() - mu) / (sigma / math.sqrt(n))
    return rows, {"normal_mean_z_score": normal_z}, {"ours": ours, "library": lib}


def _log_probs() -> tuple[list[dict], dict]:
    """Our log-densities and torch.distributions' against scipy's on a grid of values."""
    import torch
    from scipy import stats
    from torch.distributions import Bernoulli, Categorical, Normal

    (mu, sigma), p = NORMAL, BERNOULLI_P
    logits = torch.log(torch.tensor(CATEGORICAL, dtype=torch.float64))
    xs = torch.linspace(-2, 5, 200, dtype=torch.float64)
    x01 = torch.tensor([0.0, 1.0], dtype=torch.float64)
    ks = torch.arange(5)
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
            np.log(np.array(CATEGORICAL)),  # scipy has no categorical: log-probabilities
        ),
    }
    rows = [
        {
            "distribution": name,
            "max |ours - scipy|": f"{np.max(np.abs(o - s)):.1e}",
            "max |torch.distributions - scipy|": f"{np.max(np.abs(t - s)):.1e}",
        }
        for name, (o, t, s) in diffs.items()
    ]
    worst = max(np.max(np.abs(o - s)) for o, _, s in diffs.values())
    return rows, {"max_log_prob_error_vs_scipy": float(worst)}


def _regression(ctx: RunContext, cfg: Config) -> tuple[list[dict], dict, np.ndarray]:
    """Full-batch GD with autograd gradients on standardised diabetes, beside sklearn's fit."""
    import torch
    from sklearn.linear_model import LinearRegression

    frame = load(cfg.dataset)
    names = [c for c in frame.columns if c != "target"]
    X, y = frame_xy(frame)
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
    rows = [
        {
            "feature": f,
            "ours (autograd GD)": round(float(a), 5),
            "sklearn": round(float(b), 5),
            "|diff|": f"{abs(a - b):.1e}",
        }
        for f, a, b in zip(names, w, sk.coef_)
    ]
    metrics = {
        "ours_linreg_mse": ours_mse,
        "sklearn_linreg_mse": float(np.mean((sk.predict(X) - y) ** 2)),
        "linreg_max_coef_diff": float(np.max(np.abs(w - sk.coef_))),
    }
    return rows, metrics, losses.numpy()


def _arm_means(cfg: Config):
    """The SIMULATED bandit: each arm's pay-out rate, drawn once from a seeded generator."""
    import torch

    return torch.from_numpy(np.random.default_rng(cfg.seed).uniform(0.1, 0.9, cfg.n_arms))


def _bandit(ctx: RunContext, cfg: Config) -> tuple[dict, dict]:
    """REINFORCE with and without a baseline on a simulated bandit with seeded arm means."""
    import torch

    means = _arm_means(cfg)
    best = int(torch.argmax(means))
    runs = {}
    for with_baseline in ctx.track([True, False], "REINFORCE on the bandit"):
        _, hist = ad.train_reinforce(
            means, cfg.episodes, cfg.batch_size, cfg.policy_lr, cfg.seed, with_baseline
        )
        runs[with_baseline] = hist
    metrics = {
        "ours_best_arm_prob": float(runs[True][-1, best]),
        "ours_best_arm_prob_no_baseline": float(runs[False][-1, best]),
        "best_arm": best,
        "best_arm_mean": float(means[best]),
        "second_arm_mean": float(torch.sort(means).values[-2]),
        "policy_expected_reward": float(runs[True][-1] @ means),
    }
    return metrics, {"means": means, "runs": runs}


def _reinforce_gradient(cfg: Config) -> tuple[list[dict], dict]:
    """The Monte-Carlo REINFORCE gradient at fixed logits against the exact one, by pulls."""
    import torch

    means = _arm_means(cfg)
    logits = torch.linspace(-1, 1, cfg.n_arms, dtype=torch.float64)
    exact = ad.policy_gradient(logits, means)
    rows, err = [], 0.0
    for n in (1_000, 10_000, 100_000):
        err = (ad.reinforce_gradient(logits, means, n, cfg.seed) - exact).abs().max().item()
        rows.append(
            {
                "pulls": n,
                "max |REINFORCE - exact|": f"{err:.4f}",
                "|exact| max": f"{exact.abs().max().item():.4f}",
            }
        )
    return rows, {"reinforce_grad_error_100k": err}


def _finite_difference_figure(sweep: dict, ctx: RunContext) -> None:
    hs = sweep["hs"]
    with figure(ctx, "finite_differences", figsize=(6, 4)) as (_, ax):
        ax.loglog(hs, np.maximum(sweep["forward"], 1e-18), label="forward (f(x+h) - f(x)) / h")
        ax.loglog(hs, np.maximum(sweep["central"], 1e-18), label="central (f(x+h) - f(x-h)) / 2h")
        ax.axhline(max(sweep["autograd"], 1e-17), color="k", ls="--", label="autograd")
        ax.set(xlabel="step h", ylabel="|error| at x = 0.7", title="finite differences vs autograd")
        ax.legend(fontsize=8)


def _gradient_field_figure(ctx: RunContext) -> None:
    """Himmelblau's function: four minima, so the arrows of -grad f point to four basins."""
    import torch

    def himmelblau(a, b):
        return (a**2 + b - 11) ** 2 + (a + b**2 - 7) ** 2

    coarse = torch.linspace(-5, 5, 25, dtype=torch.float64)
    gx, gy = torch.meshgrid(coarse, coarse, indexing="ij")
    dx, dy = ad.gradient_field(himmelblau, gx, gy)
    fine = torch.linspace(-5, 5, 200, dtype=torch.float64)
    fx, fy = torch.meshgrid(fine, fine, indexing="ij")
    norm = torch.sqrt(dx**2 + dy**2) + 1e-12  # unit arrows: direction only, the contours show size
    with figure(ctx, "gradient_field", figsize=(6, 5.5)) as (_, ax):
        surface = np.log1p(himmelblau(fx, fy).numpy())
        ax.contour(fx.numpy(), fy.numpy(), surface, levels=20, cmap="viridis")
        arrows = ((-dx / norm).numpy(), (-dy / norm).numpy())
        ax.quiver(gx.numpy(), gy.numpy(), *arrows, scale=40, width=0.003)
        ax.set(title="-grad f by autograd on Himmelblau's function", xlabel="x", ylabel="y")


def _samples_figure(draws: dict, ctx: RunContext) -> None:
    """Histograms of both samplers against the exact density or pmf."""
    from scipy import stats

    sources = (("ours", draws["ours"]), ("torch.distributions", draws["library"]))
    n, (mu, sigma), p = len(draws["ours"]["normal"]), NORMAL, BERNOULLI_P
    xs = np.linspace(-2, 5, 200)
    with figure(ctx, "samples", 1, 3, figsize=(15, 4)) as (_, axes):
        hists = (
            ("ours (Box-Muller)", {"alpha": 0.5}),
            ("torch.distributions", {"histtype": "step"}),
        )
        for (_, s), (label, style) in zip(sources, hists):
            axes[0].hist(s["normal"].numpy(), bins=80, density=True, label=label, **style)
        axes[0].plot(xs, stats.norm.pdf(xs, mu, sigma), "k", label="scipy pdf")
        axes[0].set_title(f"Normal({mu}, {sigma}^2), n = {n}")
        width = 0.25
        for ax, name, truth in (
            (axes[1], "bernoulli", np.array([1 - p, p])),
            (axes[2], "categorical", np.array(CATEGORICAL)),
        ):
            support = np.arange(len(truth))
            for j, (label, s) in enumerate(sources):
                freq = np.bincount(s[name].long().numpy(), minlength=len(support)) / n
                ax.bar(support + (j - 0.5) * width, freq, width, label=label)
            ax.plot(support, truth, "k_", ms=25, mew=2, label="exact pmf")
            ax.set_xticks(support)
            ax.set_title(f"{name}, n = {n}")
        for ax in axes:
            ax.legend(fontsize=8)


def _linreg_figure(losses: np.ndarray, sk_mse: float, ctx: RunContext) -> None:
    with figure(ctx, "linreg_loss", figsize=(6, 4)) as (_, ax):
        ax.semilogy(np.maximum(losses - sk_mse, 1e-16))
        ax.set_xlabel("gradient step")
        ax.set_ylabel("MSE - sklearn's MSE")
        ax.set_title("linear regression on diabetes, autograd gradients")


def _bandit_figure(bandit: dict, best: int, cfg: Config, ctx: RunContext) -> None:
    means, runs = bandit["means"], bandit["runs"]
    pulls = (np.arange(len(runs[True])) + 1) * cfg.batch_size
    with figure(ctx, "bandit", 1, 2, figsize=(12, 4)) as (fig, axes):
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


def _figures(ctx: RunContext, config: Config, metrics: dict, sweep, draws, losses, bandit) -> None:
    _finite_difference_figure(sweep, ctx)
    _gradient_field_figure(ctx)
    _samples_figure(draws, ctx)
    _linreg_figure(losses, metrics["sklearn_linreg_mse"], ctx)
    _bandit_figure(bandit, metrics["best_arm"], config, ctx)


def run(config: Config, ctx: RunContext) -> LabResult:
    deriv_rows, metrics = _derivatives()
    sweep_metrics, sweep = _step_sweep()
    moment_rows, moment_metrics, draws = _sampling(config)
    logprob_rows, logprob_metrics = _log_probs()
    coef_rows, linreg_metrics, losses = _regression(ctx, config)
    bandit_metrics, bandit = _bandit(ctx, config)
    grad_rows, grad_metrics = _reinforce_gradient(config)
    metrics |= sweep_metrics | logprob_metrics | moment_metrics | linreg_metrics
    metrics |= bandit_metrics | grad_metrics

    _figures(ctx, config, metrics, sweep, draws, losses, bandit)

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
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
