"""Persistent vector stores: the same add / search interface over Chroma (embedded, a folder on
disk) and PostgreSQL with pgvector (a server), plus a throwaway PostgreSQL for tests and runs.

- A store keeps (id, vector) pairs and answers "the k ids nearest to this query". We pass our
  own MiniLM unit vectors in (Chroma gets no embedding function), so both stores rank by the
  cosine distance ``1 - q . d`` and must agree with NumPy's exact ``q @ D.T`` top k.
- Chroma indexes with HNSW, a graph walk that is approximate in general: it visits about
  ``ef_search`` candidates. With ``ef_search`` at least the number of stored vectors (a few
  thousand here) the walk reaches every vector and the search is exact.
- pgvector without an index scans every row (``ORDER BY embedding <=> q LIMIT k``): exact, and
  O(N) per query; an HNSW or IVFFlat index would trade exactness for speed as Chroma does.
- A collection is named after a hash of its ids and vectors, so a second run finds the one the
  first run filled and skips the add; a file lock makes two runs at once take turns, and
  ``upsert`` makes a run killed half-way harmless (the next one completes the collection).
- PostgreSQL refuses to run as root. As root, its binaries run as the unprivileged ``nobody``
  in a fresh folder that user owns; on a free loopback port; stopped and removed by ``stop``.
  A process killed before ``stop`` (kill -9) leaves its server running: the folder records its
  owner's pid, and the next ``start`` stops and removes servers whose owner is gone.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from airoad.home import file_lock

DIM = 384  # all-MiniLM-L6-v2's vector width
UNPRIVILEGED = "nobody"
OWNER = "owner.pid"  # in each server folder: the pid of the process that started it


def corpus_key(ids: Sequence[str], vectors: np.ndarray) -> str:
    """A 16-hex-digit sha256 of the ids (joined by newlines) and the float32 vector bytes: equal
    for the same corpus, different as soon as one id or one vector changes."""
    h = hashlib.sha256("\n".join(ids).encode())
    h.update(np.ascontiguousarray(vectors, dtype=np.float32).tobytes())
    return h.hexdigest()[:16]


class ChromaStore:
    """A Chroma collection in a ``chromadb.PersistentClient`` folder, cosine space, no embedding
    function (vectors come from us), telemetry off, HNSW searched with ``ef_search``."""

    def __init__(self, path: str | Path, name: str, ef_search: int = 4096) -> None:
        import chromadb
        from chromadb.config import Settings

        self.client = chromadb.PersistentClient(
            path=str(path), settings=Settings(anonymized_telemetry=False)
        )
        hnsw = {"space": "cosine", "ef_search": ef_search, "ef_construction": 200}
        self.collection = self.client.get_or_create_collection(
            name, embedding_function=None, configuration={"hnsw": hnsw}
        )

    def add(self, ids: Sequence[str], vectors: np.ndarray, batch_size: int = 1000) -> None:
        """Upsert ``ids`` with their (N, d) ``vectors`` in batches (an id already stored is
        overwritten, never duplicated)."""
        for i in range(0, len(ids), batch_size):
            self.collection.upsert(
                ids=list(ids[i : i + batch_size]),
                embeddings=np.asarray(vectors[i : i + batch_size], dtype=np.float32),
            )

    def count(self) -> int:
        """Number of stored vectors."""
        return self.collection.count()

    def search(self, queries: np.ndarray, k: int) -> list[list[str]]:
        """The ``k`` nearest stored ids to each of the (Q, d) ``queries``, nearest first."""
        if len(queries) == 0:
            return []
        out = self.collection.query(
            query_embeddings=np.asarray(queries, dtype=np.float32),
            n_results=min(k, self.count()),
            include=[],
        )
        return out["ids"]


def open_chroma(
    path: str | Path, ids: Sequence[str], vectors: np.ndarray, ef_search: int = 4096
) -> tuple[ChromaStore, bool]:
    """(store, reused): the collection ``chunks-<corpus_key>`` under ``path``, filled with
    ``ids`` / ``vectors`` unless an earlier run already stored all of them (``reused`` True).
    The check and the add happen under an exclusive lock on ``path/.lock``, so two runs at once
    take turns and the second one reuses what the first added."""
    path = Path(path)
    with file_lock(path / ".lock"):
        store = ChromaStore(path, f"chunks-{corpus_key(ids, vectors)}", ef_search)
        reused = store.count() == len(ids)
        if not reused:
            store.add(ids, vectors)
    return store, reused


class PgVectorStore:
    """A PostgreSQL table ``(id text primary key, embedding vector(d))`` searched by cosine
    distance ``<=>`` with no index: a sequential scan, exact."""

    def __init__(self, dsn: str, table: str = "chunks", dim: int = DIM) -> None:
        import psycopg

        self.conn = psycopg.connect(dsn, autocommit=True)
        self.table, self.dim = table, dim
        self.conn.execute("CREATE EXTENSION IF NOT EXISTS vector")

    def add(self, ids: Sequence[str], vectors: np.ndarray) -> None:
        """Create the table if needed and upsert the rows with one ``COPY`` into a temporary
        table (far faster than one INSERT per row)."""
        t = self.table
        with self.conn.transaction():
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {t} (id text PRIMARY KEY, embedding vector({self.dim}))"
            )
            self.conn.execute(f"CREATE TEMP TABLE {t}_new (LIKE {t}) ON COMMIT DROP")
            with self.conn.cursor().copy(f"COPY {t}_new (id, embedding) FROM STDIN") as copy:
                for i, v in zip(ids, np.asarray(vectors, dtype=np.float32), strict=True):
                    copy.write_row((i, vector_literal(v)))
            self.conn.execute(
                f"INSERT INTO {t} SELECT * FROM {t}_new ON CONFLICT (id) "
                "DO UPDATE SET embedding = EXCLUDED.embedding"
            )

    def count(self) -> int:
        """Number of stored rows."""
        return self.conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()[0]

    def search(self, queries: np.ndarray, k: int) -> list[list[str]]:
        """The ``k`` nearest ids to each query by ``embedding <=> query``, nearest first (ties
        by id, so the order is deterministic)."""
        sql = f"SELECT id FROM {self.table} ORDER BY embedding <=> %s::vector, id LIMIT %s"
        out = []
        for q in np.asarray(queries, dtype=np.float32):
            out.append([r[0] for r in self.conn.execute(sql, (vector_literal(q), k))])
        return out

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()


def vector_literal(v: np.ndarray) -> str:
    """pgvector's text form ``[x1,x2,...]``, each float32 written with 9 significant digits
    (enough to read back the same float32)."""
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(v, dtype=np.float32).tolist()) + "]"


def free_port() -> int:
    """A TCP port on 127.0.0.1 the kernel says is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    """A throwaway PostgreSQL: ``initdb`` into a fresh temporary folder (under /tmp as root),
    ``pg_ctl start`` on a free loopback port, trust authentication for user ``postgres``;
    ``stop`` shuts it down and deletes the folder. As root every binary runs as ``nobody``
    (PostgreSQL refuses root)."""

    def __init__(self, bin_dir: str | Path, port: int = 0) -> None:
        self.bin_dir, self.port = Path(bin_dir), port or free_port()
        self.folder: Path | None = None

    @property
    def dsn(self) -> str:
        """The libpq connection string of the running server."""
        return f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        """initdb + start (waits until it accepts connections); on failure stop, then raise
        ``RuntimeError`` with the server's own log."""
        root = os.geteuid() == 0  # then /tmp: nobody may not reach into $TMPDIR's parents
        parent = Path("/tmp" if root else tempfile.gettempdir())
        self.sweep_orphans(parent)
        self.folder = Path(tempfile.mkdtemp(prefix="airoad-pg-", dir=parent))
        (self.folder / OWNER).write_text(str(os.getpid()))
        if root:
            os.chown(self.folder, *_ids(UNPRIVILEGED))
        data, log = self.folder / "data", self.folder / "log"
        try:
            self._run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "utf8",
                      timeout=timeout)  # fmt: skip
            opts = f"-h 127.0.0.1 -p {self.port} -k {self.folder} -c fsync=off"
            self._run("pg_ctl", "-D", data, "-l", log, "-o", opts, "-w", "-t", int(timeout),
                      "start", timeout=timeout + 5)  # fmt: skip
        except (subprocess.SubprocessError, OSError) as exc:
            text = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            self.stop()
            raise RuntimeError(f"PostgreSQL did not start: {exc}\n{text}") from exc
        return self

    def stop(self) -> None:
        """Fast shutdown (if running) and removal of the folder; safe to call twice."""
        if self.folder is None:
            return
        if (self.folder / "data" / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", self.folder / "data", "-m", "immediate", "-w", "stop",
                          timeout=30)  # fmt: skip
            except (subprocess.SubprocessError, OSError):
                pass  # nothing more to do; the folder goes anyway
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None

    def sweep_orphans(self, parent: Path) -> list[Path]:
        """Stop and remove the servers under ``parent`` whose starting process has died (killed
        before it could call ``stop``); returns their folders. Live owners are left alone."""
        swept = []
        for folder in sorted(parent.glob("airoad-pg-*")):
            try:
                owner = int((folder / OWNER).read_text())
            except (OSError, ValueError):
                continue  # not ours, or still being created
            if _alive(owner):
                continue
            orphan = PostgresServer(self.bin_dir)
            orphan.folder = folder
            orphan.stop()
            swept.append(folder)
        return swept

    def _run(self, exe: str, *args: Any, timeout: float) -> None:
        user = {"user": UNPRIVILEGED, "group": _group()} if os.geteuid() == 0 else {}
        subprocess.run([str(self.bin_dir / exe), *map(str, args)], check=True, timeout=timeout,
                       capture_output=True, cwd=self.folder, **user)  # fmt: skip

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _ids(user: str) -> tuple[int, int]:
    import pwd

    entry = pwd.getpwnam(user)
    return entry.pw_uid, entry.pw_gid


def _group() -> int:
    return _ids(UNPRIVILEGED)[1]
