"""Grader for experiment-tracking (runs): the learner's MLflow functions write into a fresh
SQLite store shared by this module, and an independent ``MlflowClient`` (the oracle) reads back
exactly what landed: params, metrics with their steps, artifacts and parent/child tags.
Non-finite metrics, a lost race to create the experiment and two writers at once are tried
too. The registry's grader is test_model_registry.py."""

from __future__ import annotations

import math
import platform
import threading
import time
from importlib.metadata import version as dist_version

import joblib
import numpy as np
import pytest

REFERENCE = "airoad.production.experiment_tracking"

PARENT = "mlflow.parentRunId"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """(db path, oracle client, experiment id, artifact folder): one store for the module."""
    from mlflow import MlflowClient

    folder = tmp_path_factory.mktemp("mlstore")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    oracle = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = oracle.create_experiment("grader", artifact_location=(folder / "art").as_uri())
    return folder / "mlflow.db", oracle, exp, folder


@pytest.fixture(scope="module")
def wine():
    from sklearn.preprocessing import StandardScaler

    from airoad.data import load

    frame = load("wine")
    X = StandardScaler().fit_transform(frame.drop(columns="target").to_numpy(float))
    return X, frame["target"].to_numpy()


def _history(oracle, run_id: str, key: str) -> list[tuple[int, float]]:
    return sorted((m.step, m.value) for m in oracle.get_metric_history(run_id, key))


def _run(oracle, exp: str, name: str = "r", tags: dict | None = None) -> str:
    return oracle.create_run(exp, run_name=name, tags=tags or {}).info.run_id


def _sgd_history(X, y, seed: int, epochs: int = 5):
    from sklearn.linear_model import SGDClassifier

    model, accs = SGDClassifier(loss="log_loss", random_state=seed), []
    for _ in range(epochs):
        model.partial_fit(X, y, classes=np.unique(y))
        accs.append(float((model.predict(X) == y).mean()))
    return model, {"train_accuracy": accs}


def test_client_uses_the_explicit_uri_only(impl, store, tmp_path, monkeypatch):
    """sqlite_uri is sqlite:/// + the absolute path; make_client uses it for tracking AND registry."""
    import mlflow

    db, oracle, exp, _ = store
    monkeypatch.chdir(tmp_path)
    assert impl.sqlite_uri("sub/m.db") == f"sqlite:///{(tmp_path / 'sub' / 'm.db').resolve()}"
    assert impl.sqlite_uri(tmp_path / "a.db") == f"sqlite:///{tmp_path / 'a.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", (tmp_path / "elsewhere").as_uri())
    before = mlflow.get_tracking_uri()
    uri = impl.sqlite_uri(db)
    client = impl.make_client(uri)
    assert client.tracking_uri == uri, "the client must not take its URI from the environment"
    assert client._registry_uri == uri, "the registry URI must be the same explicit store"
    assert client.get_experiment(exp).name == oracle.get_experiment(exp).name
    assert mlflow.get_tracking_uri() == before, "mlflow's global tracking URI was changed"
    assert mlflow.active_run() is None


def test_ensure_experiment_creates_once(impl, store):
    """ensure_experiment creates the experiment with its artifact folder once, then returns its id."""
    _, oracle, _, folder = store
    first = impl.ensure_experiment(oracle, "ensure-once", folder / "ens")
    assert impl.ensure_experiment(oracle, "ensure-once", folder / "other") == first
    exp = oracle.get_experiment(first)
    assert exp.name == "ensure-once"
    assert exp.artifact_location == (folder / "ens").resolve().as_uri()


def test_ensure_experiment_survives_a_lost_race(impl, store):
    """When another process creates the experiment between the lookup and create, return its id."""
    _, oracle, _, folder = store

    class Racing:  # the lookup misses once, as if another process created it meanwhile
        def __init__(self):
            self.misses = 1

        def __getattr__(self, name):
            return getattr(oracle, name)

        def get_experiment_by_name(self, name):
            if self.misses:
                self.misses -= 1
                oracle.create_experiment(name, artifact_location=(folder / "r").as_uri())
                return None
            return oracle.get_experiment_by_name(name)

    got = impl.ensure_experiment(Racing(), "raced", folder / "r2")
    assert got == oracle.get_experiment_by_name("raced").experiment_id


def test_environment_tags_capture_versions(impl):
    """environment_tags records the python version, platform and numpy/sklearn/mlflow versions."""
    tags = impl.environment_tags()
    assert tags["env.python"] == platform.python_version()
    assert tags["env.platform"] == platform.platform()
    for key, dist in (("numpy", "numpy"), ("sklearn", "scikit-learn"), ("mlflow", "mlflow")):
        assert tags[f"env.{key}"] == dist_version(dist), f"env.{key} is not the installed version"


def test_start_run_logs_params_seed_tags_and_parent(impl, store):
    """start_run logs params and seed as strings, the environment tags, and the parent tag."""
    _, oracle, exp, _ = store
    parent = impl.start_run(oracle, exp, "p", {"alpha": 0.1, "depth": 3}, seed=7, tags={"k": "v"})
    child = impl.start_run(oracle, exp, "c", {"x": 1}, seed=7, parent_run_id=parent)
    p, c = oracle.get_run(parent), oracle.get_run(child)
    assert p.info.run_name == "p" and p.info.experiment_id == exp
    assert p.data.params == {"alpha": "0.1", "depth": "3", "seed": "7"}
    assert c.data.params == {"x": "1", "seed": "7"}
    assert p.data.tags["k"] == "v" and PARENT not in p.data.tags
    assert c.data.tags[PARENT] == parent, "a child run needs mlflow.parentRunId = parent's id"
    for tags in (p.data.tags, c.data.tags):
        assert {k: tags[k] for k in impl.environment_tags()} == impl.environment_tags()


class _ServerLimits:
    """The oracle, with the checks a tracking server makes on log_batch (the SQLite store doesn't)."""

    def __init__(self, oracle):
        self.oracle, self.batches = oracle, []

    def __getattr__(self, name):
        return getattr(self.oracle, name)

    def log_batch(self, run_id, metrics=(), params=(), tags=()):
        assert len(metrics) <= 1000, f"log_batch with {len(metrics)} metrics: the limit is 1000"
        self.batches.append(len(metrics))
        return self.oracle.log_batch(run_id, metrics=metrics, params=params, tags=tags)


def test_log_history_logs_every_step(impl, store):
    """log_history logs value i of each metric at step i, in ms timestamps, batches of <= 1000."""
    _, oracle, exp, _ = store
    run = _run(oracle, exp)
    loss = np.linspace(2.0, 0.1, 1203)
    client, now_ms = _ServerLimits(oracle), time.time() * 1000
    n = impl.log_history(client, run, {"loss": loss, "acc": [0.5, 0.75, 1.0]})
    assert n == 1206 and sum(client.batches) == 1206 and len(client.batches) <= 3
    stamps = [m.timestamp for m in oracle.get_metric_history(run, "acc")]
    assert all(abs(t - now_ms) < 120_000 for t in stamps), "timestamps are milliseconds since 1970"
    assert _history(oracle, run, "acc") == [(0, 0.5), (1, 0.75), (2, 1.0)]
    got = _history(oracle, run, "loss")
    assert [s for s, _ in got] == list(range(1203))
    np.testing.assert_array_equal([v for _, v in got], loss, err_msg="values must be exact")
    assert oracle.get_run(run).data.metrics["loss"] == pytest.approx(0.1), "latest = last step"


def test_log_history_rejects_non_finite(impl, store):
    """A NaN or inf value raises ValueError naming metric and step, and nothing is logged."""
    _, oracle, exp, _ = store
    for bad in (float("nan"), float("inf"), -float("inf")):
        run = _run(oracle, exp)
        with pytest.raises(ValueError, match=r"(?s)'?loss'?.*step 2"):
            impl.log_history(oracle, run, {"ok": [1.0, 2.0], "loss": [1.0, 0.5, bad, 0.2]})
        assert oracle.get_run(run).data.metrics == {}, "no point may be logged before the error"


def test_log_history_can_skip_non_finite(impl, store):
    """With skip_nonfinite the bad points are dropped and the others keep their own steps."""
    _, oracle, exp, _ = store
    run = _run(oracle, exp)
    n = impl.log_history(oracle, run, {"loss": [1.0, float("nan"), 0.5, float("inf")]},
                         skip_nonfinite=True)  # fmt: skip
    assert n == 2
    assert _history(oracle, run, "loss") == [(0, 1.0), (2, 0.5)]


def test_log_model_round_trips(impl, store, wine):
    """log_model stores model/model.joblib in the run and returns runs:/<id>/model."""
    _, oracle, exp, tmp = store
    X, y = wine
    model, _ = _sgd_history(X, y, seed=0, epochs=2)
    run = _run(oracle, exp)
    assert impl.log_model(oracle, run, model) == f"runs:/{run}/model"
    assert [f.path for f in oracle.list_artifacts(run, "model")] == ["model/model.joblib"]
    local = oracle.download_artifacts(run, "model/model.joblib", str(tmp))
    np.testing.assert_array_equal(joblib.load(local).predict(X), model.predict(X))


def test_log_sweep_nests_children_with_artifacts(impl, store, wine):
    """log_sweep makes a parent run and one FINISHED child per trial with history and artifacts."""
    from matplotlib.figure import Figure

    _, oracle, exp, _ = store
    X, y = wine
    trials = []
    for alpha in (1e-3, 1e-1):
        model, hist = _sgd_history(X, y, seed=1, epochs=3)
        fig = Figure()
        fig.add_subplot().plot(hist["train_accuracy"])
        trials.append(impl.Trial({"alpha": alpha}, hist, model, fig))
    trials.append(impl.Trial({"alpha": 1.0}, {"train_accuracy": [0.3]}))  # no artifacts
    parent, kids = impl.log_sweep(oracle, exp, "sweep", trials, seed=1, tags={"sess": "s1"})
    p = oracle.get_run(parent)
    assert p.info.status == "FINISHED" and p.info.run_name == "sweep"
    assert p.data.params == {"n_trials": "3", "seed": "1"} and p.data.tags["sess"] == "s1"
    assert len(kids) == len(set(kids)) == 3
    for trial, kid in zip(trials, kids, strict=True):
        r = oracle.get_run(kid)
        assert r.info.status == "FINISHED" and r.data.tags[PARENT] == parent
        assert r.data.params == {"alpha": str(trial.params["alpha"]), "seed": "1"}
        assert r.data.tags["sess"] == "s1"
        want = [(i, v) for i, v in enumerate(trial.history["train_accuracy"])]
        assert _history(oracle, kid, "train_accuracy") == want
        files = sorted(f.path for f in oracle.list_artifacts(kid))
        assert files == (["curve.png", "model"] if trial.model is not None else [])
    query = f"tags.`{PARENT}` = '{parent}'"
    assert {r.info.run_id for r in oracle.search_runs([exp], query)} == set(kids)


def test_log_sweep_marks_a_failed_trial(impl, store):
    """A trial that cannot be logged leaves its run and the parent FAILED, earlier ones FINISHED."""
    _, oracle, exp, _ = store
    trials = [impl.Trial({"a": 1}, {"m": [1.0]}), impl.Trial({"a": 2}, {"m": [float("nan")]})]
    marker = {"sess": "failing-sweep"}
    with pytest.raises(ValueError):
        impl.log_sweep(oracle, exp, "bad", trials, seed=0, tags=marker)
    runs = oracle.search_runs(
        [exp], "tags.sess = 'failing-sweep'", order_by=["attributes.start_time ASC"]
    )
    status = {r.info.run_name: r.info.status for r in runs}
    assert status == {"bad": "FAILED", "bad-0": "FINISHED", "bad-1": "FAILED"}


def test_best_runs_orders_and_filters(impl, store):
    """best_runs queries with the filter, orders best first either way, skips runs without it."""
    _, oracle, exp, _ = store
    values = {"a": 0.3, "b": 0.9, "c": 0.6, "d": None, "e": 0.1}
    ids = {}
    for name, v in values.items():
        ids[name] = _run(oracle, exp, name, {"grp": "best", "odd": str(name in "ace")})
        if v is not None:
            oracle.log_metric(ids[name], "score", v)
    got = impl.best_runs(oracle, [exp], "score", filter_string="tags.grp = 'best'")
    assert [r.info.run_name for r in got] == ["b", "c", "a", "e"]
    low = impl.best_runs(oracle, [exp], "score", higher_is_better=False,
                         filter_string="tags.grp = 'best' and tags.odd = 'True'")  # fmt: skip
    assert [r.info.run_name for r in low] == ["e", "a", "c"]
    one = impl.best_runs(oracle, [exp], "score", filter_string="tags.grp = 'best'", max_results=1)
    assert [r.info.run_name for r in one] == ["b"]


def test_children_finds_nested_runs(impl, store):
    """children returns exactly the runs whose mlflow.parentRunId is the parent."""
    _, oracle, exp, _ = store
    parent, other = _run(oracle, exp, "par"), _run(oracle, exp, "other")
    kids = {_run(oracle, exp, f"k{i}", {PARENT: parent}) for i in range(3)}
    _run(oracle, exp, "stranger", {PARENT: other})
    assert {r.info.run_id for r in impl.children(oracle, [exp], parent)} == kids


def test_same_seed_logs_the_same_run(impl, store, wine):
    """Two runs with the same seed log identical params, environment tags and metric curves."""
    _, oracle, exp, _ = store
    X, y = wine
    runs = []
    for seed in (3, 3, 4):
        _, hist = _sgd_history(X[::2], y[::2], seed=seed, epochs=4)
        run = impl.start_run(oracle, exp, "repro", {"epochs": 4}, seed=seed)
        impl.log_history(oracle, run, hist)
        runs.append(run)
    a, b, c = (oracle.get_run(r).data for r in runs)
    assert a.params == b.params == {"epochs": "4", "seed": "3"} and c.params["seed"] == "4"
    assert {k: v for k, v in a.tags.items() if k.startswith("env.")} == {
        k: v for k, v in b.tags.items() if k.startswith("env.")}  # fmt: skip
    curves = [_history(oracle, r, "train_accuracy") for r in runs]
    assert curves[0] == curves[1], "the same seed must log the same curve"
    assert len(curves[0]) == 4 and math.isfinite(curves[0][-1][1])


def test_two_writers_at_once(impl, store):
    """Two threads, each with its own client on the same store, log complete runs at once."""
    db, oracle, exp, _ = store
    start, out, errors = threading.Barrier(2), {}, []

    def write(i: int) -> None:
        try:
            client = impl.make_client(impl.sqlite_uri(db))
            start.wait(timeout=30)
            run = impl.start_run(client, exp, f"w{i}", {"i": i}, seed=i)
            impl.log_history(client, run, {"m": np.arange(300.0) + i})
            out[i] = run
        except Exception as exc:  # reported below with the thread's number
            errors.append(f"writer {i}: {exc!r}")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    for i, run in out.items():
        assert _history(oracle, run, "m") == [(s, s + float(i)) for s in range(300)]
    assert len(out) == 2


def test_nothing_touches_global_mlflow_state(impl, store, tmp_path, monkeypatch):
    """The functions never set mlflow's global URI, experiment or active run (the platform's)."""
    import mlflow

    db, oracle, _, _ = store
    elsewhere = tmp_path / "platform"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", elsewhere.as_uri())
    before = mlflow.get_tracking_uri()
    client = impl.make_client(impl.sqlite_uri(db))
    exp = impl.ensure_experiment(client, "lab-global", tmp_path / "art")
    trial = impl.Trial({"a": 1}, {"m": [1.0, 2.0]}, {"w": 1})
    parent, _ = impl.log_sweep(client, exp, "s", [trial], seed=0)
    assert mlflow.get_tracking_uri() == before and mlflow.active_run() is None
    assert not elsewhere.exists(), "something was logged through mlflow's global tracking URI"
    assert oracle.get_run(parent).info.experiment_id == exp and (tmp_path / "art").is_dir()
