"""Time and peak memory of five attention implementations against sequence length, one FRESH
process per point, forward only and forward + backward.

Run from the repository root:  python benchmarks/efficient_attention.py [--lengths 1024,...]
Prints two markdown tables and writes them (with the set-up) to
benchmarks/results/efficient_attention.md.

Each (mode, method, length) point starts its own interpreter (the efficient-attention runner's
``_measure_point``): it makes random float32 q, k, v of shape (1, heads, L, head_dim), reads its
peak resident set (VmHWM) before and after one call, then times ``--repeats`` more calls. The
growth of the peak is what the call needed beyond what the process already held; it is set
beside the analytic bytes of one L x L score matrix. 'tiled' is our tiled attention with its
recomputing backward (``flash_attention``), 'sdpa' is torch's fused kernel, 'naive' builds the
matrix, 'window' and 'linear' are the two approximations (different numbers, by design).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch threads sleep, not spin

import torch  # noqa: E402

from airoad.labs.runners import efficient_attention as lab  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "efficient_attention.md"


def _cell(row: dict, key: str, fmt: str) -> str:
    if row["status"] != "ok":
        return row["status"].split(":")[0]  # skipped / failed
    return format(row[key], fmt)


def _tables(rows: list[dict], config: lab.Config) -> tuple[str, str]:
    """Two wide tables, median ms and peak-RSS growth in MiB: one line per (mode, length)."""
    head = "| mode | L | one L x L matrix | " + " | ".join(config.methods) + " |"
    rule = "|---|---|---|" + "---|" * len(config.methods)
    time_lines, mem_lines = [head, rule], [head, rule]
    for mode in dict.fromkeys(r["mode"] for r in rows):
        for n in sorted(config.lengths):
            got = {r["method"]: r for r in rows if r["mode"] == mode and r["length"] == n}
            lead = f"| {mode} | {n} | {got[config.methods[0]]['matrix_mib']:.0f} MiB |"
            time_lines.append(
                lead + "".join(f" {_cell(got[m], 'ms', '.1f')} |" for m in config.methods)
            )
            mem_lines.append(
                lead + "".join(f" {_cell(got[m], 'extra_mib', '.1f')} |" for m in config.methods)
            )
    return "\n".join(time_lines), "\n".join(mem_lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="1024,2048,4096,8192")
    parser.add_argument("--modes", default="forward,backward", help="forward and/or backward")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds per point")
    args = parser.parse_args()

    base = lab.Config(
        lengths=tuple(int(n) for n in args.lengths.split(",")),
        repeats=args.repeats,
        threads=args.threads,
        point_timeout_s=args.timeout,
    )
    rows, start, load0 = [], time.perf_counter(), os.getloadavg()[0]
    for mode in args.modes.split(","):
        config = dataclasses.replace(base, backward=mode == "backward")
        for n in sorted(config.lengths):
            for method in config.methods:
                row = lab._measure_point(config, method, n) | {"mode": mode}
                rows.append(row)
                print(row, flush=True)
    seconds, load1 = time.perf_counter() - start, os.getloadavg()[0]
    times, memory = _tables(rows, base)
    print(f"\n{times}\n\n{memory}")
    setup = (
        f"{date.today()}, Python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores shared with other jobs (1-minute load "
        f"average {load0:.1f} at the start, {load1:.1f} at the end); {args.threads} torch "
        f"thread(s) per process; batch 1, {base.heads} heads x {base.head_dim}, float32, causal; "
        f"tile/block/chunk {base.block}, window {base.window}; {args.repeats} timed calls after "
        f"the measured one; {seconds / 60:.1f} minutes in all."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        f"# Efficient attention benchmark\n\n{setup}\n\n`python benchmarks/efficient_attention.py`\n\n"
        "'forward' runs under `torch.no_grad()`; 'backward' is one forward with autograd plus "
        "`.sum().backward()` ('tiled' then uses its own recomputing backward). Each cell is one "
        "fresh process.\n\n"
        f"## Median time per call (ms)\n\n{times}\n\n"
        "## Growth of the peak resident set during the call (MiB)\n\n"
        "Measured as VmHWM after the call minus VmHWM before it (the inputs are made inside the "
        f"call, so q, k, v and the output count too).\n\n{memory}\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
