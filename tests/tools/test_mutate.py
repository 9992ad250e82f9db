"""Platform tests of tools/mutate.py: the mutation operators, the fixed sample, the forked
grading of a toy module by a toy grader (killed, equivalent survivor, endless loop), and the
coverage-based test selection on a toy lab."""

from __future__ import annotations

import ast
import difflib
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

TOOLS = Path(__file__).resolve().parents[2] / "tools"
sys.path.insert(0, str(TOOLS))

import mutate  # noqa: E402
import mutation_coverage as cov  # noqa: E402
import mutation_ops as ops  # noqa: E402

EVERY_KIND = '''"""A module docstring with 1 + 2 in it."""
__all__ = ["f"]
LIMIT: int = 3


def f(a: int, b: float = 0.5, *, flag=True) -> float:
    """f's docstring: 0 < 1."""
    if not flag and a is None:
        return -a
    total = a + b * 2 - a / 4.0 // 1 ** 2
    total += 1
    if 0 <= a < LIMIT or a in (5, 6) or a != 7:
        return total
    if a is not None and a not in (8,) and a > 1 and a >= 0 and a == 9:
        raise ValueError(f"bad {a + 1}")
    print(a - 1)
    return max(total, 0)


if __name__ == "__main__":
    f(1 + 2)
'''

TOY = """def absolute(n):
    if n >= 0:
        return n
    return -n


def countdown(n):
    while n > 0:
        n -= 1
    return n


def add(a, b):
    return a + b
"""

TOY_TEST = """from airoad.labs.learner import load_implementation


def test_toy():
    impl = load_implementation("toy")
    assert impl.add(2, 3) == 5
    assert [impl.absolute(n) for n in (-2, 0, 3)] == [2, 0, 3]
    assert impl.countdown(3) == 0
"""


def test_every_point_changes_one_line_and_parses():
    """Each mutant parses and differs from the unparsed original on exactly one line."""
    points = ops.find_points(EVERY_KIND)
    kinds = {p.kind for p in points}
    assert kinds == {"binary", "compare", "boolean", "unary", "constant", "return"}
    original = ops.normalised(EVERY_KIND).splitlines()
    for point in points:
        mutant = ops.apply(EVERY_KIND, point)
        ast.parse(mutant)
        changed = [d for d in difflib.ndiff(original, mutant.splitlines()) if d[:2] in ("- ", "+ ")]
        assert len(changed) == 2, f"{point.key}: {changed}"
        line = cov.changed_line("\n".join(original), mutant)  # same line count: coverage maps
        assert line is not None and changed[0][2:] == original[line - 1]


def test_skipped_places_have_no_points():
    """Docstrings, annotations, defaults, __all__, f-strings, raise, print and __main__ are skipped."""
    lines = {p.line for p in ops.find_points(EVERY_KIND)}
    source = EVERY_KIND.splitlines()
    skipped = [
        i
        for i, text in enumerate(source, 1)
        if any(s in text for s in ('"""', "__all__", "def f", "raise", "print", "f(1 + 2)"))
    ]
    assert not lines & set(skipped)
    assert {p.change for p in ops.find_points("x = (0, 1, 5, 0.0, 0.25, True)")} == {
        "`0` -> `1`",
        "`1` -> `0`",
        "`5` -> `6`",
        "`0.0` -> `1.0`",
        "`0.25` -> `0.5`",
        "`True` -> `False`",
    }


def test_sample_is_fixed_by_lab_id_and_spread():
    """The same lab id draws the same sample; every module gets a share."""
    points = {"a": ops.find_points(EVERY_KIND), "b": ops.find_points(TOY)}
    first = ops.draw_sample("some-lab", points, 10)
    assert first == ops.draw_sample("some-lab", points, 10)
    assert len(first) == 10 and {m for m, _ in first} == {"a", "b"}
    assert first != ops.draw_sample("another-lab", points, 10)
    assert ops.quotas([3, 40, 0], 10) == [1, 9, 0]


def _grade(tmp_path, change: str, timeout: float) -> str:
    (tmp_path / "toy.py").write_text(TOY)
    (tmp_path / "test_toy.py").write_text(TOY_TEST)
    [point] = [p for p in ops.find_points(TOY) if p.change == change]
    mutant = tmp_path / "m" / "toy.py"
    mutant.parent.mkdir(exist_ok=True)
    mutant.write_text(ops.apply(TOY, point))
    job = mutate.Job(change, {"toy": str(mutant)}, "toy", timeout, tmp_path / f"{point.index}.log")
    policy = {"files": job.files, "blocked": [], "allowed": []}
    [(_, got)] = mutate.run_jobs([job], [str(tmp_path / "test_toy.py")], policy, tmp_path)
    return got["status"]


@pytest.mark.parametrize(
    "change, timeout, status",
    [
        ("`+` -> `-`", 60.0, "killed"),
        ("`>=` -> `>`", 60.0, "survived"),
        ("`-` -> `+`", 3.0, "timeout"),
    ],
)
def test_toy_mutants_are_graded_in_a_forked_child(tmp_path, change, timeout, status):
    """A behaviour change is killed, an equivalent mutant survives, an endless loop times out."""
    assert _grade(tmp_path, change, timeout) == status


TOY_LAB = """SCALE = 2


def double(n):
    return n * SCALE


def square(n):
    return n * n


def unused(n):
    return n - 1
"""

TOY_LAB_TEST = """import pytest

from airoad.labs.learner import load_implementation


@pytest.fixture(scope="module")
def impl():
    return load_implementation("toy")


@pytest.fixture(scope="module")
def squares(impl):
    return [impl.square(n) for n in range(4)]


def test_double(impl):
    assert impl.double(3) == 6


def test_squares(squares):
    assert squares == [0, 1, 4, 9]


def test_squares_again(squares):
    assert squares[3] == 9
"""


def test_selection_runs_only_the_tests_that_execute_the_mutated_line(tmp_path, monkeypatch):
    """Coverage names the tests per line (fixture lines too); an unexecuted line is not run."""
    graders = tmp_path / "test_toy_lab.py"
    graders.write_text(TOY_LAB_TEST)
    lab = SimpleNamespace(id="toy-lab", phase="toy", reference=["toy"], tests=[str(graders)])
    wanted = {(1, "`2` -> `3`"), (5, "`*` -> `/`"), (9, "`*` -> `/`"), (13, "`-` -> `+`")}
    points = [p for p in ops.find_points(TOY_LAB) if (p.line, p.change) in wanted]
    monkeypatch.setattr(
        mutate,
        "lab_sample",
        lambda entry, size: ({"toy": TOY_LAB}, [("toy", p) for p in points], 9),
    )
    monkeypatch.setattr(mutate, "warm_lab", lambda entry: None)
    policy = lambda refs, files: {"files": files, "blocked": [], "allowed": []}  # noqa: E731
    monkeypatch.setattr("airoad.labs.learner.guard_policy", policy)
    chosen, select = {}, mutate._select

    def spy(job, selection, nodeids, seconds):
        chosen[job.info["line"]] = [n.split("::")[1] for n in nodeids]
        select(job, selection, nodeids, seconds)

    monkeypatch.setattr(mutate, "_select", spy)
    result = mutate.grade_lab(lab, 4, 1, lambda text: None)
    by_line = {m["line"]: m for m in result["mutants"]}
    assert set(chosen[1]) == {  # a line run at import: every test
        "test_double",
        "test_squares",
        "test_squares_again",
    }
    assert chosen[5] == ["test_double"]
    assert set(chosen[9]) == {"test_squares", "test_squares_again"}
    assert chosen[13] == [] and by_line[13]["note"] == mutate.NOT_EXECUTED
    assert [by_line[n]["status"] for n in (1, 5, 9, 13)] == ["killed"] * 3 + ["survived"]
    assert by_line[5]["killed_by"].endswith("::test_double") and by_line[13]["seconds"] == 0


def test_selection_orders_by_time_and_keeps_tests_that_failed_when_traced(tmp_path):
    """Fastest first; a test that failed only under tracing is selected for every mutant."""
    copy = tmp_path / "toy.py"
    copy.write_text(ops.normalised(TOY_LAB))  # lines 3-4 double, 6-7 square, 9-10 unused
    items = {
        "t.py::slow": {"seconds": 2.0, "lines": {str(copy): [4, 7]}},
        "t.py::fast": {"seconds": 0.5, "lines": {str(copy): [4]}},
        "t.py::timing": {"seconds": 1.0, "lines": {}, "failed": True},
    }
    traced = {"outside": {}, "items": {n: e | {"path": "t.py"} for n, e in items.items()}}
    (tmp_path / "coverage.json").write_text(json.dumps(traced))
    (tmp_path / "timing.json").write_text(json.dumps({"items": items}))
    selection = cov.Selection(tmp_path / "timing.json", tmp_path / "coverage.json", [str(copy)])
    assert selection.tests_for(str(copy), 4) == ["t.py::fast", "t.py::timing", "t.py::slow"]
    assert selection.tests_for(str(copy), 7) == ["t.py::timing", "t.py::slow"]
    assert selection.tests_for(str(copy), 1) == selection.fastest  # runs at import
    assert selection.tests_for(str(copy), None) == selection.fastest
