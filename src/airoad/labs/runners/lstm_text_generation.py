"""Runner for lstm-text-generation: a character LSTM trained on Shakespeare's complete works.

The works are joined in title order and split by position (the last 10% validates). We report
validation loss in bits per character beside unigram and bigram count models fitted on the same
training text (the 'library' number), plot the validation curve, and continue "To be or" at
temperatures 0.5 and 1.0 (and greedily)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes, timed, validate_config
from airoad.sequence import lstm_text_generation as ref


@dataclass(frozen=True)
class Config:
    text_chars: int = param(0, ge=0)  # 0 = the whole corpus (about 5 M characters)
    val_fraction: float = param(0.1, gt=0.0, le=0.5)
    embed_dim: int = param(32, ge=1, le=1024)
    hidden_size: int = param(192, ge=1, le=2048)
    n_layers: int = param(1, ge=1, le=8)
    seq_len: int = param(100, ge=1, le=2000)
    batch_size: int = param(64, ge=1, le=4096)
    steps: int = param(800, ge=1, le=100_000)
    lr: float = param(3e-3, gt=0.0, le=1.0)
    eval_every: int = param(100, ge=1)
    # validation slice for the curve; the final number uses all of it
    eval_chars: int = param(30_000, ge=1)
    prompt: str = "To be or"
    sample_chars: int = param(300, ge=1, le=100_000)
    temperatures: tuple[float, ...] = param((0.5, 1.0), gt=0.0, le=10.0)  # greedy (0) comes too
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)  # the declared ranges first
        if not self.prompt:
            raise ConfigError("config key 'prompt' is empty; sampling needs at least one char")
        if self.eval_chars < self.seq_len:
            raise ConfigError(
                f"config key 'eval_chars' is {self.eval_chars}; it must be >= seq_len "
                f"({self.seq_len}) to hold one validation window"
            )
        if self.text_chars:
            n_train = int(round(self.text_chars * (1.0 - self.val_fraction)))
            if min(n_train, self.text_chars - n_train) <= self.seq_len:
                raise ConfigError(
                    f"config key 'text_chars' is {self.text_chars}; with val_fraction "
                    f"{self.val_fraction} both parts must be longer than seq_len ({self.seq_len})"
                )


QUICK = {
    "text_chars": 200_000,
    "hidden_size": 32,
    "seq_len": 50,
    "batch_size": 16,
    "steps": 40,
    "eval_every": 20,
    "eval_chars": 5_000,
    "sample_chars": 60,
}

NOTES = (
    "Validation loss {ours_val_bits_per_char:.3f} bits/char ({ours_val_nats_per_char:.3f} nats) "
    "after {steps} steps; the bigram count model scores {bigram_val_bits_per_char:.3f}, so the "
    "LSTM {verdict} it (unigram {unigram_val_bits_per_char:.3f}, uniform {log2_vocab_bits:.3f}).",
)
SAMPLE_NOTE = ("T={temperature}: {head!r}",)  # one note per sample, its first 120 characters


def _shakespeare(config: Config):
    """The works in title order as ids, split by position; the vocabulary both ways."""
    works = load("shakespeare")
    text = "\n".join(works[name] for name in sorted(works))
    if config.text_chars:
        text = text[: config.text_chars]
    stoi, itos = ref.build_vocab(text)
    missing = sorted(set(config.prompt) - set(stoi))
    if missing:
        raise ConfigError(f"config key 'prompt' has characters the text never uses: {missing}")
    train, val = ref.split_by_position(ref.encode(text, stoi), config.val_fraction)
    return train, val, stoi, itos


def _train(model, train, val_slice, untrained: float, config: Config, ctx: RunContext):
    """Adam with a cosine schedule and clipped gradients; the validation curve as it goes."""
    gen = torch.Generator().manual_seed(config.seed)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    curve = [{"step": 0, "train_loss_nats": None, "val_loss_nats": untrained}]
    recent: list[float] = []
    for step in ctx.track(range(1, config.steps + 1), "training char LSTM"):
        x, y = ref.get_batch(train, config.seq_len, config.batch_size, gen)
        opt.zero_grad()
        loss = ref.sequence_loss(model, x, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        recent.append(loss.item())
        if step % config.eval_every == 0 or step == config.steps:
            curve.append(
                {
                    "step": step,
                    "train_loss_nats": float(np.mean(recent)),
                    "val_loss_nats": ref.evaluate_loss(model, val_slice, config.seq_len),
                }
            )
            recent = []
    return curve


def _train_char_lstm(train, val, vocab: int, config: Config, ctx: RunContext):
    """A seeded model, its loss before and after training (nats) and the training time."""
    torch.manual_seed(config.seed)
    model = ref.CharLSTM(vocab, config.embed_dim, config.hidden_size, config.n_layers)
    val_slice = val[: config.eval_chars + 1]
    untrained = ref.evaluate_loss(model, val_slice, config.seq_len)
    curve, seconds = timed(_train, model, train, val_slice, untrained, config, ctx)
    val_nats = ref.evaluate_loss(model, val, config.seq_len)
    return model, curve, {"untrained": untrained, "val_nats": val_nats, "seconds": seconds}


def _ngram_bits(
    train: np.ndarray, val: np.ndarray, vocab: int, alpha: float = 0.1
) -> tuple[float, float]:
    """Bits/char on `val` of add-alpha smoothed unigram and bigram models counted on `train`."""
    uni = np.bincount(train, minlength=vocab) + alpha
    uni_bits = float(-np.log2(uni[val] / uni.sum()).mean())
    pairs = np.bincount(train[:-1] * vocab + train[1:], minlength=vocab * vocab)
    big = pairs.reshape(vocab, vocab) + alpha
    cond = big / big.sum(1, keepdims=True)  # p(next | previous)
    bi_bits = float(-np.log2(cond[val[:-1], val[1:]]).mean())
    return uni_bits, bi_bits


def _samples(model, stoi: dict, itos: list, config: Config) -> list[dict]:
    """Continue the prompt greedily and at each temperature, each from the same seed."""
    prompt_ids = ref.encode(config.prompt, stoi)
    samples = []
    for temp in (0.0, *config.temperatures):
        gen = torch.Generator().manual_seed(config.seed)
        out = ref.sample(model, prompt_ids, config.sample_chars, temp, gen)
        samples.append({"temperature": temp, "text": config.prompt + ref.decode(out, itos)})
    return samples


def _loss_table(m: dict) -> list[dict]:
    """Validation loss of every model in bits and nats per character."""
    rows = [
        ("char LSTM (ours)", m["ours_val_bits_per_char"], m["ours_val_nats_per_char"]),
        ("bigram counts", m["bigram_val_bits_per_char"], None),
        ("unigram counts", m["unigram_val_bits_per_char"], None),
        ("uniform over vocab", m["log2_vocab_bits"], math.log(m["vocab_size"])),
    ]
    return [
        {
            "model": model,
            "val_bits_per_char": bits,
            "val_nats_per_char": bits * math.log(2) if nats is None else nats,
        }
        for model, bits, nats in rows
    ]


def _loss_figure(curve: list[dict], uni_bits: float, bi_bits: float, ctx: RunContext) -> None:
    steps = [c["step"] for c in curve]
    with figure(ctx, "loss_curve", figsize=(7, 4)) as (_, ax):
        ax.plot(
            steps[1:],
            [ref.nats_to_bits(c["train_loss_nats"]) for c in curve[1:]],
            "o-",
            label="train (mean since last point)",
        )
        val_bits = [ref.nats_to_bits(c["val_loss_nats"]) for c in curve]
        ax.plot(steps, val_bits, "s-", label="validation")
        ax.axhline(bi_bits, color="k", ls="--", label=f"bigram counts {bi_bits:.2f}")
        ax.axhline(uni_bits, color="grey", ls=":", label=f"unigram counts {uni_bits:.2f}")
        ax.set(
            xlabel="training step", ylabel="bits per character", title="char LSTM on Shakespeare"
        )
        ax.legend(fontsize=8)


def _metrics(train, val, vocab: int, lstm: dict, ngram_bits: tuple, config: Config) -> dict:
    uni_bits, bi_bits = ngram_bits
    return {
        "train_chars": len(train),
        "val_chars": len(val),
        "vocab_size": vocab,
        "log2_vocab_bits": math.log2(vocab),
        "untrained_val_bits": ref.nats_to_bits(lstm["untrained"]),
        "ours_val_bits_per_char": ref.nats_to_bits(lstm["val_nats"]),
        "ours_val_nats_per_char": lstm["val_nats"],
        "bigram_val_bits_per_char": bi_bits,
        "unigram_val_bits_per_char": uni_bits,
        "train_seconds": lstm["seconds"],
        "steps": config.steps,
    }


def _notes(metrics: dict, samples: list[dict], config: Config) -> list[str]:
    """The verdict against the bigram model, then the start of every sample."""
    better = metrics["ours_val_bits_per_char"] < metrics["bigram_val_bits_per_char"]
    verdict = "beats" if better else "does not beat"
    notes = render_notes(NOTES, {**asdict(config), **metrics, "verdict": verdict})
    for s in samples:
        notes += render_notes(
            SAMPLE_NOTE, {"temperature": s["temperature"], "head": s["text"][:120]}
        )
    return notes


def run(config: Config, ctx: RunContext) -> LabResult:
    train, val, stoi, itos = _shakespeare(config)
    model, curve, lstm = _train_char_lstm(train, val, len(itos), config, ctx)
    ngram_bits = _ngram_bits(train.numpy(), val.numpy(), len(itos))
    samples = _samples(model, stoi, itos, config)
    metrics = _metrics(train, val, len(itos), lstm, ngram_bits, config)

    _loss_figure(curve, *ngram_bits, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_val_bits_per_char",
        library_metric="bigram_val_bits_per_char",
        tables={"losses": _loss_table(metrics), "curve": curve, "samples": samples},
        figures=ctx.figures,
        notes=_notes(metrics, samples, config),
    )
