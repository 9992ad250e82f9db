"""The grading box: run learner code in a child process under limits the child cannot lift.

Three parts, all standard library so the child side stays light:

- the report channel. The parent sends the child its configuration (an HMAC key, the report
  fd, what to grade) through a pipe whose fd number is the only thing in the environment;
  the child pops that variable and reads the pipe before any learner code runs. The child
  writes HMAC-signed JSON lines to a second pipe. Nothing is in `sys.argv` or on disk, and a
  line the parent cannot verify marks the whole grading as tampered with.
- the supervisor (`python -m airoad.labs.grading_box PARENT FDS -- CMD...`): the leader of a
  fresh process group, between the parent and the test process. It asks Linux for a signal
  when the parent dies (PR_SET_PDEATHSIG) and polls `getppid` as well; either way it kills its
  whole group, grandchildren included. No learner code ever runs in it.
- `run_boxed`, the parent side: reads the child's output into a bounded tail, reads the signed
  records, and is the only judge of time, memory (resident memory of the whole group, read
  from /proc), CPU time and output size. A limit hit kills the group with SIGKILL, which
  Hypothesis, `try/except` or a signal handler cannot catch.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import selectors
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

BOX_FD_ENV = "AIROAD_BOX_FD"
TAIL_BYTES = 16_000  # the end of the child's output, kept to explain a crash
EXIT_GRACE = 30.0  # at most, seconds a child may take to exit after it said it finished
PROBE_EVERY = 0.2  # seconds between two reads of the group's memory and CPU time


@dataclass(frozen=True)
class Limits:
    test_seconds: float = 60.0  # per test (and for loading the learner's file)
    memory_mb: float = 2048.0  # resident memory of the whole process group
    cpu_seconds: float | None = None  # whole grading; None: start-up + per-test limit x tests
    output_mb: float = 10.0  # what the child may print
    startup_seconds: float = 60.0  # starting Python and collecting the tests

    @property
    def exit_grace(self) -> float:
        """Seconds a child may take to exit after it said it finished."""
        return min(EXIT_GRACE, self.test_seconds + 1)  # a normal exit never waits for it

    def cpu_cap(self, n_tests: int) -> float:
        if self.cpu_seconds is not None:
            return self.cpu_seconds
        return self.startup_seconds + self.test_seconds * max(n_tests, 1)


# ------------------------------------------------------------------ the signed channel


def _mac(key: bytes, body: bytes) -> str:
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def sign(key: bytes, record: dict) -> bytes:
    body = json.dumps(record, separators=(",", ":"), sort_keys=True).encode()
    return _mac(key, body).encode() + b" " + body + b"\n"


def verify(key: bytes, line: bytes) -> dict | None:
    mac, _, body = line.partition(b" ")
    if not hmac.compare_digest(mac, _mac(key, body).encode()):
        return None
    try:
        record = json.loads(body)
    except ValueError:
        return None
    return record if isinstance(record, dict) else None


class Channel:
    """The child's end: the configuration the parent sent, and a writer of signed records."""

    def __init__(self, config: dict):
        self._key = bytes.fromhex(config.pop("key"))
        self._fd = int(config.pop("report_fd"))
        self._lock = threading.Lock()
        self.config = config

    @classmethod
    def from_env(cls) -> Channel | None:
        raw = os.environ.pop(BOX_FD_ENV, None)  # gone before any learner code runs
        if raw is None:
            return None
        with os.fdopen(int(raw), "rb") as pipe:
            return cls(json.loads(pipe.read()))

    def send(self, record: dict) -> None:
        data = memoryview(sign(self._key, record))
        with self._lock:
            while data:
                data = data[os.write(self._fd, data) :]


# ------------------------------------------------------------------ the supervisor


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        import ctypes

        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, signal.SIGTERM, 0, 0, 0)  # 1 = PR_SET_PDEATHSIG


def _supervise(args: list[str]) -> None:
    parent, fds, command = int(args[0]), [int(f) for f in args[1].split(",") if f], args[3:]

    def end(*_: object) -> None:
        os.killpg(0, signal.SIGKILL)  # this process, the test process and its children

    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, end)
    _die_with_parent()
    if os.getppid() != parent:  # the parent died before the signal was armed
        end()
    child = subprocess.Popen(command, pass_fds=fds)
    for fd in fds:
        os.close(fd)
    while True:
        try:
            code = child.wait(timeout=0.5)
            break
        except subprocess.TimeoutExpired:
            if os.getppid() != parent:
                end()
    sys.stdout.flush()
    os._exit(code if code >= 0 else 128 - code)  # a signal n becomes 128 + n, as in a shell


# ------------------------------------------------------------------ the parent side


@dataclass
class BoxRun:
    """What one boxed child did: its signed records and how it ended."""

    records: list[dict] = field(default_factory=list)
    exit_code: int | None = None  # the test process: >= 0 its exit code, < 0 a signal
    stopped: str = ""  # the limit that ended it: test, memory, cpu, output, deadline, exit
    running: str | None = None  # the test running when it ended
    output_tail: str = ""
    cpu_seconds: float = 0.0
    forged: int = 0  # lines on the report pipe that the grader did not sign
    cpu_limit: float = 0.0  # CPU seconds allowed to the whole grading

    def last(self, kind: str) -> dict | None:
        return next((r for r in reversed(self.records) if r.get("t") == kind), None)


def group_usage(pgid: int) -> tuple[float, float] | None:
    """(resident MB, CPU seconds) of every process in group `pgid`; None without /proc."""
    rss = ticks = 0
    try:
        names = os.listdir("/proc")
    except OSError:
        return None
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) < 22 or int(fields[2]) != pgid:
            continue
        ticks += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
        rss += int(fields[21])
    return rss * os.sysconf("SC_PAGE_SIZE") / 2**20, ticks / os.sysconf("SC_CLK_TCK")


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _send_config(fd: int, payload: bytes) -> None:
    with contextlib.suppress(OSError), os.fdopen(fd, "wb") as pipe:
        pipe.write(payload)


class _Reader:
    """Drains the child's output (bounded tail) and report (signed lines) pipes."""

    def __init__(self, out_fd: int, rep_fd: int, key: bytes, run: BoxRun):
        self.sel = selectors.DefaultSelector()
        for fd in (out_fd, rep_fd):
            os.set_blocking(fd, False)
            self.sel.register(fd, selectors.EVENT_READ)
        self.out_fd, self.rep_fd, self.key, self.run = out_fd, rep_fd, key, run
        self.out_total, self.tail, self.partial = 0, bytearray(), b""
        self.new: list[dict] = []

    def pump(self, wait: float) -> bool:
        """Read what is ready; False once both pipes are closed."""
        if not self.sel.get_map():
            time.sleep(wait)
            return False
        for key, _ in self.sel.select(wait):
            try:
                data = os.read(key.fd, 1 << 16)
            except BlockingIOError:
                continue
            if not data:
                self.sel.unregister(key.fd)
            elif key.fd == self.out_fd:
                self.out_total += len(data)
                self.tail += data
                del self.tail[:-TAIL_BYTES]
            else:
                *lines, self.partial = (self.partial + data).split(b"\n")
                for line in lines:
                    record = verify(self.key, line)
                    if record is None:
                        self.run.forged += 1
                    else:
                        self.run.records.append(record)
                        self.new.append(record)
        return bool(self.sel.get_map())

    def close(self) -> None:
        self.sel.close()
        os.close(self.rep_fd)  # the output pipe is the Popen's to close


def run_boxed(
    command: list[str],
    *,
    env: dict[str, str],
    cwd: str,
    limits: Limits,
    config: dict,
    cpu_before: float = 0.0,
    cpu_limit: float | None = None,
    first_test_extra: float = 0.0,
    stop_on: str = "",
) -> BoxRun:
    """Run `command` boxed; `config` reaches the child through `Channel.from_env()`.

    `cpu_before` is what earlier runs of the same grading used of `cpu_limit` (None: start-up
    + per-test limit x collected tests). The first test of a run may take `first_test_extra`
    more seconds for its setup (the session's fixtures: importing torch, loading datasets);
    once its call phase starts it has the per-test limit like any other test."""
    run, key = BoxRun(), secrets.token_bytes(32)
    cfg_r, cfg_w = os.pipe()
    rep_r, rep_w = os.pipe()
    supervisor = [sys.executable, "-m", "airoad.labs.grading_box", str(os.getpid())]
    proc = subprocess.Popen(
        [*supervisor, f"{cfg_r},{rep_w}", "--", *command],
        cwd=cwd,
        env={**env, BOX_FD_ENV: str(cfg_r)},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=(cfg_r, rep_w),
        start_new_session=True,
    )
    os.close(cfg_r)
    os.close(rep_w)
    payload = json.dumps({**config, "key": key.hex(), "report_fd": rep_w}).encode()
    threading.Thread(target=_send_config, args=(cfg_w, payload), daemon=True).start()
    reader = _Reader(proc.stdout.fileno(), rep_r, key, run)
    try:
        _watch(proc, reader, run, limits, (cpu_before, cpu_limit, first_test_extra, stop_on))
    finally:
        _kill_group(proc.pid)
        proc.wait()
        end = time.monotonic() + 2.0
        while time.monotonic() < end and reader.pump(0.05):
            pass
        reader.close()
        proc.stdout.close()
    code = proc.returncode  # < 0: the supervisor itself was killed (by us, or the group was)
    run.exit_code = 128 - code if code >= 128 else code  # the supervisor's 128 + n is signal n
    for record in run.records:
        if record.get("t") == "start":
            run.running = str(record.get("id"))
        elif record.get("t") == "end":
            run.running = None
    run.output_tail = reader.tail.decode("utf-8", "replace")
    return run


def _watch(proc, reader: _Reader, run: BoxRun, limits: Limits, options: tuple) -> None:
    cpu_before, cpu_limit, first_extra, stop_on = options
    now = time.monotonic()
    deadline = now + limits.startup_seconds
    test_deadline = finished = next_probe = 0.0
    running, first = False, True
    run.cpu_limit = cpu_limit if cpu_limit is not None else limits.cpu_cap(0)
    while proc.poll() is None:
        reader.pump(0.05)
        now = time.monotonic()
        for record in reader.new:
            kind = record.get("t")
            if kind == "collected":
                n_run = len(record.get("selected", []))
                deadline = now + limits.test_seconds * n_run + limits.startup_seconds + first_extra
                if cpu_limit is None:
                    run.cpu_limit = limits.cpu_cap(len(record.get("ids", [])))
            elif kind == "start":
                extra, first = (first_extra if first else 0.0), False
                running, test_deadline = True, now + limits.test_seconds + extra
                deadline = max(deadline, test_deadline + 1)  # the test's own limit decides
            elif kind == "call" and running:
                test_deadline = min(test_deadline, now + limits.test_seconds)
            elif kind == "end":
                running = False
            elif kind == "finished":
                finished = now
            if kind == stop_on:
                return
        reader.new.clear()
        if reader.out_total > limits.output_mb * 2**20:
            run.stopped = "output"
        elif running and now > test_deadline:
            run.stopped = "test"
        elif finished and now - finished > limits.exit_grace:
            run.stopped = "exit"
        elif now > deadline:
            run.stopped = "deadline"
        elif now >= next_probe:
            next_probe = now + PROBE_EVERY
            usage = group_usage(proc.pid)
            if usage is not None:
                rss, run.cpu_seconds = usage
                if rss > limits.memory_mb:
                    run.stopped = "memory"
                elif cpu_before + run.cpu_seconds > run.cpu_limit:
                    run.stopped = "cpu"
        if run.stopped:
            return


if __name__ == "__main__":
    _supervise(sys.argv[1:])
