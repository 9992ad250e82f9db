"""Coverage-based test selection for tools/mutate.py: which grader tests can see a mutant.

During the unmutated baseline of a lab, `Recorder` (a pytest plugin) traces the lines of the
lab's reference copies (the files AIROAD_LEARNER_FILES points at, so the traced paths are the
copies, in the line numbers of their normalised source) that each test item executes, and how
long each item takes. A line run while a fixture is set up also counts for every later item that
uses that fixture (a module-scoped fixture runs once, but its value reaches all its users).

A mutant changes exactly one line of the normalised source and keeps the line count (checked in
`changed_line`), so a mutant can only change the outcome of the items that executed that line:
`Selection.tests_for` names them, fastest first. Lines that run at import (outside any function
body) or outside any test item (collection) count as executed by every test. A mutant whose line
no test executed is a survivor without running anything. The traced run goes on past a failure
(a timing test can fail when traced): a test that failed there is selected for every mutant, and
so is a test that uses a fixture its module names in WORKER_FIXTURES (its work runs in worker
processes, which are not traced).
"""

from __future__ import annotations

import ast
import json
import os
import sys
import threading
from pathlib import Path

import pytest


class Recorder:
    """pytest plugin: each test item's duration and, once `start`ed, the lines of `files` it
    executes (the tracing slows the run, so durations come from an untraced run)."""

    def __init__(self, files=()):
        self.paths = {}  # co_filename as traced -> the file as given
        for f in files:
            self.paths[str(f)] = self.paths[os.path.realpath(f)] = str(f)
        self.stack: list[set] = [set()]  # lines of the item / fixtures being run now
        self.outside = self.stack[0]  # lines run outside any item (collection)
        self.fixtures: dict[int, set] = {}  # id(fixturedef) -> lines its setup ran (wider
        # scopes than function only: their value is cached and reaches later items)
        self.items: dict[str, dict] = {}

    def _trace(self, frame, event, arg):
        if frame.f_code.co_filename in self.paths:
            return self._lines
        return None

    def _lines(self, frame, event, arg):
        if event == "line":
            self.stack[-1].add((frame.f_code.co_filename, frame.f_lineno))
        return self._lines

    def start(self) -> None:
        threading.settrace(self._trace)
        sys.settrace(self._trace)

    def stop(self) -> None:
        sys.settrace(None)
        threading.settrace(None)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        self.stack.append(set())
        try:
            yield
        finally:
            lines = self.stack.pop()
            if fixturedef.scope != "function":  # a function's fixture runs again in each item
                self.fixtures.setdefault(id(fixturedef), set()).update(lines)
            self.stack[-1].update(lines)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_protocol(self, item, nextitem):
        self.stack.append(set())
        try:
            yield
        finally:
            lines = self.stack.pop()
            for defs in item._fixtureinfo.name2fixturedefs.values():
                for fixturedef in defs:
                    lines |= self.fixtures.get(id(fixturedef), set())
            entry = self.items.setdefault(item.nodeid, {"seconds": 0.0})
            entry |= {"lines": lines, "path": str(item.path)}
            # Code run in worker processes (the scale labs' gloo groups) is not traced here: an
            # item using a fixture its module lists in WORKER_FIXTURES sees every mutant.
            workers = getattr(getattr(item, "module", None), "WORKER_FIXTURES", ())
            if set(workers) & set(getattr(item, "fixturenames", ())):
                entry["workers"] = True

    def pytest_runtest_logreport(self, report):
        entry = self.items.setdefault(report.nodeid, {"seconds": 0.0})
        entry["seconds"] += report.duration
        entry["failed"] = entry.get("failed", False) or report.failed

    def _by_file(self, lines) -> dict[str, list[int]]:
        out: dict[str, set] = {}
        for filename, line in lines:
            out.setdefault(self.paths[filename], set()).add(line)
        return {f: sorted(ls) for f, ls in out.items()}

    def save(self, path: Path) -> None:
        data = {
            "outside": self._by_file(self.outside),
            "items": {
                nodeid: {
                    "seconds": round(e["seconds"], 4),
                    "path": e.get("path", ""),
                    "failed": e.get("failed", False) or e.get("workers", False),
                    "lines": self._by_file(e.get("lines", ())),
                }
                for nodeid, e in self.items.items()
            },
        }
        path.write_text(json.dumps(data), encoding="utf-8")


class Select:
    """pytest plugin: run only these node ids, in this order (all tests if one is missing)."""

    def __init__(self, nodeids: list[str]):
        self.order = {nodeid: i for i, nodeid in enumerate(nodeids)}

    def pytest_collection_modifyitems(self, session, config, items):
        if not set(self.order) <= {item.nodeid for item in items}:
            print(f"mutate: selected tests missing, running all: {sorted(self.order)}")
            return
        kept = sorted(
            (i for i in items if i.nodeid in self.order), key=lambda i: self.order[i.nodeid]
        )
        config.hook.pytest_deselected(items=[i for i in items if i.nodeid not in self.order])
        items[:] = kept


def import_time_lines(source: str) -> set[int]:
    """Lines of `source` that run when it is imported: everything outside function bodies."""
    tree = ast.parse(source)
    inside = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inside.update(range(node.body[0].lineno, node.end_lineno + 1))
    return set(range(1, len(source.splitlines()) + 1)) - inside


def changed_line(original: str, mutant: str) -> int | None:
    """The one line (1-based) where `mutant` differs from `original`; None if the mutation
    changed the number of lines (or nothing), then every test is selected."""
    old, new = original.splitlines(), mutant.splitlines()
    diff = [i for i, (a, b) in enumerate(zip(old, new), 1) if a != b]
    return diff[0] if len(old) == len(new) and len(diff) == 1 else None


class Selection:
    """A lab's baseline coverage: which items executed which lines of which copy."""

    def __init__(self, timing: Path, traced: Path, copies: list[str]):
        """From the untraced baseline's `timing` and the traced baseline's lines."""
        data = json.loads(traced.read_text(encoding="utf-8"))
        times = json.loads(timing.read_text(encoding="utf-8"))["items"]
        self.seconds_of = {n: times.get(n, e)["seconds"] for n, e in data["items"].items()}
        self.path_of = {n: e["path"] for n, e in data["items"].items()}
        self.lines = {
            n: {f: set(ls) for f, ls in e["lines"].items()} for n, e in data["items"].items()
        }
        self.fastest = sorted(self.seconds_of, key=lambda n: (self.seconds_of[n], n))
        # An item that failed only when traced (a timing test, slowed by the tracing) may not
        # have run all its lines: it is selected for every mutant.
        self.always = {n for n, e in data["items"].items() if e.get("failed")}
        self.everywhere = {
            copy: import_time_lines(Path(copy).read_text(encoding="utf-8"))
            | set(data["outside"].get(copy, []))
            for copy in copies
        }

    def files(self, nodeids: list[str]) -> list[str]:
        """The grader files the node ids live in (only those are collected)."""
        return list(dict.fromkeys(self.path_of[n] for n in nodeids))

    def overhead(self, baseline_seconds: float) -> float:
        """The part of the untraced baseline outside the items (start-up, collection)."""
        return max(0.0, baseline_seconds - self.seconds(self.fastest))

    def seconds(self, nodeids) -> float:
        return sum(self.seconds_of[n] for n in nodeids)

    def tests_for(self, copy: str, line: int | None) -> list[str]:
        """The items that executed `line` of `copy` (and those that failed when traced), fastest
        first; all when line is None or runs at import; [] when no test executed it."""
        if line is None or line in self.everywhere[copy]:
            return list(self.fastest)
        return [n for n in self.fastest if n in self.always or line in self.lines[n].get(copy, ())]
