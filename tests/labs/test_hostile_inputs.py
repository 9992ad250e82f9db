"""Hostile inputs (issue 8, sections 6 and 7): every bad input is one clear line, and what a
newcomer trips on (ids cut at 80 columns, files created 0600) is gone."""

from __future__ import annotations

import os
import shutil
import stat

import pytest
from hostile_tiny_lab import (
    airoad,
    env_for,
    error_line,
    install_tiny_lab,
    make_tiny_lab,
    public_dir,
)
from rich.console import Console
from typer.testing import CliRunner

from airoad import cli_views as views
from airoad.catalog import load_catalog, progress
from airoad.cli import app
from airoad.home import home

runner = CliRunner()


@pytest.fixture
def tiny(tmp_path, monkeypatch):
    folder = tmp_path / "tinylab"
    install_tiny_lab(monkeypatch, folder)
    return folder


def one_line(result) -> str:
    """The single `error:` line of a failed in-process command, asserting there is no more."""
    assert result.exit_code not in (0, None), result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, OSError)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


# ------------------------------------------------------------------------- $AIROAD_HOME itself

HOME_COMMANDS = [
    ["labs"],
    ["roadmap"],
    ["runs"],
    ["progress", "skip", "knn"],
    ["run", "tiny-lab", "--quick", "--no-track"],
]


@pytest.mark.parametrize("args", HOME_COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_home_that_is_a_file_is_one_line(tiny, tmp_path, monkeypatch, args):
    """AIROAD_HOME naming a file: one sentence naming it (before: FileExistsError traceback)."""
    (tmp_path / "home-file").write_text("not a folder")
    monkeypatch.setenv("AIROAD_HOME", str(tmp_path / "home-file"))
    assert "is a file, not a folder" in one_line(runner.invoke(app, args))


def test_doctor_checks_the_home_and_never_crashes(tmp_path, monkeypatch):
    """doctor names an unusable home as a FAIL line with the fix, and a check that raises is a
    FAIL line too (before: doctor itself crashed with a traceback)."""
    (tmp_path / "home-file").write_text("not a folder")
    monkeypatch.setenv("AIROAD_HOME", str(tmp_path / "home-file"))
    monkeypatch.setattr(
        "airoad.labs.doctor._torch", lambda: (_ for _ in ()).throw(RuntimeError("torch broke"))
    )
    result = runner.invoke(app, ["doctor"])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    out = result.stdout
    assert "FAIL AIROAD_HOME" in out and "is a file" in out
    assert "FAIL the torch check crashed: RuntimeError: torch broke" in out
    assert "Python 3.11" in out, "the other checks still run"


def test_read_only_home_is_one_line_per_command():
    """A read-only AIROAD_HOME: commands that write say so in one line (before: PermissionError
    tracebacks). Run as `nobody` when the suite is root (root writes anywhere)."""
    base = public_dir()
    try:
        lab = make_tiny_lab(base / "tinylab")
        ro_home = base / "home"
        ro_home.mkdir()
        (ro_home / "progress.json").write_text('{"version": 1, "labs": {}}')
        ro_home.chmod(0o555)
        env = env_for(ro_home, HOME=str(base), AIROAD_DATA_DIR=str(base / "data"))
        skip = airoad("progress", "skip", "knn", env=env, unprivileged=True)
        assert "could not record 'knn' as skipped" in error_line(skip)
        ran = airoad("run", "tiny-lab", "--quick", env=env, tiny=lab, unprivileged=True)
        assert "cannot write to the runs folder" in error_line(ran)
    finally:
        os.chmod(base / "home", 0o755)
        shutil.rmtree(base, ignore_errors=True)


# ------------------------------------------------------------------------------ paths and limits


def test_out_that_is_a_file_or_under_one_is_one_line(tiny, tmp_path):
    """--out naming a file, or a folder under a file: one line (before: FileExistsError)."""
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    line = one_line(runner.invoke(app, ["run", "tiny-lab", "--no-track", "--out", str(blocker)]))
    assert "--out" in line and "is a file" in line
    under = blocker / "run"
    line = one_line(runner.invoke(app, ["run", "tiny-lab", "--no-track", "--out", str(under)]))
    assert str(under) in line and "Not a directory" in line


def test_exercise_dir_that_is_a_file_is_one_line(tmp_path):
    """`exercise --dir` naming a file: one line (before: FileExistsError traceback)."""
    blocker = tmp_path / "workspace"
    blocker.write_text("x")
    line = one_line(runner.invoke(app, ["exercise", "pca", "--dir", str(blocker)]))
    assert "--dir" in line and "is a file" in line


def test_runs_limit_below_zero_is_one_line():
    """`runs --limit -1` is refused (before: it silently dropped the oldest run)."""
    assert "--limit" in one_line(runner.invoke(app, ["runs", "--limit", "-1"]))


@pytest.mark.parametrize("pair", ["k=0", "k=100000", "k_values=0,3"])
def test_out_of_range_set_is_one_line(pair):
    """A `--set` value outside the range its Config declares: one line naming key and range."""
    line = one_line(runner.invoke(app, ["run", "knn", "--quick", "--no-track", "--set", pair]))
    assert f"config key '{pair.split('=')[0]}'" in line and "allowed" in line


# ------------------------------------------------------------------------- what newcomers trip on


def _render(table, width: int = 80) -> str:
    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115
    console.print(table)
    return console.export_text()


def test_lab_ids_are_never_cut_at_80_columns():
    """`airoad labs` and the tour table print every id whole on 80 columns, so it can be copied
    (before: `numpy-panda…`)."""
    rows = views.lab_rows()
    text = _render(views.labs_table(rows))
    assert all(f" {r['id']} " in text for r in rows), "an id was cut or wrapped"
    tour = [
        {"lab": e.id, "ours": "acc = 0.9", "library": "-", "seconds": 1.0, "status": "ok"}
        for e in load_catalog().labs
    ]
    text = _render(views.tour_table(tour))
    assert all(f" {r['lab']} " in text for r in tour)


@pytest.fixture
def umask_002():
    old = os.umask(0o002)
    yield 0o664
    os.umask(old)


def test_files_follow_the_umask(tiny, tmp_path, umask_002):
    """Stubs, run files and the progress file get 0666 less the umask (before: always 0600)."""
    ws = tmp_path / "ws"
    assert runner.invoke(app, ["exercise", "pca", "--dir", str(ws)]).exit_code == 0
    out = tmp_path / "run"
    ran = runner.invoke(app, ["run", "tiny-lab", "--quick", "--no-track", "--out", str(out)])
    assert ran.exit_code == 0, ran.output
    paths = [ws / "pca.py", progress.progress_path(), out / "metrics.json", out / "config.json"]
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in paths} == {
        p.name: umask_002 for p in paths
    }
    assert home().is_dir()


def test_bad_set_prints_nothing_on_stdout(tmp_path):
    """An out-of-range --set is one line on stderr and nothing on stdout (before: a blank
    line from the progress display came first)."""
    done = airoad("run", "knn", "--quick", "--set", "k=0", env=env_for(tmp_path / "home"))
    assert done.returncode == 1 and done.stdout == "", repr(done.stdout)
    assert done.stderr.strip() == "error: config key 'k' is 0; allowed: >= 1 and <= 500"
