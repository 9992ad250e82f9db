"""`airoad run`, `runs` and `tour` end to end on a real (fast) lab, with MLflow tracking."""

from __future__ import annotations

import dataclasses
import json

from typer.testing import CliRunner

from airoad.catalog import load_catalog
from airoad.cli import app
from airoad.home import home

LAB = "numpy-pandas-basics"
runner = CliRunner()


def test_run_writes_folder_and_tracks_in_mlflow(tmp_path, monkeypatch):
    """A quick run writes metrics/config/PNGs, logs to MLflow under AIROAD_HOME, never ./mlruns."""
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", LAB, "--quick", "--out", str(out)])
    assert result.exit_code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["lab"] == LAB and metrics["quick"] is True
    assert metrics["key_metric"] in metrics["metrics"]
    assert json.loads((out / "config.json").read_text())["lab"] == LAB
    assert list(out.glob("*.png")), "a run must leave at least one figure"
    assert not (tmp_path / "mlruns").exists()

    import mlflow

    client = mlflow.tracking.MlflowClient(tracking_uri=f"sqlite:///{home() / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("airoad")
    assert experiment.artifact_location.startswith((home() / "mlartifacts").as_uri())
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.data.tags["lab"] == LAB
    key = metrics["key_metric"]
    assert run.data.metrics[key] == float(metrics["metrics"][key])
    logged = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert "metrics.json" in logged

    listing = runner.invoke(app, ["runs"])
    assert listing.exit_code == 0 and LAB in listing.output


def test_quick_run_is_deterministic(tmp_path):
    """Two quick runs with the same seed give the same metrics."""
    results = []
    for name in ("a", "b"):
        out = tmp_path / name
        assert (
            runner.invoke(app, ["run", LAB, "--quick", "--no-track", "--out", str(out)]).exit_code
            == 0
        )
        results.append(json.loads((out / "metrics.json").read_text())["metrics"])
    assert results[0] == results[1]


def test_missing_dataset_names_the_fetch_command(tmp_path, monkeypatch):
    """With an empty data cache, the run stops in one line naming `airoad data fetch`."""
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "empty"))
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", LAB, "--quick", "--out", str(out)])
    assert result.exit_code == 1
    assert "airoad data fetch" in result.output and "Traceback" not in result.output
    assert not out.exists(), "nothing is written before the data is known to be there"


def test_bad_set_value_names_the_key():
    """A value of the wrong type is one error naming the key."""
    result = runner.invoke(app, ["run", LAB, "--quick", "--set", "seed=abc"])
    assert result.exit_code == 1 and "'seed' expects int" in result.output


def test_tour_ends_in_one_table(monkeypatch):
    """The tour runs the built labs and prints ours vs the library with seconds."""
    catalog = load_catalog()
    only = dataclasses.replace(catalog, labs=tuple(e for e in catalog.labs if e.id == LAB))
    monkeypatch.setattr("airoad.labs.tour.load_catalog", lambda: only)
    result = runner.invoke(app, ["tour", "--quick", "--no-track"])
    assert result.exit_code == 0, result.output
    assert "airoad tour" in result.output and LAB in result.output and "ok" in result.output
