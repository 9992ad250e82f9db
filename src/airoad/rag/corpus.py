"""The retrieval evaluation set: a chunked corpus and the questions asked of it.

The corpus is two kinds of real documents, split into chunks a MiniLM encoder can read whole:

- ``pydoc:<topic>``: the Python language reference topics in ``pydoc_data.topics`` (standard
  library; ``airoad.data.load("python-docs")`` returns the same dict);
- ``lesson:<lab-id>#<heading>``: one section of the lesson of a built lab, the heading being
  one of the six frozen ones of ``docs/LAB_ANATOMY.md``.

A chunk id is ``<section>/<part>``. A question's gold ids are sections, not chunks, so they
survive a change of chunk size. ``questions.jsonl`` beside this module holds hand-written
questions (checked against the passage, with a short answer) and questions SmolLM2 generated
from random chunks (``query_generation.py``); ``data/README.md`` tells the two apart.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.resources import files
from typing import Any

from airoad.errors import AiroadError

# The six frozen lesson headings of docs/LAB_ANATOMY.md: lesson gold ids are keyed on them.
HEADINGS = ("What you build", "The key idea", "Run it", "What the figures show",
            "Expected numbers", "Try next")  # fmt: skip
MAX_PIECES = 256  # all-MiniLM-L6-v2 was trained on (and truncates at) 256 word pieces
QUESTIONS = "questions.jsonl"
# Words too common to say whether a passage is about a question (overlap ignores them).
STOP_WORDS = frozenset(
    "a an the and or but if then than so of to in on at by for from with without into onto "
    "as is are was were be been being am do does did done doing have has had having it its "
    "this that these those there here what which who whom whose when where why how i you he "
    "she we they me him her us them my your our their not no can could would should will "
    "shall may might must about after before again all any both each few more most other "
    "some such only own same just also very too up down out over under between through "
    "during while until one".split()
)
_WORD = re.compile(r"[a-z0-9_]+")
# BERT's pre-tokeniser: a run of letters/digits, or any single other visible character.
_PRE_TOKEN = re.compile(r"[^\W_]+|[^\s]", re.UNICODE)


@dataclass(frozen=True)
class Chunk:
    """One retrievable passage: ``id`` = ``f"{section}/{part}"``."""

    id: str
    section: str
    title: str
    text: str


@dataclass(frozen=True)
class Question:
    """One evaluation question; ``gold`` holds section ids, ``answer`` is "" when synthetic."""

    qid: str
    question: str
    gold: tuple[str, ...]
    answer: str
    origin: str  # "hand" | "synthetic"
    paraphrase: bool
    overlap: float


# ---------------------------------------------------------------- counting word pieces


def word_piece_bound(text: str) -> int:
    """A conservative count of MiniLM's word pieces of `text`, [CLS] and [SEP] included,
    without a tokenizer: one piece per punctuation mark, and 1 + len // 2 per run of letters
    or digits. On this corpus it overcounts about 2.6 times (a rare word can exceed it, a
    passage does not: ``tests/rag/test_eval_set.py`` checks every chunk with the tokenizer)."""
    return 2 + sum(1 + len(t) // 2 if t[0].isalnum() else 1 for t in _PRE_TOKEN.findall(text))


def _counter(tokenizer: Any) -> Any:
    if tokenizer is None:
        return word_piece_bound
    return lambda text: len(tokenizer(text, add_special_tokens=True, verbose=False)["input_ids"])


# ---------------------------------------------------------------- chunking


def _pieces(paragraph: str, fits: Any) -> Iterator[str]:
    """`paragraph` itself when it fits, else its lines packed greedily (a line too long alone
    is cut between words)."""
    if fits(paragraph):
        yield paragraph
        return
    units = paragraph.split("\n")
    if len(units) == 1:
        units = paragraph.split(" ")
        if len(units) == 1:  # one unbreakable token: nothing sensible to do but keep it
            yield paragraph
            return
    sep = "\n" if "\n" in paragraph else " "
    yield from _pack(units, sep, fits)


def _pack(units: list[str], sep: str, fits: Any) -> Iterator[str]:
    """Greedy packing: add units to the current piece while it fits, recurse on a unit that
    does not fit alone."""
    current: list[str] = []
    for unit in units:
        if current and fits(sep.join([*current, unit])):
            current.append(unit)
            continue
        if current:
            yield sep.join(current)
        current = []
        if fits(unit):
            current = [unit]
        else:
            yield from _pieces(unit, fits)
    if current:
        yield sep.join(current)


def split_text(text: str, max_pieces: int = MAX_PIECES, tokenizer: Any = None) -> list[str]:
    """`text` cut into consecutive pieces at paragraph boundaries (blank lines), packed greedily
    so that each has at most `max_pieces` word pieces (exactly counted with a Hugging Face
    `tokenizer`, else bounded by ``word_piece_bound``); a paragraph too long alone is cut at
    line ends, then between words."""
    count = _counter(tokenizer)
    fits = lambda piece: count(piece) <= max_pieces  # noqa: E731
    paragraphs = [p.strip("\n") for p in re.split(r"\n\s*\n", text) if p.strip()]
    return list(_pack(paragraphs, "\n\n", fits))


def _chunks(section: str, title: str, text: str, max_pieces: int, tokenizer: Any) -> list[Chunk]:
    return [Chunk(f"{section}/{i}", section, title, piece)
            for i, piece in enumerate(split_text(text, max_pieces, tokenizer))]  # fmt: skip


def pydoc_chunks(
    topics: dict[str, str], max_pieces: int = MAX_PIECES, tokenizer: Any = None
) -> list[Chunk]:
    """Chunks of every Python docs topic (sorted by name), section ``pydoc:<topic>``, title
    ``<topic>``; each within `max_pieces` word pieces (see ``split_text``)."""
    return [c for name in sorted(topics)
            for c in _chunks(f"pydoc:{name}", name, topics[name], max_pieces, tokenizer)]  # fmt: skip


def lesson_sections(markdown: str) -> list[tuple[str, str]]:
    """(heading, body) of every ``## `` section of a lesson, in order; ``## `` lines inside
    fenced code blocks are code, not headings; text before the first section is dropped."""
    out: list[tuple[str, list[str]]] = []
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if not fenced and line.startswith("## "):
            out.append((line[3:].strip(), []))
        elif out:
            out[-1][1].append(line)
    return [(heading, "\n".join(body).strip()) for heading, body in out]


def lesson_chunks(
    lessons: dict[str, str], max_pieces: int = MAX_PIECES, tokenizer: Any = None
) -> list[Chunk]:
    """Chunks of every lesson section (labs sorted by id, sections in order), section
    ``lesson:<lab-id>#<heading>``, title ``<lesson title>: <heading>``."""
    out = []
    for lab_id in sorted(lessons):
        first = lessons[lab_id].lstrip().splitlines()[0] if lessons[lab_id].strip() else ""
        name = first[2:].strip() if first.startswith("# ") else lab_id
        for heading, body in lesson_sections(lessons[lab_id]):
            section = f"lesson:{lab_id}#{heading}"
            out += _chunks(section, f"{name}: {heading}", body, max_pieces, tokenizer)
    return out


# ---------------------------------------------------------------- the corpus and questions


def built_lessons() -> dict[str, str]:
    """{lab id: lesson markdown} of every built lab in the catalog."""
    from airoad.catalog.catalog import load_catalog

    return {lab.id: lab.lesson_path.read_text(encoding="utf-8") for lab in load_catalog().built()}


def load_corpus(tokenizer: Any = None) -> list[Chunk]:
    """The Python docs topics, then the lessons of the built labs, chunked within MiniLM's 256
    word pieces (pass MiniLM's tokenizer to count exactly; chunk ids differ between the two
    counts, section ids do not)."""
    from pydoc_data.topics import topics

    return pydoc_chunks(dict(topics), tokenizer=tokenizer) + lesson_chunks(
        built_lessons(), tokenizer=tokenizer
    )


def load_questions(origin: str | None = None) -> list[Question]:
    """The evaluation questions in file order (hand-written first), all of them or only those
    whose origin is `origin` ("hand" or "synthetic")."""
    if origin not in (None, "hand", "synthetic"):
        raise AiroadError(f"unknown question origin '{origin}': use 'hand' or 'synthetic'")
    lines = files("airoad.rag").joinpath("data", QUESTIONS).read_text(encoding="utf-8")
    out = []
    for line in lines.splitlines():
        if line.strip():
            row = json.loads(line)
            q = Question(**{**row, "gold": tuple(row["gold"])})
            if origin is None or q.origin == origin:
                out.append(q)
    return out


def content_words(text: str) -> set[str]:
    """The lower-cased words of `text` (letters, digits, underscores) minus ``STOP_WORDS``."""
    return set(_WORD.findall(text.lower())) - STOP_WORDS


def word_overlap(question: str, passage: str) -> float:
    """The share of the question's distinct content words that occur in the passage (no
    stemming: "calls" does not match "call"); 0 for a question without content words."""
    words = content_words(question)
    return len(words & content_words(passage)) / len(words) if words else 0.0


def gold_overlap(question: str, gold: tuple[str, ...], chunks: list[Chunk]) -> float:
    """``word_overlap`` of `question` with its best-matching chunk among the gold sections
    (a chunk is what a retriever returns; a whole long section would hold most words)."""
    return max((word_overlap(question, c.text) for c in chunks if c.section in gold), default=0.0)
