"""Named-entity recognition as token classification: BIO tags, word pieces and entity-level F1.

The pieces, in the order a tagging run needs them:

- ``spacy_bio``: word-level BIO tags from a spaCy ``Doc``'s entity spans, keeping three types
  (``SPACY_TYPES``: PERSON -> PER; GPE, LOC and FAC -> LOC; ORG -> ORG; every other spaCy label,
  such as NORP, DATE or WORK_OF_ART, becomes O). This is how the training labels are made;
- ``align_labels`` / ``encode_words``: a sentence already cut into words goes through a fast
  word-piece tokenizer (``is_split_into_words=True``); ``word_ids()`` says which word each piece
  came from. The first piece of a word carries the word's label id, every other piece and the
  special tokens get -100, which PyTorch's cross-entropy ignores;
- ``collate_tagged``: padded batches, labels padded with -100;
- ``train_tagger``: the fine-tuning loop of the bert-sentiment lab (its AdamW groups, warm-up
  and decay schedule and ``train_step``) on a ``BertForTokenClassification``, whose
  ``.loss`` is the mean cross-entropy over the labelled pieces only;
- ``word_tags`` / ``predict_tags``: back from pieces to words: each word takes the prediction
  of its first piece, a word cut off by truncation is O;
- ``entities`` / ``entity_scores``: exact-span precision, recall and F1 with the conlleval
  chunking rules that ``seqeval`` uses by default (an I- tag that does not continue an entity of
  its own type starts a new one).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from airoad.llm import bert_sentiment as bs

TYPES = ("PER", "LOC", "ORG")
LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG")
LABEL_ID = {tag: i for i, tag in enumerate(LABELS)}
SPACY_TYPES = {"PERSON": "PER", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "ORG": "ORG"}
IGNORE = -100  # nn.CrossEntropyLoss's default ignore_index

Item = dict[str, list]


def spacy_bio(doc: Any, types: dict[str, str] = SPACY_TYPES) -> list[str]:
    """One BIO tag per token of the spaCy `doc`: ``B-<type>`` on the first token of each entity
    in ``doc.ents`` whose label is a key of `types` (renamed to ``types[label]``), ``I-<type>`` on
    its other tokens, ``O`` everywhere else (including entities of unlisted labels)."""
    tags = ["O"] * len(doc)
    for ent in doc.ents:
        kind = types.get(ent.label_)
        if kind is None:
            continue
        tags[ent.start] = f"B-{kind}"
        tags[ent.start + 1 : ent.end] = [f"I-{kind}"] * (ent.end - ent.start - 1)
    return tags


def align_labels(word_ids: Sequence[int | None], word_labels: Sequence[int]) -> list[int]:
    """Label id per word piece: ``word_labels[w]`` on the first piece of word w (the first
    position where ``word_ids`` holds w), -100 on the word's later pieces and on special tokens
    (``word_ids`` None)."""
    out, prev = [], None
    for w in word_ids:
        out.append(IGNORE if w is None or w == prev else int(word_labels[w]))
        prev = w
    return out


def encode_words(
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    tags: Sequence[Sequence[str]] | None = None,
    max_length: int = 64,
) -> list[Item]:
    """Per sentence (a list of words): ``input_ids`` from ``tokenizer(sentences,
    is_split_into_words=True, truncation=True, max_length=max_length)`` (with [CLS] and [SEP]),
    ``word_ids`` (the encoding's ``word_ids()``, None on special tokens) and, when `tags` (BIO
    strings, one per word) are given, ``labels`` from ``align_labels`` with ids from
    ``LABEL_ID``."""
    enc = tokenizer(
        [list(s) for s in sentences],
        is_split_into_words=True,
        truncation=True,
        max_length=max_length,
    )
    items = []
    for i, ids in enumerate(enc["input_ids"]):
        item = {"input_ids": ids, "word_ids": enc.word_ids(i)}
        if tags is not None:
            item["labels"] = align_labels(item["word_ids"], [LABEL_ID[t] for t in tags[i]])
        items.append(item)
    return items


def collate_tagged(items: Sequence[Item], pad_id: int) -> bs.Batch:
    """One batch of encoded sentences: ``input_ids`` and ``attention_mask`` (B, L) as
    bert_sentiment's ``collate`` makes them, and, when the items have labels, ``labels`` (B, L)
    long, right-padded with -100 (``DataCollatorForTokenClassification``'s tensors)."""
    batch = bs.collate([it["input_ids"] for it in items], pad_id)
    if "labels" in items[0]:
        labels = torch.full_like(batch["input_ids"], IGNORE)
        flat = [y for it in items for y in it["labels"]]
        labels[batch["attention_mask"].bool()] = torch.tensor(flat, dtype=torch.long)
        batch["labels"] = labels
    return batch


def train_tagger(
    model: nn.Module,
    items: Sequence[Item],
    pad_id: int,
    batch_size: int,
    steps: int,
    lr: float,
    warmup_steps: int = 0,
    weight_decay: float = 0.0,
    max_grad_norm: float = 1.0,
    seed: int = 0,
    group_size: int = 0,
    track: Callable[[Sequence[Any]], Iterable[Any]] = iter,
) -> list[float]:
    """Fine-tune a token classifier for `steps` updates; returns the loss of every step.

    Batches come from bert_sentiment's ``batch_order`` with ``torch.Generator().manual_seed(seed)``
    (a fresh shuffle every epoch, `group_size` as there), are padded by ``collate_tagged`` and
    fed to bert_sentiment's ``make_optimizer`` / ``make_scheduler`` / ``train_step``. `track`
    wraps the list of batch indices (a progress bar)."""
    gen = torch.Generator().manual_seed(seed)
    lengths = [len(it["input_ids"]) for it in items]
    order: list[torch.Tensor] = []
    while len(order) < steps:
        order += bs.batch_order(lengths, batch_size, gen, group_size)
    opt = bs.make_optimizer(model, lr, weight_decay)
    sched = bs.make_scheduler(opt, warmup_steps, steps)
    losses = []
    for idx in track(order[:steps]):
        batch = collate_tagged([items[i] for i in idx], pad_id)
        losses.append(bs.train_step(model, batch, opt, sched, max_grad_norm))
    return losses


def word_tags(piece_pred: Sequence[int], word_ids: Sequence[int | None], n_words: int) -> list[str]:
    """BIO tags of the `n_words` words of one sentence from the predicted label id of every
    piece: each word takes the prediction of its first piece; a word with no piece (cut off by
    truncation) is O."""
    out = ["O"] * n_words
    seen = set()
    for p, w in zip(piece_pred, word_ids):
        if w is not None and w not in seen:
            seen.add(w)
            out[w] = LABELS[int(p)]
    return out


@torch.no_grad()
def predict_tags(
    model: nn.Module,
    items: Sequence[Item],
    n_words: Sequence[int],
    pad_id: int,
    batch_size: int = 64,
) -> list[list[str]]:
    """Word-level BIO tags of every sentence (eval mode, argmax over the label logits, then
    ``word_tags``), in the order of `items`; `n_words` is each sentence's number of words."""
    model.eval()
    out: list[list[str]] = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        batch = collate_tagged([{"input_ids": it["input_ids"]} for it in chunk], pad_id)
        pred = model(**batch).logits.argmax(-1)
        for k, it in enumerate(chunk):
            out.append(word_tags(pred[k].tolist(), it["word_ids"], n_words[start + k]))
    return out


def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entity spans ``(type, first, last)`` (inclusive word indices) of one BIO sequence, by the
    conlleval rules: B-X always starts an entity; I-X continues the entity before it only when
    the previous tag is B-X or I-X, and otherwise starts a new one; O ends any entity."""
    spans: list[tuple[str, int, int]] = []
    prev = "O"
    for i, tag in enumerate(tags):
        if tag == "O":
            prev = tag
            continue
        head, kind = tag.split("-", 1)
        if head == "I" and prev != "O" and prev.split("-", 1)[1] == kind:
            spans[-1] = (kind, spans[-1][1], i)
        else:
            spans.append((kind, i, i))
        prev = tag
    return spans


def _prf(tp: int, n_pred: int, n_true: int) -> tuple[float, float, float]:
    """(precision, recall, F1) from counts; a ratio over 0 is 0."""
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_true if n_true else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def entity_scores(
    y_true: Sequence[Sequence[str]], y_pred: Sequence[Sequence[str]]
) -> dict[str, Any]:
    """Exact-match entity precision, recall and F1 over many sentences (micro average: every
    entity of every sentence counts once; an entity is right only if its type, first and last
    word all match). A ratio with a zero denominator is 0. Returns ``{"precision", "recall",
    "f1", "per_type": {type: {"precision", "recall", "f1", "support"}}}``, with a per-type entry
    for every type that occurs in `y_true` or `y_pred`; support = number of true entities."""
    true = {(s, *e) for s, tags in enumerate(y_true) for e in entities(tags)}
    pred = {(s, *e) for s, tags in enumerate(y_pred) for e in entities(tags)}
    hit = true & pred
    p, r, f = _prf(len(hit), len(pred), len(true))
    per_type = {}
    for kind in sorted({e[1] for e in true | pred}):
        n_true = sum(e[1] == kind for e in true)
        tp, n_pred = sum(e[1] == kind for e in hit), sum(e[1] == kind for e in pred)
        pk, rk, fk = _prf(tp, n_pred, n_true)
        per_type[kind] = {"precision": pk, "recall": rk, "f1": fk, "support": n_true}
    return {"precision": p, "recall": r, "f1": f, "per_type": per_type}
