"""Hostile learner code against `airoad check`: it must finish, say why, and stay in its box.

Each case grades a learner's copy of the tiny fixture lab (tests/labs/fixtures/boxlab) for
real, with 1-2 s limits where a hang is the point. Issue 8, sections 1 and 3.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from airoad.cli import app

sys.path.insert(0, str(Path(__file__).parent / "fixtures" / "boxlab"))
import boxlab_harness as h  # noqa: E402

runner = CliRunner()
LIMITS = ("--timeout", "20")  # generous: a loaded machine must not fail these by accident


@pytest.fixture(autouse=True)
def lab(monkeypatch):
    h.register(monkeypatch.setattr)
    for key, value in h.child_env().items():
        monkeypatch.setenv(key, value)


def check(tmp_path: Path, source: str, *extra: str):
    path = tmp_path / "boxlab_ref.py"
    path.write_text(source, encoding="utf-8")
    result = runner.invoke(app, ["check", h.LAB, "--file", str(path), *extra])
    assert "Traceback" not in result.output, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def add_body(body: str) -> str:
    return h.with_body(h.reference(), "add", body)


# ------------------------------------------------------------------ section 1: finish, say why


def test_copy_of_the_reference_passes_in_the_box(tmp_path):
    """A copy passes although it prints without a newline at import and writes relative files,
    and its worker process runs; the relative files land in a scratch folder, not the checkout."""
    marker = f"box-marker-{os.getpid()}.txt"
    source = h.reference().replace(
        "import subprocess\n",
        f"import subprocess\nprint('loading', end='')\nopen({marker!r}, 'w').write('x')\n",
    )
    source = h.with_body(source, "add", f"open({marker!r}, 'a').write('y')\nreturn a + b")
    try:
        result = check(tmp_path, source, *LIMITS)
        assert result.exit_code == 0, result.output
        assert "5 passed, 0 failed" in result.output and "✓ test_worker" in result.output
        assert not (h.REPO / marker).exists() and not Path(marker).exists()
        assert not (tmp_path / marker).exists()
    finally:
        for where in (h.REPO / marker, Path(marker)):
            where.unlink(missing_ok=True)


def test_endless_loop_under_hypothesis_stops_at_the_per_test_limit(tmp_path):
    """Hypothesis swallows pytest-timeout's alarm; the box's kill cannot be swallowed."""
    started = time.monotonic()
    result = check(tmp_path, add_body("while a < 0:\n    pass\nreturn a + b"), "--timeout", "1")
    assert result.exit_code == 1
    assert "✗ test_add_any: took longer than 1 s, the per-test limit" in result.output
    assert "✓ test_add" in result.output and "4 passed, 1 failed" in result.output
    assert time.monotonic() - started < 60


def test_thread_left_running_after_the_tests_is_reported(tmp_path):
    """A non-daemon thread that never ends keeps the test process alive: one sentence."""
    source = h.reference().replace(
        "import sys\n",
        "import sys\nimport threading\nimport time\n"
        "threading.Thread(target=time.sleep, args=(10**6,)).start()\n",
    )
    result = check(tmp_path, source, "--timeout", "1")
    assert result.exit_code == 1
    assert "did not exit within 2 s after the tests finished" in result.output


def test_failure_reasons_carry_the_messages_and_no_markup_is_read(tmp_path):
    """np.testing's err_msg, an assert's own message and the first of Hypothesis' distinct
    failures are shown; `[/x]` in an exception and ids like `[uniform]` print as text."""
    source = add_body(
        "if a == 2:\n"
        "    raise RuntimeError('[/x] boom [bold]')\n"
        "if a < -50:\n"
        "    raise ValueError(f'negative a={a}')\n"
        "return a - b if a > 50 else a + b"
    )
    source = h.with_body(source, "scale", "return [x * k + 1 for x in xs]")
    result = check(tmp_path, source, *LIMITS)
    out = result.output
    assert result.exit_code == 1
    assert "✗ test_add: RuntimeError: [/x] boom [bold]" in out
    assert "✗ test_scale[uniform]: AssertionError: Not equal to tolerance" in out
    assert "scale must multiply each item by 2.0" in out and "ACTUAL: array([3., 5.])" in out
    assert "distinct failures" not in out
    assert "must be" in out.split("✗ test_add_any:")[1] or "negative a=" in out
    assert "Failing test case" in out or "Falsifying example" in out
    assert "✓ test_worker" in out and "1 passed, 4 failed" in out


@pytest.mark.parametrize(
    "option, value",
    [("--timeout", "0"), ("--timeout", "-3"), ("--timeout", "nan"), ("--memory-mb", "0")]
    + [("--cpu-seconds", "-1"), ("--output-mb", "inf")],
)
def test_bad_limit_is_one_sentence(tmp_path, option, value):
    """A limit that is zero, negative or not finite is refused before anything runs."""
    result = check(tmp_path, h.reference(), option, value)
    assert result.exit_code == 1
    assert f"{option} must be a positive number" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_bad_file_arguments_are_one_sentence(tmp_path):
    """--file naming a folder, a file that is not UTF-8, --dir naming a file."""
    folder = runner.invoke(app, ["check", h.LAB, "--file", str(tmp_path)])
    assert folder.exit_code == 1 and "is a folder" in folder.output
    latin = tmp_path / "boxlab_ref.py"
    for text in ("# café\n" + h.reference(), h.reference() + "# café\n"):  # line 1 or later
        latin.write_bytes(text.encode("latin-1"))
        result = runner.invoke(app, ["check", h.LAB, "--file", str(latin)])
        assert result.exit_code == 1 and "is not UTF-8 text (byte 0xe9" in result.output
    as_dir = runner.invoke(app, ["check", h.LAB, "--dir", str(latin)])
    assert as_dir.exit_code == 1 and "is a file, not a folder" in as_dir.output
    for r in (folder, result, as_dir):
        assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1


# ------------------------------------------------------------------ section 3: the box's limits

GREEDY = "if a == 2:\n    return a + b\n"  # test_add passes; the Hypothesis test (last) misbehaves


def test_memory_limit_of_the_process_group(tmp_path):
    body = (
        GREEDY + "keep = []\nwhile True:\n    keep.append(b'x' * 20_000_000)\n    time.sleep(0.02)"
    )
    source = add_body(body).replace("import sys\n", "import sys\nimport time\n")
    result = check(tmp_path, source, "--memory-mb", "300", *LIMITS)
    assert result.exit_code == 1
    assert "✗ test_add_any: the test processes used more than 300 MB of memory" in result.output


def test_output_limit(tmp_path):
    result = check(
        tmp_path, add_body(GREEDY + "while True:\n    print('x' * 1000)"), "--output-mb", "1"
    )
    assert result.exit_code == 1
    assert "✗ test_add_any: printed more than 1 MB, the output limit" in result.output


def test_cpu_time_limit(tmp_path):
    body = GREEDY + "while True:\n    pass"
    result = check(tmp_path, add_body(body), "--cpu-seconds", "2", "--timeout", "60")
    assert result.exit_code == 1
    assert "s of CPU time, the limit (--cpu-seconds)" in result.output


# ------------------------------------------------------------------ killing `airoad check`

SCRIPT = """
import sys
sys.path.insert(0, {fixture!r})
import boxlab_harness as h
h.register()
from airoad.labs.check import run_check
from pathlib import Path
run_check(h.LAB, file=Path({file!r}), timeout=60)
"""

SPAWNER = """
import os, subprocess, sys, time
worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.environ["BOXLAB_PIDS"], "w") as f:
    f.write(f"{{os.getpid()}} {{worker.pid}} {{os.getcwd()}}")
while True:
    pass
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _start_parent(tmp_path: Path) -> tuple[subprocess.Popen, list[int], Path]:
    learner = tmp_path / "boxlab_ref.py"
    learner.write_text(add_body(SPAWNER.format()), encoding="utf-8")
    pids = tmp_path / "pids"
    (tmp_path / "tmp").mkdir()
    env = dict(os.environ, BOXLAB_PIDS=str(pids), TMPDIR=str(tmp_path / "tmp"))
    script = SCRIPT.format(fixture=str(h.FIXTURE), file=str(learner))
    parent = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.monotonic() + 60
    while not (pids.exists() and pids.read_text().count(" ") == 2):
        assert time.monotonic() < deadline and parent.poll() is None, "the test never started"
        time.sleep(0.1)
    test_pid, worker_pid, cwd = pids.read_text().split(" ")
    return parent, [int(test_pid), int(worker_pid)], Path(cwd)


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sigkill_of_airoad_check_leaves_no_process_running(tmp_path):
    """The supervisor dies with its parent and kills its group: test process and worker."""
    parent, pids, _ = _start_parent(tmp_path)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "a test process outlived `airoad check`"


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_sigterm_of_airoad_check_removes_its_temp_folders(tmp_path):
    parent, pids, cwd = _start_parent(tmp_path)
    assert cwd.is_relative_to(tmp_path / "tmp")  # the scratch folder is in the box
    parent.terminate()
    assert parent.wait(timeout=30) != 0
    assert not any(_alive(p) for p in pids)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_catalog_entry_raises_a_labs_limits(tmp_path):
    """`check_memory_mb` and `check_test_timeout` on a lab set its defaults; options win."""
    from airoad.catalog import load_catalog
    from airoad.catalog.catalog import default_path
    from airoad.errors import AiroadError
    from airoad.labs.check import DEFAULT_TEST_SECONDS, resolve_limits

    text = default_path().read_text(encoding="utf-8")
    toml = tmp_path / "labs.toml"
    raised = 'id = "knn"\ncheck_memory_mb = 3000\ncheck_test_timeout = 120\n'
    toml.write_text(text.replace('id = "knn"\n', raised, 1), encoding="utf-8")
    knn = load_catalog(toml).get("knn")
    assert (knn.check_memory_mb, knn.check_test_timeout) == (3000, 120)
    limits = resolve_limits(knn)
    assert (limits.memory_mb, limits.test_seconds) == (3000, 120)
    assert resolve_limits(knn, timeout=5).test_seconds == 5
    assert resolve_limits(load_catalog().get("pca")).test_seconds == DEFAULT_TEST_SECONDS
    toml.write_text(text.replace('id = "knn"\n', 'id = "knn"\ncheck_memory_mb = 0\n', 1))
    with pytest.raises(AiroadError, match="'check_memory_mb' must be positive"):
        load_catalog(toml)
