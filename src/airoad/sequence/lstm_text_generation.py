"""A character-level LSTM language model: learn p(next char | chars so far), then sample from it.

The pieces, in the order training and generation need them:

- ``build_vocab`` / ``encode`` / ``decode``: the sorted set of characters <-> integer ids;
- ``split_by_position``: the first part of the text trains, the tail validates (contiguous, so
  validation text is never interleaved with training text);
- ``get_batch``: random windows of ``seq_len`` ids as inputs and the same windows shifted by one
  as targets;
- ``CharLSTM``: embedding -> LSTM -> linear logits over the vocabulary, carrying its state;
- ``sequence_loss`` / ``evaluate_loss`` / ``nats_to_bits``: mean cross-entropy per character;
- ``next_char_probs`` / ``sample``: temperature-scaled softmax and autoregressive sampling with
  an explicit ``torch.Generator`` (temperature 0 means greedy argmax).
"""

from __future__ import annotations

import math

import torch
from torch import nn


def build_vocab(text: str) -> tuple[dict[str, int], list[str]]:
    """Characters of `text`, sorted by code point. Returns (stoi, itos) with itos[stoi[c]] == c."""
    itos = sorted(set(text))
    return {c: i for i, c in enumerate(itos)}, itos


def encode(text: str, stoi: dict[str, int]) -> torch.Tensor:
    """String -> LongTensor (len(text),) of ids; a character missing from `stoi` raises KeyError."""
    return torch.tensor([stoi[c] for c in text], dtype=torch.long)


def decode(ids: torch.Tensor, itos: list[str]) -> str:
    """LongTensor or list of ids -> string."""
    return "".join(itos[int(i)] for i in ids)


def split_by_position(
    ids: torch.Tensor, val_fraction: float = 0.1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Contiguous split: the first (1 - val_fraction) of the ids train, the rest validate.
    Returns (train, val) whose concatenation is `ids`."""
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    cut = int(round(len(ids) * (1.0 - val_fraction)))
    return ids[:cut], ids[cut:]


def get_batch(
    data: torch.Tensor, seq_len: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Draw `batch_size` random start positions s (with `generator`) and return
    x = data[s : s + seq_len] and y = data[s + 1 : s + seq_len + 1], both (batch_size, seq_len)."""
    if len(data) <= seq_len:
        raise ValueError(f"data has {len(data)} ids; need more than seq_len={seq_len}")
    starts = torch.randint(0, len(data) - seq_len, (batch_size,), generator=generator)
    offsets = torch.arange(seq_len)
    idx = starts[:, None] + offsets[None, :]
    return data[idx], data[idx + 1]


class CharLSTM(nn.Module):
    """Embedding(vocab, embed_dim) -> LSTM(n_layers, batch_first) -> Linear(hidden, vocab)."""

    def __init__(
        self,
        vocab_size: int,
        embed_dim: int = 32,
        hidden_size: int = 128,
        n_layers: int = 1,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        self.lstm = nn.LSTM(
            embed_dim,
            hidden_size,
            n_layers,
            batch_first=True,
            dropout=dropout if n_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, vocab_size)

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """x (B, T) ids -> (logits (B, T, vocab), (h, c) to continue from)."""
        out, state = self.lstm(self.embedding(x), state)
        return self.head(out), state


def sequence_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy (nats per character) of predicting y (B, T) from x (B, T)."""
    logits, _ = model(x)
    return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))


@torch.no_grad()
def evaluate_loss(
    model: nn.Module, data: torch.Tensor, seq_len: int = 128, batch_size: int = 64
) -> float:
    """Mean nats per character over `data` cut into consecutive non-overlapping windows
    (the ragged tail is dropped), in eval mode, each window read from a fresh state."""
    model.eval()
    n = (len(data) - 1) // seq_len
    if n == 0:
        raise ValueError(f"data has {len(data)} ids; need more than seq_len={seq_len}")
    x = data[: n * seq_len].view(n, seq_len)
    y = data[1 : n * seq_len + 1].view(n, seq_len)
    total = 0.0
    for s in range(0, n, batch_size):
        total += sequence_loss(model, x[s : s + batch_size], y[s : s + batch_size]).item() * len(
            x[s : s + batch_size]
        )
    model.train()
    return total / n


def nats_to_bits(loss: float) -> float:
    """Convert a loss in nats (natural log) to bits (log base 2)."""
    return loss / math.log(2.0)


def next_char_probs(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(logits / temperature) over the last axis; temperature 0 gives the one-hot of the
    argmax (the limit of the softmax as temperature -> 0). Temperature must be >= 0."""
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if temperature == 0:
        return nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / temperature, dim=-1)


@torch.no_grad()
def sample(
    model: nn.Module,
    prompt: torch.Tensor,
    n: int,
    temperature: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Continue the 1-D id tensor `prompt` (length >= 1) by `n` ids and return only those n.

    Feed the prompt once to get the state, then repeatedly draw the next id from
    next_char_probs(last logits, temperature) with torch.multinomial(..., generator=generator)
    (argmax when temperature == 0) and feed it back in. Runs in eval mode."""
    was_training = model.training
    model.eval()
    logits, state = model(prompt.view(1, -1))
    out = []
    for _ in range(n):
        last = logits[0, -1]
        if temperature == 0:
            nxt = last.argmax().view(1)
        else:
            nxt = torch.multinomial(next_char_probs(last, temperature), 1, generator=generator)
        out.append(nxt)
        logits, state = model(nxt.view(1, 1), state)
    model.train(was_training)
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)
