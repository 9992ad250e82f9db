"""`airoad check` on broken learner files: each failure mode gets a clear message, no traceback.

The learner files are made from the reference of `numpy-pandas-basics` (its tests are fast).
"""

from __future__ import annotations

import ast
from pathlib import Path

from typer.testing import CliRunner

from airoad.catalog.progress import LEARNING, PASSED, load_progress, state_of
from airoad.cli import app
from airoad.labs.exercise import reference_source

LAB = "numpy-pandas-basics"
MODULE = "airoad.foundations.numpy_pandas_basics"
runner = CliRunner()


def reference() -> str:
    return reference_source(MODULE)[1]


def with_body(source: str, func: str, body: str) -> str:
    """`source` with the body of top-level function `func` (docstring kept) set to `body`."""
    node = next(
        n for n in ast.parse(source).body if isinstance(n, ast.FunctionDef) and n.name == func
    )
    lines = source.splitlines()
    start = node.body[1].lineno if ast.get_docstring(node) else node.body[0].lineno
    lines[start - 1 : node.end_lineno] = [f"    {body}"]
    return "\n".join(lines) + "\n"


def check(tmp_path: Path, source: str, *extra: str):
    (tmp_path / "numpy_pandas_basics.py").write_text(source)
    result = runner.invoke(app, ["check", LAB, "--dir", str(tmp_path), *extra])
    assert "Traceback" not in result.output
    return result


def test_reference_passes_and_is_recorded(tmp_path):
    """A copy of the reference passes every test and records `passed` with the suite hash."""
    result = check(tmp_path, reference())
    assert result.exit_code == 0, result.output
    assert " 0 failed" in result.output
    entry = load_progress()[LAB]
    assert entry["state"] == PASSED and len(entry["suite"]) == 16


def test_untouched_stub_fails_every_test(tmp_path):
    """The generated stub fails with NotImplementedError and leaves the lab `learning`."""
    assert runner.invoke(app, ["exercise", LAB, "--dir", str(tmp_path)]).exit_code == 0
    result = runner.invoke(app, ["check", LAB, "--dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "NotImplementedError" in result.output and "\n0 passed" in result.output
    assert state_of(LAB) == LEARNING


def test_exercise_never_overwrites_work(tmp_path):
    """A second `exercise` refuses to overwrite the learner's file unless --force."""
    path = tmp_path / "numpy_pandas_basics.py"
    path.write_text("# my work\n")
    result = runner.invoke(app, ["exercise", LAB, "--dir", str(tmp_path)])
    assert result.exit_code == 1 and "--force" in result.output
    assert path.read_text() == "# my work\n"


def test_syntax_error(tmp_path):
    """A syntax error names the file and line."""
    result = check(tmp_path, reference() + "\ndef broken(:\n    pass\n")
    assert result.exit_code == 1
    assert "syntax error" in result.output and "line" in result.output


def test_missing_function(tmp_path):
    """A file without one of the lab's functions names it."""
    source = reference().replace("def merge_lookup(", "def merge_lookup_renamed(")
    result = check(tmp_path, source)
    assert result.exit_code == 1
    assert "does not define merge_lookup" in result.output


def test_error_at_import(tmp_path):
    """An exception while importing the file names the exception and the line."""
    result = check(tmp_path, reference() + "\nraise RuntimeError('boom')\n")
    assert result.exit_code == 1
    assert "RuntimeError: boom" in result.output and "line" in result.output


def test_wrong_shape(tmp_path):
    """A function returning the wrong shape fails its test with the expected shape named."""
    result = check(tmp_path, with_body(reference(), "transpose", "return A"))
    assert result.exit_code == 1
    assert "transpose returned shape (3, 4), expected (4, 3)" in result.output


def test_exception_in_function(tmp_path):
    """An exception inside a function is reported per test, with the exception's message."""
    result = check(tmp_path, with_body(reference(), "det", "return 1 / 0"))
    assert result.exit_code == 1
    assert "ZeroDivisionError" in result.output
    assert "✓ test_matmul_matches_numpy" in result.output  # the rest still runs


def test_endless_loop_in_function(tmp_path):
    """An endless loop is stopped by the per-test time limit; the other tests still run."""
    result = check(
        tmp_path, with_body(reference(), "transpose", "while True: pass"), "--timeout", "3"
    )
    assert result.exit_code == 1
    assert "✗ test_transpose_swaps_axes: took longer than 3 s" in result.output
    assert "✓ test_merge_lookup_rejects_missing_keys" in result.output  # run after the kill


def test_endless_loop_at_import(tmp_path):
    """An endless loop at module level is stopped while loading the file."""
    result = check(tmp_path, reference() + "\nwhile True:\n    pass\n", "--timeout", "3")
    assert result.exit_code == 1
    assert "did not finish within 3 s" in result.output


def test_missing_workspace_file(tmp_path):
    """Checking before `exercise` says which command creates the file."""
    result = runner.invoke(app, ["check", LAB, "--dir", str(tmp_path / "nowhere")])
    assert result.exit_code == 1 and f"airoad exercise {LAB}" in result.output


def test_stub_importing_the_reference_does_not_pass(tmp_path):
    """`from <the reference> import *` is refused while grading: the lab stays `learning`."""
    result = check(tmp_path, f"from {MODULE} import *  # noqa: F403\n")
    assert result.exit_code == 1
    assert f"imports {MODULE}, the reference this lab asks you to write" in result.output
    assert state_of(LAB) != PASSED
