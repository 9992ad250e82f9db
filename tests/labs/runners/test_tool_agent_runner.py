"""The tool-agent runner on the real SmolLM2, the Python docs and the airoad catalog (quick
config): every task is scored by its own checker, constrained calls are always a tool name with
a JSON object of the tool's keys, the limits hold, and the figures are drawn."""

from __future__ import annotations

import json

import numpy as np
import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import validate_config
from airoad.labs.runners import tool_agent as runner
from airoad.labs.runners import tool_agent_parts as parts
from airoad.llm.agent_tools import check_answer


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("agent")))


def test_every_task_is_scored_by_its_checker(result):
    rows, m = result.tables["tasks"], result.metrics
    assert [r["kind"] for r in rows] == list(parts.KINDS), "quick takes one task of each kind"
    tasks = {t["id"]: t for t in parts.load_tasks(32)}
    for mode in parts.MODES:
        flags = [r[f"{mode}_ok"] for r in rows]
        for r in rows:
            t = tasks[r["id"]]
            assert r[f"{mode}_ok"] == check_answer(r[f"{mode}_answer"], t["gold"], t["check"])
        assert m[f"{mode}_success"] == pytest.approx(np.mean(flags))
        assert m[f"{mode}_low"] <= m[f"{mode}_success"] <= m[f"{mode}_high"]
    assert all(isinstance(r["no_tools_answer"], str) and r["no_tools_answer"] for r in rows)
    assert result.key_metric == "tools_constrained_success"


def test_constrained_calls_are_well_formed_and_limits_hold(result):
    tools = {t.name: t for t in parts.make_tools()}
    steps = result.tables["tasks"]
    assert all(1 <= r[f"{mode}_steps"] <= runner.QUICK["max_steps"] for r in steps
               for mode in ("tools_free", "tools_constrained"))  # fmt: skip
    calls = {r["tool"]: r for r in result.tables["calls"]}
    assert calls["unknown"]["tools_constrained_calls"] == 0, "constrained actions are tool names"
    m = result.metrics
    assert m["tools_constrained_calls"] == sum(r["tools_constrained_calls"] for r in calls.values())
    assert m["tools_constrained_malformed"] <= m["tools_free_malformed"] + 1e-12
    for s in result.tables["example"]:
        keys = set(json.loads(s["input"]))  # constrained input always parses
        assert keys == set(tools[s["action"]].schema["properties"])
        if s["kind"] == "malformed":
            assert "is not one of" in s["observation"], "only an enum can still be broken"


def test_real_tools_and_figures(result):
    tools = {t.name: t for t in parts.make_tools()}
    assert tools["docs_search"].fn(query="pass null operation").startswith("pass")
    assert tools["catalog"].fn(lab="rag-qa", field="phase") == "llm-practice"
    assert {p.stem for p in result.figures} == {"success_by_kind", "malformed_calls"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert any("SmolLM2" in note for note in result.notes)


def test_task_golds_hold_in_the_catalog_and_the_docs():
    from airoad.data import load

    catalog, topics = parts.make_tools()[2], load("python-docs")
    for t in parts.load_tasks(32):
        if t["kind"] == "catalog":
            fact = catalog.fn(lab=t["lab"], field=t["field"])
            assert check_answer(fact, t["gold"], t["check"]), f"{t['id']}: catalog says {fact}"
        elif t["kind"] == "docs":
            text = topics[t["topic"]].lower()
            assert any(g.lower() in text for g in t["gold"]), f"{t['id']}: not in {t['topic']}"


def test_config_ranges_are_checked():
    from airoad.errors import AiroadError

    for bad in ({"n_tasks": 0}, {"max_steps": 0}, {"max_seconds": float("nan")}, {"n_tasks": 33}):
        with pytest.raises(AiroadError):
            validate_config(runner.Config(**bad))
