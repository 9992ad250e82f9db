"""Supervised fine-tuning (SFT): next-token loss on the response only.

A chat example is one token sequence, prompt then response. Labels are the ids themselves with
the prompt (and padding) set to ``IGNORE`` (-100, the Hugging Face convention), so those
positions add exactly zero to the loss and its gradient; the logits at position t score the
label at t + 1 (the shift happens here, as inside ``transformers`` models).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

IGNORE = -100


def response_labels(ids: torch.Tensor, response_start: torch.Tensor, pad_id: int) -> torch.Tensor:
    """Labels (B, T) for ids (B, T): IGNORE before each row's ``response_start`` (B,) and on
    padding, the token id elsewhere."""
    positions = torch.arange(ids.shape[1], device=ids.device)
    prompt = positions[None, :] < response_start[:, None]
    return ids.masked_fill(prompt | (ids == pad_id), IGNORE)


def response_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per response token) of logits (B, T, V) at labels (B, T).

    Position t's logits predict labels[:, t + 1]; IGNORE labels are left out of both the sum
    and the count, so the mean is over response tokens of the whole batch.
    """
    shifted = logits[:, :-1].reshape(-1, logits.shape[-1])
    return F.cross_entropy(shifted, labels[:, 1:].reshape(-1), ignore_index=IGNORE)
