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

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import cpu_timed, param, render_notes, validate_config
from airoad.labs.runners import char_gpt_parts as parts
from airoad.transformer import bpe_tokenizer as bpe_ref
from airoad.transformer import char_gpt as ref
from airoad.transformer import gpt_training as train_ref


@dataclass(frozen=True)
class Config:
    text_chars: int = param(0, ge=0)  # 0 = the whole corpus (about 5.06 M characters)
    tokens: str = param("char", choices=("char", "bpe"))  # bpe: byte-level BPE of the train part
    bpe_vocab: int = param(1024, ge=512, le=2048)  # BPE vocabulary size (tokens="bpe" only)
    val_fraction: float = param(0.1, gt=0.0, le=0.5)
    val_chars: int = param(200_000, ge=1_000)  # the fixed held-out slice of the final number
    curve_chars: int = param(20_000, ge=1_000)  # the slice scored during training
    n_layer: int = param(4, ge=1, le=24)
    n_head: int = param(4, ge=1, le=32)
    n_embd: int = param(128, ge=8, le=1024)
    block_size: int = param(128, ge=8, le=1024)
    dropout: float = param(0.0, ge=0.0, lt=1.0)
    batch_size: int = param(16, ge=1, le=1024)
    steps: int = param(2400, ge=2, le=100_000)
    warmup_steps: int = param(100, ge=1)
    max_lr: float = param(6e-3, gt=0.0, le=1.0)
    min_lr: float = param(6e-4, ge=0.0, le=1.0)
    weight_decay: float = param(0.1, ge=0.0, le=1.0)
    grad_clip: float = param(1.0, gt=0.0)
    precision: str = param("auto", choices=("auto", "bf16", "fp32"))  # auto: bf16 if the CPU has it
    eval_every: int = param(200, ge=1)
    prompt: str = "ROMEO.\n"
    sample_chars: int = param(500, ge=1, le=100_000)  # tokens generated (characters or BPE)
    temperature: float = param(0.8, gt=0.0, le=10.0)
    top_k: int = param(0, ge=0)  # 0 = sample from every character
    cache_lengths: tuple[int, ...] = param((64, 128, 256, 512), ge=1, le=10_000)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)  # the declared ranges first, then how the keys fit together
        rules = [
            (self.n_embd % self.n_head == 0, f"'n_embd' {self.n_embd} is no multiple of n_head"),
            (self.warmup_steps < self.steps, f"'warmup_steps' is {self.warmup_steps}, not < steps"),
            (self.min_lr <= self.max_lr, f"'min_lr' is {self.min_lr}, above max_lr"),
            (0 < len(self.prompt) < self.block_size, "'prompt' needs 1 to block_size - 1 chars"),
        ]
        for ok, why in rules:
            if not ok:
                raise ConfigError(f"config key {why}")


# fmt: off
QUICK = {  # a 2-layer, 48-wide model, 150 steps on the first 400 k characters: seconds
    "text_chars": 400_000, "val_chars": 20_000, "curve_chars": 4_000, "sample_chars": 120,
    "n_layer": 2, "n_head": 2, "n_embd": 48, "block_size": 64, "batch_size": 32,
    "steps": 150, "warmup_steps": 10, "max_lr": 1e-2, "min_lr": 1e-3, "eval_every": 25,
    "cache_lengths": (32, 64, 128),
}
# fmt: on

NOTES = (
    "Validation loss {val_loss:.3f} nats/char ({val_bits:.3f} bits) on the first {val_chars} "
    "held-out characters after {steps} steps ({train_tokens} training tokens in {precision}, "
    "{train_cpu_s:.0f} CPU-s, {train_wall_s:.0f} s wall); bigram counts score "
    "{bigram_val_loss:.3f}, uniform {uniform_loss:.3f}.",
    "Training resumed from the checkpoint of step {resume_step} in fresh objects.",
    "Causal attention equals F.scaled_dot_product_attention to {attention_max_abs_diff:.1e}; "
    "the same weights in nn.TransformerEncoderLayer score {torch_layers_val_loss:.4f} "
    "(ours {val_loss:.4f}).",
    "KV cache: {cache_tokens} new tokens in {cache_seconds:.2f} s, {nocache_seconds:.2f} s "
    "without ({cache_speedup:.1f}x faster); float64 logits agree to "
    "{cache_max_abs_logit_diff:.1e}.",
    "Tokens: {tokens_desc}.",
)


def _corpus(config: Config) -> parts.Corpus:
    """The works in title order, split by position, as characters (the vocabulary of the whole
    text) or as byte-level BPE tokens (merges learned on the training part only)."""
    text = parts.shakespeare_text(config.text_chars)
    train_text, val_text = parts.held_out_split(
        text, config.val_fraction, config.val_chars, config.block_size
    )
    if config.tokens == "bpe":
        vocab = parts.BpeVocab(bpe_ref.train_bpe(train_text, config.bpe_vocab))
    else:
        vocab = train_ref.CharVocab(text)
        missing = sorted(set(config.prompt) - set(vocab.stoi))
        if missing:
            raise ConfigError(f"config key 'prompt' has characters the text never uses: {missing}")
    return parts.corpus(vocab, train_text, val_text, config.curve_chars, config.val_chars)


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
        bf16=_use_bf16(config),
    )
    return model, training


def _use_bf16(config: Config) -> bool:
    """bfloat16 autocast when asked, or on "auto" when the CPU multiplies bfloat16 natively
    (AMX or AVX512-BF16: about 2x faster here); without that support bf16 is slower than fp32."""
    if config.precision != "auto":
        return config.precision == "bf16"
    checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(getattr(torch.cpu, name, lambda: False)() for name in checks)


def _fresh(model_cfg: ref.GPTConfig, train_cfg: train_ref.TrainConfig, seed: int):
    """A seeded model, its AdamW and the batch sampler's generator."""
    torch.manual_seed(seed)
    model = ref.GPT(model_cfg)
    opt = train_ref.make_optimizer(model, train_cfg.max_lr, train_cfg.weight_decay)
    return model, opt, torch.Generator().manual_seed(seed)


def _train(data: parts.Corpus, model_cfg, train_cfg, config: Config, ctx: RunContext):
    """Both halves of training with a checkpoint between them; the curve (nats per character)
    as it goes."""

    def curve_loss(model: ref.GPT) -> float:
        return train_ref.evaluate(model, data.curve, config.block_size) * data.curve_per_char

    model, opt, gen = _fresh(model_cfg, train_cfg, config.seed)
    curve = [{"step": 0, "train_loss": None, "curve_val_loss": curve_loss(model), "lr": 0.0}]
    resume_step = config.steps // 2
    bounds = sorted({*range(0, config.steps, config.eval_every), resume_step, config.steps})
    checkpoint = ctx.out_dir / "checkpoint.pt"
    for start, stop in ctx.track(list(zip(bounds, bounds[1:])), "training GPT"):
        if start == resume_step:  # save, then carry on in brand-new objects
            train_ref.save_checkpoint(checkpoint, model, opt, start, gen, train_cfg)
            model, opt, gen = _fresh(model_cfg, train_cfg, config.seed + 1)
            start = train_ref.load_checkpoint(checkpoint, model, opt, gen)
        losses = train_ref.train_steps(model, opt, data.train, train_cfg, gen, start, stop)
        lr = train_ref.lr_at(
            stop - 1, config.max_lr, config.warmup_steps, config.steps, config.min_lr
        )
        train_loss = float(np.mean(losses)) * data.train_per_char
        curve.append(
            {"step": stop, "train_loss": train_loss, "curve_val_loss": curve_loss(model), "lr": lr}
        )
    return model, curve, resume_step


def _samples(model: ref.GPT, vocab, config: Config) -> list[dict]:
    """Continue the prompt at the configured temperature, and greedily, each from the seed."""
    prompt = vocab.encode(config.prompt)[None]
    out = []
    for temperature in (config.temperature, 0.0):
        gen = torch.Generator().manual_seed(config.seed)
        ids = model.generate(prompt, config.sample_chars, temperature, config.top_k or None, gen)
        out.append({"temperature": temperature, "text": vocab.decode(ids[0])})
    return out


def _model_writer(model: ref.GPT, vocab, metrics: dict, config: Config) -> Callable[[Path], None]:
    """Writes `model.pt` (the state_dict) and `model.json` (the GPTConfig and the vocabulary:
    the characters, or with tokens "bpe" the BPE's vocab and merges)."""

    def write(folder: Path) -> None:
        torch.save(model.state_dict(), folder / "model.pt")
        spec = {
            "module": "airoad.transformer.char_gpt.GPT",
            "config": asdict(model.config),
            "tokens": config.tokens,
            "dataset": "shakespeare",
            "text": "the works in title order joined by newlines; the last val_fraction held out",
            "val_fraction": config.val_fraction,
            "val_chars": config.val_chars,
            "val_loss": metrics["val_loss"],
        }
        if config.tokens == "bpe":
            spec["bpe"] = {"vocab": vocab.bpe.vocab, "merges": vocab.bpe.merges}
        else:
            spec["vocab"] = vocab.chars
        (folder / "model.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write


def _scores(model: ref.GPT, data: parts.Corpus, config: Config) -> dict:
    """The held-out loss per character of ours, of torch's layers with our weights, and of
    bigram counts; per token too."""
    per_char, v = data.scored_per_char, data.vocab_size
    per_token = train_ref.evaluate(model, data.scored, config.block_size)
    twin = train_ref.evaluate(parts.TorchTwin(model), data.scored, config.block_size)
    if config.tokens == "bpe":
        desc = f"byte-level BPE, {v} ids learned on the training part, {1 / per_char:.2f} "
        desc += f"characters per held-out token, {per_token:.3f} nats per token"
    else:
        desc = f"characters, {v} ids"
    return {
        "val_loss": per_token * per_char,
        "val_bits": per_token * per_char / math.log(2),
        "val_loss_per_token": per_token,
        "chars_per_token": 1 / per_char,
        "tokens_desc": desc,
        "torch_layers_val_loss": twin * per_char,
        "bigram_val_loss": parts.bigram_loss(data.train, data.scored, v) * per_char,
        "uniform_loss": math.log(v) * per_char,
        "val_chars": config.val_chars,
        "curve_chars": config.curve_chars,
        "train_chars": round(len(data.train) / data.train_per_char),
        "vocab_size": v,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "train_tokens": config.steps * config.batch_size * config.block_size,
        "steps": config.steps,
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    data = _corpus(config)
    model_cfg, train_cfg = _configs(config, data.vocab_size)
    (model, curve, resume_step), cpu_s, wall_s = cpu_timed(
        lambda: _train(data, model_cfg, train_cfg, config, ctx)
    )
    metrics = _scores(model, data, config)
    metrics |= {"resume_step": resume_step, "train_cpu_s": cpu_s, "train_wall_s": wall_s}
    metrics["precision"] = "bf16 autocast" if train_cfg.bf16 else "fp32"
    metrics |= parts.attention_check(model, data.val, config)
    cache_rows = parts.generation_race(model, data.val, config)
    metrics |= parts.cache_metrics(parts.cache_logit_diff(model, data.val, config), cache_rows)
    samples = _samples(model, data.vocab, config)

    parts.loss_figure(curve, metrics, config, ctx)
    parts.cache_figure(cache_rows, config, ctx)
    ctx.save_artifact("model", _model_writer(model, data.vocab, metrics, config))

    return LabResult(
        metrics=metrics,
        key_metric="val_loss",
        library_metric="torch_layers_val_loss",
        tables={"curve": curve, "kv_cache": cache_rows, "samples": samples},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
