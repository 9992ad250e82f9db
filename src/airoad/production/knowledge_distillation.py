"""Knowledge distillation: a small student learns from a large teacher's softened predictions.

Hinton, Vinyals and Dean (2015), "Distilling the Knowledge in a Neural Network". With student
logits ``s`` and teacher logits ``t`` (both (B, C)), a temperature ``T > 0`` and a weight
``alpha`` in [0, 1]:

    p_t = softmax(t / T),  p_s = softmax(s / T)
    loss = alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE(s, y)

- KL direction: teacher first. ``KL(p_t || p_s) = sum_c p_t log(p_t / p_s)`` is the soft-target
  cross-entropy ``-sum_c p_t log p_s`` minus the teacher's entropy, which does not depend on the
  student, so it has the same gradient as Hinton's soft-target cross-entropy but is 0 when the
  student matches the teacher. It is ``F.kl_div(log p_s, log p_t, log_target=True)``: torch takes
  the *student's* log-probabilities as ``input`` and the teacher as ``target``.
- Why ``T^2``: the gradient of the KL term wrt the student logits is
  ``(p_s - p_t) / T`` per example, and for large T, ``p_s - p_t ~ (s - t) / (C T)``, so the soft
  gradients shrink like ``1 / T^2``. Multiplying by ``T^2`` keeps their size comparable across
  temperatures and against the hard-label term, so changing T does not silently re-weight alpha.
  With the batch mean, ``d(T^2 KL) / ds = T (p_s - p_t) / B``.
- Stability: both distributions come from ``log_softmax`` (max-subtracted inside), and the KL is
  ``sum p_t (log p_t - log p_s)`` in log space, so logits of 1e4 give finite numbers.

``distill_epoch`` trains any model whose forward is ``model(*inputs)`` (for example the
lstm-sentiment lab's ``LSTMClassifier(ids, lengths)``) on precomputed teacher logits: the
teacher runs once, never per epoch. At ``alpha = 0`` it is plain cross-entropy training.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def _check(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> None:
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if student_logits.shape != teacher_logits.shape or student_logits.dim() != 2:
        raise ValueError(
            f"student and teacher logits must both be (batch, classes); got "
            f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}"
        )
    if not bool(torch.isfinite(teacher_logits).all()):
        raise ValueError("teacher logits contain NaN or inf: recompute them from the teacher")


def soft_targets(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Softened class probabilities softmax(logits / T) over the last axis, (..., C) -> (..., C).

    T = 1 is the usual softmax; a larger T flattens it and shows how the model ranks the wrong
    classes ("dark knowledge"). Raises ValueError unless T > 0."""
    if not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    return torch.softmax(logits / temperature, dim=-1)


def distillation_kl(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The soft part of the loss: T^2 * mean over the batch of KL(p_t || p_s), a scalar.

    student_logits, teacher_logits: (B, C). p = softmax(logits / T) for each; the KL is summed
    over classes and averaged over rows (torch's ``reduction="batchmean"``), computed from
    log_softmax so it stays finite for huge logits. Equal to
    ``T**2 * F.kl_div(log_softmax(s/T), log_softmax(t/T), reduction="batchmean",
    log_target=True)``. Raises ValueError for T <= 0, mismatched shapes or non-finite teacher
    logits."""
    _check(student_logits, teacher_logits, temperature)
    log_ps = F.log_softmax(student_logits / temperature, dim=-1)
    log_pt = F.log_softmax(teacher_logits / temperature, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).sum(-1)  # (B,), >= 0 up to rounding
    return temperature**2 * kl.mean()


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    labels: torch.Tensor,
    temperature: float = 4.0,
    alpha: float = 0.5,
) -> torch.Tensor:
    """alpha * T^2 * KL(p_t || p_s) + (1 - alpha) * CE(student_logits, labels), a scalar.

    logits (B, C), labels (B,) long. The cross-entropy uses the student's raw logits (T = 1) and
    the batch mean. alpha = 0 is plain cross-entropy; alpha = 1 ignores the labels. Raises
    ValueError unless 0 <= alpha <= 1 (and as ``distillation_kl`` does)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    soft = distillation_kl(student_logits, teacher_logits, temperature)
    hard = F.cross_entropy(student_logits, labels)
    return alpha * soft + (1.0 - alpha) * hard


def distillation_kl_grad(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float
) -> torch.Tensor:
    """The closed-form gradient of ``distillation_kl`` wrt the student logits, (B, C).

    d/ds [T^2 * (1/B) sum_b KL(p_t || p_s)] = T * (softmax(s/T) - softmax(t/T)) / B: the chain
    rule gives 1/T from s/T, the softmax-with-log gives p_s - p_t, and T^2 / T = T."""
    _check(student_logits, teacher_logits, temperature)
    p_s = soft_targets(student_logits, temperature)
    p_t = soft_targets(teacher_logits, temperature)
    return temperature * (p_s - p_t) / student_logits.shape[0]


def distill_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    inputs: Sequence[torch.Tensor],
    labels: torch.Tensor,
    teacher_logits: torch.Tensor | None,
    temperature: float = 4.0,
    alpha: float = 0.5,
    batch_size: int = 32,
    generator: torch.Generator | None = None,
    clip: float = 1.0,
) -> float:
    """One pass in shuffled mini-batches on ``distillation_loss``; returns the mean loss.

    inputs: tensors whose first dimension is the example (e.g. ``(ids, lengths)``); each batch
    calls ``model(*[x[idx] for x in inputs])`` -> (b, C) logits. The batch order is
    ``torch.randperm(n, generator=generator)`` cut into ``batch_size`` slices (the order
    lstm-sentiment's ``train_epoch`` draws). teacher_logits: (n, C), precomputed once, row i
    for example i; None trains on the labels alone (alpha must then be 0). No examples, or
    a teacher row count that differs from the labels', is a ValueError. Per batch: zero the
    gradients, loss, backward, clip the gradient norm to ``clip``, step. The mean is over
    examples (each batch's loss weighted by its size)."""
    n = len(labels)
    if n == 0:
        raise ValueError("distill_epoch needs at least one example")
    if teacher_logits is None and alpha != 0:
        raise ValueError("alpha > 0 needs teacher logits; pass teacher_logits or alpha=0")
    if teacher_logits is not None and len(teacher_logits) != n:
        raise ValueError(f"teacher_logits has {len(teacher_logits)} rows for {n} examples")
    model.train()
    order = torch.randperm(n, generator=generator)
    total = 0.0
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
        optimizer.zero_grad()
        logits = model(*[x[idx] for x in inputs])
        if teacher_logits is None:
            loss = F.cross_entropy(logits, labels[idx])
        else:
            loss = distillation_loss(logits, teacher_logits[idx], labels[idx], temperature, alpha)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total += loss.item() * len(idx)
    return total / n


@torch.no_grad()
def predict_logits(
    model: nn.Module, inputs: Sequence[torch.Tensor], batch_size: int = 256
) -> torch.Tensor:
    """Logits (n, C) of ``model(*inputs)`` in eval mode, ``batch_size`` rows at a time."""
    model.eval()
    n = len(inputs[0])
    out = [model(*[x[s : s + batch_size] for x in inputs]) for s in range(0, n, batch_size)]
    return torch.cat(out) if out else torch.empty(0, 0)


def agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> float:
    """Fidelity: the fraction of rows of two (n, C) logit tensors whose argmax class agrees."""
    if len(student_logits) == 0:
        raise ValueError("agreement of zero rows is undefined")
    same = student_logits.argmax(-1) == teacher_logits.argmax(-1)
    return float(same.double().mean())
