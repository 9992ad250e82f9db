"""Our NumPy im2col conv2d (forward + backward) vs torch's, and seconds to 91% on Fashion-MNIST.

Run from the repository root:  python benchmarks/neural_cnn.py [--repeats 7] [--skip-train]
Prints one markdown table and writes it (with the set-up) to benchmarks/results/neural_cnn.md.

Conv rows: the same float32 arrays go through ``conv2d_forward`` + ``conv2d_backward`` and through
``F.conv2d`` + autograd, interleaved, one thread each; the table shows medians and the ratio
ours / torch. The training row runs the cnn lab's full config (2 torch threads) and reports the
CPU time (process_time, summed over threads) and wall time at the first epoch with >= 91% test
accuracy. Wall time is inflated whenever other jobs share the machine; CPU time much less so.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy loads its BLAS
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch threads sleep, not spin

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from airoad.data import load  # noqa: E402
from airoad.labs.runners import cnn as cnn_runner  # noqa: E402
from airoad.neural import cnn  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "neural_cnn.md"
# (label, N, C_in, H, F, kernel, stride, padding): the two conv layers of the lab's CNN and a wider one.
SHAPES = [
    ("stage 1: 1->16, 28x28", 128, 1, 28, 16, 3, 1, 1),
    ("stage 2: 16->32, 14x14", 128, 16, 14, 32, 3, 1, 1),
    ("64->64, 7x7 stride 2", 128, 64, 7, 64, 3, 2, 1),
]


def conv_race(n, c, h, f, k, stride, padding, repeats: int) -> tuple[float, float, float]:
    """Median seconds of our forward+backward and torch's, and the max output difference."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, c, h, h)).astype(np.float32)
    w = (rng.normal(size=(f, c, k, k)) / np.sqrt(c * k * k)).astype(np.float32)
    b = np.zeros(f, np.float32)
    out, _ = cnn.conv2d_forward(x, w, b, stride, padding)
    g = rng.normal(size=out.shape).astype(np.float32)

    def ours():
        o, cache = cnn.conv2d_forward(x, w, b, stride, padding)
        cnn.conv2d_backward(g, cache)
        return o

    def theirs():
        xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
        o = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
        o.backward(torch.from_numpy(g))
        return o.detach().numpy()

    diff = float(np.abs(ours() - theirs()).max())  # also warms both up
    times: dict = {ours: [], theirs: []}
    for i in range(repeats):
        for fn in (ours, theirs) if i % 2 == 0 else (theirs, ours):
            t = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - t)
    return statistics.median(times[ours]), statistics.median(times[theirs]), diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--skip-train", action="store_true", help="only the conv rows")
    args = parser.parse_args()

    torch.set_num_threads(1)
    lines = ["| task | ours | torch | ours / torch | note |", "|---|---|---|---|---|"]
    for label, n, c, h, f, k, s, p in SHAPES:
        mine, lib, diff = conv_race(n, c, h, f, k, s, p, args.repeats)
        lines.append(
            f"| conv2d fwd+bwd, {label}, batch {n} | {mine * 1e3:.1f} ms | {lib * 1e3:.1f} ms | "
            f"{mine / lib:.2f}x | float32, max out diff {diff:.1e} |"
        )
        print(lines[-1], flush=True)
    if not args.skip_train:
        config = cnn_runner.Config()
        _, history, _ = cnn_runner.train(config, load("fashion-mnist"))
        hit = next((h for h in history if h["test_accuracy"] >= config.target_accuracy), None)
        last = history[-1]
        when = (
            f"{hit['cpu_seconds']:.0f} CPU-s / {hit['wall_seconds']:.0f} s wall (epoch {hit['epoch']})"
            if hit
            else "not reached"
        )
        lines.append(
            f"| seconds to {config.target_accuracy:.0%} test accuracy, Fashion-MNIST CNN "
            f"({config.threads} threads) | {when} | - | - | final {last['test_accuracy']:.4f} after "
            f"{config.epochs} epochs: {last['cpu_seconds']:.0f} CPU-s, {last['wall_seconds']:.0f} s wall |"
        )
        print(lines[-1], flush=True)
    table = "\n".join(lines)
    print("\n" + table)
    setup = (
        f"{date.today()}, Python {sys.version.split()[0]}, NumPy {np.__version__}, torch "
        f"{torch.__version__}, {platform.machine()}, {os.cpu_count()} cores (shared with other jobs)."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        f"# CNN benchmark\n\n{setup}\n\n`python benchmarks/neural_cnn.py`\n\n{table}\n"
    )


if __name__ == "__main__":
    main()
