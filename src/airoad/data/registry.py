"""The dataset registry: one `Dataset` entry per offline dataset."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from airoad.data.sources import Note, Source


@dataclass(frozen=True)
class Dataset:
    """An offline dataset.

    files: cached file name -> sha256 of its bytes (verified on fetch and by `data verify`).
    loader: reads the cached folder and returns NumPy / pandas objects (documented per entry).
    derived: files `prepare(folder, note)` makes from the verified files while fetching (e.g. a
    converted model); their sha256 is recorded then (store.MANIFEST) and checked like `files`.
    """

    name: str
    title: str
    source: Source
    licence: str
    size_mb: float
    loader: Callable[[Path], Any]
    returns: str
    files: dict[str, str] = field(default_factory=dict)
    derived: tuple[str, ...] = ()
    prepare: Callable[[Path, Note], None] | None = None


REGISTRY: dict[str, Dataset] = {}


def register(dataset: Dataset) -> Dataset:
    if dataset.name in REGISTRY:
        raise ValueError(f"dataset '{dataset.name}' registered twice")
    if set(dataset.files) != set(dataset.source.members):
        raise ValueError(f"dataset '{dataset.name}': files and source members differ")
    if set(dataset.derived) & set(dataset.files) or bool(dataset.derived) != bool(dataset.prepare):
        raise ValueError(
            f"dataset '{dataset.name}': derived files need a prepare step of their own"
        )
    REGISTRY[dataset.name] = dataset
    return dataset
