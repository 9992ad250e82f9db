"""Fine-tuning a pretrained BERT-style encoder for sentiment, with a training loop of our own.

The pieces, in the order a fine-tuning run needs them:

- ``encode_texts`` / ``collate``: text -> token ids (truncated) -> one padded batch per step,
  padded only to the longest review in that batch (dynamic padding), with an attention mask
  that is 1 on real tokens and 0 on padding;
- ``batch_order``: which reviews form each batch: a seeded shuffle, optionally grouped by
  length so a batch of short reviews is not padded to the longest review in the data;
- ``make_optimizer`` / ``linear_schedule`` / ``train_step``: AdamW with weight decay on the
  weight matrices only, a learning rate that rises linearly for the warm-up steps then falls
  linearly to 0, gradient-norm clipping. These are exactly ``transformers.Trainer``'s defaults,
  so the same batches give the same losses;
- ``predict_logits``: the fine-tuned classifier on many batches;
- ``mean_pool`` / ``embed``: the frozen encoder's sentence vectors (the mean of the token states
  over real tokens), the features of a logistic-regression baseline;
- ``mcnemar``: are two classifiers' error rates on the same test items different?
- ``last_layer_attention``: what the last layer's heads look at.

The model is any Hugging Face ``BertForSequenceClassification`` (for example all-MiniLM-L6-v2
with a new 2-class head): ``model(input_ids, attention_mask, labels=y)`` returns ``.loss``
(mean cross-entropy) and ``.logits`` (B, 2).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import torch
from torch import nn

Batch = dict[str, torch.Tensor]


def encode_texts(tokenizer: Any, texts: Sequence[str], max_length: int) -> list[list[int]]:
    """Token ids of each text with the tokenizer's special tokens ([CLS] ... [SEP]), truncated
    to at most `max_length` ids in all, unpadded (``tokenizer(texts, truncation=True,
    max_length=max_length)["input_ids"]``)."""
    return tokenizer(list(texts), truncation=True, max_length=max_length)["input_ids"]


def collate(
    ids: Sequence[Sequence[int]], pad_id: int, labels: Sequence[int] | None = None
) -> Batch:
    """One batch: ``input_ids`` (B, L) long, right-padded with `pad_id` to L = the longest
    sequence in this batch; ``attention_mask`` (B, L) long, 1 on real tokens and 0 on padding;
    ``labels`` (B,) long when given. Same tensors as ``DataCollatorWithPadding``."""
    lengths = torch.tensor([len(s) for s in ids])
    width = int(lengths.max())
    mask = (torch.arange(width)[None, :] < lengths[:, None]).long()
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    input_ids[mask.bool()] = torch.tensor([t for s in ids for t in s], dtype=torch.long)
    batch = {"input_ids": input_ids, "attention_mask": mask}
    if labels is not None:
        batch["labels"] = torch.as_tensor(labels, dtype=torch.long)
    return batch


def batch_order(
    lengths: Sequence[int],
    batch_size: int,
    generator: torch.Generator | None = None,
    group_size: int = 0,
) -> list[torch.Tensor]:
    """Index tensors of the batches of one epoch over ``len(lengths)`` items.

    Without a generator the items go in order (0, 1, 2, ...). With one, they are shuffled by
    ``torch.randperm(n, generator=generator)``; then, if `group_size` > 0, each run of
    ``group_size * batch_size`` shuffled items is sorted by length (longest first) before being
    cut into batches, and the batches are shuffled again with the same generator, so batches hold
    reviews of similar length (less padding) but come in random order. The last batch may be
    smaller."""
    n = len(lengths)
    if generator is None:
        order = torch.arange(n)
    else:
        order = torch.randperm(n, generator=generator)
    if generator is None or group_size <= 0:
        return list(order.split(batch_size))
    lens = torch.as_tensor(lengths)
    groups = order.split(group_size * batch_size)
    batches = [
        b
        for g in groups
        for b in g[lens[g].argsort(descending=True, stable=True)].split(batch_size)
    ]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator)]


def make_optimizer(
    model: nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
) -> torch.optim.AdamW:
    """``torch.optim.AdamW`` with two parameter groups: `weight_decay` on every trainable
    parameter except biases and the parameters of ``nn.LayerNorm`` modules, 0 on those (as
    Trainer does). Group order: decayed first."""
    no_decay = {
        id(p) for m in model.modules() if isinstance(m, nn.LayerNorm) for p in m.parameters()
    }
    decay, rest = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        skip = id(p) in no_decay or "bias" in name
        (rest if skip else decay).append(p)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, betas=betas, eps=eps)


def linear_schedule(step: int, warmup_steps: int, total_steps: int) -> float:
    """The learning-rate multiplier for optimizer step `step` (0-based): ``step / warmup_steps``
    during the warm-up, then ``(total_steps - step) / (total_steps - warmup_steps)``, never below
    0 (``transformers.get_linear_schedule_with_warmup``). Step 0 of a warm-up has rate 0."""
    if step < warmup_steps:
        return step / max(1, warmup_steps)
    return max(0.0, (total_steps - step) / max(1, total_steps - warmup_steps))


def make_scheduler(
    optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A ``LambdaLR`` applying ``linear_schedule`` to every group's base rate."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: linear_schedule(step, warmup_steps, total_steps)
    )


def train_step(
    model: nn.Module,
    batch: Batch,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    max_grad_norm: float = 1.0,
) -> float:
    """One update in train mode (dropout on): the model's mean cross-entropy on `batch`
    (``model(**batch).loss``), backward, clip the global gradient norm to `max_grad_norm`,
    optimizer step, scheduler step, zero the gradients. Returns the loss before the update."""
    model.train()
    loss = model(**batch).loss
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return float(loss.detach())


@torch.no_grad()
def predict_logits(model: nn.Module, batches: Iterable[Batch]) -> torch.Tensor:
    """Logits (N, n_classes) of every batch in eval mode (no dropout), concatenated in order;
    labels in a batch are ignored."""
    model.eval()
    out = [
        model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits for b in batches
    ]
    return torch.cat(out)


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """(B, T, C) token states and a (B, T) 0/1 mask -> (B, C): the mean over real tokens only
    (padding contributes nothing; a row with no real token gives 0, not NaN)."""
    m = attention_mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * m).sum(1) / m.sum(1).clamp_min(1e-9)


@torch.no_grad()
def embed(encoder: nn.Module, batches: Iterable[Batch], normalize: bool = True) -> torch.Tensor:
    """Frozen sentence vectors (N, C): the encoder's last hidden states (``encoder(input_ids,
    attention_mask).last_hidden_state``, eval mode) mean-pooled over real tokens, each scaled to
    unit length when `normalize` (as sentence-transformers does for all-MiniLM-L6-v2)."""
    encoder.eval()
    out = []
    for b in batches:
        h = encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).last_hidden_state
        v = mean_pool(h, b["attention_mask"])
        out.append(nn.functional.normalize(v, dim=-1) if normalize else v)
    return torch.cat(out)


def mcnemar(
    y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int], exact: bool = True
) -> tuple[float, float]:
    """McNemar's test of equal error rates of two classifiers on the same items.

    Only discordant items count: b = items A gets right and B wrong, c = the reverse. Under H0
    each discordant item is a fair coin, b ~ Binomial(b + c, 1/2).
    exact=True: statistic min(b, c), p = min(1, 2 P(X <= min(b, c))) for X ~ Bin(b + c, 1/2).
    exact=False: statistic (|b - c| - 1)^2 / (b + c) (continuity corrected), p from chi-square
    with 1 degree of freedom. No discordant item gives p = 1. Returns (statistic, p-value)."""
    t, a, bb = (torch.as_tensor(v) for v in (y_true, pred_a, pred_b))
    right_a, right_b = a == t, bb == t
    b, c = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    n = b + c
    if exact:
        k = min(b, c)
        tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n  # exact integers, then one /
        return float(k), min(1.0, 2.0 * tail)
    if n == 0:
        return 0.0, 1.0
    stat = (abs(b - c) - 1) ** 2 / n
    return stat, math.erfc(math.sqrt(stat / 2))  # chi-square(1) survival = P(|Z| > sqrt(stat))


@torch.no_grad()
def last_layer_attention(model: nn.Module, batch: Batch) -> torch.Tensor:
    """The last encoder layer's attention weights (B, heads, T, T), eval mode: row i is how
    query token i spreads its attention over the keys; each row sums to 1 and padded keys get 0.
    Needs the "eager" attention implementation (the fused kernels never form the weights), so
    the model is switched to it first (``model.set_attn_implementation("eager")``)."""
    model.eval()
    if model.config._attn_implementation != "eager":
        model.set_attn_implementation("eager")
    out = model(
        input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_attentions=True
    )
    return out.attentions[-1]
