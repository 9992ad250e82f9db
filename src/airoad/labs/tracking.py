"""Log a finished run to MLflow: a SQLite store under $AIROAD_HOME, artifacts beside it.

The artifact location is set explicitly when the experiment is created; otherwise MLflow
with a SQLite store would write into ./mlruns of whatever folder the learner stands in.

Logging holds an exclusive file lock (`mlflow.db.lock`): MLflow creates and migrates the SQLite
schema on first use, and two first runs at once in a fresh home would race in that (and in
creating the experiment) and crash with a SQLAlchemy traceback.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from airoad.home import file_lock, home

EXPERIMENT = "airoad"


def tracking_uri() -> str:
    return f"sqlite:///{home() / 'mlflow.db'}"


def artifact_root() -> Path:
    return home() / "mlartifacts"


def log_run(
    lab_id: str, quick: bool, config: dict[str, Any], metrics: dict[str, Any], run_dir: Path
) -> str:
    """Record params, numeric metrics and the run folder's files; returns the MLflow run id."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    import mlflow

    # MLflow announces its database migrations at INFO; the learner needs none of that.
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.ERROR)

    with file_lock(home() / "mlflow.db.lock"):
        return _log(mlflow, lab_id, quick, config, metrics, run_dir)


def _log(
    mlflow: Any,
    lab_id: str,
    quick: bool,
    config: dict[str, Any],
    metrics: dict[str, Any],
    run_dir: Path,
) -> str:
    mlflow.set_tracking_uri(tracking_uri())
    experiment = mlflow.get_experiment_by_name(EXPERIMENT)
    if experiment is None:
        experiment_id = mlflow.create_experiment(
            EXPERIMENT, artifact_location=artifact_root().as_uri()
        )
    else:
        experiment_id = experiment.experiment_id
    numeric = {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    with mlflow.start_run(experiment_id=experiment_id, run_name=run_dir.name) as active:
        mlflow.set_tags({"lab": lab_id, "quick": str(quick), "run_dir": str(run_dir)})
        mlflow.log_params({k: str(v)[:250] for k, v in config.items()})
        mlflow.log_metrics(numeric)
        mlflow.log_artifacts(str(run_dir))
        return active.info.run_id
