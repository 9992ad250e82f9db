"""The artifact cache: models one lab trains and another lab loads.

An entry lives at ``<data dir>/artifacts/<lab id>/<config hash>/<name>/`` with a
``manifest.json`` listing the sha256 of every file in it. It sits in the dataset cache, not in
``$AIROAD_HOME``, so a fresh home (a test, `lab-contract`) finds what `airoad run` made.

- producer: ``ctx.save_artifact(name, writer)`` inside a runner (``writer(folder)`` writes files);
- consumer: ``require(lab_id, name)`` returns the folder, training the producer's config on a
  miss (or saying which command makes it).
An entry whose files no longer match their manifest is treated as missing, never loaded.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from airoad.errors import AiroadError
from airoad.home import data_dir, shared_data_dirs

MANIFEST = "manifest.json"


class ArtifactMissing(AiroadError):
    """A lab needs a model another lab trains, and it is not in the cache."""


def config_hash(config: Any) -> str:
    """A short, stable hash of a config dataclass (or a plain dict of its values)."""
    values = dataclasses.asdict(config) if dataclasses.is_dataclass(config) else dict(config)
    text = json.dumps(values, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _relative(lab_id: str, config: Any, name: str) -> Path:
    return Path("artifacts") / lab_id / config_hash(config) / name


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _files(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): _sha256(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    }


def is_valid(folder: Path) -> bool:
    """True when the folder has a manifest and every listed file has the recorded hash."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
        return bool(manifest["files"]) and _files(folder) == manifest["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def lookup(lab_id: str, config: Any, name: str) -> Path | None:
    """The entry's folder if a valid copy exists in this cache or a shared one, else None."""
    rel = _relative(lab_id, config, name)
    for root in [data_dir(), *shared_data_dirs()]:
        folder = root / rel
        if folder.is_dir() and is_valid(folder):
            return folder
    return None


def save(lab_id: str, config: Any, name: str, writer: Callable[[Path], None]) -> Path:
    """Write an entry atomically: ``writer`` fills a temp folder, then it is moved into place."""
    final = data_dir() / _relative(lab_id, config, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{name}."))
    try:
        writer(tmp)
        files = _files(tmp)
        if not files:
            raise AiroadError(f"artifact '{name}' of lab '{lab_id}' wrote no files")
        manifest = {
            "lab": lab_id,
            "name": name,
            "config": dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config,
            "created": datetime.now().isoformat(timespec="seconds"),
            "files": files,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str), "utf-8")
        _replace(tmp, final, name)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _replace(tmp: Path, final: Path, name: str) -> None:
    """Move ``tmp`` into place. Another process saving the same entry at the same moment may put
    its copy there first (os.replace cannot overwrite a full folder): a valid copy is kept."""
    for _ in range(3):
        if final.exists():  # a stale or corrupt entry: move it aside, then drop it
            stale = final.with_name(f".{name}.stale-{os.getpid()}")
            try:
                os.replace(final, stale)
            except FileNotFoundError:  # the other writer moved it first
                pass
            shutil.rmtree(stale, ignore_errors=True)
        try:
            os.replace(tmp, final)
            return
        except OSError:
            if is_valid(final):
                shutil.rmtree(tmp, ignore_errors=True)
                return
    raise AiroadError(f"could not store artifact '{name}' in {final.parent}: it kept changing")


def command_for(lab_id: str, quick: bool, pairs: Sequence[str] = ()) -> str:
    sets = "".join(f" --set {p}" for p in pairs)
    return f"airoad run {lab_id}{' --quick' if quick else ''}{sets}"


def require(
    lab_id: str,
    name: str,
    quick: bool = True,
    pairs: Sequence[str] = (),
    train_if_missing: bool = True,
    progress: Any = None,
) -> Path:
    """The folder of lab ``lab_id``'s artifact ``name`` for its quick (or full) config.

    On a miss, run that lab's config now (``train_if_missing``) or stop with one line naming
    the command that makes it.
    """
    from airoad.labs.runner import built_entry, resolve_config, run_lab

    config = resolve_config(built_entry(lab_id), quick, pairs)
    found = lookup(lab_id, config, name)
    if found is not None:
        return found
    command = command_for(lab_id, quick, pairs)
    if not train_if_missing:
        raise ArtifactMissing(
            f"lab '{lab_id}' has not saved its '{name}' model yet: run `{command}` first"
        )
    with tempfile.TemporaryDirectory(prefix=f"airoad-{lab_id}-") as out:
        run_lab(lab_id, quick=quick, pairs=pairs, out=Path(out), track=False, progress=progress)
    found = lookup(lab_id, config, name)
    if found is None:
        raise AiroadError(f"`{command}` finished but saved no artifact named '{name}'")
    return found
