"""Worker side of the distributed-data-parallel runner: what every rank runs.

- ``train_worker``: DDP training of an MLP on MNIST from a job file (the global batches and the
  model settings the parent wrote), the same function under ``WorkerGroup`` (quick) and under
  ``torchrun`` (``python -m airoad.labs.runners.distributed_data_parallel_parts --job FILE``).
- ``bench_worker``: times our ring all-reduce and gloo's ``dist.all_reduce`` over message sizes
  and group sizes; every time is the slowest rank's, the best of the repeats.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from airoad.scale import distributed_data_parallel as ref
from airoad.scale.launch import init_from_env

DTYPES = {"float32": torch.float32, "float64": torch.float64}


def mlp(hidden: int, seed: int, dtype: torch.dtype) -> nn.Module:
    """784 -> hidden -> hidden -> 10 with ReLU; the same initial weights wherever ``seed`` is."""
    torch.manual_seed(seed)
    layers = [nn.Linear(784, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()]
    return nn.Sequential(*layers, nn.Linear(hidden, 10)).to(dtype)


def batches(job: dict) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The global batches of the job: pixels scaled to [0, 1], rows in the job's seeded order."""
    dtype = DTYPES[job["dtype"]]
    X, y, order = job["X"], job["y"], job["order"]
    rows = order.view(-1, job["global_batch"])
    return [(X[r].reshape(len(r), -1).to(dtype) / 255.0, y[r]) for r in rows]


def train_worker(rank: int, world_size: int, job_path: str) -> dict:
    """Train the job's MLP with DistributedDataParallel on this rank's share; return its
    parameters, local losses and seconds per step (wall, this rank)."""
    job = torch.load(job_path, weights_only=False)
    model = mlp(job["hidden"], job["seed"], DTYPES[job["dtype"]])
    data = batches(job)
    ddp = DistributedDataParallel(model, bucket_cap_mb=job["bucket_mb"])
    ref.train_steps(ddp, data[:2], 0.0, rank, world_size)  # warm-up steps (lr 0: no change)
    probe = data[: job["probe_steps"]]
    with ddp.no_sync():  # the same steps without any all-reduce: compute alone
        start = time.perf_counter()
        ref.train_steps(ddp, probe, 0.0, rank, world_size)
        compute_s = (time.perf_counter() - start) / len(probe)
    dist.barrier()
    start = time.perf_counter()
    losses = ref.train_steps(ddp, data, job["lr"], rank, world_size)
    seconds = (time.perf_counter() - start) / len(data)
    logged = ddp._get_ddp_logging_data()  # bytes per bucket, as DDP (re)built them
    sizes = logged.get("rebuilt_bucket_sizes", logged["bucket_sizes"])
    return {
        "params": [p.detach().clone() for p in model.parameters()],
        "losses": losses,
        "step_s": seconds,
        "compute_s": compute_s,
        "bucket_bytes": [int(b) for b in str(sizes).replace(",", " ").split()],
    }


_groups: dict[int, dist.ProcessGroup | None] = {}


def _group_of(size: int) -> dist.ProcessGroup | None:
    """Ranks 0..size-1 (every rank creates every subgroup once, in the same order)."""
    if not _groups:
        world = dist.get_world_size()
        _groups.update({s: dist.new_group(list(range(s))) for s in range(2, world)})
        _groups[world] = None
    return _groups[size]


def _slowest(seconds: float, group: dist.ProcessGroup | None) -> float:
    t = torch.tensor([seconds], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX, group=group)
    return float(t)


def bench_worker(rank: int, world_size: int, n_bytes: int, sizes: tuple, repeats: int) -> list:
    """Rows (world, bytes, ours_s, gloo_s) for one message size at each group size; rank 0's."""
    rows = []
    for size in sizes:
        group = _group_of(size)
        if rank >= size:
            continue
        x = torch.ones(max(n_bytes // 4, 1), dtype=torch.float32)
        times: dict[str, list[float]] = {"ours": [], "gloo": []}
        for _ in range(repeats + 1):  # the first round warms up connections and buffers
            for name in ("ours", "gloo"):
                dist.barrier(group=group)
                start = time.perf_counter()
                if name == "ours":
                    ref.ring_all_reduce(x, group)
                else:
                    dist.all_reduce(x, group=group)
                times[name].append(_slowest(time.perf_counter() - start, group))
                x.fill_(1.0)  # keep the values small: sums of sums would overflow
        # the fastest repeat: the machine's cost with the least interference from other jobs
        ours, gloo = (float(np.min(times[k][1:])) for k in ("ours", "gloo"))
        rows.append({"world": size, "bytes": x.numel() * 4, "ours_s": ours, "gloo_s": gloo})
    return rows if rank == 0 else []


def main() -> None:
    """The torchrun entry point: join the group, train, write ``rank<r>.pt`` beside the job."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--job", required=True, help="the job file the runner wrote")
    job = Path(parser.parse_args().job)
    rank, world_size = init_from_env()
    try:
        result = train_worker(rank, world_size, str(job))
        torch.save(result, job.parent / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
