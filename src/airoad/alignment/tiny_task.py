"""The post-training labs' generated task: adding two numbers, with an answer a program can check.

Every post-training lab (sft, reward-model, rlhf-ppo, dpo, grpo) trains or judges on the same
task, so their numbers can be compared. It is generated, not downloaded: the point is a reward
that is exactly right (the checker), so an accuracy change is the method's doing, not a judge's.

- tiny scale: prompts are ``"07+45"`` (both operands zero-padded to two digits, so every prompt
  has the same length and a batch needs no padding), answers the plain sum ``"52"``.
  A character tokenizer with five special tokens; the chat template is
  ``<bos><user>07+45<assistant>52<end>``; the base model is pretrained on raw lines
  ``07+45=52`` (no chat tokens), so it has to learn the template during SFT.
- real scale (SmolLM2-135M-Instruct): the same problems as a chat message asking for the number
  only; the first integer in the reply is the answer.

The held-out split is fixed by a hash of the pair (a, b), so no test problem is ever trained on,
whatever seed or size a lab draws.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

SPECIALS = ("<pad>", "<bos>", "<user>", "<assistant>", "<end>")
CHARS = "\n+=0123456789"
TEST_FRACTION = 10  # one pair in ten belongs to the held-out split


@dataclass(frozen=True)
class Problem:
    """a + b with 0 <= a, b < 10**digits."""

    a: int
    b: int
    digits: int = 2

    @property
    def prompt(self) -> str:
        """The tiny model's prompt: both operands zero-padded, e.g. '07+45'."""
        return f"{self.a:0{self.digits}d}+{self.b:0{self.digits}d}"

    @property
    def answer(self) -> str:
        """The correct response: the sum without padding, e.g. '52'."""
        return str(self.a + self.b)


class TaskTokenizer:
    """One id per special token and per character of CHARS; ``decode`` drops special tokens."""

    def __init__(self) -> None:
        self.tokens: list[str] = [*SPECIALS, *CHARS]
        self.stoi = {t: i for i, t in enumerate(self.tokens)}
        self.pad_id, self.bos_id, self.user_id, self.assistant_id, self.end_id = range(5)

    @property
    def vocab_size(self) -> int:
        return len(self.tokens)

    def encode(self, text: str) -> list[int]:
        """Characters of text -> ids; a character outside the task's alphabet is a ValueError."""
        try:
            return [self.stoi[ch] for ch in text]
        except KeyError as exc:
            raise ValueError(f"character {exc.args[0]!r} is not in the task's alphabet") from None

    def decode(self, ids: Iterable[int]) -> str:
        """ids -> text of the ordinary characters (special tokens are dropped)."""
        return "".join(self.tokens[i] for i in map(int, ids) if i >= len(SPECIALS))


TOKENIZER = TaskTokenizer()


def chat_prompt(prompt: str, tok: TaskTokenizer = TOKENIZER) -> list[int]:
    """The chat template up to where the model answers: <bos><user>{prompt}<assistant>."""
    return [tok.bos_id, tok.user_id, *tok.encode(prompt), tok.assistant_id]


def chat_example(prompt: str, response: str, tok: TaskTokenizer = TOKENIZER) -> list[int]:
    """A whole turn: chat_prompt(prompt) + response + <end>. The response starts at index
    len(chat_prompt(prompt)); everything before it is prompt (no loss in SFT)."""
    return [*chat_prompt(prompt, tok), *tok.encode(response), tok.end_id]


def raw_line(problem: Problem) -> str:
    """The pretraining text of one problem: '07+45=52' plus a newline (no chat tokens)."""
    return f"{problem.prompt}={problem.answer}\n"


def _is_test(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Membership of the held-out split: a fixed multiplicative hash of the pair (a, b)."""
    key = (a.astype(np.uint64) * np.uint64(100_003) + b.astype(np.uint64)) * np.uint64(2654435761)
    return (key % np.uint64(2**32)) % np.uint64(TEST_FRACTION) == 0


def problems(n: int, seed: int, split: str = "train", digits: int = 2) -> list[Problem]:
    """n problems drawn uniformly (with replacement) from one split: 'train' or 'test'."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    rng = np.random.default_rng(seed)
    out: list[Problem] = []
    while len(out) < n:
        a, b = rng.integers(0, 10**digits, size=(2, 2 * (n - len(out)) * TEST_FRACTION))
        keep = _is_test(a, b) == (split == "test")
        out += [Problem(int(x), int(y), digits) for x, y in zip(a[keep], b[keep])]
    return out[:n]


def check(problem: Problem, response: str) -> bool:
    """The verifiable reward of the tiny scale: the response is exactly the sum."""
    return response == problem.answer


def prompt_batch(items: Sequence[Problem], tok: TaskTokenizer = TOKENIZER) -> torch.Tensor:
    """(B, P) ids of the chat prompts (all the same length for one digits setting)."""
    return torch.tensor([chat_prompt(p.prompt, tok) for p in items], dtype=torch.long)


# ------------------------------------------------------------------ the real scale (SmolLM2)


def real_messages(problem: Problem) -> list[dict[str, str]]:
    """The problem as a one-turn chat for an instruction-tuned model."""
    text = f"What is {problem.a} + {problem.b}? Reply with the number only."
    return [{"role": "user", "content": text}]


_NUMBER = re.compile(r"-?\d[\d,]*")


def parse_number(text: str) -> str | None:
    """The first integer in a reply ('The answer is 1,234.' -> '1234'), or None."""
    found = _NUMBER.search(text)
    return None if found is None else found.group().replace(",", "")


def check_text(problem: Problem, text: str) -> bool:
    """The verifiable reward of the real scale: the reply's first integer is the sum."""
    return parse_number(text) == problem.answer
