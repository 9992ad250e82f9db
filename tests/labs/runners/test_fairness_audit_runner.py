"""The fairness-audit runner on Adult and COMPAS (quick config): every method is scored, our
group thresholds reproduce fairlearn's predictions, the mitigations lower the disparity they
target, and audit.md and the figures land in the run folder."""

from __future__ import annotations

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import validate_config
from airoad.labs.runners import fairness_audit as runner


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("fairness")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_every_method_is_scored_on_both_datasets(result):
    rows = result.tables["methods"]
    names = {(r["dataset"], r["method"]) for r in rows}
    methods = {"baseline", "reweighing", "threshold_dp", "threshold_eo", "expgrad_dp", "expgrad_eo"}
    assert names == {(d, m) for d in ("adult", "compas") for m in methods} | {
        ("compas", "compas_score")
    }
    for r in rows:
        assert 0.5 < r["accuracy"] < 1, r
        assert 0 <= r["dp_diff"] <= 1 and 0 <= r["dp_ratio"] <= 1
        assert 0 <= r["eo_diff"] <= 1 and 0 <= r["eo_ratio"] <= 1


def test_thresholds_and_metrics_agree_with_fairlearn(result):
    m = result.metrics
    assert m["threshold_agreement"] == 1.0, "our group thresholds should predict as fairlearn's"
    assert m["max_metric_gap"] < 1e-12
    assert m["adult_baseline_dp_diff"] == pytest.approx(m["adult_baseline_dp_diff_fairlearn"])


def test_mitigations_lower_the_disparity_they_target(result):
    m = result.metrics
    for ds in ("adult", "compas"):
        assert m[f"{ds}_threshold_dp_dp_diff"] < m[f"{ds}_baseline_dp_diff"], ds
        assert m[f"{ds}_expgrad_dp_dp_diff"] < m[f"{ds}_baseline_dp_diff"], ds
    assert m["adult_threshold_dp_dp_diff"] < m["adult_baseline_dp_diff"] / 4
    assert m["adult_reweighing_dp_diff"] < m["adult_baseline_dp_diff"]
    assert m["adult_baseline_dp_diff"] > 0.1 and m["adult_four_fifths"] == "fails"
    assert m["compas_score_fpr_hi_group"] == "African-American"
    assert m["compas_score_fpr_hi"] > m["compas_score_fpr_lo"] + 0.1


def test_report_and_figures_are_written(result, run_dir):
    audit = (run_dir / "audit.md").read_text()
    assert audit.startswith("# Fairness audit")
    assert (
        audit.count("| adult | threshold_eo |") == 3
    )  # one method row, two group rows and "| compas | compas_score |" in audit
    assert "## Calibration per group" in audit and "African-American" in audit
    assert {p.stem for p in result.figures} == {"tradeoff", "calibration"}
    assert all(p.stat().st_size > 20_000 for p in result.figures)
    per_group = result.tables["per_group"]
    assert {r["group"] for r in per_group if r["dataset"] == "adult"} == {"Female", "Male"}


def test_bad_config_is_refused():
    with pytest.raises(ConfigError, match="max_rows"):
        validate_config(runner.Config(max_rows=10))
    with pytest.raises(ConfigError, match="adult_group"):
        validate_config(runner.Config(adult_group="age"))


def test_a_group_with_one_label_is_a_clear_error(tmp_path):
    from airoad.errors import AiroadError

    config = runner.Config(**{**runner.QUICK, "adult_group": "race", "max_rows": 500})
    with pytest.raises(AiroadError, match="group 'Amer-Indian-Eskimo' has only label 0.*max_rows"):
        runner.run(config, RunContext(tmp_path))
