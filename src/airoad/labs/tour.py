"""`airoad tour`: every built lab in roadmap order, one summary row each."""

from __future__ import annotations

import time

from rich.console import Console

from airoad.catalog import load_catalog
from airoad.errors import AiroadError


def _fmt(name: str, value) -> str:
    return f"{name} = {value:.4g}" if isinstance(value, float) else f"{name} = {value}"


def run_tour(console: Console, quick: bool = True, track: bool = True) -> list[dict]:
    from airoad.cli_views import progress_bars
    from airoad.labs.runner import run_lab

    rows = []
    built = [e for _, entries in load_catalog().by_phase() for e in entries if e.built]
    for i, entry in enumerate(built, 1):
        console.print(f"[{i}/{len(built)}] {entry.id} ...")
        start = time.perf_counter()
        try:
            with progress_bars(console) as bars:
                rec = run_lab(entry.id, quick=quick, track=track, progress=bars)
        except Exception as exc:  # report it and go on: one broken lab must not hide the others
            why = (
                str(exc)
                if isinstance(exc, AiroadError)
                else f"crashed: {type(exc).__name__}: {exc}"
            )
            rows.append(
                {
                    "lab": entry.id,
                    "ours": "-",
                    "library": "-",
                    "seconds": time.perf_counter() - start,
                    "status": why,
                }
            )
            continue
        res = rec.result
        lib = res.library_metric
        rows.append(
            {
                "lab": entry.id,
                "ours": _fmt(res.key_metric, res.metrics[res.key_metric]),
                "library": _fmt(lib, res.metrics[lib]) if lib else "-",
                "seconds": rec.seconds,
                "status": "ok",
            }
        )
    return rows
