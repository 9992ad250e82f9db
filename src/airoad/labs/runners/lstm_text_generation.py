"""Runner for lstm-text-generation: a character LSTM trained on Shakespeare's complete works.

The works are joined in title order and split by position (the last 10% validates). We report
validation loss in bits per character beside unigram and bigram count models fitted on the same
training text (the 'library' number), plot the validation curve, and continue "To be or" at
temperatures 0.5 and 1.0 (and greedily)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.sequence import lstm_text_generation as ref


@dataclass(frozen=True)
class Config:
    text_chars: int = 0  # 0 = the whole corpus (about 5 M characters)
    val_fraction: float = 0.1
    embed_dim: int = 32
    hidden_size: int = 192
    n_layers: int = 1
    seq_len: int = 100
    batch_size: int = 64
    steps: int = 800
    lr: float = 3e-3
    eval_every: int = 100
    eval_chars: int = 30_000  # validation slice for the curve; the final number uses all of it
    prompt: str = "To be or"
    sample_chars: int = 300
    temperatures: tuple[float, ...] = (0.5, 1.0)
    seed: int = 0


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


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    works = load("shakespeare")
    text = "\n".join(works[name] for name in sorted(works))
    if config.text_chars:
        text = text[: config.text_chars]
    stoi, itos = ref.build_vocab(text)
    ids = ref.encode(text, stoi)
    train, val = ref.split_by_position(ids, config.val_fraction)
    val_slice = val[: config.eval_chars + 1]

    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = ref.CharLSTM(len(itos), config.embed_dim, config.hidden_size, config.n_layers)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, config.steps)
    untrained = ref.evaluate_loss(model, val_slice, config.seq_len)
    curve = [{"step": 0, "train_loss_nats": None, "val_loss_nats": untrained}]
    recent: list[float] = []
    t0 = time.perf_counter()
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
    train_seconds = time.perf_counter() - t0
    val_nats = ref.evaluate_loss(model, val, config.seq_len)
    uni_bits, bi_bits = _ngram_bits(train.numpy(), val.numpy(), len(itos))

    prompt_ids = ref.encode(config.prompt, stoi)
    samples = []
    for temp in (0.0, *config.temperatures):
        out = ref.sample(
            model, prompt_ids, config.sample_chars, temp, torch.Generator().manual_seed(config.seed)
        )
        samples.append({"temperature": temp, "text": config.prompt + ref.decode(out, itos)})

    fig, ax = plt.subplots(figsize=(7, 4))
    steps = [c["step"] for c in curve]
    ax.plot(
        steps[1:],
        [ref.nats_to_bits(c["train_loss_nats"]) for c in curve[1:]],
        "o-",
        label="train (mean since last point)",
    )
    ax.plot(steps, [ref.nats_to_bits(c["val_loss_nats"]) for c in curve], "s-", label="validation")
    ax.axhline(bi_bits, color="k", ls="--", label=f"bigram counts {bi_bits:.2f}")
    ax.axhline(uni_bits, color="grey", ls=":", label=f"unigram counts {uni_bits:.2f}")
    ax.set(xlabel="training step", ylabel="bits per character", title="char LSTM on Shakespeare")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig_path = ctx.figure_path("loss_curve")
    fig.savefig(fig_path, dpi=110)
    plt.close(fig)

    val_bits = ref.nats_to_bits(val_nats)
    metrics = {
        "train_chars": len(train),
        "val_chars": len(val),
        "vocab_size": len(itos),
        "log2_vocab_bits": math.log2(len(itos)),
        "untrained_val_bits": ref.nats_to_bits(untrained),
        "ours_val_bits_per_char": val_bits,
        "ours_val_nats_per_char": val_nats,
        "bigram_val_bits_per_char": bi_bits,
        "unigram_val_bits_per_char": uni_bits,
        "train_seconds": train_seconds,
        "steps": config.steps,
    }
    table = [
        {"model": "char LSTM (ours)", "val_bits_per_char": val_bits, "val_nats_per_char": val_nats},
        {
            "model": "bigram counts",
            "val_bits_per_char": bi_bits,
            "val_nats_per_char": bi_bits * math.log(2),
        },
        {
            "model": "unigram counts",
            "val_bits_per_char": uni_bits,
            "val_nats_per_char": uni_bits * math.log(2),
        },
        {
            "model": "uniform over vocab",
            "val_bits_per_char": math.log2(len(itos)),
            "val_nats_per_char": math.log(len(itos)),
        },
    ]
    better = "beats" if val_bits < bi_bits else "does not beat"
    notes = [
        f"Validation loss {val_bits:.3f} bits/char ({val_nats:.3f} nats) after {config.steps} "
        f"steps; the bigram count model scores {bi_bits:.3f}, so the LSTM {better} it "
        f"(unigram {uni_bits:.3f}, uniform {math.log2(len(itos)):.3f}).",
        *[f"T={s['temperature']}: {s['text'][:120]!r}" for s in samples],
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_val_bits_per_char",
        library_metric="bigram_val_bits_per_char",
        tables={"losses": table, "curve": curve, "samples": samples},
        figures=[fig_path],
        notes=notes,
    )
