"""Grader for tool_agent: the calculator against Python's own arithmetic (Hypothesis expression
trees), the schema validator against ``jsonschema`` on valid and invalid instances, the tools on
tiny inputs (docs search against ``bm25s``), the constraints through ``json_constrained``, the
agent loop's control flow on a scripted fake model (malformed calls, tool errors, step, retry
and time limits, batching), and constrained generation on a tiny random Llama."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prompt_testing import tiny_llama, tiny_tokenizer

REFERENCE = "airoad.llm.tool_agent"

FAST = settings(max_examples=60, deadline=None)
CALL = '{"expression":"2*3"}'


# ---------------------------------------------------------------- the calculator

NUMBERS = st.one_of(
    st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 3))
)


@st.composite
def expressions(draw, depth: int = 3) -> str:
    """Random arithmetic source text: numbers, + - * / // % **, unary minus, brackets."""
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return repr(draw(NUMBERS))
    kind = draw(st.integers(0, 5))
    if kind == 0:
        return f"-({draw(expressions(depth - 1))})"
    if kind == 1:
        return f"({draw(expressions(depth - 1))}) ** {draw(st.integers(0, 3))}"
    op = draw(st.sampled_from(["+", "-", "*", "/", "//", "%"]))
    return f"({draw(expressions(depth - 1))}) {op} ({draw(expressions(depth - 1))})"


@FAST
@given(expressions())
def test_calculate_equals_python_arithmetic(impl, text):
    """calculate returns exactly what Python computes for the same arithmetic, errors included."""
    try:
        expected = eval(text, {"__builtins__": {}})  # the trusted reference: Python itself
    except (ZeroDivisionError, OverflowError) as exc:
        with pytest.raises(type(exc)):
            impl.calculate(text)
        return
    got = impl.calculate(text)
    assert type(got) is type(expected), f"{text}: {type(got).__name__}, Python gives {expected!r}"
    assert got == expected or (got != got and expected != expected), (
        f"{text} = {expected!r}, got {got!r}"
    )


@pytest.mark.parametrize(
    "text",
    ["__import__('os')", "x + 1", "abs(-3)", "(1).real", "'a' * 3", "1 < 2", "[1, 2]", "2 ** 101",
     "1 +", "", "9" * 201, "True + 1"],
)  # fmt: skip
def test_calculate_refuses_anything_but_arithmetic(impl, text):
    """Names, calls, attributes, strings, comparisons, huge exponents and long input raise ValueError."""
    with pytest.raises(ValueError):
        impl.calculate(text)


def test_calculate_keeps_python_semantics(impl):
    """Unary signs, floor division, modulo of negatives, powers and division by zero behave as in Python."""
    assert impl.calculate("-7 // 2") == -4 and impl.calculate("-7 % 3") == 2
    assert impl.calculate("+(2) ** 10") == 1024 and impl.calculate("2 ** -1") == 0.5
    assert impl.calculate(" (120 - 15) / 7 ") == 15.0 and impl.calculate("2 ** 100") == 2**100
    with pytest.raises(ZeroDivisionError):
        impl.calculate("1 / (3 - 3)")
    assert [impl.format_number(v) for v in (12, 15.0, 0.1 + 0.2, -2.5)] == [
        "12",
        "15",
        "0.3",
        "-2.5",
    ]


# ---------------------------------------------------------------- the schema validator

SCHEMAS = [
    {"type": "object", "properties": {"lab": {"type": "string"},
     "field": {"type": "string", "enum": ["phase", "layer"]}},
     "required": ["lab", "field"], "additionalProperties": False},
    {"type": "object", "properties": {"n": {"type": "integer"}, "x": {"type": "number"},
     "ok": {"type": "boolean"}, "tags": {"type": "array"}, "none": {"type": "null"}},
     "required": ["n"], "additionalProperties": {"type": "string"}},
    {"type": ["integer", "string"], "enum": [1, "a", 2.5, True]},
    {"properties": {"inner": {"type": "object", "required": ["k"],
     "properties": {"k": {"enum": [0, "z"]}}}}},
    {"enum": [1, True, "a", 0.0]},
]  # fmt: skip
SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, 2.5, -0.5]),
                    st.sampled_from(["phase", "layer", "a", "z", "knn", ""]))  # fmt: skip
KEYS = st.sampled_from(["lab", "field", "n", "x", "ok", "tags", "none", "inner", "k", "extra"])
VALUES = st.recursive(SCALARS, lambda inner: st.one_of(st.lists(inner, max_size=2),
                      st.dictionaries(KEYS, inner, max_size=4)), max_leaves=6)  # fmt: skip


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(range(len(SCHEMAS))), VALUES)
def test_validate_agrees_with_jsonschema(impl, which, instance):
    """validate finds errors exactly when jsonschema says the instance is invalid."""
    schema = SCHEMAS[which]
    expected = jsonschema.Draft202012Validator(schema).is_valid(instance)
    errors = impl.validate(instance, schema)
    assert (errors == []) == expected, (
        f"{instance!r} vs schema {which}: jsonschema valid={expected}, got {errors}"
    )


@pytest.mark.parametrize(
    ("instance", "valid"),
    [({"lab": "knn", "field": "phase"}, True), ({"lab": "knn"}, False),
     ({"lab": "knn", "field": "size"}, False), ({"lab": 3, "field": "phase"}, False),
     ({"lab": "knn", "field": "phase", "x": 1}, False), (["lab"], False)],
)  # fmt: skip
def test_validate_on_tool_arguments(impl, instance, valid):
    """A tool's arguments: missing, unknown, mistyped and out-of-enum keys are each an error."""
    assert jsonschema.Draft202012Validator(SCHEMAS[0]).is_valid(instance) == valid
    assert (impl.validate(instance, SCHEMAS[0]) == []) == valid, (
        f"{instance} should be valid={valid}"
    )


@pytest.mark.parametrize(
    ("instance", "schema"),
    [({"n": "3"}, 1), ({"n": True}, 1), ({"n": 2.0}, 1), ({"n": 2.5}, 1), ({"n": 1, "x": False}, 1),
     ({"n": 1, "x": 2.5, "ok": 0}, 1), ({"n": 1, "none": 0}, 1), ({"n": 1, "other": 3}, 1),
     (True, 4), (False, 4), (1.0, 4), (0, 4), ("a", 4), (2, 4), (True, 2)],
)  # fmt: skip
def test_validate_types_and_enums_like_jsonschema(impl, instance, schema):
    """Integers take 2.0 but not 2.5 or True; enums tell True from 1 and accept 1.0 for 1."""
    expected = jsonschema.Draft202012Validator(SCHEMAS[schema]).is_valid(instance)
    assert (impl.validate(instance, SCHEMAS[schema]) == []) == expected, (
        f"{instance!r}: valid={expected}"
    )


def test_validate_messages_name_the_place(impl):
    """Each error names where it is ($.key) and what was wrong."""
    errors = impl.validate({"field": "size", "x": 1}, SCHEMAS[0])
    assert len(errors) == 3, f"expected 3 errors (missing lab, bad enum, extra key), got {errors}"
    text = " ".join(errors)
    assert "'lab'" in text and "$.field" in text and "size" in text and "'x'" in text


# ---------------------------------------------------------------- tools and constraints


def test_tools_compute_and_look_up(impl):
    """The calculator formats results, the catalog tool reads a lab's fact, an unknown lab raises."""
    from airoad.catalog import load_catalog

    calc, cat = impl.calculator_tool(), impl.catalog_tool(load_catalog())
    assert calc.fn(expression="48*36") == "1728" and calc.fn(expression="147/3") == "49"
    assert impl.validate({"expression": "1"}, calc.schema) == []
    assert (
        cat.fn(lab="customer-segmentation", field="prerequisites")
        == "clustering, dimensionality-reduction"
    )
    assert cat.fn(lab="numpy-pandas-basics", field="prerequisites") == "none"
    assert cat.fn(lab="knn", field="phase") == "classical-ml"
    assert impl.validate({"lab": "knn", "field": "size"}, cat.schema), "field must be an enum"
    with pytest.raises(Exception, match="unknown lab"):
        cat.fn(lab="no-such-lab", field="phase")


def test_docs_tool_returns_bm25s_best_passage(impl):
    """docs_search returns the passage bm25s ranks first, and raises when no word matches."""
    import bm25s

    titles = ["for", "while", "pass", "lambda"]
    texts = ["The for statement iterates over a sequence.", "The while loop repeats while true.",
             "pass is a null operation, nothing happens.", "lambda makes anonymous functions."]  # fmt: skip
    tool = impl.docs_tool(titles, texts, max_chars=30)
    lib = bm25s.BM25()
    lib.index(bm25s.tokenize([f"{a}\n{b}" for a, b in zip(titles, texts)], stopwords=None,
                             show_progress=False), show_progress=False)  # fmt: skip
    for query in ("null operation", "anonymous functions lambda", "repeats loop"):
        docs, _ = lib.retrieve(bm25s.tokenize([query], stopwords=None, show_progress=False), k=1,
                               show_progress=False)  # fmt: skip
        best = int(docs[0, 0])
        expected = f"{titles[best]}: {texts[best]}"[:30]
        assert tool.fn(query=query) == expected, f"{query!r}: bm25s's best is {expected!r}"
    with pytest.raises(ValueError):
        tool.fn(query="zebra")


def test_constraints_feed_the_json_processor(impl):
    """args_model gives json_constrained's fields in order; choice_automaton accepts exactly the names."""
    from airoad.llm import json_constrained as jc

    schema = impl.object_schema(lab={"type": "string"}, n={"type": "integer"})
    assert schema["required"] == ["lab", "n"] and schema["additionalProperties"] is False
    assert jc.schema_fields(impl.args_model(schema)) == [("lab", "string"), ("n", "integer")]
    names = ["calculator", "catalog", "finish", "docs_search"]
    automaton = impl.choice_automaton(names)
    for text in [*names, "cat", "calculators", "finis", "", "docs", "Finish", "catalogs"]:
        assert jc.accepts(automaton, text) == (text in names), f"{text!r}"
    with pytest.raises(ValueError):
        impl.choice_automaton(["cat", "catalog"])


@settings(max_examples=40, deadline=None)
@given(st.text(st.sampled_from("acdfilnostu_h"), max_size=12))
def test_choice_automaton_on_random_strings(impl, text):
    """choice_automaton accepts a string exactly when it is one of the names."""
    from airoad.llm import json_constrained as jc

    names = ["calculator", "catalog", "finish", "docs_search"]
    assert jc.accepts(impl.choice_automaton(names), text) == (text in names)


def test_parse_call_explains_every_failure(impl):
    """parse_call returns the arguments of a valid call, else a message naming the problem."""
    tools = {t.name: t for t in (impl.calculator_tool(), impl.finish_tool())}
    assert impl.parse_call("calculator", CALL, tools) == ({"expression": "2*3"}, "")
    args, err = impl.parse_call("calc", CALL, tools)
    assert args is None and "calc" in err and "calculator" in err and "finish" in err
    args, err = impl.parse_call("calculator", '{"expression": "2*3"', tools)
    assert args is None and "JSON" in err
    args, err = impl.parse_call("calculator", '{"expr":"2*3"}', tools)
    assert args is None and "'expression' is required" in err and "'expr'" in err
    assert impl.parse_call("finish", '{"answer":"6"}', tools) == ({"answer": "6"}, "")


# ---------------------------------------------------------------- the loop on a scripted model


class ScriptedLM:
    """A fake model: each question has a list of outputs, handed out in order, one per request
    whose prompt holds that question; every request is recorded."""

    def __init__(self, scripts: dict[str, list[str]]):
        self.scripts = {q: list(s) for q, s in scripts.items()}
        self.calls: list[list] = []

    def complete(self, requests):
        self.calls.append(list(requests))
        out = []
        for r in requests:
            q = next(q for q in self.scripts if q in r.prompt)
            out.append(self.scripts[q].pop(0) if self.scripts[q] else "finish")
        return out


def step(thought, action, text):
    return [f" {thought}", f" {action}", f" {text}"]


def prompt(question):
    return f"Question: {question}\n"


def tools_for(impl, extra=()):
    return [impl.calculator_tool(), impl.finish_tool(), *extra]


def test_malformed_call_is_fed_back_and_recovered(impl):
    """A malformed call's validation error becomes the observation; the next valid call runs."""
    lm = ScriptedLM({"q": step("use it", "calculator", '{"expr":"2*3"}')
                     + step("fix it", "calculator", CALL) + step("done", "finish", '{"answer":"6"}')})  # fmt: skip
    (trace,) = impl.run_agent(lm, ["q"], tools_for(impl), prompt, max_steps=5)
    assert [s["kind"] for s in trace.steps] == ["malformed", "call", "finish"]
    assert "'expression' is required" in trace.steps[0]["observation"]
    assert trace.steps[1]["observation"] == "6" and trace.answer == "6" and trace.stop == "answer"
    assert trace.steps[0]["thought"] == "use it" and trace.steps[1]["input"] == CALL
    second = lm.calls[3][0].prompt  # the next step's thought sees the first step's observation
    assert "Observation: $: 'expression' is required" in second and second.endswith("Thought:")


def test_tool_error_becomes_observation(impl):
    """A tool that raises does not crash the run: 'error: <message>' is the observation."""
    lm = ScriptedLM({"q": step("t", "calculator", '{"expression":"1/0"}')
                     + step("t", "finish", '{"answer":"none"}')})  # fmt: skip
    (trace,) = impl.run_agent(lm, ["q"], tools_for(impl), prompt)
    assert trace.steps[0]["kind"] == "tool_error"
    assert (
        trace.steps[0]["observation"].startswith("error: ")
        and "zero" in trace.steps[0]["observation"]
    )
    assert trace.answer == "none" and trace.stop == "answer"


def test_retries_are_bounded(impl):
    """More than max_retries malformed calls in a row end the run with stop 'retries'."""
    bad = step("t", "calc", CALL) + step("t", "calculator", "not json") * 5
    (trace,) = impl.run_agent(
        ScriptedLM({"q": bad}), ["q"], tools_for(impl), prompt, max_retries=2, max_steps=9
    )
    assert trace.stop == "retries" and len(trace.steps) == 3 and trace.answer is None
    assert "unknown tool 'calc'" in trace.steps[0]["observation"]
    # a valid call in between resets the count
    mixed = (
        step("t", "calculator", "{}") * 2 + step("t", "calculator", CALL) + step("t", "x", "{}") * 2
    )
    (trace,) = impl.run_agent(
        ScriptedLM({"q": mixed}), ["q"], tools_for(impl), prompt, max_retries=2, max_steps=5
    )
    assert trace.stop == "max_steps" and len(trace.steps) == 5


def test_step_limit(impl):
    """A model that never finishes stops after max_steps steps, with no answer."""
    lm = ScriptedLM({"q": step("t", "calculator", CALL) * 10})
    (trace,) = impl.run_agent(lm, ["q"], tools_for(impl), prompt, max_steps=3)
    assert len(trace.steps) == 3 and trace.stop == "max_steps" and trace.answer is None
    assert len(lm.calls) == 9, "three phases (thought, action, input) per step"


def test_time_limit(impl):
    """No step starts once max_seconds have passed on the clock: stop 'time'."""
    ticks = iter(range(100))
    lm = ScriptedLM({"q": step("t", "calculator", CALL) * 10})
    (trace,) = impl.run_agent(lm, ["q"], tools_for(impl), prompt, max_steps=8, max_seconds=2.5,
                              clock=lambda: float(next(ticks)))  # fmt: skip
    assert trace.stop == "time" and len(trace.steps) == 2, (
        f"{len(trace.steps)} steps, stop {trace.stop}"
    )


def test_batched_questions_and_constraints(impl):
    """Live questions share each phase's batch; constrained requests carry tool names and schemas."""
    calc, fin = impl.calculator_tool(), impl.finish_tool()
    lm = ScriptedLM({"a?": step("t", "finish", '{"answer":"1"}'),
                     "b?": step("t", "calculator", CALL) + step("t", "finish", '{"answer":"6"}')})  # fmt: skip
    traces = impl.run_agent(lm, ["a?", "b?"], [calc, fin], prompt, tokens=(5, 6, 7))
    assert [t.answer for t in traces] == ["1", "6"] and [len(t.steps) for t in traces] == [1, 2]
    assert [len(c) for c in lm.calls] == [2, 2, 2, 1, 1, 1], "a finished question leaves the batch"
    thought, action, given_ = lm.calls[0][1], lm.calls[1][1], lm.calls[2][1]
    assert thought.choices is None and thought.schema is None and thought.max_new_tokens == 5
    assert set(action.choices) == {"calculator", "finish"} and action.max_new_tokens == 6
    assert given_.schema == calc.schema and given_.max_new_tokens == 7
    assert action.prompt.endswith("Action:") and given_.prompt.endswith(
        "Action: calculator\nAction Input:"
    )
    free = ScriptedLM({"a?": step("t", "finish", '{"answer":"1"}')})
    impl.run_agent(free, ["a?"], [calc, fin], prompt, constrained=False)
    assert all(r.choices is None and r.schema is None for c in free.calls for r in c)


# ---------------------------------------------------------------- a real (tiny random) model


@pytest.fixture(scope="module")
def tiny():
    tok = tiny_tokenizer()
    return tiny_llama(len(tok), seed=3), tok


def test_agent_lm_constrained_outputs_always_validate(impl, tiny):
    """On a random model, constrained actions are tool names and inputs validate against the schema."""
    model, tok = tiny
    calc, cat = impl.calculator_tool(), impl.catalog_tool(None)
    prefix = "<|im_start|>system\ntools<|im_end|>\n"
    lm = impl.AgentLM(model, tok, batch_size=2, prefix=prefix)
    prompts = [prefix + f"Q{i}: Ava has 12 apples.\nAction:" for i in range(3)]
    names = ("calculator", "catalog", "finish")
    reqs = [impl.Request(p, 8, names) for p in prompts] + [impl.Request(p, 12, None, calc.schema)
            for p in prompts] + [impl.Request("no prefix", 12, None, cat.schema)]  # fmt: skip
    out = lm.complete(reqs)
    assert all(o in names for o in out[:3]), out[:3]
    for o, schema in zip(out[3:], [calc.schema] * 3 + [cat.schema]):
        assert set(json.loads(o)) == set(schema["properties"]), f"{o!r} is not a call of the schema"
    free = lm.complete([impl.Request(p, 6) for p in prompts])
    assert all("\n" not in o for o in free), "free text stops at a newline"
    # the prefix cache changes nothing: the same requests without it give the same text
    plain = impl.AgentLM(model, tok, batch_size=3)
    assert plain.complete(reqs[:6]) == out[:6]


def test_agent_lm_reads_uncached_prompts_whole(impl, tiny):
    """A prompt that does not start with the cached prefix is fed whole, without the cache."""
    model, tok = tiny
    seen = []

    def spy(**kwargs):
        if kwargs["input_ids"].shape[1] > 1:  # a prefill, not a one-token decoding step
            seen.append((kwargs["input_ids"][0].tolist(), kwargs.get("past_key_values") is None))
        return model(**kwargs)

    lm = impl.AgentLM(spy, tok, batch_size=2, prefix="<|im_start|>system\ntools<|im_end|>\n")
    seen.clear()
    lm.complete([impl.Request("no prefix here", 3)])
    assert seen == [(tok("no prefix here", add_special_tokens=False)["input_ids"], True)]


# ---------------------------------------------------------------- checking answers


@pytest.mark.parametrize(
    ("reply", "gold", "check", "ok"),
    [("1,728 pencils", 1728, "number", True), ("It is 56.0", 56, "number", True),
     ("about 49.5", 49, "number", False), ("no idea", 3, "number", False), (None, 3, "number", False),
     ("12 then 1728", 1728, "number", False), ("Classical-ML", ["classical-ml"], "any", True),
     ("ml", ["classical-ml"], "any", False), ("clustering and pca", ["clustering", "pca"], "all", True),
     ("clustering only", ["clustering", "pca"], "all", False), ("a whiled", ["while"], "any", False)],
)  # fmt: skip
def test_check_answer(impl, reply, gold, check, ok):
    """A number answer is the reply's first number; text answers are whole-word matches."""
    assert impl.check_answer(reply, gold, check) == ok, f"{reply!r} vs {gold!r} ({check})"
    with pytest.raises(ValueError):
        impl.check_answer("x", ["x"], "regex")


def test_the_task_file_is_checkable(impl):
    """Every task's gold passes its own checker; arithmetic golds equal Python's value."""
    from importlib.resources import files

    rows = [json.loads(x) for x in files("airoad.llm").joinpath("tool_agent_tasks.jsonl")
            .read_text().splitlines() if x.strip()]  # fmt: skip
    assert len(rows) >= 30 and len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        gold = r["gold"]
        reply = str(gold) if r["check"] == "number" else " and ".join(gold)
        assert impl.check_answer(reply, gold, r["check"]), r["id"]
        if r["kind"] == "arithmetic":
            assert np.isclose(eval(r["expression"], {"__builtins__": {}}), gold), r["id"]
