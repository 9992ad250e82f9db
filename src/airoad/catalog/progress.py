"""The learner's progress, one JSON file under $AIROAD_HOME that is never lost.

States: `not started` (no record), `learning` (an exercise was written or a check failed),
`passed` (all grader tests passed; with a timestamp and the hash of the test suite) and
`skipped` (the learner chose to move on; later labs use the reference).

- Writes are read-modify-write under an exclusive lock (`progress.json.lock`), and the new file
  replaces the old atomically: concurrent writers never drop each other's entries.
- A store that cannot be read as `{"version": 1, "labs": {id: {"state": ...}}}` (bad JSON,
  `[]`, `null`, a string where an entry should be, an unknown state) is copied aside to
  `progress.json.bad-<time>`, the readable entries are kept, and one warning line says so.
- `record` never raises because the store cannot be written (read-only home, full disk): the
  failure waits in `unsaved()` for the CLI to report after the command's own output, so a
  `check`'s results are always shown. `save_state` is the strict form for `airoad progress`.
"""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

from airoad.errors import AiroadError
from airoad.home import file_lock, home, write_json_atomic

NOT_STARTED, LEARNING, PASSED, SKIPPED = "not started", "learning", "passed", "skipped"
STATES = (NOT_STARTED, LEARNING, PASSED, SKIPPED)
_STORED = (LEARNING, PASSED, SKIPPED)  # `not started` is the absence of an entry

_unsaved: list[str] = []


class ProgressNotSaved(AiroadError):
    """The progress store could not be written; the message says where and why."""


def progress_path() -> Path:
    return home() / "progress.json"


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + ".lock")


def _warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)


def _parse(raw: bytes) -> tuple[dict[str, dict], str]:
    """(the readable entries, what was wrong or '')."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        why = exc.msg if isinstance(exc, json.JSONDecodeError) else "not UTF-8 text"
        return {}, f"is not valid JSON ({why})"
    if not isinstance(data, dict) or not isinstance(data.get("labs"), dict):
        return {}, f'is JSON of the wrong shape ({type(data).__name__}, not {{"labs": {{...}}}})'
    labs, bad = {}, []
    for lab_id, entry in data["labs"].items():
        if isinstance(entry, dict) and entry.get("state") in _STORED:
            labs[lab_id] = entry
        else:
            bad.append(lab_id)
    return labs, (f"has unreadable entries for {', '.join(bad)}" if bad else "")


def _read(path: Path) -> tuple[dict[str, dict], str]:
    """Raises OSError when the file exists but cannot be read."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}, ""
    return _parse(raw)


def _set_aside(path: Path, labs: dict[str, dict], problem: str) -> None:
    """Copy an unreadable store to `progress.json.bad-<time>`, keep what could be read, say so."""
    backup = path.with_name(f"{path.name}.bad-{datetime.now():%Y%m%d-%H%M%S-%f}")
    shutil.copy2(path, backup)
    write_json_atomic(path, {"version": 1, "labs": labs})
    _warn(f"{path} {problem}; kept a copy in {backup.name} and carried on with {len(labs)} lab(s)")


def load_progress() -> dict[str, dict]:
    """Every lab's entry; an unreadable store is set aside (see the module doc), never fatal."""
    path = progress_path()
    try:
        labs, problem = _read(path)
    except OSError as exc:
        _warn(f"cannot read {path} ({exc.strerror or exc}); showing no progress")
        return {}
    if problem:
        try:
            with file_lock(_lock_path(path)):
                labs, problem = _read(path)  # a writer may have repaired it meanwhile
                if problem:
                    _set_aside(path, labs, problem)
        except OSError as exc:
            _warn(
                f"{path} {problem}; it could not be set aside ({exc.strerror or exc}), "
                f"so it is left as it is and {len(labs)} readable lab(s) are shown"
            )
    return labs


def state_of(lab_id: str, progress: dict[str, dict] | None = None) -> str:
    progress = load_progress() if progress is None else progress
    return progress.get(lab_id, {}).get("state", NOT_STARTED)


def save_state(lab_id: str, state: str, **details: str) -> dict:
    """Set `lab_id` to `state` under the store's lock; ProgressNotSaved if it cannot be written."""
    if state not in STATES:
        raise ValueError(f"unknown progress state {state!r}")
    path = None
    try:
        path = progress_path()
        with file_lock(_lock_path(path)):
            labs, problem = _read(path)  # an unreadable (OSError) store is never overwritten
            if problem:
                _set_aside(path, labs, problem)
            if state == NOT_STARTED:
                labs.pop(lab_id, None)
                entry: dict = {}
            else:
                at = datetime.now(UTC).isoformat(timespec="seconds")
                entry = {"state": state, "at": at, **details}
                labs[lab_id] = entry
            write_json_atomic(path, {"version": 1, "labs": labs})
    except (OSError, AiroadError) as exc:
        why = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
        where = path or "$AIROAD_HOME"
        raise ProgressNotSaved(
            f"could not record '{lab_id}' as {state} in {where} ({why}); "
            "make it writable, then run the command again"
        ) from None
    return entry


def record(lab_id: str, state: str, **details: str) -> dict:
    """`save_state` that never raises for an unwritable store: the entry, or {} and the reason
    kept for `unsaved()` (the CLI prints it after the command's results and exits 1)."""
    try:
        return save_state(lab_id, state, **details)
    except ProgressNotSaved as exc:
        _unsaved.append(str(exc))
        return {}


def has_unsaved() -> bool:
    """True when a `record` since the last `unsaved()` could not be saved."""
    return bool(_unsaved)


def unsaved() -> list[str]:
    """The progress changes `record` could not save since the last call (and forget them)."""
    out = list(_unsaved)
    _unsaved.clear()
    return out


def mark_learning(lab_id: str) -> None:
    """Move a lab to `learning` unless it is already passed (a pass is never undone by work)."""
    if state_of(lab_id) != PASSED:
        record(lab_id, LEARNING)
