"""Direct preference optimisation (DPO) and IPO: learn from preference pairs without a reward
model or a sampling loop.

For a prompt x with a preferred response y_w and a rejected one y_l, DPO (Rafailov et al., 2023)
reads the policy's log-ratio to a frozen reference as an implicit reward,

    r(x, y) = beta * (log pi(y | x) - log pi_ref(y | x)),

and fits it with the Bradley-Terry likelihood of the preference:

    loss = -log sigmoid(r(x, y_w) - r(x, y_l)).

IPO (Azar et al., 2023) swaps the log-sigmoid for a squared error that pulls the (per-token)
log-ratio margin to 1 / (2 beta) instead of pushing it to infinity, so it cannot over-fit a
deterministic preference. Both need only four numbers per pair: the summed log-probabilities of
the chosen and the rejected response under the policy and under the reference.

Batches follow ``trl``'s layout: ``ids`` (2B, T) holds the B chosen sequences, then the B
rejected ones (prompt + response, right-padded), and ``completion_mask`` (2B, T) is 1 on response
tokens only, so prompt and padding never count.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSS_TYPES = ("sigmoid", "ipo")  # trl's names: "sigmoid" is the DPO loss


def log_sigmoid(x: torch.Tensor) -> torch.Tensor:
    """log sigmoid(x) = min(x, 0) - log(1 + exp(-|x|)), elementwise.

    Never forms exp of a large positive number, so it is finite for x = +-1000 where
    ``torch.log(torch.sigmoid(x))`` gives -inf.
    """
    # torch.minimum splits the gradient at the tie x = 0, giving the true slope 1/2 there.
    return torch.minimum(x, torch.zeros_like(x)) - torch.log1p(torch.exp(-x.abs()))


def sequence_logprobs(
    logits: torch.Tensor, ids: torch.Tensor, completion_mask: torch.Tensor
) -> torch.Tensor:
    """Summed log pi(response | prompt) per row, (N,).

    logits (N, T, V) come from feeding ids (N, T); the logits at position t score the token at
    t + 1, so token t (t >= 1) contributes log_softmax(logits[t - 1])[ids[t]] when
    completion_mask[t] is 1. Prompt and padding (mask 0) add exactly nothing.
    """
    logits = logits[:, :-1].to(torch.promote_types(logits.dtype, torch.float32))
    logp = F.log_softmax(logits, dim=-1)
    picked = logp.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
    return (picked * completion_mask[:, 1:]).sum(dim=1)


def implicit_rewards(policy_logps: torch.Tensor, ref_logps: torch.Tensor, beta: float):
    """DPO's implicit reward beta * (log pi(y|x) - log pi_ref(y|x)), same shape as the inputs."""
    return beta * (policy_logps - ref_logps)


def dpo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Mean over pairs of -log sigmoid(beta * ((pc - rc) - (pr - rr))); inputs (B,) summed
    log-probs of the chosen / rejected responses under the policy (p*) and the reference (r*)."""
    margin = (policy_chosen - ref_chosen) - (policy_rejected - ref_rejected)
    return -log_sigmoid(beta * margin).mean()


def ipo_loss(
    policy_chosen: torch.Tensor,
    policy_rejected: torch.Tensor,
    ref_chosen: torch.Tensor,
    ref_rejected: torch.Tensor,
    chosen_len: torch.Tensor,
    rejected_len: torch.Tensor,
    beta: float,
) -> torch.Tensor:
    """Mean over pairs of (h - 1 / (2 beta))^2, where h is the chosen minus the rejected
    log-ratio, each divided by its response length in tokens (``*_len`` (B,), clamped to >= 1,
    as ``trl`` does so beta means the same for short and long responses)."""
    chosen = (policy_chosen - ref_chosen) / chosen_len.clamp(min=1)
    rejected = (policy_rejected - ref_rejected) / rejected_len.clamp(min=1)
    return ((chosen - rejected - 1.0 / (2.0 * beta)) ** 2).mean()


def preference_loss(
    policy: Callable[[torch.Tensor], torch.Tensor],
    reference: Callable[[torch.Tensor], torch.Tensor],
    ids: torch.Tensor,
    completion_mask: torch.Tensor,
    beta: float,
    loss_type: str = "sigmoid",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, chosen_rewards (B,), rejected_rewards (B,)) of one batch in trl's layout.

    ``policy`` and ``reference`` map ids (2B, T) to logits (2B, T, V); the reference runs under
    no_grad (it is frozen), the policy with gradients. Rewards are detached implicit rewards.
    """
    if loss_type not in LOSS_TYPES:
        raise ValueError(f"loss_type must be one of {LOSS_TYPES}, not {loss_type!r}")
    logps = sequence_logprobs(policy(ids), ids, completion_mask)
    with torch.no_grad():
        ref_logps = sequence_logprobs(reference(ids), ids, completion_mask)
    pc, pr = logps.chunk(2)
    rc, rr = ref_logps.chunk(2)
    if loss_type == "sigmoid":
        loss = dpo_loss(pc, pr, rc, rr, beta)
    else:
        chosen_len, rejected_len = completion_mask.sum(dim=1).chunk(2)
        loss = ipo_loss(pc, pr, rc, rr, chosen_len, rejected_len, beta)
    rewards = implicit_rewards(logps.detach(), ref_logps, beta)
    return loss, *rewards.chunk(2)


def preference_accuracy(chosen_rewards: torch.Tensor, rejected_rewards: torch.Tensor) -> float:
    """Fraction of pairs whose chosen response gets the strictly higher implicit reward."""
    return float((chosen_rewards > rejected_rewards).float().mean())
