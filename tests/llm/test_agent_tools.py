"""Grader for agent_tools: the calculator against Python's own arithmetic (Hypothesis expression
trees), the schema validator against ``jsonschema`` on valid and invalid instances, the tools on
tiny inputs (docs search against ``bm25s``), and the answer checker on the task file."""

from __future__ import annotations

import json

import jsonschema
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.llm.agent_tools"

FAST = settings(max_examples=60, deadline=None)


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


# ---------------------------------------------------------------- tools


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
