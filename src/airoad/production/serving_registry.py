"""The model registry side of `airoad serve`: a lab id and an alias -> an artifact folder.

The registry is the platform's MLflow store (SQLite under ``$AIROAD_HOME``, through an
``MlflowClient`` with that explicit URI). Registered model name = lab id; a version's source is
an artifact folder of the artifact cache, tagged with the config hash and the test accuracy.
When the alias is missing, the lab's cached artifact is registered as a new version and the
alias is set on it; when that artifact is missing too, one sentence names the `airoad run`
command that makes it. Every folder is checked against its manifest before it is served.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from airoad.errors import AiroadError
from airoad.labs import artifacts

# Lab id -> the artifact it saves that `airoad serve` can serve. Issue 14's generative labs add
# their generator here (an artifact whose lab.json says "kind": "image-generator").
SERVABLE = {"bert-sentiment": "classifier"}
DEFAULT_ALIAS = "champion"


def lab_spec(folder: Path) -> dict:
    """The artifact's lab.json ({} when absent or unreadable)."""
    try:
        return json.loads((folder / "lab.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


@dataclass(frozen=True)
class Resolved:
    """What the registry alias points at."""

    lab_id: str
    alias: str
    version: str
    folder: Path
    registered_now: bool  # True when this call registered the cached artifact


# ---------------------------------------------------------------- the registry


def _client():
    from airoad.labs.tracking import tracking_uri

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    for name in ("mlflow", "alembic"):  # schema-migration chatter at INFO on a fresh store
        logging.getLogger(name).setLevel(logging.ERROR)
    uri = tracking_uri()
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _by_alias(client, name: str, alias: str):
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise


def servable_artifact(lab_id: str) -> str:
    """The artifact name `airoad serve` loads for this lab; one clear line for any other lab."""
    from airoad.labs.runner import built_entry

    built_entry(lab_id)  # unknown or planned lab: the catalog's own one-line error
    if lab_id not in SERVABLE:
        raise AiroadError(
            f"lab '{lab_id}' saves no model `airoad serve` can serve: serve one of "
            f"{', '.join(sorted(SERVABLE))}"
        )
    return SERVABLE[lab_id]


def register_artifact(client, lab_id: str, folder: Path, config: Any, alias: str) -> Any:
    """A new registry version whose source is the artifact folder, with the alias set on it."""
    from mlflow.exceptions import MlflowException

    try:
        client.create_registered_model(lab_id)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    spec = lab_spec(folder)
    tags = {"config_hash": artifacts.config_hash(config), "artifact": folder.name}
    if "test_accuracy" in spec:
        tags["test_accuracy"] = str(spec["test_accuracy"])
    version = client.create_model_version(lab_id, str(folder.resolve()), tags=tags)
    client.set_registered_model_alias(lab_id, alias, version.version)
    return version


def _source_folder(source: str) -> Path:
    return Path(source.removeprefix("file://"))


def verify(folder: Path, what: str) -> Path:
    """The folder, if every file still matches its manifest; else one line saying what to do."""
    if not folder.is_dir() or not artifacts.is_valid(folder):
        raise AiroadError(
            f"{what} points at {folder}, which is missing or whose files no longer match its "
            "manifest: run the lab again (`airoad run ...`) and point the alias at the new version"
        )
    return folder


def resolve_model(lab_id: str, alias: str = DEFAULT_ALIAS, quick: bool = False) -> Resolved:
    """The artifact folder registered model ``lab_id`` @ ``alias`` points at (see module doc)."""
    from airoad.home import file_lock, home
    from airoad.labs.runner import built_entry, resolve_config

    name = servable_artifact(lab_id)
    registered_now = False
    # One writer at a time: a fresh store creates its schema on first use (see tracking.py).
    with file_lock(home() / "mlflow.db.lock"):
        client = _client()
        version = _by_alias(client, lab_id, alias)
        if version is None:
            config = resolve_config(built_entry(lab_id), quick, ())
            folder = artifacts.lookup(lab_id, config, name)
            if folder is None:
                raise artifacts.ArtifactMissing(
                    f"lab '{lab_id}' has not saved its '{name}' model yet: run "
                    f"`{artifacts.command_for(lab_id, quick)}` first, then `airoad serve` again"
                )
            version = register_artifact(client, lab_id, folder, config, alias)
            registered_now = True
    folder = _source_folder(version.source)
    verify(folder, f"registered model '{lab_id}' version {version.version} (alias '{alias}')")
    return Resolved(lab_id, alias, str(version.version), folder, registered_now)
