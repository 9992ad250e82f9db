"""The local dataset cache: what is present, fetching (atomic, verified), loading."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from airoad.data.registry import REGISTRY, Dataset
from airoad.errors import AiroadError, DatasetMissing
from airoad.home import data_dir


def get(name: str) -> Dataset:
    _ensure_registered()
    if name not in REGISTRY:
        known = ", ".join(sorted(REGISTRY))
        raise AiroadError(f"unknown dataset '{name}'; known datasets: {known}")
    return REGISTRY[name]


def all_datasets() -> list[Dataset]:
    _ensure_registered()
    return [REGISTRY[k] for k in sorted(REGISTRY)]


def _ensure_registered() -> None:
    import airoad.data.datasets  # noqa: F401  (registers the entries on import)


def folder(ds: Dataset) -> Path:
    return data_dir() / ds.name


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def problems(ds: Dataset) -> list[str]:
    """Empty when every file is present with the registered checksum."""
    out = []
    for fname, expected in ds.files.items():
        path = folder(ds) / fname
        if not path.is_file():
            out.append(f"{fname}: missing")
        elif sha256(path) != expected:
            out.append(f"{fname}: checksum mismatch (corrupted or truncated)")
    return out


def is_present(ds: Dataset) -> bool:
    return all((folder(ds) / f).is_file() for f in ds.files)


def fetch(ds: Dataset, force: bool = False) -> str:
    """Fetch `ds` unless it is present and verified. Returns 'present' or 'fetched'.

    Files are fetched into a temp folder beside the cache, verified, then moved in with
    os.replace, so an interrupted fetch never leaves a half-written file under its real name.
    """
    if not ds.files:
        return "present"
    if not force and not problems(ds):
        return "present"
    target = folder(ds)
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{ds.name}-") as tmp:
        ds.source.fetch_into(Path(tmp))
        for fname, expected in ds.files.items():
            got = sha256(Path(tmp) / fname)
            if got != expected:
                raise AiroadError(
                    f"{ds.name}/{fname} downloaded with sha256 {got[:12]}..., expected "
                    f"{expected[:12]}...: the source changed; nothing was replaced")
        target.mkdir(exist_ok=True)
        for fname in ds.files:
            os.replace(Path(tmp) / fname, target / fname)
    return "fetched"


def remove(ds: Dataset) -> None:
    shutil.rmtree(folder(ds), ignore_errors=True)


def load(name: str) -> Any:
    """Load a dataset from the cache; a missing one names the command that fetches it."""
    ds = get(name)
    if not is_present(ds):
        raise DatasetMissing(name)
    return ds.loader(folder(ds))
