"""The pytest plugin `airoad check` loads into its grading child (`-p airoad.labs.grading_plugin`).

At import, which pytest does before any conftest or test file, it takes the report channel
(see grading_box) and installs the import guard, so both are in place before the learner's
file is loaded by the `impl` fixture. Then it reports, as signed records:

- `collected`: every test id the graders define, and the ones this run will execute (a re-run
  after a test was stopped skips the tests already reported);
- `start`, `call` (its setup is done) and `end` of each test, with the outcome and a reason;
- `finished` with pytest's exit status, once pytest has nothing left to do.

Inert when pytest runs without `airoad check` (no channel in the environment).
"""

from __future__ import annotations

import re

import pytest

from airoad.labs.grading_box import Channel
from airoad.labs.learner import ImportGuard

_channel = Channel.from_env()
_skip: frozenset[str] = frozenset()
_reports: list = []
if _channel is not None:
    ImportGuard.from_config(_channel.config["guard"]).install()
    _skip = frozenset(_channel.config.get("skip", ()))

_NUMPY_HEADERS = ("Not equal to", "Arrays are not", "Items are not")
MAX_LINE = 220


def _clip(text: str, limit: int = MAX_LINE) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(exc: BaseException) -> str:
    """A few lines saying why a test failed: the exception's own message, not just its type.

    A Hypothesis ExceptionGroup gives its first failure; an `np.testing` message keeps its
    header, its `err_msg` and the ACTUAL/DESIRED lines; Hypothesis' falsifying example is kept.
    """
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    if lines and lines[0].startswith(_NUMPY_HEADERS):
        keep = lines[:2] + [ln for ln in lines[2:] if ln.startswith(("ACTUAL", "DESIRED"))]
    else:
        keep = lines[:3]
    keep = [_clip(ln) for ln in keep] or [""]
    keep[0] = f"{type(exc).__name__}: {keep[0]}".rstrip(": ")
    for note in getattr(exc, "__notes__", ()):
        if isinstance(note, str) and note.startswith(("Falsifying", "Failing test case")):
            keep.append(_clip(note))
            break
    return "\n".join(keep)


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    text = longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)
    return "skipped: " + _clip(text.removeprefix("Skipped: "))


def _send(record: dict) -> None:
    if _channel is not None:
        _channel.send(record)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(session, config, items):
    ids = [item.nodeid for item in items]
    keep = [item for item in items if item.nodeid not in _skip]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid in _skip])
        items[:] = keep
    _send({"t": "collected", "ids": ids, "selected": [i.nodeid for i in keep]})


def pytest_collectreport(report):
    if report.failed:
        _send({"t": "collecterror", "where": report.nodeid, "reason": _clip(str(report.longrepr))})


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    if report.failed and call.excinfo is not None:
        report.airoad_reason = describe(call.excinfo.value)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    _send({"t": "call", "id": item.nodeid})  # setup is over: the call has the per-test limit
    return (yield)


def pytest_runtest_logreport(report):
    _reports.append(report)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    _reports.clear()
    _send({"t": "start", "id": item.nodeid})
    try:
        return (yield)
    finally:
        outcome, reason = "passed", ""
        for report in _reports:
            if report.failed:
                phase = "" if report.when == "call" else f"(in {report.when}) "
                outcome, reason = "failed", phase + getattr(report, "airoad_reason", "failed")
                break
            if report.skipped and outcome == "passed":
                outcome = "skipped"
                reason = "expected to fail" if hasattr(report, "wasxfail") else _skip_reason(report)
        if outcome == "passed" and not any(r.when == "call" for r in _reports):
            outcome, reason = "failed", "the test did not finish (the session ended during it)"
        _send({"t": "end", "id": item.nodeid, "outcome": outcome, "reason": reason})


_exitstatus: list[int] = []


def pytest_sessionfinish(session, exitstatus):
    _exitstatus.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """`finished` goes last, after the terminal summary: only the interpreter's exit is left."""
    if _exitstatus:
        _send({"t": "finished", "exitstatus": _exitstatus[-1]})
