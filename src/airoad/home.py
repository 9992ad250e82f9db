"""Where airoad keeps its state: `$AIROAD_HOME` (default `~/.airoad`), and where datasets live.

Datasets follow ONE rule, used by every command and by the graders (`data_dirs()`):

- `AIROAD_DATA_DIR` set: exactly the folders it lists (separated like PATH, by `os.pathsep`);
- otherwise `$AIROAD_HOME/data`, then the default home's `~/.airoad/data` (read, never fetched into).

The first folder is where `airoad data fetch` writes. The test suite's conftest pins
`AIROAD_DATA_DIR` to this list as resolved in the learner's shell, so a grader running under a
throwaway home sees exactly what `airoad run`, `doctor` and `data fetch` see.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from airoad.errors import AiroadError

DEFAULT_HOME = "~/.airoad"


def home_path() -> Path:
    """`$AIROAD_HOME` (default `~/.airoad`), not created: for code that only reads."""
    return Path(os.environ.get("AIROAD_HOME") or DEFAULT_HOME).expanduser()


def home() -> Path:
    """`$AIROAD_HOME`, created if missing; one clear error when it is a file or cannot be made."""
    path = home_path()
    if path.exists() and not path.is_dir():
        raise AiroadError(
            f"AIROAD_HOME {path} is a file, not a folder: point AIROAD_HOME at a folder "
            f"(or unset it to use {DEFAULT_HOME})"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise AiroadError(
            f"cannot create AIROAD_HOME {path} ({_why(exc)}): point AIROAD_HOME at a folder "
            "you can write to"
        ) from None
    return path


def _why(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


def writable_dir(path: Path, what: str) -> Path:
    """Create `path` if needed and prove a file can be made in it, else one clear error."""
    if path.exists() and not path.is_dir():
        raise AiroadError(f"{what} {path} is a file, not a folder: give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".airoad-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise AiroadError(f"cannot write to {what} {path} ({_why(exc)})") from None
    return path


def data_dirs() -> list[Path]:
    """The dataset folders, in lookup order; the first is the one `data fetch` writes to."""
    override = os.environ.get("AIROAD_DATA_DIR")
    if override:
        found = [Path(p).expanduser() for p in override.split(os.pathsep) if p.strip()]
    else:
        found = [home_path() / "data", Path(DEFAULT_HOME).expanduser() / "data"]
    out: list[Path] = []
    for path in found:
        if all(path.resolve() != seen.resolve() for seen in out):
            out.append(path)
    return out or [home_path() / "data"]


def data_dir() -> Path:
    """The dataset cache `airoad data fetch` writes to: the first of `data_dirs()`."""
    return data_dirs()[0]


def shared_data_dirs() -> list[Path]:
    """The other folders of `data_dirs()`: read when a dataset is not in `data_dir()`."""
    return data_dirs()[1:]


def runs_dir() -> Path:
    return home() / "runs"


def repo_root() -> Path:
    """The checkout that holds `tests/` and `lessons/` (airoad is installed editable from it)."""
    return Path(__file__).resolve().parents[2]


def current_umask() -> int:
    """The process umask (read from /proc where possible: setting it is not thread-safe)."""
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, text: str | bytes) -> None:
    """Write `path` so a reader sees the old file or the new one, never half of one.

    The file gets the mode a plain `open()` would give (0666 less the umask), not mkstemp's 0600.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8") if isinstance(text, str) else text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, obj: object) -> None:
    write_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `path` (created if missing) for the block: one writer at a time.

    A POSIX advisory lock (`flock`): the kernel releases it when the holder dies, even by SIGKILL,
    so a crashed writer never leaves the store locked. Without fcntl (Windows) it does nothing.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
