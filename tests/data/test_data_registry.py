"""Every registry entry is complete: checksums for every file, licence, returns text."""

from __future__ import annotations

import re

import pytest

from airoad.data import store
from airoad.data.sources import InstalledPackage

DATASETS = store.all_datasets()
EXPECTED = {
    "iris",
    "wine",
    "digits",
    "breast-cancer",
    "diabetes",
    "mnist-5k",
    "boston",
    "titanic",
    "penguins",
    "mnist",
    "fashion-mnist",
    "adult",
    "compas",
    "credit",
    "nyse",
    "airline",
    "shakespeare",
    "austen",
    "fine-food",
    "python-docs",
    "stdlib-docstrings",
}


def test_expected_datasets_registered():
    assert EXPECTED <= {ds.name for ds in DATASETS}


@pytest.mark.parametrize("ds", DATASETS, ids=lambda d: d.name)
def test_entry_complete(ds):
    assert ds.licence.strip() and ds.returns.strip() and ds.title.strip()
    assert ds.source.describe()
    assert callable(ds.loader)
    assert set(ds.files) == set(ds.source.members)
    for fname, digest in ds.files.items():
        assert re.fullmatch(r"[0-9a-f]{64}", digest), f"{ds.name}/{fname} has no real sha256"
    if isinstance(ds.source, InstalledPackage):
        assert not ds.files and ds.size_mb == 0
    else:
        assert ds.files, f"{ds.name} downloads something, so it must checksum it"
        assert ds.size_mb > 0


def test_unknown_name_is_a_clear_error():
    from airoad.errors import AiroadError

    with pytest.raises(AiroadError, match="unknown dataset 'nope'.*mnist"):
        store.get("nope")
