"""The progress store: states, atomic writes, survival of a killed writer."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from airoad.catalog import progress


def test_states_round_trip():
    """learning -> passed is recorded with a timestamp; reset forgets the lab."""
    assert progress.state_of("pca") == progress.NOT_STARTED
    progress.mark_learning("pca")
    assert progress.state_of("pca") == progress.LEARNING
    entry = progress.record("pca", progress.PASSED, suite="abc")
    assert entry["suite"] == "abc" and "at" in entry
    progress.mark_learning("pca")  # writing a new exercise never undoes a pass
    assert progress.state_of("pca") == progress.PASSED
    progress.record("pca", progress.NOT_STARTED)
    assert progress.state_of("pca") == progress.NOT_STARTED


def test_failed_write_keeps_the_old_file(monkeypatch):
    """If the write dies before the rename, the previous store is intact and no temp file is left;
    `save_state` says so in one line, `record` keeps the reason for the CLI instead of raising."""
    progress.record("pca", progress.PASSED)
    before = progress.progress_path().read_text()

    def boom(*_):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(progress.ProgressNotSaved, match="could not record 'knn' as learning"):
        progress.save_state("knn", progress.LEARNING)
    assert progress.record("knn", progress.LEARNING) == {}
    assert progress.unsaved() == [
        f"could not record 'knn' as learning in {progress.progress_path()} "
        "(No space left on device); make it writable, then run the command again"
    ]
    assert progress.unsaved() == []
    assert progress.progress_path().read_text() == before
    assert [p.name for p in progress.progress_path().parent.iterdir() if p.suffix == ".tmp"] == []


def test_killed_writer_never_corrupts_the_store():
    """SIGKILL in the middle of a stream of writes leaves valid JSON behind."""
    code = (
        "from airoad.catalog import progress\n"
        "i = 0\n"
        "while True:\n"
        "    progress.record(f'lab-{i % 50}', progress.LEARNING, note='x' * 2000); i += 1\n"
    )
    child = subprocess.Popen([sys.executable, "-c", code], env=dict(os.environ))
    deadline = time.time() + 20
    while not progress.progress_path().exists() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    child.send_signal(signal.SIGKILL)
    child.wait()
    data = json.loads(progress.progress_path().read_text())
    assert data["labs"], "the killed writer should have recorded something"
    assert progress.load_progress() == data["labs"]


def test_garbled_store_is_set_aside(capsys):
    """A store edited into invalid JSON is copied aside, one warning line names the copy, and
    progress carries on from empty."""
    progress.progress_path().write_text("{not json")
    assert progress.load_progress() == {}
    (backup,) = progress.progress_path().parent.glob("progress.json.bad-*")
    assert backup.read_text() == "{not json"
    warning = capsys.readouterr().err
    assert warning.count("\n") == 1 and backup.name in warning and "not valid JSON" in warning
    progress.record("pca", progress.LEARNING)
    assert progress.state_of("pca") == progress.LEARNING
