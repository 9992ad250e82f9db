"""The MLflow model registry, by hand: numbered versions of a registered model, movable aliases
(``champion``, ``challenger``), and a promotion rule on a metric.

A version points at a run's artifact folder (``<run artifact uri>/model``); an alias names one
version, and whatever loads ``name@champion`` (a server at start-up) follows the alias. Every
new version enters as ``challenger``; ``promote`` moves ``champion`` to it only if it beats the
current champion by more than a margin. All calls go through an explicit ``MlflowClient``
(``experiment_tracking.make_client``), never through mlflow's global state.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airoad.errors import AiroadError
from airoad.production.experiment_tracking import MODEL_FILE

if TYPE_CHECKING:
    from mlflow import MlflowClient
    from mlflow.entities.model_registry import ModelVersion


def register(
    client: MlflowClient,
    name: str,
    run_id: str,
    artifact_path: str = "model",
    tags: Mapping[str, str] | None = None,
) -> int:
    """Register the run's ``artifact_path`` folder as a new version of ``name`` (the registered
    model is created first if missing, safely under a race); return the version number."""
    from mlflow.exceptions import MlflowException

    run = client.get_run(run_id)
    if not client.list_artifacts(run_id, artifact_path):
        raise AiroadError(
            f"run {run_id} has no artifact '{artifact_path}': log the model (log_model) "
            "before registering it"
        )
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{run.info.artifact_uri}/{artifact_path}"
    version = client.create_model_version(name, source, run_id=run_id, tags=dict(tags or {}))
    return int(version.version)


def set_alias(client: MlflowClient, name: str, alias: str, version: int) -> None:
    """Point ``name@alias`` at ``version``; a version that does not exist is a clear error."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_model_version(name, str(version))
    except MlflowException:
        known = [int(v.version) for v in client.search_model_versions(f"name = '{name}'")]
        raise AiroadError(
            f"registered model '{name}' has no version {version} (it has {sorted(known)}): "
            "register the model first, then set the alias"
        ) from None
    client.set_registered_model_alias(name, alias, str(version))


def alias_version(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``name@alias`` points at, or None when the model or the alias is missing."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException:
        return None


def version_metric(client: MlflowClient, version: ModelVersion, metric: str) -> float:
    """The latest value of ``metric`` logged by the run that produced ``version``."""
    metrics = client.get_run(version.run_id).data.metrics
    if metric not in metrics:
        raise AiroadError(
            f"the run of version {version.version} of '{version.name}' logged no metric "
            f"'{metric}' (it has {sorted(metrics)}): promote on a metric every version logs"
        )
    return float(metrics[metric])


def should_promote(
    challenger: float, champion: float | None, margin: float = 0.0, higher_is_better: bool = True
) -> bool:
    """True when the challenger beats the champion by MORE than ``margin`` (a tie is not enough).

    improvement = challenger - champion (or champion - challenger when lower is better).
    No champion (None or NaN) -> promote any finite challenger; a non-finite challenger never
    wins. ``margin`` must be a finite number >= 0.
    """
    if not math.isfinite(margin) or margin < 0:
        raise ValueError(f"margin must be a finite number >= 0, got {margin}")
    if not math.isfinite(challenger):
        return False
    if champion is None or math.isnan(champion):
        return True
    improvement = challenger - champion if higher_is_better else champion - challenger
    return improvement > margin


def promote(
    client: MlflowClient,
    name: str,
    metric: str,
    *,
    margin: float = 0.0,
    higher_is_better: bool = True,
) -> dict[str, Any]:
    """Apply ``should_promote`` to ``name@challenger`` against ``name@champion`` on ``metric``.

    Promoted: ``champion`` moves to the challenger's version and the ``challenger`` alias is
    removed. Either way the challenger version gets the tag ``promotion`` = promoted/rejected.
    Returns {promoted, challenger, champion (version before, or None), challenger_metric,
    champion_metric (or None)}.
    """
    challenger = alias_version(client, name, "challenger")
    if challenger is None:
        raise AiroadError(
            f"registered model '{name}' has no 'challenger' alias: set_alias it to a version first"
        )
    champion = alias_version(client, name, "champion")
    new = version_metric(client, challenger, metric)
    old = None if champion is None else version_metric(client, champion, metric)
    promoted = should_promote(new, old, margin, higher_is_better)
    if promoted:
        client.set_registered_model_alias(name, "champion", challenger.version)
        client.delete_registered_model_alias(name, "challenger")
    verdict = "promoted" if promoted else "rejected"
    client.set_model_version_tag(name, challenger.version, "promotion", verdict)
    return {
        "promoted": promoted,
        "challenger": int(challenger.version),
        "champion": None if champion is None else int(champion.version),
        "challenger_metric": new,
        "champion_metric": old,
    }


def load_version(client: MlflowClient, name: str, alias: str) -> Any:
    """Load the joblib model behind ``name@alias`` (what a server does at start-up)."""
    import joblib
    from mlflow.artifacts import download_artifacts

    version = alias_version(client, name, alias)
    if version is None:
        raise AiroadError(f"registered model '{name}' has no alias '{alias}': set_alias it first")
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_artifacts(artifact_uri=version.source, dst_path=tmp)
        return joblib.load(Path(folder) / MODEL_FILE)
