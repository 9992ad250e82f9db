"""The test side of the scale labs: one worker group per test module, and workers that grade the
same implementation the `impl` fixture resolved (the reference, or a learner's file).

A worker cannot unpickle a learner's function: the learner's file is loaded under a made-up
module name (`learner_<name>`) that only exists in the test process. So a grader never sends
`impl.some_function` to a worker. It sends an entry point defined in the test module itself
(importable by name in the worker) and `impl_ref(impl)`, and the entry point calls
`load_impl(ref)` inside the worker to load the very same file there:

    from scale_testing import group_fixture, impl_ref, load_impl

    group = group_fixture(4)                      # one group of 4 workers for this module

    def _sum_worker(rank, world_size, ref, x):    # runs in every worker
        impl = load_impl(ref)
        return impl.all_reduce_sum(x * (rank + 1))

    def test_sum(impl, group):
        \"\"\"all_reduce_sum adds every rank's tensor.\"\"\"
        results = group.run(_sum_worker, impl_ref(impl), torch.ones(3))   # one per rank

Name the fixture in `WORKER_FIXTURES = ("group",)` at module level: `tools/mutate.py` traces
which reference lines each test runs, but only in the test process, so it sends every mutant
to the tests that use a worker fixture.

A worker that raises, dies or hangs fails the test with one `WorkerError` line naming the rank
(the group restarts for the next test); the module's group is torn down when its tests end.
Under `airoad check` the import guard the grading plugin installed is installed in each worker
too, so a learner's file sees the same rules there.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest

from airoad.labs.learner import ImportGuard, load_file_as_module
from airoad.scale.launch import COLLECTIVE_TIMEOUT, WorkerGroup, preload

# What a worker imports to unpickle an entry point of a test module: load it once, in the
# fork server, instead of in every worker.
preload("numpy", "pytest", "hypothesis", "scale_testing", "airoad.labs.learner")


def group_fixture(world_size: int, timeout: float = COLLECTIVE_TIMEOUT):
    """A module-scoped fixture: `world_size` workers in one gloo group, started on first use."""

    @pytest.fixture(scope="module")
    def group():
        workers = WorkerGroup(world_size, timeout=timeout)
        try:
            yield workers
        finally:
            workers.close()

    return group


@dataclass(frozen=True)
class ImplRef:
    """Where the implementation under test lives: its module name and file, and the import
    guard's configuration when `airoad check` is grading (None otherwise)."""

    name: str
    path: str
    guard: dict | None = field(default=None, compare=False)


def _guard_config() -> dict | None:
    plugin = sys.modules.get("airoad.labs.grading_plugin")
    channel = getattr(plugin, "_channel", None)
    return None if channel is None else channel.config.get("guard")


def impl_ref(impl: ModuleType) -> ImplRef:
    """The picklable address of `impl` (the module the `impl` fixture returned)."""
    path = getattr(impl, "__file__", None)
    if path is None:
        raise RuntimeError(f"{impl.__name__} has no file: a worker could not load it")
    return ImplRef(impl.__name__, str(Path(path).resolve()), _guard_config())


_guard_installed = False


def load_impl(ref: ImplRef) -> ModuleType:
    """Inside a worker: the module `ref` names, loaded from the same file as in the test process."""
    global _guard_installed
    loaded = sys.modules.get(ref.name)
    if loaded is not None and str(Path(getattr(loaded, "__file__", "")).resolve()) == ref.path:
        return loaded
    if ref.guard is not None and not _guard_installed:
        ImportGuard.from_config(ref.guard).install()
        _guard_installed = True
    spec = importlib.util.find_spec(ref.name) if not ref.name.startswith("learner_") else None
    if spec is not None and spec.origin and str(Path(spec.origin).resolve()) == ref.path:
        return importlib.import_module(ref.name)  # the reference, imported as a package module
    return load_file_as_module(Path(ref.path), ref.name)  # a learner's file
