"""The untouched stub of every built lab fails its grader (slow: one pytest child for them all).

A grader that passes on `raise NotImplementedError` bodies would hand out `passed` for nothing.
The only tests allowed to pass on a stub are the ones listed in INIT_ONLY: they check what a
stub keeps on purpose (class `__init__` bodies, which only store parameters).
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from airoad.catalog import load_catalog
from airoad.labs.learner import ENV_VAR
from airoad.labs.stubs import make_stub

REPO = Path(__file__).resolve().parents[2]
WORKERS = 2

# test id (file::name, parameters stripped) -> why passing on a stub is right.
INIT_ONLY: dict[str, str] = {
    "tests/sequence/test_rnn_lstm_gru.py::test_cell_parameters_have_torch_names_and_shapes": (
        "checks the parameter names and shapes a cell's __init__ creates; every test that runs "
        "a forward pass fails on the stub"
    ),
}


def _stub_everything(folder: Path) -> tuple[dict[str, str], list[str]]:
    files, tests = {}, []
    for lab in load_catalog().built():
        for module, test in zip(lab.reference, lab.tests):
            source = Path(importlib.import_module(module).__file__).read_text(encoding="utf-8")
            path = folder / f"{module.replace('.', '_')}.py"
            path.write_text(make_stub(source), encoding="utf-8")
            files[module] = str(path)
            tests.append(test)
    return files, tests


def _pytest_command(tests: list[str], xml: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "pytest",
        *tests,
        "-q",
        "-p",
        "no:cacheprovider",
        "--timeout=60",
        "--hypothesis-profile=stub-gate",
        f"--junitxml={xml}",
        "-o",
        "junit_family=xunit1",
    ]


@pytest.mark.slow
def test_untouched_stubs_fail_every_grader_test(tmp_path):
    """Every grader test fails on the generated stub, except the listed __init__-only ones."""
    files, tests = _stub_everything(tmp_path)
    env = dict(os.environ, **{ENV_VAR: json.dumps(files)}, OMP_NUM_THREADS="1")
    # The grader files split over WORKERS concurrent pytest children (this one test would
    # otherwise hold one core for minutes while the other idles); interleaved so that each
    # child gets labs from every phase.
    runs = []
    for worker in range(WORKERS):
        xml, log = tmp_path / f"junit-{worker}.xml", tmp_path / f"output-{worker}.txt"
        with log.open("w") as out:  # a file, not a pipe: a full pipe would stall the child
            child = subprocess.Popen(
                _pytest_command(tests[worker::WORKERS], xml),
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        runs.append((xml, log, child))
    cases = []
    for xml, log, child in runs:
        try:
            child.wait(timeout=1200)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()
        output = log.read_text(errors="replace")
        assert xml.exists(), f"a stub run crashed:\n{output[-3000:]}"
        cases.extend(ET.parse(xml).getroot().iter("testcase"))
    passed, seen = set(), set()
    for case in cases:
        test_id = f"{case.get('file')}::{case.get('name', '').split('[')[0]}"
        seen.add(test_id)
        if case.find("failure") is None and case.find("error") is None:
            if case.find("skipped") is None:
                passed.add(test_id)
    assert len(seen) > 100, f"only {len(seen)} grader tests ran; the run is broken"
    unexpected = sorted(passed - set(INIT_ONLY))
    assert not unexpected, "these grader tests pass on an untouched stub:\n" + "\n".join(unexpected)
    stale = sorted(set(INIT_ONLY) - seen)
    assert not stale, f"INIT_ONLY names tests that no longer exist: {stale}"
