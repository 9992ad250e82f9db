"""The prompt-engineering runner on the real SmolLM2 and fine-food reviews (quick config)."""

from __future__ import annotations

import json
import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import prompt_engineering as runner

STYLES = [("arithmetic", "zero-shot"), ("arithmetic", "few-shot"),
          ("arithmetic", "chain-of-thought"), ("arithmetic", "self-consistency"),
          ("sentiment", "zero-shot"), ("sentiment", "few-shot"),
          ("extraction", "free"), ("extraction", "constrained")]  # fmt: skip


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    out = tmp_path_factory.mktemp("prompt_engineering")
    return runner.run(runner.Config(**runner.QUICK), RunContext(out))


def test_every_cell_has_an_accuracy_inside_its_interval(result):
    rows = result.tables["accuracy"]
    assert [(r["task"], r["style"]) for r in rows] == STYLES
    for r in rows:
        assert r["n"] == runner.QUICK["n_items"]
        assert 0.0 <= r["low"] <= r["accuracy"] <= r["high"] <= 1.0
    m = result.metrics
    assert result.key_metric == "arithmetic_best_accuracy" and result.library_metric is None
    assert m["arithmetic_best_accuracy"] == max(r["accuracy"] for r in rows[:4])
    assert m["wilson_max_abs_diff"] < 1e-12 and m["prefix_tokens_saved"] > 0


def test_constrained_extraction_always_parses_even_below_its_minimum_budget(result):
    m = result.metrics
    assert runner.QUICK["json_tokens"] < m["extraction_constrained_min_tokens"]
    assert m["extraction_constrained_parse_rate"] == 1.0
    replies = [r for r in result.tables["examples"] if r["style"] == "constrained"]
    for row in replies:
        assert set(json.loads(row["reply"])) == {"name", "age", "city"}


def test_examples_show_replies_and_votes(result):
    rows = result.tables["examples"]
    assert len(rows) == len(STYLES) * runner.QUICK["n_examples"]
    vote = next(r for r in rows if r["style"] == "self-consistency")
    assert vote["reply"].count(" | ") == runner.QUICK["n_samples"] - 1
    curve = [result.metrics[f"vote_accuracy_{m}"] for m in range(1, runner.QUICK["n_samples"] + 1)]
    assert all(0.0 <= a <= 1.0 and not math.isnan(a) for a in curve)


def test_figures_are_written(result):
    assert [p.name for p in result.figures] == [
        "accuracy_by_style.png",
        "self_consistency_votes.png",
    ]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
