"""Helpers for the hostile suites: a tiny fixture lab and real `airoad` processes.

`make_tiny_lab(folder)` writes a lab `tiny-lab` (runner, reference, one-test grader) and a
launcher that adds it to the catalog and then runs the real CLI, so `run`, `runs` and `check`
are exercised end to end in a child process in well under a second of lab work. The runner's
behaviour is chosen by `TINY_MODE` (interrupt | crash | kill); `TINY_DIE_IN_MLFLOW=1` kills the
process (os._exit, as SIGKILL would) when MLflow logging starts.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

AIROAD = Path(sys.executable).with_name("airoad")
NOBODY = 65534

RUNNER = """
import os
from dataclasses import dataclass

from airoad.labs.contract import LabResult


@dataclass(frozen=True)
class Config:
    steps: int = 3
    seed: int = 0


QUICK = {"steps": 1}


def run(config, ctx):
    (ctx.out_dir / "partial.txt").write_text("half a run")
    mode = os.environ.get("TINY_MODE", "")
    if mode == "interrupt":
        raise KeyboardInterrupt
    if mode == "crash":
        raise RuntimeError("the lab broke")
    if mode == "kill":
        os._exit(137)
    return LabResult(metrics={"score": float(config.steps)}, key_metric="score")
"""

REFERENCE = """
def double(x):
    return 2 * x
"""

GRADER = '''
def test_doubles():
    """double(2) is 4."""
    assert 2 + 2 == 4
'''

LAUNCHER = """
import dataclasses
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import airoad.catalog.catalog as catalog

base = catalog._load_default()
tiny = dataclasses.replace(
    base.labs[0],
    id="tiny-lab",
    title="tiny fixture lab",
    reference=("tinyref",),
    tests=(os.path.join(HERE, "test_tiny.py"),),
    datasets=(),
    prerequisites=(),
    status="built",
)
catalog._load_default = lambda: dataclasses.replace(base, labs=base.labs + (tiny,))

import tiny_lab_runner

sys.modules["airoad.labs.runners.tiny_lab"] = tiny_lab_runner
if os.environ.get("TINY_DIE_IN_MLFLOW"):
    import airoad.labs.tracking as tracking

    tracking.log_run = lambda *a, **k: os._exit(137)

from airoad.cli import app

app(sys.argv[1:], prog_name="airoad")
"""


def make_tiny_lab(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in [
        ("tiny_lab_runner.py", RUNNER),
        ("tinyref.py", REFERENCE),
        ("test_tiny.py", GRADER),
        ("launch.py", LAUNCHER),
    ]:
        (folder / name).write_text(text.lstrip())
    return folder


def env_for(home: Path, **extra: str | None) -> dict[str, str]:
    """This process's environment with AIROAD_HOME set; a value of None removes a variable."""
    env = dict(os.environ, AIROAD_HOME=str(home), COLUMNS="200", OMP_NUM_THREADS="1")
    for key, value in extra.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def _as_nobody() -> list[str]:
    """The command prefix that runs a child as `nobody` when this process is root."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        import pytest

        pytest.skip("running as root without setpriv: a read-only folder cannot be made")
    return [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups"]


def airoad(
    *args: str,
    env: dict[str, str],
    tiny: Path | None = None,
    cwd: Path | None = None,
    unprivileged: bool = False,
    timeout: float = 180,
) -> subprocess.CompletedProcess:
    """Run the real CLI (with the tiny lab when `tiny` is its folder). `unprivileged`: as root,
    run as `nobody`, so a read-only folder is read-only (root writes anywhere)."""
    cmd = [sys.executable, str(tiny / "launch.py")] if tiny else [str(AIROAD)]
    prefix = _as_nobody() if unprivileged else []
    return subprocess.run(
        [*prefix, *cmd, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
    )


def error_line(done: subprocess.CompletedProcess) -> str:
    """The one `error:` line a failed command printed (asserting it is one line, no traceback)."""
    both = done.stdout + done.stderr
    assert done.returncode != 0, both
    assert "Traceback" not in both, both
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), both
    return lines[0]


def public_dir() -> Path:
    """A fresh folder under the system temp dir that `nobody` can enter (pytest's are 0700)."""
    folder = Path(tempfile.mkdtemp(prefix="airoad-hostile-"))
    folder.chmod(0o777)
    return folder


def install_tiny_lab(monkeypatch, folder: Path) -> None:
    """Add `tiny-lab` to the catalog of this process (what launch.py does in a child)."""
    import dataclasses
    import importlib

    import airoad.catalog.catalog as catalog

    make_tiny_lab(folder)
    monkeypatch.syspath_prepend(str(folder))
    base = catalog._load_default()
    tiny = dataclasses.replace(
        base.labs[0],
        id="tiny-lab",
        title="tiny fixture lab",
        reference=("tinyref",),
        tests=(str(folder / "test_tiny.py"),),
        datasets=(),
        prerequisites=(),
        status="built",
    )
    extended = dataclasses.replace(base, labs=(*base.labs, tiny))
    monkeypatch.setattr(catalog, "_load_default", lambda: extended)
    monkeypatch.setitem(
        sys.modules, "airoad.labs.runners.tiny_lab", importlib.import_module("tiny_lab_runner")
    )
