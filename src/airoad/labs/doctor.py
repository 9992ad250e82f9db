"""`airoad doctor`: is this machine ready? Each check prints OK or FAIL with the fix."""

from __future__ import annotations

import os
import shutil
import sys

from rich.console import Console

from airoad.home import home

TORCH_VERSION = "2.13.0"
MIN_FREE_GB = 2.0


def _python() -> tuple[bool, str, str]:
    v = sys.version_info
    ok = (v.major, v.minor) == (3, 11)
    return (
        ok,
        f"Python {v.major}.{v.minor}.{v.micro}",
        "use Python 3.11 (make setup builds .venv with it)",
    )


def _torch() -> tuple[bool, str, str]:
    fix = f"pip install torch=={TORCH_VERSION} (the CPU wheel; never an unpinned torch)"
    try:
        import torch
    except ImportError:
        return False, "torch is not installed", fix
    base = torch.__version__.split("+")[0]
    cpu = torch.version.cuda is None
    detail = f"torch {torch.__version__} ({'CPU build' if cpu else 'CUDA build ' + str(torch.version.cuda)})"
    return base == TORCH_VERSION and cpu, detail, fix


def _threads() -> tuple[bool, str, str]:
    import torch

    omp = os.environ.get("OMP_NUM_THREADS", "unset")
    n = torch.get_num_threads()
    cores = os.cpu_count() or 1
    return (
        n <= cores,
        f"torch uses {n} thread(s) on {cores} core(s); OMP_NUM_THREADS={omp}",
        f"export OMP_NUM_THREADS={cores} (more threads than cores slows everything down)",
    )


def _disk() -> tuple[bool, str, str]:
    free = shutil.disk_usage(home()).free / 1e9
    return (
        free >= MIN_FREE_GB,
        f"{free:.1f} GB free under {home()}",
        f"free at least {MIN_FREE_GB:g} GB, or point AIROAD_HOME at a bigger disk",
    )


def _datasets() -> list[tuple[bool, str, str]]:
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


def run_doctor(console: Console) -> bool:
    checks = [_python(), _torch(), _threads(), _disk(), *_datasets()]
    for ok, what, fix in checks:
        console.print(
            f"[green]OK  [/green] {what}" if ok else f"[red]FAIL[/red] {what} -> fix: {fix}"
        )
    return all(ok for ok, _, _ in checks)
