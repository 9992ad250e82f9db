"""The experiment-tracking runner on wine and diabetes (quick config), with a second quick run
(`airoad run`, another process, platform logging on) writing to the same store at the same
time. An independent MlflowClient then reads back both sessions' nested runs, per-step metrics,
artifacts and the registry's aliases, and checks airoad's own experiment saw only its own run."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airoad.labs.contract import RunContext
from airoad.labs.runners import experiment_tracking as runner
from airoad.labs.runners import experiment_tracking_parts as parts
from airoad.production import experiment_tracking as ref
from airoad.production import model_registry as registry

PARENT = "mlflow.parentRunId"
N_CHILDREN = len(runner.QUICK["depths"]) + len(runner.QUICK["alphas"])


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """(result, oracle client, experiment id, the other process's exit code and output)."""
    import mlflow

    home = tmp_path_factory.mktemp("et_home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("AIROAD_HOME", str(home))
        uri_before = mlflow.get_tracking_uri()
        other = subprocess.Popen(
            [sys.executable, "-m", "airoad", "run", "experiment-tracking", "--quick",
             "--out", str(home / "other-run")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        try:
            result = runner.run(runner.Config(**runner.QUICK), RunContext(home / "run"))
        finally:
            out, _ = other.communicate(timeout=300)
        assert mlflow.get_tracking_uri() == uri_before, "the runner changed mlflow's global URI"
        assert mlflow.active_run() is None
    uri = ref.sqlite_uri(home / "mlflow.db")
    oracle = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = oracle.get_experiment_by_name(parts.EXPERIMENT).experiment_id
    return result, oracle, exp, other.returncode, out


def test_sweeps_are_nested_runs_with_steps_and_artifacts(session):
    result, oracle, exp, _, _ = session
    rows = result.tables["runs"]
    assert result.metrics["n_runs"] == len(rows) == 2 * N_CHILDREN
    for row in rows:
        run = oracle.get_run(row["run_id"])
        parent = oracle.get_run(run.data.tags[PARENT])
        assert parent.info.experiment_id == exp == run.info.experiment_id
        assert parent.info.run_name == f"{row['dataset']}-{row['model']}"
        assert parent.info.status == run.info.status == "FINISHED"
        steps = runner.QUICK["n_estimators"] if row["model"] == "gbm" else runner.QUICK["epochs"]
        for key in (row["metric"], parts.TASKS[row["dataset"]].other):
            hist = oracle.get_metric_history(row["run_id"], key)
            assert sorted(m.step for m in hist) == list(range(steps)), f"{key} steps"
        assert run.data.metrics[row["metric"]] == row["value"]
        assert run.data.params["seed"] == "0" and "env.sklearn" in run.data.tags
        assert sorted(f.path for f in oracle.list_artifacts(row["run_id"])) == [
            "curve.png",
            "model",
        ]
    for name, task in parts.TASKS.items():  # the table is the query's order: best first
        values = [r["value"] for r in rows if r["dataset"] == name]
        assert values == sorted(values, reverse=task.higher_is_better)
    assert result.metrics["n_points"] == 2 * sum(r["steps"] for r in rows)


def test_registry_rounds_follow_the_rule(session):
    result, oracle, _, _, _ = session
    for d in result.tables["registry"]:
        want = registry.should_promote(d["challenger_metric"], d["champion_metric"], d["margin"],
                                  parts.TASKS[d["dataset"]].higher_is_better)  # fmt: skip
        assert d["promoted"] == want
        model = f"{parts.EXPERIMENT}-{d['dataset']}"
        tag = oracle.get_model_version(model, str(d["version"])).tags["promotion"]
        assert tag == ("promoted" if want else "rejected")
    for name in runner.Config().datasets:
        model = f"{parts.EXPERIMENT}-{name}"
        champion = oracle.get_model_version_by_alias(model, "champion")
        metric = oracle.get_run(champion.run_id).data.metrics[parts.TASKS[name].metric]
        assert metric == pytest.approx(result.metrics[f"{name}_champion_metric"])


def test_two_runs_at_once_share_the_store(session):
    result, oracle, exp, code, out = session
    assert code == 0, out[-2000:]
    sessions = {r.data.tags.get("airoad.session") for r in oracle.search_runs([exp], "")}
    assert len(sessions - {None}) == 2, "both runs' sweeps should be in the lab's experiment"
    for name in runner.Config().datasets:
        versions = oracle.search_model_versions(f"name = '{parts.EXPERIMENT}-{name}'")
        assert sorted(int(v.version) for v in versions) == [1, 2, 3, 4]
        assert all(v.tags.get("promotion") in ("promoted", "rejected") for v in versions)
    platform = oracle.get_experiment_by_name("airoad")  # the platform logged the other run only
    runs = oracle.search_runs([platform.experiment_id], "")
    assert [r.data.tags["lab"] for r in runs] == ["experiment-tracking"]


def test_rerun_reproduces_and_figures_exist(session):
    result, _, _, _, _ = session
    assert result.metrics["reproduced"] == "identical to" and result.metrics["rerun_max_diff"] == 0
    assert result.key_metric == "wine_champion_metric"
    assert {p.stem for p in result.figures} == {"sweep_curves", "registry"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert any("promoted to champion" in n for n in result.notes)


def test_the_store_is_opened_under_the_lock(tmp_path, monkeypatch):
    """MlflowClient migrates a fresh SQLite store in its constructor: outside the lock, two runs
    at once raced on alembic_version (a CI failure). Every client must be made while it is held."""
    from contextlib import contextmanager

    held, made, make = [], [], ref.make_client

    @contextmanager
    def lock():
        held.append(True)
        try:
            yield
        finally:
            held.pop()

    def client(uri):
        made.append(bool(held))
        return make(uri)

    monkeypatch.setenv("AIROAD_HOME", str(tmp_path))
    monkeypatch.setattr(parts, "store_lock", lock)
    monkeypatch.setattr(parts.ref, "make_client", client)
    store = parts.open_store()
    assert made == [True], "the client (and the schema migration it runs) was made unlocked"
    assert store.client.get_experiment(store.experiment_id).name == parts.EXPERIMENT
