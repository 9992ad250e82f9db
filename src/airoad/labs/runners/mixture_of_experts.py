"""Runner for mixture-of-experts: char-gpt with routed experts against the dense char-gpt.

Both models share everything but the feed-forward layer: the same data (Shakespeare's
characters, char-gpt's split), seed, batches, schedule and attention. Each MoE expert is as wide
as 4C / k, so a token's active parameters match the dense model's (plus a router). First both
train for the same number of steps; then the slower of the two trains again, with its schedule
shortened to the steps that fit the faster one's training seconds: equal time. Those seconds
are the process's CPU seconds by default (on a machine shared with other jobs, wall seconds
measure the neighbours as much as the model; on an idle one, CPU seconds = wall seconds x
threads); ``clock=wall`` uses wall seconds. The expert load of every MoE step (share per
expert, drop rate) is kept for the utilisation figure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes, validate_config
from airoad.labs.runners import mixture_of_experts_parts as parts


@dataclass(frozen=True)
class Config:
    text_chars: int = param(0, ge=0)  # 0 = the whole corpus (about 5.06 M characters)
    val_fraction: float = param(0.1, gt=0.0, le=0.5)
    val_chars: int = param(100_000, ge=1_000)  # the held-out slice of the final numbers
    curve_chars: int = param(10_000, ge=500)  # the slice scored during training
    n_layer: int = param(4, ge=1, le=12)
    n_head: int = param(4, ge=1, le=16)
    n_embd: int = param(64, ge=8, le=512)
    block_size: int = param(64, ge=8, le=512)
    batch_size: int = param(16, ge=1, le=512)
    steps: int = param(800, ge=2, le=100_000)
    warmup_steps: int = param(50, ge=1)
    max_lr: float = param(6e-3, gt=0.0, le=1.0)
    min_lr: float = param(6e-4, ge=0.0, le=1.0)
    weight_decay: float = param(0.1, ge=0.0, le=1.0)
    grad_clip: float = param(1.0, gt=0.0)
    precision: str = param("fp32", choices=("fp32", "bf16"))  # bf16 autocast slows the MoE here
    eval_every: int = param(100, ge=1)
    n_experts: int = param(8, ge=1, le=64)
    top_k: int = param(2, ge=1, le=8)
    expert_hidden: int = param(0, ge=1, le=8192, also=(0,))  # 0 = 4 * n_embd / top_k
    capacity_factor: float = param(1.25, gt=0.0, le=64.0)
    eval_capacity_factor: float = param(2.0, gt=0.0, le=64.0)
    balance_coef: float = param(0.01, ge=0.0, le=10.0)
    z_coef: float = param(0.001, ge=0.0, le=10.0)
    noise_std: float = param(0.0, ge=0.0, le=10.0)
    clock: str = param("cpu", choices=("cpu", "wall"))  # the seconds that "equal time" equalises
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(self.n_embd % self.n_head == 0, "n_embd", "must be a multiple of n_head")
        config_check(self.warmup_steps < self.steps, "warmup_steps", "must be below steps")
        config_check(self.min_lr <= self.max_lr, "min_lr", "must not exceed max_lr")
        config_check(self.top_k <= self.n_experts, "top_k", "must not exceed n_experts")
        config_check(
            self.expert_hidden > 0 or (4 * self.n_embd) % self.top_k == 0,
            "top_k",
            "must divide 4 * n_embd (or set expert_hidden)",
        )


# fmt: off
QUICK = {  # 2 layers x 32 wide, 60 steps on the first 300 k characters: seconds
    "text_chars": 300_000, "val_chars": 10_000, "curve_chars": 2_000, "n_layer": 2,
    "n_head": 2, "n_embd": 32, "block_size": 32, "batch_size": 16, "steps": 60,
    "warmup_steps": 5, "max_lr": 1e-2, "min_lr": 1e-3, "eval_every": 20,
}
# fmt: on

NOTES = (
    "Equal steps ({steps}): MoE ({n_experts} experts, top-{top_k}, {moe_total_params} params, "
    "{moe_active_params} active) {moe_val_loss:.3f} nats/char against dense "
    "({dense_total_params} params) {dense_val_loss:.3f}: {equal_steps_winner} ends lower.",
    "Speed: dense {dense_tokens_per_cpu_s:.0f} tokens per CPU-second, MoE "
    "{moe_tokens_per_cpu_s:.0f} ({moe_step_cost:.2f}x the dense step's {clock} time; wall: "
    "dense {dense_tokens_per_s:.0f}, MoE {moe_tokens_per_s:.0f} tokens/s).",
    "Equal time ({equal_time_seconds:.0f} {clock} seconds of training): {equal_time_kind} "
    "retrained for "
    "{equal_time_steps} steps scores {equal_time_val_loss:.3f} against {equal_time_rival} "
    "{equal_time_rival_val_loss:.3f}: {equal_time_winner} ends lower.",
    "Expert load: {moe_drop_rate:.1%} of assignments dropped (second half of training, capacity "
    "factor {capacity_factor}); at the end block 0 sends {max_expert_share_layer0:.0%} to its "
    "busiest expert; balance loss {balance_loss_layer0:.3f} (transformers' differs by "
    "{balance_loss_transformers_diff:.1e}).",
)


def _equal_time(runs: dict, train_ids, val_ids, vocab: int, config: Config, ctx) -> dict:
    """The slower model again, its schedule cut to the steps that fit the faster one's seconds."""
    clock = _clock(config)
    slow, fast = sorted(("dense", "moe"), key=lambda k: -runs[k][clock])
    per_step = runs[slow][clock] / runs[slow]["steps"]
    steps = max(config.warmup_steps + 1, math.floor(runs[fast][clock] / per_step))
    run = parts.train(slow, steps, train_ids, val_ids, vocab, config, ctx)
    for row in run["curve"]:
        row["run"] = f"{slow}, equal time"
    return run | {"kind": slow, "rival": fast}


def _clock(config: Config) -> str:
    return "cpu_seconds" if config.clock == "cpu" else "seconds"


def _compare(runs: dict, val_ids, config: Config) -> tuple[dict, list[dict]]:
    """The table (one row per run) and the headline metrics with their computed winners."""
    scores = {name: parts.score(run, val_ids, config) for name, run in runs.items()}
    rows = [{"run": name} | s for name, s in scores.items()]
    m = {f"{kind}_{key}": scores[kind][key] for kind in ("dense", "moe") for key in scores[kind]}
    eq, rival, clock = runs["equal_time"], runs["equal_time"]["rival"], _clock(config)
    m |= {
        "moe_drop_rate": scores["moe"]["drop_rate_2nd_half"],
        "moe_step_cost": runs["moe"][clock] / runs["dense"][clock],
        "equal_steps_winner": min(("dense", "moe"), key=lambda k: scores[k]["val_loss"]),
        "equal_time_kind": eq["kind"],
        "equal_time_rival": rival,
        "equal_time_steps": eq["steps"],
        "equal_time_seconds": runs[rival][clock],
        "equal_time_val_loss": scores["equal_time"]["val_loss"],
        "equal_time_rival_val_loss": scores[rival]["val_loss"],
    }
    better = scores["equal_time"]["val_loss"] < scores[rival]["val_loss"]
    m["equal_time_winner"] = eq["kind"] if better else rival
    m["expert_hidden"] = parts.expert_hidden(config)
    return m, rows


def run(config: Config, ctx: RunContext) -> LabResult:
    train_ids, val_ids, vocab = parts.shakespeare(config)
    runs = {
        kind: parts.train(kind, config.steps, train_ids, val_ids, vocab, config, ctx)
        for kind in ("dense", "moe")
    }
    runs["equal_time"] = _equal_time(runs, train_ids, val_ids, vocab, config, ctx)
    metrics, rows = _compare(runs, val_ids, config)
    metrics |= parts.balance_check(runs["moe"]["model"], val_ids, config)
    metrics["vocab_size"] = vocab

    curves = [row for r in runs.values() for row in r["curve"]]
    parts.loss_figure(curves, config.clock, ctx)
    parts.load_figure(runs["moe"]["load"], config, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="moe_val_loss",
        library_metric="dense_val_loss",
        tables={"runs": rows, "curves": curves},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
