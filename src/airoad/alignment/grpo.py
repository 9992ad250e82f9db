"""Group relative policy optimisation (GRPO, Shao et al. 2024, DeepSeekMath): PPO without a critic.

For each prompt the policy samples a group of G responses; a checker scores each one. Instead of
a learned value baseline, each response's advantage is its reward relative to its own group:

    A_i = (r_i - mean(r_1..r_G)) / (std(r_1..r_G) + eps)         (one value for every token of i)

and the policy climbs PPO's clipped surrogate with a KL penalty to a frozen reference policy,
estimated per token with the unbiased, always non-negative "k3" estimator:

    ratio_t = pi(o_t) / pi_old(o_t)
    loss_t  = -min(ratio_t A, clip(ratio_t, 1 - eps_low, 1 + eps_high) A) + beta KL_t
    KL_t    = pi_ref(o_t) / pi(o_t) - log(pi_ref(o_t) / pi(o_t)) - 1

Per-token losses are averaged over the real response tokens (``mask``). Two ways, both as in
``trl`` 1.16's ``GRPOTrainer``: ``"grpo"`` (DeepSeekMath's 1/|o_i| mean per response, then the mean
over responses) and ``"dapo"`` (trl's default: one mean over every real token in the batch, so a
long response weighs more than a short one).

Shapes: B responses (= prompts x G, each group's G rows consecutive), T response positions.
"""

from __future__ import annotations

import torch
from torch import Tensor

LOSS_TYPES = ("grpo", "dapo")


def group_advantages(rewards: Tensor, group_size: int, eps: float = 1e-4) -> Tensor:
    """(B,) advantages from (B,) rewards: (r - group mean) / (group std + eps).

    Rows ``k*G .. k*G + G - 1`` form group k. The std is the sample std (Bessel's correction, as
    ``trl`` computes it); a group whose rewards are all equal carries no signal and gets exactly 0
    (never NaN). Raises ValueError if B is not a multiple of ``group_size``, ``group_size`` < 2 or a
    reward is not finite.
    """
    if group_size < 2:
        raise ValueError(
            f"group_size must be at least 2 (a group of one has no baseline), got {group_size}"
        )
    if rewards.ndim != 1 or rewards.numel() % group_size:
        raise ValueError(
            f"rewards must be (B,) with B a multiple of group_size={group_size}, got {tuple(rewards.shape)}"
        )
    if not torch.isfinite(rewards).all():
        raise ValueError("rewards must be finite: a reward function returned NaN or infinity")
    groups = rewards.view(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, keepdim=True)  # unbiased, finite because group_size >= 2
    return ((groups - mean) / (std + eps)).reshape(-1)


def k3_kl(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """Per-token k3 estimate of KL(pi || pi_ref) from log pi and log pi_ref at the sampled tokens.

    With d = log pi_ref - log pi: exp(d) - d - 1, which is >= 0 everywhere, 0 exactly where the
    two agree, and unbiased for the KL when the tokens were sampled from pi (Schulman's "k3").
    """
    d = ref_logprobs - logprobs
    return torch.exp(d) - d - 1


def clipped_surrogate(
    logprobs: Tensor,
    old_logprobs: Tensor,
    advantages: Tensor,
    epsilon_low: float = 0.2,
    epsilon_high: float | None = None,
) -> Tensor:
    """Per-token PPO loss (B, T): -min(ratio A, clip(ratio, 1 - eps_low, 1 + eps_high) A).

    ``ratio = exp(logprobs - old_logprobs)``; ``advantages`` (B,) is broadcast over the tokens of
    its response. ``epsilon_high`` defaults to ``epsilon_low`` (symmetric clipping). The min makes
    the objective pessimistic: moving a ratio past the clip range never pays off.
    """
    high = epsilon_low if epsilon_high is None else epsilon_high
    adv = advantages.unsqueeze(-1) if advantages.ndim == 1 else advantages
    ratio = torch.exp(logprobs - old_logprobs)
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + high)
    return -torch.min(ratio * adv, clipped * adv)


def aggregate(per_token: Tensor, mask: Tensor, loss_type: str = "grpo") -> Tensor:
    """Scalar loss from per-token losses (B, T) over the real tokens ``mask`` (B, T).

    ``"grpo"``: sum over each response's tokens / its length (at least 1), then the mean over the
    B responses. ``"dapo"``: sum over every real token / their count (at least 1). Masked
    positions add exactly zero to the value and to the gradient, whatever they hold.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, got {loss_type!r}")
    m = mask.to(per_token.dtype)
    masked = torch.where(mask.bool(), per_token, torch.zeros_like(per_token))
    if loss_type == "grpo":
        return (masked.sum(-1) / m.sum(-1).clamp(min=1.0)).mean()
    return masked.sum() / m.sum().clamp(min=1.0)


def grpo_loss(
    logprobs: Tensor,
    old_logprobs: Tensor,
    ref_logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    epsilon: float = 0.2,
    beta: float = 0.04,
    loss_type: str = "grpo",
    epsilon_high: float | None = None,
) -> Tensor:
    """The GRPO loss (scalar) to minimise: clipped surrogate + beta * k3 KL, masked and averaged.

    ``logprobs`` (B, T) carries the gradient (log pi of the sampled tokens under the policy being
    trained); ``old_logprobs`` (the policy that sampled them) and ``ref_logprobs`` (the frozen
    reference) are constants; ``advantages`` (B,) from ``group_advantages``; ``mask`` (B, T) is True
    on real response tokens. ``beta = 0`` drops the KL term.
    """
    per_token = clipped_surrogate(logprobs, old_logprobs, advantages, epsilon, epsilon_high)
    if beta != 0.0:
        per_token = per_token + beta * k3_kl(logprobs, ref_logprobs)
    return aggregate(per_token, mask, loss_type)


def clip_fraction(
    logprobs: Tensor, old_logprobs: Tensor, advantages: Tensor, mask: Tensor, epsilon: float = 0.2
) -> float:
    """Share of real tokens whose ratio the clip is holding back (below 1 - eps with A < 0, or
    above 1 + eps with A > 0): there the surrogate's gradient is zero."""
    adv = advantages.unsqueeze(-1) if advantages.ndim == 1 else advantages
    ratio = torch.exp(logprobs - old_logprobs)
    held = ((ratio < 1 - epsilon) & (adv < 0)) | ((ratio > 1 + epsilon) & (adv > 0))
    return float((held & mask.bool()).sum() / mask.sum().clamp(min=1))
