"""Grader for transformer-translation's decoding: greedy search against a plain argmax loop,
beam search against brute force (every output enumerated and scored with GNMT's length
penalty), beam size 1 against greedy, and the transformer's next-token function against a
full teacher-forced pass of the trusted model."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from airoad.transformer.transformer_translation import TranslationTransformer

REFERENCE = "airoad.transformer.translation_decoding"

PAD, BOS, EOS = 0, 1, 2


class ToyScorer:
    """A fixed random next-token distribution that depends on the source row and the prefix."""

    def __init__(self, n_rows: int, vocab: int, seed: int, sharpness: float = 2.0):
        gen = torch.Generator().manual_seed(seed)
        self.emb = torch.randn(vocab, 8, generator=gen, dtype=torch.float64)
        self.pos = torch.randn(16, 8, generator=gen, dtype=torch.float64)
        self.out = sharpness * torch.randn(8, vocab, generator=gen, dtype=torch.float64)
        self.row = torch.randn(n_rows, vocab, generator=gen, dtype=torch.float64)

    def __call__(self, prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        h = torch.tanh(self.emb[prefix] * self.pos[: prefix.shape[1]]).sum(1)
        return torch.log_softmax(h @ self.out + self.row[rows], dim=-1)

    def sequence_logprob(self, row: int, tokens: list[int]) -> float:
        prefix, total = [BOS], 0.0
        for t in tokens:
            total += float(self(torch.tensor([prefix]), torch.tensor([row]))[0, t])
            prefix.append(t)
        return total


def _all_outputs(vocab: int, max_len: int):
    """Every output: n non-EOS tokens then EOS (n < max_len), or max_len non-EOS tokens."""
    others = [t for t in range(vocab) if t != EOS]
    for n in range(max_len):
        yield from (list(p) + [EOS] for p in itertools.product(others, repeat=n))
    yield from (list(p) for p in itertools.product(others, repeat=max_len))


def _trim(row: list[int]) -> list[int]:
    return row[: row.index(EOS) + 1] if EOS in row else row


@pytest.mark.parametrize("alpha", [0.0, 0.6, 2.0])
def test_beam_search_is_exact_with_a_wide_beam(impl, alpha):
    """A beam wider than the number of hypotheses returns the best log P / lp(|Y|) output."""
    vocab, max_len, n = 5, 3, 4
    scorer = ToyScorer(n, vocab, seed=1)
    tokens, scores = impl.beam_search(scorer, n, BOS, EOS, PAD, max_len, 100, alpha)
    for row in range(n):
        best = max(
            _all_outputs(vocab, max_len),
            key=lambda y: scorer.sequence_logprob(row, y) / ((5 + len(y)) / 6) ** alpha,
        )
        got = _trim(tokens[row].tolist())
        assert got == best, f"row {row} (alpha {alpha}): beam gave {got}, the best is {best}"
        want = scorer.sequence_logprob(row, best) / ((5 + len(best)) / 6) ** alpha
        assert math.isclose(float(scores[row]), want, rel_tol=1e-9), "score is not log P / lp"


def test_length_penalty_formula(impl):
    """length_penalty(n, alpha) is ((5 + n) / 6) ** alpha."""
    n = torch.tensor([1, 2, 7, 30])
    for alpha in (0.0, 0.6, 1.3):
        want = torch.tensor([((5 + k) / 6) ** alpha for k in (1, 2, 7, 30)], dtype=torch.float64)
        torch.testing.assert_close(impl.length_penalty(n, alpha).double(), want, atol=0, rtol=1e-12)


def test_greedy_matches_an_argmax_loop(impl):
    """greedy_decode picks the argmax each step, stops each row at EOS and pads after it."""
    vocab, n, max_len = 7, 6, 8
    scorer = ToyScorer(n, vocab, seed=2, sharpness=1.0)
    out = impl.greedy_decode(scorer, n, BOS, EOS, PAD, max_len)
    for row in range(n):
        prefix, want = [BOS], []
        for _ in range(max_len):
            t = int(scorer(torch.tensor([prefix]), torch.tensor([row])).argmax())
            want.append(t)
            prefix.append(t)
            if t == EOS:
                break
        got = out[row].tolist()
        assert got[: len(want)] == want, f"row {row}: {got}, expected {want}"
        assert all(t == PAD for t in got[len(want) :]), "after EOS a row holds only PAD"
    assert out.shape[1] <= max_len


@pytest.mark.parametrize("alpha", [0.0, 1.0])
def test_beam_of_one_is_greedy(impl, alpha):
    """beam_search with beam_size 1 returns exactly greedy_decode's tokens, whatever alpha."""
    scorer = ToyScorer(8, 9, seed=3, sharpness=1.0)
    greedy = impl.greedy_decode(scorer, 8, BOS, EOS, PAD, 10)
    beam, _ = impl.beam_search(scorer, 8, BOS, EOS, PAD, 10, 1, alpha)
    assert torch.equal(beam, greedy), "beam size 1 must be greedy decoding"


def test_beam_never_scores_below_greedy(impl):
    """Beam search (alpha 0) finds outputs at least as likely as greedy's for every source."""
    scorer = ToyScorer(10, 9, seed=4, sharpness=1.5)
    greedy = impl.greedy_decode(scorer, 10, BOS, EOS, PAD, 6)
    _, scores = impl.beam_search(scorer, 10, BOS, EOS, PAD, 6, 4, 0.0)
    for row in range(10):
        g = scorer.sequence_logprob(row, _trim(greedy[row].tolist()))
        assert float(scores[row]) >= g - 1e-9, f"row {row}: beam {scores[row]} < greedy {g}"


def test_transformer_next_logprobs_matches_a_full_pass(impl):
    """transformer_next_logprobs gives log_softmax of the model's last logits for those rows."""
    model = TranslationTransformer(11, 12, 3, 1, 1, 16, 0.0, PAD, 16, seed=5).eval()
    src = torch.tensor([[5, 6, 7, 0], [8, 9, 0, 0], [3, 4, 5, 6]])
    step = impl.transformer_next_logprobs(model, src)
    rows = torch.tensor([2, 0, 2])
    prefix = torch.tensor([[BOS, 4], [BOS, 7], [BOS, 9]])
    with torch.no_grad():
        want = torch.log_softmax(model(src[rows], prefix)[:, -1], dim=-1)
    torch.testing.assert_close(step(prefix, rows), want, atol=1e-5, rtol=1e-5)


def test_strip_special(impl):
    """strip_special cuts each row at its first EOS and drops PAD."""
    tokens = torch.tensor([[5, 6, EOS, PAD], [7, PAD, 8, 9], [EOS, 4, EOS, PAD]])
    assert impl.strip_special(tokens, EOS, PAD) == [[5, 6], [7, 8, 9], []]
