"""Grader for json_constrained: the character automaton against pydantic's strict validation
(Hypothesis strings within the grammar), the token transitions against reading each token's
text, closing costs against the shortest object, and constrained generation on a tiny random
Llama through transformers' ``model.generate``: the output always parses and validates, also
with a budget shorter than the shortest valid object (raised to that minimum)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from prompt_testing import tiny_llama, tiny_tokenizer
from pydantic import BaseModel, ConfigDict, ValidationError
from transformers import LogitsProcessorList

REFERENCE = "airoad.llm.json_constrained"


class Pet(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)
    name: str
    age: int
    owner: str


FIELDS = [("name", "string"), ("age", "integer"), ("owner", "string")]


def pydantic_accepts(text: str) -> bool:
    try:
        Pet.model_validate_json(text)
    except ValidationError:
        return False
    return True


# Inside the grammar: no whitespace between tokens, no escapes, keys in schema order (some may
# be missing, misspelt or extra), values of either type, quotes and braces that may be broken.
# Outside it (pydantic accepts them, the automaton does not): reordered or repeated keys,
# whitespace, escapes.
STRING = st.text(st.sampled_from("ab Z09.-,:{}"), max_size=5).map(lambda s: f'"{s}"')
INTEGER = st.integers(-1000, 10**12).map(str)
RIGHT = {"string": STRING, "integer": INTEGER}
WRONG = st.one_of(STRING, INTEGER, st.sampled_from(["-0", "007", "1.5", "-", '"x', "true", "null",
                                                    "1e3", "", '"a"b"']))  # fmt: skip


@st.composite
def objects(draw):
    """Mostly well-formed objects, with wrong keys, values, ends and cuts mixed in."""
    keys = [name for name, _ in FIELDS if draw(st.integers(0, 3))]  # sometimes one is missing
    if draw(st.integers(0, 3)) == 0:  # an unknown or misspelt key
        keys.insert(draw(st.integers(0, len(keys))), draw(st.sampled_from(["size", "Name"])))
    kinds, pairs = dict(FIELDS), []
    for key in keys:
        right = key in kinds and draw(st.integers(0, 3)) > 0
        pairs.append(f'"{key}":' + draw(RIGHT[kinds[key]] if right else WRONG))
    end = "}" if draw(st.integers(0, 3)) else draw(st.sampled_from(["", "}}", ",}"]))
    text = "{" + ",".join(pairs) + end
    if draw(st.integers(0, 3)) == 0:  # sometimes drop trailing characters
        text = text[: len(text) - draw(st.integers(1, 3))]
    return text


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_tokenizer()


def test_schema_fields_read_the_pydantic_model(impl):
    """schema_fields lists (name, "string"/"integer") in order and refuses a float field."""
    from airoad.errors import AiroadError

    assert impl.schema_fields(Pet) == FIELDS

    class Bad(BaseModel):
        score: float

    with pytest.raises(AiroadError, match="score"):
        impl.schema_fields(Bad)


@settings(max_examples=300, deadline=None)
@given(objects())
def test_automaton_accepts_exactly_what_pydantic_accepts(impl, text):
    """The automaton accepts a compact object exactly when pydantic's strict validation does."""
    automaton = impl.schema_automaton(FIELDS)
    assert impl.accepts(automaton, text) == pydantic_accepts(text), text


def test_minimal_object_is_the_shortest_accepted_string(impl):
    """minimal_object validates, is accepted, and no proper prefix of it is accepted."""
    automaton = impl.schema_automaton(FIELDS)
    text = impl.minimal_object(FIELDS)
    assert text == '{"name":"","age":0,"owner":""}' and pydantic_accepts(text)
    assert impl.accepts(automaton, text)
    assert not any(impl.accepts(automaton, text[:i]) for i in range(len(text)))
    assert impl.run_automaton(automaton, text + "}") == -1, "nothing may follow the brace"


def test_token_transitions_equal_reading_each_token(impl, tokenizer):
    """next[state, token] is the automaton's state after reading the token's text, or -1."""
    automaton = impl.schema_automaton(FIELDS)
    strings = impl.token_strings(tokenizer)
    assert strings[tokenizer.eos_token_id] == "" and "a" in strings
    table = impl.token_transitions(automaton, strings)
    assert table.shape == (len(automaton.table), len(tokenizer))
    for state in range(len(automaton.table)):
        want = [impl.run_automaton(automaton, s, state) if s else -1 for s in strings]
        np.testing.assert_array_equal(table[state], want, err_msg=f"state {state}")


def test_closing_costs_count_the_tokens_of_the_shortest_object(impl, tokenizer):
    """With one-character tokens the cost from the start is len(minimal_object); BPE is cheaper."""
    automaton = impl.schema_automaton(FIELDS)
    chars = list(impl.ALPHABET)
    costs = impl.closing_costs(impl.token_transitions(automaton, chars), automaton.accept)
    text = impl.minimal_object(FIELDS)
    assert costs[0] == len(text) and costs[automaton.accept] == 0
    for i in range(len(text)):  # along the shortest object, each character costs one token
        assert costs[impl.run_automaton(automaton, text[:i])] == len(text) - i
    bpe = impl.closing_costs(
        impl.token_transitions(automaton, impl.token_strings(tokenizer)), automaton.accept
    )
    assert bpe[0] < len(text), "the tokenizer's merges ('\":\"', ...) should shorten the object"


def _constrained(impl, tokenizer, budget, seed, temperature=1.5):
    model = tiny_llama(len(tokenizer), seed=seed % 3)
    processor = impl.json_processor(
        Pet, impl.token_strings(tokenizer), tokenizer.eos_token_id, budget
    )
    prompts = [tokenizer(t)["input_ids"] for t in ("Ava has", "{", "Name the pet", "x")]
    batch = tokenizer.pad({"input_ids": prompts}, return_tensors="pt", padding_side="left")
    torch.manual_seed(seed)
    out = model.generate(
        **batch, max_new_tokens=processor.budget + 1, do_sample=True, temperature=temperature,
        top_k=0, logits_processor=LogitsProcessorList([processor]),
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    new = out[:, batch["input_ids"].shape[1] :]
    return processor, [[t for t in row.tolist() if t != tokenizer.pad_token_id] for row in new]


@pytest.mark.parametrize("budget", [40, 20])
def test_constrained_generation_always_parses(impl, tokenizer, budget):
    """Sampled under the processor, every reply parses with json.loads and validates, any seed."""
    for seed in range(6):
        processor, rows = _constrained(impl, tokenizer, budget, seed)
        for row in rows:
            assert row[-1] == tokenizer.eos_token_id, "a finished object ends with <eos>"
            text = tokenizer.decode(row, skip_special_tokens=True)
            assert len(row) - 1 <= processor.budget, "the object overran the token budget"
            Pet.model_validate(json.loads(text))


def test_budget_below_the_minimum_is_raised_to_it(impl, tokenizer):
    """A budget shorter than the shortest object becomes that minimum; replies are minimal."""
    strings = impl.token_strings(tokenizer)
    automaton = impl.schema_automaton(FIELDS)
    minimum = impl.closing_costs(impl.token_transitions(automaton, strings), automaton.accept)[0]
    for seed in range(4):
        processor, rows = _constrained(impl, tokenizer, 2, seed, temperature=3.0)
        assert processor.budget == minimum > 2
        for row in rows:
            assert len(row) - 1 == minimum, "with the least budget every token must close"
            text = tokenizer.decode(row, skip_special_tokens=True)
            Pet.model_validate(json.loads(text))


def test_processor_fits_a_head_narrower_or_wider_than_the_vocabulary(impl, tokenizer):
    """The mask is cut to, or padded (forbidden) up to, the scores' width when the head differs from the vocabulary."""
    strings = impl.token_strings(tokenizer)
    ids, v = torch.zeros((2, 3), dtype=torch.long), len(strings)
    want = impl.json_processor(Pet, strings, tokenizer.eos_token_id, 20)(ids, torch.zeros(2, v))
    assert torch.isinf(want).any() and torch.isfinite(want).any(), "the mask should bite"
    narrow = impl.json_processor(Pet, strings, tokenizer.eos_token_id, 20)
    assert torch.equal(narrow(ids, torch.zeros(2, v - 2)), want[:, : v - 2]), "cut to the head"
    wide = impl.json_processor(Pet, strings, tokenizer.eos_token_id, 20)
    pad = torch.full((2, 3), float("-inf"))
    assert torch.equal(wide(ids, torch.zeros(2, v + 3)), torch.cat([want, pad], 1)), "pad: -inf"
