"""Parts of the bert-sentiment runner: the reviews, all-MiniLM-L6-v2 with a seeded head, the
frozen-embedding and fine-tuning experiments, the baselines borrowed from lstm-sentiment, the
comparison table with McNemar's test, and the figures.

All models see the same training reviews and are scored on the same held-out reviews. TF-IDF
and the LSTM come from the lstm-sentiment lab's runner (imported, not copied), so their numbers
are that lab's on the same split.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from airoad.data import load
from airoad.data.models import MINILM, _pretrained
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, timed
from airoad.labs.runners import lstm_sentiment as lstm_runner
from airoad.llm import bert_sentiment as ref
from airoad.sequence import lstm_sentiment as lstm_ref

LABELS = ("other", "great")  # class 1 is 'great', as in lstm-sentiment
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


# ---------------------------------------------------------------- data and model


def reviews(n_train: int, n_test: int, seed: int):
    """The fine-food split (4000 train, 1000 test), each optionally a seeded subset (0 = all)."""
    train_df, test_df = load("fine-food")
    if n_train:
        train_df = train_df.sample(n=min(n_train, len(train_df)), random_state=seed)
    if n_test:
        test_df = test_df.sample(n=min(n_test, len(test_df)), random_state=seed)
    return train_df.reset_index(drop=True), test_df.reset_index(drop=True)


def labels(df) -> np.ndarray:
    return lstm_runner._labels(df)


def clean(texts) -> list[str]:
    """The review text with its HTML line breaks turned into spaces (BERT would read "<br />" as
    five word pieces); TF-IDF and the LSTM keep lstm-sentiment's raw text."""
    return [" ".join(_BR.sub(" ", t).split()) for t in texts]


def load_minilm(seed: int) -> tuple[Any, Any]:
    """(BertForSequenceClassification with a new 2-class head drawn from `seed`, tokenizer).
    A missing or damaged model is one line naming `airoad data fetch`."""

    def read(folder: Path):
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging

        level, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
        logging.set_verbosity_error()  # the "newly initialized head" report is expected here
        logging.disable_progress_bar()
        try:
            model = AutoModelForSequenceClassification.from_pretrained(
                folder,
                num_labels=2,
                id2label=dict(enumerate(LABELS)),
                label2id={name: i for i, name in enumerate(LABELS)},
                local_files_only=True,
            )
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        finally:
            logging.set_verbosity(level)
            if bars:
                logging.enable_progress_bar()
        return model, tokenizer

    model, tokenizer = _pretrained(MINILM, read)
    gen = torch.Generator().manual_seed(seed)  # the head is the only random part of the start
    with torch.no_grad():
        std = model.config.initializer_range
        torch.nn.init.normal_(model.classifier.weight, 0.0, std, generator=gen)
        model.classifier.bias.zero_()
    return model, tokenizer


def batches(ids, y, pad_id: int, size: int) -> tuple[list[dict], torch.Tensor]:
    """Evaluation batches sorted by length (little padding); `order` puts results back."""
    order = torch.as_tensor(np.argsort([len(s) for s in ids], kind="stable"))
    out = []
    for idx in order.split(size):
        out.append(ref.collate([ids[i] for i in idx], pad_id, None if y is None else y[idx]))
    return out, order


def unsort(values: torch.Tensor, order: torch.Tensor) -> torch.Tensor:
    out = torch.empty_like(values)
    out[order] = values
    return out


# ---------------------------------------------------------------- experiments


def frozen_embeddings(model, ids_train, ids_test, y_train, pad_id: int, config) -> dict:
    """Mean-pooled, normalised MiniLM vectors (encoder untouched) + logistic regression."""
    from sklearn.linear_model import LogisticRegression

    def vectors(ids):
        bs, order = batches(ids, None, pad_id, config.eval_batch_size)
        return unsort(ref.embed(model.bert, bs), order).numpy()

    (X_train, X_test), seconds = timed(lambda: (vectors(ids_train), vectors(ids_test)))
    clf = LogisticRegression(C=config.embed_C, max_iter=2000, random_state=config.seed)
    return {"pred": clf.fit(X_train, y_train).predict(X_test), "seconds": seconds}


def fine_tune(model, ids, y, pad_id: int, config, ctx: RunContext) -> tuple[list[dict], float]:
    """Our loop: seeded, length-grouped batches, AdamW, linear warm-up and decay, clipping."""
    gen = torch.Generator().manual_seed(config.seed)
    lengths = [len(s) for s in ids]
    epochs = [ref.batch_order(lengths, config.batch_size, gen, config.group_size)]
    per_epoch = len(epochs[0])
    total = config.max_steps or per_epoch * config.epochs
    while len(epochs) * per_epoch < total:
        epochs.append(ref.batch_order(lengths, config.batch_size, gen, config.group_size))
    order = [b for e in epochs for b in e][:total]
    warmup = int(round(config.warmup_ratio * total))
    opt = ref.make_optimizer(model, config.lr, config.weight_decay)
    sched = ref.make_scheduler(opt, warmup, total)
    y_t = torch.as_tensor(y)

    def loop():
        curve = []
        for step, idx in enumerate(ctx.track(order, "fine-tuning MiniLM")):
            batch = ref.collate([ids[i] for i in idx], pad_id, y_t[idx])
            lr = sched.get_last_lr()[0]
            loss = ref.train_step(model, batch, opt, sched, config.max_grad_norm)
            curve.append(
                {"step": step + 1, "loss": loss, "lr": lr, "tokens": batch["input_ids"].numel()}
            )
        return curve

    return timed(loop)


def predict(model, ids, pad_id: int, config) -> np.ndarray:
    """P(great) of every review, in the original order."""
    bs, order = batches(ids, None, pad_id, config.eval_batch_size)
    logits = unsort(ref.predict_logits(model, bs), order)
    return torch.softmax(logits, -1)[:, 1].numpy()


def lstm_baseline(train_df, test_df, config, ctx: RunContext) -> dict:
    """The lstm-sentiment lab's LSTM and TF-IDF + LR on these reviews (its own code and
    defaults, `lstm_epochs` epochs)."""
    cfg = lstm_runner.Config(epochs=config.lstm_epochs, seed=config.seed)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    vocab, data = lstm_runner._encode(train_df, test_df, gen, cfg)
    model, _, lstm_seconds = lstm_runner._train_lstm(vocab, data, gen, cfg, ctx)
    tfidf, tfidf_seconds = lstm_runner._tfidf_baseline(train_df, test_df, cfg, ctx)
    return {
        "lstm": lstm_ref.predict(model, *data["test"]).numpy(),
        "lstm_seconds": lstm_seconds,
        "tfidf": np.asarray(tfidf),
        "tfidf_seconds": tfidf_seconds,
    }


def comparison(y_test, preds: dict[str, tuple[np.ndarray, float]]) -> list[dict]:
    """Accuracy, F1 of 'great' and McNemar's exact p against TF-IDF (b: the model right and
    TF-IDF wrong; c: the reverse) for every model."""
    from sklearn.metrics import f1_score

    base = preds["TF-IDF + LR"][0]
    rows = []
    for name, (pred, seconds) in preds.items():
        _, p = ref.mcnemar(y_test, pred, base, exact=True)
        right, base_right = pred == y_test, base == y_test
        rows.append(
            {
                "model": name,
                "accuracy": float(right.mean()),
                "f1_great": float(f1_score(y_test, pred)),
                "right_where_tfidf_wrong": int((right & ~base_right).sum()),
                "wrong_where_tfidf_right": int((~right & base_right).sum()),
                "mcnemar_p_vs_tfidf": p,
                "seconds": seconds,
            }
        )
    return rows


def most_wrong(test_df, y_test, p_great: np.ndarray, n: int) -> list[dict]:
    """The n test reviews with the highest cross-entropy under the fine-tuned model."""
    p_true = np.where(y_test == 1, p_great, 1.0 - p_great)
    worst = np.argsort(p_true, kind="stable")[:n]
    return [
        {
            "label": LABELS[y_test[i]],
            "p_great": float(p_great[i]),
            "loss": float(-np.log(max(p_true[i], 1e-12))),
            "review": clean([test_df["review"][i]])[0][:300],
        }
        for i in worst
    ]


# ---------------------------------------------------------------- figures and artifact


def short_reviews(test_df, n: int) -> list[str]:
    """The first n held-out reviews of 80 to 200 characters: short enough to read every token."""
    return [t for t in clean(test_df["review"]) if 80 <= len(t) <= 200][:n]


def confusion_figure(y_test, rows: list[dict], preds: dict, ctx: RunContext) -> None:
    from sklearn.metrics import confusion_matrix

    names = ["TF-IDF + LR", "MiniLM fine-tuned"]
    with figure(ctx, "confusion_matrix", 1, 2, figsize=(9, 4)) as (_, axes):
        for ax, name in zip(axes, names):
            cm = confusion_matrix(y_test, preds[name][0], labels=[0, 1])
            ax.imshow(cm, cmap="Blues")
            for (i, j), v in np.ndenumerate(cm):
                ax.text(
                    j, i, str(v), ha="center", va="center", color="k" if v < cm.max() / 2 else "w"
                )
            acc = next(r["accuracy"] for r in rows if r["model"] == name)
            ax.set(xticks=[0, 1], yticks=[0, 1], xticklabels=LABELS, yticklabels=LABELS)
            ax.set(xlabel="predicted", ylabel="true", title=f"{name}: accuracy {acc:.3f}")


def attention_figure(
    model, tokenizer, texts: list[str], max_length: int, ctx: RunContext
) -> list[dict]:
    """The [CLS] row of the last layer's attention, mean over heads, for a few short reviews."""
    ids = ref.encode_texts(tokenizer, texts, max_length)
    att = ref.last_layer_attention(model, ref.collate(ids, tokenizer.pad_token_id))
    rows = []
    with figure(ctx, "attention", len(texts), 1, figsize=(11, 2.4 * len(texts))) as (_, axes):
        for ax, seq, a in zip(np.atleast_1d(axes), ids, att):
            cls_row = a[:, 0, : len(seq)].mean(0).numpy()  # (T,) over this review's tokens
            tokens = tokenizer.convert_ids_to_tokens(seq)
            ax.bar(range(len(seq)), cls_row)
            ax.set_xticks(range(len(seq)), tokens, rotation=90, fontsize=7)
            ax.set_ylabel("attention from [CLS]")
            top = [tokens[i] for i in np.argsort(-cls_row) if tokens[i] not in ("[CLS]", "[SEP]")][
                :3
            ]
            rows.append({"review": " ".join(tokens[1:-1]), "top_tokens": " ".join(top)})
        axes_first = np.atleast_1d(axes)[0]
        axes_first.set_title("last layer, mean over heads: where [CLS] looks")
    return rows


def loss_figure(curve: list[dict], ctx: RunContext) -> None:
    steps = np.array([c["step"] for c in curve])
    loss = np.array([c["loss"] for c in curve])
    window = max(1, len(loss) // 25)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    with figure(ctx, "loss_curve", figsize=(8, 4.5)) as (_, ax):
        ax.plot(steps, loss, alpha=0.3, lw=0.8, label="batch loss")
        ax.plot(steps[window - 1 :], smooth, lw=2, label=f"mean of {window} steps")
        ax.set(xlabel="optimizer step", ylabel="cross-entropy", title="fine-tuning MiniLM")
        ax.legend(loc="upper center")
        lr_ax = ax.twinx()
        lr_ax.plot(steps, [c["lr"] for c in curve], color="tab:green", alpha=0.6)
        lr_ax.set_ylabel("learning rate (green): warm-up, linear decay")


def classifier_writer(model, tokenizer, metrics: dict, config) -> Callable[[Path], None]:
    """Writes the fine-tuned model and tokenizer (`from_pretrained`-ready) and `lab.json`."""

    def write(folder: Path) -> None:
        from transformers.utils import logging

        bars = logging.is_progress_bar_enabled()
        logging.disable_progress_bar()  # a "writing shards" bar would tear through the display
        try:
            model.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        finally:
            if bars:
                logging.enable_progress_bar()
        spec = {
            "loads_with": "AutoModelForSequenceClassification.from_pretrained(folder)",
            "labels": list(LABELS),
            "dataset": "fine-food",
            "max_length": config.max_length,
            "text": "review with <br /> replaced by spaces, whitespace collapsed",
            "test_accuracy": metrics["finetuned_accuracy"],
        }
        (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")

    return write
