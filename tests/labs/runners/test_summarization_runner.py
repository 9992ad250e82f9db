"""The summarization runner on real docstrings and the real SmolLM2 (quick config)."""

from __future__ import annotations

import pytest
from rouge_score.rouge_scorer import RougeScorer

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import summarization as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    out = tmp_path_factory.mktemp("summarization")
    return runner.run(runner.Config(**runner.QUICK), RunContext(out))


def test_scores_agree_with_the_libraries(result):
    m = result.metrics
    assert result.key_metric == "smollm2_rougeL"
    assert m["smollm2_rougeL"] == pytest.approx(m["smollm2_rougeL_rouge_score"], abs=1e-12)
    assert m["rouge_max_abs_diff"] < 1e-12 and m["pagerank_max_abs_diff"] < 1e-9
    assert m["n_documents"] == runner.QUICK["n_documents"]
    assert m["n_abstractive"] == runner.QUICK["n_abstractive"]


def test_rouge_table_has_intervals_around_the_means(result):
    rows = result.tables["rouge"]
    subset = [r for r in rows if r["documents"] == "abstractive subset"]
    assert [r["method"] for r in subset] == ["lead", "textrank", "smollm2"]
    assert {r["method"] for r in rows if r["documents"] == "all"} == {"lead", "textrank"}
    for r in rows:
        for k in ("rouge1", "rouge2", "rougeL"):
            assert 0.0 <= r[f"{k}_low"] <= r[k] <= r[f"{k}_high"] <= 1.0
        assert r["rouge2"] <= r["rouge1"] and r["rougeL"] <= r["rouge1"]
    m = result.metrics
    assert m["smollm2_vs_lead_low"] <= m["smollm2_vs_lead_rougeL"] <= m["smollm2_vs_lead_high"]
    assert m["smollm2_vs_lead_verdict"] in ("higher", "lower", "no clear difference")


def test_examples_are_real_summaries_scored_by_rouge_score(result):
    rows = result.tables["examples"]
    assert len(rows) == runner.QUICK["n_examples"]
    scorer = RougeScorer(["rougeL"])
    for row in rows:
        assert row["reference"].endswith(".") and row["lead"] and row["textrank"]
        assert 0 < len(row["smollm2"].split()) <= runner.QUICK["max_new_tokens"]
        for method in ("lead", "textrank", "smollm2"):
            want = scorer.score(row["reference"], row[method])["rougeL"].fmeasure
            assert row[f"{method}_rougeL"] == pytest.approx(want, abs=1e-3)
    assert result.metrics["generation_seconds"] > 0


def test_figures_are_written(result):
    assert [p.name for p in result.figures] == ["rouge_by_method.png", "summary_lengths.png"]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_config_rejects_a_subset_larger_than_the_documents():
    with pytest.raises(ConfigError, match="n_abstractive"):
        runner.Config(n_documents=10, n_abstractive=20)
