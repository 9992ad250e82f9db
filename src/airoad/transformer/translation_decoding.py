"""Turning a trained translation model into output sentences: greedy and beam search.

Both searches work on any model through one function, ``next_logprobs(prefix, rows)``: given
decoder prefixes (M, t) that start with BOS and the source row each one belongs to (M,), it
returns log-probabilities of the next token (M, V). `transformer_next_logprobs` builds it for
`TranslationTransformer` (the encoder runs once; each step re-runs the decoder on the prefix).

A hypothesis ends at EOS or after ``max_len`` generated tokens. Outputs are (N, L) token ids
without BOS, EOS included, PAD after it. Beam search ranks hypotheses by the length-normalised
score of Wu et al. (2016, GNMT):

    score(Y) = log P(Y | X) / lp(|Y|),   lp(n) = ((5 + n) / 6) ** alpha

where |Y| counts the generated tokens including EOS; alpha = 0 ranks by log P alone, larger
alpha favours longer outputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

NextLogprobs = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def length_penalty(length: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's ``((5 + length) / 6) ** alpha`` (1 for a single token, 1 everywhere at alpha 0)."""
    return ((5.0 + length.to(torch.float64)) / 6.0) ** alpha


@torch.no_grad()
def greedy_decode(
    next_logprobs: NextLogprobs, n: int, bos_id: int, eos_id: int, pad_id: int, max_len: int
) -> torch.Tensor:
    """Pick the most likely next token until each of the n rows emits EOS or reaches max_len.

    Only unfinished rows are passed to ``next_logprobs``. Returns (n, L) ids, L <= max_len.
    """
    seqs = torch.full((n, 1), bos_id, dtype=torch.long)
    done = torch.zeros(n, dtype=torch.bool)
    for _ in range(max_len):
        live = (~done).nonzero().squeeze(1)
        token = torch.full((n,), pad_id, dtype=torch.long)
        token[live] = next_logprobs(seqs[live], live).argmax(dim=-1)
        seqs = torch.cat([seqs, token[:, None]], dim=1)
        done |= token == eos_id
        if done.all():
            break
    return seqs[:, 1:]


@torch.no_grad()
def beam_search(
    next_logprobs: NextLogprobs,
    n: int,
    bos_id: int,
    eos_id: int,
    pad_id: int,
    max_len: int,
    beam_size: int = 4,
    alpha: float = 0.6,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Keep the ``beam_size`` best hypotheses per source; return the best by score(Y).

    Each step extends every live hypothesis by every token and keeps, per source, the
    ``beam_size`` candidates with the highest length-normalised score; a finished hypothesis
    (EOS seen) stays a candidate unchanged (it extends only by PAD, at no cost). The search stops
    when every kept hypothesis is finished or after ``max_len`` tokens. With beam_size 1 it is
    greedy decoding; with a beam as large as the number of hypotheses it is exact.
    Returns (tokens (n, L) ids, scores (n,) float64 = score of each chosen output).
    """
    k = beam_size
    seqs = torch.full((n, k, 1), bos_id, dtype=torch.long)
    logp_sum = torch.full((n, k), float("-inf"), dtype=torch.float64)
    logp_sum[:, 0] = 0.0  # one real start per source; the other slots are empty
    lengths = torch.zeros(n, k, dtype=torch.long)
    done = torch.zeros(n, k, dtype=torch.bool)
    rows = torch.arange(n)[:, None].expand(n, k)
    for _ in range(max_len):
        live = ~done & torch.isfinite(logp_sum)
        step = None
        if live.any():
            out = next_logprobs(seqs[live], rows[live]).to(torch.float64)
            step = torch.full((n, k, out.shape[-1]), float("-inf"), dtype=torch.float64)
            step[live] = out
        if step is None:
            break
        step[done] = float("-inf")
        step[..., pad_id] = torch.where(done, 0.0, step[..., pad_id])  # finished: stay as is
        cand = logp_sum[..., None] + step  # (n, k, V)
        new_len = lengths + live.long()
        key = cand / length_penalty(new_len, alpha)[..., None]
        top = key.flatten(1).topk(k, dim=1).indices  # (n, k) into k * V
        beam, token = top // step.shape[-1], top % step.shape[-1]
        seqs = torch.cat([seqs.gather(1, beam[..., None].expand(-1, -1, seqs.shape[-1])),
                          token[..., None]], dim=2)  # fmt: skip
        logp_sum = cand.flatten(1).gather(1, top)
        lengths = new_len.gather(1, beam)
        done = done.gather(1, beam) | (live.gather(1, beam) & (token == eos_id))
        if (done | ~torch.isfinite(logp_sum)).all():
            break
    scores = logp_sum / length_penalty(lengths, alpha)
    best = scores.argmax(dim=1)
    picked = seqs[torch.arange(n), best, 1:]
    return picked, scores[torch.arange(n), best]


def transformer_next_logprobs(model, src: torch.Tensor) -> NextLogprobs:
    """``next_logprobs`` for a `TranslationTransformer` on sources src (N, S): the memory is
    computed once here, and each call runs the decoder on the prefixes of the given rows."""
    with torch.no_grad():
        memory, src_mask = model.encode(src)

    def step(prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        logits = model.decode(prefix, memory[rows], src_mask[rows])
        return torch.log_softmax(logits[:, -1].float(), dim=-1)

    return step


def strip_special(tokens: torch.Tensor, eos_id: int, pad_id: int) -> list[list[int]]:
    """Each row's ids up to (not including) the first EOS, PAD removed: ready to detokenise."""
    out = []
    for row in tokens.tolist():
        row = row[: row.index(eos_id)] if eos_id in row else row
        out.append([t for t in row if t != pad_id])
    return out
