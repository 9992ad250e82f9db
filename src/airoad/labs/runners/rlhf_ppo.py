"""Runner for rlhf-ppo: PPO against a learned reward model, with and without the KL penalty.

1. Tiny scale: the cached SFT policy of the addition task (``tiny_lm``) is optimised with PPO
   against the cached Bradley-Terry reward model (``reward_model``), once per KL coefficient in
   ``betas`` (0 = no penalty). Every iteration records the reward-model score and the checker's
   accuracy of the sampled responses and the KL to the SFT policy; greedy held-out checkpoints
   show whether a higher reward-model score still means more right answers (reward hacking).
2. Real scale (``real_iterations`` > 0): SmolLM2-135M-Instruct + LoRA, a short PPO run against
   the SmolLM2 reward model (``reward_model_cache.load_real_reward_model``); greedy checker accuracy
   and reward-model score on held-out 2-digit problems before and after.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from airoad.alignment import reward_model_cache, tiny_lm, tiny_task
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes
from airoad.labs.runners import rlhf_ppo_parts as parts


@dataclass(frozen=True)
class Config:
    tiny: str = param("full", choices=("full", "quick"))  # tiny_lm.FULL or tiny_lm.QUICK models
    betas: tuple[float, ...] = param((0.0, 0.05, 0.3), ge=0.0, le=10.0)  # KL coefficients compared
    iterations: int = param(120, ge=1, le=5_000)  # PPO iterations per beta
    batch: int = param(64, ge=2, le=2_048)  # prompts sampled per iteration
    minibatch: int = param(32, ge=2, le=2_048)
    ppo_epochs: int = param(4, ge=1, le=20)  # passes over each batch
    lr: float = param(5e-5, gt=0.0, le=1.0)  # Adam
    clip: float = param(0.2, gt=0.0, lt=1.0)  # ratio clip epsilon
    value_clip: float = param(0.2, ge=0.0, le=100.0)  # 0 = unclipped value loss
    vf_coef: float = param(0.1, ge=0.0, le=10.0)
    gamma: float = param(1.0, ge=0.0, le=1.0)
    lam: float = param(0.95, ge=0.0, le=1.0)
    temperature: float = param(1.0, gt=0.0, le=5.0)  # sampling during training
    eval_every: int = param(10, ge=1, le=5_000)  # greedy held-out checkpoint every N iterations
    n_curve: int = param(500, ge=10, le=10_000)  # held-out problems per checkpoint
    real_iterations: int = param(6, ge=0, le=500)  # 0 = skip the SmolLM2 run
    real_batch: int = param(16, ge=2, le=256)
    real_lr: float = param(1e-4, gt=0.0, le=1.0)
    real_beta: float = param(0.05, ge=0.0, le=10.0)
    real_rank: int = param(8, ge=1, le=128)  # LoRA rank on q_proj and v_proj
    real_max_new: int = param(8, ge=1, le=64)  # reply tokens (the answer comes first or not at all)
    real_eval: int = param(100, ge=10, le=5_000)  # held-out 2-digit problems, before and after
    seed: int = param(0, ge=0, le=1_000_000)

    def __post_init__(self) -> None:
        config_check(len(self.betas) >= 1, "betas", "needs at least one KL coefficient")
        config_check(self.minibatch <= self.batch, "minibatch", "must be at most batch")


QUICK = {"tiny": "quick", "iterations": 3, "batch": 16, "minibatch": 8, "ppo_epochs": 2,
         "eval_every": 2, "n_curve": 50, "real_iterations": 0}  # fmt: skip

NOTES = (
    "Tiny SFT policy: held-out accuracy {sft_accuracy:.3f}, mean reward-model score "
    "{sft_rm_score:.2f} ({n_held} held-out problems, greedy).",
    "After {iterations} PPO iterations with beta = {beta_kl:g}: accuracy {kl_accuracy:.3f}, RM "
    "score {kl_rm_score:.2f}, KL to SFT {kl_kl:.2f} nats per response.",
    "With beta = 0: accuracy {free_accuracy:.3f}, RM score {free_rm_score:.2f}, KL to SFT "
    "{free_kl:.2f} nats: {hacking}.",
    "SmolLM2-135M-Instruct + LoRA, {real_iterations} PPO iterations against the SmolLM2 reward "
    "model (held-out pair accuracy {real_rm_pair_accuracy:.2f}): checker accuracy "
    "{real_before:.3f} -> {real_after:.3f} and RM score {real_rm_before:.2f} -> "
    "{real_rm_after:.2f} on {real_eval} held-out 2-digit problems (greedy), KL to the start "
    "{real_kl_last:.2f} nats per reply.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    lm_config = tiny_lm.QUICK if config.tiny == "quick" else tiny_lm.FULL
    sft, info = tiny_lm.load_sft(lm_config)
    rm = reward_model_cache.load_tiny_reward_model(lm_config)
    held = tiny_lm.held_out(lm_config)
    start = parts.evaluate_tiny(sft, rm, held)
    bias = start["rm_score"]  # reward = RM score - the SFT policy's mean (InstructGPT's bias)
    runs = [parts.train_tiny(config, sft, rm, b, held, ctx.track, bias) for b in config.betas]
    metrics = {"sft_accuracy": start["accuracy"], "sft_rm_score": start["rm_score"],
               "sft_cached_accuracy": info["accuracy"], "n_held": len(held),
               **_compare_betas(runs, start)}  # fmt: skip
    real_metrics, real_rows = _real_scale(config, ctx)
    metrics |= real_metrics
    parts.curves_figure(runs, ctx)
    parts.hacking_figure(runs, ctx)
    notes = NOTES if config.real_iterations else NOTES[:-1]
    return LabResult(
        metrics=metrics,
        key_metric="kl_accuracy",
        library_metric=None,
        tables={
            "curves": [r for run in runs for r in run["rows"]],
            "checkpoints": [{"beta": run["beta"], **c} for run in runs for c in run["checks"]],
            "final": [{"beta": run["beta"], **run["final"]} for run in runs],
            **({"real": real_rows} if real_rows else {}),
        },
        figures=ctx.figures,
        notes=render_notes(notes, {**asdict(config), **metrics}),
    )


def _compare_betas(runs: list[dict], start: dict) -> dict:
    """Final held-out numbers of the beta = 0 run ("free") and the largest beta ("kl"), and a
    computed verdict on reward hacking: the RM score rose while the accuracy did not."""
    free = next((r for r in runs if r["beta"] == 0.0), runs[0])
    kl = max(runs, key=lambda r: r["beta"])
    out = {"beta_kl": kl["beta"]}
    for name, run in (("free", free), ("kl", kl)):
        out |= {f"{name}_accuracy": run["final"]["accuracy"],
                f"{name}_rm_score": run["final"]["rm_score"],
                f"{name}_kl": run["rows"][-1]["kl_k3"]}  # fmt: skip
    gained = out["free_rm_score"] - start["rm_score"]
    acc = out["free_accuracy"] - start["accuracy"]
    hacked = gained > 0 and acc <= 0.0
    out["hacking"] = f"the RM score moved {gained:+.2f} while the accuracy moved {acc:+.3f} " + (
        "(reward hacking)" if hacked else "(no reward hacking at this budget)"
    )
    return out


def _real_scale(config: Config, ctx: RunContext) -> tuple[dict, list[dict]]:
    """SmolLM2-135M-Instruct + LoRA PPO with the checker as reward (skipped at 0 iterations):
    before/after metrics and one row per iteration."""
    if config.real_iterations == 0:
        return {}, []
    from airoad.data.models import load_smollm2

    rm, rm_tok, rm_info = reward_model_cache.load_real_reward_model(quick=False)
    lm, tok = load_smollm2()
    tok.padding_side = "left"
    held = tiny_task.problems(config.real_eval, seed=20_000 + config.seed, split="test", digits=2)
    out = parts.train_real(config, lm, tok, held, ctx.track, parts.real_rm_scorer(rm, rm_tok))
    rows, before, after = out["rows"], out["before"], out["after"]
    return {"real_before": before["accuracy"], "real_after": after["accuracy"],
            "real_rm_before": before["score"], "real_rm_after": after["score"],
            "real_rm_pair_accuracy": rm_info["test_accuracy"], "real_kl_last": rows[-1]["kl_k3"],
            "real_reward_first": rows[0]["reward"], "real_reward_last": rows[-1]["reward"]}, rows  # fmt: skip
