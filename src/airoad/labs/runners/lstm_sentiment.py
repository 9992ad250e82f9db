"""Runner for lstm-sentiment: an LSTM vs TF-IDF + logistic regression on Amazon fine-food reviews.

Both models see the same 4000 training reviews (the LSTM keeps 10% of them aside to pick its
best epoch) and are scored on the same held-out 1000: accuracy and F1 of the 'great' class."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.sequence import lstm_sentiment as ref

POSITIVE = "great"


@dataclass(frozen=True)
class Config:
    n_train: int = 0  # 0 = all 4000 training reviews
    max_len: int = 200  # tokens kept per review (the median review has about 50)
    min_count: int = 2
    embed_dim: int = 64
    hidden_size: int = 64
    dropout: float = 0.3
    epochs: int = 10
    batch_size: int = 32
    lr: float = 3e-3
    val_fraction: float = 0.1
    seed: int = 0


QUICK = {"n_train": 600, "max_len": 60, "epochs": 1, "embed_dim": 16, "hidden_size": 16}


def _labels(df) -> np.ndarray:
    return (df["score"].to_numpy() == POSITIVE).astype(np.int64)


def _baseline(train_text, y_train, test_text, seed: int) -> np.ndarray:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(C=4.0, max_iter=2000, random_state=seed),
    )
    return pipe.fit(list(train_text), y_train).predict(list(test_text))


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import accuracy_score, f1_score

    train_df, test_df = load("fine-food")
    if config.n_train:
        train_df = train_df.sample(n=min(config.n_train, len(train_df)), random_state=config.seed)
    y_train_all, y_test = _labels(train_df), _labels(test_df)
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)

    # validation slice (for picking the epoch) comes from the training reviews only
    perm = torch.randperm(len(train_df), generator=gen).numpy()
    n_val = max(1, int(round(config.val_fraction * len(train_df))))
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    tokens = [ref.tokenize(t) for t in train_df["review"]]
    vocab = ref.build_vocab([tokens[i] for i in fit_idx], min_count=config.min_count)

    def batch(token_lists):
        return ref.pad_batch([ref.encode(t, vocab) for t in token_lists], config.max_len)

    X_fit, L_fit = batch([tokens[i] for i in fit_idx])
    X_val, L_val = batch([tokens[i] for i in val_idx])
    X_test, L_test = batch([ref.tokenize(t) for t in test_df["review"]])
    y_fit = torch.tensor(y_train_all[fit_idx])
    y_val = torch.tensor(y_train_all[val_idx])

    model = ref.LSTMClassifier(len(vocab), config.embed_dim, config.hidden_size, 2, config.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    history, best, best_state = [], -1.0, None
    t0 = time.perf_counter()
    for epoch in ctx.track(range(config.epochs), "training LSTM"):
        loss = ref.train_epoch(model, opt, X_fit, L_fit, y_fit, config.batch_size, gen)
        val_acc = ref.accuracy(y_val, ref.predict(model, X_val, L_val))
        history.append({"epoch": epoch + 1, "train_loss": loss, "val_accuracy": val_acc})
        if val_acc > best:
            best, best_state = val_acc, copy.deepcopy(model.state_dict())
    lstm_seconds = time.perf_counter() - t0
    model.load_state_dict(best_state)
    best_epoch = max(history, key=lambda h: h["val_accuracy"])["epoch"]
    pred = ref.predict(model, X_test, L_test).numpy()

    with ctx.step("TF-IDF + logistic regression"):
        t0 = time.perf_counter()
        base = _baseline(train_df["review"], y_train_all, test_df["review"], config.seed)
        base_seconds = time.perf_counter() - t0

    rows = [
        {
            "model": "LSTM (ours)",
            "accuracy": ref.accuracy(y_test, pred),
            "f1_great": ref.f1_score(torch.tensor(y_test), torch.tensor(pred)),
            "sklearn_f1_check": float(f1_score(y_test, pred)),
            "seconds": lstm_seconds,
        },
        {
            "model": "TF-IDF + LogisticRegression",
            "accuracy": float(accuracy_score(y_test, base)),
            "f1_great": float(f1_score(y_test, base)),
            "sklearn_f1_check": float(f1_score(y_test, base)),
            "seconds": base_seconds,
        },
        {
            "model": "always 'great'",
            "accuracy": float(y_test.mean()),
            "f1_great": float(f1_score(y_test, np.ones_like(y_test))),
            "sklearn_f1_check": float(f1_score(y_test, np.ones_like(y_test))),
            "seconds": 0.0,
        },
    ]
    ours, lib = rows[0], rows[1]

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = [h["epoch"] for h in history]
    left.plot(epochs, [h["train_loss"] for h in history], "o-")
    left.set(xlabel="epoch", ylabel="cross-entropy", title="LSTM training loss")
    right.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="LSTM validation")
    right.axhline(lib["accuracy"], color="k", ls="--", label="TF-IDF + LR (test)")
    right.axhline(rows[2]["accuracy"], color="grey", ls=":", label="majority class (test)")
    right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
    right.legend(fontsize=8)
    fig.tight_layout()
    curve = ctx.figure_path("training_curves")
    fig.savefig(curve, dpi=110)
    plt.close(fig)

    gap = ours["accuracy"] - lib["accuracy"]
    verdict = ("beats" if gap > 0 else "does not beat") + " the TF-IDF baseline"
    metrics = {
        "n_train": len(train_df),
        "n_test": len(test_df),
        "vocab_size": len(vocab),
        "best_epoch": best_epoch,
        "ours_accuracy": ours["accuracy"],
        "ours_f1": ours["f1_great"],
        "sklearn_f1_of_ours": ours["sklearn_f1_check"],
        "library_accuracy": lib["accuracy"],
        "library_f1": lib["f1_great"],
        "majority_accuracy": rows[2]["accuracy"],
        "lstm_seconds": lstm_seconds,
    }
    notes = [
        f"LSTM test accuracy {ours['accuracy']:.3f} (F1 {ours['f1_great']:.3f}) vs TF-IDF + LR "
        f"{lib['accuracy']:.3f} (F1 {lib['f1_great']:.3f}): the LSTM {verdict} by "
        f"{abs(gap):.3f}.",
        f"Majority class ('great' always) scores {rows[2]['accuracy']:.3f}; best LSTM epoch by "
        f"validation accuracy: {best_epoch} of {config.epochs}.",
    ]
    if gap <= 0:
        notes.append(
            "With only a few thousand reviews an LSTM learning its word vectors from "
            "scratch has little data; bag-of-n-grams is a strong baseline here."
        )
    return LabResult(
        metrics=metrics,
        key_metric="ours_accuracy",
        library_metric="library_accuracy",
        tables={"comparison": rows, "history": history},
        figures=[curve],
        notes=notes,
    )
