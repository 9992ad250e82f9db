"""The grpo runner on its quick config (the quick tiny SFT policy, real scale skipped): metrics,
per-step curves and the figure; the GRPO loop itself learns a reward it can reach and stands
still when every group ties; out-of-range settings are refused before any work."""

from __future__ import annotations

from dataclasses import replace

import pytest
import torch

from airoad.alignment import tiny_lm
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import validate_config
from airoad.labs.runners import grpo as runner
from airoad.labs.runners import grpo_parts as parts


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("grpo")))


@pytest.fixture(scope="module")
def quick_sft():
    return tiny_lm.load_sft(tiny_lm.QUICK)[0]


def test_quick_run_reports_curves_and_figure(result):
    m, rows = result.metrics, result.tables["tiny_steps"]
    assert [r["step"] for r in rows] == list(range(1, runner.QUICK["steps"] + 1))
    assert [e["step"] for e in result.tables["tiny_eval"]] == [0, 3, 6]
    assert m["n_eval"] == tiny_lm.QUICK.n_eval and 0 <= m["tiny_after"] <= 1
    assert m["tiny_before"] == pytest.approx(m["sft_cached_accuracy"]), "step 0 is the SFT policy"
    for r in rows:
        assert 1 <= r["length"] <= tiny_lm.MAX_NEW and 0 <= r["reward"] <= 1
        assert r["kl"] >= 0 and 0 <= r["clip_fraction"] <= 1 and 0 <= r["tied_groups"] <= 1
    assert m["real_note"].startswith("Real scale skipped") and result.tables["real_steps"] == []
    assert [p.stem for p in result.figures] == ["tiny_curves"]
    assert result.figures[0].stat().st_size > 20_000


def _config(**kw) -> runner.Config:
    base = dict(tiny="quick", prompts=8, group=8, mu=2, lr=3e-3, eval_every=1_000, real_steps=0)
    return replace(runner.Config(), **(base | kw))


def test_grpo_learns_a_reachable_reward(monkeypatch, quick_sft, tmp_path):
    """With a reward the quick policy sometimes earns (the answer starts with '1'), GRPO raises it."""
    ones = lambda items, roll: torch.tensor([float(t[:1] == "1") for t in tiny_lm.decode(roll)])  # noqa: E731
    monkeypatch.setattr(parts.tiny_lm, "rewards", ones)
    held = tiny_lm.held_out(tiny_lm.QUICK)[:50]
    _, rows, _ = parts.tiny_grpo(
        _config(steps=16), tiny_lm.QUICK, quick_sft, held, RunContext(tmp_path)
    )
    first, last = (sum(r["reward"] for r in part) / 4 for part in (rows[:4], rows[-4:]))
    assert last > first + 0.2, f"reward should climb under GRPO: {first:.2f} -> {last:.2f}"
    assert rows[-1]["kl"] > 0, "a policy that learned something has moved away from the reference"


def test_all_tied_groups_leave_the_policy_unchanged(monkeypatch, quick_sft, tmp_path):
    """Equal rewards in every group give zero advantages: the policy stays exactly the SFT policy."""
    monkeypatch.setattr(parts.tiny_lm, "rewards", lambda items, roll: torch.ones(len(items)))
    held = tiny_lm.held_out(tiny_lm.QUICK)[:20]
    policy, rows, _ = parts.tiny_grpo(
        _config(steps=3), tiny_lm.QUICK, quick_sft, held, RunContext(tmp_path)
    )
    for a, b in zip(policy.parameters(), quick_sft.parameters(), strict=True):
        assert torch.equal(a, b)
    assert all(r["kl"] == 0 and r["tied_groups"] == 1 for r in rows)


def test_config_out_of_range_is_rejected():
    with pytest.raises(ConfigError, match="group"):
        validate_config(replace(runner.Config(), group=1))
    with pytest.raises(ConfigError, match="epsilon"):
        validate_config(replace(runner.Config(), epsilon=float("nan")))
    with pytest.raises(ConfigError, match="loss_type"):
        validate_config(replace(runner.Config(), loss_type="ppo"))
