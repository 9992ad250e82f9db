"""Runner for lstm-sentiment: an LSTM vs TF-IDF + logistic regression on Amazon fine-food reviews.

Both models see the same 4000 training reviews (the LSTM keeps 10% of them aside to pick its
best epoch) and are scored on the same held-out 1000: accuracy and F1 of the 'great' class."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import numpy as np
import torch

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes, timed
from airoad.sequence import lstm_sentiment as ref

POSITIVE = "great"
MIN_TRAIN = 50  # fewer reviews leave no vocabulary and no second class to learn


@dataclass(frozen=True)
class Config:
    n_train: int = param(0, ge=MIN_TRAIN, le=4000, also=(0,))  # 0 = all 4000 training reviews
    # tokens kept per review (the median review has about 50)
    max_len: int = param(200, ge=1, le=5000)
    min_count: int = param(2, ge=1, le=1000)
    embed_dim: int = param(64, ge=1, le=1024)
    hidden_size: int = param(64, ge=1, le=1024)
    dropout: float = param(0.3, ge=0.0, lt=1.0)
    epochs: int = param(10, ge=1, le=1000)
    batch_size: int = param(32, ge=1, le=4096)
    lr: float = param(3e-3, gt=0.0, le=1.0)
    val_fraction: float = param(0.1, gt=0.0, le=0.5)
    seed: int = param(0, ge=0)


QUICK = {"n_train": 600, "max_len": 60, "epochs": 1, "embed_dim": 16, "hidden_size": 16}

NOTES = (
    "LSTM test accuracy {ours_accuracy:.3f} (F1 {ours_f1:.3f}) vs TF-IDF + LR "
    "{library_accuracy:.3f} (F1 {library_f1:.3f}): the LSTM {verdict} the TF-IDF baseline by "
    "{abs_gap:.3f}.",
    "Majority class ('great' always) scores {majority_accuracy:.3f}; best LSTM epoch by "
    "validation accuracy: {best_epoch} of {epochs}.",
)
SMALL_DATA_NOTE = (  # added when the LSTM does not beat the baseline
    "With only a few thousand reviews an LSTM learning its word vectors from scratch has little "
    "data; bag-of-n-grams is a strong baseline here."
)


def _labels(df) -> np.ndarray:
    return (df["score"].to_numpy() == POSITIVE).astype(np.int64)


def _reviews(config: Config):
    train_df, test_df = load("fine-food")
    if config.n_train:
        train_df = train_df.sample(n=min(config.n_train, len(train_df)), random_state=config.seed)
    return train_df, test_df


def _encode(train_df, test_df, gen: torch.Generator, config: Config):
    """A validation slice of the training reviews, a vocabulary from the rest, padded ids."""
    perm = torch.randperm(len(train_df), generator=gen).numpy()
    n_val = max(1, int(round(config.val_fraction * len(train_df))))
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    tokens = [ref.tokenize(t) for t in train_df["review"]]
    vocab = ref.build_vocab([tokens[i] for i in fit_idx], min_count=config.min_count)

    def batch(token_lists):
        return ref.pad_batch([ref.encode(t, vocab) for t in token_lists], config.max_len)

    y = _labels(train_df)
    data = {
        "fit": (*batch([tokens[i] for i in fit_idx]), torch.tensor(y[fit_idx])),
        "val": (*batch([tokens[i] for i in val_idx]), torch.tensor(y[val_idx])),
        "test": batch([ref.tokenize(t) for t in test_df["review"]]),
    }
    return vocab, data


def _train_lstm(vocab: dict, data: dict, gen: torch.Generator, config: Config, ctx: RunContext):
    """Train for `epochs`, keep the weights of the best validation epoch; time the training."""
    model = ref.LSTMClassifier(len(vocab), config.embed_dim, config.hidden_size, 2, config.dropout)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    (X_fit, L_fit, y_fit), (X_val, L_val, y_val) = data["fit"], data["val"]

    def epochs():
        history, best, best_state = [], -1.0, None
        for epoch in ctx.track(range(config.epochs), "training LSTM"):
            loss = ref.train_epoch(model, opt, X_fit, L_fit, y_fit, config.batch_size, gen)
            val_acc = ref.accuracy(y_val, ref.predict(model, X_val, L_val))
            history.append({"epoch": epoch + 1, "train_loss": loss, "val_accuracy": val_acc})
            if val_acc > best:
                best, best_state = val_acc, copy.deepcopy(model.state_dict())
        return history, best_state

    (history, best_state), seconds = timed(epochs)
    model.load_state_dict(best_state)
    return model, history, seconds


def _tfidf_baseline(train_df, test_df, config: Config, ctx: RunContext):
    """TF-IDF of words and bigrams + logistic regression on every training review, timed."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    pipe = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(C=4.0, max_iter=2000, random_state=config.seed),
    )
    train_text, y_train = list(train_df["review"]), _labels(train_df)
    with ctx.step("TF-IDF + logistic regression"):
        return timed(lambda: pipe.fit(train_text, y_train).predict(list(test_df["review"])))


def _comparison(y_test, pred, base, lstm_seconds: float, base_seconds: float) -> list[dict]:
    """Accuracy and F1 of 'great' for the LSTM (our metrics), the baseline and the majority
    class (sklearn's), each F1 checked against sklearn's."""
    from sklearn.metrics import accuracy_score, f1_score

    majority = np.ones_like(y_test)
    ours_f1 = ref.f1_score(torch.tensor(y_test), torch.tensor(pred))
    base_acc, base_f1 = float(accuracy_score(y_test, base)), float(f1_score(y_test, base))
    scored = [
        ("LSTM (ours)", pred, ref.accuracy(y_test, pred), ours_f1, lstm_seconds),
        ("TF-IDF + LogisticRegression", base, base_acc, base_f1, base_seconds),
        ("always 'great'", majority, float(y_test.mean()), float(f1_score(y_test, majority)), 0.0),
    ]
    return [
        {
            "model": model,
            "accuracy": acc,
            "f1_great": f1,
            "sklearn_f1_check": float(f1_score(y_test, p)),
            "seconds": seconds,
        }
        for model, p, acc, f1, seconds in scored
    ]


def _metrics(train_df, test_df, vocab: dict, history: list[dict], rows: list[dict]) -> dict:
    ours, lib, majority = rows
    return {
        "n_train": len(train_df),
        "n_test": len(test_df),
        "vocab_size": len(vocab),
        "best_epoch": max(history, key=lambda h: h["val_accuracy"])["epoch"],
        "ours_accuracy": ours["accuracy"],
        "ours_f1": ours["f1_great"],
        "sklearn_f1_of_ours": ours["sklearn_f1_check"],
        "library_accuracy": lib["accuracy"],
        "library_f1": lib["f1_great"],
        "majority_accuracy": majority["accuracy"],
        "lstm_seconds": ours["seconds"],
    }


def _notes(metrics: dict, config: Config) -> list[str]:
    gap = metrics["ours_accuracy"] - metrics["library_accuracy"]
    verdict = "beats" if gap > 0 else "does not beat"
    notes = render_notes(
        NOTES, {**asdict(config), **metrics, "verdict": verdict, "abs_gap": abs(gap)}
    )
    return notes if gap > 0 else [*notes, SMALL_DATA_NOTE]


def _curves_figure(history: list[dict], rows: list[dict], ctx: RunContext) -> None:
    epochs = [h["epoch"] for h in history]
    with figure(ctx, "training_curves", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        left.plot(epochs, [h["train_loss"] for h in history], "o-")
        left.set(xlabel="epoch", ylabel="cross-entropy", title="LSTM training loss")
        right.plot(epochs, [h["val_accuracy"] for h in history], "o-", label="LSTM validation")
        right.axhline(rows[1]["accuracy"], color="k", ls="--", label="TF-IDF + LR (test)")
        right.axhline(rows[2]["accuracy"], color="grey", ls=":", label="majority class (test)")
        right.set(xlabel="epoch", ylabel="accuracy", title="accuracy")
        right.legend(fontsize=8)


def run(config: Config, ctx: RunContext) -> LabResult:
    train_df, test_df = _reviews(config)
    torch.manual_seed(config.seed)  # the LSTM's initial weights
    gen = torch.Generator().manual_seed(config.seed)  # the validation split, then the batches
    vocab, data = _encode(train_df, test_df, gen, config)
    model, history, lstm_seconds = _train_lstm(vocab, data, gen, config, ctx)
    pred = ref.predict(model, *data["test"]).numpy()
    base, base_seconds = _tfidf_baseline(train_df, test_df, config, ctx)
    rows = _comparison(_labels(test_df), pred, base, lstm_seconds, base_seconds)
    metrics = _metrics(train_df, test_df, vocab, history, rows)

    _curves_figure(history, rows, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_accuracy",
        library_metric="library_accuracy",
        tables={"comparison": rows, "history": history},
        figures=ctx.figures,
        notes=_notes(metrics, config),
    )
