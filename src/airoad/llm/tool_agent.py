"""A ReAct agent: a language model that thinks, calls a tool with JSON arguments, reads what the
tool returned, and repeats until it gives a final answer or runs out of steps or time. The tools
themselves (``Tool``, the calculator, the schema validator, ...) are in ``agent_tools``.

The pieces, in the order the loop needs them:

- ``args_model`` / ``choice_automaton``: what the JSON logits processor of ``json_constrained``
  needs to force a schema-shaped call, and an action name from a fixed list;
- ``parse_call``: the arguments a step wrote, or the error message the model will read;
- ``run_agent``: the loop, batched across questions, with its step, time and retry limits;
- ``AgentLM``: a causal LM behind the ``complete`` interface, free or constrained.

A step's text in the scratchpad (the model writes what follows each colon)::

    Thought: I need the product.
    Action: calculator
    Action Input: {"expression":"48*36"}
    Observation: 1728
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

import numpy as np
from pydantic import create_model

from airoad.llm import json_constrained as jc
from airoad.llm import prompt_engineering as pe
from airoad.llm.agent_tools import FINISH, Tool, validate

# ---------------------------------------------------------------- constraints


def args_model(schema: dict) -> type:
    """A pydantic model with the schema's properties in order (string -> str, integer -> int),
    the flat model ``json_constrained.json_processor`` constrains generation to."""
    kinds = {"string": str, "integer": int}
    fields = {k: (kinds[p["type"]], ...) for k, p in schema["properties"].items()}
    return create_model("Arguments", **fields)


def choice_automaton(names: Sequence[str]) -> jc.Automaton:
    """A ``json_constrained.Automaton`` accepting exactly one of `names` (none a prefix of
    another): a character trie whose complete names all lead to one accept state."""
    if any(a != b and b.startswith(a) for a in names for b in names):
        raise ValueError("no name may be a prefix of another")
    states: dict[str, int] = {"": 0}
    for name in names:
        for i in range(1, len(name)):
            states.setdefault(name[:i], len(states))
    accept = len(states)
    table = np.full((accept + 1, len(jc.ALPHABET)), -1, dtype=np.int64)
    for name in names:
        for i, ch in enumerate(name):
            table[states[name[:i]], jc.COLUMN[ch]] = states.get(name[: i + 1], accept)
    return jc.Automaton(table, accept)


# ---------------------------------------------------------------- the loop


class Request(NamedTuple):
    """One completion: free text up to a newline, or one of `choices`, or JSON of `schema`."""

    prompt: str
    max_new_tokens: int
    choices: tuple[str, ...] | None = None
    schema: dict | None = None


class LM(Protocol):
    """Anything that answers a batch of requests with one text each (``AgentLM``, a fake)."""

    def complete(self, requests: Sequence[Request]) -> list[str]:
        """The new text of each request, in order."""
        ...


@dataclass
class Trace:
    """One question's run: its steps (dicts with thought, action, input, observation, kind in
    "call" | "malformed" | "tool_error" | "finish"), the answer and why it stopped."""

    question: str
    steps: list[dict] = field(default_factory=list)
    answer: str | None = None
    stop: str = ""  # "answer" | "max_steps" | "time" | "retries"
    scratchpad: str = ""


def parse_call(action: str, text: str, tools: dict[str, Tool]) -> tuple[dict | None, str]:
    """(arguments, "") for a valid call of tool `action` with JSON `text`, else (None, the
    error): an unknown tool names the known ones; text that is not one JSON object says so;
    a schema error lists ``validate``'s messages."""
    if action not in tools:
        return None, f"unknown tool '{action}': use one of {', '.join(tools)}"
    try:
        args = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, f"Action Input is not valid JSON ({exc.msg})"
    errors = validate(args, tools[action].schema)
    return (None, "; ".join(errors)) if errors else (args, "")


def run_agent(
    lm: LM,
    questions: Sequence[str],
    tools: Sequence[Tool],
    prompt: Callable[[str], str],
    max_steps: int = 6,
    max_seconds: float = 60.0,
    max_retries: int = 2,
    constrained: bool = True,
    tokens: tuple[int, int, int] = (32, 8, 40),
    clock: Callable[[], float] = time.monotonic,
) -> list[Trace]:
    """Run every question's agent in lock step, one batched ``lm.complete`` per phase.

    A step writes "Thought:", "Action:" and "Action Input:" (max new tokens ``tokens``); when
    `constrained` the action is one of the tool names and the input a JSON object of that
    tool's schema. Then: ``finish`` with valid arguments ends the run with its answer; a
    malformed call (``parse_call``'s error) becomes the observation, and more than
    `max_retries` malformed calls in a row end the run ("retries"); a tool that raises gives
    "error: <message>"; otherwise its result. A run also ends after `max_steps` steps, or at
    the first step that starts `max_seconds` after the call began ("time"). `prompt(question)`
    is the text before the scratchpad.
    """
    by_name = {t.name: t for t in tools}
    traces = [Trace(q) for q in questions]
    start, retries = clock(), [0] * len(traces)
    for _ in range(max_steps):
        live = [i for i, t in enumerate(traces) if not t.stop]
        if not live or clock() - start >= max_seconds:
            break
        heads = [prompt(traces[i].question) + traces[i].scratchpad for i in live]
        thoughts = lm.complete([Request(h + "Thought:", tokens[0]) for h in heads])
        heads = [h + f"Thought: {x.strip()}\nAction:" for h, x in zip(heads, thoughts)]
        names = tuple(by_name) if constrained else None
        actions = [a.strip() for a in lm.complete([Request(h, tokens[1], names) for h in heads])]
        heads = [h + f" {a}\nAction Input:" for h, a in zip(heads, actions)]
        inputs = lm.complete([Request(h, tokens[2], None, by_name[a].schema if constrained and
                                      a in by_name else None) for h, a in zip(heads, actions)])  # fmt: skip
        for i, thought, action, text in zip(live, thoughts, actions, inputs):
            trace = traces[i]
            step = _act(action, text.strip(), by_name)
            step["thought"] = thought.strip()
            trace.steps.append(step)
            trace.scratchpad += (f"Thought: {step['thought']}\nAction: {action}\nAction Input: "
                                 f"{step['input']}\nObservation: {step['observation']}\n")  # fmt: skip
            retries[i] = retries[i] + 1 if step["kind"] == "malformed" else 0
            if step["kind"] == "finish":
                trace.answer, trace.stop = step["observation"], "answer"
            elif retries[i] > max_retries:
                trace.stop = "retries"
    for trace in traces:
        if not trace.stop:
            trace.stop = "max_steps" if len(trace.steps) >= max_steps else "time"
    return traces


def _act(action: str, text: str, tools: dict[str, Tool]) -> dict:
    """One step's call: parsed, validated, run; the observation and the step's kind."""
    args, error = parse_call(action, text, tools)
    step = {"action": action, "input": text}
    if args is None:
        return step | {"observation": error, "kind": "malformed"}
    if action == FINISH:
        return step | {"observation": str(args["answer"]), "kind": "finish"}
    try:
        return step | {"observation": str(tools[action].fn(**args)), "kind": "call"}
    except Exception as exc:  # a tool's failure is information for the model, not a crash
        return step | {"observation": f"error: {exc}", "kind": "tool_error"}


# ---------------------------------------------------------------- a real model


class AgentLM:
    """A causal LM and its tokenizer behind ``complete``: batched greedy generation
    (``prompt_engineering.generate``), in groups of `batch_size` requests that share a
    constraint. A free request stops at a token holding a newline; a constrained one goes
    through a ``json_constrained.JsonLogitsProcessor`` (built once per constraint) over
    ``choice_automaton(choices)`` or the schema's ``args_model``, and ends at end-of-sequence.
    Prompts that start with `prefix` reuse its keys and values (``prefix_cache``), computed once.
    """

    def __init__(self, model: Any, tokenizer: Any, batch_size: int = 8, prefix: str = ""):
        self.model, self.tok, self.batch_size, self.prefix = model, tokenizer, batch_size, prefix
        self.cache = pe.prefix_cache(model, self._ids(prefix)) if prefix else None
        self.eos = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos
        self.strings = jc.token_strings(tokenizer)
        self.newlines = {i for i, s in enumerate(self.strings) if "\n" in s} | {self.eos}
        self.tables: dict[str, tuple] = {}

    def complete(self, requests: Sequence[Request]) -> list[str]:
        """The decoded new text of each request, in order."""
        out = [""] * len(requests)
        groups: dict[str, list[int]] = {}
        for i, r in enumerate(requests):
            groups.setdefault(json.dumps([r.choices, r.schema, r.max_new_tokens]), []).append(i)
        for key, rows in groups.items():
            for b in range(0, len(rows), self.batch_size):
                batch = rows[b : b + self.batch_size]
                cached = all(requests[i].prompt.startswith(self.prefix) for i in batch)
                cut = len(self.prefix) if cached and self.cache is not None else 0
                ids = [self._ids(requests[i].prompt[cut:]) for i in batch]
                news = self._generate(ids, requests[batch[0]], key, self.cache if cut else None)
                for i, new in zip(batch, news):
                    out[i] = self.tok.decode(new, skip_special_tokens=True)
        return out

    def _ids(self, text: str) -> list[int]:
        return self.tok(text, add_special_tokens=False)["input_ids"]

    def _generate(self, ids: list[list[int]], request: Request, key: str, cache: Any) -> list:
        if request.choices is None and request.schema is None:
            return pe.generate(self.model, ids, request.max_new_tokens, self.pad, self.newlines,
                               cache)  # fmt: skip
        if key not in self.tables:
            automaton = (choice_automaton(request.choices) if request.choices is not None else
                         jc.schema_automaton(jc.schema_fields(args_model(request.schema))))  # fmt: skip
            moves = jc.token_transitions(automaton, self.strings)
            self.tables[key] = (moves, jc.closing_costs(moves, automaton.accept), automaton.accept)
        proc = jc.JsonLogitsProcessor(*self.tables[key], self.eos, request.max_new_tokens)
        return pe.generate(self.model, ids, proc.budget + 1, self.pad, {self.eos}, cache,
                           processors=[proc])  # fmt: skip
