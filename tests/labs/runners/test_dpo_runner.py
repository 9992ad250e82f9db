"""The dpo runner on the generated addition task (quick config, the cached quick SFT policy):
pairs become batches in trl's layout, DPO and IPO start at the reference (zero margins, loss
log 2) and move the held-out margins up, win / tie / loss counts add up to the accuracies, and
the three figures are written. The SmolLM2 scale is off in the quick config."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from airoad.alignment import dpo as ref
from airoad.alignment import tiny_lm, tiny_task
from airoad.errors import AiroadError, ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import validate_config
from airoad.labs.runners import dpo as runner
from airoad.labs.runners import dpo_parts as parts


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("dpo")))


def test_training_starts_at_the_reference_and_moves_margins(result):
    curves = result.tables["curves"]
    for method in ("DPO", "IPO"):
        rows = [r for r in curves if r["method"] == method]
        assert rows[0]["step"] == 0 and rows[0]["margin"] == 0.0 and rows[0]["pref_acc"] == 0.0
        assert all(0 <= r["pref_acc"] <= 1 for r in rows)
        assert rows[-1]["margin"] > 0, f"{method}: held-out reward margin did not grow"
    dpo_first = next(r for r in curves if r["method"] == "DPO" and r["step"] > 0)
    assert dpo_first["train_loss"] == pytest.approx(math.log(2), abs=0.01)
    m = result.metrics
    assert m["dpo_pref_acc"] > 0.5 and m["n_pairs"] >= runner.QUICK["batch"]
    assert math.isnan(m["real_acc_before"]) and result.tables["real_training"] == []


def test_win_counts_add_up(result):
    m, n = result.metrics, runner.QUICK["n_win"]
    for row in result.tables["win_rate"]:
        assert row["wins"] + row["losses"] + row["ties_right"] + row["ties_wrong"] == n
        assert row["accuracy"] - m["sft_acc"] == pytest.approx((row["wins"] - row["losses"]) / n)
    assert m[result.key_metric] == result.tables["win_rate"][0]["accuracy"]
    assert {p.stem for p in result.figures} == {"dpo_training", "logps", "win_rate"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)


def test_win_counts_hand_case():
    ours = np.array([True, True, False, False, True])
    base = np.array([False, True, True, False, False])
    c = parts.win_counts(ours, base)
    assert (c["wins"], c["losses"], c["ties_right"], c["ties_wrong"]) == (2, 1, 1, 1)
    assert c["win_rate"] == pytest.approx(2 / 3) and c["win_rate_ties_split"] == pytest.approx(0.6)


def test_pair_batch_matches_the_shared_logprobs():
    sft, _ = tiny_lm.load_sft(tiny_lm.QUICK)
    pairs = [tiny_lm.Pair(tiny_task.Problem(1, 2), "3", "12"),
             tiny_lm.Pair(tiny_task.Problem(40, 99), "139", "")]  # fmt: skip
    ids, mask = parts.pair_batch(pairs)
    assert mask.sum(1).tolist() == [2, 4, 3, 1], "mask = response characters + <end>"
    ours = ref.sequence_logprobs(sft(ids), ids, mask)
    p = len(tiny_task.chat_prompt(pairs[0].problem.prompt))
    rollout = tiny_lm.Rollout(ids[:, :p], ids[:, p:], mask[:, p:].bool())
    torch.testing.assert_close(ours, tiny_lm.response_logprobs(sft, rollout).sum(1))


def test_real_batch_layout():
    ids, attn, mask = parts.real_batch([([5, 6], [7, 1], [8, 9, 1])], pad_id=1)
    assert ids.tolist() == [[5, 6, 7, 1, 1], [5, 6, 8, 9, 1]]
    assert attn.tolist() == [[1, 1, 1, 1, 0], [1, 1, 1, 1, 1]]
    assert mask.tolist() == [[0, 0, 1, 1, 0], [0, 0, 1, 1, 1]]


def test_bad_configs_are_rejected():
    with pytest.raises(ConfigError, match="beta"):
        validate_config(replace(runner.Config(), beta=0.0))
    with pytest.raises(ConfigError, match="temperature"):
        validate_config(replace(runner.Config(), temperature=float("nan")))
    sft, _ = tiny_lm.load_sft(tiny_lm.QUICK)
    few = replace(runner.Config(**runner.QUICK), n_train_prompts=16, batch=4_000)
    with pytest.raises(AiroadError, match="training pairs"):
        runner._pairs(few, sft)
