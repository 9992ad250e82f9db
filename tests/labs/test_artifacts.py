"""The artifact cache: a hit is reused, a miss trains the producer (or names the command), a
corrupt entry is never loaded, and entries are keyed by config."""

from __future__ import annotations

import dataclasses
import errno
import shutil
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest

import airoad.labs.runner as runner_mod
from airoad.catalog import load_catalog
from airoad.catalog.catalog import Catalog
from airoad.labs import artifacts
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param

LAB = "artifact-producer"


@dataclass(frozen=True)
class _Config:
    width: int = param(4, ge=1)
    seed: int = param(0, ge=0)


def _make_runner(calls: list) -> types.ModuleType:
    module = types.ModuleType("airoad.labs.runners.artifact_producer")

    def run(config, ctx: RunContext) -> LabResult:
        calls.append(config)
        ctx.save_artifact("weights", lambda d: (d / "w.txt").write_text("1 " * config.width))
        return LabResult(metrics={"width": config.width}, key_metric="width")

    module.Config, module.QUICK, module.NOTES, module.run = _Config, {"width": 2}, (), run
    return module


@pytest.fixture
def producer(monkeypatch, tmp_path):
    """A tiny built lab that saves one artifact, and a private data cache for it."""
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "data"))
    real = load_catalog()
    entry = dataclasses.replace(real.built()[0], id=LAB, datasets=(), prerequisites=())
    catalog = Catalog(real.phases, (*real.labs, entry))
    monkeypatch.setattr(runner_mod, "load_catalog", lambda: catalog)
    calls: list = []
    monkeypatch.setitem(sys.modules, "airoad.labs.runners.artifact_producer", _make_runner(calls))
    return calls


def test_miss_trains_the_producer_then_hits(producer):
    """A miss runs the producer's quick config once; the next call reuses the saved entry."""
    first = artifacts.require(LAB, "weights")
    assert (first / "w.txt").read_text() == "1 1 "
    assert len(producer) == 1
    again = artifacts.require(LAB, "weights")
    assert again == first and len(producer) == 1, "a valid entry was trained again"


def test_miss_without_training_names_the_command(producer):
    """With train_if_missing=False a miss is one line naming the command that makes it."""
    with pytest.raises(artifacts.ArtifactMissing, match=rf"`airoad run {LAB} --quick`"):
        artifacts.require(LAB, "weights", train_if_missing=False)
    assert producer == []


def test_corrupt_entry_is_rebuilt_not_loaded(producer):
    """An entry whose file no longer matches its manifest is treated as missing and rebuilt."""
    folder = artifacts.require(LAB, "weights")
    (folder / "w.txt").write_text("tampered")
    assert not artifacts.is_valid(folder)
    assert artifacts.lookup(LAB, _Config(**{"width": 2}), "weights") is None
    rebuilt = artifacts.require(LAB, "weights")
    assert (rebuilt / "w.txt").read_text() == "1 1 " and len(producer) == 2


def test_missing_manifest_is_corrupt(producer):
    """Files without a manifest (an interrupted copy) never count as an entry."""
    folder = artifacts.require(LAB, "weights")
    (folder / artifacts.MANIFEST).unlink()
    assert not artifacts.is_valid(folder)


def test_entries_are_keyed_by_config(producer):
    """The quick and the full config make different entries; --set values change the key."""
    quick = artifacts.require(LAB, "weights")
    full = artifacts.require(LAB, "weights", quick=False)
    wide = artifacts.require(LAB, "weights", pairs=["width=7"])
    assert len({quick, full, wide}) == 3
    assert (full / "w.txt").read_text() == "1 " * 4 and (wide / "w.txt").read_text() == "1 " * 7
    assert artifacts.config_hash(_Config()) == artifacts.config_hash({"width": 4, "seed": 0})


def test_direct_run_keeps_the_artifact_in_the_run_folder(tmp_path):
    """A runner called without `airoad run` (a test, a notebook) writes into its own folder."""
    ctx = RunContext(tmp_path / "run")
    folder = ctx.save_artifact("weights", lambda d: (d / "w.txt").write_text("x"))
    assert folder == tmp_path / "run" / "artifacts" / "weights" and (folder / "w.txt").exists()


def test_writer_that_writes_nothing_is_an_error(producer, tmp_path):
    """Saving an empty artifact fails loudly instead of caching an empty folder."""
    with pytest.raises(Exception, match="wrote no files"):
        artifacts.save(LAB, _Config(), "empty", lambda d: None)


def test_session_fixture_trains_once(producer, lab_artifact):
    """Tests reach artifacts through the session fixture: one training, then the same folder."""
    first = lab_artifact(LAB, "weights")
    assert lab_artifact(LAB, "weights") == first and len(producer) == 1


def test_concurrent_writer_that_finishes_first_wins(producer, monkeypatch, tmp_path):
    """When another process stores the same entry between our checks, its valid copy is kept."""
    final = artifacts.save(LAB, _Config(), "weights", lambda d: (d / "w.txt").write_text("a"))
    theirs = shutil.copytree(final, tmp_path / "their-copy")
    real_replace = artifacts.os.replace

    def racing_replace(src, dst):
        if Path(src).name.startswith(".weights.") and Path(dst) == final:
            shutil.copytree(theirs, final)  # the other writer's entry lands first
            raise OSError(errno.ENOTEMPTY, "Directory not empty")
        return real_replace(src, dst)

    monkeypatch.setattr(artifacts.os, "replace", racing_replace)
    assert (
        artifacts.save(LAB, _Config(), "weights", lambda d: (d / "w.txt").write_text("b")) == final
    )
    assert artifacts.is_valid(final) and (final / "w.txt").read_text() == "a"
    leftovers = [p.name for p in final.parent.iterdir() if p.name.startswith(".weights.")]
    assert leftovers == [], f"temporary folders left behind: {leftovers}"
