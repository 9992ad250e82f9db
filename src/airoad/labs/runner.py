"""Run one lab: resolve its config, check its data, call its runner, save and track results."""

from __future__ import annotations

import dataclasses
import importlib
import json
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

from airoad.catalog import LabEntry, load_catalog
from airoad.errors import AiroadError, DatasetMissing
from airoad.home import runs_dir, write_json_atomic
from airoad.labs.contract import LabResult, RunContext, make_config, parse_overrides


@dataclass
class RunRecord:
    lab_id: str
    out_dir: Path
    seconds: float
    result: LabResult
    config: dict[str, Any]
    mlflow_run_id: str | None


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
        if not store.is_present(store.get(name)):
            raise DatasetMissing(name)


def _seed_everything(seed: int) -> None:
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _new_run_dir(lab_id: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = runs_dir() / f"{lab_id}-{stamp}"
    out, n = base, 1
    while out.exists():
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def run_lab(
    lab_id: str,
    quick: bool = False,
    pairs: Sequence[str] = (),
    out: Path | None = None,
    track: bool = True,
    progress: Any = None,
) -> RunRecord:
    entry = built_entry(lab_id)
    config = resolve_config(entry, quick, pairs)
    check_datasets(entry)
    out_dir = Path(out) if out is not None else _new_run_dir(lab_id)
    config_dict = dataclasses.asdict(config)
    ctx = RunContext(
        out_dir,
        progress=progress,
        seed=int(config_dict.get("seed", 0)),
        lab_id=lab_id,
        config=config,
    )
    write_json_atomic(out_dir / "config.json", {"lab": lab_id, "quick": quick, **config_dict})

    import matplotlib

    matplotlib.use("Agg")
    _seed_everything(ctx.seed)
    start = time.perf_counter()
    result = runner_for(entry).run(config, ctx)
    seconds = time.perf_counter() - start

    payload = {
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
    write_json_atomic(out_dir / "metrics.json", payload)
    run_id = None
    if track:
        from airoad.labs.tracking import log_run

        run_id = log_run(lab_id, quick, config_dict, result.metrics, out_dir)
    _append_index(lab_id, out_dir, seconds, quick, result)
    return RunRecord(lab_id, out_dir, seconds, result, config_dict, run_id)


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


def past_runs() -> list[dict]:
    """Runs from the index whose folder still holds a metrics.json, newest first."""
    index = runs_dir() / "index.jsonl"
    if not index.exists():
        return []
    rows = []
    for raw in index.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(raw)
        except json.JSONDecodeError:
            continue  # a line cut short by a crash; the others still count
        metrics_file = Path(row["dir"]) / "metrics.json"
        if metrics_file.exists():
            row["metrics"] = json.loads(metrics_file.read_text(encoding="utf-8"))["metrics"]
            rows.append(row)
    return rows[::-1]
