"""Runner for model-compression: bert-sentiment's fine-tuned MiniLM made smaller and faster.

Variants: PyTorch dynamic int8, ONNX Runtime fp32 and int8, our group-wise int4 (symmetric and
asymmetric, dequantised on the fly), and our magnitude / structured pruning (masks checked
against torch.nn.utils.prune on the real weights). Each is scored on bert-sentiment's held-out
fine-food reviews, saved to disk and timed at batch 1 and 32 on one thread. Then char-gpt's GPT
gets the int8 / int4 treatment, with the held-out loss change measured.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes, validate_config
from airoad.labs.runners import model_compression_parts as parts
from airoad.production import onnx_text


@dataclass(frozen=True)
class Config:
    models: str = param("full", choices=("full", "quick"))  # which saved bert-sentiment/char-gpt
    n_test: int = param(0, ge=16, le=1000, also=(0,))  # 0 = all 1000 held-out reviews
    n_curve: int = param(300, ge=16, le=1000)  # reviews per point of the sparsity curve
    group_size: int = param(64, ge=2, le=1024)  # input columns sharing one int4 scale
    error_groups: tuple[int, ...] = param((32, 64, 128, 256), ge=2, le=1024)
    sparsities: tuple[float, ...] = param((0.2, 0.4, 0.6, 0.8), ge=0.0, le=1.0)
    prune_amount: float = param(0.3, ge=0.0, le=1.0)  # the pruned rows of the table
    eval_batch_size: int = param(64, ge=1, le=1024)
    latency_reps: int = param(3, ge=1, le=1000)  # timed calls per batch size (median)
    latency_tokens: int = param(0, ge=2, le=512, also=(0,))  # 0 = lab.json's max_length (128)
    zipped: bool = param(True)  # also measure each file deflated (shows what pruning saves)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        even = "must be even: two 4-bit codes share a byte"
        config_check(self.group_size % 2 == 0, "group_size", even)
        config_check(all(g % 2 == 0 for g in self.error_groups), "error_groups", even)


QUICK = {  # the quick saved models, 64 reviews, two sparsities: seconds once they are cached
    "models": "quick",
    "n_test": 64,
    "n_curve": 32,
    "error_groups": (32, 128),
    "sparsities": (0.3, 0.8),
    "latency_reps": 1,
    "latency_tokens": 16,
    "zipped": False,
}

NOTES = (
    "MiniLM ({models} bert-sentiment model) on {n_test} held-out reviews: fp32 {fp32_accuracy:.3f} "
    "(its lab recorded {artifact_accuracy:.3f}); torch int8 {int8_torch_accuracy:.3f}, ONNX int8 "
    "{onnx_int8_accuracy:.3f}, our int4 g{group_size} {int4_sym_accuracy:.3f} (symmetric) / "
    "{int4_asym_accuracy:.3f} (asymmetric).",
    "Within 1 point of fp32: {within_one_point}; beyond it: {beyond_one_point}.",
    "Size on disk: fp32 {fp32_mb:.1f} MB, ONNX int8 {onnx_int8_mb:.1f} MB, int4 {int4_sym_mb:.1f} "
    "MB. Batch 1 on one thread: torch fp32 {fp32_ms1:.1f} ms, ONNX int8 {onnx_int8_ms1:.1f} ms "
    "({onnx_int8_speedup:.1f}x).",
    "Pruning: our masks equal torch.nn.utils.prune's on the real weights: {masks_match}. "
    "Largest sparsity within 1 point: magnitude {magnitude_safe_sparsity}, structured "
    "{structured_safe_sparsity} (of {sparsities}).",
    "char-gpt ({models}): held-out loss {gpt_fp32_loss:.4f} nats/char; torch int8 "
    "{gpt_int8_change:+.4f}, our int4 g{group_size} {gpt_int4_change:+.4f} (perplexity "
    "{gpt_fp32_ppl:.3f} -> {gpt_int4_ppl:.3f}).",
)


def _row(name: str, accuracy: float, size: dict, latency: dict) -> dict:
    return {"variant": name, "accuracy": accuracy, **size, **latency}


def _torch_variants(model, data: parts.Reviews, pad_id: int, config: Config, ctx) -> list:
    """fp32, torch int8, our int4 (both kinds) and pruned (both kinds): accuracy, size, speed."""
    g, amount = config.group_size, config.prune_amount
    variants = {
        "fp32 (torch)": lambda: model,
        "int8 dynamic (torch)": lambda: parts.dynamic_int8(model),
        f"int4 sym g{g} (ours)": lambda: parts.int4(model, g, True, parts.encoder_linears(model)),
        f"int4 asym g{g} (ours)": lambda: parts.int4(model, g, False, parts.encoder_linears(model)),
        f"magnitude {amount:.0%} (ours)": lambda: parts.pruned(model, amount, False)[0],
        f"structured {amount:.0%} (ours)": lambda: parts.pruned(model, amount, True)[0],
    }
    rows = []
    for name, make in ctx.track(list(variants.items()), "torch variants"):
        m = make()
        acc = parts.torch_accuracy(m, data, pad_id, config.eval_batch_size)
        size = parts.disk_mb(parts.saved_state(m, ctx.out_dir / "variant.pt"), config.zipped)
        rows.append(_row(name, acc, size, parts.torch_latency(m, data, config.latency_reps)))
    (ctx.out_dir / "variant.pt").unlink()  # a scratch file, not a result
    return rows


def _onnx_variants(folder, data: parts.Reviews, config: Config, ctx) -> list:
    """The dynamo-exported ONNX graph and its onnxruntime int8 copy, under ONNX Runtime."""
    with ctx.step("exporting to ONNX"):
        fp32 = onnx_text.export_classifier_onnx(folder, ctx.out_dir / "model.onnx")
        int8 = onnx_text.quantize_int8(fp32, ctx.out_dir / "model.int8.onnx")
    rows = []
    for name, path in (("ONNX fp32 (onnxruntime)", fp32), ("ONNX int8 (onnxruntime)", int8)):
        acc = parts.onnx_accuracy(path, folder, data)
        speed = parts.onnx_latency(path, data, config.latency_reps)
        rows.append(_row(name, acc, parts.disk_mb(path, config.zipped), speed))
    return rows


def _sparsity_curve(model, data: parts.Reviews, pad_id: int, config: Config, ctx) -> tuple:
    """Accuracy on the first n_curve reviews at each sparsity, both kinds; our masks against
    torch's at every point."""
    sub = parts.first(data, config.n_curve)
    rows, same = [], True
    points = [(k, s) for k in ("magnitude", "structured") for s in (0.0, *config.sparsities)]
    for kind, s in ctx.track(points, "pruning curve"):
        m, masks = parts.pruned(model, s, kind == "structured")
        same &= parts.masks_equal_torch(model, masks, s, kind == "structured")
        acc = parts.torch_accuracy(m, sub, pad_id, config.eval_batch_size)
        rows.append({"kind": kind, "sparsity": s, "accuracy": acc, "n_reviews": len(sub.y)})
    return rows, same


def run(config: Config, ctx: RunContext) -> LabResult:
    model, tok, folder, spec = parts.load_classifier(config.models)
    data = parts.held_out_reviews(tok, config, spec["max_length"])
    pad = tok.pad_token_id
    rows = _torch_variants(model, data, pad, config, ctx)
    rows += _onnx_variants(folder, data, config, ctx)
    curve, masks_match = _sparsity_curve(model, data, pad, config, ctx)
    errors = parts.weight_error_rows(model, config.error_groups)
    gpt, gpt_cfg = parts.load_gpt(config.models)
    gpt_rows = parts.gpt_rows(gpt, gpt_cfg, config.group_size, ctx.out_dir)
    metrics = parts.summary(rows, curve, gpt_rows, spec, masks_match)
    metrics["n_test"] = len(data.y)

    parts.variants_figure(rows, ctx)
    parts.sparsity_figure(curve, metrics["fp32_curve_accuracy"], ctx)
    parts.int4_error_figure(errors, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="int4_sym_accuracy",
        library_metric="int8_torch_accuracy",
        tables={"variants": rows, "sparsity": curve, "int4_error": errors, "char_gpt": gpt_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
