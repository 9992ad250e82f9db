"""Parts of the char-gpt runner: the Shakespeare text, its split and its tokens (characters or
byte-level BPE, scored per character either way), the bigram floor, the checks against torch (attention, nn.TransformerEncoderLayer with our weights), the KV-cache
checks and the two figures. ``benchmarks/char_gpt.py`` reads the same text and split from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, timed
from airoad.transformer import bpe_tokenizer as bpe_ref
from airoad.transformer import char_gpt as ref
from airoad.transformer import gpt_training as train_ref


def shakespeare_text(text_chars: int = 0) -> str:
    """The 42 works joined by newlines in title order; only the first text_chars if not 0."""
    works = load("shakespeare")
    text = "\n".join(works[name] for name in sorted(works))
    return text[:text_chars] if text_chars else text


def held_out_split(text: str, val_fraction: float, val_chars: int, block_size: int):
    """Split the text by position: the first 1 - val_fraction trains, the rest is held out."""
    cut = int(round(len(text) * (1.0 - val_fraction)))
    train, val = text[:cut], text[cut:]
    if len(val) <= val_chars or len(train) <= block_size:
        raise ConfigError(
            f"config key 'val_chars' is {val_chars}; the held-out part has only {len(val)} "
            "characters (raise text_chars or val_fraction)"
        )
    return train, val


class BpeVocab:
    """A trained ByteBPE with CharVocab's interface: encode -> int64 ids, decode -> text."""

    def __init__(self, bpe: bpe_ref.ByteBPE):
        self.bpe = bpe

    def encode(self, text: str) -> torch.Tensor:
        return torch.tensor(self.bpe.encode(text), dtype=torch.long)

    def decode(self, ids) -> str:
        return self.bpe.decode(int(i) for i in ids)


@dataclass
class Corpus:
    """Token ids of both parts, and the factors that turn a mean loss per predicted token into
    nats per predicted character (exactly 1 for characters), so char and BPE runs compare."""

    vocab: train_ref.CharVocab | BpeVocab
    vocab_size: int
    train: torch.Tensor  # the training text
    val: torch.Tensor  # the whole held-out text
    curve: torch.Tensor  # its first curve_chars + 1 characters, scored during training
    curve_per_char: float
    scored: torch.Tensor  # its first val_chars + 1 characters: the final number
    scored_per_char: float
    train_per_char: float  # training tokens per training character


def _slice(vocab, val_text: str, n_chars: int) -> tuple[torch.Tensor, float]:
    """The ids of the first n_chars + 1 characters; predicted tokens per predicted character
    (every token but the first is predicted; so is every character it does not cover)."""
    ids = vocab.encode(val_text[: n_chars + 1])
    return ids, (len(ids) - 1) / (n_chars + 1 - len(vocab.decode(ids[:1])))


def corpus(vocab, train_text: str, val_text: str, curve_chars: int, val_chars: int) -> Corpus:
    """Encode the split with vocab (a CharVocab or a BpeVocab)."""
    train = vocab.encode(train_text)
    size = vocab.bpe.vocab_size if isinstance(vocab, BpeVocab) else len(vocab.chars)
    curve, curve_per_char = _slice(vocab, val_text, curve_chars)
    scored, scored_per_char = _slice(vocab, val_text, val_chars)
    return Corpus(
        vocab,
        size,
        train,
        vocab.encode(val_text),
        curve,
        curve_per_char,
        scored,
        scored_per_char,
        len(train) / len(train_text),
    )


def bigram_loss(
    train: torch.Tensor, val: torch.Tensor, vocab_size: int, alpha: float = 0.1
) -> float:
    """Nats/char on val of add-alpha smoothed bigram counts from train: a floor to beat."""
    pairs = torch.bincount(train[:-1] * vocab_size + train[1:], minlength=vocab_size**2)
    counts = pairs.reshape(vocab_size, vocab_size).double() + alpha
    logp = torch.log(counts / counts.sum(1, keepdim=True))
    return float(-logp[val[:-1], val[1:]].mean())


def attention_check(model: ref.GPT, val: torch.Tensor, config: Any) -> dict:
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


# nn.TransformerEncoderLayer's parameter name -> ours inside a Block
TORCH_NAMES = {
    "self_attn.in_proj_weight": "attn.c_attn.weight",
    "self_attn.in_proj_bias": "attn.c_attn.bias",
    "self_attn.out_proj.weight": "attn.c_proj.weight",
    "self_attn.out_proj.bias": "attn.c_proj.bias",
    "linear1.weight": "mlp.c_fc.weight",
    "linear1.bias": "mlp.c_fc.bias",
    "linear2.weight": "mlp.c_proj.weight",
    "linear2.bias": "mlp.c_proj.bias",
    "norm1.weight": "ln_1.weight",
    "norm1.bias": "ln_1.bias",
    "norm2.weight": "ln_2.weight",
    "norm2.bias": "ln_2.bias",
}


class TorchTwin(nn.Module):
    """Our trained GPT with every block replaced by nn.TransformerEncoderLayer, weights copied."""

    def __init__(self, gpt: ref.GPT):
        super().__init__()
        c, self.gpt = gpt.config.n_embd, gpt
        self.layers = nn.ModuleList()
        for block in gpt.blocks:
            layer = nn.TransformerEncoderLayer(
                c, gpt.config.n_head, 4 * c, 0.0, "gelu", batch_first=True, norm_first=True
            )
            ours = block.state_dict()
            layer.load_state_dict({name: ours[mine] for name, mine in TORCH_NAMES.items()})
            self.layers.append(layer)

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        t = idx.shape[1]
        x = self.gpt.wte(idx) + self.gpt.wpe(torch.arange(t))
        mask = nn.Transformer.generate_square_subsequent_mask(t)
        for layer in self.layers:
            x = layer(x, src_mask=mask, is_causal=True)
        logits = self.gpt.lm_head(self.gpt.ln_f(x))
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def cache_logit_diff(model: ref.GPT, val: torch.Tensor, config: Any) -> float:
    """Max |logits| difference, float64, between one full pass over a real held-out window and
    the prompt-sized prefill followed by one token at a time through a KVCache."""
    twin = ref.GPT(model.config).double()
    twin.load_state_dict(model.state_dict())
    twin.eval()
    window, split = val[None, : config.block_size], len(config.prompt)
    with torch.no_grad():
        cache = ref.KVCache(config.n_layer)
        steps = [twin(window[:, :split], cache)]
        steps += [twin(window[:, t : t + 1], cache) for t in range(split, config.block_size)]
        return float((torch.cat(steps, dim=1) - twin(window)).abs().max())


def generation_race(model: ref.GPT, val: torch.Tensor, config: Any) -> list[dict]:
    """Greedy generation of each length with and without the cache: seconds, same tokens?"""
    prompt, rows = val[None, : len(config.prompt)], []
    for n in config.cache_lengths:
        cached, cache_s = timed(model.generate, prompt, n, 0.0, None, None, True)
        plain, plain_s = timed(model.generate, prompt, n, 0.0, None, None, False)
        same = bool(torch.equal(cached, plain))
        rows.append(
            {"tokens": n, "cache_seconds": cache_s, "nocache_seconds": plain_s, "same_tokens": same}
        )
    return rows


def cache_metrics(diff: float, rows: list[dict]) -> dict:
    last = rows[-1]
    return {
        "cache_max_abs_logit_diff": diff,
        "cache_tokens": last["tokens"],
        "cache_seconds": last["cache_seconds"],
        "nocache_seconds": last["nocache_seconds"],
        "cache_speedup": last["nocache_seconds"] / last["cache_seconds"],
    }


def loss_figure(curve: list[dict], m: dict, config: Any, ctx: RunContext) -> None:
    steps, val = [c["step"] for c in curve], [c["curve_val_loss"] for c in curve]
    train, bigram = [c["train_loss"] for c in curve[1:]], m["bigram_val_loss"]
    with figure(ctx, "loss_curve", figsize=(8, 4.5)) as (_, ax):
        ax.plot(steps[1:], train, "o-", ms=3, label="train (mean over the interval)")
        ax.plot(steps, val, "s-", ms=3, label=f"held-out, first {m['curve_chars']} chars")
        ax.plot(steps[-1], m["val_loss"], "r*", ms=12, label=f"final, first {m['val_chars']} chars")
        ax.axhline(bigram, color="k", ls="--", label=f"bigram counts {bigram:.2f}")
        ax.axvline(m["resume_step"], color="grey", ls=":", label="checkpoint, resumed")
        bpe = m["chars_per_token"] != 1.0
        title = f"BPE GPT ({m['vocab_size']} tokens)" if bpe else "char GPT"
        ax.set(
            xlabel="optimizer step", ylabel="nats per character", title=f"{title} on Shakespeare"
        )
        ax.set_ylim(min(*val, *train, bigram) - 0.1, max(*val, *train, bigram) + 0.1)
        ax.legend(fontsize=8)
        c = config
        lrs = [
            train_ref.lr_at(s, c.max_lr, c.warmup_steps, c.steps, c.min_lr) for s in range(c.steps)
        ]
        lr_ax = ax.twinx()
        lr_ax.plot(range(c.steps), lrs, color="tab:green", alpha=0.5, lw=1)
        lr_ax.set_ylabel("learning rate (green): warm-up, cosine decay")


def cache_figure(rows: list[dict], config: Any, ctx: RunContext) -> None:
    n = [r["tokens"] for r in rows]
    with figure(ctx, "kv_cache", figsize=(6.5, 4)) as (_, ax):
        ax.plot(n, [r["nocache_seconds"] for r in rows], "o-", label="no cache (re-run the window)")
        ax.plot(n, [r["cache_seconds"] for r in rows], "s-", label="KV cache (one token per step)")
        full = config.block_size - len(config.prompt)
        ax.axvline(full, color="grey", ls=":", label=f"context full ({config.block_size} tokens)")
        ax.set(xlabel="new tokens generated", ylabel="seconds", title="greedy generation time")
        ax.legend()
