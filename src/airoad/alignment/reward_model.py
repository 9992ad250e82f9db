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
(``tiny_lm.preference_pairs``) or a badly formatted copy of the right answer (leading zeros, or
digits that run on without <end>). ``load_tiny_reward_model`` trains once per config and keeps
the result in the artifact cache (id ``alignment-reward-model``) for the RLHF lab.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from airoad.alignment import tiny_lm, tiny_task
from airoad.alignment.tiny_lm import Pair, TinyLMConfig
from airoad.alignment.tiny_task import TOKENIZER, Problem
from airoad.labs import artifacts
from airoad.transformer.char_gpt import GPT

ARTIFACT_ID = "alignment-reward-model"
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
    """A wrongly formatted copy of the right answer: kind 0 adds leading zeros (to 4 digits, or
    one more zero), kind 1 runs on past the answer to ``MAX_NEW`` characters with no <end>."""
    answer = problem.answer
    if kind == 0:
        return "0" + answer if len(answer) >= 4 else answer.zfill(4)
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
    ids_c, mask_c = encode(items, [p.chosen for p in pairs])
    ids_r, mask_r = encode(items, [p.rejected for p in pairs])
    width = max(ids_c.shape[1], ids_r.shape[1])

    def pad(t: torch.Tensor, value: int | bool) -> torch.Tensor:
        return F.pad(t, (0, width - t.shape[1]), value=value)

    return pad(ids_c, TOKENIZER.pad_id), pad(mask_c, False), pad(ids_r, TOKENIZER.pad_id), pad(mask_r, False)  # fmt: skip


# ------------------------------------------------------------------ training and scoring


@dataclass(frozen=True)
class RMConfig:
    """Pairs, start weights and optimiser of the tiny reward model."""

    start: str = "sft"  # "sft" or "base": whose backbone the reward model starts from
    n_train_problems: int = 6000
    n_eval_problems: int = 3000
    k: int = 4  # samples per problem when looking for a wrong answer
    format_fraction: float = 0.25
    steps: int = 600
    batch: int = 64
    lr: float = 3e-4
    seed: int = 0


RM_FULL = RMConfig()
RM_QUICK = RMConfig(n_train_problems=300, n_eval_problems=200, steps=20, batch=32, lr=1e-3)


def rewards_of(model: RewardModel, ids: torch.Tensor, mask: torch.Tensor, batch: int = 1024):
    """Rewards (N,) of many rows, scored in chunks without gradients."""
    with torch.no_grad():
        return torch.cat([model(ids[i : i + batch], mask[i : i + batch]) for i in range(0, len(ids), batch)])  # fmt: skip


def train_reward_model(
    model: RewardModel,
    tensors: Sequence[torch.Tensor],
    steps: int,
    batch: int,
    lr: float,
    seed: int,
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """AdamW on the Bradley-Terry loss over random minibatches of pairs; returns the losses."""
    ids_c, mask_c, ids_r, mask_r = tensors
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for step in range(steps):
        idx = torch.randint(0, len(ids_c), (batch,), generator=gen)
        # one forward pass over chosen and rejected rows together
        r = model(torch.cat([ids_c[idx], ids_r[idx]]), torch.cat([mask_c[idx], mask_r[idx]]))
        loss = bradley_terry_loss(*r.chunk(2))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    return losses


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rm_config_for(config: TinyLMConfig) -> RMConfig:
    """The reward-model settings that go with a tiny LM config (QUICK gets the quick ones)."""
    return RM_QUICK if config == tiny_lm.QUICK else RM_FULL


def _train_tiny(config: TinyLMConfig, rm: RMConfig, note: Note) -> tuple[RewardModel, dict]:
    loader = tiny_lm.load_sft if rm.start == "sft" else tiny_lm.load_base
    policy, _ = tiny_lm.load_sft(config, note)
    start, _ = loader(config, note)
    train = tiny_task.problems(rm.n_train_problems, seed=rm.seed + 20_000)
    test = tiny_task.problems(rm.n_eval_problems, seed=rm.seed + 30_000, split="test")
    note(f"sampling preference pairs from the SFT policy ({len(train)} problems) ...")
    train_pairs = build_pairs(policy, train, rm.k, rm.format_fraction, rm.seed)
    test_pairs = build_pairs(policy, test, rm.k, rm.format_fraction, rm.seed + 1)
    torch.manual_seed(rm.seed)
    model = RewardModel(start)
    note(f"training the reward model on {len(train_pairs)} pairs ({rm.steps} steps) ...")
    losses = train_reward_model(model, pair_tensors(train_pairs), rm.steps, rm.batch, rm.lr, rm.seed)  # fmt: skip
    model.eval()
    ids_c, mask_c, ids_r, mask_r = pair_tensors(test_pairs)
    r_c, r_r = rewards_of(model, ids_c, mask_c), rewards_of(model, ids_r, mask_r)
    info = {
        "losses": losses,
        "n_train_pairs": len(train_pairs),
        "n_test_pairs": len(test_pairs),
        "test_accuracy": pairwise_accuracy(r_c, r_r),
        "test_ece": expected_calibration_error(preference_probability(r_c, r_r)),
    }
    return model, info


def load_tiny_reward_model(
    config: TinyLMConfig = tiny_lm.FULL, note: Note = _stderr, rm: RMConfig | None = None
) -> RewardModel:
    """The tiny reward model in eval mode, trained on the SFT policy's pairs and cached on a miss
    (key: the RM config + the tiny LM config). ``load_tiny_info`` returns its training record."""
    return _load_tiny(config, note, rm)[0]


def load_tiny_info(
    config: TinyLMConfig = tiny_lm.FULL, note: Note = _stderr, rm: RMConfig | None = None
) -> dict:
    """The cached model's record: losses, pair counts, held-out accuracy and ECE, cpu_seconds."""
    return _load_tiny(config, note, rm)[1]


def _load_tiny(config: TinyLMConfig, note: Note, rm: RMConfig | None):
    rm = rm or rm_config_for(config)
    if rm.start not in ("sft", "base"):
        raise ValueError(f"RMConfig.start must be 'sft' or 'base', not {rm.start!r}")
    key = {"rm": dataclasses.asdict(rm), "lm": dataclasses.asdict(config)}
    folder = artifacts.lookup(ARTIFACT_ID, key, "tiny")
    if folder is None:
        clock = time.process_time()
        model, info = _train_tiny(config, rm, note)
        info["cpu_seconds"] = time.process_time() - clock

        def writer(out: Path) -> None:
            torch.save(model.state_dict(), out / "model.pt")
            (out / "info.json").write_text(json.dumps(info), "utf-8")

        folder = artifacts.save(ARTIFACT_ID, key, "tiny", writer)
    model = RewardModel(tiny_lm.new_model(config))
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    return model.eval(), json.loads((folder / "info.json").read_text("utf-8"))
