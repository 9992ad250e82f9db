"""fetch is idempotent, atomic and checksum-verified (a fake local source, no network)."""

from __future__ import annotations

import pytest
from data_fakes import PAYLOAD, SourceBroke, fake_dataset

from airoad.data import store
from airoad.errors import AiroadError, DatasetMissing


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "cache"))


def _files(ds):
    """The dataset's files (not the hidden `.verified.json` sidecar)."""
    return {p.name: p.read_bytes() for p in store.folder(ds).iterdir() if p.name != store.SIDECAR}


def test_fetch_then_idempotent():
    ds = fake_dataset()
    assert store.status(ds) == ("missing", ["a.bin: missing", "b.bin: missing"])
    assert store.fetch(ds) == "fetched"
    assert _files(ds) == PAYLOAD and store.status(ds) == ("ok", [])
    assert store.fetch(ds) == "present"
    assert len(ds.source.calls) == 1, "a present, verified dataset must not be downloaded again"


def test_no_temp_leftovers():
    ds = fake_dataset()
    store.fetch(ds)
    assert [p.name for p in store.folder(ds).parent.iterdir()] == ["fake"]


def test_failure_half_way_leaves_no_partial_file(tmp_path):
    ds = fake_dataset(fail_after=1)
    with pytest.raises(SourceBroke):
        store.fetch(ds)
    cache = store.folder(ds).parent
    assert not store.folder(ds).exists()
    assert [p for p in cache.iterdir()] == [], "the temp folder must be cleaned up"


def test_failure_keeps_the_old_good_copy():
    good = fake_dataset()
    store.fetch(good)
    broken = fake_dataset(fail_after=1)
    with pytest.raises(SourceBroke):
        store.fetch(broken, force=True)
    assert _files(good) == PAYLOAD


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_file_is_detected_and_refetched(damage):
    ds = fake_dataset()
    store.fetch(ds)
    path = store.folder(ds) / "b.bin"
    data = path.read_bytes()
    path.write_bytes(data[:100] if damage == "truncate" else b"X" + data[1:])
    state, found = store.status(ds)
    assert state == "corrupt" and found == ["b.bin: checksum mismatch (corrupted or truncated)"]
    assert store.fetch(ds) == "fetched"
    assert _files(ds) == PAYLOAD and len(ds.source.calls) == 2


def test_checksum_mismatch_from_source_replaces_nothing():
    store.fetch(fake_dataset())
    evil = fake_dataset(served={**PAYLOAD, "a.bin": b"something else"})
    with pytest.raises(AiroadError, match="a.bin downloaded with sha256 .* nothing was replaced"):
        store.fetch(evil, force=True)
    assert _files(evil) == PAYLOAD
    fresh = fake_dataset(name="fresh", served={**PAYLOAD, "b.bin": b""})
    with pytest.raises(AiroadError):
        store.fetch(fresh)
    assert not store.folder(fresh).exists()


def test_source_missing_a_file_is_a_clear_error():
    ds = fake_dataset(served={"a.bin": PAYLOAD["a.bin"]})
    with pytest.raises(AiroadError, match="did not provide b.bin"):
        store.fetch(ds)


def test_progress_notes_are_reported():
    notes = []
    store.fetch(fake_dataset(), note=notes.append)
    assert "writing a.bin" in notes and "checking sha256" in notes


def test_load_missing_names_the_fetch_command():
    with pytest.raises(DatasetMissing, match=r"run `airoad data fetch mnist`"):
        store.load("mnist")


def test_bundled_dataset_needs_no_fetch():
    ds = store.get("python-docs")
    assert store.fetch(ds) == "present" and store.status(ds) == ("bundled", [])


def test_stale_temp_folder_from_a_killed_fetch_is_removed():
    import os

    ds = fake_dataset()
    stale = store.folder(ds).parent / ".fake-killed"
    stale.mkdir(parents=True)
    (stale / "a.bin").write_bytes(b"half")
    os.utime(stale, (0, 0))
    young = store.folder(ds).parent / ".fake-running"
    young.mkdir()
    store.fetch(ds)
    assert not stale.exists() and young.exists()


def test_load_verifies_cheaply_and_catches_an_edit(monkeypatch):
    """After one full check a load re-hashes nothing; an edit that keeps the size and puts the
    modification time back is still caught (ctime), and `fetch` then replaces the copy."""
    import os

    from airoad.data.registry import REGISTRY

    ds = fake_dataset(name="zz-fake")
    monkeypatch.setitem(REGISTRY, ds.name, ds)
    assert store.fetch(ds) == "fetched"
    hashed = []
    real_sha = store.sha256
    monkeypatch.setattr(store, "sha256", lambda p: hashed.append(p.name) or real_sha(p))
    assert store.load(ds.name) == PAYLOAD and hashed == []
    path = store.folder(ds) / "b.bin"
    before = path.stat()
    path.write_bytes(b"X" + PAYLOAD["b.bin"][1:])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    with pytest.raises(store.DatasetCorrupt, match=r"b.bin: checksum mismatch.*airoad data fetch"):
        store.load(ds.name)
    assert store.fetch(ds) == "fetched" and store.load(ds.name) == PAYLOAD
