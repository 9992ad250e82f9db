"""A Bradley-Terry reward model: a language model's last hidden state mapped to one number.

People (here: the task's checker) say which of two responses to a prompt is better. The
Bradley-Terry model reads a scalar reward r(x, y) as a log-odds score,

    P(chosen > rejected) = sigmoid(r(x, y_c) - r(x, y_r)),

and training maximises the log-likelihood of the observed preferences, i.e. minimises
``-log sigmoid(r_c - r_r)`` averaged over pairs. Only differences matter, so adding a constant to
every reward changes nothing.

The network is the tiny GPT's backbone (token + position embeddings, blocks, final LayerNorm)
with a linear head on the hidden state of the LAST REAL token of each sequence (the <end> token,
or the last response token when there is none): because attention is causal, that is the one
position that has read the prompt and the whole response. Sequences are right-padded, so the
padding comes after that position and never influences it.

Pairs come from the task: chosen = the correct sum, rejected = a wrong sample of the SFT policy
(``tiny_lm.preference_pairs``) or a badly formatted copy of the right answer (a leading zero,
or digits that run on without <end>). ``reward_model_cache`` trains both reward models once per
config and keeps them in the artifact cache for the RLHF lab.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from airoad.alignment import tiny_lm, tiny_task
from airoad.alignment.tiny_lm import Pair
from airoad.alignment.tiny_task import TOKENIZER, Problem
from airoad.transformer.char_gpt import GPT

Note = Callable[[str], None]


# ------------------------------------------------------------------ the loss and its read-outs


def bradley_terry_loss(
    r_chosen: torch.Tensor, r_rejected: torch.Tensor, margin: torch.Tensor | float = 0.0
) -> torch.Tensor:
    """Mean of -log sigmoid(r_c - r_r - margin) over pairs; r_c, r_r (N,) -> scalar.

    ``F.logsigmoid`` is computed stably, so a margin of -1e4 gives a loss of 1e4 (not inf) and
    a margin of +1e4 gives 0; its gradient d/d r_c = -sigmoid(-(r_c - r_r - margin)) / N.
    """
    return -F.logsigmoid(r_chosen - r_rejected - margin).mean()


def preference_probability(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> torch.Tensor:
    """The model's P(chosen is preferred) = sigmoid(r_c - r_r), elementwise."""
    return torch.sigmoid(r_chosen - r_rejected)


def pairwise_accuracy(r_chosen: torch.Tensor, r_rejected: torch.Tensor) -> float:
    """Fraction of pairs ranked right: r_c > r_r counts 1, a tie 1/2, r_c < r_r 0."""
    if r_chosen.numel() == 0:
        raise ValueError("pairwise_accuracy needs at least one pair")
    diff = r_chosen - r_rejected
    return float(((diff > 0).double() + 0.5 * (diff == 0).double()).mean())


def calibration(
    p_chosen: torch.Tensor, n_bins: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Reliability table of predicted preference probabilities.

    Each pair is shown in both orders: (p, outcome 1) as (chosen, rejected) and (1 - p, outcome
    0) as (rejected, chosen), so the table covers [0, 1] symmetrically. Returns, per equal-width
    bin of the prediction: mean predicted probability, observed frequency of outcome 1 and the
    count (NaN for the first two in an empty bin). A calibrated model lies on the diagonal.
    """
    p = p_chosen.detach().double().flatten()
    if p.numel() == 0 or bool(p.isnan().any()):
        raise ValueError("calibration needs at least one probability and no NaN")
    pred = torch.cat([p, 1 - p])
    outcome = torch.cat([torch.ones_like(p), torch.zeros_like(p)])
    bins = torch.clamp((pred * n_bins).long(), 0, n_bins - 1)
    count = torch.bincount(bins, minlength=n_bins).double()
    mean_pred = torch.bincount(bins, pred, minlength=n_bins) / count
    observed = torch.bincount(bins, outcome, minlength=n_bins) / count
    return mean_pred.numpy(), observed.numpy(), count.numpy()


def expected_calibration_error(p_chosen: torch.Tensor, n_bins: int = 10) -> float:
    """Count-weighted mean |observed - predicted| over the bins of ``calibration``."""
    mean_pred, observed, count = calibration(p_chosen, n_bins)
    full = count > 0
    return float((count[full] * np.abs(observed[full] - mean_pred[full])).sum() / count.sum())


# ------------------------------------------------------------------ the model


def last_token_index(mask: torch.Tensor) -> torch.Tensor:
    """(B,) position of the last True in each row of ``mask`` (B, T); a row with none is a
    ValueError (there is nothing to score)."""
    if not bool(mask.any(dim=1).all()):
        raise ValueError("every row of mask needs at least one real token")
    positions = torch.arange(mask.shape[1], device=mask.device)
    return torch.where(mask, positions, -1).amax(dim=1)


class RewardModel(nn.Module):
    """GPT backbone + ``head`` (n_embd -> 1) on the last real token's final hidden state.

    ``forward(ids (B, T), mask (B, T) bool)`` -> rewards (B,). Sequences must be right-padded
    (the backbone has no attention mask; causal attention keeps later padding out).
    """

    def __init__(self, backbone: GPT):
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.config.n_embd, 1)
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        nn.init.zeros_(self.head.bias)

    def hidden(self, ids: torch.Tensor) -> torch.Tensor:
        """Final hidden states (B, T, C): ln_f(blocks(wte(ids) + wpe(positions)))."""
        gpt = self.backbone
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = gpt.drop(gpt.wte(ids) + gpt.wpe(pos))
        for block in gpt.blocks:
            x = block(x)
        return gpt.ln_f(x)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        last = last_token_index(mask)
        h = self.hidden(ids)[torch.arange(ids.shape[0], device=ids.device), last]
        return self.head(h).squeeze(-1)


# ------------------------------------------------------------------ pairs as tensors


def response_tokens(text: str) -> list[int]:
    """A response as the policy emits it: its characters then <end>, except that a response of
    ``tiny_lm.MAX_NEW`` characters never got to emit <end> (sampling stops there)."""
    ids = TOKENIZER.encode(text)
    return ids if len(ids) >= tiny_lm.MAX_NEW else [*ids, TOKENIZER.end_id]


def encode(items: Sequence[Problem], texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded (ids (B, T), mask (B, T) of real tokens) of prompt + response rows."""
    rows = [tiny_task.chat_prompt(p.prompt) + response_tokens(t) for p, t in zip(items, texts)]
    width = max(map(len, rows), default=1)
    ids = torch.full((len(rows), width), TOKENIZER.pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = True
    return ids, mask


def format_broken(problem: Problem, kind: int) -> str:
    """A wrongly formatted copy of the right answer: kind 0 puts a zero in front ('052'), kind 1
    runs on past the answer to ``MAX_NEW`` characters with no <end> ('5222')."""
    answer = problem.answer
    if kind == 0:
        return "0" + answer
    return (answer + answer[-1] * tiny_lm.MAX_NEW)[: tiny_lm.MAX_NEW]


def build_pairs(
    policy: GPT, items: Sequence[Problem], k: int, format_fraction: float, seed: int
) -> list[Pair]:
    """The policy's own checker-judged pairs (``tiny_lm.preference_pairs``) plus, for a random
    ``format_fraction`` of the problems, a (right answer, format-broken answer) pair."""
    pairs = tiny_lm.preference_pairs(policy, items, k=k, temperature=1.0, seed=seed)
    rng = np.random.default_rng(seed)
    picked = np.flatnonzero(rng.random(len(items)) < format_fraction)
    kinds = rng.integers(0, 2, size=len(picked))
    pairs += [Pair(items[i], items[i].answer, format_broken(items[i], int(c))) for i, c in zip(picked, kinds)]  # fmt: skip
    order = rng.permutation(len(pairs))
    return [pairs[i] for i in order]


def pair_tensors(pairs: Sequence[Pair]) -> tuple[torch.Tensor, ...]:
    """(chosen ids, chosen mask, rejected ids, rejected mask), each (N, T), one width for all."""
    items = [p.problem for p in pairs]
    ids, mask = encode([*items, *items], [*(p.chosen for p in pairs), *(p.rejected for p in pairs)])  # fmt: skip
    n = len(pairs)
    return ids[:n], mask[:n], ids[n:], mask[n:]


# ------------------------------------------------------------------ training and scoring


@dataclass(frozen=True)
class RMConfig:
    """Pairs, start weights and optimiser of the tiny reward model."""

    start: str = "sft"  # "sft" or "base": whose backbone the reward model starts from
    n_train_problems: int = 6000
    n_eval_problems: int = 3000
    k: int = 4  # samples per problem when looking for a wrong answer
    format_fraction: float = 0.25
    steps: int = 1500
    batch: int = 64
    lr: float = 1e-3
    seed: int = 0


RM_FULL = RMConfig()
RM_QUICK = RMConfig(n_train_problems=300, n_eval_problems=200, steps=20, batch=32, lr=1e-3)


def rewards_of(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, batch: int = 256):
    """Rewards (N,) of many rows, scored in chunks of ``batch`` without gradients."""
    with torch.no_grad():
        return torch.cat([model(ids[i : i + batch], mask[i : i + batch]) for i in range(0, len(ids), batch)])  # fmt: skip


def train_reward_model(
    model: RewardModel,
    tensors: Sequence[torch.Tensor],
    steps: int,
    batch: int,
    lr: float,
    seed: int,
) -> list[float]:
    """AdamW on the Bradley-Terry loss over random minibatches of ``batch`` pairs drawn with a
    generator seeded by ``seed``; only parameters with requires_grad are trained (a LoRA model
    trains just its adapters and head). Returns the loss of every step."""
    ids_c, mask_c, ids_r, mask_r = tensors
    gen = torch.Generator().manual_seed(seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        idx = torch.randint(0, len(ids_c), (batch,), generator=gen)
        # one forward pass over chosen and rejected rows together
        r = model(torch.cat([ids_c[idx], ids_r[idx]]), torch.cat([mask_c[idx], mask_r[idx]]))
        loss = bradley_terry_loss(*r.chunk(2))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def held_out_pairs(policy: GPT, rm: RMConfig) -> list[Pair]:
    """Pairs built like the training ones, on problems from the held-out (test) split."""
    test = tiny_task.problems(rm.n_eval_problems, seed=rm.seed + 30_000, split="test")
    return build_pairs(policy, test, rm.k, rm.format_fraction, rm.seed + 1)


def score_pairs(model: nn.Module, tensors: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """(r_chosen, r_rejected) of ``pair_tensors`` output, without gradients."""
    return rewards_of(model, *tensors[:2]), rewards_of(model, *tensors[2:])


# ------------------------------------------------------------------ the real scale (SmolLM2)


class RealRewardModel(nn.Module):
    """A Hugging Face decoder (e.g. SmolLM2's ``LlamaModel``) + ``head`` on the last real token.

    Our own head rather than ``LlamaForSequenceClassification``: that class finds the last token
    as the last one that is not ``pad_token_id``, and SmolLM2's pad token IS its <|im_end|>, so
    it would skip the token that closes the reply. Here the attention mask says what is real.
    """

    def __init__(self, decoder: nn.Module, hidden_size: int):
        super().__init__()
        self.decoder = decoder
        self.head = nn.Linear(hidden_size, 1)
        nn.init.normal_(self.head.weight, 0.0, 0.02)
        nn.init.zeros_(self.head.bias)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """ids, mask (B, T), right-padded -> rewards (B,)."""
        h = self.decoder(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return self.head(h[torch.arange(ids.shape[0], device=ids.device), last_token_index(mask)]).squeeze(-1)  # fmt: skip


def near_miss(problem: Problem, rng: np.random.Generator) -> str:
    """A plausible wrong sum: the answer off by 1, 2, 10 or 11 either way (never negative)."""
    step = int(rng.choice([1, 2, 10, 11])) * (1 if rng.random() < 0.5 else -1)
    value = problem.a + problem.b + step
    return str(value if value >= 0 else problem.a + problem.b + abs(step))


def real_encode(tokenizer, items: Sequence[Problem], replies: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """Right-padded (ids, mask) of whole chats: ``real_messages(problem)`` + the reply."""
    rows = [
        tokenizer.apply_chat_template(
            [*tiny_task.real_messages(p), {"role": "assistant", "content": r}], tokenize=False
        )
        for p, r in zip(items, replies)
    ]
    batch = tokenizer(rows, padding=True, return_tensors="pt", add_special_tokens=False)
    return batch["input_ids"], batch["attention_mask"].bool()


def real_pair_tensors(tokenizer, items: Sequence[Problem], seed: int) -> tuple[torch.Tensor, ...]:
    """(chosen ids, mask, rejected ids, mask): the right sum against a near miss, one width."""
    rng = np.random.default_rng(seed)
    replies = [*(p.answer for p in items), *(near_miss(p, rng) for p in items)]
    ids, mask = real_encode(tokenizer, [*items, *items], replies)
    n = len(items)
    return ids[:n], mask[:n], ids[n:], mask[n:]
