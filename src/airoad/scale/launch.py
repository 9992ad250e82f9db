"""Start gloo process groups of CPU workers and get their results back (infrastructure, not an
exercise: the scale labs, their runners and their tests import it).

Two ways in:

- ``WorkerGroup(n)``: spawns ``n`` workers with ``torch.multiprocessing`` (spawn), joins them
  into one gloo group through a ``TCPStore`` the parent holds on a free loopback port (no port
  race: the OS picks it and the parent keeps it open), and keeps them alive, so many calls
  share one start-up. ``group.run(fn, *args)`` runs ``fn(rank, world_size, *args)`` on every
  rank and returns the ``n`` results in rank order. ``fn`` must be importable by name (a
  module-level function), because the workers unpickle it.
  A worker that raises, dies or hangs past the collective timeout becomes one ``WorkerError``
  naming the rank and the exception; the group is then torn down and the next ``run`` starts a
  fresh one. ``close()`` (or leaving the ``with`` block, or the interpreter exiting) always
  tears it down.
- ``torchrun(module, nproc, args)``: runs ``python -m torch.distributed.run
  --nproc_per_node=nproc -m module args...`` on a free port, as a user would, and raises a
  ``WorkerError`` with the end of its output if it fails or runs past ``timeout``. Inside such a
  worker, ``init_from_env()`` joins the gloo group torchrun describes in the environment.

Results travel as plain pickles over one pipe per worker (tensors are copied, not shared).
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import traceback
import weakref
from collections.abc import Callable, Sequence
from datetime import timedelta
from multiprocessing.connection import Connection, wait
from typing import Any

from airoad.errors import AiroadError

COLLECTIVE_TIMEOUT = 30.0  # seconds a collective may wait for its peers before it fails
START_TIMEOUT = 120.0  # seconds for every worker to start Python, import torch and join
GRACE = 5.0  # seconds past the collective timeout before a silent worker counts as hung


class WorkerError(AiroadError):
    """A worker of a process group raised, died or hung; the message names the rank."""

    def __init__(self, message: str, rank: int | None = None, details: str = ""):
        super().__init__(message)
        self.rank = rank
        self.details = details  # the worker's traceback or output, for a longer look


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (for torchrun's rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _loopback_env() -> None:
    """Make gloo talk over loopback: a container's hostname may not resolve to a usable address."""
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")


def _send(conn: Connection, obj: Any) -> None:
    conn.send_bytes(pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))


def _worker_main(rank: int, world_size: int, port: int, timeout: float, conn: Connection) -> None:
    """A spawned worker: join the group, then run tasks from the pipe until told to stop."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)  # N workers share the machine's cores
    _loopback_env()
    try:
        store = dist.TCPStore("127.0.0.1", port, world_size, is_master=False)
        dist.init_process_group(
            "gloo",
            store=store,
            rank=rank,
            world_size=world_size,
            timeout=timedelta(seconds=timeout),
        )
        _send(conn, ("ready", None))
        while True:
            task = pickle.loads(conn.recv_bytes())
            if task is None:
                break
            fn, args = task
            try:
                _send(conn, ("ok", fn(rank, world_size, *args)))
            except BaseException as exc:  # noqa: BLE001 -- every failure goes back to the parent
                first = (str(exc).strip().splitlines() or [""])[0]  # one line; the rest in details
                _send(conn, ("error", (f"{type(exc).__name__}: {first}", traceback.format_exc())))
    except (EOFError, OSError, KeyboardInterrupt):
        pass  # the parent went away or closed the group: nothing left to report to
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        conn.close()


def _context():
    """Where workers come from: a fork server that imported torch once, so a group (and every
    group after it in this interpreter) starts in a fraction of a second; plain spawn where
    there is no fork server (Windows). Either way a worker unpickles its task by name."""
    import torch.multiprocessing as mp

    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


# Imported once by the fork server, before it forks any worker. torch._dynamo is what the first
# DistributedDataParallel(...) would import in every worker (about 1.5 CPU-seconds each).
_PRELOAD = ["torch", "torch.distributed", "torch._dynamo", "airoad.scale.launch"]


def preload(*modules: str) -> None:
    """Have the fork server import ``modules`` too (only before the first group starts), so
    each worker does not import them again when it unpickles its first task."""
    _PRELOAD.extend(m for m in modules if m not in _PRELOAD)


def _teardown(procs: list, conns: list[Connection], store: Any) -> None:
    """Stop every worker: ask politely, then terminate, then kill; close pipes and the store."""
    for conn in conns:
        try:
            _send(conn, None)
        except (OSError, ValueError):
            pass
    for proc in procs:
        proc.join(timeout=2.0)
        if proc.is_alive():
            proc.terminate()
            proc.join(timeout=1.0)
        if proc.is_alive():
            proc.kill()
            proc.join()
    for conn in conns:
        conn.close()
    procs.clear()
    conns.clear()
    del store  # the parent's store (and its port) goes with the group


class WorkerGroup:
    """``world_size`` spawned CPU workers in one gloo process group, reused across ``run`` calls.

    >>> with WorkerGroup(2) as group:            # doctest: +SKIP
    ...     group.run(my_module.fn, tensor)      # [fn(0, 2, tensor), fn(1, 2, tensor)]
    """

    def __init__(self, world_size: int, timeout: float = COLLECTIVE_TIMEOUT):
        if not 1 <= world_size <= 64:
            raise AiroadError(f"world_size is {world_size}: choose between 1 and 64 workers")
        self.world_size = world_size
        self.timeout = float(timeout)
        self._procs: list = []
        self._conns: list[Connection] = []
        self._store: Any = None
        self._finalizer: weakref.finalize | None = None

    @property
    def alive(self) -> bool:
        return bool(self._procs)

    def start(self) -> WorkerGroup:
        """Spawn the workers and wait until every one has joined the group (no-op if running)."""
        if self.alive:
            return self
        import torch.distributed as dist

        _loopback_env()
        # port=0: the OS picks a free port and the parent keeps it bound, so nothing can steal it
        self._store = dist.TCPStore(
            "127.0.0.1", 0, self.world_size + 1, is_master=True, wait_for_workers=False
        )
        ctx = _context()
        for rank in range(self.world_size):
            parent_end, child_end = ctx.Pipe()
            args = (rank, self.world_size, self._store.port, self.timeout, child_end)
            proc = ctx.Process(target=_worker_main, args=args, daemon=True)
            proc.start()
            child_end.close()
            self._procs.append(proc)
            self._conns.append(parent_end)
        self._finalizer = weakref.finalize(self, _teardown, self._procs, self._conns, self._store)
        self._collect(START_TIMEOUT, "start and join the group")
        return self

    def run(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """``[fn(rank, world_size, *args) for every rank]``, run at once on all workers."""
        self.start()
        for conn in self._conns:
            _send(conn, (fn, args))
        return self._collect(self.timeout + GRACE, f"run {getattr(fn, '__name__', fn)}")

    def _collect(self, seconds: float, what: str) -> list[Any]:
        """One message per rank; the first error, death or the deadline tears the group down."""
        import time

        results: dict[int, Any] = {}
        deadline = time.monotonic() + seconds
        while len(results) < self.world_size:
            waiting = {self._conns[r]: r for r in range(self.world_size) if r not in results}
            ready = wait(list(waiting), timeout=max(0.0, deadline - time.monotonic()))
            if not ready:
                ranks = ", ".join(map(str, sorted(waiting.values())))
                self._fail(
                    f"rank {ranks} of {self.world_size} did not {what} within {seconds:g} s "
                    "(a collective waiting for a peer that never joins it?); the group was "
                    "torn down",
                    rank=min(waiting.values()),
                )
            for conn in ready:
                rank = waiting[conn]  # type: ignore[index]
                try:
                    kind, payload = pickle.loads(conn.recv_bytes())
                except (EOFError, OSError):
                    self._procs[rank].join(timeout=1.0)
                    code = self._procs[rank].exitcode
                    self._fail(
                        f"rank {rank} of {self.world_size} died (exit code {code}) before it "
                        f"could {what}; the group was torn down",
                        rank=rank,
                    )
                if kind == "error":
                    summary, trace = payload
                    self._fail(f"rank {rank} of {self.world_size} raised {summary}", rank, trace)
                results[rank] = payload
        return [results[r] for r in range(self.world_size)]

    def _fail(self, message: str, rank: int | None = None, details: str = "") -> None:
        for proc in self._procs:  # peers may be stuck in a collective: no polite goodbye
            proc.terminate()
        self.close()
        raise WorkerError(message, rank=rank, details=details)

    def close(self) -> None:
        """Tear the group down (safe to call twice); a later ``run`` starts a new one."""
        if self._finalizer is not None:
            self._finalizer()  # runs _teardown once, however many times close is called
            self._finalizer = None
        self._store = None

    def __enter__(self) -> WorkerGroup:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def init_from_env(timeout: float = COLLECTIVE_TIMEOUT) -> tuple[int, int]:
    """Inside a torchrun worker: join the gloo group from RANK/WORLD_SIZE/MASTER_*; (rank, size)."""
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    _loopback_env()
    dist.init_process_group("gloo", timeout=timedelta(seconds=timeout))
    return dist.get_rank(), dist.get_world_size()


def torchrun(
    module: str, nproc: int, args: Sequence[str] = (), timeout: float = 600.0
) -> subprocess.CompletedProcess:
    """Run ``torchrun --nproc_per_node=nproc -m module args...`` on a free loopback port.

    The workers inherit this environment (data paths included); their output is captured.
    Raises ``WorkerError`` with the end of the output when torchrun fails or exceeds ``timeout``.
    """
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={nproc}",
        "--nnodes=1",
        "--master_addr=127.0.0.1",
        f"--master_port={free_port()}",
        "-m",
        module,
        *args,
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if sys.platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired as exc:
        raise WorkerError(
            f"torchrun {module} ran past {timeout:g} s and was stopped", details=str(exc.output)
        ) from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout or "").strip().splitlines()[-20:]
        last = next((ln for ln in reversed(tail) if "Error" in ln), tail[-1] if tail else "")
        raise WorkerError(
            f"torchrun {module} failed (exit {done.returncode}): {last.strip()}",
            details="\n".join(tail),
        )
    return done
