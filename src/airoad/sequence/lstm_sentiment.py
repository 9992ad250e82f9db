"""Review sentiment with an LSTM: tokens -> ids -> padded batches -> nn.LSTM -> a linear head.

The pieces, in the order a prediction needs them:

- ``tokenize``: lower-case words (and ``!``/``?``) pulled out with one regular expression;
- ``build_vocab`` / ``encode``: word -> id, with ``<pad>`` = 0 and ``<unk>`` = 1 reserved;
- ``pad_batch``: ragged id lists -> one (n, max_len) tensor plus the true lengths;
- ``LSTMClassifier``: embedding -> LSTM over a *packed* sequence (so padding never reaches the
  recurrence) -> the last real hidden state -> logits;
- ``train_epoch`` / ``predict``: mini-batch Adam on cross-entropy, and argmax predictions;
- ``accuracy`` / ``f1_score``: the two numbers the lab reports.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Sequence

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

PAD, UNK = "<pad>", "<unk>"
_TOKEN = re.compile(r"[a-z0-9]+(?:'[a-z]+)?|[!?]")


def tokenize(text: str) -> list[str]:
    """Lower-case `text` and return its tokens: runs of letters/digits (keeping an apostrophe
    suffix such as "don't") and the sentiment-bearing punctuation marks "!" and "?".

    tokenize("Great taste!! Don't buy") == ["great", "taste", "!", "!", "don't", "buy"]
    """
    return _TOKEN.findall(text.lower())


def build_vocab(
    token_lists: Iterable[Sequence[str]], min_count: int = 2, max_size: int | None = None
) -> dict[str, int]:
    """Map word -> id. Ids 0 and 1 are PAD and UNK; then every word seen at least `min_count`
    times, most frequent first (ties broken alphabetically), at most `max_size` words in all
    (counting PAD and UNK). Ids are contiguous 0..len(vocab)-1."""
    counts = Counter(tok for tokens in token_lists for tok in tokens)
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    if max_size is not None:
        words = words[: max(0, max_size - 2)]
    return {PAD: 0, UNK: 1, **{w: i + 2 for i, w in enumerate(words)}}


def encode(tokens: Sequence[str], vocab: dict[str, int]) -> list[int]:
    """Token list -> id list; a word missing from `vocab` becomes the UNK id."""
    unk = vocab[UNK]
    return [vocab.get(t, unk) for t in tokens]


def pad_batch(
    sequences: Sequence[Sequence[int]], max_len: int, pad_id: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Truncate each id list to its first `max_len` ids and right-pad with `pad_id`.

    Returns ids: LongTensor (n, L) with L = min(max_len, longest sequence) and lengths:
    LongTensor (n,) of the true (truncated) lengths. An empty sequence keeps one pad token and
    length 1, because a packed LSTM needs every length >= 1.
    """
    lengths = [max(1, min(len(s), max_len)) for s in sequences]
    width = max(lengths) if lengths else 1
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, s in enumerate(sequences):  # one row copy per review; the batch is built once
        row = list(s[:max_len])
        if row:
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return ids, torch.tensor(lengths, dtype=torch.long)


class LSTMClassifier(nn.Module):
    """Embedding (padding_idx=0) -> single-layer LSTM -> dropout -> Linear(hidden, n_classes)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 64,
        hidden_size: int = 64,
        n_classes: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=0)
        self.lstm = nn.LSTM(embed_dim, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_classes)

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """ids (n, L) long, lengths (n,) -> logits (n, n_classes).

        Pack with `pack_padded_sequence(..., batch_first=True, enforce_sorted=False)` so the LSTM
        stops at each sequence's true end; h_n[-1] is then the state after the last real token,
        identical whatever padding follows it."""
        emb = self.embedding(ids)
        packed = pack_padded_sequence(emb, lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.lstm(packed)
        return self.head(self.dropout(h_n[-1]))


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    ids: torch.Tensor,
    lengths: torch.Tensor,
    y: torch.Tensor,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    clip: float = 1.0,
) -> float:
    """One pass over the data in shuffled mini-batches (order drawn with `generator`): cross-
    entropy, backward, clip the gradient norm to `clip`, optimizer step. Returns the mean
    training loss over samples."""
    model.train()
    order = torch.randperm(len(y), generator=generator)
    total = 0.0
    for start in range(0, len(y), batch_size):
        idx = order[start : start + batch_size]
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(ids[idx], lengths[idx]), y[idx])
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        total += loss.item() * len(idx)
    return total / len(y)


@torch.no_grad()
def predict(
    model: nn.Module, ids: torch.Tensor, lengths: torch.Tensor, batch_size: int = 256
) -> torch.Tensor:
    """Class predictions (n,) long: argmax of the logits, in eval mode, batch by batch."""
    model.eval()
    out = [
        model(ids[s : s + batch_size], lengths[s : s + batch_size]).argmax(1)
        for s in range(0, len(ids), batch_size)
    ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


def accuracy(y_true: torch.Tensor, y_pred: torch.Tensor) -> float:
    """Fraction of positions where the labels agree."""
    return float((torch.as_tensor(y_true) == torch.as_tensor(y_pred)).double().mean())


def f1_score(y_true: torch.Tensor, y_pred: torch.Tensor, positive: int = 1) -> float:
    """F1 of the `positive` class: 2 TP / (2 TP + FP + FN); 0.0 when that is 0 / 0."""
    t = torch.as_tensor(y_true) == positive
    p = torch.as_tensor(y_pred) == positive
    tp = int((t & p).sum())
    denom = 2 * tp + int((~t & p).sum()) + int((t & ~p).sum())
    return 2 * tp / denom if denom else 0.0
