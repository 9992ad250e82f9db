"""Grader for rag-qa: chunkers checked by their invariants (every word kept, in order, sizes and
overlaps as asked), citations and the prompt on tiny inputs, exact match and token F1 against
the official SQuAD v1.1 evaluation script's formulas (re-implemented below from its
definition), faithfulness against a hand count, and the abstain rule against its definition."""

from __future__ import annotations

import re
import string
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.rag.rag_qa"

FAST = settings(max_examples=40, deadline=None)
WORDS = st.lists(st.sampled_from(["cat", "dog", "the", "a", "KV", "cache", "x1"]), max_size=40)


# The SQuAD v1.1 evaluate-v1.1.py formulas, written from their definition.
def squad_normalize(s: str) -> str:
    s = s.lower()
    s = "".join(ch for ch in s if ch not in set(string.punctuation))
    s = re.sub(r"\b(a|an|the)\b", " ", s)
    return " ".join(s.split())


def squad_f1(prediction: str, ground_truth: str) -> float:
    p, g = squad_normalize(prediction).split(), squad_normalize(ground_truth).split()
    common = Counter(p) & Counter(g)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


ANSWERS = [
    ("The exception is suppressed.", "the exception is suppressed"),
    ("It is suppressed [1].", "the exception is suppressed"),
    ("0.85", "0.85"),
    ("a damping factor of 0.85", "0.85"),
    ("An  Apple, a PEAR!", "apple pear"),
    ("dog dog cat", "dog cat cat"),
    ("nothing shared", "the answer"),
]


def test_fixed_windows_cover_text_with_overlap(impl):
    """Windows have `size` words, start every size - overlap words, and end at the last word."""
    text = " ".join(f"w{i}" for i in range(11))
    assert impl.fixed_windows(text, 4, 1) == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9", "w9 w10"]
    assert impl.fixed_windows("a b c d e", 3, 1) == ["a b c", "c d e"]
    assert impl.fixed_windows("a  b\nc", 5, 2) == ["a b c"], "one window when the text fits"
    for overlap in (3, 4, -1):  # a clear message, not range()'s "arg 3 must not be zero"
        with pytest.raises(ValueError, match="overlap"):
            impl.fixed_windows(text, 3, overlap)


@FAST
@given(WORDS, st.integers(1, 6), st.integers(0, 5))
def test_fixed_windows_properties(impl, words, size, overlap):
    """Dropping each window's first `overlap` words (after the first) gives back the text."""
    overlap = min(overlap, size - 1)
    out = impl.fixed_windows(" ".join(words), size, overlap)
    assert all(0 < len(w.split()) <= size for w in out)
    rebuilt = out[:1] + [" ".join(w.split()[overlap:]) for w in out[1:]]
    assert " ".join(rebuilt).split() == words, "windows must cover every word once, in order"


def test_sentences_split_at_sentence_ends(impl):
    """Cut after . ! ? before a capital or digit, not inside 'e.g. x' or '3.5'."""
    text = "Python 3.5 added it. Use e.g. a list!  Why?\nBecause 2 is even."
    assert impl.sentences(text) == ["Python 3.5 added it.", "Use e.g. a list!", "Why?",
                                    "Because 2 is even."]  # fmt: skip


def test_sentence_pack_keeps_sentences_whole(impl):
    """Pack whole sentences up to max_words; a longer sentence stays alone, never cut."""
    text = "One two three. Four five. Six seven eight nine ten eleven. Twelve."
    assert impl.sentence_pack(text, 5) == ["One two three. Four five.",
                                           "Six seven eight nine ten eleven.", "Twelve."]  # fmt: skip
    assert impl.sentence_pack(text, 100) == [text]


def test_prompt_numbers_passages(impl):
    """Rules, a worked example (user, assistant), then '[i] title', newline, text, the question."""
    msgs = impl.prompt_messages("Why?", ["alpha text", "beta text"], ["A", "B"])
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user"]
    assert msgs[0]["content"] == impl.SYSTEM and "[1]" in impl.SYSTEM
    assert msgs[2]["content"] == impl.EXAMPLE[1] and "[2]" in msgs[2]["content"]
    user = msgs[3]["content"]
    assert user == "Passages:\n\n[1] A\nalpha text\n\n[2] B\nbeta text\n\nQuestion: Why?"
    assert msgs[1]["content"] == impl.user_turn(*impl.EXAMPLE[0])
    assert impl.user_turn("Q?", ["t"], ["T"]) == "Passages:\n\n[1] T\nt\n\nQuestion: Q?"


def test_parse_citations(impl):
    """[n] and [n, m] give passage numbers, distinct, first-mention order, within 1..n."""
    assert impl.parse_citations("Yes [2]. Also [1, 2] and [3].", 3) == [2, 1, 3]
    assert impl.parse_citations("See [4] or [0]; see [1,3]", 3) == [1, 3]
    assert impl.parse_citations("no citation here (1)", 3) == []
    assert impl.strip_citations("It is X [1] and Y [2, 3].") == "It is X and Y ."


@pytest.mark.parametrize(("pred", "gold"), ANSWERS)
def test_normalize_and_exact_match_equal_squad(impl, pred, gold):
    """Lower case, drop punctuation and articles, collapse spaces: SQuAD v1.1's normaliser."""
    assert impl.normalize_answer(pred) == squad_normalize(pred)
    assert impl.exact_match(pred, gold) == float(squad_normalize(pred) == squad_normalize(gold))


@pytest.mark.parametrize(("pred", "gold"), ANSWERS)
def test_token_f1_equals_squad(impl, pred, gold):
    """Token F1 over bags of normalised tokens (a repeated token counts as often as shared)."""
    assert impl.token_f1(pred, gold) == pytest.approx(squad_f1(pred, gold), abs=1e-12)


@FAST
@given(st.lists(st.sampled_from(["a", "cat", "dog", "the", "x", "!"]), max_size=8), WORDS)
def test_token_f1_property(impl, pred, gold):
    """Token F1 equals SQuAD's on any pair; both empty after normalising counts as 1."""
    p, g = " ".join(pred), " ".join(gold)
    want = (
        squad_f1(p, g)
        if squad_normalize(p) and squad_normalize(g)
        else float(squad_normalize(p) == squad_normalize(g))
    )
    assert impl.token_f1(p, g) == pytest.approx(want, abs=1e-12)


def test_faithfulness(impl):
    """Share of the answer's content words (citations stripped) found in the cited passages."""
    cited = ["The KV cache stores keys.", "Values are stored too."]
    # content words of the answer: cache, stores, values, tokens -> 3 of 4 supported
    assert impl.faithfulness("The cache stores values for tokens [1][2].", cited) == 0.75
    assert impl.faithfulness("The cache stores values [1].", []) == 0.0
    assert impl.faithfulness("It is [1].", cited[:1]) == 1.0


def test_abstain_rule_and_curve(impl):
    """Abstain where the best score is below the threshold; rates per threshold on both sets."""
    best = np.array([0.2, 0.5, 0.7])
    np.testing.assert_array_equal(impl.abstains(best, 0.5), [True, False, False])
    answerable, unanswerable = np.array([0.6, 0.8, 0.3, 0.9]), np.array([0.1, 0.4, 0.65])
    thresholds = np.array([0.0, 0.35, 0.7, 1.0])
    hit, false = impl.abstain_curve(answerable, unanswerable, thresholds)
    np.testing.assert_allclose(hit, [0, 1 / 3, 1, 1])
    np.testing.assert_allclose(false, [0, 0.25, 0.5, 1])
    # a score equal to the threshold is kept (abstain is strictly below), on both sets
    tied, kept = impl.abstain_curve(np.array([0.5, 0.9]), np.array([0.5, 0.1]), np.array([0.5]))
    np.testing.assert_allclose([tied[0], kept[0]], [0.5, 0.0], err_msg="ties must not abstain")
