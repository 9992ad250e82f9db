"""The curriculum as data (`labs.toml`) and the learner's progress."""

from airoad.catalog.catalog import (
    LAYERS,
    ROADMAPS,
    STATUSES,
    Catalog,
    LabEntry,
    Phase,
    default_path,
    load_catalog,
)

__all__ = [
    "LAYERS",
    "ROADMAPS",
    "STATUSES",
    "Catalog",
    "LabEntry",
    "Phase",
    "default_path",
    "load_catalog",
]
