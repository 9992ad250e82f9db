"""Constrained decoding to valid JSON: a logits processor that only lets a model write objects
of a flat pydantic schema, and always closes the object before its token budget runs out.

The pieces, in the order the decoder needs them:

- ``schema_fields``: a flat pydantic model -> ``[(name, "string" | "integer"), ...]``;
- ``schema_automaton`` / ``run_automaton`` / ``accepts`` / ``minimal_object``: a character
  automaton (a DFA over printable ASCII) for the compact object ``{"name":"...","age":12}``,
  keys in declaration order, no whitespace between tokens, strings without escapes;
- ``token_strings`` / ``build_trie`` / ``token_transitions``: every vocabulary token's text in
  a trie, walked once from every automaton state, giving the table ``next[state, token]``;
- ``closing_costs``: the fewest tokens that reach the end of a valid object from each state;
- ``JsonLogitsProcessor`` / ``json_processor``: transformers' ``LogitsProcessor`` interface.
  A token is allowed when the automaton accepts its characters AND the tokens left after it
  still suffice to close the object; once the budget only just suffices, the only tokens left
  are those on a shortest closing path, so the output always parses.

Budget rule: a budget shorter than the shortest valid object is raised to that minimum (the
processor's ``budget``); generation then ends with a minimal valid object.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from transformers import LogitsProcessor

from airoad.errors import AiroadError

ALPHABET = "".join(chr(c) for c in range(32, 127))  # printable ASCII, the automaton's columns
COLUMN = {ch: i for i, ch in enumerate(ALPHABET)}
STRING_CHARS = [ch for ch in ALPHABET if ch not in '"\\']  # no escapes inside a string
DIGITS = "0123456789"
MINIMAL_VALUE = {"string": '""', "integer": "0"}


class Automaton(NamedTuple):
    """A DFA: ``table[state, COLUMN[ch]]`` is the next state (-1 = reject); start state 0."""

    table: np.ndarray
    accept: int


# ---------------------------------------------------------------- the character automaton


def schema_fields(model: type) -> list[tuple[str, str]]:
    """``(name, kind)`` of each field of a flat pydantic model, in declaration order: kind is
    "string" for ``str`` and "integer" for ``int``; any other annotation raises AiroadError."""
    kinds = {str: "string", int: "integer"}
    out = []
    for name, info in model.model_fields.items():
        if info.annotation not in kinds:
            raise AiroadError(
                f"field '{name}' is {info.annotation}: the JSON decoder handles str and int "
                "fields only, so change its type"
            )
        out.append((name, kinds[info.annotation]))
    return out


def schema_automaton(fields: Sequence[tuple[str, str]]) -> Automaton:
    """The DFA of the compact JSON object with `fields` in order: ``{"k1":v1,"k2":v2}``.

    A string value is ``"`` + printable ASCII except ``"`` and ``\\`` + ``"``; an integer is
    JSON's ``-?(0|[1-9][0-9]*)``. Literal characters (braces, quoted keys, colons, commas)
    each take one state; a string takes two (before and inside its quotes); an integer four
    (start, after "-", after a leading "0", inside digits). The last two are complete: they
    also take the first character of the literal that follows. ``accept`` is the state after
    the closing brace, with no way out.
    """
    pieces: list[str] = []  # a literal character, or a value kind
    for i, (name, kind) in enumerate(fields):
        pieces += list(("{" if i == 0 else ",") + f'"{name}":') + [kind]
    pieces += list("{" if not fields else "") + ["}"]
    starts, n = [], 0
    for piece in pieces:
        starts.append(n)
        n += {"string": 2, "integer": 4}.get(piece, 1)
    table = np.full((n + 1, len(ALPHABET)), -1, dtype=np.int64)
    for i, piece in enumerate(pieces):
        s, after = starts[i], starts[i + 1] if i + 1 < len(pieces) else n
        if piece == "string":
            table[s, COLUMN['"']] = s + 1
            table[s + 1, [COLUMN[c] for c in STRING_CHARS]] = s + 1
            table[s + 1, COLUMN['"']] = after
        elif piece == "integer":
            start, minus, zero, digits = s, s + 1, s + 2, s + 3
            table[start, COLUMN["-"]] = minus
            for state in (start, minus):
                table[state, COLUMN["0"]] = zero
                table[state, [COLUMN[c] for c in DIGITS[1:]]] = digits
            table[digits, [COLUMN[c] for c in DIGITS]] = digits
            # a complete number is followed by the next literal (always a "," or "}")
            table[[zero, digits], COLUMN[pieces[i + 1]]] = after + 1
        else:
            table[s, COLUMN[piece]] = after
    return Automaton(table, n)


def run_automaton(automaton: Automaton, text: str, state: int = 0) -> int:
    """The state after reading `text` from `state`, or -1 as soon as a character is rejected
    (a character outside ``ALPHABET`` is always rejected)."""
    for ch in text:
        col = COLUMN.get(ch)
        if col is None or state < 0:
            return -1
        state = int(automaton.table[state, col])
    return state


def accepts(automaton: Automaton, text: str) -> bool:
    """True when `text` is a complete object of the automaton's schema."""
    return run_automaton(automaton, text) == automaton.accept


def minimal_object(fields: Sequence[tuple[str, str]]) -> str:
    """The shortest valid object: every string empty, every integer 0."""
    body = ",".join(f'"{name}":{MINIMAL_VALUE[kind]}' for name, kind in fields)
    return "{" + body + "}"


# ---------------------------------------------------------------- tokens


def token_strings(tokenizer: Any) -> list[str]:
    """The text of every token id ``0 .. len(tokenizer) - 1`` (``tokenizer.decode([id])``);
    "" for the special tokens, which the automaton never takes."""
    special = set(tokenizer.all_special_ids)
    return ["" if i in special else tokenizer.decode([i]) for i in range(len(tokenizer))]


def build_trie(strings: Sequence[str]) -> dict:
    """A character trie of the non-empty `strings`: nested dicts keyed by character; the key
    ``None`` of a node holds the list of ids whose string ends there."""
    root: dict = {}
    for token_id, text in enumerate(strings):
        if not text:
            continue
        node = root
        for ch in text:
            node = node.setdefault(ch, {})
        node.setdefault(None, []).append(token_id)
    return root


def token_transitions(automaton: Automaton, strings: Sequence[str]) -> np.ndarray:
    """``next[state, token]``: the automaton's state after reading the token's text from
    `state`, -1 when it rejects a character (or the text is empty). Computed by walking the
    ``build_trie`` of `strings` once per state, pruning a branch at its first rejected
    character, so shared prefixes are read once."""
    out = np.full((len(automaton.table), len(strings)), -1, dtype=np.int64)
    trie = build_trie(strings)
    for state in range(len(automaton.table)):
        stack = [(trie, state)]
        while stack:
            node, at = stack.pop()
            for ch, child in node.items():
                if ch is None:
                    continue
                col = COLUMN.get(ch)
                nxt = -1 if col is None else int(automaton.table[at, col])
                if nxt < 0:
                    continue
                ids = child.get(None)
                if ids:
                    out[state, ids] = nxt
                stack.append((child, nxt))
    return out


def closing_costs(transitions: np.ndarray, accept: int) -> np.ndarray:
    """The fewest tokens that lead from each state to `accept` (0 there, inf when no token
    sequence does), by relaxing ``cost[s] = 1 + min_t cost[next[s, t]]`` until it settles."""
    n = len(transitions)
    cost = np.full(n + 1, np.inf)  # the extra last entry stands for "rejected"
    cost[accept] = 0.0
    step = np.where(transitions < 0, n, transitions)
    for _ in range(n):
        new = np.minimum(cost[:n], 1.0 + cost[step].min(axis=1))
        new[accept] = 0.0
        if np.array_equal(new, cost[:n]):
            break
        cost[:n] = new
    return cost[:n]


# ---------------------------------------------------------------- the logits processor


class JsonLogitsProcessor(LogitsProcessor):
    """Masks every token the schema forbids, for ``model.generate`` or any loop that calls
    ``processor(input_ids, scores)`` once per new token with the sequences so far.

    The first call records where generation starts; each later call reads every row's newest
    token and moves that row's automaton state. ``budget`` is ``max(max_new_tokens, cost of
    the shortest object)``: the content tokens a row may write; the end-of-sequence token
    ``eos_id`` is then the only choice in the accept state (so allow budget + 1 steps). One
    processor serves one generation; make a new one for the next.
    """

    def __init__(
        self,
        transitions: np.ndarray,
        costs: np.ndarray,
        accept: int,
        eos_id: int,
        max_new_tokens: int,
    ):
        if not np.isfinite(costs[0]):
            raise AiroadError(
                "the tokenizer cannot spell a valid object of this schema: use a tokenizer "
                "whose vocabulary holds the printable ASCII characters"
            )
        self.transitions = torch.as_tensor(transitions)
        self.costs = torch.as_tensor(np.append(costs, np.inf))  # index -1 = rejected
        self.accept, self.eos_id = accept, eos_id
        self.budget = max(int(max_new_tokens), int(costs[0]))
        self.start: int | None = None
        self.states: torch.Tensor | None = None
        self.finished: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """`scores` (B, V) with every forbidden token set to -inf."""
        if self.start is None:
            self.start = input_ids.shape[1]
            self.states = torch.zeros(len(input_ids), dtype=torch.long)
            self.finished = torch.zeros(len(input_ids), dtype=torch.bool)
        else:
            last = input_ids[:, -1]
            self.finished |= last == self.eos_id
            moving = ~self.finished
            self.states[moving] = self.transitions[self.states[moving], last[moving]]
        remaining = self.budget - (input_ids.shape[1] - self.start)  # this token included
        nxt = self.transitions[self.states]
        allowed = self.costs[nxt] <= remaining - 1  # rejected tokens cost inf
        allowed[:, self.eos_id] = self.states == self.accept
        allowed[self.finished] = False
        allowed[self.finished, self.eos_id] = True
        width = scores.shape[-1]
        if allowed.shape[1] < width:  # the model's head may be wider than the vocabulary
            pad = torch.zeros(len(allowed), width - allowed.shape[1], dtype=torch.bool)
            allowed = torch.cat([allowed, pad], dim=1)
        return scores.masked_fill(~allowed[:, :width], float("-inf"))


def json_processor(
    model: type, strings: Sequence[str], eos_id: int, max_new_tokens: int
) -> JsonLogitsProcessor:
    """A ``JsonLogitsProcessor`` for pydantic `model` over a vocabulary whose token texts are
    `strings` (``token_strings``): schema fields -> automaton -> token transitions ->
    closing costs."""
    automaton = schema_automaton(schema_fields(model))
    transitions = token_transitions(automaton, strings)
    costs = closing_costs(transitions, automaton.accept)
    return JsonLogitsProcessor(transitions, costs, automaton.accept, eos_id, max_new_tokens)
