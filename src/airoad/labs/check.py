"""`airoad check`: grade a learner's file with the lab's own tests, boxed in a child process.

1. The learner's files are loaded once in a boxed preflight child (syntax, import errors,
   missing names, endless loops at module level), each problem in one sentence.
2. pytest runs the lab's graders in a boxed child with the `grading_plugin`, which reports every
   collected test id and each test's outcome as signed records (see grading_box).
3. The parent stops a test that outlives the per-test limit, or the group when it passes the
   memory, CPU or output limit, by killing the process group; the stopped test fails with the
   limit's sentence, and a new child runs the tests not yet reported.
4. `passed` needs every collected test reported passed, no test missing or extra, and pytest's
   exit status 0; the verdict is recorded in the progress store.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path

from airoad.catalog.progress import LEARNING, PASSED, record, state_of
from airoad.errors import AiroadError
from airoad.home import repo_root
from airoad.labs import grading_box as box
from airoad.labs.exercise import workspace_file
from airoad.labs.grading_box import Limits
from airoad.labs.learner import ENV_VAR, decode_source, guard_policy
from airoad.labs.runner import built_entry, check_datasets

DEFAULT_TEST_SECONDS = 60.0
DEFAULT_MEMORY_MB = 2048.0
DEFAULT_OUTPUT_MB = 10.0


@dataclass
class TestOutcome:
    name: str
    passed: bool
    hint: str = ""  # what the test checks (its docstring)
    reason: str = ""  # why it failed: a line, then maybe a few lines of detail


@dataclass
class CheckReport:
    lab_id: str
    files: dict[str, Path]
    problem: str = ""  # set when the grading itself could not be completed or trusted
    outcomes: list[TestOutcome] = field(default_factory=list)
    limits: Limits | None = None

    @property
    def passed(self) -> bool:
        return not self.problem and bool(self.outcomes) and all(o.passed for o in self.outcomes)


# ------------------------------------------------------------------ inputs


def _positive(value: float | None, flag: str, unit: str) -> float | None:
    if value is None:
        return None
    if not (math.isfinite(value) and value > 0):
        raise AiroadError(f"{flag} must be a positive number of {unit}, not {value:g}")
    return float(value)


def resolve_limits(
    entry,
    timeout: float | None = None,
    memory_mb: float | None = None,
    cpu_seconds: float | None = None,
    output_mb: float | None = None,
) -> Limits:
    """The options given, else the lab's own catalog limits, else the defaults."""
    return Limits(
        test_seconds=_positive(timeout, "--timeout", "seconds per test")
        or getattr(entry, "check_test_timeout", None)
        or DEFAULT_TEST_SECONDS,
        memory_mb=_positive(memory_mb, "--memory-mb", "megabytes")
        or getattr(entry, "check_memory_mb", None)
        or DEFAULT_MEMORY_MB,
        cpu_seconds=_positive(cpu_seconds, "--cpu-seconds", "seconds"),
        output_mb=_positive(output_mb, "--output-mb", "megabytes") or DEFAULT_OUTPUT_MB,
    )


def _unreadable(path: Path) -> str:
    data = path.read_bytes()
    try:
        decode_source(data)
    except (UnicodeDecodeError, SyntaxError) as exc:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as bad:
            byte = bad.object[bad.start : bad.start + 1].hex()
            return (
                f"{path} is not UTF-8 text (byte 0x{byte} at offset {bad.start}): "
                f"save it as UTF-8 and check again"
            )
        return f"{path} cannot be read as Python source: {getattr(exc, 'msg', exc)}"
    return ""


def learner_files(lab_id: str, directory: Path | None, file: Path | None) -> dict[str, Path]:
    """Map each reference module of the lab to the learner's file that replaces it."""
    entry = built_entry(lab_id)
    if file is not None:
        if len(entry.reference) != 1:
            raise AiroadError(f"lab '{lab_id}' has {len(entry.reference)} modules; use --dir")
        if file.is_dir():
            raise AiroadError(f"--file {file} is a folder: give one .py file, or use --dir")
        files = {entry.reference[0]: file}
    else:
        directory = directory or Path("workspace")
        if directory.exists() and not directory.is_dir():
            raise AiroadError(f"--dir {directory} is a file, not a folder")
        files = {m: workspace_file(directory, m) for m in entry.reference}
    for path in files.values():
        if path.is_dir():
            raise AiroadError(f"{path} is a folder, not a Python file")
        if not path.is_file():
            raise AiroadError(f"{path} does not exist: run `airoad exercise {lab_id}` to create it")
        problem = _unreadable(path)
        if problem:
            raise AiroadError(problem)
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


# ------------------------------------------------------------------ the box


@contextlib.contextmanager
def _box_dirs():
    root = Path(tempfile.mkdtemp(prefix="airoad-check-"))
    try:
        (root / "work").mkdir()
        (root / "tmp").mkdir()
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


@contextlib.contextmanager
def _interruptible():
    """SIGTERM and SIGHUP end the grading like Ctrl-C, so the box is torn down on the way out;
    further signals are ignored until it is."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    old = {s: signal.getsignal(s) for s in signals}

    def stop(signum, frame):
        for s in signals:
            signal.signal(s, signal.SIG_IGN)
        raise KeyboardInterrupt

    for s in signals:
        signal.signal(s, stop)
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def _child_env(root: Path, files: dict[str, Path]) -> dict[str, str]:
    env = dict(os.environ)
    env.pop(box.BOX_FD_ENV, None)
    env[ENV_VAR] = json.dumps({m: str(p) for m, p in files.items()})
    env.setdefault("OMP_NUM_THREADS", "1")
    env["MPLBACKEND"] = "Agg"
    env["TMPDIR"] = str(root / "tmp")
    return env


def _ended(run: box.BoxRun, limits: Limits) -> str:
    """One sentence: why the run ended before its tests finished."""
    if run.stopped == "test":
        return (
            f"took longer than {limits.test_seconds:g} s, the per-test limit (--timeout): "
            f"an endless loop, or a loop over samples?"
        )
    if run.stopped == "memory":
        return (
            f"the test processes used more than {limits.memory_mb:g} MB of memory, "
            f"the limit (--memory-mb)"
        )
    if run.stopped == "output":
        return f"printed more than {limits.output_mb:g} MB, the output limit (--output-mb)"
    if run.stopped == "cpu":
        return (
            f"the grading used more than {run.cpu_limit:g} s of CPU time, the limit (--cpu-seconds)"
        )
    if run.stopped == "deadline":
        return "the test process stopped responding (the grading's overall time limit passed)"
    if run.stopped == "exit":
        return (
            f"the test process did not exit within {limits.exit_grace:g} s after the tests "
            f"finished: does your code leave a thread or an atexit handler running?"
        )
    code = run.exit_code
    if code is not None and code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return f"the test process was killed by {name} (a crash in native code, or your code?)"
    return f"the test process exited with code {code}: does your code call sys.exit or os._exit?"


def _tail(run: box.BoxRun, lines: int = 3) -> str:
    last = [ln for ln in run.output_tail.splitlines() if ln.strip()][-lines:]
    return ("; last output: " + " | ".join(last)) if last else ""


def preflight(root: Path, files: dict[str, Path], limits: Limits, policy: dict) -> str:
    """'' when every file loads and defines the lab's names, else one sentence."""
    for module, path in files.items():
        config = {"file": str(path), "reference": module, "guard": policy}
        run = box.run_boxed(
            [sys.executable, "-m", "airoad.labs.preflight"],
            env=_child_env(root, {}),
            cwd=str(root / "work"),
            limits=limits,
            config=config,
            stop_on="verdict",
        )
        verdict = run.last("verdict")
        if run.forged:
            return f"loading {path.name} wrote to the grader's report channel; not graded"
        if verdict is not None:
            if not verdict.get("ok"):
                return str(verdict.get("problem"))
            continue
        if run.stopped == "test":
            return (
                f"importing {path.name} did not finish within {limits.test_seconds:g} s: "
                f"is there an endless loop at module level?"
            )
        return f"loading {path.name}: {_ended(run, limits)}{_tail(run)}"
    return ""


def _pytest_command(tests: list[Path], root: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        *map(str, tests),
        "-q",
        "--tb=no",  # the reasons travel as records; the terminal output only counts as output
        "-s",  # the learner's prints reach the box's output limit, not pytest's buffers
        "-p",
        "no:cacheprovider",
        "-p",
        "airoad.labs.grading_plugin",
        f"--basetemp={root / 'tmp' / 'pytest'}",
    ]


def run_tests(
    root: Path, report: CheckReport, tests: list[Path], limits: Limits, policy: dict
) -> None:
    """Run the graders until every collected test is reported (or the grading must stop)."""
    hints: dict[str, str] = {}
    for t in tests:
        hints.update(_hints(t))
    collected: list[str] | None = None
    results: dict[str, dict] = {}
    cpu_used, runs = 0.0, 0
    while True:
        runs, n = runs + 1, len(collected or ())
        run = box.run_boxed(
            _pytest_command(tests, root),
            env=_child_env(root, report.files),
            cwd=str(root / "work"),
            limits=limits,
            config={"guard": policy, "skip": sorted(results)},
            cpu_before=cpu_used,
            cpu_limit=limits.cpu_seconds
            or (limits.startup_seconds * runs + limits.test_seconds * n if collected else None),
            first_test_extra=limits.startup_seconds,
        )
        cpu_used += run.cpu_seconds
        if run.forged:
            report.problem = "something other than the grader wrote to its report channel"
            break
        error = run.last("collecterror")
        if error is not None:
            report.problem = f"the lab's tests could not be collected: {error['reason']}"
            break
        got = run.last("collected")
        if got is None:
            report.problem = f"the tests did not start: {_ended(run, limits)}{_tail(run)}"
            break
        if collected is None:
            collected = list(got["ids"])
        elif got["ids"] != collected:
            report.problem = "the graders collected different tests in a second run"
            break
        results.update({r["id"]: r for r in run.records if r.get("t") == "end"})
        finished = run.last("finished")
        if finished is not None and not run.stopped:
            _check_agreement(report, run, finished, results, collected)
            break
        if run.running is None or run.running in results:
            report.problem = _ended(run, limits) + _tail(run)
            break
        results[run.running] = {"outcome": "failed", "reason": _ended(run, limits)}
        if run.stopped in ("cpu", "deadline"):
            report.problem = _ended(run, limits)
            break
        if not set(collected) - set(results):
            break
    for test_id in collected or ():
        name = test_id.split("::", 1)[-1]
        hint = hints.get(name.split("[")[0].split("::")[-1], "")
        got = results.get(test_id)
        if got is None:
            report.outcomes.append(TestOutcome(name, False, hint, "not run: the grading stopped"))
        else:
            passed = got.get("outcome") == "passed"
            report.outcomes.append(TestOutcome(name, passed, hint, str(got.get("reason", ""))))


def _check_agreement(report, run, finished: dict, results: dict, collected: list[str]) -> None:
    """The reported ids must be the collected ones, and pytest's exit status must agree."""
    if not collected:
        report.problem = "the lab's graders define no tests"
    elif set(results) != set(collected):
        report.problem = "the tests reported are not the tests the graders define"
    elif all(r.get("outcome") == "passed" for r in results.values()) and (
        finished.get("exitstatus") != 0 or run.exit_code != 0
    ):
        report.problem = (
            f"every test reported passing, but pytest ended with status "
            f"{finished.get('exitstatus')} and the process with code {run.exit_code}"
        )


def grade(
    lab_id: str, files: dict[str, Path], tests: list[Path], limits: Limits, references: list[str]
) -> CheckReport:
    """Preflight, then the graders, boxed; the temp folders go whatever happens."""
    report = CheckReport(lab_id, files, limits=limits)
    policy = guard_policy(references, files)
    with _interruptible(), _box_dirs() as root:
        report.problem = preflight(root, files, limits, policy)
        if not report.problem:
            run_tests(root, report, tests, limits, policy)
    return report


def run_check(
    lab_id: str,
    directory: Path | None = None,
    file: Path | None = None,
    timeout: float | None = None,
    memory_mb: float | None = None,
    cpu_seconds: float | None = None,
    output_mb: float | None = None,
) -> CheckReport:
    entry = built_entry(lab_id)
    limits = resolve_limits(entry, timeout, memory_mb, cpu_seconds, output_mb)
    files = learner_files(lab_id, directory, file)
    check_datasets(entry)  # one line naming the fetch command, not one per test
    tests = [repo_root() / t for t in entry.tests]
    report = grade(lab_id, files, tests, limits, list(entry.reference))
    if report.passed:
        record(lab_id, PASSED, suite=suite_hash(tests))
    elif state_of(lab_id) != PASSED:
        record(lab_id, LEARNING)
    return report
