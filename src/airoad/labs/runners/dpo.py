"""Runner for dpo: direct preference optimisation (and IPO) from the SFT policy on the generated
addition task, at two scales.

1. Tiny scale: the cached SFT policy (``tiny_lm.load_sft``) samples k answers per training
   prompt; the checker turns them into preference pairs (chosen = right, rejected = one of its
   own wrong answers). DPO and IPO each train a copy of the SFT policy against the frozen SFT
   reference; preference accuracy, implicit reward margins and the log-probs of chosen and
   rejected held-out responses are tracked over training, then each policy's greedy answers
   are judged against the SFT policy's on thousands of held-out prompts (win / tie / loss).
2. Real scale (``real_prompts`` > 0): SmolLM2-135M-Instruct samples its own replies, judged by
   ``tiny_task.check_text``; DPO trains LoRA adapters against the adapter-free model; greedy
   accuracy on held-out prompts before and after.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from airoad.alignment import tiny_lm, tiny_task
from airoad.errors import AiroadError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes
from airoad.labs.runners import dpo_parts as parts


@dataclass(frozen=True)
class Config:
    tiny: str = param("full", choices=("full", "quick"))  # tiny_lm.FULL or tiny_lm.QUICK models
    n_train_prompts: int = param(6_000, ge=16, le=200_000)  # prompts sampled for training pairs
    n_eval_prompts: int = param(1_000, ge=16, le=50_000)  # held-out prompts for held-out pairs
    k: int = param(4, ge=2, le=16)  # samples per prompt; a pair needs one wrong sample
    temperature: float = param(1.0, gt=0.0, le=3.0)  # sampling temperature for the pairs
    beta: float = param(0.1, gt=0.0, le=10.0)  # DPO's KL strength (also the real scale's)
    ipo_beta: float = param(0.5, gt=0.0, le=10.0)  # IPO's tau: target margin 1/(2 tau) per token
    lr: float = param(2e-4, gt=0.0, le=1.0)  # AdamW, tiny scale
    batch: int = param(64, ge=1, le=4_096)  # pairs per step
    epochs: int = param(4, ge=1, le=100)
    eval_every: int = param(25, ge=1, le=100_000)  # steps between held-out evaluations
    n_curve: int = param(500, ge=10, le=50_000)  # held-out prompts for the accuracy curve
    n_win: int = param(4_000, ge=10, le=100_000)  # held-out prompts for the win rate
    real_prompts: int = param(64, ge=0, le=5_000)  # SmolLM2 training prompts; 0 = skip
    real_eval: int = param(100, ge=10, le=5_000)  # SmolLM2 held-out prompts
    real_digits: int = param(2, ge=1, le=4)
    real_max_new: int = param(8, ge=2, le=64)  # tokens per reply
    real_steps: int = param(20, ge=1, le=5_000)
    real_batch: int = param(4, ge=1, le=256)
    real_lr: float = param(2e-4, gt=0.0, le=1.0)
    real_rank: int = param(8, ge=1, le=128)
    seed: int = param(0, ge=0, le=1_000_000)


QUICK = {"tiny": "quick", "n_train_prompts": 200, "n_eval_prompts": 100, "epochs": 1,
         "batch": 32, "eval_every": 2, "n_curve": 100, "n_win": 300, "real_prompts": 0}  # fmt: skip

NOTES = (
    "Tiny scale: the SFT policy is right on {sft_acc:.1%} of {n_win} held-out prompts; "
    "{n_pairs} training pairs from its own samples ({n_held_pairs} held-out pairs).",
    "DPO (beta {beta}): held-out preference accuracy {dpo_pref_acc:.1%} (every margin starts "
    "at 0), reward margin {dpo_margin:.2f}; task accuracy {dpo_acc:.1%}; "
    "against SFT {dpo_wins} wins, {dpo_losses} losses, {dpo_ties} ties (win rate over "
    "decisive prompts {dpo_win_rate:.1%}).",
    "IPO (tau {ipo_beta}): preference accuracy {ipo_pref_acc:.1%}, task accuracy {ipo_acc:.1%}, "
    "win rate {ipo_win_rate:.1%}. Held-out chosen log-prob moved {dpo_chosen_shift:+.2f} nats "
    "and rejected {dpo_rejected_shift:+.2f} under DPO ({chosen_verdict}).",
    "Real scale (SmolLM2-135M-Instruct + LoRA): {real_summary}.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    real_metrics, real_rows = _real_scale(config, ctx)  # first: it needs no tiny model
    tiny = tiny_lm.FULL if config.tiny == "full" else tiny_lm.QUICK
    with ctx.step("loading (or training once) the cached SFT policy"):
        sft, info = tiny_lm.load_sft(tiny)
    pairs, held, curve_prompts, win_prompts = _pairs(config, sft)
    histories, policies = {}, {}
    for name, loss_type, beta in (("DPO", "sigmoid", config.beta), ("IPO", "ipo", config.ipo_beta)):
        policies[name], histories[name] = parts.train_tiny(
            config, sft, pairs, held, curve_prompts, loss_type, beta, ctx.track
        )
    metrics, win_rows = _win_rates(sft, policies, histories, win_prompts)
    metrics |= {"n_pairs": len(pairs), "n_held_pairs": len(held), "sft_info_acc": info["accuracy"]}
    metrics |= real_metrics
    parts.curves_figure(histories, metrics["sft_acc"], ctx)
    parts.logps_figure(histories, ctx)
    parts.win_figure(win_rows, ctx)
    curves = [{"method": m, **r} for m, rows in histories.items() for r in rows]
    return LabResult(
        metrics=metrics,
        key_metric="dpo_acc",
        library_metric=None,
        tables={"win_rate": win_rows, "curves": curves, "real_training": real_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _pairs(config: Config, sft) -> tuple[list, list, list, list]:
    """Training pairs (train split), held-out pairs and the two held-out prompt sets (test
    split, disjoint seeds)."""
    train = tiny_task.problems(config.n_train_prompts, config.seed, "train")
    pairs = tiny_lm.preference_pairs(sft, train, config.k, config.temperature, config.seed)
    evals = tiny_task.problems(config.n_eval_prompts, config.seed + 1, "test")
    held = tiny_lm.preference_pairs(sft, evals, config.k, config.temperature, config.seed + 1)
    if len(pairs) < config.batch or not held:
        raise AiroadError(
            f"only {len(pairs)} training pairs (batch {config.batch}): the SFT policy is almost "
            "always right; raise n_train_prompts, k or temperature"
        )
    curve = tiny_task.problems(config.n_curve, config.seed + 2, "test")
    win = tiny_task.problems(config.n_win, config.seed + 3, "test")
    return pairs, held, curve, win


def _win_rates(sft, policies: dict, histories: dict, prompts: list) -> tuple[dict, list[dict]]:
    """Greedy answers of each policy and of the SFT policy on the same held-out prompts."""
    base = parts.greedy_right(sft, prompts)
    metrics, rows = {"sft_acc": float(base.mean())}, []
    for name, policy in policies.items():
        right, key = parts.greedy_right(policy, prompts), name.lower()
        counts = parts.win_counts(right, base)
        rows.append({"method": name, "accuracy": float(right.mean()), **counts})
        first, last = histories[name][0], histories[name][-1]
        metrics |= {f"{key}_acc": float(right.mean()), f"{key}_win_rate": counts["win_rate"],
                    f"{key}_wins": counts["wins"], f"{key}_losses": counts["losses"],
                    f"{key}_ties": counts["ties_right"] + counts["ties_wrong"],
                    f"{key}_win_rate_ties_split": counts["win_rate_ties_split"],
                    f"{key}_pref_acc": last["pref_acc"], f"{key}_margin": last["margin"],
                    f"{key}_chosen_shift": last["logp_chosen"] - first["logp_chosen"],
                    f"{key}_rejected_shift": last["logp_rejected"] - first["logp_rejected"]}  # fmt: skip
    falling = metrics["dpo_chosen_shift"] < 0
    metrics["chosen_verdict"] = (
        "the chosen responses lost probability too: the margin grew by pushing rejected down faster"
        if falling else "the chosen responses gained probability"
    )  # fmt: skip
    return metrics, rows


def _real_scale(config: Config, ctx: RunContext) -> tuple[dict, list[dict]]:
    """SmolLM2-135M-Instruct + LoRA: pairs from its own samples, a short DPO run, accuracy."""
    keys = ("real_acc_before", "real_acc_after", "real_pairs", "real_seconds")
    if config.real_prompts == 0:
        return dict.fromkeys(keys, float("nan")) | {
            "real_summary": "skipped (real_prompts = 0)"
        }, []
    from airoad.data.models import load_smollm2

    start = time.perf_counter()
    lm, tok = load_smollm2()
    held = tiny_task.problems(config.real_eval, config.seed + 4, "test", config.real_digits)
    train = tiny_task.problems(config.real_prompts, config.seed + 5, "train", config.real_digits)
    before = parts.real_accuracy(lm, tok, held, config.real_max_new)
    triples = parts.real_pairs(lm, tok, train, config)
    if not triples:
        raise AiroadError("SmolLM2 answered every training prompt right: raise real_digits")
    lm = parts.add_lora(lm, config.real_rank)
    rows = parts.train_real(config, lm, tok, triples, ctx.track)
    after = parts.real_accuracy(lm, tok, held, config.real_max_new)
    out = dict(zip(keys, (before, after, len(triples), time.perf_counter() - start)))
    out["real_summary"] = (
        f"{len(triples)} pairs from its own samples, {config.real_steps} DPO steps; greedy "
        f"accuracy on {config.real_eval} held-out prompts {before:.1%} -> {after:.1%}"
    )
    return out, rows
