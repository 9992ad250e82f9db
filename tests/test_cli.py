"""The CLI a learner types: answers fast, prints JSON for scripts, fails in one sentence."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from airoad.cli import app

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, list(args))


def test_help_imports_nothing_heavy():
    """`airoad --help` stays fast: importing the CLI pulls in no numeric or ML library."""
    code = (
        "import sys, airoad.cli\n"
        "heavy = ('torch', 'numpy', 'pandas', 'sklearn', 'mlflow', 'matplotlib', 'scipy')\n"
        "print([m for m in heavy if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_labs_json_lists_the_catalog():
    """`labs --json` has every entry with id, phase, layer, status and progress."""
    result = invoke("labs", "--json")
    assert result.exit_code == 0, result.output
    labs = json.loads(result.output)["labs"]
    assert 60 <= len(labs) <= 90
    built = {lab["id"] for lab in labs if lab["status"] == "built"}
    assert {
        "pca",
        "numpy-pandas-basics",
        "hypothesis-testing",
        "gradient-descent",
        "linear-regression",
        "autograd-and-distributions",
    } <= built
    assert all(lab["progress"] == "not started" for lab in labs)


def test_roadmap_shows_progress_changes():
    """skip and reset show up in `roadmap --json`."""
    assert invoke("progress", "skip", "knn").exit_code == 0
    phases = json.loads(invoke("roadmap", "--json").output)["phases"]
    states = {lab["id"]: lab["progress"] for p in phases for lab in p["labs"]}
    assert states["knn"] == "skipped"
    assert phases[0]["id"] == "foundations"
    assert invoke("progress", "reset", "knn").exit_code == 0
    phases = json.loads(invoke("roadmap", "--json").output)["phases"]
    assert {lab["id"]: lab["progress"] for p in phases for lab in p["labs"]}["knn"] == "not started"
    assert "airoad roadmap" in invoke("roadmap").output


def test_unknown_lab_is_one_clear_line():
    """A typo in a lab id gets a suggestion, exit code 1 and no traceback."""
    result = invoke("show", "pcaa")
    assert result.exit_code == 1
    assert "did you mean 'pca'" in result.output
    assert "Traceback" not in result.output


def test_planned_lab_cannot_run():
    """Running a planned lab says it is planned."""
    from airoad.catalog import load_catalog

    planned = next(lab.id for lab in load_catalog().labs if not lab.built)
    result = invoke("run", planned, "--quick")
    assert result.exit_code == 1 and "planned" in result.output


def test_bad_set_key_names_the_allowed_keys():
    """`--set` with an unknown key names it and the keys that exist."""
    result = invoke("run", "pca", "--quick", "--set", "no_such_key=1")
    assert result.exit_code == 1
    assert "unknown config key 'no_such_key'" in result.output
    assert "allowed keys:" in result.output


def test_show_prints_lesson_and_paths():
    """`show` prints the lesson and the reference and test paths."""
    result = invoke("show", "pca")
    assert result.exit_code == 0, result.output
    assert "foundations/pca.py" in result.output and "test_pca.py" in result.output


def test_doctor_reports_each_check():
    """doctor prints Python, torch and dataset lines, each OK or FAIL."""
    result = invoke("doctor")
    assert "Python 3.11" in result.output
    assert "torch 2.13.0" in result.output
    assert "dataset iris" in result.output
