"""The sharded-training runner's worker entry points and figures.

The workers of an ``airoad.scale.launch.WorkerGroup`` call these functions by name, so they live
at module level here. Every training mode starts from the same seeded char-level GPT and reads
the same global batches (rank r takes rows r*B..(r+1)*B of each), so their parameters can be
compared number by number.
"""

from __future__ import annotations

import copy
import ctypes
import gc
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.scale import pipeline_schedule as pipe_ref
from airoad.scale import sharded_training as zero_ref
from airoad.scale import tensor_parallel as tp_ref
from airoad.transformer import char_gpt as gpt_ref
from airoad.transformer import gpt_training as train_ref

MODES = ("ddp", "zero1", "zero2", "fsdp2")
STAGE = {"ddp": 0, "zero1": 1, "zero2": 2, "fsdp2": 3}  # the ZeRO stage each mode implements


# ---------------------------------------------------------------- memory of this process


def _status_kib(field: str) -> int:
    """A VmRSS / VmHWM line of /proc/self/status in KiB (0 where /proc does not exist)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return 0
    line = next(ln for ln in status.read_text().splitlines() if ln.startswith(field + ":"))
    return int(line.split()[1])


def _reset_peak() -> int:
    """Free what can be freed, reset the kernel's peak-RSS mark, return the current RSS (KiB).

    Writing 5 to /proc/self/clear_refs resets VmHWM (Linux). glibc is told to hand every block
    over 64 KiB back to the kernel when freed, so a tensor freed by an earlier run does not hide
    the next run's growth in the heap.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 * 1024)  # M_MMAP_THRESHOLD: fixed, so big tensors get their own maps
        libc.malloc_trim(0)
        Path("/proc/self/clear_refs").write_text("5")
    return _status_kib("VmRSS")


# ---------------------------------------------------------------- one training run per mode


def _tensor_bytes(tensors) -> int:
    local = [t.to_local() if hasattr(t, "to_local") else t for t in tensors if t is not None]
    return sum(t.numel() * t.element_size() for t in local)


def _held(model: nn.Module, opt) -> dict[str, int]:
    """Bytes of parameters, gradients and optimizer state this rank holds (between backward and
    step); for FSDP2 the local shards of its DTensors."""
    if isinstance(opt, zero_ref.ZeroAdamW):
        return opt.held_bytes()
    params = list(model.parameters())
    state = [t for s in opt.state.values() for t in s.values() if torch.is_tensor(t) and t.dim()]
    return {
        "params": _tensor_bytes(params),
        "grads": _tensor_bytes(p.grad for p in params),
        "optimizer": _tensor_bytes(state),
    }


def _wrap(mode: str, model: gpt_ref.GPT, world: int, spec: dict):
    """The model each rank calls and its optimizer: torch's DDP or FSDP2 with torch's AdamW, or
    the plain model with our ZeroAdamW."""
    hyper = {"lr": spec["lr"], "betas": (0.9, 0.95), "weight_decay": spec["weight_decay"]}
    if mode.startswith("zero"):
        return model, zero_ref.ZeroAdamW(model.parameters(), stage=STAGE[mode], **hyper)
    if mode == "ddp":
        net = nn.parallel.DistributedDataParallel(model, gradient_as_bucket_view=True)
        return net, torch.optim.AdamW(model.parameters(), **hyper)
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    mesh = init_device_mesh("cpu", (world,))
    for block in model.blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)  # the root holds the tied embedding and the final LayerNorm
    return model, torch.optim.AdamW(model.parameters(), **hyper)


def train_worker(rank: int, world: int, mode: str, spec: dict, data: torch.Tensor) -> dict:
    """Train ``spec``'s GPT for spec["steps"] steps under ``mode`` on this rank's share of the
    batches; rank 0 also returns the final full parameters as one flat float32 vector."""
    base = _reset_peak()
    torch.manual_seed(spec["seed"])
    model = gpt_ref.GPT(gpt_ref.GPTConfig(**spec["model"]))
    net, opt = _wrap(mode, model, world, spec)
    gen, b = torch.Generator().manual_seed(spec["seed"] + 1), spec["batch_size"]
    losses, held, start, cpu = [], {}, time.perf_counter(), time.process_time()
    for _ in range(spec["steps"]):
        x, y = train_ref.get_batch(data, b * world, spec["model"]["block_size"], gen)
        x, y = x[rank * b : (rank + 1) * b], y[rank * b : (rank + 1) * b]
        logits = net(x)
        loss = nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        held = _held(model, opt)
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    full = [p.full_tensor() if hasattr(p, "full_tensor") else p for p in model.parameters()]
    flat = torch.cat([p.detach().reshape(-1) for p in full]) if rank == 0 else None
    peak_mb = (_status_kib("VmHWM") - base) / 1024
    del net, opt, model, full
    dist.barrier()
    return {
        "losses": losses,
        "held": held,
        "peak_mb": peak_mb,
        "seconds": seconds,
        "cpu_s": cpu,
        "flat": flat,
    }


def tensor_parallel_worker(rank: int, world: int, mlp: nn.Module, x: torch.Tensor) -> dict:
    """Our Megatron MLP shard and torch's Colwise/RowwiseParallel on the same x; their outputs,
    the unsharded output and the max differences of dL/dx and this rank's weight gradients."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import (
        ColwiseParallel,
        RowwiseParallel,
        parallelize_module,
    )

    shard = tp_ref.ParallelMLP(mlp, rank, world)
    xs = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    ours, full = shard(xs[0]), mlp(xs[1])
    ours.sum().backward()
    full.sum().backward()
    lo, hi = tp_ref.shard_bounds(mlp.c_fc.weight.shape[0], rank, world)
    plan = {"c_fc": ColwiseParallel(), "c_proj": RowwiseParallel()}
    theirs = parallelize_module(copy.deepcopy(mlp), init_device_mesh("cpu", (world,)), plan)(x)
    return {
        "out_diff": (ours - full).abs().max().item(),
        "torch_diff": (ours - torch.tensor(theirs.tolist())).abs().max().item(),
        "grad_diff": max(
            (xs[0].grad - xs[1].grad).abs().max().item(),
            (shard.c_fc.weight.grad - mlp.c_fc.weight.grad[lo:hi]).abs().max().item(),
            (shard.c_proj_weight.grad - mlp.c_proj.weight.grad[:, lo:hi]).abs().max().item(),
        ),
        "shard_params": sum(p.numel() for p in shard.parameters()),
    }


# ---------------------------------------------------------------- figures


def memory_figure(rows: list[dict], ctx: RunContext) -> None:
    """Per-rank memory of each mode: the analytic model beside the tensors held and peak RSS."""
    with figure(ctx, "memory_per_rank", figsize=(7.5, 4.2)) as (fig, ax):
        at = np.arange(len(rows))
        for k, (key, label) in enumerate(
            [("analytic_mb", "analytic (params+grads+Adam)"), ("held_mb", "tensors held"),
             ("peak_rss_mb", "peak RSS growth (measured)")]
        ):  # fmt: skip
            ax.bar(at + (k - 1) * 0.27, [r[key] for r in rows], 0.27, label=label)
        ax.set_xticks(at, [r["mode"] for r in rows])
        ax.set_ylabel("MB per rank")
        ax.set_title(f"Memory per rank, {rows[0]['world']} gloo processes")
        ax.legend(fontsize=8)


def loss_figure(curves: dict[str, list[float]], ctx: RunContext) -> None:
    """Training loss per step of every mode (they lie on top of each other)."""
    with figure(ctx, "loss_curves", figsize=(7, 4)) as (fig, ax):
        for (mode, losses), style in zip(curves.items(), ("-", "--", ":", "-.")):
            ax.plot(range(1, len(losses) + 1), losses, style, label=mode)
        ax.set_xlabel("step")
        ax.set_ylabel("train loss (nats/char, mean over ranks)")
        ddp = np.array(curves["ddp"])
        gap = max(float(np.abs(np.array(c) - ddp).max()) for c in curves.values())
        ax.set_title(f"Same start, same batches: largest gap from DDP {gap:.1e} nats")
        ax.legend()


def pipeline_figure(rows: list[dict], gantt: dict[str, list], ctx: RunContext) -> None:
    """Left: simulated bubble vs micro-batches with the formula; right: GPipe and 1F1B time lines."""
    with figure(ctx, "pipeline_bubble", 1, 3, figsize=(14, 4)) as (fig, axes):
        for p in sorted({r["stages"] for r in rows}):
            mine = [r for r in rows if r["stages"] == p]
            m = [r["micro"] for r in mine]
            axes[0].plot(m, [r["gpipe_bubble"] for r in mine], "o", label=f"p={p} simulated")
            axes[0].plot(m, [r["formula"] for r in mine], "-", color="grey", lw=0.8)
        axes[0].set_xscale("log", base=2)
        axes[0].set_xlabel("micro-batches m")
        axes[0].set_ylabel("idle fraction")
        axes[0].set_title("GPipe bubble; lines: (p-1)/(m+p-1)")
        axes[0].legend(fontsize=8)
        for ax, (name, ops) in zip(axes[1:], gantt.items()):
            for op in ops:
                color = "tab:blue" if op.kind == "F" else "tab:orange"
                ax.barh(op.stage, op.end - op.start, left=op.start, color=color, edgecolor="k")
                ax.text((op.start + op.end) / 2, op.stage, str(op.micro), ha="center", va="center")
            ax.set_yticks(sorted({op.stage for op in ops}))
            ax.invert_yaxis()
            ax.set_xlabel("time (forward = 1)")
            ax.set_ylabel("stage")
            bubble = pipe_ref.bubble_fraction(ops)
            ax.set_title(f"{name}: blue F, orange B, bubble {bubble:.2f}")
