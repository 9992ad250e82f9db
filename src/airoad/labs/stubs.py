"""Generate an exercise stub from a reference module's source.

Every function and method keeps its decorators, signature and docstring; its body becomes
`raise NotImplementedError(...)`. Class `__init__` and `__sklearn_tags__` bodies stay: in the
scikit-learn style they only declare hyper-parameters and capabilities, and a class that cannot
be built or described would hide every other failure.
Work happens on source lines (not `ast.unparse`) so comments and layout survive.
"""

from __future__ import annotations

import ast

KEPT_METHODS = ("__init__", "__sklearn_tags__")


def _stub_targets(tree: ast.Module) -> list[tuple[ast.FunctionDef | ast.AsyncFunctionDef, str]]:
    """(function node, qualified name) for every module-level function and class method."""
    found: list = []

    def visit(body: list[ast.stmt], prefix: str, in_class: bool) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                if not (in_class and node.name in KEPT_METHODS):
                    found.append((node, prefix + node.name))
            elif isinstance(node, ast.ClassDef):
                visit(node.body, f"{prefix}{node.name}.", True)

    visit(tree.body, "", False)
    return found


def _has_docstring(node: ast.AST) -> bool:
    body = node.body  # type: ignore[attr-defined]
    return (
        bool(body)
        and isinstance(body[0], ast.Expr)
        and isinstance(getattr(body[0], "value", None), ast.Constant)
        and isinstance(body[0].value.value, str)
    )


def make_stub(source: str, header: str = "") -> str:
    """Return `source` with every function body replaced by `raise NotImplementedError`."""
    tree = ast.parse(source)
    lines = source.splitlines()
    edits: list[tuple[int, int, str, str]] = []  # (first line, last line, indent, name)
    for node, qualname in _stub_targets(tree):
        documented = _has_docstring(node)
        rest = node.body[1:] if documented else node.body
        if rest and rest[0].lineno == node.lineno:
            raise ValueError(f"{qualname}: put the body on its own line so it can be stubbed")
        anchor = rest[0] if rest else node.body[0]
        # Remove everything after the docstring (comments included); an empty range
        # (start > end) means the docstring is the whole body and the stub goes after it.
        start = node.body[0].end_lineno + 1 if documented else rest[0].lineno
        edits.append((start, node.end_lineno, " " * anchor.col_offset, qualname))
    for start, end, indent, qualname in sorted(edits, reverse=True):
        lines[start - 1 : end] = [f'{indent}raise NotImplementedError("{qualname}: write this")']
    text = "\n".join(lines) + "\n"
    ast.parse(text)  # the stub must itself be valid Python
    return header + text


def public_names(source: str) -> list[str]:
    """Qualified names a learner's file must define (module functions, classes, methods)."""
    tree = ast.parse(source)
    names = []
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not node.name.startswith(
            "_"
        ):
            names.append(node.name)
        elif isinstance(node, ast.ClassDef) and not node.name.startswith("_"):
            names.append(node.name)
            names += [
                f"{node.name}.{m.name}"
                for m in node.body
                if isinstance(m, (ast.FunctionDef, ast.AsyncFunctionDef))
                and not m.name.startswith("_")
            ]
    return names
