"""Summarisation, extractive and abstractive, and the ROUGE scores that grade both.

The pieces, in the order a summarisation experiment needs them:

- ``split_sentences``: text -> sentences (paragraph breaks always end a sentence; inside a
  paragraph a sentence ends at . ! or ? followed by a capital letter or a digit, except after
  an abbreviation such as "e.g.");
- ``lead_summary``: the first sentences of the document, the baseline every summariser must
  beat;
- ``similarity_matrix`` / ``pagerank`` / ``textrank_summary``: TextRank (Mihalcea and Tarau,
  2004). Sentences are nodes, edges are weighted by word overlap, and the sentences with the
  highest PageRank (power iteration) form the summary;
- ``summary_messages`` / ``greedy_generate`` / ``summarize``: a chat model prompted for a
  one-line summary, decoded greedily in left-padded batches with a KV cache;
- ``rouge_tokenize`` / ``rouge_n`` / ``lcs_length`` / ``rouge_l`` / ``rouge_scores``: ROUGE-1,
  ROUGE-2 and ROUGE-L (precision, recall, F1), token for token what Google's ``rouge-score``
  computes;
- ``bootstrap_ci``: a percentile bootstrap interval of a mean score.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any, NamedTuple

import numpy as np

from airoad.errors import AiroadError

# Words whose final "." never ends a sentence, lower-cased.
ABBREVIATIONS = frozenset({"e.g.", "i.e.", "cf.", "vs.", "viz.", "approx.", "mr.", "mrs.", "dr."})
_END = re.compile(r"[.!?][\"')\]]*\s+")
_STARTS = re.compile(r"[\"'(\[`*]?[A-Z0-9]")

SYSTEM_PROMPT = "You summarise Python documentation."
INSTRUCTION = (
    "Here is the documentation of the Python {kind} `{name}`.\n\n{document}\n\n"
    "Summarise what `{name}` does in one short sentence."
)
INSTRUCTION_UNNAMED = "Summarise this Python documentation in one short sentence.\n\n{document}"


class Score(NamedTuple):
    """One ROUGE score, as ``rouge_score.scoring.Score``."""

    precision: float
    recall: float
    fmeasure: float


# ---------------------------------------------------------------- sentences and baselines


def split_sentences(text: str) -> list[str]:
    """The sentences of `text`, in order, each with its whitespace collapsed to single spaces.

    A blank line (paragraph break) always ends a sentence. Inside a paragraph a sentence ends
    at ".", "!" or "?" (optionally followed by closing quotes or brackets) and whitespace, when
    the next character is an upper-case letter or a digit (optionally after an opening quote,
    bracket, backtick or "*"), unless the word ending in "." is in ``ABBREVIATIONS``
    (compared lower-cased). Empty pieces are dropped.
    """
    out = []
    for paragraph in re.split(r"\n\s*\n", text):
        paragraph = " ".join(paragraph.split())
        start = 0
        for end in _END.finditer(paragraph):
            word = paragraph[: end.start() + 1].rsplit(" ", 1)[-1].lower()
            if word in ABBREVIATIONS or not _STARTS.match(paragraph, end.end()):
                continue
            out.append(paragraph[start : end.start() + len(end.group(0).rstrip())])
            start = end.end()
        out.append(paragraph[start:])
    return [s.strip() for s in out if s.strip()]


def lead_summary(text: str, n_sentences: int = 1) -> str:
    """The first `n_sentences` sentences of `text` (``split_sentences``), joined by a space."""
    return " ".join(split_sentences(text)[:n_sentences])


# ---------------------------------------------------------------- TextRank


def similarity_matrix(sentences: Sequence[Sequence[str]]) -> np.ndarray:
    """TextRank's (n, n) sentence-similarity matrix from tokenised sentences.

    ``W[i, j] = |set(S_i) & set(S_j)| / (log |S_i| + log |S_j|)`` for i != j, where |S| counts
    a sentence's tokens with repeats; 0 on the diagonal and wherever the denominator is not
    positive (two one-word sentences, an empty sentence). Symmetric, non-negative, float64.
    """
    vocab = {w: i for i, w in enumerate(sorted({w for s in sentences for w in s}))}
    n = len(sentences)
    present = np.zeros((n, max(len(vocab), 1)))
    rows = [i for i, s in enumerate(sentences) for _ in s]
    present[rows, [vocab[w] for s in sentences for w in s]] = 1.0
    overlap = present @ present.T
    lengths = np.array([len(s) for s in sentences], dtype=float)
    with np.errstate(divide="ignore"):
        logs = np.log(lengths)
    denom = logs[:, None] + logs[None, :]
    safe = np.where(denom > 0, denom, 1.0)
    weights = np.where(denom > 0, overlap / safe, 0.0)
    np.fill_diagonal(weights, 0.0)
    return weights


def pagerank(
    weights: np.ndarray, damping: float = 0.85, tol: float = 1e-12, max_iter: int = 1000
) -> np.ndarray:
    """PageRank of a weighted graph by power iteration, as ``networkx.pagerank``.

    `weights` is an (n, n) non-negative matrix, ``weights[i, j]`` the weight of the edge
    i -> j. A walker at i follows an edge with probability proportional to its weight; a node
    with no outgoing weight (dangling) jumps to a uniformly random node. With probability
    ``1 - damping`` it teleports to a uniformly random node instead. Starting from the uniform
    vector, iterate ``x <- damping * (x P + dangling mass / n) + (1 - damping) / n`` until the
    L1 change is below ``n * tol``. Returns x (sums to 1); raises AiroadError after
    `max_iter` iterations without converging.
    """
    w = np.asarray(weights, dtype=float)
    n = len(w)
    if n == 0:
        return np.zeros(0)
    out = w.sum(axis=1)
    dangling = out == 0
    transition = w / np.where(dangling, 1.0, out)[:, None]
    x = np.full(n, 1.0 / n)
    for _ in range(max_iter):
        new = damping * (x @ transition + x[dangling].sum() / n) + (1.0 - damping) / n
        if np.abs(new - x).sum() < n * tol:
            return new
        x = new
    raise AiroadError(
        f"PageRank did not converge in {max_iter} iterations: raise max_iter or loosen tol"
    )


def textrank_scores(sentences: Sequence[str], damping: float = 0.85) -> np.ndarray:
    """The PageRank of each sentence on the ``similarity_matrix`` of their ``rouge_tokenize``
    tokens (no stemming)."""
    return pagerank(similarity_matrix([rouge_tokenize(s) for s in sentences]), damping)


def textrank_summary(text: str, n_sentences: int = 1, damping: float = 0.85) -> str:
    """The `n_sentences` sentences of `text` with the highest ``textrank_scores`` (scores equal
    to 12 decimals tie, and ties go to the earlier sentence), joined by a space in document
    order."""
    sentences = split_sentences(text)
    if not sentences:
        return ""
    scores = np.round(textrank_scores(sentences, damping), 12)  # rounding noise is no winner
    order = np.argsort(-scores, kind="stable")
    return " ".join(sentences[i] for i in sorted(order[:n_sentences]))


# ---------------------------------------------------------------- prompting a chat model


def summary_messages(document: str, name: str | None = None, kind: str = "object") -> list[dict]:
    """The chat messages asking for a one-line summary: a system message (``SYSTEM_PROMPT``)
    and a user message, ``INSTRUCTION`` filled with `kind`, `name` and `document` when `name`
    is given, else ``INSTRUCTION_UNNAMED``. Each message is ``{"role": ..., "content": ...}``."""
    if name is None:
        user = INSTRUCTION_UNNAMED.format(document=document)
    else:
        user = INSTRUCTION.format(kind=kind, name=name, document=document)
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


def greedy_generate(
    model: Any,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    pad_id: int,
    stop_ids: Collection[int] = (),
) -> list[list[int]]:
    """Greedy continuations of a batch of token-id prompts from a Hugging Face causal LM.

    The prompts are left-padded with `pad_id` to one (B, T) tensor, with an attention mask
    that is 0 on padding and position ids that count real tokens only (so every prompt sees
    the positions it would see alone). One forward pass over the prompts fills the KV cache;
    then each step feeds only the newest token. A row stops after it emits a token in
    `stop_ids` (that token is not returned); generation ends when every row has stopped or
    after `max_new_tokens` steps. Returns the new ids of each row, without padding: the same
    as generating for each prompt alone.
    """
    import torch

    lengths = torch.tensor([len(p) for p in prompts])
    width = int(lengths.max())
    mask = (torch.arange(width)[None, :] >= (width - lengths)[:, None]).long()
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    ids[mask.bool()] = torch.tensor([t for p in prompts for t in p], dtype=torch.long)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    stops = torch.tensor(sorted(stop_ids), dtype=torch.long)
    done = torch.zeros(len(prompts), dtype=torch.bool)
    new: list[torch.Tensor] = []
    past = None
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            out = model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=positions,
                past_key_values=past,
                use_cache=True,
            )
            past = out.past_key_values
            token = out.logits[:, -1].argmax(-1)
            token = torch.where(done, pad_id, token)
            done = done | torch.isin(token, stops)
            new.append(torch.where(done, -1, token))  # -1 marks a stop token or a finished row
            if bool(done.all()):
                break
            ids = token[:, None]
            mask = torch.cat([mask, torch.ones_like(ids)], dim=1)
            positions = positions[:, -1:] + 1
    steps = torch.stack(new, dim=1).tolist() if new else [[] for _ in prompts]
    return [[t for t in row if t >= 0] for row in steps]


def clean_summary(generated: str) -> str:
    """The first sentence (``split_sentences``) of the first non-empty line of a model's reply:
    a one-line summary; "" for an empty reply."""
    line = next((line for line in generated.splitlines() if line.strip()), "")
    return next(iter(split_sentences(line)), "")


def summarize(
    model: Any,
    tokenizer: Any,
    documents: Sequence[str],
    names: Sequence[str] | None = None,
    kinds: Sequence[str] | None = None,
    max_new_tokens: int = 40,
    batch_size: int = 8,
) -> list[str]:
    """One-line summaries of `documents` from a chat model, in the input order.

    Each prompt is ``summary_messages(document, name, kind)`` rendered with
    ``tokenizer.apply_chat_template(..., add_generation_prompt=True)`` and tokenised without
    extra special tokens. Prompts are sorted by length before batching (less padding), decoded
    with ``greedy_generate`` (stopping at the end-of-sequence token and at any token whose text
    holds a newline), and each reply goes through ``clean_summary``.
    """
    names = list(names) if names is not None else [None] * len(documents)
    kinds = list(kinds) if kinds is not None else ["object"] * len(documents)
    prompts = [
        tokenizer(
            tokenizer.apply_chat_template(
                summary_messages(doc, name, kind), add_generation_prompt=True, tokenize=False
            ),
            add_special_tokens=False,
        )["input_ids"]
        for doc, name, kind in zip(documents, names, kinds, strict=True)
    ]
    vocab = tokenizer.convert_tokens_to_string
    stop = {i for t, i in tokenizer.get_vocab().items() if "\n" in vocab([t])}
    stop.add(tokenizer.eos_token_id)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    replies: dict[int, str] = {}
    for start in range(0, len(order), batch_size):
        batch = order[start : start + batch_size]
        new = greedy_generate(model, [prompts[i] for i in batch], max_new_tokens, pad, stop)
        for i, ids in zip(batch, new):
            replies[i] = clean_summary(tokenizer.decode(ids, skip_special_tokens=True))
    return [replies[i] for i in range(len(prompts))]


# ---------------------------------------------------------------- ROUGE


def rouge_tokenize(text: str, stemmer: Any = None) -> list[str]:
    """ROUGE's tokens, as rouge-score's default tokenizer: lower-case the text (``str.lower``),
    replace every run of characters outside [a-z0-9] by a space, split on whitespace, stem
    tokens longer than 3 characters with ``stemmer.stem`` when a stemmer is given, and keep the
    tokens that are non-empty and entirely [a-z0-9]."""
    tokens = re.sub(r"[^a-z0-9]+", " ", text.lower()).split()
    if stemmer is not None:
        tokens = [stemmer.stem(t) if len(t) > 3 else t for t in tokens]
    return [t for t in tokens if re.fullmatch(r"[a-z0-9]+", t)]


def _fmeasure(precision: float, recall: float) -> float:
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_n(target: Sequence[str], prediction: Sequence[str], n: int) -> Score:
    """ROUGE-N of token lists: the clipped n-gram overlap (each n-gram counts at most as often
    as it occurs in the other list) over the prediction's n-gram count (precision, 0 when it
    has none) and over the target's (recall), and their harmonic mean (F1, 0 when both are 0)."""

    def grams(tokens: Sequence[str]) -> Counter:
        return Counter(zip(*(tokens[i:] for i in range(n))))

    want, got = grams(target), grams(prediction)
    overlap = sum((want & got).values())
    precision = overlap / max(sum(got.values()), 1)
    recall = overlap / max(sum(want.values()), 1)
    return Score(precision, recall, _fmeasure(precision, recall))


def lcs_length(a: Sequence[str], b: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists, by dynamic programming one
    row at a time: with ``c[j] = max(L[i-1][j], L[i-1][j-1] + [a_i == b_j])`` the new row is the
    running maximum of c (L[i][j] = max(c[j], L[i][j-1]))."""
    if not a or not b:
        return 0
    ids = {w: k for k, w in enumerate(set(a) | set(b))}
    b_ids = np.array([ids[w] for w in b])
    row = np.zeros(len(b) + 1, dtype=np.int64)
    for w in a:
        match = b_ids == ids[w]
        candidate = np.maximum(row[1:], row[:-1] + match)
        row[1:] = np.maximum.accumulate(candidate)
    return int(row[-1])


def rouge_l(target: Sequence[str], prediction: Sequence[str]) -> Score:
    """ROUGE-L of token lists: LCS length over the prediction's length (precision) and over the
    target's (recall), and their F1; all 0 when either list is empty."""
    if not target or not prediction:
        return Score(0.0, 0.0, 0.0)
    lcs = lcs_length(target, prediction)
    precision, recall = lcs / len(prediction), lcs / len(target)
    return Score(precision, recall, _fmeasure(precision, recall))


def rouge_scores(target: str, prediction: str, use_stemmer: bool = False) -> dict[str, Score]:
    """``{"rouge1", "rouge2", "rougeL"}`` -> Score for a reference `target` and a candidate
    `prediction`, as ``RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer).score(target,
    prediction)``; the stemmer is nltk's ``PorterStemmer``."""
    stemmer = None
    if use_stemmer:
        from nltk.stem.porter import PorterStemmer

        stemmer = PorterStemmer()
    want, got = rouge_tokenize(target, stemmer), rouge_tokenize(prediction, stemmer)
    return {
        "rouge1": rouge_n(want, got, 1),
        "rouge2": rouge_n(want, got, 2),
        "rougeL": rouge_l(want, got),
    }


# ---------------------------------------------------------------- uncertainty


def bootstrap_ci(
    values: Sequence[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `values`: draw `n_boot` resamples of the
    same size with replacement (``np.random.default_rng(seed)``), take each resample's mean,
    and return the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of those means."""
    x = np.asarray(values, dtype=float)
    idx = np.random.default_rng(seed).integers(0, len(x), size=(n_boot, len(x)))
    means = x[idx].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
