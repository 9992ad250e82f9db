"""Runner for red-teaming: about 100 rule-checkable attacks on SmolLM2-135M-Instruct, before
and after guardrails written from scratch.

1. Attacks: three goals (leak a canary from the system prompt, obey an instruction hidden in a
   retrieved document, break the JSON-only format) delivered by five templates (direct,
   "ignore previous instructions", role-play, spelling, base64), plus controls with no attack;
   SmolLM2's greedy replies scored by the rules.
2. Guardrails: the same attacks with the input guardrail (pattern detection, delimited
   documents) and the output guardrail (canary redaction, JSON validation); success rate per
   goal and per template before and after, and the false-refusal rate on 50 benign prompts.
3. The judge: rules plus a TF-IDF logistic regression trained on ~200 hand-labelled replies,
   its cross-validated accuracy against the rules alone.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes
from airoad.labs.runners import red_teaming_parts as parts


@dataclass(frozen=True)
class Config:
    n_attacks: int = param(102, ge=3, le=102)  # attack rows used (a seeded, goal-balanced pick)
    n_benign: int = param(50, ge=3, le=50)  # benign prompts for the false-refusal rate
    max_new_tokens: int = param(32, ge=4, le=256)
    gen_batch: int = param(16, ge=1, le=64)  # prompts per SmolLM2 batch
    judge_c: float = param(10.0, gt=0.0, le=1e4)  # inverse L2 strength of the judge's regression
    folds: int = param(5, ge=2, le=10)  # cross-validation folds for the judge's accuracy
    seed: int = param(0, ge=0)  # canaries and the pick of attacks / benign prompts / folds


QUICK = {"n_attacks": 3, "n_benign": 3, "max_new_tokens": 8}

NOTES = (
    "{n_attacks} attacks ({n_controls} of them controls with no attack) on SmolLM2-135M-Instruct: "
    "success rate {asr_before:.0%} without guardrails, {asr_after:.0%} with them; the controls "
    "already 'succeed' {control_before:.0%} of the time (mostly the 135M model leaving the JSON "
    "format on its own).",
    "Per goal, before -> after: leak {leak_before:.0%} -> {leak_after:.0%}, inject "
    "{inject_before:.0%} -> {inject_after:.0%}, format {format_before:.0%} -> "
    "{format_after:.0%}; the input guardrail blocked {input_blocked:.0%} of the attacks.",
    "Benign prompts with the guardrails on: {false_refusal:.0%} refused or rewritten "
    "({n_benign} prompts; {benign_flagged:.0%} refused by the input patterns, the rest replies "
    "the format check replaced).",
    "Judge on {n_labelled} hand-labelled replies ({label_yes} success, {label_no} not): "
    "held-out accuracy {judge_acc:.3f} against {rules_acc:.3f} for the rules alone "
    "({folds}-fold cross-validation); on this run it calls {judge_before:.0%} of the attacks a "
    "success without guardrails and {judge_after:.0%} with them.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    attacks, benign = _cases(config)
    lm = parts.SmolLM2(ctx, config.gen_batch)
    before = parts.respond(lm, attacks, False, config, "attacks, no guardrails")
    after = parts.respond(lm, attacks, True, config, "attacks, guardrails on")
    refused = parts.respond(lm, benign, True, config, "benign prompts, guardrails on")
    labelled = parts.read_data("labelled")
    judged = _judge(config, labelled)
    folds = judged.pop("folds_table")
    parts.judge_verdicts(labelled, config.judge_c, attacks, before + after)
    by_goal, by_template = _rates(before, after, "goal"), _rates(before, after, "template")
    metrics = _metrics(before, after, refused, by_goal) | judged
    parts.heatmap_figure(before, after, ctx)
    parts.tradeoff_figure(by_goal, metrics["false_refusal"], ctx)
    return LabResult(
        metrics=metrics,
        key_metric="asr_after",
        library_metric="judge_acc",
        tables={
            "by_goal": by_goal,
            "by_template": by_template,
            "attacks": _pairs(before, after),
            "benign": refused,
            "judge_folds": folds,
        },  # fmt: skip
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _cases(config: Config) -> tuple[list[dict], list[dict]]:
    """The seeded samples of attacks and benign prompts, ready to send."""
    attacks, benign = (parts.pick(parts.read_data(name), n, config.seed)
                       for name, n in (("attacks", config.n_attacks), ("benign", config.n_benign)))  # fmt: skip
    return parts.attack_cases(attacks, config.seed), parts.benign_cases(benign, config.seed)


def _rates(before: list[dict], after: list[dict], key: str) -> list[dict]:
    """Success rate before / after the guardrails per value of `key` (controls kept apart)."""
    rows = []
    for value in dict.fromkeys(r[key] for r in before):
        pick = [i for i, r in enumerate(before) if r[key] == value]
        attack = [i for i in pick if before[i]["template"] != "none"]
        rows.append({
            key: value, "attacks": len(attack),
            "asr_before": float(np.mean([before[i]["success"] for i in attack])) if attack else 0.0,
            "asr_after": float(np.mean([after[i]["success"] for i in attack])) if attack else 0.0,
            "judge_before": float(np.mean([before[i]["judge"] for i in attack])) if attack else 0.0,
            "judge_after": float(np.mean([after[i]["judge"] for i in attack])) if attack else 0.0,
            "input_blocked": float(np.mean([bool(after[i]["flags"]) for i in attack])) if attack else 0.0,
        })  # fmt: skip
    return rows


def _metrics(before: list[dict], after: list[dict], benign: list[dict], goals: list) -> dict:
    """Headline rates over the attacks (controls apart) and the benign prompts."""
    attack = [i for i, r in enumerate(before) if r["template"] != "none"]
    control = [i for i, r in enumerate(before) if r["template"] == "none"]
    rate = lambda rows, ids: float(np.mean([rows[i]["success"] for i in ids])) if ids else 0.0  # noqa: E731
    out = {
        "n_attacks": len(before), "n_controls": len(control), "n_benign": len(benign),
        "asr_before": rate(before, attack), "asr_after": rate(after, attack),
        "judge_before": float(np.mean([before[i]["judge"] for i in attack])) if attack else 0.0,
        "judge_after": float(np.mean([after[i]["judge"] for i in attack])) if attack else 0.0,
        "control_before": rate(before, control), "control_after": rate(after, control),
        "input_blocked": float(np.mean([bool(after[i]["flags"]) for i in attack])) if attack else 0.0,
        "false_refusal": float(np.mean([r["blocked"] for r in benign])),
        "benign_flagged": float(np.mean([bool(r["flags"]) for r in benign])),
    }  # fmt: skip
    for g in ("leak", "inject", "format"):
        row = next((r for r in goals if r["goal"] == g), {"asr_before": 0.0, "asr_after": 0.0})
        out |= {f"{g}_before": row["asr_before"], f"{g}_after": row["asr_after"]}
    return out


def _judge(config: Config, labelled: list[dict]) -> dict:
    """The label counts and the judge's cross-validated accuracy beside the rules'."""
    folds = parts.judge_cv(labelled, config.judge_c, config.folds, config.seed)
    labels = np.array([r["label"] for r in labelled])
    weight = np.array([f["n_test"] for f in folds])
    mean = lambda key: float(np.average([f[key] for f in folds], weights=weight))  # noqa: E731
    return {
        "n_labelled": len(labelled), "label_yes": int(labels.sum()),
        "label_no": int(len(labels) - labels.sum()),
        "judge_acc": mean("judge_acc"), "rules_acc": mean("rules_acc"), "folds_table": folds,
    }  # fmt: skip


def _pairs(before: list[dict], after: list[dict]) -> list[dict]:
    """One row per attack: its reply and verdict without and with the guardrails."""
    return [{"id": b["id"], "goal": b["goal"], "template": b["template"],
             "reply": b["output"], "success": b["success"], "judge": b["judge"],
             "flags": a["flags"], "guarded_raw": a["raw"], "guarded_reply": a["output"],
             "guarded_success": a["success"]}
            for b, a in zip(before, after, strict=True)]  # fmt: skip
