"""Shared fixtures. `impl` is the implementation under test: the reference module named by the
test module's REFERENCE, or the learner's file when `airoad check` points at one."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ["COLUMNS"] = "200"  # rich wraps at 80 columns off a terminal; keep messages whole

import pytest
from hypothesis import Phase, settings

from airoad.home import data_dirs
from airoad.labs.learner import load_implementation

# The stub gate (tests/catalog/test_anatomy_stubs.py) runs every grader against stubs that
# fail at once: shrinking those failures would cost minutes and teach nothing, and their
# examples must not land in the example database of the learner's checkout.
settings.register_profile(
    "stub-gate", phases=(Phase.explicit, Phase.reuse, Phase.generate), database=None
)

pytest_plugins = ("lab_budget",)  # per-lab test time, printed at the end of the run

# Every test gets a fresh AIROAD_HOME, but reads datasets exactly where the learner's commands
# do: the folders `data_dirs()` resolves now, in the shell's AIROAD_HOME, pinned for all tests.
os.environ["AIROAD_DATA_DIR"] = os.pathsep.join(str(p) for p in data_dirs())


@pytest.fixture(scope="module")
def impl(request):
    reference = getattr(request.module, "REFERENCE", None)
    if reference is None:
        raise RuntimeError(f"{request.module.__name__} uses `impl` but defines no REFERENCE")
    return load_implementation(reference)


@pytest.fixture(autouse=True, scope="session")
def _one_thread():
    import torch

    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Tests never touch the user's ~/.airoad (progress, runs, MLflow store)."""
    monkeypatch.setenv("AIROAD_HOME", str(tmp_path / "airoad_home"))


@pytest.fixture(scope="session")
def lab_artifact(tmp_path_factory):
    """`lab_artifact(lab_id, name)`: the folder of a model another lab trains (quick config).

    Made at most once per session, and kept across sessions in the shared artifact cache; the
    producing run writes its run folder into a throwaway home, never into ~/.airoad.
    """
    from airoad.labs import artifacts

    home, made = tmp_path_factory.mktemp("artifact_home"), {}

    def get(lab_id: str, name: str):
        if (lab_id, name) not in made:
            with pytest.MonkeyPatch.context() as mp:
                mp.setenv("AIROAD_HOME", str(home))
                made[lab_id, name] = artifacts.require(lab_id, name)
        return made[lab_id, name]

    return get
