"""Runner for sharded-training: ZeRO stages 1 and 2 from scratch, PyTorch's FSDP2 and DDP, each
training the same char-level GPT on Shakespeare over ``world`` gloo CPU processes; Megatron
tensor parallelism of one MLP block; a GPipe / 1F1B pipeline simulated.

Every mode starts from the same seeded weights and reads the same global batches, so after the
run their parameters are compared with DDP's element by element. Memory per rank is reported
three ways: the analytic bytes of the ZeRO paper's model, the bytes of the tensors each rank
really holds between backward and step, and the growth of the process's peak resident memory.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes, validate_config
from airoad.labs.runners import char_gpt_parts as text_parts
from airoad.labs.runners import sharded_training_parts as parts
from airoad.scale import pipeline_schedule as pipe_ref
from airoad.scale import sharded_training as zero_ref
from airoad.scale import tensor_parallel as tp_ref
from airoad.scale.launch import WorkerGroup
from airoad.transformer import char_gpt as gpt_ref
from airoad.transformer import gpt_training as train_ref

MB = 2**20


@dataclass(frozen=True)
class Config:
    text_chars: int = param(1_000_000, ge=20_000)  # the first characters of the works
    val_chars: int = param(50_000, ge=1_000)  # the held-out tail every mode is scored on
    world: int = param(2, ge=2, le=4)  # gloo processes
    n_layer: int = param(4, ge=1, le=12)
    n_head: int = param(4, ge=1, le=16)
    n_embd: int = param(256, ge=8, le=768)
    block_size: int = param(64, ge=8, le=512)
    batch_size: int = param(4, ge=1, le=256)  # windows per rank per step
    steps: int = param(60, ge=1, le=5_000)
    lr: float = param(1e-3, gt=0.0, le=1.0)
    weight_decay: float = param(0.1, ge=0.0, le=1.0)
    fsdp: bool = True  # also train with torch's fully_shard (ZeRO-3)
    stages: tuple[int, ...] = param((2, 4, 8), ge=1, le=64)  # pipeline depths simulated
    micro: tuple[int, ...] = param((1, 2, 4, 8, 16, 32), ge=1, le=1024)  # micro-batch counts
    backward_ratio: float = param(2.0, gt=0.0, le=10.0)  # t_backward / t_forward
    memory_worlds: tuple[int, ...] = param((2, 8, 64), ge=1, le=4096)  # ranks in the table
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(self.n_embd % self.n_head == 0, "n_embd", "must be a multiple of n_head")
        config_check(
            (4 * self.n_embd) % self.world == 0, "n_embd", "4 * n_embd must divide by world"
        )
        config_check(self.val_chars < self.text_chars // 2, "val_chars", "must be < text_chars/2")


# fmt: off
QUICK = {  # a 2-layer, 64-wide GPT, 8 steps per mode: seconds once the 2 workers are up
    "text_chars": 100_000, "val_chars": 5_000, "n_layer": 2, "n_head": 2, "n_embd": 64,
    "block_size": 32, "batch_size": 4, "steps": 8, "stages": (2, 4), "micro": (1, 4, 16),
}
# fmt: on

NOTES = (
    "{world} gloo processes, {n_parameters} parameters, {steps} steps: ZeRO-1 ends "
    "{zero1_max_diff:.1e} and ZeRO-2 {zero2_max_diff:.1e} from DDP's parameters (max abs), "
    "FSDP2 {fsdp2_max_diff:.1e}; held-out loss {zero2_val_loss:.3f} nats/char (DDP "
    "{ddp_val_loss:.3f}).",
    "Tensors held per rank: DDP {ddp_held_mb:.2f} MB, ZeRO-1 {zero1_held_mb:.2f}, ZeRO-2 "
    "{zero2_held_mb:.2f}, FSDP2 {fsdp2_held_mb:.2f} (analytic {ddp_analytic_mb:.2f} / "
    "{zero1_analytic_mb:.2f} / {zero2_analytic_mb:.2f} / {fsdp2_analytic_mb:.2f}); peak RSS "
    "grew {ddp_peak_rss_mb:.1f} / {zero1_peak_rss_mb:.1f} / {zero2_peak_rss_mb:.1f} / "
    "{fsdp2_peak_rss_mb:.1f} MB.",
    "Tensor-parallel MLP on {world} ranks: {tp_max_diff:.1e} from the unsharded block and "
    "{tp_torch_diff:.1e} from torch's Colwise/RowwiseParallel; gradients within {tp_grad_diff:.1e}.",
    "Pipeline: the simulated GPipe bubble is at most {pipe_max_formula_gap:.1e} from "
    "(p-1)/(m+p-1); with p={gantt_stages}, m={gantt_micro} it is {gantt_bubble:.3f}, and 1F1B "
    "holds {one_f_one_b_peak} micro-batches on stage 0 instead of {gantt_micro}.",
)


def _data(config: Config) -> tuple[train_ref.CharVocab, torch.Tensor, torch.Tensor]:
    """The first text_chars characters of the works; the last val_chars are held out."""
    text = text_parts.shakespeare_text(config.text_chars)
    vocab = train_ref.CharVocab(text)
    ids = vocab.encode(text)
    return vocab, ids[: -config.val_chars], ids[-config.val_chars :]


def _spec(config: Config, vocab_size: int) -> dict:
    model = {"vocab_size": vocab_size, "block_size": config.block_size, "n_layer": config.n_layer}
    model |= {"n_head": config.n_head, "n_embd": config.n_embd}
    keys = ("steps", "batch_size", "lr", "weight_decay", "seed")
    return {"model": model} | {k: getattr(config, k) for k in keys}


def _train_modes(config, group, spec, train, val, ctx) -> tuple[dict, list[dict], dict]:
    """Each mode trained from the same start on the same batches; compared with DDP."""
    modes = [m for m in parts.MODES if config.fsdp or m != "fsdp2"]
    metrics, rows, curves, finals = {}, [], {}, {}
    n_params = None
    for mode in modes:  # one step each first: one-time costs (gloo buffers, DTensor caches)
        group.run(parts.train_worker, mode, spec | {"steps": 1}, train)  # stay out of the peaks
    for mode in ctx.track(modes, "training DDP, ZeRO-1, ZeRO-2, FSDP2"):
        out = group.run(parts.train_worker, mode, spec, train)
        model = gpt_ref.GPT(gpt_ref.GPTConfig(**spec["model"]))
        torch.nn.utils.vector_to_parameters(out[0]["flat"], model.parameters())
        n_params = out[0]["flat"].numel()
        finals[mode] = out[0]["flat"]
        curves[mode] = torch.tensor([o["losses"] for o in out]).mean(0).tolist()
        analytic = zero_ref.memory_per_rank(n_params, config.world, parts.STAGE[mode])["total"]
        row = {
            "mode": mode,
            "world": config.world,
            "max_diff_vs_ddp": (finals[mode] - finals["ddp"]).abs().max().item(),
            "val_loss": train_ref.evaluate(model, val, config.block_size),
            "analytic_mb": analytic / MB,
            "held_mb": max(sum(o["held"].values()) for o in out) / MB,
            "grads_mb": max(o["held"]["grads"] for o in out) / MB,
            "peak_rss_mb": max(o["peak_mb"] for o in out),
            "s_per_step": max(o["seconds"] for o in out) / config.steps,
            "cpu_s_per_step": max(o["cpu_s"] for o in out) / config.steps,
        }
        rows.append(row)
        metrics |= {f"{mode}_{k}": v for k, v in row.items() if k not in ("mode", "world")}
        metrics[f"{mode}_max_diff"] = row["max_diff_vs_ddp"]
    metrics |= {"n_parameters": n_params, "ddp_final_loss": curves["ddp"][-1]}
    metrics["zero2_final_loss"] = curves["zero2"][-1]
    for key in ("max_diff", "held_mb", "analytic_mb", "peak_rss_mb"):  # fsdp=False: no row
        metrics.setdefault(f"fsdp2_{key}", float("nan"))
    return metrics, rows, curves


def _memory_table(config: Config, n_params: int) -> list[dict]:
    """The ZeRO paper's model for this GPT at larger world sizes (float32 Adam: 4 + 4 + 8 B)."""
    rows = []
    for world in config.memory_worlds:
        row = {"world": world}
        for mode, stage in parts.STAGE.items():
            row[f"{mode}_mb"] = zero_ref.memory_per_rank(n_params, world, stage)["total"] / MB
        rows.append(row)
    return rows


def _tensor_parallel(config: Config, group, spec: dict, train: torch.Tensor) -> dict:
    """One GPT block's MLP on real embedded text: shards summed on one process (world 1..8),
    then split over the group's ranks beside torch's tensor parallelism."""
    torch.manual_seed(config.seed)
    model = gpt_ref.GPT(gpt_ref.GPTConfig(**spec["model"]))
    mlp = model.blocks[0].mlp
    x, _ = train_ref.get_batch(train, 4, config.block_size, torch.Generator().manual_seed(0))
    hidden = (model.wte(x) + model.wpe(torch.arange(config.block_size))).detach()
    single = 0.0
    for world in (1, 2, 4, 8):
        shards = [tp_ref.ParallelMLP(mlp, r, world) for r in range(world)]
        single = max(
            single, (tp_ref.sum_of_shards(hidden, shards) - mlp(hidden)).abs().max().item()
        )
    out = group.run(parts.tensor_parallel_worker, mlp, hidden)
    return {
        "tp_single_process_diff": single,
        "tp_max_diff": max(o["out_diff"] for o in out),
        "tp_torch_diff": max(o["torch_diff"] for o in out),
        "tp_grad_diff": max(o["grad_diff"] for o in out),
        "tp_shard_fraction": out[0]["shard_params"] / sum(p.numel() for p in mlp.parameters()),
    }


def _pipeline(config: Config) -> tuple[dict, list[dict], dict]:
    """Simulated GPipe and 1F1B over every (stages, micro) pair; time lines for the figure."""
    rows, t_b = [], config.backward_ratio
    for p in config.stages:
        for m in config.micro:
            gpipe = pipe_ref.simulate(pipe_ref.gpipe_order(p, m), 1.0, t_b)
            ofob = pipe_ref.simulate(pipe_ref.one_f_one_b_order(p, m), 1.0, t_b)
            rows.append(
                {"stages": p, "micro": m, "gpipe_bubble": pipe_ref.bubble_fraction(gpipe),
                 "one_f_one_b_bubble": pipe_ref.bubble_fraction(ofob),
                 "formula": pipe_ref.gpipe_bubble(p, m),
                 "gpipe_stage0_in_flight": pipe_ref.peak_in_flight(gpipe, 0),
                 "one_f_one_b_stage0_in_flight": pipe_ref.peak_in_flight(ofob, 0)}
            )  # fmt: skip
    p, m = max(config.stages), max(config.micro)
    p, m = min(p, 4), min(m, 8)  # a time line small enough to read
    gantt = {
        "GPipe": pipe_ref.simulate(pipe_ref.gpipe_order(p, m), 1.0, t_b),
        "1F1B": pipe_ref.simulate(pipe_ref.one_f_one_b_order(p, m), 1.0, t_b),
    }
    metrics = {
        "pipe_max_formula_gap": max(abs(r["gpipe_bubble"] - r["formula"]) for r in rows),
        "gantt_stages": p,
        "gantt_micro": m,
        "gantt_bubble": pipe_ref.bubble_fraction(gantt["GPipe"]),
        "one_f_one_b_peak": pipe_ref.peak_in_flight(gantt["1F1B"], 0),
    }
    return metrics, rows, gantt


def run(config: Config, ctx: RunContext) -> LabResult:
    vocab, train, val = _data(config)
    spec = _spec(config, len(vocab.chars))
    # one `run` call trains a whole mode, so its deadline grows with the steps
    with WorkerGroup(config.world, timeout=60.0 + 5.0 * config.steps) as group:
        metrics, rows, curves = _train_modes(config, group, spec, train, val, ctx)
        metrics |= _tensor_parallel(config, group, spec, train)
    pipe_metrics, pipe_rows, gantt = _pipeline(config)
    metrics |= pipe_metrics
    parts.memory_figure(rows, ctx)
    parts.loss_figure(curves, ctx)
    parts.pipeline_figure(pipe_rows, gantt, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="zero2_final_loss",
        library_metric="ddp_final_loss",
        tables={
            "modes": rows,
            "memory_model": _memory_table(config, metrics["n_parameters"]),
            "pipeline": pipe_rows,
            "loss_curve": [
                {"step": i + 1} | {m: c[i] for m, c in curves.items()} for i in range(config.steps)
            ],
        },
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
