"""Single-point mutants of a Python module, found with `ast` (the operators of tools/mutate.py).

A mutation point is one node a mutant changes, and each point has exactly one mutation:

- binary operators (also in `x += ...`): + <-> -, * <-> /, // -> /, ** -> *
- comparisons (each operator of a chain): < <-> <=, > <-> >=, == <-> !=, is <-> is not,
  in <-> not in
- boolean operators: and <-> or; unary: `not x` -> `x`, `-x` -> `x`
- constants: int 0 <-> 1, other ints n -> n + 1, floats 0.0 -> 1.0 and x -> 2x, True <-> False
- `return <expr>` -> `return None`

Left alone (a change there is not a wrong program): docstrings, type annotations, decorators,
function defaults, `__all__`, code under `if __name__ == ...`, f-strings, `raise` statements,
`print`/`warn`/`param` calls, and seed keywords (another seed is as right as the first).

A point is addressed by the position of its node in `ast.walk` order, so a mutant is made by
parsing the source afresh, changing that one node and unparsing (comments do not survive).
"""

from __future__ import annotations

import ast
import hashlib
import math
import random
from dataclasses import dataclass

BINARY = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Div,
    ast.Div: ast.Mult,
    ast.FloorDiv: ast.Div,
    ast.Pow: ast.Mult,
}
COMPARE = {
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.Is: ast.IsNot,
    ast.IsNot: ast.Is,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}
BOOLEAN = {ast.And: ast.Or, ast.Or: ast.And}
SYMBOL = {
    ast.Add: "+",
    ast.Sub: "-",
    ast.Mult: "*",
    ast.Div: "/",
    ast.FloorDiv: "//",
    ast.Pow: "**",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Is: "is",
    ast.IsNot: "is not",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.And: "and",
    ast.Or: "or",
}
QUIET_CALLS = {"print", "warn", "param"}  # messages and runner parameters, not behaviour
SEED_KEYWORDS = {"seed", "random_state"}


@dataclass(frozen=True)
class Point:
    """One mutation point of a source: where it is and what the mutant changes there."""

    index: int  # position of the node in ast.walk order
    slot: int  # which operator of a comparison chain (0 otherwise)
    line: int
    col: int
    kind: str  # binary, compare, boolean, unary, constant, return
    change: str  # e.g. "`<` -> `<=`"

    @property
    def key(self) -> str:
        return f"{self.line}:{self.col} {self.change}"


def _is_docstring(stmt: ast.stmt) -> bool:
    return (
        isinstance(stmt, ast.Expr)
        and isinstance(stmt.value, ast.Constant)
        and isinstance(stmt.value.value, str)
    )


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def _skipped_roots(node: ast.AST) -> list:
    """The subtrees of `node` that carry no mutation points (see the module docstring)."""
    roots: list = []
    body = getattr(node, "body", None)
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        if body and _is_docstring(body[0]):
            roots.append(body[0])
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        roots += node.decorator_list
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        roots += [node.returns, *node.args.defaults, *node.args.kw_defaults]
    elif isinstance(node, ast.arg):
        roots.append(node.annotation)
    elif isinstance(node, ast.AnnAssign):
        roots.append(node.annotation)
    elif isinstance(node, ast.Assign):
        if any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets):
            roots.append(node)
    elif isinstance(node, ast.If):
        if any(isinstance(n, ast.Name) and n.id == "__name__" for n in ast.walk(node.test)):
            roots.append(node)
    elif isinstance(node, (ast.JoinedStr, ast.Raise)):
        roots.append(node)
    elif isinstance(node, ast.Call) and _call_name(node) in QUIET_CALLS:
        roots.append(node)
    elif isinstance(node, ast.keyword) and node.arg in SEED_KEYWORDS:
        roots.append(node.value)
    return [r for r in roots if r is not None]


def _new_constant(value):
    """The mutated constant, or None when the constant is not mutated."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return 1 if value == 0 else 0 if value == 1 else value + 1
    if isinstance(value, float) and math.isfinite(value):
        return 1.0 if value == 0 else 2 * value
    return None


def _points_at(index: int, node: ast.AST) -> list[Point]:
    where = (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))
    if isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in BINARY:
        old = type(node.op)
        return [Point(index, 0, *where, "binary", f"`{SYMBOL[old]}` -> `{SYMBOL[BINARY[old]]}`")]
    if isinstance(node, ast.Compare):
        return [
            Point(
                index,
                slot,
                *where,
                "compare",
                f"`{SYMBOL[type(op)]}` -> `{SYMBOL[COMPARE[type(op)]]}`",
            )
            for slot, op in enumerate(node.ops)
            if type(op) in COMPARE
        ]
    if isinstance(node, ast.BoolOp):
        old = type(node.op)
        return [Point(index, 0, *where, "boolean", f"`{SYMBOL[old]}` -> `{SYMBOL[BOOLEAN[old]]}`")]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub)):
        sign = "not " if isinstance(node.op, ast.Not) else "-"
        return [Point(index, 0, *where, "unary", f"`{sign}x` -> `x`")]
    if isinstance(node, ast.Constant):
        new = _new_constant(node.value)
        if new is not None:
            return [Point(index, 0, *where, "constant", f"`{node.value!r}` -> `{new!r}`")]
    if isinstance(node, ast.Return) and node.value is not None:
        if not (isinstance(node.value, ast.Constant) and node.value.value is None):
            return [Point(index, 0, *where, "return", "`return ...` -> `return None`")]
    return []


def find_points(source: str) -> list[Point]:
    """Every mutation point of `source`, in ast.walk order."""
    tree = ast.parse(source)
    nodes = list(ast.walk(tree))
    skipped = set()
    for node in nodes:
        for root in _skipped_roots(node):
            skipped.update(id(n) for n in ast.walk(root))
    points = []
    for index, node in enumerate(nodes):
        if id(node) not in skipped:
            points += _points_at(index, node)
    return points


class _Swap(ast.NodeTransformer):
    def __init__(self, old: ast.AST, new: ast.AST):
        self.old, self.new = old, new

    def visit(self, node):
        return self.new if node is self.old else self.generic_visit(node)


def apply(source: str, point: Point) -> str:
    """The source of the mutant that changes `point` (ast.unparse of the changed tree)."""
    tree = ast.parse(source)
    node = list(ast.walk(tree))[point.index]
    if (getattr(node, "lineno", 0), getattr(node, "col_offset", 0)) != (point.line, point.col):
        raise ValueError(f"point {point.key} does not match this source")
    if point.kind in ("binary",):
        node.op = BINARY[type(node.op)]()
    elif point.kind == "compare":
        ops = list(node.ops)
        ops[point.slot] = COMPARE[type(ops[point.slot])]()
        node.ops = ops
    elif point.kind == "boolean":
        node.op = BOOLEAN[type(node.op)]()
    elif point.kind == "unary":
        tree = _Swap(node, node.operand).visit(tree)
    elif point.kind == "constant":
        node.value = _new_constant(node.value)
    elif point.kind == "return":
        node.value = ast.Constant(None)
    return ast.unparse(ast.fix_missing_locations(tree))


def normalised(source: str) -> str:
    """The unmutated source as a mutant's is written (ast.unparse), for an equal baseline."""
    return ast.unparse(ast.parse(source))


def lab_seed(lab_id: str) -> int:
    """A seed from the lab id alone: the same sample on every run and every machine."""
    return int.from_bytes(hashlib.sha256(lab_id.encode()).digest()[:8], "big")


def quotas(sizes: list[int], total: int) -> list[int]:
    """How many of `total` samples each module gets: proportional, at least one each."""
    if sum(sizes) <= total:
        return list(sizes)
    grand = sum(sizes)
    share = [min(n, max(1 if n else 0, math.floor(total * n / grand))) for n in sizes]
    by_spare = sorted(range(len(sizes)), key=lambda i: -(total * sizes[i] / grand - share[i]))
    while sum(share) < total:
        for i in by_spare:
            if sum(share) < total and share[i] < sizes[i]:
                share[i] += 1
    while sum(share) > total:
        i = max(range(len(sizes)), key=lambda j: share[j])
        share[i] -= 1
    return share


def draw_sample(lab_id: str, points: dict[str, list[Point]], size: int) -> list[tuple[str, Point]]:
    """A fixed, seeded sample of about `size` points spread over the modules (in given order)."""
    rng = random.Random(lab_seed(lab_id))
    modules = list(points)
    chosen = []
    for module, quota in zip(modules, quotas([len(points[m]) for m in modules], size)):
        picked = sorted(rng.sample(range(len(points[module])), quota))
        chosen += [(module, points[module][i]) for i in picked]
    return chosen
