"""`airoad check`: grade a learner's file with the lab's own tests, in a child process."""

from __future__ import annotations

import ast
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from airoad.catalog.progress import LEARNING, PASSED, record, state_of
from airoad.errors import AiroadError
from airoad.home import repo_root
from airoad.labs.exercise import workspace_file
from airoad.labs.learner import ENV_VAR
from airoad.labs.runner import built_entry, check_datasets


@dataclass
class TestOutcome:
    name: str
    passed: bool
    hint: str = ""  # what the test checks (its docstring)
    reason: str = ""  # why it failed, one line


@dataclass
class CheckReport:
    lab_id: str
    files: dict[str, Path]
    problem: str = ""  # set when the file could not even be loaded
    outcomes: list[TestOutcome] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problem and bool(self.outcomes) and all(o.passed for o in self.outcomes)


def learner_files(lab_id: str, directory: Path | None, file: Path | None) -> dict[str, Path]:
    """Map each reference module of the lab to the learner's file that replaces it."""
    entry = built_entry(lab_id)
    if file is not None:
        if len(entry.reference) != 1:
            raise AiroadError(f"lab '{lab_id}' has {len(entry.reference)} modules; use --dir")
        files = {entry.reference[0]: file}
    else:
        directory = directory or Path("workspace")
        files = {m: workspace_file(directory, m) for m in entry.reference}
    for path in files.values():
        if not path.is_file():
            raise AiroadError(f"{path} does not exist: run `airoad exercise {lab_id}` to create it")
    return {m: p.resolve() for m, p in files.items()}


def suite_hash(test_paths: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in sorted(test_paths) + [repo_root() / "tests" / "conftest.py"]:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def _hints(test_path: Path) -> dict[str, str]:
    hints = {}
    for node in ast.walk(ast.parse(test_path.read_text(encoding="utf-8"))):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith(
            "test"
        ):
            doc = ast.get_docstring(node) or ""
            hints[node.name] = doc.strip().splitlines()[0] if doc.strip() else ""
    return hints


def _reason(element: ET.Element, per_test_timeout: float) -> str:
    message = (element.get("message") or element.text or "").strip()
    if "Timeout" in message:
        return f"took longer than {per_test_timeout:g} s: an endless loop, or a loop over samples?"
    first = message.splitlines()[0] if message else element.tag
    for prefix in ('failed on setup with "', 'failed on teardown with "'):
        if first.startswith(prefix):
            first = first[len(prefix) :].rstrip('"')
    return first if len(first) <= 200 else first[:197] + "..."


def parse_junit(xml_path: Path, hints: dict[str, str], timeout: float) -> list[TestOutcome]:
    outcomes = []
    for case in ET.parse(xml_path).getroot().iter("testcase"):
        name = case.get("name", "?")
        bad = case.find("failure")
        if bad is None:
            bad = case.find("error")
        if case.find("skipped") is not None:
            continue
        hint = hints.get(name.split("[")[0], "")
        outcomes.append(
            TestOutcome(name, bad is None, hint, "" if bad is None else _reason(bad, timeout))
        )
    return outcomes


def _child_env(files: dict[str, Path]) -> dict[str, str]:
    env = dict(os.environ)
    env[ENV_VAR] = json.dumps({m: str(p) for m, p in files.items()})
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    return env


def _preflight(files: dict[str, Path], timeout: float) -> str:
    for module, path in files.items():
        try:
            done = subprocess.run(
                [sys.executable, "-m", "airoad.labs.preflight", str(path), module],
                capture_output=True,
                text=True,
                timeout=timeout,
                env=_child_env({}),
                cwd=repo_root(),
            )
        except subprocess.TimeoutExpired:
            return (
                f"importing {path.name} did not finish within {timeout:g} s: "
                f"is there an endless loop at module level?"
            )
        lines = done.stdout.strip().splitlines()
        if done.returncode != 0 or not lines:
            return f"{path.name} crashed the Python process while loading (exit code {done.returncode})"
        verdict = json.loads(lines[-1])
        if not verdict["ok"]:
            return verdict["problem"]
    return ""


def run_check(
    lab_id: str,
    directory: Path | None = None,
    file: Path | None = None,
    per_test_timeout: float = 60.0,
    total_timeout: float = 900.0,
) -> CheckReport:
    entry = built_entry(lab_id)
    files = learner_files(lab_id, directory, file)
    check_datasets(entry)  # one line naming the fetch command, not one per test
    report = CheckReport(lab_id, files)
    report.problem = _preflight(files, per_test_timeout)
    tests = [repo_root() / t for t in entry.tests]
    if not report.problem:
        hints: dict[str, str] = {}
        for t in tests:
            hints.update(_hints(t))
        with tempfile.TemporaryDirectory(prefix="airoad-check-") as tmp:
            xml_path = Path(tmp) / "junit.xml"
            cmd = [
                sys.executable,
                "-m",
                "pytest",
                *map(str, tests),
                "-q",
                "-p",
                "no:cacheprovider",
                f"--junitxml={xml_path}",
                f"--timeout={per_test_timeout:g}",
            ]
            try:
                subprocess.run(
                    cmd,
                    capture_output=True,
                    text=True,
                    timeout=total_timeout,
                    env=_child_env(files),
                    cwd=repo_root(),
                )
            except subprocess.TimeoutExpired:
                report.problem = (
                    f"the tests did not finish within {total_timeout:g} s; "
                    f"look for an endless loop in your code"
                )
            if not report.problem:
                if not xml_path.exists():
                    report.problem = "the test run crashed before reporting (your code may have killed the process)"
                else:
                    report.outcomes = parse_junit(xml_path, hints, per_test_timeout)
    if report.passed:
        record(lab_id, PASSED, suite=suite_hash(tests))
    elif state_of(lab_id) != PASSED:
        record(lab_id, LEARNING)
    return report
