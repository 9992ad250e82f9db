"""The local dataset cache: what is present, fetching (atomic, verified), loading.

Where a dataset is read from is `location()`: the first folder of `home.data_dirs()` holding all
its files. Every command, `load()` and the graders go through it.

Loading verifies cheaply: a full sha256 check records each file's size and timestamps in a
sidecar (`.verified.json` in the dataset's folder); a later load re-hashes only a file whose
size or timestamps changed, so a truncated or edited dataset never runs silently.

A dataset's `derived` files (a model converted at fetch time) have no pinned sha256: fetch
records theirs in a manifest (`.derived.json`) and every later check compares against it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Literal

from airoad.data.registry import REGISTRY, Dataset
from airoad.data.sources import Note, quiet
from airoad.errors import AiroadError, DatasetMissing
from airoad.home import data_dir, data_dirs, writable_dir, write_json_atomic

Status = Literal["ok", "bundled", "missing", "corrupt"]
SIDECAR = ".verified.json"
MANIFEST = ".derived.json"


class DatasetCorrupt(AiroadError):
    """The copy of a dataset that would be read does not match its registered sha256."""

    def __init__(self, name: str, where: Path, found: list[str]):
        super().__init__(
            f"dataset '{name}' in {where} is damaged ({'; '.join(found)}): "
            f"run `airoad data fetch {name}` to replace it"
        )
        self.name = name


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


def checksums(ds: Dataset, where: Path) -> dict[str, str]:
    """File name -> the sha256 it must have in `where`: the pinned `files`, plus each derived
    file's sha256 recorded in `where`'s manifest ('' when unrecorded: it never matches)."""
    if not ds.derived:
        return dict(ds.files)
    try:
        recorded = json.loads((where / MANIFEST).read_text(encoding="utf-8"))["files"]
    except (OSError, ValueError, KeyError, TypeError):
        recorded = {}
    recorded = recorded if isinstance(recorded, dict) else {}
    return {**ds.files, **{f: str(recorded.get(f, "")) for f in ds.derived}}


def problems(ds: Dataset, where: Path | None = None) -> list[str]:
    """Empty when every file is present with the registered (or, for a derived file, recorded)
    checksum (in `where`, by default the dataset's folder in the cache)."""
    where = where or folder(ds)
    out, stamps = [], {}
    for fname, expected in checksums(ds, where).items():
        path = where / fname
        if not path.is_file():
            out.append(f"{fname}: missing")
            continue
        stamp = _stamp(path)  # taken before hashing: a write during the hash changes it
        if not expected:
            out.append(f"{fname}: checksum mismatch (no sha256 recorded when it was made)")
        elif sha256(path) != expected:
            out.append(f"{fname}: checksum mismatch (corrupted or truncated)")
        else:
            stamps[fname] = {"sha256": expected, **stamp}
    if not out:
        _write_sidecar(where, stamps)
    return out


def _stamp(path: Path) -> dict[str, int]:
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns}


def _write_sidecar(where: Path, stamps: dict[str, dict]) -> None:
    """Remember what was verified; best effort (a read-only shared cache just re-hashes)."""
    with contextlib.suppress(OSError):
        write_json_atomic(where / SIDECAR, {"files": stamps})


def _unchanged_since_verified(ds: Dataset, where: Path) -> bool:
    """True when every file has the size and timestamps recorded when it last hashed right."""
    try:
        seen = json.loads((where / SIDECAR).read_text(encoding="utf-8"))["files"]
        return all(
            seen[f] == {"sha256": expected, **_stamp(where / f)}
            for f, expected in checksums(ds, where).items()
        )
    except (OSError, ValueError, KeyError, TypeError):
        return False


def verified_location(ds: Dataset) -> Path | None:
    """`location(ds)`, checked against the registered sha256 (cheaply, see the module doc).

    Raises DatasetMissing when no folder has it, DatasetCorrupt (naming the fetch command)
    when the copy that would be read does not match. None for a dataset bundled with a package.
    """
    if not ds.files:
        return None
    where = location(ds)
    if where is None:
        raise DatasetMissing(ds.name)
    if not _unchanged_since_verified(ds, where):
        found = problems(ds, where)
        if found:
            raise DatasetCorrupt(ds.name, where, found)
    return where


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
    return all((where / f).is_file() for f in (*ds.files, *ds.derived))


def location(ds: Dataset) -> Path | None:
    """The folder `ds` is read from: the first of `home.data_dirs()` that holds all its files."""
    return next((base / ds.name for base in data_dirs() if _complete(base / ds.name, ds)), None)


def is_present(ds: Dataset) -> bool:
    return location(ds) is not None


def disk_bytes(ds: Dataset) -> int:
    """Bytes the dataset's cached files take (0 when absent)."""
    names = (*ds.files, *ds.derived)
    return sum(p.stat().st_size for f in names if (p := folder(ds) / f).is_file())


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
        where = location(ds)  # the very copy `load` and the graders would read
        if where is not None and not problems(ds, where):
            return "present"
    target = folder(ds)
    writable_dir(target.parent, "the dataset cache")
    _remove_stale_temps(ds)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=f".{ds.name}-") as tmp:
        for fname in ds.files:  # a member may sit in a subfolder (a model's 1_Pooling/)
            (Path(tmp) / fname).parent.mkdir(parents=True, exist_ok=True)
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
        made = _prepare(ds, Path(tmp), note)
        stamps = {}
        target.mkdir(exist_ok=True)
        for fname, expected in {**ds.files, **made}.items():
            (target / fname).parent.mkdir(parents=True, exist_ok=True)
            os.replace(Path(tmp) / fname, target / fname)
            stamps[fname] = {"sha256": expected, **_stamp(target / fname)}
        if made:
            os.replace(Path(tmp) / MANIFEST, target / MANIFEST)
        _write_sidecar(target, stamps)
    return "fetched"


def _prepare(ds: Dataset, tmp: Path, note: Note) -> dict[str, str]:
    """Run `ds.prepare` on the verified files in the temp folder and record the sha256 of each
    derived file in the manifest there: an interrupted step leaves nothing in the cache."""
    if ds.prepare is None:
        return {}
    ds.prepare(tmp, note)
    made = {}
    for fname in ds.derived:
        if not (tmp / fname).is_file():
            raise AiroadError(
                f"preparing dataset '{ds.name}' did not make {fname}; nothing was replaced"
            )
        made[fname] = sha256(tmp / fname)
    write_json_atomic(tmp / MANIFEST, {"files": made})
    return made


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
    """Load a dataset from the cache, verified; a missing or damaged one names the fetch command."""
    ds = get(name)
    where = verified_location(ds)
    return ds.loader(where if where is not None else folder(ds))
