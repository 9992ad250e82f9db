"""Parts of the knowledge-distillation runner: the teacher (bert-sentiment's fine-tuned MiniLM)
and its cached logits, the student (lstm-sentiment's LSTMClassifier on word ids), training with
and without the teacher, the size / latency table, and the figures.

The reviews, labels and text cleaning are bert-sentiment's (imported, not copied); the student's
tokenizer, vocabulary and model are lstm-sentiment's.
"""

from __future__ import annotations

import hashlib
import io
import json
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from airoad.labs import artifacts
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, thread_limit, timed
from airoad.labs.runners import bert_sentiment_parts as bert_parts
from airoad.llm import bert_sentiment as bert_ref
from airoad.production import knowledge_distillation as ref
from airoad.sequence import lstm_sentiment as lstm_ref

LAB = "knowledge-distillation"

# ---------------------------------------------------------------- teacher


def load_teacher(which: str) -> tuple[Any, Any, Path]:
    """(model in eval mode, tokenizer, folder) of bert-sentiment's classifier; `which` is
    "full" or "quick" (its quick config, trained here on a miss in about a minute)."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging

    folder = artifacts.require("bert-sentiment", "classifier", quick=which == "quick")
    bars = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # a "loading weights" bar would tear through the run's display
    try:
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    finally:
        if bars:
            logging.enable_progress_bar()
    return model.eval(), AutoTokenizer.from_pretrained(folder, local_files_only=True), folder


def teacher_spec(folder: Path) -> dict:
    return json.loads((folder / "lab.json").read_text(encoding="utf-8"))


def teacher_predict(model, tok, max_length: int) -> Callable[[list[str]], torch.Tensor]:
    """Raw reviews -> teacher logits (n, 2), cleaned and tokenised as bert-sentiment trained."""

    @torch.no_grad()
    def predict(texts: list[str]) -> torch.Tensor:
        ids = bert_ref.encode_texts(tok, bert_parts.clean(texts), max_length)
        return model(**bert_ref.collate(ids, tok.pad_token_id)).logits

    return predict


def _digest(texts) -> str:
    return hashlib.sha256("\x00".join(texts).encode()).hexdigest()


def teacher_logits(teacher, frames: dict, config, ctx: RunContext) -> dict[str, torch.Tensor]:
    """Teacher logits of every review of each frame, computed once and kept in the artifact
    cache, keyed by the teacher's weights and the review subset (not by T, alpha or the
    student), so a sweep or a re-run never runs the teacher again. A cache that cannot be
    written (read-only disk) only costs the reuse."""
    model, tok, folder = teacher
    manifest = json.loads((folder / artifacts.MANIFEST).read_text(encoding="utf-8"))
    key = {
        "teacher": manifest["files"]["model.safetensors"],
        "max_length": teacher_spec(folder)["max_length"],
        **{f"{k}_reviews": _digest(v["review"]) for k, v in frames.items()},
    }
    found = artifacts.lookup(LAB, key, "teacher_logits")
    if found is not None:
        return {k: torch.from_numpy(np.load(found / f"{k}.npy")) for k in frames}
    out = {}
    for name, df in frames.items():
        ids = bert_ref.encode_texts(tok, bert_parts.clean(df["review"]), key["max_length"])
        bs, order = bert_parts.batches(ids, None, tok.pad_token_id, config.eval_batch_size)
        batches = ctx.track(bs, f"teacher logits ({name})")
        out[name] = bert_parts.unsort(bert_ref.predict_logits(model, batches), order)

    def write(path: Path) -> None:
        for name, logits in out.items():
            np.save(path / f"{name}.npy", logits.numpy())

    try:
        artifacts.save(LAB, key, "teacher_logits", write)
    except OSError:
        pass
    return out


# ---------------------------------------------------------------- student


def student_encoder(train_texts, config) -> tuple[dict, Callable]:
    """lstm-sentiment's word vocabulary from the (cleaned) training reviews, and the function
    that turns reviews into its padded (ids, lengths)."""
    tokens = [lstm_ref.tokenize(t) for t in bert_parts.clean(train_texts)]
    vocab = lstm_ref.build_vocab(tokens, min_count=config.min_count)

    def encode(texts) -> tuple[torch.Tensor, torch.Tensor]:
        seqs = [lstm_ref.encode(lstm_ref.tokenize(t), vocab) for t in bert_parts.clean(texts)]
        return lstm_ref.pad_batch(seqs, config.max_len)

    return vocab, encode


def train_student(data: dict, soft, temperature: float, config, ctx: RunContext, label: str):
    """A fresh LSTMClassifier (same seed, same batch order, same steps for every student)
    trained for `epochs` on the labels (soft=None) or on the teacher (soft = its logits).
    Returns (model, history with the train loss and held-out accuracy per epoch, seconds)."""
    torch.manual_seed(config.seed)
    model = lstm_ref.LSTMClassifier(
        len(data["vocab"]), config.embed_dim, config.hidden_size, 2, config.dropout
    )
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    gen = torch.Generator().manual_seed(config.seed)
    alpha = config.alpha if soft is not None else 0.0

    def epochs() -> list[dict]:
        history = []
        for epoch in ctx.track(range(config.epochs), f"student: {label}"):
            loss = ref.distill_epoch(
                model, opt, data["train"], data["y_train"], soft, temperature, alpha,
                config.batch_size, gen,
            )  # fmt: skip
            acc = accuracy(ref.predict_logits(model, data["test"]), data["y_test"])
            history.append({"student": label, "epoch": epoch + 1, "loss": loss, "accuracy": acc})
        return history

    with thread_limit(1):  # a 64-wide LSTM step is too small to share; 2 threads only spin
        history, seconds = timed(epochs)
    return model, history, seconds


def accuracy(logits: torch.Tensor, y: torch.Tensor) -> float:
    return lstm_ref.accuracy(y, logits.argmax(-1))


def student_predict(model, encode) -> Callable[[list[str]], torch.Tensor]:
    @torch.no_grad()
    def predict(texts: list[str]) -> torch.Tensor:
        model.eval()
        return model(*encode(texts))

    return predict


# ---------------------------------------------------------------- size and latency


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def size_mb(model) -> float:
    """Bytes of `torch.save(state_dict)` (fp32 weights; tokenizer / vocabulary not counted)."""
    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes / 1e6


def latency_ms(predict: Callable, texts: list[str], batch: int, repeats: int) -> float:
    """Median wall ms of `predict` on `repeats` consecutive batches of `batch` raw reviews, on
    one thread (text -> logits: tokenising included), after one unmeasured round of them."""
    chunks = [texts[(i * batch) % len(texts) :][:batch] for i in range(repeats)]
    chunks = [c if len(c) == batch else texts[:batch] for c in chunks]
    with thread_limit(1):
        for c in chunks:  # a warm-up round: right after the teacher, a student runs ~2x slower
            predict(c)
        times = [timed(predict, c)[1] for c in chunks]
    return 1000 * statistics.median(times)


def profile_row(name: str, model, predict, texts: list[str], acc: float, config) -> dict:
    return {
        "model": name,
        "accuracy": acc,
        "parameters": n_params(model),
        "size_mb": size_mb(model),
        "latency_ms_b1": latency_ms(predict, texts, 1, config.latency_repeats),
        "latency_ms_b32": latency_ms(predict, texts, 32, config.latency_repeats),
    }


# ---------------------------------------------------------------- figures


def curves_figure(histories: list[list[dict]], teacher_acc: float, ctx: RunContext) -> None:
    with figure(ctx, "learning_curves", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        for hist in histories:
            epochs = [h["epoch"] for h in hist]
            name = hist[0]["student"]
            left.plot(epochs, [h["loss"] for h in hist], "o-", label=name)
            right.plot(epochs, [h["accuracy"] for h in hist], "o-", label=name)
        left.set(xlabel="epoch", ylabel="training loss (own objective)", title="training loss")
        right.axhline(teacher_acc, color="k", ls="--", label="teacher (MiniLM)")
        right.set(xlabel="epoch", ylabel="held-out accuracy", title="held-out accuracy")
        left.legend(fontsize=8)
        right.legend(fontsize=8)


def sweep_figure(sweep: list[dict], label_acc: float, teacher_acc: float, ctx) -> None:
    temps = [r["temperature"] for r in sweep]
    with figure(ctx, "temperature_sweep", figsize=(7, 4.2)) as (_, ax):
        ax.plot(temps, [r["accuracy"] for r in sweep], "o-", label="distilled student")
        ax.plot(temps, [r["agreement"] for r in sweep], "s:", label="agreement with teacher")
        ax.axhline(label_acc, color="tab:red", ls="-.", label="label-only student")
        ax.axhline(teacher_acc, color="k", ls="--", label="teacher")
        ax.set_xscale("log", base=2)
        ax.set_xticks(temps, [f"{t:g}" for t in temps])
        ax.set(xlabel="temperature T", ylabel="held-out accuracy / agreement")
        ax.set_title("same student, same steps: which temperature teaches best")
        ax.legend(fontsize=8)
