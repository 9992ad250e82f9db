"""The efficient-attention runner, quick config: exactness, one fresh process per scaling point,
and the three attention kinds trained briefly on real Austen text."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import efficient_attention as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    config = runner.Config(**runner.QUICK)
    return runner.run(config, RunContext(tmp_path_factory.mktemp("efficient_attention")))


def test_ours_equals_torch_and_the_quadratic_forms(result):
    m = result.metrics
    for name in ("tiled", "flash_grad", "window", "linear"):
        assert m[f"{name}_max_abs_diff"] < 1e-12, f"{name}: {m[f'{name}_max_abs_diff']}"
    checks = {r["check"] for r in result.tables["exactness"]}
    assert checks == {"tiled", "tiled_causal", "flash_causal", "window", "linear_causal"}
    assert all(r["max_abs_diff_grad"] < 1e-12 for r in result.tables["exactness"])


def test_every_point_ran_in_its_own_process(result):
    rows = result.tables["scaling"]
    expected = {(m, n) for m in runner.QUICK["methods"] for n in runner.QUICK["lengths"]}
    assert {(r["method"], r["length"]) for r in rows} == expected
    for r in rows:
        assert r["status"] == "ok", r
        assert r["ms"] > 0 and r["peak_mib"] > 50  # a process that imported torch
        assert r["extra_mib"] >= 0


def test_naive_memory_grows_with_the_matrix_and_tiled_does_not(result):
    m, top = result.metrics, max(runner.QUICK["lengths"])
    assert m["max_length"] == top
    assert m["matrix_mib_max_len"] == pytest.approx(2 * top * top * 4 / 2**20)
    # naive holds at least one full score matrix; tiled and SDPA stay far below it
    assert m["naive_extra_mib_max_len"] > 0.9 * m["matrix_mib_max_len"]
    assert m["tiled_extra_mib_max_len"] < m["naive_extra_mib_max_len"] / 2
    assert m["sdpa_extra_mib_max_len"] < m["naive_extra_mib_max_len"] / 2
    assert m["naive_memory_exponent"] > m["tiled_memory_exponent"]
    assert math.isnan(m["window_ms_max_len"])  # not among the quick methods


def test_three_language_models_learn_and_sdpa_agrees(result):
    m = result.metrics
    start = math.log(m["vocab"])  # loss of a uniform guess
    for kind in runner.LM_KINDS:
        assert m[f"lm_{kind}_val_loss"] < start, kind
    assert m["lm_full_sdpa_val_loss"] == pytest.approx(m["lm_full_val_loss"], abs=1e-5)
    steps = {c["step"] for c in result.tables["lm_curves"]}
    assert max(steps) == runner.QUICK["steps"]


def test_figures_and_notes(result):
    names = {p.name for p in result.figures}
    assert names == {"time_vs_length.png", "memory_vs_length.png", "lm_quality.png"}
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"
    assert len(result.notes) == len(runner.NOTES)
    assert result.key_metric == "tiled_extra_mib_max_len"
    assert result.library_metric == "sdpa_extra_mib_max_len"


def test_a_point_that_runs_too_long_is_stopped(tmp_path):
    config = runner.Config(**{**runner.QUICK, "point_timeout_s": 0.01})
    row = runner._measure_point(config, "tiled", 256)
    assert row["status"].startswith("failed: over"), row


def test_naive_is_skipped_when_its_matrix_is_too_big():
    config = runner.Config(**{**runner.QUICK, "max_matrix_mib": 1})
    row = runner._measure_point(config, "naive", 1024)  # 8 MiB matrix: no process started
    assert row["status"].startswith("skipped"), row
