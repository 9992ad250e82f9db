"""Hostile cases for datasets (issue 8, section 4): the same data everywhere, never damaged data.

One rule (home.data_dirs) decides where a dataset is read from, for every command and for the
graders; a dataset whose bytes changed since it was verified is refused with the fix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
from hostile_tiny_lab import env_for
from typer.testing import CliRunner

from airoad.cli import app
from airoad.data import store
from airoad.home import repo_root

runner = CliRunner()
GRADER = """
from airoad.data import load


def test_titanic_is_whole():
    assert len(load("titanic")) == 2207
"""


@pytest.fixture
def learner_with_titanic(tmp_path):
    """A learner whose datasets are in the default ~/.airoad/data, working under another home."""
    user = tmp_path / "user"
    shutil.copytree(store.location(store.get("titanic")), user / ".airoad" / "data" / "titanic")
    return env_for(tmp_path / "elsewhere", HOME=str(user), AIROAD_DATA_DIR=None)


def test_graders_see_what_the_commands_see_under_another_home(
    learner_with_titanic, tmp_path, monkeypatch
):
    """Under a non-default AIROAD_HOME, `data fetch` says present and the grader's conftest
    finds the same copy (before: conftest pinned $AIROAD_HOME/data, the grader raised
    DatasetMissing while `airoad data fetch titanic` said "present, verified")."""
    env = learner_with_titanic
    for key in ("HOME", "AIROAD_HOME"):
        monkeypatch.setenv(key, env[key])
    monkeypatch.delenv("AIROAD_DATA_DIR")
    fetched = runner.invoke(app, ["data", "fetch", "titanic"])
    assert fetched.exit_code == 0 and "present, verified" in fetched.stdout, fetched.output
    suite = tmp_path / "suite"
    suite.mkdir()
    shutil.copy(repo_root() / "tests" / "conftest.py", suite / "conftest.py")
    (suite / "test_grader.py").write_text(GRADER)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in [str(repo_root() / "tests"), env.get("PYTHONPATH", "")] if p
    )
    graded = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(suite)],
        env=env,
        cwd=suite,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert graded.returncode == 0, graded.stdout[-2000:]


@pytest.fixture
def truncated_titanic(tmp_path, monkeypatch):
    """A cache whose titanic.csv was cut to 50 kB in front of the real caches."""
    cache = tmp_path / "cache"
    (cache / "titanic").mkdir(parents=True)
    real = store.location(store.get("titanic")) / "titanic.csv"
    (cache / "titanic" / "titanic.csv").write_bytes(real.read_bytes()[:50_000])
    monkeypatch.setenv(
        "AIROAD_DATA_DIR", os.pathsep.join([str(cache), os.environ["AIROAD_DATA_DIR"]])
    )
    return cache


def test_truncated_dataset_is_refused_with_the_fix(truncated_titanic):
    """A 50 kB titanic is refused by `load` and by `run` in one line naming the fetch command
    (before: the run went on with 1183 rows and exit 0)."""
    with pytest.raises(store.DatasetCorrupt, match=r"run `airoad data fetch titanic`"):
        store.load("titanic")
    result = runner.invoke(app, ["run", "numpy-pandas-basics", "--quick", "--no-track"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    (line,) = result.stderr.splitlines()
    assert "dataset 'titanic'" in line and "airoad data fetch titanic" in line
