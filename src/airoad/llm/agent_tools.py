"""The tools of the ReAct agent in ``tool_agent``, and the checker of its answers.

- ``calculate`` / ``format_number``: arithmetic over Python's ``ast`` (numbers, + - * / // % **,
  unary signs, brackets), never ``eval``: a name, a call or an attribute is refused;
- ``validate``: the errors of a JSON value against a JSON-Schema subset (type, required,
  properties, enum, additionalProperties), one sentence each;
- ``Tool`` / ``object_schema`` / ``calculator_tool`` / ``docs_tool`` / ``catalog_tool`` /
  ``finish_tool``: a tool is a name, a description, the JSON schema of its arguments and a
  function; finishing (``FINISH``) is a tool too;
- ``check_answer``: the per-task checkers of the evaluation set.
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from airoad.rag import retrieval

FINISH = "finish"
_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul,
           ast.Div: operator.truediv, ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
           ast.Pow: operator.pow}  # fmt: skip
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?")


# ---------------------------------------------------------------- the calculator


def calculate(expression: str, max_exponent: int = 100, max_chars: int = 200) -> int | float:
    """The value of an arithmetic `expression`, equal to Python's own arithmetic on it.

    Walks ``ast.parse(expression, mode="eval")``: int and float constants, the binary operators
    ``+ - * / // % **`` and unary ``+ -``; anything else (names, calls, strings, comparisons)
    raises ValueError naming what was refused. Guards against expressions that would hang: more
    than `max_chars` characters, or an exponent above `max_exponent` in absolute value, raise
    ValueError. Division by zero raises ZeroDivisionError, as in Python.
    """
    if len(expression) > max_chars:
        raise ValueError(f"expression longer than {max_chars} characters")
    try:
        tree = ast.parse(expression.strip(), mode="eval")
    except SyntaxError:
        raise ValueError(f"not an arithmetic expression: {expression!r}") from None

    def walk(node: ast.AST) -> int | float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](walk(node.operand))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = walk(node.left), walk(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > max_exponent:
                raise ValueError(f"exponent {right} is above {max_exponent}")
            return _BINARY[type(node.op)](left, right)
        raise ValueError(f"{type(node).__name__} is not allowed in arithmetic")

    return walk(tree.body)


def format_number(value: int | float) -> str:
    """An int as is; a float to 10 significant digits, a whole float without ".0"."""
    if isinstance(value, int) or not math.isfinite(value):
        return str(value)
    return f"{value:.10g}" if value != int(value) else str(int(value))


# ---------------------------------------------------------------- the schema validator


def validate(instance: Any, schema: dict, path: str = "$") -> list[str]:
    """Every error of `instance` (a parsed JSON value) against `schema`, [] when it is valid.

    The subset: ``type`` (a name or a list; "integer" also takes a float with no fraction,
    "number" any int or float, neither takes a bool), ``enum``, and for objects ``required``,
    ``properties`` (each present key checked against its schema) and ``additionalProperties``
    (False forbids other keys; a schema checks them). Each error names its place, e.g.
    ``$.field: 'size' is not one of ['phase', 'layer']``.
    """
    errors: list[str] = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is_type(instance, k) for k in kinds):
            return [f"{path}: {instance!r} is not of type {' or '.join(kinds)}"]
    if "enum" in schema and not any(_same(instance, v) for v in schema["enum"]):
        errors.append(f"{path}: {instance!r} is not one of {schema['enum']}")
    if isinstance(instance, dict):
        props = schema.get("properties", {})
        errors += [f"{path}: '{k}' is required" for k in schema.get("required", ())
                   if k not in instance]  # fmt: skip
        extra = schema.get("additionalProperties", True)
        for key, value in instance.items():
            if key in props:
                errors += validate(value, props[key], f"{path}.{key}")
            elif extra is False:
                errors.append(f"{path}: '{key}' is not an allowed key")
            elif isinstance(extra, dict):
                errors += validate(value, extra, f"{path}.{key}")
    return errors


def _is_type(value: Any, kind: str) -> bool:
    if kind in ("integer", "number"):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        return kind == "number" or isinstance(value, int) or float(value).is_integer()
    return isinstance(value, _TYPES[kind])


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True is not 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return a == b


# ---------------------------------------------------------------- tools


@dataclass(frozen=True)
class Tool:
    """A tool: ``fn(**arguments) -> str``, its arguments described by the JSON ``schema``."""

    name: str
    description: str
    schema: dict
    fn: Callable[..., str] = field(compare=False)


def object_schema(**props: dict) -> dict:
    """``{"type": "object", "properties": props, "required": [all], "additionalProperties":
    False}``: every argument required, no other key allowed."""
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": False}  # fmt: skip


def calculator_tool() -> Tool:
    """``calculator(expression)``: ``format_number(calculate(expression))``."""
    return Tool("calculator", "evaluates arithmetic such as 48*36 or (120-15)/7",
                object_schema(expression={"type": "string"}),
                lambda expression: format_number(calculate(expression)))  # fmt: skip


def docs_tool(titles: Sequence[str], texts: Sequence[str], max_chars: int = 300) -> Tool:
    """``docs_search(query)``: the best BM25 passage (``retrieval.BM25`` over ``tokenize`` of
    title + text), as "title: text" cut to `max_chars`; a query sharing no word with any
    passage raises ValueError."""
    bm25 = retrieval.BM25().fit(retrieval.tokenize([f"{a}\n{b}" for a, b in zip(titles, texts)]))

    def search(query: str) -> str:
        tokens = retrieval.tokenize([query])
        if not bm25.query_counts(tokens).nnz:
            raise ValueError(f"no passage shares a word with {query!r}")
        best = int(retrieval.top_k(bm25.scores(tokens), 1)[0][0, 0])
        return f"{titles[best]}: {' '.join(texts[best].split())}"[:max_chars]

    return Tool("docs_search", "searches the Python documentation for a passage",
                object_schema(query={"type": "string"}), search)  # fmt: skip


CATALOG_FIELDS = ("phase", "prerequisites", "cpu_minutes", "layer", "title")


def catalog_tool(catalog: Any) -> Tool:
    """``catalog(lab, field)``: one fact of a lab of an ``airoad.catalog.Catalog`` (field in
    ``CATALOG_FIELDS``; a list joined by ", ", "none" when empty). An unknown lab raises the
    catalog's own error."""

    def lookup(lab: str, field: str) -> str:
        value = getattr(catalog.get(lab.strip()), field)
        return ", ".join(value) or "none" if isinstance(value, tuple) else str(value)

    schema = object_schema(lab={"type": "string"},
                           field={"type": "string", "enum": list(CATALOG_FIELDS)})  # fmt: skip
    return Tool("catalog", "looks up a fact about an airoad lab by its id", schema, lookup)


def finish_tool() -> Tool:
    """``finish(answer)``: ends the run; the loop takes `answer` as the final answer."""
    return Tool(FINISH, "gives the final answer", object_schema(answer={"type": "string"}), str)


# ---------------------------------------------------------------- checking answers


def check_answer(reply: str | None, gold: Any, check: str) -> bool:
    """Whether `reply` answers correctly: "number": its first number (commas allowed) equals
    `gold` within 1e-6 relative; "any": it contains one of the strings `gold`; "all": it
    contains every string of `gold`. Case-insensitive, whole words; None is never correct."""
    if reply is None:
        return False
    if check == "number":
        found = _NUMBER.search(reply)
        return bool(found) and math.isclose(float(found.group().replace(",", "")), float(gold),
                                            rel_tol=1e-6, abs_tol=1e-9)  # fmt: skip
    words = [re.search(rf"(?<!\w){re.escape(g.lower())}(?!\w)", reply.lower()) for g in gold]
    if check == "any":
        return any(words)
    if check == "all":
        return all(words)
    raise ValueError(f"unknown check {check!r}: use 'number', 'any' or 'all'")
