"""Where airoad keeps its state: `$AIROAD_HOME` (default `~/.airoad`)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def home() -> Path:
    path = Path(os.environ.get("AIROAD_HOME", "~/.airoad")).expanduser()
    path.mkdir(parents=True, exist_ok=True)
    return path


def data_dir() -> Path:
    """The dataset cache; AIROAD_DATA_DIR moves it (tests share one cache across homes)."""
    override = os.environ.get("AIROAD_DATA_DIR")
    return Path(override).expanduser() if override else home() / "data"


def shared_data_dirs() -> list[Path]:
    """Caches read (never written) when a dataset is not in `data_dir()`: the default home's.

    A throwaway AIROAD_HOME (a grader, a CI check) then reuses what `make setup` fetched.
    AIROAD_DATA_DIR pins the cache exactly and turns this off.
    """
    if os.environ.get("AIROAD_DATA_DIR"):
        return []
    default = Path("~/.airoad/data").expanduser()
    return [] if default.resolve() == data_dir().resolve() else [default]


def runs_dir() -> Path:
    return home() / "runs"


def repo_root() -> Path:
    """The checkout that holds `tests/` and `lessons/` (airoad is installed editable from it)."""
    return Path(__file__).resolve().parents[2]


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to `path` so a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: object) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")
