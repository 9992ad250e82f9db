"""The learner's progress, one JSON file under $AIROAD_HOME written atomically.

States: `not started` (no record), `learning` (an exercise was written or a check failed),
`passed` (all grader tests passed; with a timestamp and the hash of the test suite) and
`skipped` (the learner chose to move on; later labs use the reference).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from airoad.errors import AiroadError
from airoad.home import home, write_json_atomic

NOT_STARTED, LEARNING, PASSED, SKIPPED = "not started", "learning", "passed", "skipped"
STATES = (NOT_STARTED, LEARNING, PASSED, SKIPPED)


def progress_path() -> Path:
    return home() / "progress.json"


def load_progress() -> dict[str, dict]:
    path = progress_path()
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise AiroadError(
            f"{path} is not valid JSON ({exc.msg}); move it aside to start progress afresh"
        ) from None
    return data.get("labs", {})


def state_of(lab_id: str, progress: dict[str, dict] | None = None) -> str:
    progress = load_progress() if progress is None else progress
    return progress.get(lab_id, {}).get("state", NOT_STARTED)


def record(lab_id: str, state: str, **details: str) -> dict:
    """Set `lab_id` to `state` and write the whole store atomically."""
    if state not in STATES:
        raise ValueError(f"unknown progress state {state!r}")
    progress = load_progress()
    if state == NOT_STARTED:
        progress.pop(lab_id, None)
        entry: dict = {}
    else:
        entry = {
            "state": state,
            "at": datetime.now(UTC).isoformat(timespec="seconds"),
            **details,
        }
        progress[lab_id] = entry
    write_json_atomic(progress_path(), {"version": 1, "labs": progress})
    return entry


def mark_learning(lab_id: str) -> None:
    """Move a lab to `learning` unless it is already passed (a pass is never undone by work)."""
    if state_of(lab_id) != PASSED:
        record(lab_id, LEARNING)
