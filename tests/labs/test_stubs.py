"""Stub generation: names, signatures and docstrings survive; every body raises."""

from __future__ import annotations

import ast

import pytest

from airoad.labs.stubs import make_stub, public_names

SOURCE = '''"""Module doc."""
import numpy as np

SCALE = 2.0


def helper(x):
    # a comment inside the body goes away with it
    return x * SCALE


def documented(a: int, *, b: float = 1.0) -> float:
    """Add things.

    Returns a float.
    """
    c = a + b
    return c


class Model:
    """A model."""

    kind = "demo"

    def __init__(self, alpha: float = 1.0):
        self.alpha = alpha

    @property
    def size(self) -> int:
        """How big."""
        return 3

    def fit(self, X):
        """Fit it."""
        def inner():
            return 1
        return self

    def _private(self):
        """Only a doc."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags
'''


def _functions(tree):
    return {n.name: n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)}


def test_bodies_raise_and_docstrings_stay():
    """Every function except __init__ and __sklearn_tags__ raises; docstrings are kept."""
    stub = make_stub(SOURCE)
    funcs = _functions(ast.parse(stub))
    for name in ("helper", "documented", "size", "fit", "_private"):
        body = funcs[name].body
        last = body[-1]
        assert isinstance(last, ast.Raise), name
        assert "NotImplementedError" in ast.unparse(last)
    assert ast.get_docstring(funcs["documented"]) == "Add things.\n\nReturns a float."
    assert ast.unparse(funcs["__init__"].body[0]) == "self.alpha = alpha"
    # the estimator's declared capabilities stay: sklearn asks for them before any fit
    assert ast.unparse(funcs["__sklearn_tags__"].body[-1]) == "return tags"
    assert "inner" not in funcs
    assert "SCALE = 2.0" in stub and "kind = 'demo'" in ast.unparse(ast.parse(stub))


def test_signatures_and_decorators_survive():
    """Signatures, defaults and decorators are identical to the reference."""
    ref, stub = _functions(ast.parse(SOURCE)), _functions(ast.parse(make_stub(SOURCE)))
    for name in ("documented", "size", "fit", "helper"):
        assert ast.unparse(ref[name].args) == ast.unparse(stub[name].args)
        assert [ast.unparse(d) for d in ref[name].decorator_list] == [
            ast.unparse(d) for d in stub[name].decorator_list
        ]


def test_stub_runs_and_raises():
    """The stub imports cleanly and its functions raise NotImplementedError naming themselves."""
    namespace: dict = {}
    exec(compile(make_stub(SOURCE), "stub.py", "exec"), namespace)
    with pytest.raises(NotImplementedError, match="documented"):
        namespace["documented"](1)
    model = namespace["Model"](alpha=2.0)
    assert model.alpha == 2.0
    with pytest.raises(NotImplementedError, match="Model.fit"):
        model.fit(None)


def test_public_names():
    """Public names are module functions, classes and their public methods."""
    assert public_names(SOURCE) == ["helper", "documented", "Model", "Model.size", "Model.fit"]


def test_one_line_body_is_refused():
    """A body on the def line cannot be stubbed without losing code: say so."""
    with pytest.raises(ValueError, match="own line"):
        make_stub("def f(): return 1\n")
