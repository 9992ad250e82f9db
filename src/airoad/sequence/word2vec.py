"""word2vec: skip-gram with negative sampling (SGNS) in PyTorch, plus the two ways to judge it.

Each word w has an input vector v_w and an output vector u_w. For a (center c, context o) pair
seen in the text and k words n_1..n_k drawn from the unigram distribution raised to 3/4,

    loss = -log sigma(u_o . v_c) - sum_i log sigma(-u_{n_i} . v_c)

so real pairs are pulled together and random ones pushed apart. Judging the vectors: cosine
nearest neighbours, and the analogy test a:b :: c:? answered by argmax cos(x, v_b - v_a + v_c).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

WORD_RE = re.compile(r"[a-z]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lower-cased words `[a-z]+('[a-z]+)?`; digits and punctuation are dropped."""
    return WORD_RE.findall(text.lower())


def build_vocabulary(
    tokens: Sequence[str], min_count: int = 5
) -> tuple[dict[str, int], np.ndarray]:
    """(word -> id, counts) for words seen at least `min_count` times.

    Ids go by descending count, ties alphabetically; counts is int64 of shape (n_words,).
    """
    freq = Counter(tokens)
    words = sorted((w for w, c in freq.items() if c >= min_count), key=lambda w: (-freq[w], w))
    return {w: i for i, w in enumerate(words)}, np.array([freq[w] for w in words], dtype=np.int64)


def keep_probability(counts: np.ndarray, threshold: float = 1e-4) -> np.ndarray:
    """Probability to keep each occurrence of a word (frequent words are subsampled).

    With f = count / total, keep = min(1, sqrt(threshold / f) + threshold / f) (word2vec's C code).
    """
    f = counts / counts.sum()
    return np.minimum(1.0, np.sqrt(threshold / f) + threshold / f)


def subsample(ids: np.ndarray, keep: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The ids whose occurrence survives a coin flip with probability keep[id], order kept."""
    return ids[rng.random(len(ids)) < keep[ids]]


def skipgram_pairs(ids: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """All (center, context) pairs at distance 1..window, both directions; two (n_pairs,) arrays.

    For n ids there are 2 * sum_{d=1..window} max(n - d, 0) pairs.
    """
    centers, contexts = [], []
    for d in range(1, window + 1):  # loop over offsets, not over tokens
        centers += [ids[:-d], ids[d:]]
        contexts += [ids[d:], ids[:-d]]
    return np.concatenate(centers), np.concatenate(contexts)


def noise_distribution(counts: np.ndarray, power: float = 0.75) -> np.ndarray:
    """Negative-sampling probabilities proportional to count ** power; sums to 1."""
    p = np.asarray(counts, dtype=np.float64) ** power
    return p / p.sum()


def sample_negatives(
    probs: torch.Tensor, shape: tuple[int, int], generator: torch.Generator | None = None
) -> torch.Tensor:
    """Word ids of `shape` (batch, k) drawn i.i.d. from `probs` (with replacement)."""
    flat = torch.multinomial(probs, shape[0] * shape[1], replacement=True, generator=generator)
    return flat.view(shape)


def sgns_loss(
    v_center: torch.Tensor, u_context: torch.Tensor, u_negative: torch.Tensor
) -> torch.Tensor:
    """Mean SGNS loss over the batch.

    v_center (B, D), u_context (B, D), u_negative (B, K, D). Uses F.logsigmoid, which stays finite
    for large scores where log(sigmoid(x)) would underflow to log(0).
    """
    pos = F.logsigmoid((v_center * u_context).sum(-1))
    neg = F.logsigmoid(-torch.einsum("bkd,bd->bk", u_negative, v_center)).sum(-1)
    return -(pos + neg).mean()


class SkipGram(nn.Module):
    """Input and output embeddings of shape (n_words, dim); `forward` returns the SGNS loss.

    Input vectors start uniform in +-0.5/dim and output vectors at zero, as in word2vec;
    `sparse=True` makes the embedding gradients sparse (use torch.optim.SparseAdam).
    """

    def __init__(self, n_words: int, dim: int, sparse: bool = False, seed: int = 0):
        super().__init__()
        self.inp = nn.Embedding(n_words, dim, sparse=sparse)
        self.out = nn.Embedding(n_words, dim, sparse=sparse)
        g = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            self.inp.weight.copy_((torch.rand(n_words, dim, generator=g) - 0.5) / dim)
            self.out.weight.zero_()

    def forward(
        self, center: torch.Tensor, context: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        """center, context (B,) and negatives (B, K) word ids -> scalar mean SGNS loss."""
        return sgns_loss(self.inp(center), self.out(context), self.out(negatives))

    def vectors(self) -> np.ndarray:
        """The input embeddings as a float64 (n_words, dim) array: the word vectors."""
        return self.inp.weight.detach().double().numpy().copy()


def _unit(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def nearest_neighbours(
    vectors: np.ndarray, vocab: dict[str, int], word: str, k: int = 5
) -> list[tuple[str, float]]:
    """The k words of highest cosine similarity to `word` (itself excluded), best first."""
    unit = _unit(vectors)
    sims = unit @ unit[vocab[word]]
    sims[vocab[word]] = -np.inf
    words = np.array(sorted(vocab, key=vocab.get), dtype=object)
    best = np.argsort(-sims, kind="stable")[:k]
    return [(str(words[i]), float(sims[i])) for i in best]


def restrict_questions(
    questions: Sequence[Sequence[str]], vocab
) -> list[tuple[str, str, str, str]]:
    """The (a, b, c, d) of each question (the last four fields) whose 4 words are all in vocab."""
    out = [tuple(q[-4:]) for q in questions]
    return [q for q in out if all(w in vocab for w in q)]


def analogy_accuracy(
    vectors: np.ndarray, vocab: dict[str, int], questions: Sequence[Sequence[str]], batch: int = 512
) -> tuple[float, int]:
    """(accuracy, n_questions used) of 3CosAdd on the questions whose 4 words are in `vocab`.

    Answer to a:b :: c:? is argmax over the vocabulary of cos(x, b - a + c) on unit vectors,
    a, b and c themselves excluded (as gensim does). Accuracy is 0.0 when no question fits.
    """
    qs = restrict_questions(questions, vocab)
    if not qs:
        return 0.0, 0
    ids = np.array([[vocab[w] for w in q] for q in qs])
    unit = _unit(vectors)
    correct = 0
    for start in range(0, len(ids), batch):  # batches of questions, not one at a time
        q = ids[start : start + batch]
        target = unit[q[:, 1]] - unit[q[:, 0]] + unit[q[:, 2]]
        sims = _unit(target) @ unit.T
        rows = np.arange(len(q))[:, None]
        sims[rows, q[:, :3]] = -np.inf
        correct += int((sims.argmax(axis=1) == q[:, 3]).sum())
    return correct / len(qs), len(qs)
