"""The lab anatomy (docs/LAB_ANATOMY.md), checked for EVERY built catalog entry, future ones too.

Reference imports; grader and runner test files exist and follow the naming; every grader test
takes `impl` and has a one-line docstring; runners follow the kit (ranges declared, quick and
full configs valid, no matplotlib backend switching); the lesson has the six frozen headings
and names its reference and runner; the stub generates; and (slow) the untouched stub fails
every grader test except the few that only exercise `__init__`.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from airoad.catalog import load_catalog
from airoad.labs.kit import field_rules, validate_config
from airoad.labs.stubs import make_stub

REPO = Path(__file__).resolve().parents[2]
BUILT = [lab for lab in load_catalog().labs if lab.built]
IDS = [lab.id for lab in BUILT]

LESSON_HEADINGS = (
    "What you build",
    "The key idea",
    "Run it",
    "What the figures show",
    "Expected numbers",
    "Try next",
)


def _mod(lab_id: str) -> str:
    return lab_id.replace("-", "_")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _test_functions(tree: ast.Module) -> list[ast.FunctionDef]:
    """Top-level test functions and test methods of Test* classes."""
    found = []
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name.startswith("test"):
            found.append(node)
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            found += [
                n for n in node.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test")
            ]
    return found


@pytest.fixture(params=BUILT, ids=IDS)
def lab(request):
    return request.param


def test_reference_modules_import(lab):
    """Every reference module of a built lab imports and lives in a topic package."""
    for module in lab.reference:
        assert re.fullmatch(r"airoad\.[a-z_]+\.[a-z_0-9]+", module), f"{lab.id}: {module}"
        importlib.import_module(module)


def test_grader_files_follow_the_naming(lab):
    """One grader file per reference module: tests/<topic>/test_<name>.py, in the same order."""
    expected = []
    for module in lab.reference:
        _, topic, name = module.split(".")
        expected.append(f"tests/{topic}/test_{name}.py")
    assert list(lab.tests) == expected, f"{lab.id}: tests {list(lab.tests)}, expected {expected}"
    if len(lab.reference) == 1:
        name = lab.reference[0].rsplit(".", 1)[1]
        assert name == _mod(lab.id), f"{lab.id}: a single reference module is named {_mod(lab.id)}"
    for test in lab.tests:
        assert (REPO / test).is_file(), f"{lab.id}: {test} is missing"


def test_every_grader_test_takes_impl_and_has_a_one_line_docstring(lab):
    """Each grader test takes `impl` (so it grades the learner) and carries a one-line hint."""
    for module, test in zip(lab.reference, lab.tests):
        tree = _tree(REPO / test)
        refs = [
            n.value.value
            for n in tree.body
            if isinstance(n, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "REFERENCE" for t in n.targets)
            and isinstance(n.value, ast.Constant)
        ]
        assert refs == [module], f"{test}: REFERENCE is {refs}, expected ['{module}']"
        tests = _test_functions(tree)
        assert tests, f"{test} has no tests"
        for fn in tests:
            args = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
            assert "impl" in args, f"{test}::{fn.name} does not take the `impl` fixture"
            doc = ast.get_docstring(fn) or ""
            assert doc.strip(), f"{test}::{fn.name} has no docstring (the learner's hint)"
            assert len(doc.strip().splitlines()) == 1, f"{test}::{fn.name}: docstring not one line"


def test_runner_follows_the_kit(lab):
    """The runner has Config/QUICK/NOTES/run, declares ranges, and its configs are valid."""
    runner = importlib.import_module(lab.runner_module)
    path = Path(runner.__file__)
    assert path.name == f"{_mod(lab.id)}.py"
    for name in ("Config", "QUICK", "NOTES", "run"):
        assert hasattr(runner, name), f"{lab.runner_module} defines no {name}"
    assert dataclasses.is_dataclass(runner.Config), f"{lab.id}: Config is not a dataclass"
    assert runner.Config.__dataclass_params__.frozen, f"{lab.id}: Config is not frozen"
    hints = {f.name: f.type for f in dataclasses.fields(runner.Config)}
    for name, rules in field_rules(runner.Config).items():
        kind = str(hints[name])
        if "bool" in kind:
            continue
        if "str" in kind and "tuple" not in kind:
            continue  # free text is allowed; fixed sets should use choices
        assert rules, f"{lab.id}: Config.{name} declares no range (use kit.param(..., ge=...))"
    unknown = set(runner.QUICK) - set(hints)
    assert not unknown, f"{lab.id}: QUICK names unknown keys {unknown}"
    validate_config(runner.Config())
    validate_config(runner.Config(**runner.QUICK))
    assert "matplotlib.use(" not in path.read_text(encoding="utf-8"), (
        f"{lab.id}: the runner switches the matplotlib backend; `airoad run` does that"
    )


def test_runner_test_file_exists(lab):
    """The runner's test is tests/labs/runners/test_<mod>_runner.py and runs the quick config."""
    path = REPO / "tests" / "labs" / "runners" / f"test_{_mod(lab.id)}_runner.py"
    assert path.is_file(), f"{lab.id}: {path.relative_to(REPO)} is missing"
    assert "QUICK" in path.read_text(encoding="utf-8"), f"{path.name} never uses the quick config"


def test_lesson_has_the_frozen_headings(lab):
    """The lesson has a title, then exactly the six frozen level-2 headings, in order."""
    text = lab.lesson_path.read_text(encoding="utf-8")
    body = re.sub(r"```.*?```", "", text, flags=re.S)  # headings inside code blocks don't count
    assert body.lstrip().startswith("# "), f"{lab.id}: the lesson must start with '# <title>'"
    found = tuple(re.findall(r"^## (.+?)\s*$", body, flags=re.M))
    assert found == LESSON_HEADINGS, f"{lab.id}: headings {found}, expected {LESSON_HEADINGS}"


def test_lesson_names_reference_and_runner(lab):
    """The lesson points at the reference module(s) and the runner by path."""
    text = lab.lesson_path.read_text(encoding="utf-8")
    for module in lab.reference:
        path = "src/" + module.replace(".", "/") + ".py"
        assert path in text, f"{lab.id}: the lesson never names {path}"
    runner = f"src/airoad/labs/runners/{_mod(lab.id)}.py"
    assert runner in text, f"{lab.id}: the lesson never names {runner}"


def test_stub_generates(lab):
    """`airoad exercise` can make a stub of every reference module, and it compiles."""
    for module in lab.reference:
        source = Path(importlib.import_module(module).__file__).read_text(encoding="utf-8")
        stub = make_stub(source)
        compile(stub, f"<stub of {module}>", "exec")
        assert "NotImplementedError" in stub, f"{module}: the stub has nothing to implement"
