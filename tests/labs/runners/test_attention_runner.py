"""The attention runner on its generated digit-reversal task (quick config)."""

from __future__ import annotations

import numpy as np
import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import attention as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("attention"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_reversal_batch_reverses_and_pads():
    src, mask, tgt_in, tgt_out = runner.reversal_batch(np.random.default_rng(0), np.array([3, 1]))
    assert src.shape == (2, 3) and tgt_in.shape == tgt_out.shape == (2, 4)
    assert mask.tolist() == [[True, True, True], [True, False, False]]
    assert src[1, 1:].tolist() == [runner.PAD, runner.PAD]
    assert tgt_out[0, :3].tolist() == src[0].flip(0).tolist() and tgt_out[0, 3] == runner.EOS
    assert tgt_out[1].tolist() == [int(src[1, 0]), runner.EOS, runner.PAD, runner.PAD]
    assert tgt_in[0].tolist() == [runner.BOS, *src[0].flip(0).tolist()]
    assert tgt_in[1].tolist() == [runner.BOS, int(src[1, 0]), runner.PAD, runner.PAD]


def test_ours_equals_torch(result):
    m = result.metrics
    assert len(result.tables["ours_vs_torch"]) == 6  # 4 SDPA masks, self- and cross-attention
    assert m["check_max_abs_diff_out"] < 1e-12, "float64 outputs should agree to rounding"
    assert m["check_max_abs_diff_grad"] < 1e-12, "float64 gradients should agree to rounding"
    assert m["mha_time_ratio_ours_over_torch"] > 0


def test_both_models_learn_and_attention_wins_on_long_strings(result):
    m = result.metrics
    assert result.key_metric == "attention_exact_match_at_max_len"
    assert result.library_metric == "no_attention_exact_match_at_max_len"
    for name in runner.MODELS:
        assert m[f"{name}_final_loss"] < 0.5 * m[f"{name}_first_loss"], f"{name} did not learn"
    assert m["attention_final_loss"] < m["no_attention_final_loss"]
    rows = result.tables["by_length"]
    assert [r["length"] for r in rows] == list(range(1, runner.QUICK["max_len"] + 1))
    assert rows[0]["attention_exact"] == rows[0]["no_attention_exact"] == 1.0  # one digit
    # measured quick run: 0.88 vs 0.00 at length 8, the gap grows from 0.00 to 0.94
    assert m["attention_exact_match_at_max_len"] > m["no_attention_exact_match_at_max_len"] + 0.3
    assert m["gap_long"] > m["gap_short"] + 0.3
    assert m["gap_verdict"].startswith("the gap grows")


def test_figures_and_notes(result):
    names = {p.name for p in result.figures}
    assert names == {
        "masks.png",
        "training_curves.png",
        "accuracy_by_length.png",
        "attention_heatmaps.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
    assert len(result.notes) == 4 and "the gap grows" in result.notes[2]
