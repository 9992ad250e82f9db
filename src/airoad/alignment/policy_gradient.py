"""Policy gradients from scratch: discounted returns, GAE, an actor-critic, its three losses,
and an evaluation loop for any gymnasium environment.

The policy-gradient theorem says the gradient of the expected return is
``E[ grad log pi(a_t | s_t) * A_t ]``: push up the log-probability of actions that turned out
better than expected. REINFORCE uses the Monte Carlo return ``G_t`` (minus a baseline ``V(s_t)``,
which leaves the gradient unbiased but shrinks its variance); advantage actor-critic uses the
generalised advantage estimate (GAE) built from a learned value function.

Shapes: rollouts are time-major, ``(T, N)`` for T steps of N parallel environments (a 1-D
``(T,)`` tensor is one environment). ``dones[t]`` is True when the episode ended AT step t, so
nothing after step t flows back into step t.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.distributions import Categorical


def discounted_returns(
    rewards: Tensor, dones: Tensor, gamma: float, last_value: Tensor | float = 0.0
) -> Tensor:
    """``G_t = r_t + gamma * (1 - done_t) * G_{t+1}``, with ``G_T = last_value`` (bootstrap).

    rewards, dones: (T,) or (T, N); last_value: scalar or (N,), the value of the state after
    the last step (0 when the rollout ends with finished episodes). Returns the shape of rewards.
    One backward pass over time, vectorised over environments.
    """
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    keep = 1.0 - dones.to(rewards.dtype)
    out = torch.empty_like(rewards)
    running = torch.as_tensor(last_value, dtype=rewards.dtype).expand_as(rewards[0]).clone()
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = rewards[t] + gamma * keep[t] * running
        out[t] = running
    return out


def gae(
    rewards: Tensor,
    values: Tensor,
    dones: Tensor,
    last_value: Tensor | float,
    gamma: float,
    lam: float,
) -> Tensor:
    """Generalised advantage estimates (Schulman et al. 2016), shape of rewards.

    ``delta_t = r_t + gamma * (1 - done_t) * V(s_{t+1}) - V(s_t)`` and
    ``A_t = delta_t + gamma * lam * (1 - done_t) * A_{t+1}``, where V(s_T) = last_value.
    lam = 0 gives the one-step TD error; lam = 1 gives ``G_t - V(s_t)`` (the REINFORCE
    advantage with a value baseline). The value targets are ``A_t + V(s_t)``.
    """
    if not (0.0 <= gamma <= 1.0 and 0.0 <= lam <= 1.0):
        raise ValueError(f"gamma and lam must be in [0, 1], got {gamma} and {lam}")
    keep = 1.0 - dones.to(rewards.dtype)
    last = torch.as_tensor(last_value, dtype=rewards.dtype).expand_as(rewards[0])
    next_values = torch.cat([values[1:], last.unsqueeze(0)])
    deltas = rewards + gamma * keep * next_values - values
    out = torch.empty_like(rewards)
    running = torch.zeros_like(rewards[0])
    for t in range(rewards.shape[0] - 1, -1, -1):
        running = deltas[t] + gamma * lam * keep[t] * running
        out[t] = running
    return out


class ActorCritic(nn.Module):
    """Two separate MLPs on the observation: the actor gives action logits, the critic V(s).

    They share nothing, so the baseline changes the policy only through the advantages.
    ``forward(obs (B, obs_dim)) -> (Categorical over n_actions with batch (B,), values (B,))``.
    """

    def __init__(self, obs_dim: int, n_actions: int, hidden: int = 64) -> None:
        super().__init__()
        self.actor = nn.Sequential(
            nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, n_actions)
        )
        self.critic = nn.Sequential(nn.Linear(obs_dim, hidden), nn.Tanh(), nn.Linear(hidden, 1))

    def forward(self, obs: Tensor) -> tuple[Categorical, Tensor]:
        """The action distribution (from logits, softmax done by Categorical) and V(s)."""
        return Categorical(logits=self.actor(obs)), self.critic(obs).squeeze(-1)


def sample_actions(dist: Categorical, generator: torch.Generator) -> Tensor:
    """One action per row of ``dist`` drawn with ``generator`` (so a seed fixes the rollout)."""
    return torch.multinomial(dist.probs, 1, generator=generator).squeeze(-1)


def pg_losses(
    dist: Categorical, actions: Tensor, advantages: Tensor, values: Tensor, returns: Tensor
) -> dict[str, Tensor]:
    """The three actor-critic loss terms, each a mean over the batch (B,).

    policy = ``-mean(log pi(a|s) * A)`` (A detached: it is a weight, not a path for gradients),
    value = ``0.5 * mean((V(s) - R)^2)`` (R detached), entropy = ``mean(H(pi(.|s)))``.
    Minimise ``policy + c_v * value - c_e * entropy``.
    """
    return {
        "policy": -(dist.log_prob(actions) * advantages.detach()).mean(),
        "value": 0.5 * (values - returns.detach()).pow(2).mean(),
        "entropy": dist.entropy().mean(),
    }


def evaluate(
    env: Any, act: Callable[[np.ndarray], int], episodes: int, seed: int, gamma: float = 1.0
) -> np.ndarray:
    """The (discounted) return of each of ``episodes`` episodes played with ``act``.

    Episode i starts from ``env.reset(seed=seed + i)`` and runs until the env reports
    terminated OR truncated; its return is ``sum_t gamma^t r_t``. Shape (episodes,), float64.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be at least 1, got {episodes}")
    out = np.zeros(episodes)
    for i in range(episodes):
        obs, _ = env.reset(seed=seed + i)
        done, discount = False, 1.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            out[i] += discount * float(reward)
            discount *= gamma
            done = terminated or truncated
    return out
