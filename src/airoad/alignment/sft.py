"""Supervised fine-tuning (SFT): next-token loss on the response only.

A chat example is one token sequence, prompt then response. Labels are the ids themselves with
the prompt (and padding) set to ``IGNORE`` (-100, the Hugging Face convention), so those
positions add exactly zero to the loss and its gradient; the logits at position t score the
label at t + 1 (the shift happens here, as inside ``transformers`` models).

Three more pieces make SFT of a real chat model work:

- the chat template: ``render_chatml`` writes SmolLM2's ChatML turns
  (``<|im_start|>role\\ncontent<|im_end|>\\n``, with its default system turn), and
  ``chat_tokens`` turns (messages, reply) into ids plus the index where the reply starts;
- packing: ``pack`` lays several short examples end to end in one row, with positions that
  restart at 0 per example and a segment id per token; ``attention_bias`` turns the segment ids
  into a block-diagonal causal mask, so no token attends across an example boundary and the
  packed row computes exactly what the examples would compute one by one;
- the loop: ``train`` takes one optimizer step per batch on ``response_loss``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

IGNORE = -100
SMOL_SYSTEM = "You are a helpful AI assistant named SmolLM, trained by Hugging Face"


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


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss (B, T - 1): -log p(labels[:, t + 1] | logits[:, t]), exactly 0 where the
    label is IGNORE. Its sum over the batch divided by the number of non-IGNORE labels is
    ``response_loss``."""
    target = labels[:, 1:]
    dtype = torch.promote_types(logits.dtype, torch.float32)  # half precision scored in fp32
    logp = F.log_softmax(logits[:, :-1], dim=-1, dtype=dtype)
    picked = logp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return torch.where(target == IGNORE, torch.zeros_like(picked), -picked)


# ------------------------------------------------------------------ the chat template


def render_chatml(
    messages: Sequence[dict[str, str]],
    add_generation_prompt: bool = False,
    default_system: str = SMOL_SYSTEM,
) -> str:
    """SmolLM2's chat template as text: each turn is ``<|im_start|>{role}\\n{content}<|im_end|>``
    plus a newline; a system turn with ``default_system`` comes first when the conversation does
    not start with one; ``add_generation_prompt`` appends ``<|im_start|>assistant\\n`` (where the
    model writes its reply)."""
    turns = list(messages)
    if not turns or turns[0]["role"] != "system":
        turns.insert(0, {"role": "system", "content": default_system})
    text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in turns)
    return text + ("<|im_start|>assistant\n" if add_generation_prompt else "")


def chat_tokens(
    tokenizer: Any, messages: Sequence[dict[str, str]], reply: str
) -> tuple[list[int], int]:
    """(ids, response_start) of the conversation ``messages`` answered by ``reply``.

    The prompt is the rendered conversation with the generation prompt; the response is the
    rest of the rendered conversation with the reply as an assistant turn (the reply, then
    ``<|im_end|>\\n``). Each piece is tokenized on its own (no special tokens added), so the
    boundary falls exactly at ``response_start = len(prompt ids)``.
    """
    prompt = render_chatml(messages, add_generation_prompt=True)
    full = render_chatml([*messages, {"role": "assistant", "content": reply}])
    head = tokenizer.encode(prompt, add_special_tokens=False)
    tail = tokenizer.encode(full[len(prompt) :], add_special_tokens=False)
    return [*head, *tail], len(head)


# ------------------------------------------------------------------ batches and packing


@dataclass
class Batch:
    """A training batch: ids (B, T), labels (B, T) (IGNORE off the response), and for packed
    rows positions (B, T) restarting at 0 per example and segments (B, T): 1, 2, ... for the
    examples of a row, 0 for padding. ``None`` when each row holds one example."""

    ids: torch.Tensor
    labels: torch.Tensor
    positions: torch.Tensor | None = None
    segments: torch.Tensor | None = None


def pack(examples: Sequence[tuple[Sequence[int], int]], max_len: int, pad_id: int) -> Batch:
    """Lay (ids, response_start) examples end to end in rows of ``max_len`` tokens.

    Greedy, in order: an example goes into the current row if it still fits, else it opens a
    new row; the tail of each row is padding. Labels are IGNORE on each example's prompt (so
    also on its first token, which the previous example's last position would otherwise
    predict across the boundary) and on padding. An example longer than ``max_len`` is a
    ValueError.
    """
    rows: list[list[tuple[Sequence[int], int]]] = []
    used = max_len
    for ids, start in examples:
        if len(ids) > max_len:
            raise ValueError(f"an example has {len(ids)} tokens; raise max_len above {max_len}")
        if used + len(ids) > max_len:
            rows.append([])
            used = 0
        rows[-1].append((ids, start))
        used += len(ids)
    shape = (len(rows), max_len)
    out = Batch(
        torch.full(shape, pad_id, dtype=torch.long),
        torch.full(shape, IGNORE, dtype=torch.long),
        torch.zeros(shape, dtype=torch.long),
        torch.zeros(shape, dtype=torch.long),
    )
    for r, row in enumerate(rows):
        at = 0
        for k, (ids, start) in enumerate(row, 1):
            span = slice(at, at + len(ids))
            out.ids[r, span] = torch.as_tensor(ids)
            out.labels[r, at + start : span.stop] = out.ids[r, at + start : span.stop]
            out.positions[r, span] = torch.arange(len(ids))
            out.segments[r, span] = k
            at = span.stop
    return out


def block_causal_mask(segments: torch.Tensor) -> torch.Tensor:
    """(B, T, T) bool, True where query i may attend to key j: the same segment and j <= i.
    Padding (segment 0) attends causally among itself, so no row is ever fully masked."""
    t = segments.shape[1]
    causal = torch.ones(t, t, dtype=torch.bool, device=segments.device).tril()
    return (segments[:, :, None] == segments[:, None, :]) & causal


def attention_bias(segments: torch.Tensor, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 4-D additive mask (B, 1, T, T) a Hugging Face model takes as ``attention_mask``: 0
    where ``block_causal_mask`` allows attention, the dtype's most negative number elsewhere
    (finite, so the softmax never sees inf - inf)."""
    allowed = block_causal_mask(segments)[:, None]
    bias = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return bias.masked_fill(~allowed, torch.finfo(dtype).min)


# ------------------------------------------------------------------ the training loop


def _call(model: nn.Module, batch: Batch) -> torch.Tensor:
    return model(batch.ids)


def train(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[Batch],
    lrs: Sequence[float],
    logits_fn: Callable[[nn.Module, Batch], torch.Tensor] = _call,
) -> list[float]:
    """One optimizer step per batch: the learning rate of every param group is set to
    ``lrs[step]``, then ``response_loss(logits_fn(model, batch), batch.labels)`` is
    back-propagated and the optimizer steps. The model is left in train mode; returns the loss
    of each step (before its update)."""
    model.train()
    losses = []
    for step, batch in enumerate(batches):
        for group in optimizer.param_groups:
            group["lr"] = lrs[step]
        loss = response_loss(logits_fn(model, batch), batch.labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
