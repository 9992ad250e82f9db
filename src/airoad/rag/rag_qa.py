"""Retrieval-augmented question answering from scratch: chunking, a prompt with numbered
passages, citations, answer metrics, a faithfulness check and an "I don't know" rule.

- Chunking decides what a retriever can return. Fixed windows cut every ``size`` words and
  repeat ``overlap`` words between neighbours (a fact cut in two survives whole in one of
  them); sentence packing never cuts a sentence; heading-aware chunking keeps each document
  section apart (``airoad.rag.corpus.split_text`` packs a section's paragraphs).
- The generator sees the top passages numbered ``[1]..[n]`` and is asked to cite them, so an
  answer can be checked against the text it claims to use.
- Answers are scored the SQuAD way: normalise (lower case, no punctuation, no articles, single
  spaces), then exact match (0/1) and token F1 = 2PR / (P + R) over the bags of tokens.
- Faithfulness = the share of the answer's content words found in the passages it cites.
- Abstaining: when the best retrieval score is below a threshold the system says
  ``ABSTAIN`` instead of answering from passages that are probably off topic.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

import numpy as np

from airoad.rag.corpus import content_words

ABSTAIN = "I don't know."
SYSTEM = (
    "You answer questions using only the numbered passages. Start with the number of the "
    "passage you used, like [1], then answer in one short sentence."
)
EXAMPLE = (
    (
        "Can a tuple be changed after it is created?",
        ["Lists are mutable sequences.", "Tuples are immutable sequences of items."],
        ["lists", "tuples"],
    ),
    "[2] No, tuples are immutable.",
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9(\"'`])")
_CITATION = re.compile(r"\[(\d+(?:\s*,\s*\d+)*)\]")
_ARTICLES = re.compile(r"\b(a|an|the)\b")


# ---------------------------------------------------------------- chunking


def fixed_windows(text: str, size: int, overlap: int) -> list[str]:
    """Windows of ``size`` words (split on whitespace) starting every ``size - overlap`` words;
    the last window ends at the last word (a window is never only repeated words).
    ``fixed_windows("a b c d e", 3, 1)`` -> ``["a b c", "c d e"]``."""
    if not 0 <= overlap < size:
        raise ValueError(f"need 0 <= overlap < size, got overlap={overlap}, size={size}")
    words = text.split()
    stride = size - overlap
    starts = range(0, max(len(words) - overlap, 1), stride)
    return [" ".join(words[s : s + size]) for s in starts if words[s : s + size]]


def sentences(text: str) -> list[str]:
    """``text`` cut after ``.``, ``!`` or ``?`` followed by space and a capital, digit, quote
    or bracket (so "e.g. x" and "3.5" stay whole); whitespace inside a sentence is collapsed."""
    flat = " ".join(text.split())
    return [s for s in _SENTENCE_END.split(flat) if s]


def sentence_pack(text: str, max_words: int) -> list[str]:
    """Whole sentences packed greedily into chunks of at most ``max_words`` words; a sentence
    longer than that alone is a chunk by itself (never cut)."""
    out: list[list[str]] = []
    count = 0
    for sent in sentences(text):
        n = len(sent.split())
        if out and count + n <= max_words:
            out[-1].append(sent)
            count += n
        else:
            out.append([sent])
            count = n
    return [" ".join(chunk) for chunk in out]


# ---------------------------------------------------------------- prompting and citations


def user_turn(question: str, passages: Sequence[str], titles: Sequence[str]) -> str:
    """The passages numbered from 1 as ``[i] title`` + newline + text, a blank line between,
    then ``Question: ...``."""
    body = "\n\n".join(
        f"[{i}] {title}\n{text}" for i, (title, text) in enumerate(zip(titles, passages), 1)
    )
    return f"Passages:\n\n{body}\n\nQuestion: {question}"


def prompt_messages(question: str, passages: Sequence[str], titles: Sequence[str]) -> list[dict]:
    """Chat messages: the rules (``SYSTEM``), one worked example (``EXAMPLE``: a user turn and
    the cited answer, because a small model copies a format it sees far better than one it is
    told), then the user turn of ``question`` and its passages."""
    (q, ps, ts), reply = EXAMPLE
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": user_turn(q, ps, ts)},
        {"role": "assistant", "content": reply},
        {"role": "user", "content": user_turn(question, passages, titles)},
    ]


def parse_citations(answer: str, n_passages: int) -> list[int]:
    """Passage numbers cited in ``answer`` as ``[2]`` or ``[1, 3]``, distinct, in order of first
    mention; numbers outside ``1..n_passages`` are dropped (the model invented them)."""
    found = (int(n) for group in _CITATION.findall(answer) for n in group.split(","))
    return list(dict.fromkeys(n for n in found if 1 <= n <= n_passages))


def strip_citations(answer: str) -> str:
    """``answer`` without its ``[n]`` markers and surrounding spaces."""
    return " ".join(_CITATION.sub(" ", answer).split())


# ---------------------------------------------------------------- answer metrics


def normalize_answer(text: str) -> str:
    """SQuAD normalisation: lower case, drop punctuation, drop the articles a/an/the, collapse
    whitespace. ``normalize_answer("The  Cat's hat!")`` -> ``"cats hat"``."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(prediction: str, gold: str) -> float:
    """1.0 when the normalised prediction equals the normalised gold answer, else 0.0."""
    return float(normalize_answer(prediction) == normalize_answer(gold))


def token_f1(prediction: str, gold: str) -> float:
    """F1 of the normalised tokens: common = size of the bag intersection, P = common / |pred|,
    R = common / |gold|, F1 = 2PR / (P + R); 1.0 if both are empty, 0.0 if only one is."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(gold).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    p, r = common / len(pred), common / len(ref)
    return 2 * p * r / (p + r)


def faithfulness(answer: str, cited: Sequence[str]) -> float:
    """Share of the answer's distinct content words (``corpus.content_words``, citation markers
    removed) that occur among the content words of the ``cited`` passages; 0.0 when nothing is
    cited, 1.0 when the answer has no content words but cites something."""
    if not cited:
        return 0.0
    words = content_words(strip_citations(answer))
    if not words:
        return 1.0
    support = set().union(*(content_words(p) for p in cited))
    return len(words & support) / len(words)


# ---------------------------------------------------------------- abstaining


def abstains(best_scores: np.ndarray, threshold: float) -> np.ndarray:
    """Booleans (Q,): abstain where the best retrieval score is strictly below ``threshold``."""
    return np.asarray(best_scores) < threshold


def abstain_curve(
    answerable: np.ndarray, unanswerable: np.ndarray, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each threshold: (share of unanswerable questions abstained on, the wanted rate;
    share of answerable ones abstained on, the false-abstain rate), each (T,)."""
    t = np.asarray(thresholds)[:, None]
    return (np.asarray(unanswerable)[None, :] < t).mean(1), (
        np.asarray(answerable)[None, :] < t
    ).mean(1)
