"""Training throughput of our NumPy MLP vs the same network in PyTorch, one thread each.

Run from the repository root:  python benchmarks/neural_mlp.py [--repeats 5] [--steps 40]
Prints one markdown table and writes it (with the set-up) to benchmarks/results/neural_mlp.md.

One training step = forward, softmax cross-entropy, backward, SGD-with-momentum update on a
batch of real MNIST images. Ours and torch alternate so background load hits both alike; the
table shows medians. Both are also given as a fraction of this machine's float32 matmul
GFLOP/s, measured in the same run (the best of NumPy's and torch's 1024 x 1024 matmul,
before and after the race).
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

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy and torch load their BLAS

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from airoad.data import load  # noqa: E402
from airoad.neural import mlp_from_scratch as ref  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "neural_mlp.md"
SIZES = (784, 512, 256, 10)  # the lab's full config


def matmul_gflops(n: int = 1024, repeats: int = 7) -> tuple[float, float]:
    """Best float32 GFLOP/s of an n x n matmul in NumPy and in torch (2 n^3 flops each)."""
    rng = np.random.default_rng(0)
    a, b = (
        rng.standard_normal((n, n), dtype=np.float32),
        rng.standard_normal((n, n), dtype=np.float32),
    )
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    best = {"numpy": float("inf"), "torch": float("inf")}
    for _ in range(repeats):
        for name, fn in (("numpy", lambda: a @ b), ("torch", lambda: ta @ tb)):
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return 2 * n**3 / best["numpy"] / 1e9, 2 * n**3 / best["torch"] / 1e9


def flops_per_sample(sizes: tuple[int, ...]) -> int:
    """Multiply-adds x 2 of one training step per sample: forward, weight gradients, and the
    gradient passed down to every layer but the first (nobody needs d loss / d image)."""
    macs = [a * b for a, b in zip(sizes[:-1], sizes[1:])]
    return 2 * (2 * sum(macs) + sum(macs[1:]))


def ours_steps(X: np.ndarray, y: np.ndarray, batch: int, steps: int):
    net = ref.MLP(SIZES, seed=0)

    def go() -> None:
        for s in range(steps):
            i = (s * batch) % (len(X) - batch)
            _, grad = ref.softmax_cross_entropy(net.forward(X[i : i + batch]), y[i : i + batch])
            net.backward(grad)
            net.update_weights(0.01, 0.9)

    return go


def torch_steps(X: np.ndarray, y: np.ndarray, batch: int, steps: int):
    torch.manual_seed(0)
    layers = [torch.nn.Linear(a, b) for a, b in zip(SIZES[:-1], SIZES[1:])]
    net = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    tX, ty = torch.from_numpy(X), torch.from_numpy(y)

    def go() -> None:
        for s in range(steps):
            i = (s * batch) % (len(X) - batch)
            loss = F.cross_entropy(net(tX[i : i + batch]), ty[i : i + batch])
            opt.zero_grad()
            loss.backward()
            opt.step()

    return go


def race(ours, theirs, repeats: int) -> tuple[float, float]:
    """Median seconds of two zero-argument functions run interleaved (after one warm-up each)."""
    ours(), theirs()
    times: dict = {ours: [], theirs: []}
    for i in range(repeats):
        for fn in (ours, theirs) if i % 2 == 0 else (theirs, ours):
            start = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - start)
    return statistics.median(times[ours]), statistics.median(times[theirs])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40, help="training steps per timing")
    parser.add_argument("--batches", default="64,128,512")
    args = parser.parse_args()
    torch.set_num_threads(1)

    data = load("mnist")
    X = (
        (data["X_train"][:20_000].reshape(20_000, -1).astype(np.float32) / 255.0) - 0.1307
    ) / 0.3081
    y = np.asarray(data["y_train"][:20_000], dtype=np.int64)
    np_gflops, torch_gflops = matmul_gflops()
    fps = flops_per_sample(SIZES)

    rows = []
    for batch in (int(b) for b in args.batches.split(",")):
        t_ours, t_torch = race(
            ours_steps(X, y, batch, args.steps), torch_steps(X, y, batch, args.steps), args.repeats
        )
        sps_ours, sps_torch = batch * args.steps / t_ours, batch * args.steps / t_torch
        rows.append(
            (
                batch,
                sps_ours,
                sps_torch,
                sps_ours / sps_torch,
                sps_ours * fps / 1e9,
                sps_torch * fps / 1e9,
            )
        )
    # Measure the peak again after the race and keep the best: load from other processes
    # only ever slows a measurement down.
    np_gflops, torch_gflops = (
        max(a, b) for a, b in zip((np_gflops, torch_gflops), matmul_gflops())
    )
    peak = max(np_gflops, torch_gflops)
    rows = [(b, so, st, r, go / peak, gt / peak) for b, so, st, r, go, gt in rows]

    arch = "-".join(map(str, SIZES))
    table = [
        "| batch | NumPy samples/s | torch samples/s | NumPy / torch (target >= 0.8) "
        "| NumPy % of matmul peak | torch % of matmul peak |",
        "|---|---|---|---|---|---|",
    ]
    for batch, so, st, ratio, fo, ft in rows:
        ok = "yes" if ratio >= 0.8 else "NO"
        table.append(
            f"| {batch} | {so:,.0f} | {st:,.0f} | {ratio:.2f} ({ok}) | {100 * fo:.1f}% "
            f"| {100 * ft:.1f}% |"
        )
    setup = (
        f"MLP {arch}, float32, one training step = forward + cross-entropy + backward + "
        f"SGD momentum; {args.steps} steps per timing, median of {args.repeats}; "
        f"{fps / 1e6:.2f} MFLOP per sample. Matmul peak (1024^3, float32, 1 thread): "
        f"NumPy {np_gflops:.1f} GFLOP/s, torch {torch_gflops:.1f} GFLOP/s; peak = {peak:.1f}."
    )
    print(setup)
    print("\n".join(table))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(
        f"# NumPy MLP vs PyTorch: training throughput\n\n{date.today()}, Python "
        f"{platform.python_version()}, NumPy {np.__version__}, torch {torch.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} cores (shared), OMP_NUM_THREADS="
        f"{os.environ['OMP_NUM_THREADS']}, torch threads {torch.get_num_threads()}.\n\n"
        f"{setup}\n\n"
        + "\n".join(table)
        + "\n\nCommand: `"
        + " ".join(["python", *sys.argv])
        + "`\n"
    )


if __name__ == "__main__":
    main()
