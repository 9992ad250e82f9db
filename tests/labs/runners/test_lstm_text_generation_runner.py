"""The lstm-text-generation runner on a slice of Shakespeare (quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import lstm_text_generation as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("lstm-text-generation"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_quick_run_reports_bits_beside_count_models(result):
    m = result.metrics
    assert result.key_metric == "ours_val_bits_per_char"
    assert result.library_metric == "bigram_val_bits_per_char"
    assert m["train_chars"] + m["val_chars"] == runner.QUICK["text_chars"]
    # an untrained model is a near-uniform guess: about log2(V) bits
    assert m["untrained_val_bits"] == pytest.approx(m["log2_vocab_bits"], rel=0.05)
    assert m["ours_val_bits_per_char"] < m["untrained_val_bits"]  # a few steps already help
    assert m["bigram_val_bits_per_char"] < m["unigram_val_bits_per_char"] < m["log2_vocab_bits"]
    assert math.isclose(m["ours_val_nats_per_char"] / math.log(2), m["ours_val_bits_per_char"])


def test_samples_continue_the_prompt(result):
    samples = result.tables["samples"]
    assert [s["temperature"] for s in samples] == [0.0, 0.5, 1.0]
    for s in samples:
        assert s["text"].startswith("To be or")
        assert len(s["text"]) == len("To be or") + runner.QUICK["sample_chars"]


def test_curve_and_figure(result):
    steps = [c["step"] for c in result.tables["curve"]]
    assert steps == [0, 20, 40]
    assert [p.name for p in result.figures] == ["loss_curve.png"]
    assert result.figures[0].stat().st_size > 5_000
