"""Grader for rag-chatbot's vector stores: Chroma (embedded, HNSW searched exhaustively) and
PostgreSQL + pgvector (a real server on loopback, sequential scan) must return the same top-k
chunk ids as NumPy's exact search over real MiniLM vectors of the evaluation set; the Chroma
collection is reused by a second run, completed after an interrupted one, and survives two
runs at once."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from pg_testing import bin_dir, running

from airoad.rag import retrieval

REFERENCE = "airoad.rag.vector_stores"
K = 10
N_CHUNKS = (
    300  # a seeded sample of the corpus: exactness needs no gold chunks, and each costs MiniLM time
)
SMALL = 120  # chunks for the re-open tests (adding to Chroma dominates their time)


@pytest.fixture(scope="module")
def eval_set():
    """(chunk ids, chunk vectors, question vectors, NumPy's exact top-k ids per question)."""
    from airoad.labs.contract import RunContext
    from airoad.labs.runners import retrieval_parts
    from airoad.rag.corpus import load_corpus, load_questions

    questions, ctx, encoder = load_questions("hand"), RunContext(tempfile.mkdtemp()), []
    corpus = load_corpus()
    pick = np.random.default_rng(0).choice(len(corpus), N_CHUNKS, replace=False)
    chunks = [corpus[i] for i in sorted(pick.tolist())]
    texts = [f"{c.title}\n{c.text}" for c in chunks]
    docs = retrieval_parts.embeddings("chunk-embeddings", texts, 64, ctx, encoder)
    queries = retrieval_parts.embeddings(
        "question-embeddings", [q.question for q in questions], 64, ctx, encoder
    )
    ids = [c.id for c in chunks]
    exact = [[ids[i] for i in row] for row in retrieval.dense_search(queries, docs, K)[0]]
    return ids, docs, queries, exact


@pytest.fixture(scope="module")
def postgres(impl):
    yield from running(impl.PostgresServer)


def _mismatch(found, exact) -> str:
    bad = [i for i, (a, b) in enumerate(zip(found, exact, strict=True)) if a != b]
    return f"{len(bad)} of {len(exact)} queries differ from NumPy's exact top {K}, e.g. #{bad[:3]}"


def test_corpus_key_follows_ids_and_vectors(impl):
    """The corpus key is 16 hex digits that change with any id or any vector."""
    rng = np.random.default_rng(0)
    ids, vecs = ["a/0", "a/1", "b/0"], rng.normal(size=(3, 4)).astype(np.float32)
    key = impl.corpus_key(ids, vecs)
    assert len(key) == 16 and int(key, 16) >= 0
    assert impl.corpus_key(list(ids), vecs.astype(np.float64)) == key, "same corpus, same key"
    nudged = vecs.copy()
    nudged[2, 3] = np.nextafter(nudged[2, 3], np.float32(np.inf))
    others = {impl.corpus_key(["a/0", "a/1", "b/1"], vecs), impl.corpus_key(ids, nudged),
              impl.corpus_key(ids[:2], vecs[:2]), impl.corpus_key(["a/0a/1", "b/0"], vecs[:2])}  # fmt: skip
    assert key not in others and len(others) == 4, "a changed id or vector must change the key"


def test_vector_literal_reads_back_exactly(impl):
    """pgvector's text form of a float32 vector parses back to the same float32 numbers."""
    v = np.array([0.1, -1e-8, 3.4028235e38, 1 / 3, 0.0], dtype=np.float32)
    text = impl.vector_literal(v)
    assert text.startswith("[") and text.endswith("]") and " " not in text
    back = np.array(text[1:-1].split(","), dtype=np.float32)
    np.testing.assert_array_equal(back, v, err_msg="a float32 lost digits in the literal")


def test_chroma_exact_search_matches_numpy(impl, eval_set, tmp_path):
    """Chroma's top-k ids equal NumPy's exact cosine top k for every hand question."""
    ids, docs, queries, exact = eval_set
    store = impl.ChromaStore(tmp_path / "chroma", "eval")
    assert store.client.get_settings().anonymized_telemetry is False, "telemetry must be off"
    store.add(ids, docs, batch_size=150)
    assert store.count() == len(ids)
    found = store.search(queries, K)
    assert found == exact, _mismatch(found, exact)
    assert store.search(queries[:0], K) == []


def _small(eval_set):
    ids, docs, queries, _ = eval_set
    ids, docs = ids[:SMALL], docs[:SMALL]
    exact = [[ids[i] for i in row] for row in retrieval.dense_search(queries, docs, K)[0]]
    return ids, docs, queries, exact


def test_open_chroma_reuses_and_completes(impl, eval_set, tmp_path):
    """A second open reuses the collection; one cut short (a killed run) is completed."""
    ids, docs, queries, exact = _small(eval_set)
    store, reused = impl.open_chroma(tmp_path, ids, docs)
    assert not reused and store.count() == len(ids)
    again, reused = impl.open_chroma(tmp_path, ids, docs)
    assert reused and again.count() == len(ids), "the second run must reuse the collection"
    half = impl.ChromaStore(tmp_path / "cut", f"chunks-{impl.corpus_key(ids, docs)}")
    half.add(ids[: len(ids) // 2], docs[: len(ids) // 2])  # as if killed half-way
    store, reused = impl.open_chroma(tmp_path / "cut", ids, docs)
    assert not reused and store.count() == len(ids), "an incomplete collection is completed"
    assert store.search(queries, K) == exact
    other, reused = impl.open_chroma(tmp_path, ids[:-1], docs[:-1])
    assert not reused and other.count() == len(ids) - 1, "another corpus gets its own collection"


RUN = """
import importlib.util, sys, numpy as np
spec = importlib.util.spec_from_file_location("stores_under_test", sys.argv[1])
mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
ids = open(sys.argv[3]).read().split("\\n")
store, reused = mod.open_chroma(sys.argv[2], ids, np.load(sys.argv[4]))
print(reused, store.count())
"""


def test_two_runs_at_once_share_one_collection(impl, eval_set, tmp_path):
    """Two processes opening the store at once: one adds, the other reuses, nothing is lost."""
    ids, docs, queries, exact = _small(eval_set)
    (tmp_path / "ids.txt").write_text("\n".join(ids))
    np.save(tmp_path / "docs.npy", docs)
    cmd = [sys.executable, "-c", RUN, impl.__file__, str(tmp_path / "db"),
           str(tmp_path / "ids.txt"), str(tmp_path / "docs.npy")]  # fmt: skip
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]  # fmt: skip
    outs = [p.communicate(timeout=120) for p in procs]
    last = [(err.strip().splitlines() or ["no output"])[-1] for _, err in outs]
    assert all(p.returncode == 0 for p in procs), f"a run failed: {last}"
    lines = sorted(o.split()[-2:] and " ".join(o.split()[-2:]) for o, _ in outs)
    assert lines == [f"False {len(ids)}", f"True {len(ids)}"], f"two runs printed {lines}"
    store, reused = impl.open_chroma(tmp_path / "db", ids, docs)
    assert reused and store.search(queries, K) == exact


def test_pgvector_exact_search_matches_numpy(impl, eval_set, postgres):
    """pgvector's sequential-scan top-k ids equal NumPy's exact cosine top k."""
    import psycopg

    ids, docs, queries, exact = eval_set
    store = impl.PgVectorStore(postgres.dsn, table="eval_chunks")
    try:
        store.add(ids, docs)
        store.add(ids[:50], docs[:50])  # an upsert: no duplicate rows
        assert store.count() == len(ids)
        found = store.search(queries, K)
        assert found == exact, _mismatch(found, exact)
        plan = store.conn.execute(
            "EXPLAIN SELECT id FROM eval_chunks ORDER BY embedding <=> %s::vector LIMIT 3",
            (impl.vector_literal(queries[0]),),
        ).fetchall()
        assert "Seq Scan" in " ".join(r[0] for r in plan), "exact search is a sequential scan"
        with psycopg.connect(postgres.dsn) as other:  # committed: another session sees the rows
            assert other.execute("SELECT count(*) FROM eval_chunks").fetchone()[0] == len(ids)
    finally:
        store.close()


def test_postgres_runs_unprivileged_on_loopback(impl, postgres):
    """The server listens on 127.0.0.1 only and its processes never run as root."""
    import psycopg

    with psycopg.connect(postgres.dsn) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone()[0] == "127.0.0.1"
        assert int(conn.execute("SHOW port").fetchone()[0]) == postgres.port
        pid = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with open(f"/proc/{pid}/status") as status:  # while the backend serves this connection
            uid = next(int(line.split()[1]) for line in status if line.startswith("Uid:"))
    assert uid != 0, "PostgreSQL must run as an unprivileged user"
    assert postgres.folder.exists() and postgres.folder.stat().st_uid == uid


def test_postgres_start_failure_is_explained(impl):
    """A server that cannot start raises RuntimeError with PostgreSQL's log and leaves nothing."""
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        server = impl.PostgresServer(bin_dir(), port=busy.getsockname()[1])
        with pytest.raises(RuntimeError, match="(?s)did not start.*already in use"):
            server.start()
    assert server.folder is None, "a failed start must stop and forget its folder"


def test_server_of_a_killed_process_is_stopped_by_the_next_start(impl, tmp_path):
    """A server left running by a process killed with -9 is stopped and removed by the next start."""
    import signal
    import socket

    child = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_MAKER, impl.__file__, str(bin_dir())],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        line = child.stdout.readline().split()
        if not line:
            pytest.fail("the child process could not start a server")
        folder, port = Path(line[0]), int(line[1])
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert folder.exists(), "the killed process's server folder should still be there"
    for _ in running(impl.PostgresServer):
        assert not folder.exists(), "start() must remove the folder of a dead owner's server"
        with socket.socket() as probe:
            assert probe.connect_ex(("127.0.0.1", port)) != 0, "the orphaned server still listens"


ORPHAN_MAKER = """
import importlib.util, sys, time
spec = importlib.util.spec_from_file_location("store_under_test", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
server = module.PostgresServer(sys.argv[2]).start()
print(server.folder, server.port, flush=True)
time.sleep(600)
"""
