"""The local dataset cache: what is present, fetching (atomic, verified), loading."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from airoad.data.registry import REGISTRY, Dataset
from airoad.data.sources import Note, quiet
from airoad.errors import AiroadError, DatasetMissing
from airoad.home import data_dir, shared_data_dirs

Status = Literal["ok", "bundled", "missing", "corrupt"]


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


def problems(ds: Dataset, where: Path | None = None) -> list[str]:
    """Empty when every file is present with the registered checksum (in `where`, by default
    the dataset's folder in the cache)."""
    out = []
    for fname, expected in ds.files.items():
        path = (where or folder(ds)) / fname
        if not path.is_file():
            out.append(f"{fname}: missing")
        elif sha256(path) != expected:
            out.append(f"{fname}: checksum mismatch (corrupted or truncated)")
    return out


def status(ds: Dataset) -> tuple[Status, list[str]]:
    """('ok' | 'bundled' | 'missing' | 'corrupt', problems). A file with a wrong checksum
    makes the dataset corrupt even when others are missing: that is the state to report."""
    if not ds.files:
        return "bundled", []
    found = problems(ds, location(ds))
    if not found:
        return "ok", []
    if any("mismatch" in p for p in found):
        return "corrupt", found
    return "missing", found


def _complete(where: Path, ds: Dataset) -> bool:
    return all((where / f).is_file() for f in ds.files)


def location(ds: Dataset) -> Path | None:
    """The folder to load `ds` from: the cache, else a shared cache (see home.shared_data_dirs)."""
    if _complete(folder(ds), ds):
        return folder(ds)
    return next(
        (base / ds.name for base in shared_data_dirs() if _complete(base / ds.name, ds)), None
    )


def is_present(ds: Dataset) -> bool:
    return location(ds) is not None


def disk_bytes(ds: Dataset) -> int:
    """Bytes the dataset's cached files take (0 when absent)."""
    return sum(p.stat().st_size for f in ds.files if (p := folder(ds) / f).is_file())


def fetch(ds: Dataset, force: bool = False, note: Note = quiet) -> str:
    """Fetch `ds` unless it is present and verified. Returns 'present' or 'fetched'.

    Files are fetched into a temp folder beside the cache and verified there, then moved in
    with os.replace: an interrupted or failed fetch never leaves a half-written file under
    its real name, and a good older copy stays until a verified new one replaces it.
    """
    if not ds.files:
        return "present"
    if not force:
        note("verifying cached files")
        if not problems(ds):
            return "present"
        shared = location(ds)
        if shared is not None and shared != folder(ds) and not problems(ds, shared):
            return "present"  # a verified copy in the shared cache serves this home
    target = folder(ds)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(ds)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{ds.name}-") as tmp:
        ds.source.fetch_into(Path(tmp), note)
        note("checking sha256")
        for fname, expected in ds.files.items():
            path = Path(tmp) / fname
            if not path.is_file():
                raise AiroadError(
                    f"{ds.source.describe()} did not provide {fname} for "
                    f"dataset '{ds.name}'; nothing was replaced"
                )
            got = sha256(path)
            if got != expected:
                raise AiroadError(
                    f"{ds.name}/{fname} downloaded with sha256 {got[:12]}..., expected "
                    f"{expected[:12]}...: the source changed; nothing was replaced"
                )
        target.mkdir(exist_ok=True)
        for fname in ds.files:
            os.replace(Path(tmp) / fname, target / fname)
    return "fetched"


def _remove_stale_temps(ds: Dataset, max_age_s: float = 3600.0) -> None:
    """Delete temp folders a killed fetch (SIGKILL, power loss) left beside the cache. Only old
    ones: a young folder may belong to a fetch still running in another process."""
    now = time.time()
    for tmp in data_dir().glob(f".{ds.name}-*"):
        if tmp.is_dir() and now - tmp.stat().st_mtime > max_age_s:
            shutil.rmtree(tmp, ignore_errors=True)


def remove(ds: Dataset) -> None:
    shutil.rmtree(folder(ds), ignore_errors=True)


def load(name: str) -> Any:
    """Load a dataset from the cache; a missing one names the command that fetches it."""
    ds = get(name)
    where = location(ds)
    if where is None:
        raise DatasetMissing(name)
    return ds.loader(where)
