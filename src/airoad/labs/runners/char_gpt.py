"""Runner for char-gpt: a small decoder-only GPT trained on Shakespeare's characters.

The works are joined in title order and split by position (the last 10% is held out, as in the
lstm-text-generation lab); the validation loss is measured on a fixed slice at the start of the
held-out text. Training runs in two halves with a checkpoint between them, reloaded into fresh
objects. Beside the result: our causal attention against ``F.scaled_dot_product_attention``,
the trained weights inside ``nn.TransformerEncoderLayer`` (the same loss from torch's layers),
and generation with and without the KV cache (same logits, timed). The trained model is saved
as the artifact ``model`` for the mixture-of-experts and post-training labs.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import cpu_timed, figure, param, render_notes, timed, validate_config
from airoad.transformer import char_gpt as ref
from airoad.transformer import gpt_training as train_ref


@dataclass(frozen=True)
class Config:
    text_chars: int = param(0, ge=0)  # 0 = the whole corpus (about 5.06 M characters)
    val_fraction: float = param(0.1, gt=0.0, le=0.5)
    val_chars: int = param(200_000, ge=1_000)  # the fixed held-out slice of the final number
    curve_chars: int = param(20_000, ge=1_000)  # the slice scored during training
    n_layer: int = param(4, ge=1, le=24)
    n_head: int = param(4, ge=1, le=32)
    n_embd: int = param(128, ge=8, le=1024)
    block_size: int = param(128, ge=8, le=1024)
    dropout: float = param(0.0, ge=0.0, lt=1.0)
    batch_size: int = param(32, ge=1, le=1024)
    steps: int = param(1800, ge=2, le=100_000)
    warmup_steps: int = param(100, ge=1)
    max_lr: float = param(2e-3, gt=0.0, le=1.0)
    min_lr: float = param(2e-4, ge=0.0, le=1.0)
    weight_decay: float = param(0.1, ge=0.0, le=1.0)
    grad_clip: float = param(1.0, gt=0.0)
    eval_every: int = param(150, ge=1)
    prompt: str = "ROMEO.\n"
    sample_chars: int = param(500, ge=1, le=100_000)
    temperature: float = param(0.8, gt=0.0, le=10.0)
    top_k: int = param(0, ge=0)  # 0 = sample from every character
    cache_lengths: tuple[int, ...] = param((64, 128, 256, 512), ge=1, le=10_000)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"config key 'n_embd' is {self.n_embd}; it must be a multiple of n_head "
                f"({self.n_head})"
            )
        if self.warmup_steps >= self.steps:
            raise ConfigError(
                f"config key 'warmup_steps' is {self.warmup_steps}; it must be < steps "
                f"({self.steps})"
            )
        if self.min_lr > self.max_lr:
            raise ConfigError(f"config key 'min_lr' is {self.min_lr}; it must be <= max_lr")
        if not self.prompt or len(self.prompt) >= self.block_size:
            raise ConfigError(
                f"config key 'prompt' must have 1..{self.block_size - 1} characters "
                f"(block_size - 1), got {len(self.prompt)}"
            )


QUICK = {
    "text_chars": 400_000,
    "val_chars": 20_000,
    "curve_chars": 4_000,
    "n_layer": 2,
    "n_head": 2,
    "n_embd": 48,
    "block_size": 64,
    "batch_size": 16,
    "steps": 100,
    "warmup_steps": 10,
    "max_lr": 1e-2,
    "min_lr": 1e-3,
    "eval_every": 25,
    "sample_chars": 120,
    "cache_lengths": (32, 64, 128),
}

NOTES = (
    "Validation loss {val_loss:.3f} nats/char ({val_bits:.3f} bits) on the first {val_chars} "
    "held-out characters after {steps} steps ({train_tokens} training tokens, {train_cpu_s:.0f} "
    "CPU-s, {train_wall_s:.0f} s wall); bigram counts score {bigram_val_loss:.3f}, uniform "
    "{uniform_loss:.3f}.",
    "Training resumed from the checkpoint of step {resume_step} in fresh objects.",
    "Causal attention equals F.scaled_dot_product_attention to {attention_max_abs_diff:.1e}; "
    "the same weights in nn.TransformerEncoderLayer score {torch_layers_val_loss:.4f} "
    "(ours {val_loss:.4f}).",
    "KV cache: {cache_tokens} new tokens in {cache_seconds:.2f} s, {nocache_seconds:.2f} s "
    "without ({cache_speedup:.1f}x faster); float64 logits agree to {cache_max_abs_logit_diff:.1e}.",
)


def _shakespeare(config: Config) -> tuple[torch.Tensor, torch.Tensor, train_ref.CharVocab]:
    """The works in title order as ids, split by position; the vocabulary of the whole text."""
    works = load("shakespeare")
    text = "\n".join(works[name] for name in sorted(works))
    if config.text_chars:
        text = text[: config.text_chars]
    vocab = train_ref.CharVocab(text)
    missing = sorted(set(config.prompt) - set(vocab.stoi))
    if missing:
        raise ConfigError(f"config key 'prompt' has characters the text never uses: {missing}")
    ids = vocab.encode(text)
    cut = int(round(len(ids) * (1.0 - config.val_fraction)))
    train, val = ids[:cut], ids[cut:]
    if len(val) <= config.val_chars or len(train) <= config.block_size:
        raise ConfigError(
            f"config key 'val_chars' is {config.val_chars}; the held-out part has only "
            f"{len(val)} characters (raise text_chars or val_fraction)"
        )
    return train, val, vocab


def _configs(config: Config, vocab_size: int) -> tuple[ref.GPTConfig, train_ref.TrainConfig]:
    model = ref.GPTConfig(
        vocab_size=vocab_size,
        block_size=config.block_size,
        n_layer=config.n_layer,
        n_head=config.n_head,
        n_embd=config.n_embd,
        dropout=config.dropout,
    )
    training = train_ref.TrainConfig(
        batch_size=config.batch_size,
        block_size=config.block_size,
        max_lr=config.max_lr,
        min_lr=config.min_lr,
        warmup_steps=config.warmup_steps,
        total_steps=config.steps,
        weight_decay=config.weight_decay,
        grad_clip=config.grad_clip,
    )
    return model, training


def _fresh(model_cfg: ref.GPTConfig, train_cfg: train_ref.TrainConfig, seed: int):
    """A seeded model, its AdamW and the batch sampler's generator."""
    torch.manual_seed(seed)
    model = ref.GPT(model_cfg)
    opt = train_ref.make_optimizer(model, train_cfg.max_lr, train_cfg.weight_decay)
    return model, opt, torch.Generator().manual_seed(seed)


def _train(train, val, model_cfg, train_cfg, config: Config, ctx: RunContext):
    """Both halves of training with a checkpoint between them; the curve as it goes."""
    curve_slice = val[: config.curve_chars + 1]
    model, opt, gen = _fresh(model_cfg, train_cfg, config.seed)
    curve = [{"step": 0, "train_loss": None, "curve_val_loss": None, "lr": 0.0}]
    curve[0]["curve_val_loss"] = train_ref.evaluate(model, curve_slice, config.block_size)
    resume_step = config.steps // 2
    bounds = sorted({*range(0, config.steps, config.eval_every), resume_step, config.steps})
    checkpoint = ctx.out_dir / "checkpoint.pt"
    for start, stop in ctx.track(list(zip(bounds, bounds[1:])), "training GPT"):
        if start == resume_step:  # save, then carry on in brand-new objects
            train_ref.save_checkpoint(checkpoint, model, opt, start, gen, train_cfg)
            model, opt, gen = _fresh(model_cfg, train_cfg, config.seed + 1)
            start = train_ref.load_checkpoint(checkpoint, model, opt, gen)
        losses = train_ref.train_steps(model, opt, train, train_cfg, gen, start, stop)
        lr = train_ref.lr_at(
            stop - 1, config.max_lr, config.warmup_steps, config.steps, config.min_lr
        )
        val_loss = train_ref.evaluate(model, curve_slice, config.block_size)
        curve.append(
            {
                "step": stop,
                "train_loss": float(np.mean(losses)),
                "curve_val_loss": val_loss,
                "lr": lr,
            }
        )
    return model, curve, resume_step


def _bigram_loss(
    train: torch.Tensor, val: torch.Tensor, vocab_size: int, alpha: float = 0.1
) -> float:
    """Nats/char on val of add-alpha smoothed bigram counts from train: a floor to beat."""
    pairs = torch.bincount(train[:-1] * vocab_size + train[1:], minlength=vocab_size**2)
    counts = pairs.reshape(vocab_size, vocab_size).double() + alpha
    logp = torch.log(counts / counts.sum(1, keepdim=True))
    return float(-logp[val[:-1], val[1:]].mean())


def _attention_check(model: ref.GPT, val: torch.Tensor, config: Config) -> dict:
    """Block 0's real queries, keys and values: ours vs F.scaled_dot_product_attention."""
    x = val[: 8 * config.block_size].view(8, config.block_size)
    block = model.blocks[0]
    with torch.no_grad():
        h = block.ln_1(model.wte(x) + model.wpe(torch.arange(config.block_size)))
        q, k, v = block.attn.c_attn(h).split(config.n_embd, dim=2)
        shape = (8, config.block_size, config.n_head, config.n_embd // config.n_head)
        q, k, v = (z.reshape(shape).transpose(1, 2) for z in (q, k, v))
        ours, ours_s = timed(ref.causal_attention, q, k, v)
        theirs, torch_s = timed(F.scaled_dot_product_attention, q, k, v, is_causal=True)
    return {
        "attention_max_abs_diff": float((ours - theirs).abs().max()),
        "attention_ours_seconds": ours_s,
        "attention_torch_seconds": torch_s,
    }


class _TorchTwin(nn.Module):
    """Our trained GPT with every block replaced by nn.TransformerEncoderLayer, weights copied."""

    def __init__(self, gpt: ref.GPT):
        super().__init__()
        c, self.gpt = gpt.config.n_embd, gpt
        self.layers = nn.ModuleList()
        for block in gpt.blocks:
            layer = nn.TransformerEncoderLayer(
                c, gpt.config.n_head, 4 * c, 0.0, "gelu", batch_first=True, norm_first=True
            )
            pairs = [
                (layer.self_attn.in_proj_weight, block.attn.c_attn.weight),
                (layer.self_attn.in_proj_bias, block.attn.c_attn.bias),
                (layer.self_attn.out_proj.weight, block.attn.c_proj.weight),
                (layer.self_attn.out_proj.bias, block.attn.c_proj.bias),
                (layer.linear1.weight, block.mlp.c_fc.weight),
                (layer.linear1.bias, block.mlp.c_fc.bias),
                (layer.linear2.weight, block.mlp.c_proj.weight),
                (layer.linear2.bias, block.mlp.c_proj.bias),
                (layer.norm1.weight, block.ln_1.weight),
                (layer.norm1.bias, block.ln_1.bias),
                (layer.norm2.weight, block.ln_2.weight),
                (layer.norm2.bias, block.ln_2.bias),
            ]
            with torch.no_grad():
                for mine, theirs in pairs:
                    mine.copy_(theirs)
            self.layers.append(layer)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.gpt.wte(idx) + self.gpt.wpe(torch.arange(t))
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        logits = self.gpt.lm_head(self.gpt.ln_f(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def _kv_cache_race(model: ref.GPT, val: torch.Tensor, config: Config) -> tuple[dict, list[dict]]:
    """Logits with and without the cache in float64 on a real window; generation timed both ways."""
    twin = ref.GPT(model.config).double()
    twin.load_state_dict(model.state_dict())
    twin.eval()
    window = val[None, : config.block_size]
    split = len(config.prompt)
    with torch.no_grad():
        full = twin(window)
        cache = ref.KVCache(config.n_layer)
        steps = [twin(window[:, :split], cache)]
        steps += [twin(window[:, t : t + 1], cache) for t in range(split, config.block_size)]
    diff = float((torch.cat(steps, dim=1) - full).abs().max())
    rows = []
    prompt = window[:, :split]
    for n in config.cache_lengths:
        with_cache, s_cache = timed(model.generate, prompt, n, 0.0, None, None, True)
        without, s_plain = timed(model.generate, prompt, n, 0.0, None, None, False)
        same = bool(torch.equal(with_cache, without))
        rows.append(
            {"tokens": n, "cache_seconds": s_cache, "nocache_seconds": s_plain, "same_tokens": same}
        )
    last = rows[-1]
    metrics = {
        "cache_max_abs_logit_diff": diff,
        "cache_tokens": last["tokens"],
        "cache_seconds": last["cache_seconds"],
        "nocache_seconds": last["nocache_seconds"],
        "cache_speedup": last["nocache_seconds"] / last["cache_seconds"],
    }
    return metrics, rows


def _samples(model: ref.GPT, vocab: train_ref.CharVocab, config: Config) -> list[dict]:
    """Continue the prompt at the configured temperature, and greedily, each from the seed."""
    prompt = vocab.encode(config.prompt)[None]
    out = []
    for temperature in (config.temperature, 0.0):
        gen = torch.Generator().manual_seed(config.seed)
        ids = model.generate(prompt, config.sample_chars, temperature, config.top_k or None, gen)
        out.append({"temperature": temperature, "text": vocab.decode(ids[0])})
    return out


def _loss_figure(curve: list[dict], m: dict, ctx: RunContext) -> None:
    steps = [c["step"] for c in curve]
    with figure(ctx, "loss_curve", figsize=(8, 4.5)) as (_, ax):
        ax.plot(
            steps[1:],
            [c["train_loss"] for c in curve[1:]],
            "o-",
            ms=3,
            label="train (mean of the interval)",
        )
        ax.plot(steps, [c["curve_val_loss"] for c in curve], "s-", ms=3, label="held-out slice")
        ax.axhline(
            m["bigram_val_loss"],
            color="k",
            ls="--",
            label=f"bigram counts {m['bigram_val_loss']:.2f}",
        )
        ax.axvline(m["resume_step"], color="grey", ls=":", label="checkpoint, resumed")
        ax.set(
            xlabel="optimizer step", ylabel="nats per character", title="char GPT on Shakespeare"
        )
        ax.set_ylim(top=max(m["bigram_val_loss"] + 0.6, 3.0))
        lr_ax = ax.twinx()
        lr_ax.plot(steps[1:], [c["lr"] for c in curve[1:]], color="tab:green", alpha=0.5, lw=1)
        lr_ax.set_ylabel("learning rate (green)")
        ax.legend(fontsize=8)


def _cache_figure(rows: list[dict], ctx: RunContext) -> None:
    n = [r["tokens"] for r in rows]
    with figure(ctx, "kv_cache", figsize=(6.5, 4)) as (_, ax):
        ax.plot(n, [r["nocache_seconds"] for r in rows], "o-", label="no cache (re-run the window)")
        ax.plot(n, [r["cache_seconds"] for r in rows], "s-", label="KV cache (one token per step)")
        ax.set(xlabel="new tokens generated", ylabel="seconds", title="greedy generation time")
        ax.legend()


def _model_writer(
    model: ref.GPT, vocab: train_ref.CharVocab, metrics: dict
) -> Callable[[Path], None]:
    """Writes `model.pt` (the state_dict) and `model.json` (the GPTConfig and the vocabulary)."""

    def write(folder: Path) -> None:
        torch.save(model.state_dict(), folder / "model.pt")
        spec = {
            "module": "airoad.transformer.char_gpt.GPT",
            "config": asdict(model.config),
            "vocab": vocab.chars,
            "dataset": "shakespeare",
            "val_loss": metrics["val_loss"],
            "val_chars": metrics["val_chars"],
        }
        (folder / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


def _scores(model: ref.GPT, train, val, vocab, config: Config) -> dict:
    """The held-out loss of ours, of torch's layers with our weights, and of bigram counts."""
    val_slice = val[: config.val_chars + 1]
    val_loss = train_ref.evaluate(model, val_slice, config.block_size)
    return {
        "val_loss": val_loss,
        "val_bits": val_loss / math.log(2),
        "torch_layers_val_loss": train_ref.evaluate(
            _TorchTwin(model), val_slice, config.block_size
        ),
        "bigram_val_loss": _bigram_loss(train, val_slice, len(vocab.chars)),
        "uniform_loss": math.log(len(vocab.chars)),
        "val_chars": config.val_chars,
        "train_chars": len(train),
        "vocab_size": len(vocab.chars),
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_tokens": config.steps * config.batch_size * config.block_size,
        "steps": config.steps,
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    train, val, vocab = _shakespeare(config)
    model_cfg, train_cfg = _configs(config, len(vocab.chars))
    (model, curve, resume_step), cpu_s, wall_s = cpu_timed(
        lambda: _train(train, val, model_cfg, train_cfg, config, ctx)
    )
    metrics = _scores(model, train, val, vocab, config)
    metrics |= {"resume_step": resume_step, "train_cpu_s": cpu_s, "train_wall_s": wall_s}
    metrics |= _attention_check(model, val, config)
    cache_metrics, cache_rows = _kv_cache_race(model, val, config)
    metrics |= cache_metrics
    samples = _samples(model, vocab, config)

    _loss_figure(curve, metrics, ctx)
    _cache_figure(cache_rows, ctx)
    ctx.save_artifact("model", _model_writer(model, vocab, metrics))

    return LabResult(
        metrics=metrics,
        key_metric="val_loss",
        library_metric="torch_layers_val_loss",
        tables={"curve": curve, "kv_cache": cache_rows, "samples": samples},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
