"""A throwaway PostgreSQL + pgvector for tests: the binaries bundled by the PyPI package
``pgserver``, started on a free loopback port in a fresh folder (as ``nobody`` when the tests
run as root, since PostgreSQL refuses root), and always stopped, also when a test fails.

When the server cannot start, the tests fail in CI (``CI`` set: the suite must prove pgvector
works there) and when PostgreSQL itself runs (then the server code is wrong); otherwise, on a
learner's machine, they are skipped with the fix in the reason.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

FIX = "pip install pgserver==0.1.4 (it bundles PostgreSQL 16 with pgvector)"


def bin_dir() -> Path:
    """The folder of pgserver's PostgreSQL binaries (skip or fail when it is missing)."""
    try:
        from pgserver._commands import POSTGRES_BIN_PATH
    except ImportError:
        _cannot("the pgserver package is not installed")
    return Path(POSTGRES_BIN_PATH)


def running(server_cls: Any) -> Iterator[Any]:
    """Enter ``server_cls(bin_dir())`` as a context manager (start), yield it, then exit it
    (stop) and check that it left nothing behind."""
    server = server_cls(bin_dir())
    try:
        entered = server.__enter__()
    except RuntimeError as exc:  # our server's "did not start", with PostgreSQL's own log
        server.stop()
        if postgres_runs():  # PostgreSQL itself works: the server code is at fault
            pytest.fail(f"PostgreSQL runs here, but the server did not start: {exc}")
        _cannot(str(exc).splitlines()[0])
    folder = server.folder
    try:
        assert entered is server, "`with PostgresServer(...) as server` must give the server"
        yield server
    finally:
        server.__exit__(None, None, None)
    assert folder is not None and not Path(folder).exists(), "stop() left the server folder"


def postgres_runs() -> bool:
    """Whether the bundled ``postgres --version`` runs (as ``nobody`` when root)."""
    user = {"user": "nobody"} if os.geteuid() == 0 else {}
    try:
        cmd = [str(bin_dir() / "postgres"), "--version"]
        subprocess.run(cmd, check=True, capture_output=True, timeout=30, **user)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


def _cannot(why: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"PostgreSQL could not start in CI: {why}")
    pytest.skip(f"PostgreSQL could not start ({why}): {FIX}")
