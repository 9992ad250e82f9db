"""Hostile cases for the stores (issue 8, section 5): progress and runs never lose anything.

Concurrency and kill cases use real processes; the rest drive the CLI in-process with a tiny
fixture lab (see hostile_tiny_lab.py), so the suite stays fast.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hostile_tiny_lab import airoad, env_for, install_tiny_lab, make_tiny_lab
from typer.testing import CliRunner

from airoad.catalog import progress
from airoad.cli import app
from airoad.home import home, runs_dir

runner = CliRunner()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    folder = tmp_path / "tinylab"
    install_tiny_lab(monkeypatch, folder)
    return folder


def _start_together(code: str, n: int, env: dict, barrier: Path, imports: str = "") -> list:
    """Start `n` processes that import `imports`, wait at a file barrier until all of them are
    ready, then run `code` at once (with the process's number in argv[1])."""
    barrier.mkdir(parents=True)
    prelude = (
        f"import pathlib, sys, time\n{imports}\n"
        f"gate = pathlib.Path({str(barrier)!r})\n"
        "(gate / sys.argv[1]).touch()\n"
        f"while len(list(gate.iterdir())) < {n}: time.sleep(0.005)\n"
    )
    return [
        subprocess.Popen(
            [sys.executable, "-c", prelude + code, str(i)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]


# ------------------------------------------------------------------------------------ progress


def test_ten_concurrent_writers_keep_every_entry(tmp_path):
    """Ten processes recording at the same instant keep all their entries (before: 7-8 of 10)."""
    code = (
        "import sys\nfrom airoad.catalog import progress\n"
        "for j in range(5):\n"
        "    progress.record(f'lab-{sys.argv[1]}-{j}', progress.LEARNING)\n"
    )
    imports = "from airoad.catalog import progress"
    procs = _start_together(code, 10, env_for(tmp_path / "home"), tmp_path / "gate", imports)
    for p in procs:
        assert p.wait(timeout=60) == 0, p.stderr.read()
    labs = json.loads((tmp_path / "home" / "progress.json").read_text())["labs"]
    assert len(labs) == 50


SHAPES = {
    "empty list": "[]",
    "null": "null",
    "a string": '"passed"',
    "string state": '{"version": 1, "labs": {"pca": "passed", "knn": {"state": "passed"}}}',
    "unknown state": '{"version": 1, "labs": {"pca": {"state": "bogus"}, "knn": {"state": "passed"}}}',
    "not JSON": "{not json",
}


@pytest.mark.parametrize("text", SHAPES.values(), ids=SHAPES.keys())
def test_wrong_shape_store_is_set_aside_and_commands_carry_on(text):
    """`labs`, `roadmap` and `progress` work on a store of the wrong shape: one warning line, a
    backup of the original, readable entries kept (before: AttributeError tracebacks)."""
    path = home() / "progress.json"
    path.write_text(text)
    listing = runner.invoke(app, ["labs", "--json"])
    assert listing.exit_code == 0, listing.output
    (backup,) = home().glob("progress.json.bad-*")
    assert backup.read_text() == text
    assert listing.stderr.count("warning:") == 1 and backup.name in listing.stderr
    states = {lab["id"]: lab["progress"] for lab in json.loads(listing.stdout)["labs"]}
    assert states["pca"] == "not started"
    assert states["knn"] == ("passed" if '"knn"' in text else "not started")
    again = runner.invoke(app, ["roadmap", "--json"])
    assert again.exit_code == 0 and again.stderr == "", "the store was repaired once"
    assert runner.invoke(app, ["progress", "skip", "pca"]).exit_code == 0
    assert progress.state_of("pca") == progress.SKIPPED


def test_unwritable_store_keeps_the_check_result(tmp_path):
    """A store that cannot be read or written (here a folder) does not throw away a check:
    the results print, then one line says progress was not saved (before: a traceback, no
    results)."""
    lab = make_tiny_lab(tmp_path / "tinylab")
    store = tmp_path / "home" / "progress.json"
    store.mkdir(parents=True)
    path = os.pathsep.join(p for p in [str(lab), os.environ.get("PYTHONPATH", "")] if p)
    env = env_for(tmp_path / "home", PYTHONPATH=path)
    done = airoad("check", "tiny-lab", "--file", str(lab / "tinyref.py"), env=env, tiny=lab)
    both = done.stdout + done.stderr
    assert "test_doubles" in done.stdout and "Traceback" not in both, both
    assert done.returncode == 1
    (line,) = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert "could not record 'tiny-lab' as passed" in line and str(store) in line
    assert "recorded in your progress" not in done.stdout, "the pass line must not claim a save"
    assert store.is_dir(), "an unreadable store is never overwritten"


# ----------------------------------------------------------------------------------------- runs


def test_two_first_runs_at_once_are_both_logged(tmp_path):
    """Two first MLflow logs at once in a fresh home both succeed (before: one crashed in
    MLflow's schema creation with a SQLAlchemy traceback)."""
    code = (
        "import pathlib, sys\nfrom airoad.labs.tracking import log_run\n"
        f"folder = pathlib.Path({str(tmp_path)!r}) / f'run{{sys.argv[1]}}'\n"
        "folder.mkdir(); (folder / 'metrics.json').write_text('{}')\n"
        "print(log_run('pca', True, {'seed': 0}, {'score': 1.0}, folder))\n"
    )
    procs = _start_together(code, 2, env_for(tmp_path / "home"), tmp_path / "gate", "import mlflow")
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err[-300:] for _, err in outs]
    assert len({out.strip() for out, _ in outs}) == 2, "two distinct MLflow run ids"


def test_out_into_a_run_folder_refuses_without_force(tiny, tmp_path):
    """`--out` naming a folder that holds files is one line naming --force (before: silently
    overwritten); with --force the run goes ahead."""
    out = tmp_path / "run"
    first = runner.invoke(app, ["run", "tiny-lab", "--quick", "--no-track", "--out", str(out)])
    assert first.exit_code == 0, first.output
    (out / "mine.txt").write_text("keep me")
    again = runner.invoke(app, ["run", "tiny-lab", "--no-track", "--out", str(out)])
    assert again.exit_code == 1 and "--force" in again.stderr and "Traceback" not in again.output
    assert json.loads((out / "metrics.json").read_text())["quick"] is True, "nothing rewritten"
    forced = runner.invoke(app, ["run", "tiny-lab", "--no-track", "--out", str(out), "--force"])
    assert forced.exit_code == 0, forced.output
    assert json.loads((out / "metrics.json").read_text())["quick"] is False


def test_killed_between_metrics_and_mlflow_is_still_listed(tmp_path):
    """A process killed as MLflow logging starts leaves a run `airoad runs` lists (before: the
    index line came after MLflow, so the run was never listed)."""
    lab = make_tiny_lab(tmp_path / "tinylab")
    done = airoad(
        "run", "tiny-lab", "--quick", env=env_for(home(), TINY_DIE_IN_MLFLOW="1"), tiny=lab
    )
    assert done.returncode == 137, done.stderr
    listing = runner.invoke(app, ["runs"])
    assert listing.exit_code == 0 and "tiny-lab" in listing.stdout, listing.output


@pytest.mark.parametrize("mode", ["interrupt", "crash"])
def test_failed_or_interrupted_run_leaves_no_folder(tiny, tmp_path, monkeypatch, mode):
    """Ctrl-C or a crash inside a lab removes the run folder it made (before: a folder with
    config.json and half the outputs stayed behind)."""
    monkeypatch.setenv("TINY_MODE", mode)
    result = runner.invoke(app, ["run", "tiny-lab", "--quick", "--no-track"])
    assert result.exit_code == (130 if mode == "interrupt" else 1)
    out = tmp_path / "new-out"
    runner.invoke(app, ["run", "tiny-lab", "--quick", "--no-track", "--out", str(out)])
    assert [p.name for p in runs_dir().iterdir()] == [] and not out.exists()


def test_killed_run_leaves_no_config_only_folder(tiny):
    """A run killed mid-way leaves no config.json, and the next run sweeps its folder away
    (before: a config-only folder stayed for good)."""
    env = env_for(home(), TINY_MODE="kill")
    killed = airoad("run", "tiny-lab", "--quick", "--no-track", env=env, tiny=tiny)
    assert killed.returncode == 137
    assert not list(runs_dir().glob("*/config.json"))
    ok = runner.invoke(app, ["run", "tiny-lab", "--quick", "--no-track"])
    assert ok.exit_code == 0, ok.output
    (left,) = [p for p in runs_dir().iterdir() if p.is_dir()]
    assert (left / "metrics.json").exists() and (left / "config.json").exists()
