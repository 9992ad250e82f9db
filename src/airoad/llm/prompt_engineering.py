"""Prompt engineering as an experiment: prompt styles on a chat model, answers parsed and scored
with confidence intervals.

The pieces, in the order an evaluation needs them:

- ``word_problems`` / ``people``: generated tasks with exact answers (arithmetic word problems
  with a difficulty knob; one-sentence biographies to extract as JSON into ``Person``);
- ``chat_messages`` / ``chat_ids``: zero-shot, few-shot (k solved examples as earlier turns) and
  chain-of-thought prompts on the chat template, tokenised as a shared prefix + a suffix;
- ``prefix_cache`` / ``next_token_logits`` / ``generate`` / ``sample_chains``: batched
  generation with left-padded suffixes after one cached prefix (its keys and values are
  computed once and reused for every item), greedy or sampled at a temperature, through
  optional logits processors;
- ``extract_number`` / ``extract_label`` / ``parse_json_object`` / ``field_accuracy`` /
  ``majority_vote``: turning replies into answers, and self-consistency's vote;
- ``wilson_interval``: the confidence interval of an accuracy.
"""

from __future__ import annotations

import copy
import json
import re
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, ValidationError
from scipy.stats import norm

NAMES = ("Ava", "Ben", "Chloe", "Dev", "Elena", "Finn", "Grace", "Hugo", "Iris", "Jonas", "Kira",
         "Liam", "Maya", "Noah", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tara")  # fmt: skip
CITIES = ("Lisbon", "Oslo", "Denver", "Nairobi", "Osaka", "Lima", "Dublin", "Perth", "Quebec",
          "Cairo", "Austin", "Munich", "Seoul", "Porto", "Boston", "Madrid")  # fmt: skip
ITEMS = ("apples", "marbles", "stickers", "coins", "pencils", "cookies", "stamps", "shells")
# (verb phrase, sign): each step of a word problem adds or removes a number of items.
STEPS = (("buys {n} more", 1), ("finds {n} more", 1), ("gets {n} from a friend", 1),
         ("gives {n} away", -1), ("loses {n}", -1), ("sells {n}", -1))  # fmt: skip
BIOS = ("{name} is {age} years old and lives in {city}.",
        "At {age}, {name} moved to {city} to open a bakery.",
        "{name}, aged {age}, teaches music in {city}.",
        "Last spring {name} ({age}) ran the {city} marathon.")  # fmt: skip
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*")
_ANSWER = re.compile(r"answer\s*(?:is)?\s*:?\s*", re.IGNORECASE)


class WordProblem(NamedTuple):
    """A generated arithmetic word problem and its exact answer."""

    question: str
    answer: int


class Person(BaseModel):
    """The extraction schema: validated strictly (no "34" for an int), no extra keys."""

    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    age: int
    city: str


# ---------------------------------------------------------------- generated tasks


def word_problems(n: int, difficulty: int, seed: int) -> list[WordProblem]:
    """`n` seeded word problems with `difficulty` steps each (``np.random.default_rng(seed)``).

    A problem starts "<Name> has <s> <items>." with s in [2, 4 + 4 * difficulty], then one
    sentence per step, "Then <name> <verb phrase>." from ``STEPS`` with a number in
    [1, 2 + 2 * difficulty] (a removal that would take more than there is becomes
    ``STEPS[0]``, a purchase), and asks "How many <items> does <Name> have now?". The answer
    is the exact running total. More steps and larger numbers as `difficulty` grows.
    """
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        name, item = NAMES[rng.integers(len(NAMES))], ITEMS[rng.integers(len(ITEMS))]
        total = int(rng.integers(2, 5 + 4 * difficulty))
        text = [f"{name} has {total} {item}."]
        for _ in range(difficulty):
            phrase, sign = STEPS[rng.integers(len(STEPS))]
            amount = int(rng.integers(1, 3 + 2 * difficulty))
            if sign < 0 and amount > total:
                phrase, sign = STEPS[0]  # never below zero: buy instead
            total += sign * amount
            text.append(f"Then {name} {phrase.format(n=amount)}.")
        out.append(WordProblem(" ".join(text) + f" How many {item} does {name} have now?", total))
    return out


def people(n: int, seed: int) -> list[tuple[str, dict]]:
    """`n` seeded (sentence, fields) pairs: a ``BIOS`` template filled with a name from
    ``NAMES``, an age in [18, 90] and a city from ``CITIES``; fields is
    ``{"name", "age", "city"}``."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        fields = {
            "name": NAMES[rng.integers(len(NAMES))],
            "age": int(rng.integers(18, 91)),
            "city": CITIES[rng.integers(len(CITIES))],
        }
        out.append((BIOS[rng.integers(len(BIOS))].format(**fields), fields))
    return out


# ---------------------------------------------------------------- prompts


def chat_messages(
    instruction: str, question: str, examples: Sequence[tuple[str, str]] = ()
) -> list[dict]:
    """A system message holding `instruction`, then each (question, answer) example as a user
    turn and an assistant turn (few-shot; none = zero-shot), then `question` as the last user
    turn. Each message is ``{"role": ..., "content": ...}``."""
    out = [{"role": "system", "content": instruction}]
    for q, a in examples:
        out += [{"role": "user", "content": q}, {"role": "assistant", "content": a}]
    return out + [{"role": "user", "content": question}]


def chat_ids(tokenizer: Any, messages: Sequence[dict]) -> tuple[list[int], list[int]]:
    """(prefix ids, suffix ids) of `messages` on the chat template.

    The prefix is every message but the last, rendered without a generation prompt; the suffix
    is the rest of the full rendering (last message + generation prompt). Each is tokenised
    alone without extra special tokens, so every item of one prompt style shares the prefix.
    """
    full = tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=False)
    head = tokenizer.apply_chat_template(list(messages[:-1]), tokenize=False)
    if not full.startswith(head):
        raise ValueError("the chat template does not render the last turn after the others")
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    return encode(head), encode(full[len(head) :])


# ---------------------------------------------------------------- generation


def prefix_cache(model: Any, prefix: Sequence[int]) -> Any:
    """The KV cache (``past_key_values``, batch 1) of one forward pass over `prefix`."""
    with torch.inference_mode():
        return model(input_ids=torch.tensor([list(prefix)]), use_cache=True).past_key_values


def _prefill(model: Any, prompts: Sequence[Sequence[int]], pad_id: int, cache: Any) -> tuple:
    """First forward pass: left-padded prompts after the (copied, batch-repeated) cache."""
    lengths = torch.tensor([len(p) for p in prompts])
    width = int(lengths.max())
    mask = (torch.arange(width)[None, :] >= (width - lengths)[:, None]).long()
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    ids[mask.bool()] = torch.tensor([t for p in prompts for t in p], dtype=torch.long)
    past, start = None, 0
    if cache is not None:  # the cache grows as it is used: every call works on a copy
        past = copy.deepcopy(cache)
        past.batch_repeat_interleave(len(prompts))
        start = past.get_seq_length()
    positions = start + (mask.cumsum(-1) - 1).clamp(min=0)  # count real tokens only
    mask = torch.cat([torch.ones(len(prompts), start, dtype=torch.long), mask], dim=1)
    # logits_to_keep=1: only the last position's logits (a (B, T, V) tensor is mostly waste)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions,
                past_key_values=past, use_cache=True, logits_to_keep=1)  # fmt: skip
    return out, ids, mask, positions


def next_token_logits(
    model: Any, prompts: Sequence[Sequence[int]], pad_id: int, cache: Any = None
) -> torch.Tensor:
    """(B, V) logits of the token after each prompt, the prompts left-padded with `pad_id` and
    placed after the `cache` of a shared prefix when one is given (the positions of a row
    count its real tokens only, after the prefix). Equal to running prefix + prompt alone."""
    with torch.inference_mode():
        return _prefill(model, prompts, pad_id, cache)[0].logits[:, -1]


def generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    pad_id: int,
    stop_ids: Collection[int] = (),
    cache: Any = None,
    temperature: float = 0.0,
    seed: int = 0,
    processors: Sequence[Any] = (),
) -> list[list[int]]:
    """New token ids for each prompt (a suffix after `cache`'s prefix when given), batched.

    The first pass is ``next_token_logits``'s; then each step feeds only the newest tokens.
    Each step's last logits go through `processors` (transformers' ``LogitsProcessor``
    interface: called with the (B, L) ids so far, prompt padding included, and the scores);
    then the token is the argmax when `temperature` is 0, else a draw from
    ``softmax(scores / temperature)`` with ``torch.Generator().manual_seed(seed)``. A row stops
    after a token in `stop_ids` (not returned); generation ends when every row has stopped or
    after `max_new_tokens` steps.
    """
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long)
    done = torch.zeros(len(prompts), dtype=torch.bool)
    rng = torch.Generator().manual_seed(seed)
    new: list[torch.Tensor] = []
    with torch.inference_mode():
        out, seen, mask, positions = _prefill(model, prompts, pad_id, cache)
        for _ in range(max_new_tokens):
            scores = out.logits[:, -1].float()
            for processor in processors:
                scores = processor(seen, scores)
            if temperature > 0:
                probs = torch.softmax(scores / temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=rng)[:, 0]
            else:
                token = scores.argmax(-1)
            token = torch.where(done, pad_id, token)
            done = done | torch.isin(token, stops)
            new.append(torch.where(done, -1, token))  # -1 marks a stop token or a finished row
            if bool(done.all()) or len(new) == max_new_tokens:
                break
            seen = torch.cat([seen, token[:, None]], dim=1)
            mask = torch.cat([mask, torch.ones_like(token[:, None])], dim=1)
            positions = positions[:, -1:] + 1
            out = model(input_ids=token[:, None], attention_mask=mask, position_ids=positions,
                        past_key_values=out.past_key_values, use_cache=True,
                        logits_to_keep=1)  # fmt: skip
    steps = torch.stack(new, dim=1).tolist() if new else [[] for _ in prompts]
    return [[t for t in row if t >= 0] for row in steps]


def sample_chains(
    model: Any,
    prompts: Sequence[Sequence[int]],
    n_samples: int,
    max_new_tokens: int,
    pad_id: int,
    temperature: float,
    seed: int,
    stop_ids: Collection[int] = (),
    cache: Any = None,
) -> list[list[list[int]]]:
    """`n_samples` sampled continuations of every prompt (self-consistency's chains): one
    ``generate`` call at `temperature` and `seed` on the prompts each repeated `n_samples`
    times in a row; returns ``chains[item][sample]``."""
    repeated = [p for p in prompts for _ in range(n_samples)]
    flat = generate(model, repeated, max_new_tokens, pad_id, stop_ids, cache, temperature, seed)
    return [flat[i : i + n_samples] for i in range(0, len(flat), n_samples)]


# ---------------------------------------------------------------- answers


def extract_number(text: str) -> int | None:
    """The integer after the last "Answer:" ("answer is", any case) in `text` when there is
    one, else the last integer in `text`; thousands separators ("1,234") allowed; None when
    there is no integer."""
    marks = list(_ANSWER.finditer(text))
    if marks:
        found = _NUMBER.search(text, marks[-1].end())
        if found and found.start() == marks[-1].end():
            return int(found.group().replace(",", ""))
    numbers = _NUMBER.findall(text)
    return int(numbers[-1].replace(",", "")) if numbers else None


def extract_label(text: str, labels: Sequence[str]) -> str | None:
    """The label (a whole word, any case) that occurs first in `text`; None when none does."""
    hits = [(m.start(), label) for label in labels
            if (m := re.search(rf"\b{re.escape(label)}\b", text, re.IGNORECASE))]  # fmt: skip
    return min(hits)[1] if hits else None


def parse_json_object(text: str, schema: type[BaseModel] = Person) -> BaseModel | None:
    """The `schema` instance in the first JSON object of `text` (decoded from the first "{"
    with ``json.JSONDecoder().raw_decode``, validated with ``schema.model_validate``); None
    when there is no "{", the JSON is invalid or validation fails."""
    start = text.find("{")
    if start < 0:
        return None
    try:
        obj, _ = json.JSONDecoder().raw_decode(text, start)
        return schema.model_validate(obj)
    except (json.JSONDecodeError, ValidationError):
        return None


def field_accuracy(parsed: BaseModel | None, truth: dict) -> float:
    """The share of `truth`'s fields that `parsed` got right (strings compared stripped and
    case-folded, others by equality); 0 when `parsed` is None."""
    if parsed is None:
        return 0.0
    norm_ = lambda v: v.strip().casefold() if isinstance(v, str) else v  # noqa: E731
    got = parsed.model_dump()
    return float(np.mean([norm_(got.get(k)) == norm_(v) for k, v in truth.items()]))


def majority_vote(answers: Sequence[Any]) -> Any:
    """The most common answer that is not None (a tie goes to the one seen first); None when
    every answer is None."""
    counts = Counter(a for a in answers if a is not None)
    if not counts:
        return None
    best = max(counts.values())
    return next(a for a in answers if a is not None and counts[a] == best)


def wilson_interval(successes: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson's score interval of a proportion: with p = successes / n and z the normal
    quantile of (1 + level) / 2, centre (p + z²/2n) / (1 + z²/n) and half-width
    z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), clipped to [0, 1], with the lower end exactly 0
    when successes is 0 and the upper exactly 1 when successes is n; (0, 1) when n is 0."""
    if n == 0:
        return 0.0, 1.0
    z = float(norm.ppf((1 + level) / 2))
    p, scale = successes / n, 1 + z * z / n
    centre = (p + z * z / (2 * n)) / scale
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / scale
    low = 0.0 if successes == 0 else max(centre - half, 0.0)  # exact ends, no rounding dust
    high = 1.0 if successes == n else min(centre + half, 1.0)
    return float(low), float(high)
