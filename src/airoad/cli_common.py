"""What every `airoad` command shares: errors the user can fix become one red line.

Kept apart from `cli.py` so `airoad data ...` (cli_data.py) uses the same wrapper. Light on
purpose: `airoad --help` imports this.
"""

from __future__ import annotations

import errno
import functools
from collections.abc import Callable

import typer
from rich.console import Console
from rich.text import Text

from airoad.errors import AiroadError

err = Console(stderr=True, highlight=False, soft_wrap=True)

# OSErrors a user causes (a path that is a file, a folder they cannot write, a full disk): one
# line naming the path. Any other exception is a bug in airoad and keeps its traceback.
_USER_ERRNOS = {
    errno.EACCES,
    errno.EPERM,
    errno.EROFS,
    errno.ENOSPC,
    errno.EDQUOT,
    errno.EEXIST,
    errno.ENOTDIR,
    errno.EISDIR,
    errno.ENAMETOOLONG,
}


def _say(message: str) -> None:
    err.print(Text.assemble(("error:", "red"), " ", message))


def _unsaved_progress() -> list[str]:
    from airoad.catalog.progress import unsaved

    return unsaved()


def friendly(fn: Callable) -> Callable:
    """Turn errors the user can fix into one red line and exit code 1.

    A progress change `record` could not save is reported here, after the command printed its
    results (a `check` that passed is shown as passed, then the line saying it was not saved).
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        code = 0
        try:
            result = fn(*args, **kwargs)
        except typer.Exit as exc:
            code = exc.exit_code
            result = None
        except AiroadError as exc:
            _say(str(exc))
            code = 1
        except OSError as exc:
            if exc.errno not in _USER_ERRNOS:
                raise
            where = f": {exc.filename}" if exc.filename else ""
            _say(f"{exc.strerror or exc}{where}")
            code = 1
        except KeyboardInterrupt:
            err.print("[yellow]interrupted[/yellow]")
            code = 130
        for line in _unsaved_progress():
            _say(line)
            code = code or 1
        if code:
            raise typer.Exit(code) from None
        return result

    return wrapper
