"""Runner for lora-finetune: LoRA, NF4 and QLoRA from scratch on real pretrained models.

1. Quantisation error on all-MiniLM-L6-v2's fp32 linear weights: fp16, bf16, int8 and int4
   absmax, NF4, NF4 with double quantisation (SmolLM2's weights came from a 4-bit file, so they
   would flatter a 4-bit format).
2. The keyword task on SmolLM2-135M-Instruct (see ``lora_finetune_parts``): held-out answer loss
   and accuracy before and after LoRA, then peft's LoRA carrying our trained A and B scores the
   same prompts, and our merge is compared with ``merge_and_unload()``.
3. Full fine-tuning, LoRA, QLoRA and a bottleneck adapter, each in a fresh process: trainable
   parameters, seconds per step and peak resident memory over the same few training batches.
"""

from __future__ import annotations

import copy
import gc
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np
import torch
from peft import LoraConfig, get_peft_model

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import changed_from_full, figure, param, render_notes, timed, validate_config
from airoad.labs.runners import lora_finetune_parts as parts
from airoad.llm import lora_finetune as ref

METHODS = ("full", "lora", "qlora", "adapter")


@dataclass(frozen=True)
class Config:
    seq_len: int = param(64, ge=32, le=512)  # prompt + answer tokens; longer examples dropped
    n_val: int = param(100, ge=4, le=150)  # held-out prompts
    steps: int = param(40, ge=1, le=2000)
    batch_size: int = param(4, ge=1, le=64)
    lr: float = param(1e-3, gt=0.0, le=1.0)
    r: int = param(8, ge=1, le=256)
    alpha: float = param(16.0, gt=0.0, le=1024.0)
    targets: tuple[str, ...] = param(("q_proj", "v_proj"), choices=parts.LLAMA_LINEARS)
    eval_batch: int = param(20, ge=1, le=256)
    methods: tuple[str, ...] = param(METHODS, choices=METHODS)
    method_steps: int = param(3, ge=1, le=50)  # steps timed in each fresh process
    bottleneck: int = param(16, ge=1, le=576)
    method_timeout_s: float = param(900.0, gt=0.0)
    quant_layers: int = param(0, ge=1, also=(0,))  # 0 = every linear layer of MiniLM
    threads: int = param(2, ge=1, le=64)  # torch threads of the measuring processes
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)


# fmt: off
QUICK = {  # the real models, 8 held-out prompts, 2 LoRA steps, one LoRA process
    "n_val": 8, "steps": 2, "batch_size": 2, "eval_batch": 8, "methods": ("lora",),
    "method_steps": 1, "quant_layers": 4,
}
# fmt: on

NOTES = (
    "Keyword task, {n_val} held-out prompts: answer loss {loss_before:.2f} -> {loss_after:.2f} "
    "nats/token and accuracy {accuracy_before:.2f} -> {accuracy_after:.2f} after {steps} LoRA "
    "steps ({lora_trainable} trainable weights, {lora_trainable_pct:.2f}% of the model, "
    "{train_s_per_step:.1f} s/step); always answering '{majority_answer}' scores "
    "{majority_accuracy:.2f}. {run_scope}",
    "peft's LoRA with our A and B: loss {peft_loss_after:.4f}, accuracy {peft_accuracy_after:.2f} "
    "(|loss difference| {peft_max_loss_diff:.1e}); our merge vs merge_and_unload(): "
    "max |weight difference| {merge_max_abs_diff:.1e}.",
    "MiniLM's {quant_weights} fp32 weights: relative RMS error fp16 {fp16_error:.1e}, int8 "
    "{int8_error:.1e}, NF4 {nf4_error:.3f} ({nf4_bits:.3f} bits/weight), NF4 + double quant "
    "{nf4_dq_error:.3f} ({nf4_dq_bits:.3f} bits), int4 absmax {int4_error:.3f}: NF4 is "
    "{nf4_vs_int4} than int4 at the same 4 bits.",
    "Fresh process per method, {method_steps} steps each: {methods_summary}.",
)


def _quantisation(config: Config, ctx: RunContext) -> tuple[list[dict], dict]:
    """The error table on MiniLM's linear weights (the first quant_layers of them, 0 = all)."""
    from airoad.data.models import load_minilm_encoder

    encoder, _ = load_minilm_encoder()
    linears = [m for m in encoder.modules() if isinstance(m, torch.nn.Linear)]
    with ctx.step("quantising MiniLM's weights"):
        rows = parts.quantisation_table(torch.nn.ModuleList(linears[: config.quant_layers or None]))
    by = {r["format"]: r for r in rows}
    metrics = {
        f"{key}_error": by[name]["relative_rms_error"]
        for key, name in (
            ("fp16", "fp16"),
            ("bf16", "bf16"),
            ("int8", "int8 absmax"),
            ("int4", "int4 absmax"),
            ("nf4", "nf4"),
            ("nf4_dq", "nf4 + double quant"),
        )
    }
    metrics |= {"nf4_bits": by["nf4"]["bits_per_weight"], "quant_weights": rows[0]["weights"]}
    metrics["nf4_dq_bits"] = by["nf4 + double quant"]["bits_per_weight"]
    metrics["nf4_vs_int4"] = "lower" if metrics["nf4_error"] < metrics["int4_error"] else "higher"
    return rows, metrics


def _task(tokenizer, config: Config) -> dict:
    """Encoded keyword examples split into train and held-out, and the scoring candidates."""
    examples = parts.encode(parts.keyword_cloze(load("python-docs")), tokenizer, config.seq_len)
    train, val = parts.split_task(examples, config.n_val, config.seed)
    answer, count = Counter(e.answer for e in train).most_common(1)[0]
    return {
        "train": train,
        "val": val,
        "cands": parts.candidate_ids(tokenizer),
        "pad": tokenizer.pad_token_id,
        "majority_answer": answer,
        "majority_accuracy": float(np.mean([e.answer == answer for e in val])),
        "n_examples": len(examples),
    }


def _fine_tune(lm, task: dict, config: Config, ctx: RunContext) -> tuple[dict, list[dict], dict]:
    """Score, add LoRA, train, score again; the untouched base is kept for peft."""
    pristine = copy.deepcopy(lm)

    def score(model, label: str) -> dict:
        with ctx.step(f"scoring {len(task['val'])} held-out prompts ({label})"):
            return parts.evaluate(model, task["val"], task["cands"], task["pad"], config.eval_batch)

    before = score(lm, "before")
    ref.add_lora(lm, config.targets, config.r, config.alpha, seed=config.seed)
    curve = parts.train(lm, task["train"], config, task["pad"], ctx.track)
    after = score(lm, "after")
    peft_model = get_peft_model(
        pristine,
        LoraConfig(r=config.r, lora_alpha=config.alpha, target_modules=list(config.targets)),
    )
    _copy_into_peft(lm, peft_model)
    theirs, _ = timed(score, peft_model.base_model.model, "peft")
    trainable, total = ref.count_parameters(lm)
    merged = ref.merge_lora(lm).state_dict()
    reference = peft_model.merge_and_unload().state_dict()
    metrics = {
        "loss_before": before["loss"],
        "accuracy_before": before["accuracy"],
        "loss_after": after["loss"],
        "accuracy_after": after["accuracy"],
        "peft_loss_after": theirs["loss"],
        "peft_accuracy_after": theirs["accuracy"],
        "peft_max_loss_diff": abs(theirs["loss"] - after["loss"]),
        "merge_max_abs_diff": max(float((merged[k] - v).abs().max()) for k, v in reference.items()),
        "lora_trainable": trainable,
        "lora_trainable_pct": 100 * trainable / total,
        "train_s_per_step": float(np.mean([c["seconds"] for c in curve])),
    }
    answers = [
        {"answer": e.answer, "before": b, "after": a, "peft": p}
        for e, b, a, p in zip(
            task["val"], before["predictions"], after["predictions"], theirs["predictions"]
        )
    ]
    return metrics, curve, {"answers": answers}


def _copy_into_peft(ours, peft_model) -> None:
    """Our trained A and B into peft's adapters of the same names."""
    inner = peft_model.base_model.model
    for name, module in ours.named_modules():
        if isinstance(module, ref.LoRALinear):
            layer = inner.get_submodule(name)
            layer.lora_A["default"].weight.data.copy_(module.lora_A.detach())
            layer.lora_B["default"].weight.data.copy_(module.lora_B.detach())


def _methods(task: dict, config: Config, ctx: RunContext) -> tuple[list[dict], dict]:
    """Full / LoRA / QLoRA / adapter training steps, each in its own fresh process."""
    plan = parts.batches(len(task["train"]), config.method_steps, config.batch_size, config.seed)
    steps = [
        {
            k: v.tolist()
            for k, v in parts.collate([task["train"][i] for i in idx], task["pad"]).items()
        }
        for idx in plan
    ]
    args = asdict(config) | {"batches": steps}
    rows = [
        parts.measure(m, args, config.method_timeout_s)
        for m in ctx.track(list(config.methods), "one fresh process per method")
    ]
    metrics, summary = {}, []
    for row in rows:
        ok = row["status"] == "ok"
        for key in ("s_per_step", "rss_ready_mib", "train_peak_rss_mib", "trainable_params"):
            metrics[f"{row['method']}_{key}"] = row[key] if ok else float("nan")
        summary.append(
            f"{row['method']} {row['trainable_params']:,} trainable, {row['s_per_step']:.1f} s/step, "
            f"{row['rss_ready_mib']:.0f} MiB ready, peak {row['train_peak_rss_mib']:.0f} MiB"
            if ok
            else f"{row['method']} {row['status']}"
        )
    return rows, metrics | {"methods_summary": "; ".join(summary)}


def _loss_figure(curve: list[dict], m: dict, ctx: RunContext) -> None:
    steps = [c["step"] for c in curve]
    with figure(ctx, "loss_curve", figsize=(7, 4)) as (_, ax):
        ax.plot(steps, [c["train_loss"] for c in curve], "o-", ms=3, label="training batch")
        ax.axhline(m["loss_before"], color="grey", ls="--", label="held-out, before LoRA")
        ax.axhline(m["loss_after"], color="tab:red", ls="--", label="held-out, after LoRA")
        ax.set(
            xlabel="LoRA step",
            ylabel="answer loss (nats per token)",
            title=f"SmolLM2 keyword task: accuracy {m['accuracy_before']:.2f} -> "
            f"{m['accuracy_after']:.2f}",
        )
        ax.legend()


def _quant_figure(rows: list[dict], ctx: RunContext) -> None:
    labels = [f"{r['format']}\n{r['bits_per_weight']:.3g} bits" for r in rows]
    with figure(ctx, "quantisation_error", figsize=(7, 4.5)) as (_, ax):
        ax.barh(labels, [r["relative_rms_error"] for r in rows], color="tab:purple")
        ax.set_xscale("log")
        ax.invert_yaxis()
        ax.set(
            xlabel="relative RMS round-trip error (log scale)",
            title=f"MiniLM's {rows[0]['weights']:,} fp32 linear weights, stored bits per weight",
        )


def _methods_figure(rows: list[dict], ctx: RunContext) -> None:
    ok = [r for r in rows if r["status"] == "ok"]
    if not ok:
        return
    names = [f"{r['method']}\n{r['trainable_params'] / 1e6:.2f} M" for r in ok]
    x = np.arange(len(ok))
    with figure(ctx, "methods", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        left.bar(x, [r["s_per_step"] for r in ok], color="tab:blue")
        left.set(
            xticks=x,
            xticklabels=names,
            ylabel="seconds per step",
            title="time per step (labels: M weights trained)",
        )
        right.bar(x - 0.2, [r["rss_ready_mib"] for r in ok], 0.4, label="model ready")
        right.bar(x + 0.2, [r["train_peak_rss_mib"] for r in ok], 0.4, label="peak in training")
        right.set(xticks=x, xticklabels=names, ylabel="resident MiB", title="process memory")
        right.legend(fontsize=8)


def run(config: Config, ctx: RunContext) -> LabResult:
    from airoad.data.models import load_smollm2

    with parts.quiet_hf():
        quant_rows, metrics = _quantisation(config, ctx)
        with ctx.step("loading SmolLM2-135M-Instruct"):
            lm, tokenizer = load_smollm2()
        task = _task(tokenizer, config)
        tuned, curve, tables = _fine_tune(lm, task, config, ctx)
    del lm
    gc.collect()  # the measuring processes get the memory back
    method_rows, method_metrics = _methods(task, config, ctx)
    changed = changed_from_full(config, ["n_val", "steps", "batch_size", "seq_len", "lr"])
    metrics |= tuned | method_metrics
    metrics |= {k: task[k] for k in ("majority_answer", "majority_accuracy", "n_examples")}
    metrics |= {"n_train": len(task["train"]), "n_val": len(task["val"]), "steps": config.steps}
    metrics["run_scope"] = "Full config." if not changed else f"Changed from full: {changed}."
    _loss_figure(curve, metrics, ctx)
    _quant_figure(quant_rows, ctx)
    _methods_figure(method_rows, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="accuracy_after",
        library_metric="peft_accuracy_after",
        tables={"quantisation": quant_rows, "curve": curve, "methods": method_rows, **tables},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
