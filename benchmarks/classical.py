"""Classical ML: fit+predict time of each from-scratch estimator vs scikit-learn, one table.

Run from the repo root: `python benchmarks/classical.py`. Each `benchmarks/classical_<lab>.py`
supplies `rows()`; this script runs them all in one process (same machine state, n_jobs=1)
and prints one markdown table, also written to benchmarks/results/classical.md.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
HERE = Path(__file__).resolve().parent
COLUMNS = [
    "estimator",
    "data",
    "ours_s",
    "library",
    "lib_s",
    "ratio",
    "target",
    "ours_acc",
    "lib_acc",
]


def _load(path: Path):
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.4f}" if value < 1 else f"{value:.3g}"
    return str(value)


def _meets(row: dict) -> str:
    target = str(row.get("target", ""))
    if not target.startswith("<="):
        return ""
    limit = float(target.removeprefix("<=").strip().rstrip("x"))
    acc_ok = abs(float(row["ours_acc"]) - float(row["lib_acc"])) <= 0.01
    return "yes" if float(row["ratio"]) <= limit and acc_ok else "no"


def main() -> str:
    rows = []
    load_before = os.getloadavg()[0]
    for path in sorted(HERE.glob("classical_*.py")):
        print(f"running {path.name} ...", file=sys.stderr)
        rows += _load(path).rows()
    note = (
        f"Written by `python benchmarks/classical.py` on {date.today()}; load average "
        f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end on "
        f"{os.cpu_count()} cores. Seconds grow with the load; each ratio comes from one "
        "interleaved race in this run, so it holds.\n\n"
    )
    header = COLUMNS + ["meets target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row[c]) for c in COLUMNS) + f" | {_meets(row)} |")
    table = "\n".join(lines)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "classical.md").write_text(note + table + "\n")
    return table


if __name__ == "__main__":
    print(main())
