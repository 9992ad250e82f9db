"""The retrieval evaluation set (platform data, not a lab): the corpus is chunked within
MiniLM's 256 word pieces, every gold id names a real section, the hand-written questions are
checked against their passages, and the set is small enough to keep in the repo."""

from __future__ import annotations

import json
from importlib.resources import files

import pytest

from airoad.errors import AiroadError
from airoad.rag.corpus import (
    HEADINGS,
    MAX_PIECES,
    built_lessons,
    gold_overlap,
    lesson_sections,
    load_corpus,
    load_questions,
    split_text,
    word_overlap,
)

PARAPHRASE_OVERLAP = 0.5  # a paraphrase shares at most half its content words with the passage


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    from airoad.data import load
    from airoad.data.models import MINILM

    # the tokenizer alone: the encoder's weights are not needed to count word pieces
    return AutoTokenizer.from_pretrained(load(MINILM), local_files_only=True)


@pytest.fixture(scope="module")
def corpus(tokenizer):
    return load_corpus(tokenizer)


def _pieces(tokenizer, text):
    return len(tokenizer(text, verbose=False)["input_ids"])


def _sections():
    """{section id: full text} of every pydoc topic and every built lesson section."""
    from pydoc_data.topics import topics

    out = {f"pydoc:{name}": text for name, text in topics.items()}
    for lab, markdown in built_lessons().items():
        out |= {f"lesson:{lab}#{h}": body for h, body in lesson_sections(markdown)}
    return out


def test_every_chunk_fits_minilm(corpus, tokenizer):
    """Every chunk, counted exactly or with the word bound, has at most 256 word pieces."""
    rough = load_corpus()
    for chunk in corpus + rough:
        assert _pieces(tokenizer, chunk.text) <= MAX_PIECES, chunk.id
    assert len(corpus) < len(rough)  # the bound is conservative: it cuts more often


def test_chunks_cover_sections_in_order(corpus):
    """Chunk ids are <section>/<part> with parts 0, 1, ...; lessons use the frozen headings."""
    parts: dict[str, list[int]] = {}
    for chunk in corpus:
        section, part = chunk.id.rsplit("/", 1)
        assert section == chunk.section and chunk.text.strip()
        parts.setdefault(section, []).append(int(part))
    assert all(p == list(range(len(p))) for p in parts.values())
    assert len({c.id for c in corpus}) == len(corpus)
    lessons = [s for s in parts if s.startswith("lesson:")]
    assert lessons and all(s.split("#", 1)[1] in HEADINGS for s in lessons)
    assert set(parts) == {s for s, text in _sections().items() if text.strip()}


def test_split_text_keeps_every_paragraph():
    """Splitting packs whole paragraphs, cuts only a paragraph too long alone, loses no text."""
    text = "\n\n".join(f"paragraph {i} " + "word " * (i % 7 * 9) for i in range(60))
    pieces = split_text(text, max_pieces=200)  # the longest paragraph is bounded by 170
    assert len(pieces) > 1 and all(p.startswith("paragraph") for p in pieces)
    assert "\n\n".join(pieces).split() == text.split()
    long = split_text("paragraph " + "word " * 300, max_pieces=200)
    assert len(long) > 1 and " ".join(long).split() == ("paragraph " + "word " * 300).split()


def test_corpus_is_deterministic():
    """Two loads give the same chunks in the same order."""
    assert load_corpus() == load_corpus()


def test_every_gold_id_exists(corpus):
    """Every question's gold sections exist in the corpus."""
    sections = {c.section for c in corpus}
    questions = load_questions()
    assert all(q.gold and set(q.gold) <= sections for q in questions), [
        q.qid for q in questions if not set(q.gold) <= sections
    ]


def test_hand_questions(corpus):
    """At least 60 hand questions, 30 low-overlap paraphrases, overlaps recomputed exactly."""
    hand = load_questions("hand")
    assert len(hand) >= 60
    assert sum(q.paraphrase and q.overlap <= PARAPHRASE_OVERLAP for q in hand) >= 30
    stale = [q.qid for q in hand
             if abs(q.overlap - gold_overlap(q.question, q.gold, corpus)) > 1e-3]  # fmt: skip
    assert not stale, "run `python -m airoad.rag.query_generation --overlap-only`"
    assert {q.gold[0].split(":")[0] for q in hand} == {"pydoc", "lesson"}


def test_hand_answers_are_in_their_passages():
    """Each hand answer appears (case and spacing aside) in one of its gold sections."""
    norm = lambda s: " ".join(s.split()).lower()  # noqa: E731
    sections = {k: norm(v) for k, v in _sections().items()}
    missing = [q.qid for q in load_questions("hand")
               if not q.answer or not any(norm(q.answer) in sections[g] for g in q.gold)]  # fmt: skip
    assert not missing


def test_synthetic_questions():
    """Synthetic questions are unique, end in '?', carry no answer, and number a few hundred."""
    synthetic = load_questions("synthetic")
    assert 250 <= len(synthetic) <= 400
    assert all(q.question.endswith("?") and q.answer == "" and len(q.gold) == 1 for q in synthetic)
    assert len({q.question.casefold() for q in synthetic}) == len(synthetic)


def test_file_is_small_and_qids_unique():
    """questions.jsonl stays under 300 KB, one valid row per line, qids unique."""
    path = files("airoad.rag").joinpath("data", "questions.jsonl")
    assert len(path.read_bytes()) < 300_000
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len({r["qid"] for r in rows}) == len(rows) == len(load_questions())
    assert {r["origin"] for r in rows} == {"hand", "synthetic"}
    with pytest.raises(AiroadError, match="origin"):
        load_questions("generated")


def test_word_overlap():
    """Overlap is the share of distinct non-stop question words found in the passage."""
    assert word_overlap("What does the with statement call?", "the statement calls it") == 0.5
    assert word_overlap("the of and", "anything") == 0.0
    assert word_overlap("Nonlocal SCOPE", "nonlocal scope rules") == 1.0
