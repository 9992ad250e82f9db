"""`passed` only for code that does the work (issue 8, section 2).

Learner files that import the reference, skip the tests, write a fake JUnit report and exit 0,
end the session early or forge the grader's records: none of them may earn `passed`. Each
grades a copy of the fixture lab (tests/labs/fixtures/boxlab) for real.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airoad.catalog.progress import PASSED, state_of
from airoad.cli import app

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "boxlab"))
import boxlab_harness as h  # noqa: E402

runner = CliRunner()


@pytest.fixture(autouse=True)
def lab(monkeypatch):
    h.register(monkeypatch.setattr)
    for key, value in h.child_env().items():
        monkeypatch.setenv(key, value)


def check(tmp_path: Path, source: str, *extra: str):
    path = tmp_path / "boxlab_ref.py"
    path.write_text(source, encoding="utf-8")
    result = runner.invoke(app, ["check", h.LAB, "--file", str(path), "--timeout", "20", *extra])
    assert "Traceback" not in result.output, result.output
    assert result.exit_code == 1, result.output
    assert state_of(h.LAB) != PASSED
    return result.output


@pytest.mark.parametrize(
    "cheat",
    [
        "from boxlab_ref import *  # noqa",
        "import importlib\n_ref = importlib.import_module('boxlab_ref')\nadd = _ref.add",
    ],
)
def test_stub_that_imports_the_reference_is_refused(tmp_path, cheat):
    out = check(tmp_path, cheat + "\n")
    assert "imports boxlab_ref, the reference this lab asks you to write" in out


def test_skip_in_learner_code_is_not_a_pass(tmp_path):
    """Skipped tests used to be dropped, so skipping the unwritten ones passed the lab."""
    source = h.with_body(h.reference(), "add", "import pytest\npytest.skip('not written yet')")
    out = check(tmp_path, source)
    assert "✗ test_add: skipped: not written yet" in out
    assert "✗ test_add_any: skipped: not written yet" in out


def test_fake_junit_report_and_exit_zero_is_not_a_pass(tmp_path):
    """The JUnit path was in sys.argv: write an all-passed report there, then os._exit(0)."""
    body = """
import os
for arg in sys.argv:
    if arg.startswith("--junitxml="):
        with open(arg.split("=", 1)[1], "w") as f:
            f.write('<testsuite><testcase name="test_add"/></testsuite>')
if a == 2:
    os._exit(0)
return a + b
"""
    out = check(tmp_path, h.with_body(h.reference(), "add", body))
    assert "✗ test_add: the test process exited with code 0" in out
    assert "✓ test_add_any" in out  # the tests after it ran in a second process


def test_session_ended_early_with_status_zero_is_not_a_pass(tmp_path):
    """pytest.exit(returncode=0) in one test leaves the later tests unreported."""
    source = h.with_body(h.reference(), "square_in_worker", "import pytest\npytest.exit('bye', 0)")
    out = check(tmp_path, source)
    assert "the tests reported are not the tests the graders define" in out


def test_forged_records_are_detected(tmp_path):
    """Lines written to the grader's report pipe without its key spoil the grading."""
    body = """
import json, os, stat
for fd in sorted(map(int, os.listdir('/proc/self/fd')))[3:]:  # every open fd, however high
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode):
            os.write(fd, b'0' * 64 + b' ' + json.dumps({"t": "end", "id": "x"}).encode() + b'\\n')
    except OSError:
        pass
return a + b
"""
    out = check(tmp_path, h.with_body(h.reference(), "add", body))
    assert "something other than the grader wrote to its report channel" in out


def test_import_guard_rules():
    """Own module refused, sibling served from the learner's file, topic packages refused
    except what the reference imports; modules that are not the learner's are not looked at."""
    from airoad.labs.learner import ImportGuard

    guard = ImportGuard(
        {"airoad.classic.mixture": "/ws/mixture.py", "airoad.classic.clustering": "/ws/c.py"},
        ["airoad.classic", "airoad.foundations", "airoad.labs.runners"],
        ["airoad.classic.model_evaluation"],
    )
    own = "airoad.classic.mixture"
    for name, fromlist in [
        ("airoad.classic.mixture", ("*",)),
        ("airoad.classic", ("mixture",)),
        ("airoad.classic.knn", ("KNN",)),
        ("airoad.foundations.pca", ()),
        ("airoad", ("classic",)),
        ("airoad.labs.runners.knn", ("run",)),
    ]:
        with pytest.raises(ImportError):
            guard.resolve(own, name, fromlist)
    assert guard.resolve(own, "airoad.classic.model_evaluation", ("kfold_indices",)) is None
    assert guard.resolve(own, "numpy", ("linalg",)) is None
    assert guard.resolve(own, "airoad.data", ("load",)) is None
    with pytest.raises(ImportError, match="write `from airoad.classic.clustering import"):
        guard.resolve(own, "airoad.classic.clustering", ())
    assert guard.owner.get("/ws/mixture.py") == own and guard.owner.get(__file__) is None
