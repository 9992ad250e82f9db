"""A pytest plugin: how much of the suite's time each lab costs (its graders + its runner test).

docs/LAB_ANATOMY.md gives each lab about 90 s of `make test`. Wall-clock asserts would be flaky,
so the budget is reported, not enforced: the end of the run lists the labs that cost the most,
marking those over budget, for whoever builds or reviews a lab to act on.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

BUDGET_SECONDS = 90.0
SHOWN = 10

_seconds: dict[str, float] = defaultdict(float)


def _lab_of_file() -> dict[str, str]:
    """Test file path (relative to the repo) -> lab id, for every built lab."""
    from airoad.catalog import load_catalog

    owner = {}
    for lab in load_catalog().built():
        for test in lab.tests:
            owner[test] = lab.id
        owner[f"tests/labs/runners/test_{lab.id.replace('-', '_')}_runner.py"] = lab.id
    return owner


def pytest_runtest_logreport(report) -> None:
    _seconds[report.nodeid.split("::", 1)[0]] += report.duration  # setup + call + teardown


def per_lab_seconds(seconds_by_file: dict[str, float]) -> dict[str, float]:
    owner = _lab_of_file()
    totals: dict[str, float] = defaultdict(float)
    for path, seconds in seconds_by_file.items():
        lab = owner.get(Path(path).as_posix())
        if lab is not None:
            totals[lab] += seconds
    return dict(totals)


def pytest_terminal_summary(terminalreporter) -> None:
    totals = per_lab_seconds(_seconds)
    if not totals:
        return
    tr = terminalreporter
    tr.section(f"test time per lab (budget {BUDGET_SECONDS:g} s each)")
    ranked = sorted(totals.items(), key=lambda kv: -kv[1])
    for lab, seconds in ranked[:SHOWN]:
        flag = "  OVER BUDGET" if seconds > BUDGET_SECONDS else ""
        tr.write_line(f"{seconds:7.1f} s  {lab}{flag}")
    over = [lab for lab, s in ranked if s > BUDGET_SECONDS]
    tr.write_line(
        f"{len(totals)} labs timed; {len(over)} over budget" + (f": {over}" if over else "")
    )
