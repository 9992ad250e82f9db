"""The tiny language model every post-training lab starts from, and the pieces they share.

Two models, trained once per config and kept in the artifact cache (id ``alignment-tiny-lm``),
so the labs hand them to each other instead of retraining:

- ``load_base``: the ``char-gpt`` architecture pretrained on raw lines ``07+45=52``;
- ``load_sft``: that base fine-tuned on chat-formatted turns with the loss on the response only
  (``airoad.alignment.sft``). Its budget is set so it is right roughly half the time on held-out
  problems, leaving room for the preference and RL methods to show a gain.

And what the RL and preference labs need around a policy: ``sample`` (a batch of responses with
the mask of real response tokens), ``response_logprobs`` (log pi(token) of each response token),
``decode`` and ``accuracy`` under the task's checker.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from airoad.alignment import sft, tiny_task
from airoad.alignment.tiny_task import TOKENIZER, Problem
from airoad.labs import artifacts
from airoad.transformer.char_gpt import GPT, GPTConfig
from airoad.transformer.gpt_training import (
    TrainConfig,
    lr_at,
    make_optimizer,
    train_steps,
)

ARTIFACT_ID = "alignment-tiny-lm"
BLOCK_SIZE = 32
EVAL_EVERY = 5  # SFT steps between validation checks (see TinyLMConfig)
MAX_NEW = 4  # a sum of two 2-digit numbers has at most 3 digits, then <end>
Note = Callable[[str], None]


@dataclass(frozen=True)
class TinyLMConfig:
    """Sizes and budgets of the base (pretraining) and SFT runs.

    SFT stops early, on purpose, once the policy gets ``sft_stop_at`` of ``n_val`` training-split
    problems right (checked every ``EVAL_EVERY`` steps; 0 disables it): the later labs need a
    policy that is right about half the time, and on this task accuracy jumps from nearly 0 to
    nearly 1 within a hundred SFT steps (measured on the FULL base: 200 steps 0.3%, 300 steps
    86%, 600 steps 99% of the held-out problems), so a fixed step count would land on either side.
    """

    n_layer: int = 3
    n_head: int = 4
    n_embd: int = 64
    pretrain_steps: int = 2000
    pretrain_batch: int = 64
    pretrain_lr: float = 2e-3
    sft_steps: int = 600
    sft_batch: int = 64
    sft_lr: float = 1e-3
    sft_stop_at: float = 0.5
    n_val: int = 300
    n_eval: int = 2000
    seed: int = 0
    task: str = "add-2digit"  # part of every cache key: a model of another task never loads

    def base_part(self) -> dict:
        """The fields the base model depends on (its cache key)."""
        names = ("n_layer", "n_head", "n_embd", "pretrain_steps", "pretrain_batch", "pretrain_lr")
        return {k: getattr(self, k) for k in (*names, "seed", "task")}


FULL = TinyLMConfig()
QUICK = TinyLMConfig(
    n_layer=2, n_head=2, n_embd=32, pretrain_steps=60, sft_steps=30, sft_batch=32, n_eval=200
)


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def new_model(config: TinyLMConfig) -> GPT:
    gpt = GPTConfig(TOKENIZER.vocab_size, BLOCK_SIZE, config.n_layer, config.n_head, config.n_embd)
    return GPT(gpt)


# ------------------------------------------------------------------ rollouts and log-probs


@dataclass
class Rollout:
    """Prompts (B, P), sampled responses (B, R) (padding after <end>) and ``mask`` (B, R): True
    on real response tokens, <end> included."""

    prompts: torch.Tensor
    responses: torch.Tensor
    mask: torch.Tensor

    @property
    def ids(self) -> torch.Tensor:
        return torch.cat([self.prompts, self.responses], dim=1)


def response_mask(responses: torch.Tensor, end_id: int = TOKENIZER.end_id) -> torch.Tensor:
    """True up to and including each row's first <end>; False after it."""
    ends = (responses == end_id).long()
    return (ends.cumsum(1) - ends) == 0


@torch.no_grad()
def sample(
    model: GPT,
    prompts: torch.Tensor,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
    max_new: int = MAX_NEW,
) -> Rollout:
    """One response per prompt row (temperature 0 is greedy), cut at its first <end>."""
    out = model.generate(prompts, max_new, temperature=temperature, generator=generator)
    responses = out[:, prompts.shape[1] :]
    mask = response_mask(responses)
    return Rollout(prompts, responses.masked_fill(~mask, TOKENIZER.pad_id), mask)


def response_logprobs(model: GPT, rollout: Rollout) -> torch.Tensor:
    """log pi(response token | everything before it), (B, R); 0 where ``mask`` is False.

    Position t's logits score token t + 1, so the response tokens at P..P+R-1 are scored by the
    logits at P-1..P+R-2 (the last token is never fed in).
    """
    p = rollout.prompts.shape[1]
    logits = model(rollout.ids[:, :-1])[:, p - 1 :]
    logp = F.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, rollout.responses.unsqueeze(-1)).squeeze(-1)
    return picked * rollout.mask


def decode(rollout: Rollout) -> list[str]:
    """The response texts (digits only; <end> and padding dropped)."""
    return [TOKENIZER.decode(r[m]) for r, m in zip(rollout.responses, rollout.mask)]


def rewards(items: Sequence[Problem], rollout: Rollout) -> torch.Tensor:
    """(B,) float: 1 where the checker accepts the response, else 0."""
    texts = decode(rollout)
    return torch.tensor([float(tiny_task.check(p, t)) for p, t in zip(items, texts)])


def accuracy(model: GPT, items: Sequence[Problem], batch: int = 500) -> float:
    """Fraction of problems the greedy response gets exactly right."""
    right = 0.0
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        right += float(rewards(chunk, sample(model, tiny_task.prompt_batch(chunk), 0.0)).sum())
    return right / max(len(items), 1)


@dataclass(frozen=True)
class Pair:
    """One preference: for ``problem``, the response ``chosen`` is preferred to ``rejected``."""

    problem: Problem
    chosen: str
    rejected: str


def preference_pairs(
    policy: GPT, items: Sequence[Problem], k: int = 4, temperature: float = 1.0, seed: int = 0
) -> list[Pair]:
    """Pairs judged by the checker from the policy's own samples: k responses per problem;
    chosen = the correct answer (a sampled one, else the reference), rejected = the first wrong
    sample. Problems whose k samples are all right give no pair."""
    gen = torch.Generator().manual_seed(seed)
    prompts = tiny_task.prompt_batch(items).repeat_interleave(k, dim=0)
    texts = decode(sample(policy, prompts, temperature, gen))
    pairs = []
    for i, problem in enumerate(items):
        wrong = [t for t in texts[i * k : (i + 1) * k] if not tiny_task.check(problem, t)]
        if wrong:
            pairs.append(Pair(problem, problem.answer, wrong[0]))
    return pairs


def held_out(config: TinyLMConfig) -> list[Problem]:
    """The config's evaluation problems (the test split, fixed seed)."""
    return tiny_task.problems(config.n_eval, seed=10_000 + config.seed, split="test")


# ------------------------------------------------------------------ the two cached models


def _pretrain(config: TinyLMConfig, note: Note) -> tuple[GPT, dict]:
    torch.manual_seed(config.seed)
    model = new_model(config)
    n_lines = config.pretrain_steps * config.pretrain_batch * BLOCK_SIZE // 12 + 1000
    lines = tiny_task.problems(min(n_lines, 400_000), seed=config.seed)
    data = torch.tensor(TOKENIZER.encode("".join(map(tiny_task.raw_line, lines))))
    train = TrainConfig(
        config.pretrain_batch, BLOCK_SIZE, config.pretrain_lr, config.pretrain_lr / 10,
        warmup_steps=max(config.pretrain_steps // 20, 1), total_steps=config.pretrain_steps,
    )  # fmt: skip
    opt = make_optimizer(model, config.pretrain_lr, weight_decay=0.1)
    gen = torch.Generator().manual_seed(config.seed)
    note(f"pretraining the tiny base model ({config.pretrain_steps} steps) ...")
    losses = train_steps(model, opt, data, train, gen, 0, config.pretrain_steps)
    return model.eval(), {"pretrain_losses": losses}


def _sft_batch(items: Sequence[Problem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded chat examples (B, T) and their response-only labels."""
    rows = [tiny_task.chat_example(p.prompt, p.answer) for p in items]
    ids = torch.full((len(rows), max(map(len, rows))), TOKENIZER.pad_id, dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
    start = torch.full((len(rows),), len(tiny_task.chat_prompt(items[0].prompt)))
    return ids, sft.response_labels(ids, start, TOKENIZER.pad_id)


def _finetune(
    base: GPT, config: TinyLMConfig, note: Note, track: Callable = lambda steps, what: steps
) -> tuple[GPT, dict]:
    """The SFT stage: ``sft.train`` on chat turns from the base, stopped early once the policy
    reaches ``config.sft_stop_at`` on a validation set from the training split (``track`` wraps
    the batches in a progress bar; the sft runner shows it)."""
    torch.manual_seed(config.seed)
    model = new_model(config)
    model.load_state_dict(base.state_dict())
    items = tiny_task.problems(config.sft_steps * config.sft_batch, seed=config.seed + 1)
    val = tiny_task.problems(config.n_val, seed=config.seed + 20_000)
    opt = make_optimizer(model, config.sft_lr, weight_decay=0.0)
    note(f"supervised fine-tuning on up to {len(items)} chat turns ...")
    size, steps = config.sft_batch, range(config.sft_steps)
    batches = [sft.Batch(*_sft_batch(items[s * size : (s + 1) * size])) for s in steps]
    lrs = [lr_at(s, config.sft_lr, 10, config.sft_steps, config.sft_lr / 10) for s in steps]
    tracked, losses, val_acc = iter(track(batches, "supervised fine-tuning")), [], 0.0
    for start in range(0, config.sft_steps, EVAL_EVERY):
        chunk = list(itertools.islice(tracked, EVAL_EVERY))
        losses += sft.train(model, opt, chunk, lrs[start : start + len(chunk)])
        val_acc = accuracy(model.eval(), val)
        if config.sft_stop_at and val_acc >= config.sft_stop_at:
            break
    return model.eval(), {"sft_losses": losses, "sft_val_accuracy": val_acc}


def _cached(name: str, key: dict, config: TinyLMConfig, train: Callable[[], tuple[GPT, dict]]):
    folder = artifacts.lookup(ARTIFACT_ID, key, name)
    if folder is None:
        start = time.process_time()
        model, info = train()
        info["cpu_seconds"] = time.process_time() - start
        info["accuracy"] = accuracy(model, held_out(config))

        def writer(out: Path) -> None:
            torch.save(model.state_dict(), out / "model.pt")
            (out / "info.json").write_text(json.dumps(info), "utf-8")

        folder = artifacts.save(ARTIFACT_ID, key, name, writer)
    model = new_model(config)
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    return model.eval(), json.loads((folder / "info.json").read_text("utf-8"))


def load_base(config: TinyLMConfig = FULL, note: Note = _stderr) -> tuple[GPT, dict]:
    """(base model in eval mode, info: pretrain_losses, cpu_seconds, accuracy under the chat
    template), pretraining and caching it on a miss."""
    return _cached("base", config.base_part(), config, lambda: _pretrain(config, note))


def load_sft(config: TinyLMConfig = FULL, note: Note = _stderr) -> tuple[GPT, dict]:
    """(SFT policy in eval mode, info: sft_losses, cpu_seconds, accuracy), fine-tuning the
    cached base on a miss."""
    key = dataclasses.asdict(config)
    return _cached("sft", key, config, lambda: _finetune(load_base(config, note)[0], config, note))
