"""The word-analogies loader on the real cached file (Google's questions-words.txt)."""

from __future__ import annotations

from collections import Counter

from airoad.data import load


def test_word_analogies_counts_and_format():
    questions = load("word-analogies")
    assert len(questions) == 19_544
    sections = Counter(q[0] for q in questions)
    assert len(sections) == 14
    assert sections["capital-common-countries"] == 506
    assert sections["gram3-comparative"] == 1332
    semantic = sum(n for s, n in sections.items() if not s.startswith("gram"))
    assert semantic == 8_869 and len(questions) - semantic == 10_675
    assert questions[0] == ("capital-common-countries", "athens", "greece", "baghdad", "iraq")
    assert all(len(q) == 5 and all(w == w.lower() for w in q[1:]) for q in questions)
