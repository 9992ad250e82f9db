"""`airoad ask`: the NumPy MiniLM, the lesson index and its cache, retrieval quality on a frozen
snapshot of the lessons, bad questions, and the answer path."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

from airoad import cli_ask
from airoad.errors import AiroadError
from airoad.rag import ask

SNAPSHOT = Path(__file__).parent / "data" / "lessons-2026-12-02.json.xz"
RECALL_AT_5 = 0.9  # the bar for hand-written questions about lessons


@pytest.fixture(scope="module")
def lessons() -> dict[str, str]:
    return json.loads(lzma.decompress(SNAPSHOT.read_bytes()))


@pytest.fixture(scope="module")
def torch_minilm():
    return ask.TorchMiniLM()


@pytest.fixture(scope="module")
def numpy_minilm():
    return ask._encoder()


@pytest.fixture(scope="module")
def snapshot_index(lessons, torch_minilm):
    """Built once per machine into the shared cache (about a minute of embedding), with both
    cores: the rest of the suite runs on one thread and leaves the other idle meanwhile."""
    import torch

    from airoad.home import data_dir

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        folder = data_dir() / "cache" / "ask-snapshot"
        return ask.cached_index(lessons, folder=folder, encoder=torch_minilm)[0]
    finally:
        torch.set_num_threads(threads)


class FakeEncoder:
    """Random unit vectors: for the cache tests, where the embeddings' meaning is irrelevant."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.calls = folder, 0

    def encode(self, texts, progress=None):
        self.calls += 1
        v = np.random.default_rng(len(texts)).standard_normal((len(texts), 384))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)


def test_numpy_minilm_equals_transformers(numpy_minilm, torch_minilm):
    """The NumPy encoder's sentence embeddings equal transformers' BertModel + mean pooling."""
    texts = [
        "How does the KV cache work?",
        "A longer sentence about attention and transformers, so that the batch needs padding "
        "and the mask has to keep the padded positions out of the mean.",
        "hi",
        "word " * 400,  # truncated at 256 word pieces by both
    ]
    ours, theirs = numpy_minilm.encode(texts), torch_minilm.encode(texts)
    np.testing.assert_allclose(ours, theirs, atol=2e-5, err_msg="NumPy MiniLM differs from torch")
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_passages_fit_the_model(snapshot_index, torch_minilm):
    """Every indexed passage is within PASSAGE_PIECES word pieces, counted by MiniLM's tokenizer."""
    tok = torch_minilm.tokenizer
    longest = max(len(tok(c.text)["input_ids"]) for c in snapshot_index.chunks)
    assert longest <= ask.PASSAGE_PIECES, f"a passage has {longest} word pieces"
    assert len(snapshot_index.chunks) == snapshot_index.embeddings.shape[0]


def test_recall_at_5_on_hand_questions(snapshot_index, numpy_minilm):
    """On the hand-written lesson questions, the gold section is in the top 5 at least 90%."""
    recall, n = ask.hand_recall(snapshot_index, 5, numpy_minilm)
    assert n >= 30, f"only {n} hand questions about the snapshot's lessons"
    assert recall >= RECALL_AT_5, f"recall@5 {recall:.3f} < {RECALL_AT_5} on {n} questions"


def test_off_topic_questions_are_not_answered(snapshot_index, numpy_minilm):
    """Keyboard mashing and questions no lesson covers fall below the similarity floor."""
    for question in ("asdf qwerty zxcv", "what is the capital of France", "how do I bake bread"):
        hits = ask.search(snapshot_index, question, 5, numpy_minilm)
        assert not ask.is_answerable(hits), f"{question!r} looked answerable: {hits[0]}"
    hits = ask.search(snapshot_index, "how does causal self-attention mask the future?", 5)
    assert ask.is_answerable(hits), "an on-topic question was judged unanswerable"


def test_index_is_cached_and_rebuilt_when_a_lesson_changes(tmp_path, numpy_minilm):
    """The cached index is reused for the same lessons and rebuilt when one lesson changes."""
    fake = FakeEncoder(numpy_minilm.folder)
    lessons = {
        "a": "# A\n\n## The key idea\n\nBM25 weighs rare words.\n",
        "b": "# B\n\n## Run it\n\nx\n",
    }
    first, built = ask.cached_index(lessons, folder=tmp_path, encoder=fake)
    again, built_again = ask.cached_index(lessons, folder=tmp_path, encoder=fake)
    assert built and not built_again and fake.calls == 1, "the same lessons were re-embedded"
    assert [c.id for c in again.chunks] == [c.id for c in first.chunks]
    changed = dict(lessons, a=lessons["a"] + "\nA new paragraph.\n")
    _, rebuilt = ask.cached_index(changed, folder=tmp_path, encoder=fake)
    assert rebuilt and fake.calls == 2, "a changed lesson did not rebuild the index"
    assert len(list(tmp_path.glob("lessons-*.pkl"))) == 1, "the stale index was kept"
    (tmp_path / f"lessons-{ask.lessons_key(changed)}.pkl").write_bytes(b"not a pickle")
    _, after_damage = ask.cached_index(changed, folder=tmp_path, encoder=fake)
    assert after_damage, "a damaged cache file was trusted"


def test_read_only_cache_still_answers(tmp_path, numpy_minilm):
    """A cache folder that cannot be written still returns a built index (rebuilt next time)."""
    fake = FakeEncoder(numpy_minilm.folder)
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    lessons = {"a": "# A\n\n## The key idea\n\nBM25 weighs rare words.\n"}
    index, built = ask.cached_index(lessons, folder=blocker / "ask", encoder=fake)
    assert built and len(index.chunks) == 1 and fake.calls == 1


@pytest.mark.parametrize(
    ("question", "words"),
    [("", "empty"), ("   \n ", "empty"), ("?!", "no words"), ("why " * 400, "1,000 characters")],
)
def test_bad_questions_get_one_clear_error(question, words):
    """An empty, wordless or huge question is one AiroadError sentence naming what to do."""
    with pytest.raises(AiroadError, match=words):
        ask.validate_question(question)


def test_cli_prints_sources_or_says_nothing_matches(monkeypatch, snapshot_index):
    """`ask --no-generate` lists the sections, or one sentence when nothing is close."""
    monkeypatch.setattr(cli_ask, "load_index", lambda console: (snapshot_index, False))
    console = Console(record=True, width=200)
    cli_ask.ask(console, "what does dropout do during training?", 3, False, False)
    text = console.export_text()
    assert "Lesson sections" in text and text.count("│ ") >= 3, text
    console = Console(record=True, width=200)
    cli_ask.ask(console, "asdf qwerty zxcv", 3, False, False)
    assert "No lesson section is close" in console.export_text()
    with pytest.raises(AiroadError, match="--top"):
        cli_ask.ask(console, "dropout", 0, False, False)


def test_answer_cites_numbered_passages(snapshot_index, numpy_minilm):
    """SmolLM2 gets the numbered passages and the question, and streams a non-empty answer."""
    from airoad.rag.ask_answer import generate_answer, prompt_messages

    hits = ask.search(snapshot_index, "what does dropout do during training?", 3, numpy_minilm)
    user = prompt_messages("what does dropout do?", hits)[1]["content"]
    assert "[1] " in user and "[3] " in user and user.endswith("Question: what does dropout do?")
    pieces: list[str] = []
    answer = generate_answer("what does dropout do?", hits, pieces.append, max_new_tokens=24)
    assert answer and "".join(pieces).strip() == answer, (answer, pieces)
