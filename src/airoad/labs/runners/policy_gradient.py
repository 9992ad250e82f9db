"""Runner for policy-gradient: REINFORCE (with and without a learned value baseline) and
advantage actor-critic with GAE on gymnasium's CartPole-v1 (an installed package, no dataset).

1. Learning curves: each method trains from the same seeds for the same number of environment
   steps; the curve is the mean return of the last 20 finished training episodes, averaged over
   seeds with the min-max band. Each final policy is then played greedily (argmax action) with
   the reference's ``evaluate``.
2. Gradient variance: at snapshots of the seed-0 REINFORCE + baseline run, repeated batches of
   episodes from that fixed policy give REINFORCE gradient estimates with advantage ``G_t`` and
   with ``G_t - V(s_t)`` on the same batches; the trace of their covariance is compared.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np
import torch

from airoad.alignment import policy_gradient as ref
from airoad.errors import AiroadError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes
from airoad.labs.runners import policy_gradient_parts as parts


@dataclass(frozen=True)
class Config:
    n_seeds: int = param(3, ge=1, le=20)  # training runs per method (seeds 0 .. n_seeds - 1)
    total_steps: int = param(100_000, ge=500, le=2_000_000)  # env steps per run
    n_envs: int = param(8, ge=1, le=64)  # parallel envs; also episodes per REINFORCE batch
    n_steps: int = param(16, ge=1, le=1_000)  # A2C rollout length per update
    hidden: int = param(64, ge=4, le=1_024)
    lr: float = param(5e-3, gt=0.0, le=1.0)  # Adam, REINFORCE (both variants)
    a2c_lr: float = param(1e-3, gt=0.0, le=1.0)  # Adam, A2C (it updates far more often)
    gamma: float = param(0.99, ge=0.0, le=1.0)
    lam: float = param(0.95, ge=0.0, le=1.0)  # GAE lambda (A2C only)
    value_coef: float = param(0.5, ge=0.0, le=10.0)
    entropy_coef: float = param(0.01, ge=0.0, le=1.0)  # A2C only
    eval_episodes: int = param(5, ge=1, le=1_000)  # greedy episodes per final policy
    var_episodes: int = param(8, ge=1, le=256)  # episodes per batch in the variance study
    var_batches: int = param(20, ge=2, le=1_000)  # repeated batches per snapshot
    seed: int = param(0, ge=0, le=1_000_000)  # first training seed


QUICK = {"n_seeds": 2, "total_steps": 1_000, "eval_episodes": 2, "var_episodes": 4,
         "var_batches": 4}  # fmt: skip

NOTES = (
    "After {total_steps} steps ({n_seeds} seeds): REINFORCE {reinforce_final:.0f} "
    "(+/- {reinforce_final_std:.0f}), with baseline {reinforce_baseline_final:.0f} "
    "(+/- {reinforce_baseline_final_std:.0f}), A2C + GAE {a2c_gae_final:.0f} "
    "(+/- {a2c_gae_final_std:.0f}) mean training return; greedy play of the final policies "
    "{reinforce_greedy:.0f} / {reinforce_baseline_greedy:.0f} / {a2c_gae_greedy:.0f} (max 500).",
    "The value baseline cut the gradient variance by {var_ratio_min:.1f}x to {var_ratio_max:.1f}x "
    "across the snapshots; best learner by final return: {best_method}.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    runs = _train_all(config, ctx)
    grid = _grid(config, runs)
    curves = {m: [parts.curve(r, grid) for r in rs] for m, rs in runs.items()}
    metrics, rows = _final_returns(config, runs, curves)
    var_rows = _variance(config, runs["reinforce_baseline"][0], ctx)
    ratios = [r["var_no_baseline"] / r["var_baseline"] for r in var_rows]
    metrics |= {"var_ratio_min": float(min(ratios)), "var_ratio_max": float(max(ratios))}
    parts.curves_figure(grid, curves, ctx)
    parts.variance_figure(var_rows, ctx)
    curve_rows = [{"step": int(g), **{m: float(np.nanmean(np.asarray(c)[:, j]))
                  for m, c in curves.items()}} for j, g in enumerate(grid)]  # fmt: skip
    return LabResult(
        metrics=metrics,
        key_metric="a2c_gae_final",
        library_metric=None,
        tables={"final": rows, "gradient_variance": var_rows, "curves": curve_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _train_all(config: Config, ctx: RunContext) -> dict[str, list[parts.Run]]:
    """Every method from the same seeds; one progress tick per (method, seed)."""
    jobs = [(m, config.seed + s) for m in parts.METHODS for s in range(config.n_seeds)]
    runs: dict[str, list[parts.Run]] = {m: [] for m in parts.METHODS}
    for method, seed in ctx.track(jobs, "training on CartPole-v1"):
        if method == "a2c_gae":
            runs[method].append(parts.train_a2c(config, seed))
        else:
            runs[method].append(parts.train_reinforce(config, seed, method != "reinforce"))
    return runs


def _grid(config: Config, runs: dict) -> np.ndarray:
    """40 env-step counts from the first step at which every run has finished an episode."""
    if any(not r.steps for rs in runs.values() for r in rs):
        raise AiroadError("a run finished no episode: raise total_steps (--set total_steps=...)")
    start = max(r.steps[0] for rs in runs.values() for r in rs)
    return np.linspace(min(start, config.total_steps), config.total_steps, 40)


def _final_returns(config: Config, runs: dict, curves: dict) -> tuple[dict, list[dict]]:
    """Last point of each curve (mean and spread over seeds) and greedy play of each policy."""
    env, metrics, rows = gym.make(parts.ENV_ID), {}, []
    for method, rs in runs.items():
        finals = np.array([c[-1] for c in curves[method]])
        greedy = [ref.evaluate(env, _greedy(r.model), config.eval_episodes, 10_000 + i).mean()
                  for i, r in enumerate(rs)]  # fmt: skip
        metrics |= {f"{method}_final": float(finals.mean()),
                    f"{method}_final_std": float(finals.std()),
                    f"{method}_greedy": float(np.mean(greedy))}  # fmt: skip
        rows += [{"method": method, "seed": config.seed + i, "final_return": float(f),
                  "greedy_return": float(g), "episodes": len(r.returns)}
                 for i, (f, g, r) in enumerate(zip(finals, greedy, rs, strict=True))]  # fmt: skip
    metrics["best_method"] = max(parts.METHODS, key=lambda m: metrics[f"{m}_final"])
    return metrics, rows


def _greedy(model: ref.ActorCritic):
    def act(obs: np.ndarray) -> int:
        with torch.no_grad():
            return int(model(torch.as_tensor(obs, dtype=torch.float32))[0].probs.argmax())

    return act


def _variance(config: Config, run: parts.Run, ctx: RunContext) -> list[dict]:
    """Gradient variance with and without the baseline at each snapshot of one run."""
    rows = []
    for snap in ctx.track(run.snapshots, "gradient variance"):
        stats = parts.gradient_variance(config, snap["state"], config.seed + 777)
        done = np.asarray(run.returns)[np.asarray(run.steps) <= max(snap["step"], 1)]
        rows.append({"step": snap["step"],
                     "mean_return": float(done[-20:].mean()) if len(done) else float("nan"),
                     **stats})  # fmt: skip
    return rows
