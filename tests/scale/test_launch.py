"""The scale labs' machinery: a worker group returns results, turns a crash or a hang into one
clear error and always tears down; the harness grades a learner's file inside the workers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from scale_testing import group_fixture, impl_ref, load_impl
from test_distributed_data_parallel import _ring_worker

import airoad.scale.distributed_data_parallel as ddp_reference
from airoad.labs.learner import load_implementation
from airoad.scale import launch
from airoad.scale.launch import WorkerError, WorkerGroup

group = group_fixture(2, timeout=2.0)

LEARNER_SOURCE = '''
import torch.distributed as dist


def all_reduce_sum(x):
    """A learner's all-reduce: doubles before summing, so it is told apart from the reference."""
    y = 2 * x.clone()
    dist.all_reduce(y)
    return y
'''


def _sum_worker(rank, world_size, ref, x):
    impl = load_impl(ref)
    return impl.__name__, impl.__file__, impl.all_reduce_sum(x * (rank + 1))


def _raise_on_rank_1(rank, world_size):
    if rank == 1:
        raise ValueError("bad shape on purpose")
    dist.barrier()  # rank 0 waits for a peer that never comes


def _sleep_forever(rank, world_size):
    time.sleep(3600)


def _pid(rank, world_size):
    import os

    return os.getpid()


def test_learner_file_is_loaded_inside_workers(group, tmp_path, monkeypatch):
    """Workers load the learner's file the impl fixture resolved, not the reference."""
    path = tmp_path / "distributed_data_parallel.py"
    path.write_text(LEARNER_SOURCE)
    monkeypatch.setenv("AIROAD_LEARNER_FILES", f'{{"airoad.scale.fake_ref": "{path}"}}')
    impl = load_implementation("airoad.scale.fake_ref")
    results = group.run(_sum_worker, impl_ref(impl), torch.ones(3))
    for name, file, value in results:
        assert name == "learner_fake_ref" and file == str(path), f"loaded {name} from {file}"
        torch.testing.assert_close(value, torch.full((3,), 6.0))  # 2 * (1 + 2)


def test_grader_entry_point_grades_a_learner_copy_of_the_reference(group, tmp_path, monkeypatch):
    """A learner's copy of the reference passes a grader's ring entry point, loaded from its path."""
    path = tmp_path / "distributed_data_parallel.py"
    path.write_text(Path(ddp_reference.__file__).read_text())
    monkeypatch.setenv("AIROAD_LEARNER_FILES", json.dumps({ddp_reference.__name__: str(path)}))
    impl = load_implementation(ddp_reference.__name__)
    assert impl.__name__ == "learner_distributed_data_parallel"
    for result in group.run(_ring_worker, impl_ref(impl), 0):
        assert result["file"] == str(path), f"the worker graded {result['file']}"
        assert result["rows"], "no shapes were checked"
        for size, shape, got, expected, same in result["rows"]:
            torch.testing.assert_close(got, expected, msg=f"{size} ranks, shape {shape}")
            assert same


def test_crash_names_the_rank_and_tears_down(group):
    """A worker that raises gives one WorkerError naming its rank, and the group is stopped."""
    pids = group.run(_pid)
    with pytest.raises(WorkerError, match=r"rank 1 of 2 raised ValueError: bad shape on purpose"):
        group.run(_raise_on_rank_1)
    assert not group.alive
    assert set(group.run(_pid)).isdisjoint(pids), "the next run should start fresh workers"


def test_hang_times_out_with_a_message(group, monkeypatch):
    """A worker that never answers is reported after the timeout instead of hanging."""
    monkeypatch.setattr(launch, "GRACE", 0.5)
    start = time.monotonic()
    with pytest.raises(WorkerError, match=r"rank 0, 1 of 2 did not run _sleep_forever within"):
        group.run(_sleep_forever)
    assert time.monotonic() - start < 10, "the hang was not cut at the timeout"
    assert not group.alive


def test_two_groups_at_once_do_not_collide():
    """Two groups run side by side on their own ports (two runs at once)."""
    with WorkerGroup(2, timeout=5.0) as a, WorkerGroup(2, timeout=5.0) as b:
        x = torch.ones(4)
        first, second = a.run(_sum_worker_plain, x), b.run(_sum_worker_plain, 2 * x)
    torch.testing.assert_close(first[0], torch.full((4,), 2.0))
    torch.testing.assert_close(second[1], torch.full((4,), 4.0))
    assert not a.alive and not b.alive, "leaving the with block tears both groups down"


def _sum_worker_plain(rank, world_size, x):
    y = x.clone()
    dist.all_reduce(y)
    return y


def test_world_size_out_of_range_is_refused():
    """A group of 0 workers is refused with a clear message."""
    with pytest.raises(launch.AiroadError, match="choose between 1 and 64"):
        WorkerGroup(0)
