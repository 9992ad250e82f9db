"""The drift-monitoring runner on the real Adult data (quick config)."""

from __future__ import annotations

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import drift_monitoring as runner
from airoad.labs.runners import drift_monitoring_parts as parts


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("drift-monitoring"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_our_tests_equal_scipy_on_a_real_window(result):
    m = result.metrics
    assert result.key_metric == "ours_age_ks_p" and result.library_metric == "scipy_age_ks_p"
    assert m["ours_age_ks_p"] == pytest.approx(m["scipy_age_ks_p"], rel=1e-9)
    assert m["max_p_rel_diff"] < 1e-9
    rows = result.tables["vs_scipy"]
    assert [r["feature"] for r in rows] == list(parts.WATCHED)
    for r in rows:
        assert r["statistic_ours"] == pytest.approx(r["statistic_scipy"], rel=1e-12), r


def test_input_drift_is_caught_and_concept_drift_needs_labels(result):
    m = result.metrics
    assert m["age_input_detected"] == 1.0 and m["mix_input_detected"] == 1.0
    assert m["concept_performance_detected"] == 1.0
    rows = {(r["scenario"], r["monitor"]): r for r in result.tables["detection"]}
    assert len(rows) == 6
    # delays are whole checks after the change point, within a window plus `patience` steps
    for key in [
        ("age shift", "input"),
        ("category mix", "input"),
        ("concept shift", "performance"),
    ]:
        worst = rows[key]["max_delay_rows"]
        assert 0 < worst <= runner.QUICK["window"] + 2 * runner.QUICK["step"], key
        assert worst % runner.QUICK["step"] == 0, key
    assert rows["concept shift", "performance"]["detected"] == runner.QUICK["seeds"]


def test_false_alarm_table_counts_every_null_check(result):
    q = runner.QUICK
    checks_per_stream = (q["stream_rows"] - q["window"]) // q["step"] + 1
    for row in result.tables["false_alarms"]:
        assert row["checks"] == q["null_seeds"] * checks_per_stream
        assert 0.0 <= row["check_rate_bonferroni"] <= row["check_rate_uncorrected"] <= 1.0
    assert "Bonferroni" in result.notes[3]
    patience = result.tables["patience"]
    assert [r["patience"] for r in patience] == [1, 2, 3, 5]
    for a, b in zip(patience, patience[1:]):  # a stricter rule never alarms on more streams
        assert b["null_streams_alarmed_input"] <= a["null_streams_alarmed_input"]
        assert b["age shift detected"] <= a["age shift detected"]


def test_alarm_rule_and_stream_mechanics():
    assert parts.first_alarm([False, True, False, True, True], patience=2) == 4
    assert parts.first_alarm([True, False, True], patience=2) is None
    checks = [{"row": r, "input": f} for r, f in [(200, True), (300, False), (400, True)]]
    assert parts.alarm_summary(checks, "input", change_at=250, patience=1) == {
        "false_alarm": True,
        "delay": 150,
    }


def test_figures_are_written(result):
    names = {p.name for p in result.figures}
    assert names == {"stream_pvalues.png", "stream_psi.png", "null_pvalues.png"}
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_config_rejects_a_change_inside_the_first_window():
    with pytest.raises(ConfigError, match="change_at"):
        runner.Config(window=500, change_at=400)
