"""Rollouts, training loops, curves and figures for the policy-gradient runner.

Environments are N separate ``CartPole-v1`` instances stepped in a Python loop while the
policy runs once on the whole (N, 4) batch; each is seeded once (``reset(seed=seed + i)``) and
then resets without a seed, so a run is fixed by its seed. Actions come from a torch generator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import torch

from airoad.alignment import policy_gradient as ref

ENV_ID = "CartPole-v1"
METHODS = ("reinforce", "reinforce_baseline", "a2c_gae")


@dataclass
class Run:
    """One training run: finished episodes as (env steps so far, return), snapshots of weights."""

    steps: list[int] = field(default_factory=list)
    returns: list[float] = field(default_factory=list)
    snapshots: list[dict] = field(default_factory=list)
    model: ref.ActorCritic | None = None


def make_envs(n: int, seed: int) -> tuple[list, np.ndarray]:
    envs = [gym.make(ENV_ID) for _ in range(n)]
    obs = np.stack([e.reset(seed=seed + i)[0] for i, e in enumerate(envs)])
    return envs, obs


def _tensor(x) -> torch.Tensor:
    return torch.as_tensor(np.asarray(x), dtype=torch.float32)


def episodes(envs: list, model: ref.ActorCritic, gen: torch.Generator) -> dict:
    """One full episode per env, padded to the longest: obs (T, N, 4), actions, rewards, dones,
    mask (T, N) True while that env's episode is running. Truncation at 500 ends an episode."""
    n = len(envs)
    obs = np.stack([e.reset()[0] for e in envs])
    alive = np.ones(n, bool)
    rows: dict[str, list] = {k: [] for k in ("obs", "actions", "rewards", "dones", "mask")}
    while alive.any():
        with torch.no_grad():
            actions = ref.sample_actions(model(_tensor(obs))[0], gen)
        rewards, dones, before = np.zeros(n), np.zeros(n, bool), obs.copy()
        for i in np.flatnonzero(alive):
            obs[i], rewards[i], term, trunc, _ = envs[i].step(int(actions[i]))
            dones[i] = term or trunc
        for k, v in zip(rows, (before, actions.numpy(), rewards, dones, alive.copy()), strict=True):
            rows[k].append(v)
        alive &= ~dones
    out = {k: _tensor(np.stack(v)) for k, v in rows.items()}
    out["actions"], out["mask"] = out["actions"].long(), out["mask"].bool()
    return out


def reinforce_advantages(batch: dict, model: ref.ActorCritic, gamma: float, baseline: bool):
    """Monte Carlo returns of the valid steps, and G - V(s) (or G itself without a baseline)."""
    returns = ref.discounted_returns(batch["rewards"], batch["dones"], gamma)[batch["mask"]]
    obs, actions = batch["obs"][batch["mask"]], batch["actions"][batch["mask"]]
    dist, values = model(obs)
    adv = returns - values.detach() if baseline else returns
    return dist, actions, adv, values, returns


def train_reinforce(cfg, seed: int, baseline: bool) -> Run:
    """REINFORCE on batches of full episodes; the critic is fitted to the returns either way,
    but only the baseline variant subtracts it."""
    torch.manual_seed(seed)
    model, gen, run = ref.ActorCritic(4, 2, cfg.hidden), torch.Generator().manual_seed(seed), Run()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    envs, _ = make_envs(cfg.n_envs, seed)
    total, marks = 0, _marks(cfg)
    while total < cfg.total_steps:
        batch = episodes(envs, model, gen)
        lengths = batch["mask"].sum(0).numpy()
        for length in np.sort(lengths):
            run.steps.append(total + int(length) * cfg.n_envs)  # approximate within one batch
            run.returns.append(float(length))
        total += int(lengths.sum())
        losses = ref.pg_losses(*reinforce_advantages(batch, model, cfg.gamma, baseline))
        _update(opt, model, losses, cfg.value_coef, 0.0)
        _snapshot(run, model, total, marks)
    run.snapshots.append({"step": total, "state": model.state_dict()})  # the final weights
    run.model = model
    return run


def train_a2c(cfg, seed: int) -> Run:
    """Advantage actor-critic: rollouts of n_steps x n_envs, GAE(gamma, lam), one update each.
    A truncated episode (500 steps) is bootstrapped: its last reward gets gamma * V(final obs)."""
    torch.manual_seed(seed)
    model, gen, run = ref.ActorCritic(4, 2, cfg.hidden), torch.Generator().manual_seed(seed), Run()
    opt = torch.optim.Adam(model.parameters(), lr=cfg.a2c_lr)
    envs, obs = make_envs(cfg.n_envs, seed)
    ep_return, total, marks = np.zeros(cfg.n_envs), 0, _marks(cfg)
    for _ in range(cfg.total_steps // (cfg.n_steps * cfg.n_envs)):
        rows = {k: [] for k in ("obs", "actions", "rewards", "dones")}
        for _ in range(cfg.n_steps):
            with torch.no_grad():
                actions = ref.sample_actions(model(_tensor(obs))[0], gen)
            rewards, dones, before = np.zeros(cfg.n_envs), np.zeros(cfg.n_envs, bool), obs.copy()
            for i, env in enumerate(envs):
                obs[i], rewards[i], term, trunc, _ = env.step(int(actions[i]))
                ep_return[i] += rewards[i]
                total += 1
                if term or trunc:
                    if trunc and not term:
                        with torch.no_grad():
                            rewards[i] += cfg.gamma * float(model(_tensor(obs[i]))[1])
                    run.steps.append(total)
                    run.returns.append(float(ep_return[i]))
                    ep_return[i], dones[i] = 0.0, True
                    obs[i] = env.reset()[0]
            for k, v in zip(rows, (before, actions.numpy(), rewards, dones), strict=True):
                rows[k].append(v)
        b = {k: _tensor(np.stack(v)) for k, v in rows.items()}
        dist, values = model(b["obs"].reshape(-1, 4))
        with torch.no_grad():
            last = model(_tensor(obs))[1]
        adv = ref.gae(b["rewards"], values.detach().reshape(b["rewards"].shape), b["dones"], last,
                      cfg.gamma, cfg.lam).reshape(-1)  # fmt: skip
        losses = ref.pg_losses(dist, b["actions"].long().reshape(-1), adv, values,
                               adv + values.detach())  # fmt: skip
        _update(opt, model, losses, cfg.value_coef, cfg.entropy_coef)
        _snapshot(run, model, total, marks)
    run.snapshots.append({"step": total, "state": model.state_dict()})  # the final weights
    run.model = model
    return run


def _update(opt, model, losses: dict, value_coef: float, entropy_coef: float) -> None:
    loss = losses["policy"] + value_coef * losses["value"] - entropy_coef * losses["entropy"]
    opt.zero_grad()
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()


def _marks(cfg) -> list[int]:
    """Env-step counts at which a run keeps a copy of its weights (for the variance figure)."""
    return [int(cfg.total_steps * f) for f in (0.0, 0.25, 0.5)]


def _snapshot(run: Run, model, total: int, marks: list[int]) -> None:
    state = {k: v.clone() for k, v in model.state_dict().items()}
    if not run.snapshots:
        run.snapshots.append({"step": 0, "state": state})  # the first update's weights
    while len(run.snapshots) < len(marks) and total >= marks[len(run.snapshots)]:
        run.snapshots.append({"step": total, "state": state})


def curve(run: Run, grid: np.ndarray, window: int = 20) -> np.ndarray:
    """Mean return of the last ``window`` finished episodes at each env-step count of grid."""
    steps, returns = np.asarray(run.steps), np.asarray(run.returns)
    out = np.full(len(grid), np.nan)
    for j, g in enumerate(grid):
        done = returns[steps <= g]
        if len(done):
            out[j] = done[-window:].mean()
    return out


def policy_grad(model, batch: dict, gamma: float, baseline: bool) -> np.ndarray:
    """The REINFORCE gradient estimate of one batch w.r.t. the actor's weights, flattened."""
    model.zero_grad()
    loss = ref.pg_losses(*reinforce_advantages(batch, model, gamma, baseline))["policy"]
    loss.backward()
    return torch.cat([p.grad.reshape(-1) for p in model.actor.parameters()]).numpy().copy()


def gradient_variance(cfg, state: dict, seed: int) -> dict:
    """Total variance (trace of the covariance) of the gradient estimate over repeated batches
    from one fixed policy, with and without the value baseline, on the SAME batches."""
    model = ref.ActorCritic(4, 2, cfg.hidden)
    model.load_state_dict(state)
    envs, _ = make_envs(cfg.var_episodes, seed)
    gen = torch.Generator().manual_seed(seed)
    grads = {True: [], False: []}
    for _ in range(cfg.var_batches):
        batch = episodes(envs, model, gen)
        for b in grads:
            grads[b].append(policy_grad(model, batch, cfg.gamma, b))
    var = {b: float(np.var(np.stack(g), axis=0, ddof=1).sum()) for b, g in grads.items()}
    mean_sq = {b: float(np.square(np.mean(g, axis=0)).sum()) for b, g in grads.items()}
    return {"var_baseline": var[True], "var_no_baseline": var[False],
            "mean_sq_baseline": mean_sq[True], "mean_sq_no_baseline": mean_sq[False]}  # fmt: skip


def curves_figure(grid: np.ndarray, curves: dict, ctx) -> None:
    """Mean return over seeds (line) and its min-max band, one colour per method."""
    from airoad.labs.kit import figure

    with figure(ctx, "learning_curves", figsize=(7, 4.2)) as (fig, ax):
        for method, c in curves.items():
            c = np.asarray(c)
            ax.plot(grid, np.nanmean(c, 0), label=f"{method} (mean of {len(c)} seeds)")
            ax.fill_between(grid, np.nanmin(c, 0), np.nanmax(c, 0), alpha=0.2)
        ax.axhline(500, color="grey", lw=0.8, ls="--")
        ax.set(xlabel="environment steps", ylabel="return (last 20 episodes)",
               title="CartPole-v1: REINFORCE vs REINFORCE + baseline vs A2C + GAE")  # fmt: skip
        ax.legend(loc="upper left", fontsize=8)


def variance_figure(rows: list[dict], ctx) -> None:
    """Gradient-estimate variance with and without the baseline at each snapshot (log scale)."""
    from airoad.labs.kit import figure

    with figure(ctx, "gradient_variance", figsize=(6.5, 4)) as (fig, ax):
        x = np.arange(len(rows))
        for off, key, label in ((-0.2, "var_no_baseline", "G_t"), (0.2, "var_baseline",
                                "G_t - V(s_t)")):  # fmt: skip
            ax.bar(x + off, [r[key] for r in rows], width=0.4, label=f"advantage = {label}")
        ax.set_xticks(x, [_tick(r) for r in rows])
        ax.set(yscale="log", ylabel="trace of gradient covariance",
               title="Variance of the REINFORCE gradient over repeated batches")  # fmt: skip
        ax.legend(fontsize=8)


def _tick(row: dict) -> str:
    if row["step"] == 0:
        return "start\n(untrained)"
    return f"{row['step']} steps\nreturn {row['mean_return']:.0f}"
