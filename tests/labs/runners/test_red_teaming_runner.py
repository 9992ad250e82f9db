"""The red-teaming runner on SmolLM2 (quick config: one attack per goal, three benign prompts):
every reply is scored by the rules, the guardrails never raise the success rate, the judge is
cross-validated on the hand-labelled replies and the figures are drawn."""

from __future__ import annotations

import dataclasses

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import validate_config
from airoad.labs.runners import red_teaming as runner
from airoad.labs.runners import red_teaming_parts as parts
from airoad.responsible import red_teaming as ref


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("rt")))


def test_every_goal_is_attacked_and_scored(result):
    pairs = result.tables["attacks"]
    assert len(pairs) == runner.QUICK["n_attacks"]
    assert {p["goal"] for p in pairs} == set(ref.GOALS), "the pick must cover every goal"
    cases = {c.id: c for c in parts.attack_cases(parts.read_data("attacks"), 0)}
    for p in pairs:
        target = cases[p["id"]].target
        assert p["success"] == ref.attack_succeeded(p["goal"], p["reply"], target)
        assert p["guarded_success"] == ref.attack_succeeded(p["goal"], p["guarded_reply"], target)
        if p["flags"]:
            assert p["guarded_reply"] in (ref.REFUSAL, ref.FALLBACK)


def test_guardrails_and_benign_prompts(result):
    m = result.metrics
    assert 0 <= m["asr_after"] <= 1 and 0 <= m["false_refusal"] <= 1
    assert m["format_after"] == 0.0, "the format guardrail lets no non-JSON reply through"
    assert m["leak_after"] == 0.0, "redaction leaves no canary in a guarded reply"
    assert len(result.tables["benign"]) == runner.QUICK["n_benign"]
    goals = {r["goal"] for r in result.tables["by_goal"]}
    assert goals == set(ref.GOALS)


def test_judge_is_cross_validated_on_the_labels(result):
    m, folds = result.metrics, result.tables["judge_folds"]
    assert all(isinstance(v, int | float | str) for v in m.values()), "metrics are scalars"
    labelled = parts.read_data("labelled")
    assert m["n_labelled"] == len(labelled) >= 150
    assert (
        m["label_yes"] + m["label_no"] == m["n_labelled"] and min(m["label_yes"], m["label_no"]) > 0
    )
    assert len(folds) == runner.Config().folds and sum(f["n_test"] for f in folds) == len(labelled)
    assert 0.5 < m["rules_acc"] <= 1 and 0.5 < m["judge_acc"] <= 1
    assert {p.stem for p in result.figures} == {"success_heatmap", "guardrail_tradeoff"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)


def test_pick_covers_goals_and_config_ranges():
    rows = parts.read_data("attacks")
    assert len(rows) == 102 and {r["goal"] for r in parts.pick(rows, 3, seed=5)} == set(ref.GOALS)
    assert parts.pick(rows, 102, seed=5) == rows
    with pytest.raises(ConfigError):
        validate_config(dataclasses.replace(runner.Config(), n_attacks=500))
