"""The generative yardstick's anchors: the real-data floor and the trivial baseline per dataset.

Run from the repository root:  python benchmarks/generative.py [--n 1000] [--seed 0]
Rewrites its own rows of benchmarks/results/generative.md and keeps the rows the generative
labs add (one per lab and dataset: the score of the lab's full-config samples).

Each score is the Fréchet distance between the penultimate features (64-d) of the cached
yardstick classifier (`airoad.generative.metrics`, trained once per dataset on a miss) for n
images and for n held-out test images. "CPU seconds" is process time: here, computing the score;
in a lab's row, its full-config run.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy loads its BLAS
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from airoad.generative.metrics import DATASETS, Yardstick  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "generative.md"
HEADER = [
    "| lab | dataset | score | real-data floor | trivial baseline | CPU seconds | note |",
    "|---|---|---|---|---|---|---|",
]
OURS = ("real held-out images (floor)", "per-pixel Gaussian noise (baseline)")


def _timed(fn, *args) -> tuple[float, float]:
    start = time.process_time()
    value = fn(*args)
    return value, time.process_time() - start


def anchor_rows(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Our two table rows per dataset, and one line per classifier describing it."""
    rows, classifiers = [], []
    for name in DATASETS:
        yard = Yardstick(name)
        info = yard.describe()
        classifiers.append(
            f"- {name}: FashionCNN channels {info['channels']}, {info['feature_dim']}-d features, "
            f"epochs {info['epochs']} on {info['train_images']} training images, seed "
            f"{info['seed']}: test accuracy {info['test_accuracy']:.4f} (trained once in "
            f"{info['train_cpu_seconds']:.0f} CPU-s, one thread)"
        )
        floor, floor_s = _timed(yard.floor, n, seed)
        base, base_s = _timed(yard.baseline, n, seed)
        for label, score, secs, note in (
            (OURS[0], floor, floor_s, "another held-out sample: the best reachable at this n"),
            (OURS[1], base, base_s, "every full config must score at most half of this"),
        ):
            rows.append(
                f"| {label} | {name} | {score:.2f} | {floor:.2f} | {base:.2f} | {secs:.1f} | {note} |"
            )
        print("\n".join(rows[-2:]), flush=True)
    return rows, classifiers


def lab_rows() -> list[str]:
    """Rows the labs wrote into the existing table (everything that is not one of ours)."""
    if not RESULTS.exists():
        return []
    lines = RESULTS.read_text(encoding="utf-8").splitlines()
    table = [ln for ln in lines if ln.startswith("| ") and ln not in HEADER]
    return [ln for ln in table if ln.split("|")[1].strip() not in OURS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images per side of every score")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(1)
    rows, classifiers = anchor_rows(args.n, args.seed)
    setup = (
        f"{date.today()}, Python {sys.version.split()[0]}, NumPy {np.__version__}, torch "
        f"{torch.__version__}, {platform.machine()}, {os.cpu_count()} cores (shared with other "
        f"jobs), one torch thread. n = {args.n} images per side, seed {args.seed}."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        "# Generative models: one yardstick\n\n"
        "Fréchet distance between the 64-d penultimate features of a small CNN classifier "
        "(our own network, not Inception: these are not FID values from papers) for n "
        "generated images and n held-out test images. Lower is better. The distance is biased "
        "upward by small samples, so every row uses the same n. `airoad.generative.metrics`.\n\n"
        f"{setup}\n\nClassifiers:\n" + "\n".join(classifiers) + "\n\n"
        "`python benchmarks/generative.py` recomputes the floor and baseline rows; each "
        "generative lab adds a row for its full config (CPU seconds = the full run).\n\n"
        + "\n".join([*HEADER, *rows, *lab_rows()])
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    main()
