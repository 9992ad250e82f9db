"""Experiment tracking with MLflow, written by hand: runs, per-step metrics, artifacts, nested
sweeps and queries. The model registry and its promotion rule are in ``model_registry``.

Everything goes through one ``MlflowClient`` built with an explicit tracking AND registry URI.
Nothing here calls ``mlflow.set_tracking_uri``, ``set_experiment`` or ``start_run``: those
change process-wide state, and airoad's own run logging (``airoad.labs.tracking``) relies on it.

The store is a SQLite file; artifacts live in the folder the experiment names. A run is::

    run (params: strings, set once) --+-- metrics: key -> [(step, value, timestamp)], many
                                      +-- tags: strings (environment, parent run, ...)
                                      +-- artifacts: files (a figure, a model file)

A sweep is a parent run whose children carry the tag ``mlflow.parentRunId``.
"""

from __future__ import annotations

import math
import platform
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airoad.errors import AiroadError

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities import Run

PARENT_TAG = "mlflow.parentRunId"  # the tag the MLflow UI nests child runs under
MODEL_FILE = "model.joblib"
_BATCH = 1000  # MLflow accepts at most 1000 metrics in one log_batch call


class NonFiniteMetric(AiroadError, ValueError):
    """A metric value is NaN or infinite (MLflow would store NaN, and inf as 1.8e308)."""


@dataclass
class Trial:
    """One child run of a sweep: its params, per-step metric history, and optional artifacts.

    ``history`` maps a metric name to its values at steps 0, 1, 2, ...; ``model`` is any
    picklable estimator (saved as ``model/model.joblib``); ``figure`` a matplotlib figure.
    """

    params: dict[str, Any]
    history: dict[str, Sequence[float]]
    model: Any = None
    figure: Any = None
    tags: dict[str, str] = field(default_factory=dict)


def sqlite_uri(db_path: str | Path) -> str:
    """The SQLAlchemy URI of a SQLite store: ``sqlite:///`` + the file's absolute path."""
    return f"sqlite:///{Path(db_path).expanduser().resolve()}"


def make_client(uri: str) -> MlflowClient:
    """An ``MlflowClient`` whose tracking and registry URIs are both ``uri`` (explicit, never
    taken from the environment or mlflow's global state)."""
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def ensure_experiment(client: MlflowClient, name: str, artifact_dir: str | Path) -> str:
    """The id of experiment ``name``, created with its artifacts under ``artifact_dir`` if new.

    Safe when two processes create it at once: the loser of the race reads the winner's id.
    """
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = Path(artifact_dir).expanduser().resolve().as_uri()
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
        return client.get_experiment_by_name(name).experiment_id


def environment_tags() -> dict[str, str]:
    """What a rerun needs to match: ``env.python``, ``env.platform`` and the versions of
    numpy, scikit-learn and mlflow as ``env.numpy`` / ``env.sklearn`` / ``env.mlflow``."""
    from importlib.metadata import version

    tags = {"env.python": platform.python_version(), "env.platform": platform.platform()}
    for key, dist in (("numpy", "numpy"), ("sklearn", "scikit-learn"), ("mlflow", "mlflow")):
        tags[f"env.{key}"] = version(dist)
    return tags


def start_run(
    client: MlflowClient,
    experiment_id: str,
    run_name: str,
    params: Mapping[str, Any],
    *,
    seed: int,
    parent_run_id: str | None = None,
    tags: Mapping[str, str] | None = None,
) -> str:
    """Create a run and return its id: ``params`` plus ``seed`` logged as params (strings),
    ``environment_tags()`` plus ``tags`` as tags, and ``mlflow.parentRunId`` when nested."""
    from mlflow.entities import Param

    all_tags = {**environment_tags(), **(tags or {})}
    if parent_run_id is not None:
        all_tags[PARENT_TAG] = parent_run_id
    run_id = client.create_run(experiment_id, run_name=run_name, tags=all_tags).info.run_id
    values = {**params, "seed": seed}
    client.log_batch(run_id, params=[Param(k, str(v)) for k, v in values.items()])
    return run_id


def log_history(
    client: MlflowClient,
    run_id: str,
    history: Mapping[str, Sequence[float]],
    *,
    skip_nonfinite: bool = False,
) -> int:
    """Log each metric's values at steps 0..n-1 (batched); return how many points were logged.

    A NaN or infinite value raises ``NonFiniteMetric`` naming the metric and step before
    anything is logged; with ``skip_nonfinite`` those points are dropped instead.
    """
    from mlflow.entities import Metric

    stamp = int(time.time() * 1000)
    points = []
    for key, values in history.items():
        for step, value in enumerate(values):
            if not math.isfinite(float(value)):
                if skip_nonfinite:
                    continue
                raise NonFiniteMetric(
                    f"metric '{key}' is {float(value)} at step {step}: fix the training that "
                    "produced it, or pass skip_nonfinite=True to drop such points"
                )
            points.append(Metric(key, float(value), stamp, step))
    for start in range(0, len(points), _BATCH):
        client.log_batch(run_id, metrics=points[start : start + _BATCH])
    return len(points)


def log_model(client: MlflowClient, run_id: str, model: Any, artifact_path: str = "model") -> str:
    """Save ``model`` with joblib as ``<artifact_path>/model.joblib`` in the run's artifacts;
    return the ``runs:/<run_id>/<artifact_path>`` URI."""
    import joblib

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / MODEL_FILE
        joblib.dump(model, path)
        client.log_artifact(run_id, str(path), artifact_path)
    return f"runs:/{run_id}/{artifact_path}"


def log_sweep(
    client: MlflowClient,
    experiment_id: str,
    name: str,
    trials: Sequence[Trial],
    *,
    seed: int,
    tags: Mapping[str, str] | None = None,
) -> tuple[str, list[str]]:
    """A parent run ``name`` with one finished child per trial: params, history, ``model/`` and
    ``curve.png`` when given. Returns (parent id, child ids in trial order). If a trial fails,
    its run and the parent end FAILED and the error propagates."""
    parent = start_run(client, experiment_id, name, {"n_trials": len(trials)}, seed=seed, tags=tags)
    children: list[str] = []
    open_runs = [parent]  # the runs to mark FAILED if a trial raises
    try:
        for i, trial in enumerate(trials):
            child = start_run(
                client, experiment_id, f"{name}-{i}", trial.params, seed=seed,
                parent_run_id=parent, tags={**(tags or {}), **trial.tags},
            )  # fmt: skip
            children.append(child)
            open_runs.append(child)
            log_history(client, child, trial.history)
            if trial.model is not None:
                log_model(client, child, trial.model)
            if trial.figure is not None:
                client.log_figure(child, trial.figure, "curve.png")
            client.set_terminated(child, "FINISHED")
            open_runs.remove(child)
    except BaseException:
        for run_id in open_runs:
            client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(parent, "FINISHED")
    return parent, children


def best_runs(
    client: MlflowClient,
    experiment_ids: Sequence[str],
    metric: str,
    *,
    higher_is_better: bool = True,
    filter_string: str = "",
    max_results: int = 10,
) -> list[Run]:
    """Runs matching ``filter_string`` that logged ``metric``, best (latest value) first,
    found by ``search_runs`` with ``order_by`` (e.g. ``metrics.`rmse` ASC``)."""
    order = "DESC" if higher_is_better else "ASC"
    runs = client.search_runs(
        list(experiment_ids),
        filter_string,
        order_by=[f"metrics.`{metric}` {order}", "attributes.start_time ASC"],
        max_results=max_results,
    )
    return [r for r in runs if metric in r.data.metrics]  # runs without it sort last


def children(client: MlflowClient, experiment_ids: Sequence[str], parent_run_id: str) -> list[Run]:
    """The runs nested under ``parent_run_id`` (their ``mlflow.parentRunId`` tag)."""
    query = f"tags.`{PARENT_TAG}` = '{parent_run_id}'"
    return client.search_runs(list(experiment_ids), query, order_by=["attributes.start_time ASC"])
