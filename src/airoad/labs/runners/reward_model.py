"""Runner for reward-model: a Bradley-Terry reward model on the addition task's preference pairs.

1. Tiny scale: the SFT policy (``tiny_lm``, cached) samples answers; the checker turns them into
   pairs (the right sum over one of the policy's own wrong answers, plus format-broken copies of
   the right answer); a reward model on the GPT backbone learns them (cached as
   ``alignment-reward-model`` for the rlhf-ppo lab). Held-out pairwise accuracy, by kind of
   pair, calibration, and best-of-n: the task accuracy when the reward model picks one of n
   samples of the policy, against one sample and an oracle.
2. Real scale: SmolLM2-135M-Instruct with LoRA and a scalar head, the right sum against a near
   miss; held-out pairwise accuracy before and after training, and its calibration.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import torch

from airoad.alignment import reward_model as ref
from airoad.alignment import reward_model_cache as cache
from airoad.alignment import tiny_lm, tiny_task
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes
from airoad.labs.runners import reward_model_parts as parts

_RM = ref.RM_FULL  # the defaults below are the cached full reward model's settings


@dataclass(frozen=True)
class Config:
    tiny: str = param("full", choices=("full", "quick"))  # tiny_lm.FULL or tiny_lm.QUICK models
    start: str = param(_RM.start, choices=("sft", "base"))  # backbone the RM starts from
    n_train_problems: int = param(_RM.n_train_problems, ge=10, le=100_000)  # 0-2 pairs each
    n_eval_problems: int = param(_RM.n_eval_problems, ge=10, le=100_000)  # test split
    k: int = param(_RM.k, ge=1, le=16)  # samples per problem
    format_fraction: float = param(_RM.format_fraction, ge=0.0, le=1.0)  # add a format pair
    steps: int = param(_RM.steps, ge=1, le=20_000)
    batch: int = param(_RM.batch, ge=1, le=1_024)  # pairs per step
    lr: float = param(_RM.lr, gt=0.0, le=0.1)
    best_of: int = param(8, ge=1, le=64)  # samples per held-out prompt the reward model ranks
    n_bins: int = param(10, ge=2, le=50)  # calibration bins
    real: bool = param(True)  # also train the SmolLM2 + LoRA reward model
    real_quick: bool = param(False)  # its quick settings (a few pairs and steps)
    real_prompts: int = param(50, ge=1, le=2_000)  # held-out prompts for SmolLM2's best-of-n
    real_best_of: int = param(4, ge=1, le=16)  # SmolLM2 samples per prompt the RM ranks
    seed: int = param(0, ge=0, le=1_000_000)


QUICK = {"tiny": "quick", **{k: v for k, v in asdict(ref.RM_QUICK).items() if k != "start"}}
QUICK |= {"best_of": 4, "real": False}

NOTES = (
    "Tiny reward model ({start} backbone, {n_train_pairs} training pairs, {steps} steps): "
    "held-out pairwise accuracy {tiny_accuracy:.3f} on {n_test_pairs} pairs ({sample_pair_accuracy:.3f} "
    "against the policy's own wrong answers, {format_pair_accuracy:.3f} against format-broken "
    "ones); calibration error {tiny_ece:.3f}.",
    "Task accuracy on {n_best_of} held-out prompts: greedy SFT {greedy_accuracy:.3f}, one sample "
    "{one_sample_accuracy:.3f}, the reward model's pick of {best_of} samples "
    "{best_of_accuracy:.3f} (an oracle that knows the answer: {oracle_accuracy:.3f}).",
    "SmolLM2 + LoRA reward model: held-out pairwise accuracy {real_accuracy_before:.3f} before "
    "training, {real_accuracy:.3f} after (calibration error {real_ece:.3f}). On {n_real_best_of} "
    "held-out prompts SmolLM2 answers right {real_greedy_accuracy:.3f} greedily, "
    "{real_one_sample_accuracy:.3f} with one sample, {real_best_of_accuracy:.3f} when the reward "
    "model picks one of {real_best_of} samples (oracle {real_oracle_accuracy:.3f}).",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    lm = tiny_lm.FULL if config.tiny == "full" else tiny_lm.QUICK
    rm = ref.RMConfig(**{k: getattr(config, k) for k in asdict(ref.RM_FULL)})
    policy, policy_info = tiny_lm.load_sft(lm)
    model, info, train_seconds = _tiny_reward_model(lm, rm, ctx)
    pairs = ref.held_out_pairs(policy, rm)
    r_c, r_r = ref.score_pairs(model, ref.pair_tensors(pairs))
    metrics = _tiny_metrics(config, info, pairs, r_c, r_r) | {"tiny_wall_seconds": train_seconds}
    items = tiny_lm.held_out(lm)
    best = parts.best_of_n(policy, model, items, config.best_of, config.seed, ctx)
    metrics |= _best_metrics(best, policy_info["accuracy"], len(items))
    real = _real_scale(config, ctx) if config.real else {}
    metrics |= _real_metrics(real)
    curves = {"tiny GPT": ref.preference_probability(r_c, r_r)}
    if real:
        curves["SmolLM2 + LoRA"] = torch.tensor(real["p_chosen"])
    parts.loss_figure(info["losses"], real.get("losses", []), ctx)
    parts.calibration_figure(curves, config.n_bins, ctx)
    parts.reward_figure(parts.rewards_by_kind(pairs, r_c, r_r), ctx)
    parts.best_of_figure(best, policy_info["accuracy"], ctx)
    return LabResult(
        metrics=metrics,
        key_metric="tiny_accuracy",
        library_metric=None,
        tables={"best_of_n": best, "calibration": _calibration_rows(curves, config.n_bins)},
        figures=ctx.figures,
        notes=render_notes(NOTES if real else NOTES[:2], {**asdict(config), **metrics}),
    )


def _tiny_reward_model(lm, rm, ctx: RunContext):
    """The cached reward model (trained now on a miss) and how long getting it took."""
    start = time.perf_counter()
    with ctx.step("tiny reward model (trained once, then cached)"):
        model, info = cache.load_tiny_with_info(lm, rm=rm)
    return model, info, time.perf_counter() - start


def _tiny_metrics(config: Config, info: dict, pairs, r_c, r_r) -> dict:
    p = ref.preference_probability(r_c, r_r)
    return {
        "tiny_accuracy": ref.pairwise_accuracy(r_c, r_r),
        "tiny_ece": ref.expected_calibration_error(p, config.n_bins),
        "n_train_pairs": info["n_train_pairs"], "n_test_pairs": len(pairs),
        "tiny_cpu_seconds": info["cpu_seconds"], "tiny_final_loss": sum(info["losses"][-20:]) / len(info["losses"][-20:]),
        "mean_margin": float((r_c - r_r).mean()),
    } | parts.accuracy_by_kind(pairs, r_c, r_r)  # fmt: skip


def _best_metrics(rows: list[dict], greedy: float, n_items: int) -> dict:
    last = rows[-1]
    return {
        "greedy_accuracy": greedy, "one_sample_accuracy": last["first_sample"],
        "best_of_accuracy": last["reward_model_pick"], "oracle_accuracy": last["oracle"],
        "n_best_of": n_items,
    }  # fmt: skip


def _real_scale(config: Config, ctx: RunContext) -> dict:
    """The SmolLM2 + LoRA reward model (cached) and its best-of-n on SmolLM2's own replies."""
    model, tokenizer, info = cache.load_real_reward_model(config.real_quick)
    digits = (cache.REAL_QUICK if config.real_quick else cache.REAL_FULL).digits
    items = tiny_task.problems(config.real_prompts, 60_000 + config.seed, "test", digits)
    return info | parts.real_best_of_n(model, tokenizer, items, config.real_best_of, config.seed, ctx)  # fmt: skip


def _real_metrics(real: dict) -> dict:
    """The SmolLM2 numbers (none when the real scale was not run)."""
    names = ("test_accuracy_before", "test_accuracy", "test_ece", "cpu_seconds")
    return {f"real_{n.removeprefix('test_')}": real[n] for n in names if n in real} | {
        k: v for k, v in real.items() if k.startswith(("real_", "n_real"))
    }


def _calibration_rows(curves: dict, n_bins: int) -> list[dict]:
    rows = []
    for name, p in curves.items():
        mean_pred, observed, count = ref.calibration(p, n_bins)
        rows += [{"model": name, "bin": b, "mean_predicted": float(mp), "observed": float(o), "pairs": int(c)}
                 for b, (mp, o, c) in enumerate(zip(mean_pred, observed, count))]  # fmt: skip
    return rows
