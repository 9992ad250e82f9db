"""Runner for sft: supervised fine-tuning on the generated addition task at two scales.

1. Tiny: the cached base GPT (``tiny_lm.load_base``, pretrained on raw ``042+317=359`` lines,
   never on chat tokens) is fine-tuned here on chat turns with the loss on the reply only
   (``sft.train``, the same loop and budget that make ``tiny_lm.load_sft``'s cached policy);
   greedy accuracy on thousands of held-out problems before (the base under the chat template)
   and after.
2. Real: SmolLM2-135M-Instruct answers held-out problems under our own rendering of its chat
   template (checked token for token against ``apply_chat_template``); LoRA adapters are then
   trained on packed rows of chat turns (block-diagonal causal mask, positions restarting per
   example) with our masked loss, and the same problems are asked again. Our packed loss is
   checked against Hugging Face's own loss on the same examples unpacked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.alignment import sft as ref
from airoad.alignment import tiny_lm, tiny_task
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import cpu_timed, param, render_notes
from airoad.labs.runners import sft_parts as parts
from airoad.labs.runners.lora_finetune_parts import LLAMA_LINEARS, quiet_hf

TINY = {"full": tiny_lm.FULL, "quick": tiny_lm.QUICK}


@dataclass(frozen=True)
class Config:
    tiny: str = param("full", choices=tuple(TINY))  # tiny_lm's FULL or QUICK model and budget
    digits: int = param(2, ge=1, le=3)  # operand digits of the SmolLM2 problems
    real_eval: int = param(150, ge=1, le=5_000)  # held-out SmolLM2 problems
    real_steps: int = param(30, ge=1, le=5_000)  # LoRA SFT steps
    real_batch: int = param(15, ge=1, le=512)  # chat turns per step, packed into rows
    pack_len: int = param(256, ge=64, le=4_096)  # tokens per packed row
    real_lr: float = param(2e-3, gt=0.0, le=1.0)  # AdamW on the LoRA weights
    lora_r: int = param(8, ge=1, le=256)  # LoRA rank (alpha = 2 r)
    lora_targets: tuple[str, ...] = param(("q_proj", "v_proj"), choices=LLAMA_LINEARS)
    gen_batch: int = param(50, ge=1, le=1_000)  # prompts per greedy generate call
    seed: int = param(0, ge=0, le=1_000_000)


QUICK = {"tiny": "quick", "real_eval": 6, "real_steps": 2, "real_batch": 4, "gen_batch": 6}

NOTES = (
    "Tiny GPT ({tiny}, {tiny_n_eval} held-out problems): greedy accuracy {tiny_accuracy_before:.3f} "
    "for the base under the chat template, {tiny_accuracy_after:.3f} after {tiny_steps} SFT steps "
    "(stopped when a training-split check reached {tiny_val_accuracy:.2f} >= {tiny_stop_at}; loss {tiny_loss_first:.2f} -> {tiny_loss_last:.2f} nats per reply token, "
    "{tiny_sft_cpu_seconds:.0f} CPU-s).",
    "SmolLM2-135M-Instruct ({real_n_eval} held-out {digits}-digit sums): {real_accuracy_before:.3f} "
    "before, {real_accuracy_after:.3f} after {real_steps} LoRA SFT steps ({lora_params} trained "
    "weights; loss {real_loss_first:.2f} -> {real_loss_last:.2f}; {real_train_cpu_seconds:.0f} CPU-s).",
    "Our chat template differs from apply_chat_template on {template_mismatches} of "
    "{real_n_eval} conversations; our packed loss {loss_packed_ours:.5f} vs Hugging Face's "
    "unpacked {loss_unpacked_hf:.5f} (|diff| {loss_abs_diff:.1e}); packing used "
    "{tokens_packed} token slots where per-batch padding needs {tokens_padded} "
    "({tokens_real} real tokens).",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    metrics, tiny_losses = _tiny(config, ctx)
    with quiet_hf():
        real, real_losses, first, replies = _real(config, ctx)
    metrics |= real
    parts.loss_figure(tiny_losses, real_losses, ctx)
    parts.accuracy_figure(metrics, ctx)
    parts.packing_figure(first, ctx)
    curve = [{"step": i, "tiny_loss": t} for i, t in enumerate(tiny_losses)]
    return LabResult(
        metrics=metrics,
        key_metric="loss_packed_ours",
        library_metric="loss_unpacked_hf",
        tables={"real_replies": replies, "tiny_curve": curve,
                "real_curve": [{"step": i, "loss": v} for i, v in enumerate(real_losses)]},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )  # fmt: skip


def _tiny(config: Config, ctx: RunContext) -> tuple[dict, list[float]]:
    """The cached base, SFT here (tiny_lm's loop and budget), accuracy before and after."""
    cfg = TINY[config.tiny]
    with ctx.step("loading (or pretraining) the tiny base model"):
        base, _ = tiny_lm.load_base(cfg, note=lambda _: None)
    items = tiny_lm.held_out(cfg)
    before = tiny_lm.accuracy(base, items)
    (model, info), cpu, _ = cpu_timed(
        lambda: tiny_lm._finetune(base, cfg, lambda _: None, ctx.track)
    )
    losses = info["sft_losses"]
    return {"tiny_accuracy_before": before, "tiny_accuracy_after": tiny_lm.accuracy(model, items),
            "tiny_n_eval": len(items), "tiny_steps": len(losses), "tiny_sft_cpu_seconds": cpu,
            "tiny_val_accuracy": info["sft_val_accuracy"], "tiny_stop_at": cfg.sft_stop_at,
            "tiny_loss_first": losses[0], "tiny_loss_last": float(np.mean(losses[-10:]))}, losses  # fmt: skip


def _real(config: Config, ctx: RunContext) -> tuple[dict, list[float], ref.Batch, list[dict]]:
    """SmolLM2 before, LoRA SFT on packed chat turns, after; the template and loss checks."""
    from airoad.data.models import load_smollm2

    with ctx.step("loading SmolLM2-135M-Instruct"):
        lm, tok = load_smollm2()
    test = tiny_task.problems(config.real_eval, config.seed, "test", config.digits)
    train = tiny_task.problems(config.real_steps * config.real_batch, config.seed + 1, "train",
                               config.digits)  # fmt: skip
    exs, pad = parts.examples(tok, train), tok.pad_token_id
    m = {"real_n_eval": len(test), "template_mismatches": parts.template_mismatches(tok, test)}
    m |= parts.loss_check(lm, exs[: config.real_batch], pad, config.pack_len)
    before = parts.replies(lm, tok, test, config.gen_batch, ctx.track)
    (losses, tokens), cpu, _ = cpu_timed(lambda: parts.lora_sft(lm, exs, config, pad, ctx.track))
    after = parts.replies(lm, tok, test, config.gen_batch, ctx.track)
    m |= tokens | {"real_accuracy_before": parts.accuracy(test, before),
                   "real_accuracy_after": parts.accuracy(test, after),
                   "real_train_cpu_seconds": cpu, "real_loss_first": losses[0],
                   "real_loss_last": float(np.mean(losses[-5:]))}  # fmt: skip
    rows = [{"problem": f"{p.a}+{p.b}", "answer": p.answer, "before": b, "after": a}
                     for p, b, a in zip(test[:20], before, after)]  # fmt: skip
    first = ref.pack(exs[: config.real_batch], config.pack_len, pad)
    return m, losses, first, rows
