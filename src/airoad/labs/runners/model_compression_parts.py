"""Parts of the model-compression runner: the two saved models (bert-sentiment's classifier,
char-gpt's GPT), their held-out data, every compressed variant, and how each is measured
(accuracy or validation loss, size on disk, one-thread latency) and drawn.

Reviews, cleaning and batching are bert-sentiment's and the Shakespeare split is char-gpt's
(imported, not copied), so the numbers are those labs' numbers on the same held-out data.
"""

from __future__ import annotations

import copy
import json
import math
import statistics
import time
import warnings
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from airoad.labs import artifacts
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, thread_limit
from airoad.labs.runners import bert_sentiment_parts as bert_parts
from airoad.labs.runners import char_gpt as gpt_runner
from airoad.llm import bert_sentiment as bert_ref
from airoad.production import model_compression as ref
from airoad.production import onnx_text
from airoad.transformer import char_gpt as gpt_ref
from airoad.transformer import gpt_training as gpt_train

# ---------------------------------------------------------------- the sentiment classifier


@dataclass
class Reviews:
    texts: list[str]  # cleaned as bert-sentiment trained
    ids: list[list[int]]  # token ids, truncated to max_length
    y: np.ndarray  # 1 = great
    fixed: dict[str, torch.Tensor]  # 32 reviews padded to exactly max_length: the latency input


def load_classifier(which: str) -> tuple[Any, Any, Path, dict]:
    """(fp32 model in eval mode, tokenizer, folder, lab.json) of bert-sentiment's classifier;
    `which` is "full" or "quick" (on a miss `require` trains that config first)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = artifacts.require("bert-sentiment", "classifier", quick=which == "quick")
    with onnx_text.quiet():
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    tok = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    spec = json.loads((folder / "lab.json").read_text(encoding="utf-8"))
    return model.eval(), tok, folder, spec


def held_out_reviews(tok, config, max_length: int) -> Reviews:
    """bert-sentiment's held-out reviews (a seeded subset when n_test > 0), tokenised, and
    the latency input: 32 of them cut or padded to latency_tokens (0 = max_length) tokens."""
    test_df = bert_parts.reviews(16, config.n_test, config.seed)[1]
    texts = bert_parts.clean(test_df["review"])
    ids = bert_ref.encode_texts(tok, texts, max_length)
    width = config.latency_tokens or max_length
    fixed = tok(texts[:32], truncation=True, max_length=width, padding="max_length")
    fixed = {k: torch.tensor(fixed[k]) for k in ("input_ids", "attention_mask")}
    return Reviews(texts, ids, bert_parts.labels(test_df), fixed)


def first(data: Reviews, n: int) -> Reviews:
    """The first n held-out reviews (all when n >= their number)."""
    return Reviews(data.texts[:n], data.ids[:n], data.y[:n], data.fixed)


def encoder_linears(model: nn.Module) -> list[str]:
    """Names of the Linear layers inside the transformer blocks (not the pooler or the head)."""
    return [n for n, m in model.named_modules() if isinstance(m, nn.Linear) and ".encoder." in n]


@torch.no_grad()
def torch_accuracy(model: nn.Module, data: Reviews, pad_id: int, batch_size: int) -> float:
    """Accuracy of a torch classifier on the held-out reviews (length-sorted batches)."""
    bs, order = bert_parts.batches(data.ids, None, pad_id, batch_size)
    logits = bert_parts.unsort(bert_ref.predict_logits(model, bs), order)
    return float((logits.argmax(1).numpy() == data.y).mean())


def onnx_accuracy(path: Path, folder: Path, data: Reviews) -> float:
    clf = onnx_text.OnnxTextClassifier(path, folder)
    return float((clf.predict_proba(data.texts).argmax(1) == data.y).mean())


def _median_ms(fn: Callable[[], Any], reps: int) -> float:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def torch_latency(model: nn.Module, data: Reviews, reps: int) -> dict:
    """Median milliseconds per call at batch 1 and batch 32 (max_length tokens), one thread."""
    out = {}
    with thread_limit(1), torch.no_grad():
        for b in (1, 32):
            feeds = {k: v[:b] for k, v in data.fixed.items()}
            out[f"ms_batch{b}"] = _median_ms(lambda feeds=feeds: model(**feeds), reps)
    return out


def onnx_latency(path: Path, data: Reviews, reps: int) -> dict:
    session = onnx_text.ort_session(path, threads=1)
    out = {}
    for b in (1, 32):
        feeds = {k: v[:b].numpy().astype(np.int64) for k, v in data.fixed.items()}
        out[f"ms_batch{b}"] = _median_ms(lambda f=feeds: session.run(["logits"], f), reps)
    return out


def disk_mb(path: Path, zipped: bool) -> dict:
    """Size of the file and, if asked, of it deflated (zlib level 1): the zeros of pruning only
    pay off when the file is compressed or stored sparse."""
    raw = path.read_bytes()
    small = len(zlib.compress(raw, 1)) / 1e6 if zipped else None
    return {"size_mb": len(raw) / 1e6, "zipped_mb": small}


def saved_state(model: nn.Module, path: Path) -> Path:
    torch.save(model.state_dict(), path)
    return path


def dynamic_int8(model: nn.Module) -> nn.Module:
    """PyTorch's dynamic quantisation: Linear weights int8 per tensor, activations per batch."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():  # torch 2.13 flags its quantised tensor types as deprecated
        warnings.simplefilter("ignore", UserWarning)
        return quantize_dynamic(copy.deepcopy(model), {nn.Linear}, dtype=torch.qint8)


def int4(model: nn.Module, group_size: int, symmetric: bool, names=None) -> nn.Module:
    return ref.quantize_linears_int4(copy.deepcopy(model), group_size, symmetric, names)


def pruned(model: nn.Module, amount: float, structured: bool) -> tuple[nn.Module, dict]:
    twin = copy.deepcopy(model)
    masks = ref.prune_linears(twin, amount, structured, encoder_linears(twin))
    return twin, masks


def masks_equal_torch(model: nn.Module, masks: dict, amount: float, structured: bool) -> bool:
    """Our masks on the real weights against torch.nn.utils.prune's, layer by layer."""
    from torch.nn.utils import prune

    for name, mask in masks.items():
        layer = copy.deepcopy(model.get_submodule(name))
        if structured:
            prune.ln_structured(layer, "weight", amount=amount, n=2, dim=0)
        else:
            prune.l1_unstructured(layer, "weight", amount=amount)
        if not torch.equal(layer.weight_mask, mask):
            return False
    return True


def weight_error_rows(model: nn.Module, group_sizes: tuple[int, ...]) -> list[dict]:
    """Relative error ||W - W_hat|| / ||W|| over the encoder weights and bits per weight, for
    each group size, symmetric and asymmetric."""
    weights = [model.get_submodule(n).weight.detach() for n in encoder_linears(model)]
    rows = []
    for g in group_sizes:
        for symmetric in (True, False):
            err = total = 0.0
            for w in weights:
                w_hat = ref.dequantize_int4(ref.quantize_int4(w, g, symmetric))
                err += float((w - w_hat).square().sum())
                total += float(w.square().sum())
            bits = 4 + 32 / g + (0 if symmetric else 8 / g)
            kind = "symmetric" if symmetric else "asymmetric"
            rows.append({"group_size": g, "kind": kind, "bits_per_weight": bits,
                         "relative_error": math.sqrt(err / total)})  # fmt: skip
    return rows


# ---------------------------------------------------------------- char-gpt


def load_gpt(which: str) -> tuple[gpt_ref.GPT, gpt_runner.Config]:
    """char-gpt's saved GPT (eval mode) and the config that trained it (from its manifest)."""
    folder = artifacts.require("char-gpt", "model", quick=which == "quick")
    spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    saved = json.loads((folder / artifacts.MANIFEST).read_text(encoding="utf-8"))["config"]
    known = {f for f in gpt_runner.Config.__dataclass_fields__}
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in known}
    model = gpt_ref.GPT(gpt_ref.GPTConfig(**spec["config"]))
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    return model.eval(), gpt_runner.Config(**values)


def gpt_val_loss(model: nn.Module, data, block_size: int) -> float:
    """Nats per held-out character on char-gpt's scored slice (its own `val_loss`)."""
    return gpt_train.evaluate(model, data.scored, block_size) * data.scored_per_char


def gpt_rows(model: gpt_ref.GPT, cfg: gpt_runner.Config, group_size: int, tmp: Path) -> list:
    """fp32, PyTorch dynamic int8 and our int4 (sym and asym) of the GPT: held-out loss,
    perplexity per character, size on disk, evaluation seconds."""
    data = gpt_runner._corpus(cfg)
    variants = {
        "fp32": model,
        "int8 dynamic (torch)": dynamic_int8(model),
        f"int4 sym g{group_size} (ours)": int4(model, group_size, True),
        f"int4 asym g{group_size} (ours)": int4(model, group_size, False),
    }
    rows = []
    for name, m in variants.items():
        start = time.perf_counter()
        loss = gpt_val_loss(m, data, cfg.block_size)
        seconds = time.perf_counter() - start
        size = disk_mb(saved_state(m, tmp / "gpt.pt"), False)["size_mb"]
        rows.append({"variant": name, "val_loss": loss, "perplexity": math.exp(loss),
                     "size_mb": size, "eval_s": seconds})  # fmt: skip
    (tmp / "gpt.pt").unlink()  # a scratch file, not a result
    for r in rows:
        r["loss_change"] = r["val_loss"] - rows[0]["val_loss"]
    return rows


# ---------------------------------------------------------------- summary

# the rows of the variants table, in the order the runner makes them
KEYS = ("fp32", "int8_torch", "int4_sym", "int4_asym", "magnitude", "structured")
KEYS += ("onnx_fp32", "onnx_int8")


def _safe_sparsity(curve: list[dict], kind: str) -> str:
    """Largest sparsity of `kind` whose accuracy is within 1 point of the unpruned model."""
    pts = [r for r in curve if r["kind"] == kind]
    base = next(r["accuracy"] for r in pts if r["sparsity"] == 0.0)
    ok = [r["sparsity"] for r in pts if r["sparsity"] > 0 and r["accuracy"] >= base - 0.01]
    return f"{max(ok):.0%}" if ok else "none"


def summary(rows: list[dict], curve: list[dict], gpt: list[dict], spec: dict, same: bool) -> dict:
    """The run's metrics: per variant accuracy / size / latency, the 1-point verdicts, the
    pruning curve's safe sparsities and char-gpt's loss changes."""
    m: dict[str, Any] = {}
    for key, r in zip(KEYS, rows, strict=True):
        m |= {f"{key}_accuracy": r["accuracy"], f"{key}_mb": r["size_mb"]}
        m |= {f"{key}_ms1": r["ms_batch1"], f"{key}_ms32": r["ms_batch32"]}
    near = [r["variant"] for r in rows[1:] if r["accuracy"] >= rows[0]["accuracy"] - 0.01]
    far = [r["variant"] for r in rows[1:] if r["variant"] not in near]
    m["within_one_point"] = ", ".join(near) or "none"
    m["beyond_one_point"] = ", ".join(far) or "none"
    m["worst_drop_points"] = 100 * (rows[0]["accuracy"] - min(r["accuracy"] for r in rows))
    m["artifact_accuracy"] = spec["test_accuracy"]
    m["onnx_int8_speedup"] = m["fp32_ms1"] / m["onnx_int8_ms1"]
    m["masks_match"] = "yes" if same else "NO"
    m["fp32_curve_accuracy"] = next(r["accuracy"] for r in curve if r["sparsity"] == 0.0)
    m["magnitude_safe_sparsity"] = _safe_sparsity(curve, "magnitude")
    m["structured_safe_sparsity"] = _safe_sparsity(curve, "structured")
    fp32, int8, sym, asym = gpt
    m |= {"gpt_fp32_loss": fp32["val_loss"], "gpt_fp32_ppl": fp32["perplexity"]}
    m |= {"gpt_int8_change": int8["loss_change"], "gpt_int4_change": sym["loss_change"]}
    m |= {"gpt_int4_asym_change": asym["loss_change"], "gpt_int4_ppl": sym["perplexity"]}
    return m


# ---------------------------------------------------------------- figures


def sparsity_figure(curve: list[dict], original: float, ctx: RunContext) -> None:
    with figure(ctx, "accuracy_vs_sparsity", figsize=(6.5, 4)) as (_, ax):
        for kind, marker in (("magnitude", "o"), ("structured", "s")):
            pts = [r for r in curve if r["kind"] == kind]
            xs = [100 * r["sparsity"] for r in pts]
            ax.plot(xs, [r["accuracy"] for r in pts], marker=marker, label=f"{kind} pruning")
        ax.axhline(original, color="k", lw=1, label=f"unpruned ({original:.3f})")
        ax.axhspan(original - 0.01, original + 0.01, color="k", alpha=0.08, label="within 1 point")
        ax.set(xlabel="weights zeroed in each encoder Linear (%)", ylabel="held-out accuracy",
               title="MiniLM sentiment: accuracy vs sparsity")  # fmt: skip
        ax.legend(loc="lower left")


def variants_figure(rows: list[dict], ctx: RunContext) -> None:
    with figure(ctx, "size_latency", 1, 2, figsize=(11, 4.2)) as (_, (left, right)):
        for r in rows:
            left.scatter(r["size_mb"], r["accuracy"])
            left.annotate(r["variant"], (r["size_mb"], r["accuracy"]), fontsize=7)
        left.set(xlabel="size on disk (MB)", ylabel="held-out accuracy", title="size vs accuracy")
        y = np.arange(len(rows))
        right.barh(y - 0.2, [r["ms_batch1"] for r in rows], 0.4, label="batch 1")
        right.barh(y + 0.2, [r["ms_batch32"] / 32 for r in rows], 0.4, label="batch 32, per review")
        right.set_yticks(y, [r["variant"] for r in rows], fontsize=7)
        right.set(xlabel="ms per review, one thread", title="latency")
        right.legend()


def int4_error_figure(rows: list[dict], ctx: RunContext) -> None:
    with figure(ctx, "int4_error", figsize=(6, 4)) as (_, ax):
        for kind, marker in (("symmetric", "o"), ("asymmetric", "s")):
            pts = [r for r in rows if r["kind"] == kind]
            ax.plot([r["bits_per_weight"] for r in pts], [r["relative_error"] for r in pts],
                    marker=marker, label=kind)  # fmt: skip
            for r in pts:
                ax.annotate(f"g{r['group_size']}", (r["bits_per_weight"], r["relative_error"]))
        ax.set(xlabel="bits per weight (codes + scales + zero points)",
               ylabel="||W - W_hat|| / ||W||", title="int4 weight error vs group size")  # fmt: skip
        ax.legend()
