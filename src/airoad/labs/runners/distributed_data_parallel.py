"""Runner for distributed-data-parallel: DDP training on MNIST across CPU processes, a ring
all-reduce benchmark, and the alpha-beta model that extrapolates to many workers.

1. DDP: ``world_size`` gloo workers (``torchrun --nproc_per_node`` in the full run, spawned
   workers in the quick one) train an MLP with ``DistributedDataParallel``; the parent replays
   the same global batches in one process and compares parameters, losses and test accuracy.
2. Bandwidth: our send/recv ring and gloo's ``all_reduce`` on messages from 1 KiB up, at each
   group size; time and bus bandwidth (bytes * 2(p-1)/p / time) per size.
3. Cost model: alpha and beta fitted to our ring's times, then the time per step (compute of
   one rank's share, measured here, plus the all-reduce of the model's gradient) predicted at
   8, 64 and 512 workers, with and without compute/communication overlap.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, figure, param, render_notes, thread_limit
from airoad.labs.runners import distributed_data_parallel_parts as parts
from airoad.scale import distributed_data_parallel as ref
from airoad.scale.launch import WorkerGroup, torchrun


@dataclass(frozen=True)
class Config:
    world_size: int = param(2, ge=2, le=8)  # DDP workers (the machine's cores are shared)
    launcher: str = param("torchrun", choices=("torchrun", "spawn"))
    n_train: int = param(60_000, ge=256, le=60_000)  # MNIST training images used
    steps: int = param(500, ge=1, le=5_000)  # SGD steps (global batches)
    global_batch: int = param(256, ge=2, le=4_096)  # split evenly over the workers
    hidden: int = param(512, ge=1, le=4_096)  # two hidden layers of this width
    lr: float = param(0.1, gt=0.0, le=10.0)
    dtype: str = param("float64", choices=tuple(parts.DTYPES))
    bucket_mb: float = param(1.0, gt=0.0, le=1_024.0)  # DDP's bucket_cap_mb
    bench_world_sizes: tuple[int, ...] = param((2, 3, 4), ge=2, le=8)
    bench_max_log2: int = param(26, ge=10, le=28)  # largest message: 2**k bytes (from 1 KiB)
    repeats: int = param(6, ge=1, le=100)  # timed all-reduces per size (the fastest counts)
    probe_steps: int = param(50, ge=1, le=5_000)  # steps timed without all-reduce (compute)
    predict_workers: tuple[int, ...] = param((8, 64, 512), ge=2, le=100_000)
    what_if_mib: float = param(100.0, gt=0.0, le=100_000.0)  # a ResNet-50-sized gradient
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(
            self.global_batch % self.world_size == 0,
            "global_batch",
            f"must split evenly over world_size={self.world_size} workers",
        )


QUICK = {
    "launcher": "spawn",
    "n_train": 2048,
    "steps": 20,
    "lr": 0.5,
    "global_batch": 64,
    "hidden": 32,
    "bench_world_sizes": (2, 3),
    "bench_max_log2": 18,
    "repeats": 2,
    "probe_steps": 4,
}

NOTES = (
    "DDP on {world_size} workers ({launcher}), {steps} SGD steps of {global_batch} images: the "
    "largest parameter difference from one process on the same batches is {max_param_diff:.1e}; "
    "test accuracy {ddp_accuracy:.4f} (one process {single_accuracy:.4f}); DDP sent "
    "{buckets} buckets per step ({bucket_kib} KiB; our bucket_assignment makes {ours_buckets}) and "
    "took {ddp_step_ms:.1f} ms per step, {compute_ms:.1f} ms of it compute (no_sync); the "
    "alpha-beta model predicted {predicted_step_ms:.1f} ms. One process on the whole batch "
    "took {single_step_ms:.1f} ms per step.",
    "At {largest_kib:.0f} KiB and {bench_max_world} workers our ring moves {ours_busbw:.2f} GB/s "
    "of bus bandwidth and gloo's all_reduce {gloo_busbw:.2f} GB/s.",
    "Alpha-beta fit of our ring: alpha {alpha_us:.1f} us per message, 1/beta {bandwidth_gbs:.2f} "
    "GB/s; median relative error of the fit {fit_error:.0%}.",
    "Predicted time per step ({per_rank} images per worker, {compute_ms:.2f} ms of compute, "
    "{grad_kib:.0f} KiB of gradient): {prediction}.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    data = load("mnist")
    # in the run folder, so a run killed with -9 leaves its 47 MB job where its outputs are
    with tempfile.TemporaryDirectory(prefix=".job-", dir=ctx.out_dir) as work:
        job = _write_job(config, data, Path(work))
        ranks = _train_ddp(config, job, ctx)
    single = _train_single(config, data, ctx)
    metrics, losses = _compare(config, data, ranks, single)
    bench = _bench(config, ctx)
    alpha, beta, fit_error = _fit(bench)
    table, model_metrics = _scaling(config, metrics, single[0], alpha, beta, fit_error)
    metrics |= _bench_metrics(bench) | model_metrics
    _loss_figure(losses, metrics, ctx)
    _bandwidth_figure(bench, alpha, beta, ctx)
    _scaling_figure(table, metrics, config.world_size, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="ddp_accuracy",
        library_metric="single_accuracy",
        tables={"ddp_vs_single": losses, "bandwidth": bench, "scaling": table},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _scaling(config: Config, metrics: dict, model, alpha: float, beta: float, fit_error: float):
    """The alpha-beta model's time per step at each worker count, and its metrics."""
    grad_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    table = _predict(config, metrics["compute_ms"] / 1e3, grad_bytes, alpha, beta)
    return table, {
        "alpha_us": alpha * 1e6,
        # a busy machine can time small messages so noisily that the fit is latency only (beta 0)
        "bandwidth_gbs": 1e-9 / beta if beta > 0 else float("inf"),
        "fit_error": fit_error,
        "grad_kib": grad_bytes / 1024,
        "per_rank": config.global_batch // config.world_size,
        "prediction": _prediction_sentence(table, config.predict_workers),
        "predicted_step_ms": next(r["step_ms"] for r in table if r["workers"] == config.world_size),
    }


def _write_job(config: Config, data: dict, work: Path) -> Path:
    """The global batches every worker reads: MNIST rows in a seeded order, epoch after epoch."""
    X = torch.from_numpy(data["X_train"][: config.n_train])
    y = torch.from_numpy(data["y_train"][: config.n_train])
    rng = np.random.default_rng(config.seed)
    need = config.steps * config.global_batch
    epochs = -(-need // config.n_train)
    order = np.concatenate([rng.permutation(config.n_train) for _ in range(epochs)])[:need]
    job = {**asdict(config), "X": X, "y": y, "order": torch.from_numpy(order)}
    torch.save(job, work / "job.pt")
    return work / "job.pt"


def _train_ddp(config: Config, job: Path, ctx: RunContext) -> list[dict]:
    """Every rank's result, from torchrun (files the ranks wrote) or a spawned group."""
    with ctx.step(f"DDP training on {config.world_size} {config.launcher} workers"):
        if config.launcher == "spawn":
            with WorkerGroup(config.world_size) as group:
                return group.run(parts.train_worker, str(job))
        torchrun(parts.__name__, config.world_size, ["--job", str(job)])
        return [torch.load(job.parent / f"rank{r}.pt") for r in range(config.world_size)]


def _train_single(config: Config, data: dict, ctx: RunContext) -> tuple:
    """One process on the same global batches: (model, losses, seconds per step)."""
    with tempfile.TemporaryDirectory(prefix=".job-", dir=ctx.out_dir) as work:
        batches = parts.batches(
            torch.load(_write_job(config, data, Path(work)), weights_only=False)
        )
    dtype = parts.DTYPES[config.dtype]
    model = parts.mlp(config.hidden, config.seed, dtype)
    with thread_limit(1):  # one thread, like each worker: the step times compare
        ref.train_steps(parts.mlp(config.hidden, config.seed, dtype), batches[:2], config.lr)
        start = time.perf_counter()
        losses = ref.train_steps(model, batches, config.lr)
    return model, losses, (time.perf_counter() - start) / len(batches)


def _our_buckets(params: list[torch.Tensor], bucket_mb: float) -> int:
    """How many buckets our bucket_assignment makes with DDP's limits (1 MiB first, then cap)."""
    cap, first = int(bucket_mb * 2**20), dist._DEFAULT_FIRST_BUCKET_BYTES
    return len(ref.bucket_assignment(params[::-1], cap, first))


def _accuracy(params: list[torch.Tensor], config: Config, data: dict) -> float:
    model = parts.mlp(config.hidden, config.seed, parts.DTYPES[config.dtype])
    with torch.no_grad():
        for p, value in zip(model.parameters(), params, strict=True):
            p.copy_(value)
        X = torch.from_numpy(data["X_test"]).reshape(len(data["X_test"]), -1)
        pred = model(X.to(parts.DTYPES[config.dtype]) / 255.0).argmax(1).numpy()
    return float(np.mean(pred == data["y_test"]))


def _compare(config: Config, data: dict, ranks: list[dict], single: tuple) -> tuple:
    """Parameter gap (largest over ranks and tensors), accuracies, per-step losses."""
    model, single_losses, single_s = single
    want = [p.detach() for p in model.parameters()]
    gap = max(float((a - b).abs().max()) for r in ranks for a, b in zip(r["params"], want))
    ddp_losses = np.mean([r["losses"] for r in ranks], axis=0)  # rank means -> global mean
    rows = [
        {"step": i + 1, "ddp_loss": float(a), "single_loss": float(b)}
        for i, (a, b) in enumerate(zip(ddp_losses, single_losses, strict=True))
    ]
    return {
        "max_param_diff": gap,
        "max_loss_diff": float(np.max(np.abs(ddp_losses - np.asarray(single_losses)))),
        "ddp_accuracy": _accuracy(ranks[0]["params"], config, data),
        "single_accuracy": _accuracy(want, config, data),
        "ddp_step_ms": 1e3 * max(r["step_s"] for r in ranks),
        "single_step_ms": 1e3 * single_s,
        "buckets": len(ranks[0]["bucket_bytes"]),
        "bucket_kib": "+".join(f"{b / 1024:.0f}" for b in ranks[0]["bucket_bytes"]),
        "ours_buckets": _our_buckets(want, config.bucket_mb),
        "compute_ms": 1e3 * max(r["compute_s"] for r in ranks),
        "final_loss": float(ddp_losses[-1]),
    }, rows


def _busbw(row: dict, key: str) -> float:
    """Bus bandwidth in GB/s: the bytes each rank sends, 2(p-1)/p * n, over the time."""
    p = row["world"]
    return row["bytes"] * 2 * (p - 1) / p / row[key] / 1e9


def _bench(config: Config, ctx: RunContext) -> list[dict]:
    """Our ring and gloo's all_reduce timed at every message size and group size."""
    sizes = [2**k for k in range(10, config.bench_max_log2 + 1)]
    worlds = tuple(sorted(set(config.bench_world_sizes)))
    rows: list[dict] = []
    with WorkerGroup(max(worlds)) as group:
        for n_bytes in ctx.track(sizes, "all-reduce benchmark"):
            rows += group.run(parts.bench_worker, n_bytes, worlds, config.repeats)[0]
    for row in rows:
        row |= {"ours_busbw": _busbw(row, "ours_s"), "gloo_busbw": _busbw(row, "gloo_s")}
    return sorted(rows, key=lambda r: (r["world"], r["bytes"]))


def _fit(bench: list[dict]) -> tuple[float, float, float]:
    """alpha and beta of our ring from every measured (bytes, world, seconds), and the median
    relative error of the fitted model on those same points."""
    n, p, t = (np.array([r[k] for r in bench], dtype=float) for k in ("bytes", "world", "ours_s"))
    alpha, beta = ref.fit_alpha_beta(n, p, t)
    model = np.array([ref.allreduce_time(b, int(w), alpha, beta) for b, w in zip(n, p)])
    return alpha, beta, float(np.median(np.abs(model - t) / t))


def _bench_metrics(bench: list[dict]) -> dict:
    top = max(bench, key=lambda r: (r["bytes"], r["world"]))
    return {
        "largest_kib": top["bytes"] / 1024,
        "bench_max_world": top["world"],
        "ours_busbw": top["ours_busbw"],
        "gloo_busbw": top["gloo_busbw"],
    }


def _predict(config: Config, compute_s: float, grad_bytes: int, alpha: float, beta: float):
    """Time per step at each worker count (fixed images per worker), both overlap cases."""
    what_if = config.what_if_mib * 2**20
    rows = []
    for p in sorted({1, config.world_size, *config.bench_world_sizes, *config.predict_workers}):
        no, yes = (ref.step_time(compute_s, grad_bytes, p, alpha, beta, o) for o in (False, True))
        rows.append({
            "workers": p,
            "allreduce_ms": 1e3 * float(ref.allreduce_time(grad_bytes, p, alpha, beta)),
            "step_ms": 1e3 * no,
            "step_ms_overlap": 1e3 * yes,
            "efficiency": compute_s / no,
            "what_if_allreduce_ms": 1e3 * float(ref.allreduce_time(what_if, p, alpha, beta)),
        })  # fmt: skip
    return rows


def _prediction_sentence(table: list[dict], workers: tuple[int, ...]) -> str:
    picked = [r for r in table if r["workers"] in workers]
    return "; ".join(
        f"{r['workers']} workers {r['step_ms']:.2f} ms ({r['step_ms_overlap']:.2f} ms overlapped, "
        f"{r['efficiency']:.0%} of the step is compute)"
        for r in picked
    )


def _loss_figure(rows: list[dict], metrics: dict, ctx: RunContext) -> None:
    with figure(ctx, "ddp_vs_single", figsize=(6.4, 4)) as (fig, ax):
        steps = [r["step"] for r in rows]
        ax.plot(steps, [r["single_loss"] for r in rows], lw=3, alpha=0.5, label="one process")
        ax.plot(steps, [r["ddp_loss"] for r in rows], lw=1, ls="--", label="DDP (mean of ranks)")
        ax.set(xlabel="step", ylabel="training loss", yscale="log")
        ax.set_title(f"same global batches: largest parameter gap {metrics['max_param_diff']:.1e}")
        ax.legend()


def _bandwidth_figure(bench: list[dict], alpha: float, beta: float, ctx: RunContext) -> None:
    with figure(ctx, "bandwidth", 1, 2, figsize=(11, 4.2)) as (fig, (left, right)):
        for i, world in enumerate(sorted({r["world"] for r in bench})):
            rows = [r for r in bench if r["world"] == world]
            n = np.array([r["bytes"] for r in rows], dtype=float)
            color = f"C{i}"
            left.plot(n, [r["ours_s"] for r in rows], "o", color=color, label=f"ours, p={world}")
            left.plot(n, ref.allreduce_time(n, world, alpha, beta), "-", color=color, lw=1)
            right.plot(
                n, [r["ours_busbw"] for r in rows], "o-", color=color, label=f"ours p={world}"
            )
            right.plot(
                n, [r["gloo_busbw"] for r in rows], "x--", color=color, label=f"gloo p={world}"
            )
        left.set(xscale="log", yscale="log", xlabel="message bytes", ylabel="seconds")
        left.set_title("ring all-reduce time (dots) and the fitted alpha-beta model (lines)")
        right.set(xscale="log", xlabel="message bytes", ylabel="bus bandwidth, GB/s")
        right.set_title("bus bandwidth = bytes * 2(p-1)/p / time")
        left.legend(fontsize=8)
        right.legend(fontsize=8, ncol=2)


def _scaling_figure(table: list[dict], metrics: dict, world_size: int, ctx: RunContext) -> None:
    with figure(ctx, "scaling", figsize=(6.8, 4.2)) as (fig, ax):
        p = [r["workers"] for r in table]
        ax.plot(p, [r["step_ms"] for r in table], "o-", label="compute + all-reduce")
        ax.plot(p, [r["step_ms_overlap"] for r in table], "s--", label="perfect overlap")
        ax.axhline(metrics["compute_ms"], color="gray", lw=1, label="compute alone")
        ax.plot([world_size], [metrics["ddp_step_ms"]], "k*", ms=12,
                label="measured DDP step")  # fmt: skip
        ax.set(xscale="log", yscale="log", xlabel="workers", ylabel="ms per step")
        ax.set_title(f"predicted time per step, {metrics['per_rank']} images per worker")
        ax.legend(fontsize=8)
