"""A throwaway AIROAD_HOME reads datasets from the default home's cache instead of refetching."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from airoad.data import store
from airoad.errors import DatasetMissing


@pytest.fixture
def default_home_with_penguins(tmp_path, monkeypatch):
    real = store.location(store.get("penguins"))
    fake_user = tmp_path / "user"
    shutil.copytree(real, fake_user / ".airoad" / "data" / "penguins")
    monkeypatch.setenv("HOME", str(fake_user))
    monkeypatch.delenv("AIROAD_DATA_DIR")
    monkeypatch.setenv("AIROAD_HOME", str(tmp_path / "throwaway"))
    return fake_user / ".airoad" / "data"


def test_other_home_loads_from_the_default_cache(default_home_with_penguins):
    """With AIROAD_HOME elsewhere, load() and fetch() use the default home's verified copy."""
    ds = store.get("penguins")
    assert store.location(ds) == default_home_with_penguins / "penguins"
    assert len(store.load("penguins")) == 344
    assert store.fetch(ds) == "present"
    assert not (Path(store.folder(ds))).exists(), "nothing is copied or downloaded"
    assert store.status(ds) == ("ok", [])


def test_pinned_data_dir_has_no_fallback(default_home_with_penguins, monkeypatch, tmp_path):
    """AIROAD_DATA_DIR pins the cache: a dataset missing there is missing."""
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(DatasetMissing, match="airoad data fetch penguins"):
        store.load("penguins")
