"""RLHF with PPO from scratch: KL-shaped per-token rewards, GAE over response tokens, the clipped
policy loss, the (clipped) value loss, and a value head on the policy's own hidden states.

One PPO iteration (Ouyang et al. 2022, with the objective of Schulman et al. 2017):

1. sample a response per prompt from the current policy; record ``old_logp`` (policy),
   ``ref_logp`` (the frozen SFT policy) and ``old_values`` (the value head) per response token;
2. reward per token ``r_t = -beta * (old_logp_t - ref_logp_t)``, plus the reward model's score
   of the whole response on its last token (``shaped_rewards``);
3. advantages by GAE backwards over the response tokens, returns ``= A_t + V_t``
   (``advantages_and_returns``), advantages whitened over the real tokens of the batch;
4. a few epochs of gradient steps on ``policy_loss + vf_coef * value_loss`` (``ppo_losses``).

Shapes: everything per token is (B, R) for B responses of R tokens, with ``mask`` (B, R) True on
real response tokens (a response ends at its first <end>; padding after it is False). The value
``V_t`` and the log-probability of response token t are read at the SAME position: the one whose
hidden state predicts token t (the state before the token is chosen).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from airoad.alignment.policy_gradient import gae
from airoad.alignment.reward_model import last_token_index  # (B,) last True of each mask row
from airoad.transformer.char_gpt import GPT


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over the positions where mask is True (a scalar); 0 when mask is all False."""
    m = mask.to(x.dtype)
    return (x * m).sum() / m.sum().clamp_min(1.0)


def masked_whiten(x: Tensor, mask: Tensor, shift_mean: bool = True, eps: float = 1e-8) -> Tensor:
    """``(x - mean) / sqrt(var + eps)`` with mean and unbiased variance (n - 1) over the masked
    positions only; ``shift_mean=False`` adds the mean back (scale only). 0 off the mask.
    Needs at least two masked positions (the variance of one number is undefined)."""
    n = mask.sum()
    if n < 2:
        raise ValueError(f"whitening needs at least 2 masked positions, got {int(n)}")
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask) * n / (n - 1)
    out = (x - mean) * torch.rsqrt(var + eps)
    if not shift_mean:
        out = out + mean
    return out * mask


def kl_estimators(logp: Tensor, ref_logp: Tensor) -> dict[str, Tensor]:
    """Per-token estimators of KL(pi || pi_ref) from tokens sampled from pi (Schulman's note
    "Approximating KL divergence"), with ``d = logp - ref_logp`` and ``r = pi_ref / pi = e^-d``:

    - k1 = d: unbiased, but negative on some tokens (high variance);
    - k2 = d^2 / 2: biased, always >= 0, low variance (its gradient is that of the true KL);
    - k3 = r - 1 - log r = e^-d - 1 + d: unbiased AND always >= 0.
    Each has the shape of logp.
    """
    d = logp - ref_logp
    return {"k1": d, "k2": 0.5 * d**2, "k3": torch.expm1(-d) + d}


def shaped_rewards(
    scores: Tensor, logp: Tensor, ref_logp: Tensor, mask: Tensor, beta: float
) -> Tensor:
    """Per-token rewards (B, R): ``-beta * (logp - ref_logp)`` on every real token (the k1 KL
    penalty) plus the sequence score (B,) on each row's last real token; 0 off the mask. A row
    with no real token is a ValueError (``last_token_index``).
    Summed over a row: ``score - beta * sum_t k1_t``, the KL-penalised reward of InstructGPT."""
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    rewards = -beta * (logp - ref_logp) * mask
    rows = torch.arange(mask.shape[0], device=mask.device)
    return rewards.index_put((rows, last_token_index(mask)), scores.to(rewards.dtype), True)


def advantages_and_returns(
    rewards: Tensor, values: Tensor, mask: Tensor, gamma: float = 1.0, lam: float = 0.95
) -> tuple[Tensor, Tensor]:
    """GAE over the response tokens of each row, (advantages, returns), both (B, R), 0 off mask.

    The episode ends at each row's last real token (nothing flows back from padding and the
    value after the end is 0), so ``A_t = sum_l (gamma lam)^l delta_{t+l}`` with
    ``delta_t = r_t + gamma V_{t+1} - V_t`` up to the end; returns ``= A_t + V_t`` are the value
    head's targets. Reuses ``policy_gradient.gae`` on the time-major (R, B) view.
    """
    m = mask.to(rewards.dtype)
    ends = torch.zeros_like(mask)
    ends[torch.arange(mask.shape[0]), last_token_index(mask)] = True
    adv = gae((rewards * m).T, (values * m).T, ends.T, 0.0, gamma, lam).T * m
    return adv, (adv + values) * m


def policy_loss(
    logp: Tensor, old_logp: Tensor, advantages: Tensor, mask: Tensor, clip: float = 0.2
) -> tuple[Tensor, Tensor]:
    """The clipped surrogate (Schulman et al. 2017, eq. 7), negated to be minimised:
    ``-mean_t min(rho_t A_t, clip(rho_t, 1 - clip, 1 + clip) A_t)`` with the ratio
    ``rho_t = exp(logp_t - old_logp_t)``, over the real tokens. Returns (loss, clip fraction:
    share of real tokens whose clipped term is the one that counts, i.e. gets no gradient)."""
    if not 0.0 < clip < 1.0:
        raise ValueError(f"clip must be in (0, 1), got {clip}")
    ratio = torch.exp(logp - old_logp.detach())
    adv = advantages.detach()
    unclipped, clipped = -adv * ratio, -adv * ratio.clamp(1.0 - clip, 1.0 + clip)
    loss = masked_mean(torch.maximum(unclipped, clipped), mask)
    return loss, masked_mean((clipped > unclipped).to(logp.dtype), mask)


def value_loss(
    values: Tensor, old_values: Tensor, returns: Tensor, mask: Tensor, clip: float | None = 0.2
) -> Tensor:
    """``0.5 * mean_t (V_t - R_t)^2`` over real tokens; with ``clip`` the pessimistic PPO2 form
    ``0.5 * mean_t max((V_t - R_t)^2, (V_clip_t - R_t)^2)`` where
    ``V_clip = old_V + clamp(V - old_V, -clip, clip)`` keeps one update from moving V far."""
    target = returns.detach()
    err = (values - target) ** 2
    if clip is not None:
        if clip <= 0:
            raise ValueError(f"value clip must be > 0 (or None for no clipping), got {clip}")
        old = old_values.detach()
        clipped = old + (values - old).clamp(-clip, clip)
        err = torch.maximum(err, (clipped - target) ** 2)
    return 0.5 * masked_mean(err, mask)


def ppo_losses(
    logp: Tensor,
    values: Tensor,
    old_logp: Tensor,
    old_values: Tensor,
    advantages: Tensor,
    returns: Tensor,
    mask: Tensor,
    clip: float = 0.2,
    value_clip: float | None = 0.2,
    vf_coef: float = 0.1,
) -> dict[str, Tensor]:
    """The terms of one PPO minibatch step: ``loss = policy + vf_coef * value`` (minimise it),
    plus ``policy``, ``value``, ``clipfrac`` and ``approx_kl`` (mean k3 between the old and the
    current policy, a stopping signal). All inputs (B, R); advantages already whitened."""
    pol, clipfrac = policy_loss(logp, old_logp, advantages, mask, clip)
    val = value_loss(values, old_values, returns, mask, value_clip)
    approx_kl = masked_mean(kl_estimators(logp.detach(), old_logp)["k3"], mask)
    return {"loss": pol + vf_coef * val, "policy": pol, "value": val, "clipfrac": clipfrac,
            "approx_kl": approx_kl}  # fmt: skip


def gpt_hidden_states(model: GPT, ids: Tensor) -> Tensor:
    """The final hidden states (B, T, C) of a char-gpt model: ``ln_f`` after every block over
    token + position embeddings (what ``lm_head`` turns into logits)."""
    pos = torch.arange(ids.shape[1], device=ids.device)
    x = model.drop(model.wte(ids) + model.wpe(pos))
    for block in model.blocks:
        x = block(x)
    return model.ln_f(x)


class PolicyWithValue(nn.Module):
    """A char-gpt policy and a value head (one Linear(C, 1)) on its final hidden states: the
    critic shares the policy's trunk, so one forward pass gives both (the InstructGPT setup).
    ``forward(ids (B, T)) -> (logits (B, T, V), values (B, T))``. The head starts at zero, so
    the first values are 0 and the first advantages are the rewards-to-go."""

    def __init__(self, policy: GPT) -> None:
        super().__init__()
        self.policy = policy
        self.value_head = nn.Linear(policy.config.n_embd, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, ids: Tensor) -> tuple[Tensor, Tensor]:
        h = gpt_hidden_states(self.policy, ids)
        return self.policy.lm_head(h), self.value_head(h).squeeze(-1)


def response_logprobs_values(
    model: PolicyWithValue, prompts: Tensor, responses: Tensor, mask: Tensor
) -> tuple[Tensor, Tensor]:
    """(log pi(response token t | before it), V at the same position), both (B, R), 0 off mask.

    prompts (B, P), responses (B, R). Position P - 1 + t predicts response token t, so the
    logits and values at positions P-1 .. P+R-2 of ``cat(prompts, responses)[:, :-1]`` are used.
    """
    p = prompts.shape[1]
    logits, values = model(torch.cat([prompts, responses], 1)[:, :-1])
    logp = F.log_softmax(logits[:, p - 1 :].float(), -1)
    picked = logp.gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    return picked * mask, values[:, p - 1 :] * mask
