"""Runner for grpo: group relative policy optimisation with the addition task's checker as the
reward, at two scales (the task is generated, no dataset: ``airoad.alignment.tiny_task``).

1. Tiny: the cached SFT policy of ``airoad.alignment.tiny_lm`` (quick or full model) is trained
   with GRPO for ``steps`` steps (``prompts`` problems x ``group`` samples each); the frozen SFT
   policy is the KL reference. Greedy accuracy on the held-out problems (2000 in the full config)
   before, during and after; reward, response length, KL and clipping per step.
2. Real: SmolLM2-135M-Instruct with LoRA gets a short GRPO run on the same kind of problems
   (``digits`` digits), the reward ``tiny_task.check_text`` (the reply's first integer is the sum);
   greedy accuracy on ``real_eval`` held-out problems before and after. ``real_steps = 0`` skips
   it (the quick config does, so it stays at seconds).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from airoad.alignment import grpo as ref
from airoad.alignment import tiny_lm
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes
from airoad.labs.runners import grpo_parts as parts


@dataclass(frozen=True)
class Config:
    tiny: str = param("full", choices=("full", "quick"))  # which cached SFT policy (tiny_lm)
    steps: int = param(120, ge=1, le=5_000)  # GRPO steps at the tiny scale
    prompts: int = param(32, ge=1, le=1_024)  # problems per step
    group: int = param(8, ge=2, le=64)  # G: samples per problem
    mu: int = param(2, ge=1, le=8)  # optimiser steps per batch of samples (the clip acts from 2)
    lr: float = param(1e-5, gt=0.0, le=1e-2)
    beta: float = param(0.04, ge=0.0, le=10.0)  # KL coefficient (DeepSeekMath: 0.04)
    epsilon: float = param(0.2, gt=0.0, lt=1.0)  # clip range
    loss_type: str = param("grpo", choices=ref.LOSS_TYPES)
    temperature: float = param(1.0, gt=0.0, le=5.0)
    eval_every: int = param(20, ge=1, le=5_000)  # tiny held-out accuracy every so many steps
    real_steps: int = param(8, ge=1, le=500, also=(0,))  # 0: skip SmolLM2
    real_prompts: int = param(4, ge=1, le=64)
    real_lr: float = param(3e-4, gt=0.0, le=1e-2)
    real_max_new: int = param(8, ge=2, le=64)
    real_eval: int = param(200, ge=1, le=5_000)
    real_batch: int = param(50, ge=1, le=512)  # prompts per greedy evaluation batch
    digits: int = param(2, ge=1, le=4)  # operand digits at the real scale
    lora_r: int = param(8, ge=1, le=128)
    seed: int = param(0, ge=0, le=1_000_000)


QUICK = {"tiny": "quick", "steps": 6, "prompts": 8, "group": 4, "eval_every": 3, "real_steps": 0}

NOTES = (
    "Tiny scale ({tiny} SFT policy, {n_eval} held-out problems): greedy accuracy {tiny_before:.3f} "
    "before GRPO, {tiny_after:.3f} after {steps} steps of {prompts} x {group} samples; sampled "
    "reward {reward_first:.3f} -> {reward_last:.3f}, mean response length {length_first:.2f} -> "
    "{length_last:.2f} tokens, KL to the SFT reference {kl_last:.4f} per token at the end.",
    "{real_note}",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    lm = tiny_lm.FULL if config.tiny == "full" else tiny_lm.QUICK
    sft, info = tiny_lm.load_sft(lm)
    held = tiny_lm.held_out(lm)
    _, rows, evals = parts.tiny_grpo(config, lm, sft, held, ctx)
    metrics = _tiny_metrics(rows, evals, info, len(held))
    parts.curves_figure(
        rows, evals, ctx, "tiny_curves", f"GRPO on the tiny SFT policy ({config.tiny})"
    )
    real_rows: list = []
    if config.real_steps:
        real_rows, real = parts.real_grpo(config, ctx)
        parts.curves_figure(
            real_rows, [], ctx, "real_curves", "GRPO on SmolLM2-135M-Instruct + LoRA"
        )
        metrics |= real | {"real_note": _real_note(config, real)}
    else:
        metrics["real_note"] = "Real scale skipped (real_steps = 0)."
    return LabResult(
        metrics=metrics,
        key_metric="tiny_after",
        library_metric=None,
        tables={"tiny_steps": rows, "tiny_eval": evals, "real_steps": real_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _tiny_metrics(rows: list, evals: list, info: dict, n_eval: int) -> dict:
    """Before/after accuracy, and the first/last tenth of the per-step curves."""
    k = max(len(rows) // 10, 1)
    mean = lambda part, key: sum(r[key] for r in part) / len(part)  # noqa: E731
    return {
        "tiny_before": evals[0]["accuracy"], "tiny_after": evals[-1]["accuracy"],
        "tiny_gain": evals[-1]["accuracy"] - evals[0]["accuracy"],
        "sft_cached_accuracy": info["accuracy"], "n_eval": n_eval,
        **{f"{key}_{end}": mean(part, key) for end, part in (("first", rows[:k]), ("last", rows[-k:]))
           for key in ("reward", "length", "kl", "clip_fraction", "tied_groups")},
    }  # fmt: skip


def _real_note(config: Config, real: dict) -> str:
    return (
        f"Real scale (SmolLM2-135M-Instruct + LoRA r={config.lora_r}, {config.digits}-digit "
        f"operands): greedy accuracy {real['real_before']:.3f} before, {real['real_after']:.3f} "
        f"after {config.real_steps} GRPO steps of {config.real_prompts} x {config.group} "
        f"samples, on {real['real_n_eval']} held-out problems ({real['real_seconds']:.0f} s)."
    )
