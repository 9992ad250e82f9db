"""Run one lab: resolve its config, check its data, call its runner, save and track results.

A run folder is whole or absent: it is claimed before the run (a fresh folder, or an --out that
is empty, or one forced), config.json and metrics.json are written together at the end, and a
run that fails or is interrupted removes the folder it made. The index line is written before
MLflow logging, and `past_runs` also finds run folders the index misses, so a process killed
at any point after metrics.json still leaves a run that `airoad runs` lists.
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import random
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from airoad.catalog import LabEntry, load_catalog
from airoad.errors import AiroadError
from airoad.home import home, runs_dir, writable_dir, write_json_atomic
from airoad.labs.contract import LabResult, RunContext, make_config, parse_overrides


@dataclass
class RunRecord:
    lab_id: str
    out_dir: Path
    seconds: float
    result: LabResult
    config: dict[str, Any]
    mlflow_run_id: str | None
    problem: str = ""  # the run is saved, but something after it (MLflow logging) failed


def built_entry(lab_id: str) -> LabEntry:
    entry = load_catalog().get(lab_id)
    if not entry.built:
        raise AiroadError(
            f"lab '{lab_id}' is planned, not built yet (`airoad roadmap` shows what is)"
        )
    return entry


def runner_for(entry: LabEntry) -> ModuleType:
    return importlib.import_module(entry.runner_module)


def resolve_config(entry: LabEntry, quick: bool, pairs: Sequence[str]):
    module = runner_for(entry)
    overrides = parse_overrides(module.Config, pairs)
    return make_config(module.Config, module.QUICK, quick, overrides)


def check_datasets(entry: LabEntry) -> None:
    from airoad.data import store

    for name in entry.datasets:
        store.verified_location(store.get(name))  # DatasetMissing / DatasetCorrupt, one line


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


RUNNING = ".running"  # in a run folder while its run is under way: "<host> <pid>"


def _new_run_dir(lab_id: str) -> Path:
    """A fresh folder under runs_dir(), claimed with mkdir so two runs never share one."""
    base = runs_dir() / f"{lab_id}-{datetime.now():%Y%m%d-%H%M%S}"
    out, n = base, 1
    while True:
        try:
            out.mkdir()
            return out
        except FileExistsError:
            n += 1
            out = base.with_name(f"{base.name}-{n}")


def _claim_out(out: Path, force: bool) -> bool:
    """Check an --out folder before any work; True when this run created it."""
    if out.exists() and not out.is_dir():
        raise AiroadError(f"--out {out} is a file: give a folder for the run's files")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise AiroadError(
            f"--out {out} already holds files (an earlier run?): choose a new folder, "
            "or pass --force to write over them"
        )
    existed = out.is_dir()
    writable_dir(out, "the run folder")
    return not existed


def _sweep_abandoned() -> None:
    """Remove run folders whose run was killed (SIGKILL, power loss): their process is gone.
    Only runs started on this host are judged (a home shared over the network is left alone)."""
    for marker in runs_dir().glob(f"*/{RUNNING}"):
        try:
            host, pid = marker.read_text().split()
            if host != socket.gethostname():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(marker.parent, ignore_errors=True)
        except (OSError, ValueError):
            continue  # another user's process, or a marker being written: leave it


def run_lab(
    lab_id: str,
    quick: bool = False,
    pairs: Sequence[str] = (),
    out: Path | None = None,
    track: bool = True,
    progress: Any = None,
    force: bool = False,
) -> RunRecord:
    entry = built_entry(lab_id)
    config = resolve_config(entry, quick, pairs)
    check_datasets(entry)
    writable_dir(runs_dir(), "the runs folder")  # the index of runs lives there
    if track:
        writable_dir(home(), "AIROAD_HOME")  # the MLflow store lives there
    if out is None:
        _sweep_abandoned()
        out_dir, created = _new_run_dir(lab_id), True
    else:
        out_dir = Path(out)
        created = _claim_out(out_dir, force)
    marker = out_dir / RUNNING
    try:
        marker.write_text(f"{socket.gethostname()} {os.getpid()}")
        seconds, result, config_dict = _execute(entry, config, out_dir, progress)
        write_json_atomic(out_dir / "config.json", {"lab": lab_id, "quick": quick, **config_dict})
        write_json_atomic(out_dir / "metrics.json", _payload(lab_id, quick, seconds, result))
        marker.unlink()
    except BaseException:
        if created:
            shutil.rmtree(out_dir, ignore_errors=True)
        else:
            marker.unlink(missing_ok=True)
        raise
    _append_index(lab_id, out_dir, seconds, quick, result)
    run_id, problem = None, ""
    if track:
        from airoad.labs.tracking import log_run

        try:
            run_id = log_run(lab_id, quick, config_dict, result.metrics, out_dir)
        except Exception as exc:  # the run is saved and listed; say what went wrong, in a line
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            problem = (
                f"the run is saved in {out_dir} (see `airoad runs`), but logging it to MLflow "
                f"failed: {type(exc).__name__}: {first}"
            )
    return RunRecord(lab_id, out_dir, seconds, result, config_dict, run_id, problem)


def _execute(entry: LabEntry, config: Any, out_dir: Path, progress: Any):
    config_dict = dataclasses.asdict(config)
    ctx = RunContext(
        out_dir,
        progress=progress,
        seed=int(config_dict.get("seed", 0)),
        lab_id=entry.id,
        config=config,
    )
    import matplotlib

    matplotlib.use("Agg")
    _seed_everything(ctx.seed)
    start = time.perf_counter()
    result = runner_for(entry).run(config, ctx)
    return time.perf_counter() - start, result, config_dict


def _payload(lab_id: str, quick: bool, seconds: float, result: LabResult) -> dict:
    return {
        "lab": lab_id,
        "quick": quick,
        "seconds": round(seconds, 3),
        "finished_at": datetime.now().isoformat(timespec="seconds"),
        "key_metric": result.key_metric,
        "library_metric": result.library_metric,
        "metrics": result.metrics,
        "tables": result.tables,
        "notes": result.notes,
        "figures": [Path(f).name for f in result.figures],
    }


def _append_index(
    lab_id: str, out_dir: Path, seconds: float, quick: bool, result: LabResult
) -> None:
    """One JSON line per run, so `airoad runs` also finds runs written with --out."""
    line = {
        "lab": lab_id,
        "dir": str(out_dir.resolve()),
        "seconds": round(seconds, 3),
        "quick": quick,
        "at": datetime.now().isoformat(timespec="seconds"),
        "key_metric": result.key_metric,
        "key_value": result.metrics[result.key_metric],
    }
    index = runs_dir() / "index.jsonl"
    index.parent.mkdir(parents=True, exist_ok=True)
    with open(index, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(line, default=str) + "\n")


def _row_from_folder(folder: Path) -> dict | None:
    """A `runs` row read from a run folder's metrics.json (None when it has no readable one)."""
    try:
        payload = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
        return {
            "lab": payload["lab"],
            "dir": str(folder.resolve()),
            "seconds": float(payload["seconds"]),
            "quick": bool(payload["quick"]),
            "at": str(payload.get("finished_at", "")),
            "key_metric": payload["key_metric"],
            "key_value": payload["metrics"][payload["key_metric"]],
            "metrics": payload["metrics"],
        }
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _indexed_dirs() -> list[str]:
    index = runs_dir() / "index.jsonl"
    if not index.exists():
        return []
    found = []
    for raw in index.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            found.append(str(json.loads(raw)["dir"]))
        except (ValueError, KeyError, TypeError):
            continue  # a line cut short by a crash; the others still count
    return found


def past_runs() -> list[dict]:
    """Every run with a readable metrics.json, newest first: the folders the index names
    (runs written with --out live anywhere) and any folder under runs_dir() it missed."""
    dirs = dict.fromkeys(_indexed_dirs())
    for metrics in sorted(runs_dir().glob("*/metrics.json")):
        dirs.setdefault(str(metrics.parent.resolve()), None)
    rows = [row for d in dirs if (row := _row_from_folder(Path(d))) is not None][::-1]
    rows.sort(key=lambda r: r["at"], reverse=True)  # stable: among equal times, latest first
    return rows
