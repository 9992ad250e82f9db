"""`airoad ask`: answer a learner's question from the lessons of the built labs, with citations.

Retrieval is hybrid: BM25 and MiniLM embeddings each rank the lesson chunks, reciprocal rank
fusion merges the two rankings (the `retrieval` lab's pieces), and chunks collapse to their
sections (lab, heading), which are what a learner can open. The index (chunks, BM25 fitted on
them, their embeddings) is built once into the shared cache, keyed by a hash of the lessons, so
it is rebuilt exactly when a lesson changes. Queries are embedded with the NumPy MiniLM, so
`--no-generate` never imports torch; generation loads SmolLM2 and answers from the top passages.
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airoad.errors import AiroadError
from airoad.rag.corpus import STOP_WORDS, Chunk, lesson_chunks

INDEX_VERSION = 2  # bump when chunking, tokenisation or the stored layout changes
CANDIDATES = 50  # each retriever's depth before fusion
# all-MiniLM-L6-v2 was fine-tuned on pairs cut at 128 word pieces (its tokenizer.json still
# truncates there): passages of that size embed sharper than 256-piece ones.
PASSAGE_PIECES = 128
# Below this cosine, no lesson passage is about the question: on the lessons of 2026-12-02 the
# best passage of every hand-written question scores at least 0.36, keyboard mashing and
# off-topic questions (bread, football, capitals) at most 0.25.
MIN_COSINE = 0.3
EXAMPLE = 'airoad ask "how does the KV cache work?"'


@dataclass
class Index:
    """Lesson chunks, BM25 fitted on them, and their unit MiniLM embeddings (n, 384)."""

    key: str
    chunks: list[Chunk]
    bm25: Any
    embeddings: np.ndarray


@dataclass(frozen=True)
class Hit:
    """One retrieved lesson section, with the best chunk of it and its scores."""

    section: str
    title: str
    text: str
    fused: float
    cosine: float


def lessons_key(lessons: dict[str, str]) -> str:
    """A hash of every lesson's id and text plus the index layout version."""
    digest = hashlib.sha256(f"v{INDEX_VERSION}".encode())
    for lab_id in sorted(lessons):
        digest.update(f"\0{lab_id}\0{lessons[lab_id]}".encode())
    return digest.hexdigest()[:16]


def _encoder() -> Any:
    """The NumPy MiniLM: a query embedded in milliseconds, without importing torch."""
    from airoad.data.models import MINILM
    from airoad.data.store import load
    from airoad.rag.minilm_numpy import MiniLMEncoder

    return MiniLMEncoder(load(MINILM))


class TorchMiniLM:
    """MiniLM through transformers, for indexing: on a thousand passages torch's kernels are
    about 5x faster than NumPy's (the two agree to 1e-6)."""

    def __init__(self, batch_size: int = 32) -> None:
        from airoad.data.models import MINILM, load_minilm_encoder
        from airoad.data.store import load

        self.folder = load(MINILM)
        self.model, self.tokenizer = load_minilm_encoder()
        self.batch_size = batch_size

    def encode(self, texts: list[str], progress: Any = None) -> np.ndarray:
        from airoad.rag.retrieval import encode

        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.zeros((len(texts), 384), np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            out[rows] = encode(self.model, self.tokenizer, [texts[i] for i in rows])
            if progress is not None:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return out


class _PieceCounter:
    """corpus.split_text counts word pieces through a Hugging Face-style call; this adapts a
    `tokenizers.Tokenizer` (without truncation, so long passages are counted in full)."""

    def __init__(self, folder: Path) -> None:
        from tokenizers import Tokenizer

        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.no_truncation()  # tokenizer.json truncates at 128: counts would cap
        self.tokenizer.no_padding()

    def __call__(self, text: str, add_special_tokens: bool = True, **_: Any) -> dict:
        return {"input_ids": self.tokenizer.encode(text, add_special_tokens=add_special_tokens).ids}


def _bm25_text(chunk: Chunk) -> str:
    return f"{chunk.title}\n{chunk.text}"


def build_index(lessons: dict[str, str], encoder: Any = None, progress: Any = None) -> Index:
    """Chunk the lessons within PASSAGE_PIECES word pieces, fit BM25, embed every chunk."""
    from airoad.rag.retrieval import BM25, tokenize

    encoder = encoder or TorchMiniLM()
    counter = _PieceCounter(encoder.folder)
    chunks = lesson_chunks(lessons, max_pieces=PASSAGE_PIECES, tokenizer=counter)
    if not chunks:
        raise AiroadError("no lesson has any section to index: is the catalog empty?")
    bm25 = BM25().fit(tokenize([_bm25_text(c) for c in chunks], STOP_WORDS))
    embeddings = encoder.encode([_bm25_text(c) for c in chunks], progress)
    return Index(lessons_key(lessons), chunks, bm25, embeddings)


def cache_folder() -> Path:
    """Where the lesson index lives: the shared dataset cache, beside the models it needs."""
    from airoad.home import data_dir

    return data_dir() / "cache" / "ask"


def cached_index(
    lessons: dict[str, str], progress: Any = None, folder: Path | None = None, encoder: Any = None
) -> tuple[Index, bool]:
    """(the index of these lessons, whether it was built now): loaded from `folder` (default
    the shared cache) when a file for this exact set of lessons exists, else built and saved."""
    from airoad.home import write_atomic

    key = lessons_key(lessons)
    path = (folder or cache_folder()) / f"lessons-{key}.pkl"
    if path.exists():
        try:
            index = pickle.loads(path.read_bytes())  # our own cache file, written below
            if isinstance(index, Index) and index.key == key:
                return index, False
        except (pickle.UnpicklingError, EOFError, AttributeError, ImportError):
            pass  # a damaged or stale cache file is rebuilt, never trusted
    index = build_index(lessons, encoder=encoder, progress=progress)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("lessons-*.pkl"):
            old.unlink(missing_ok=True)  # one index per cache: the old lessons are gone
        write_atomic(path, pickle.dumps(index))
    except OSError:
        pass  # a read-only cache: the answer still comes, the index is rebuilt next time
    return index, True


def validate_question(question: str) -> str:
    """The question, stripped; a clear error when there is nothing to search for."""
    from airoad.rag.retrieval import tokenize

    text = " ".join(question.split())
    if not text:
        raise AiroadError(f"the question is empty: ask something, e.g. {EXAMPLE}")
    if len(text) > 1000:
        raise AiroadError("the question is over 1,000 characters: ask it in a sentence or two")
    if not tokenize([text])[0]:
        raise AiroadError(f"the question has no words to search for: try e.g. {EXAMPLE}")
    return text


def search(index: Index, question: str, k: int = 5, encoder: Any = None) -> list[Hit]:
    """The top `k` lesson sections for `question`: BM25 and dense rankings of the chunks fused
    by reciprocal rank fusion, then each section kept at its best chunk's rank."""
    from airoad.rag.retrieval import dense_search, reciprocal_rank_fusion, tokenize

    encoder = encoder or _encoder()
    depth = min(CANDIDATES, len(index.chunks))
    sparse_ids, _ = index.bm25.search(tokenize([question], STOP_WORDS), depth)
    query = encoder.encode([question])
    dense_ids, _ = dense_search(query, index.embeddings, depth)
    fused_ids, fused = reciprocal_rank_fusion([sparse_ids, dense_ids], len(index.chunks), depth)
    cosines = index.embeddings @ query[0]
    hits: dict[str, Hit] = {}
    for i, score in zip(fused_ids[0], fused[0]):
        chunk = index.chunks[int(i)]
        if score > 0 and chunk.section not in hits:
            hits[chunk.section] = Hit(
                chunk.section, chunk.title, chunk.text, float(score), float(cosines[i])
            )
    return list(hits.values())[:k]


def hand_recall(index: Index, k: int = 5, encoder: Any = None) -> tuple[float, int]:
    """(recall@k of the gold section, number of questions) on the hand-written evaluation
    questions whose gold sections are all lesson sections in this index."""
    from airoad.rag.corpus import load_questions

    encoder = encoder or _encoder()
    sections = {c.section for c in index.chunks}
    questions = [q for q in load_questions("hand") if q.gold and set(q.gold) <= sections]
    found = [any(h.section in q.gold for h in search(index, q.question, k, encoder))
             for q in questions]  # fmt: skip
    return (float(np.mean(found)) if found else float("nan")), len(found)


def is_answerable(hits: list[Hit]) -> bool:
    """Whether any retrieved section is close enough in meaning to answer from."""
    return bool(hits) and max(h.cosine for h in hits) >= MIN_COSINE


def section_label(section: str) -> str:
    """`lesson:char-gpt#What you will build` -> `char-gpt: What you will build`."""
    lab, _, heading = section.removeprefix("lesson:").partition("#")
    return f"{lab}: {heading}"


def to_json(question: str, hits: list[Hit], answer: str | None) -> str:
    rows = [
        {"section": h.section, "title": h.title, "fused": h.fused, "cosine": h.cosine} for h in hits
    ]
    return json.dumps({"question": question, "answer": answer, "sources": rows}, indent=2)
