"""Classical ML: fit+predict time of each from-scratch estimator vs scikit-learn, one table.

Run from the repo root: `python benchmarks/classical.py`. Each `benchmarks/classical_<lab>.py`
supplies `rows()`; this script runs them all in one process (same machine state, n_jobs=1)
and prints one markdown table, also written to benchmarks/results/classical.md.

`python benchmarks/classical.py --only RandomForest adult` re-runs only the rows whose
"estimator data" holds every word, in the modules whose `rows` takes `only` (the others are
skipped), and swaps them into the results file with a note of the load.
"""

from __future__ import annotations

import argparse
import importlib.util
import inspect
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


def replace_rows(path: Path, new_rows: list[str], note: str) -> None:
    """Swap table rows into a results file, matched by their first two cells; append a note."""

    def key(row: str) -> tuple[str, ...]:
        return tuple(row.split(" | ")[:2])

    fresh = {key(row): row for row in new_rows}
    kept = [fresh.pop(key(line), line) for line in path.read_text().splitlines()]
    path.write_text("\n".join(kept + list(fresh.values()) + ["", f"- {note}", ""]))


def main(only: list[str] | None = None) -> str:
    rows = []
    load_before = os.getloadavg()[0]
    for path in sorted(HERE.glob("classical_*.py")):
        module = _load(path)
        if only and "only" not in inspect.signature(module.rows).parameters:
            continue
        print(f"running {path.name} ...", file=sys.stderr)
        rows += module.rows(only=only) if only else module.rows()
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
    if only:
        note = note.replace("Written by `python benchmarks/classical.py`", f"Rows {only} re-run")
        replace_rows(HERE / "results" / "classical.md", lines[2:], note.strip())
    else:
        (HERE / "results" / "classical.md").write_text(note + table + "\n")
    return table


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="+", help="words every re-run row must contain")
    print(main(parser.parse_args().only))
