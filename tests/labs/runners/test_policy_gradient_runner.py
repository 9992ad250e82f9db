"""The policy-gradient runner on CartPole-v1 (quick config): every method trains from every
seed, curves and greedy returns stay in CartPole's range, seeded runs repeat, the
baseline changes the per-batch gradient estimate, and both figures are written."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import validate_config
from airoad.labs.runners import policy_gradient as runner
from airoad.labs.runners import policy_gradient_parts as parts


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("pg")))


def test_every_method_and_seed_trains(result):
    rows, m = result.tables["final"], result.metrics
    assert [(r["method"], r["seed"]) for r in rows] == [
        (meth, s) for meth in parts.METHODS for s in range(runner.QUICK["n_seeds"])
    ]
    for r in rows:
        assert 8 <= r["final_return"] <= 500 and 8 <= r["greedy_return"] <= 500
        assert r["episodes"] >= runner.Config().n_envs
    assert m["best_method"] in parts.METHODS
    assert m[result.key_metric] == pytest.approx(
        np.mean([r["final_return"] for r in rows if r["method"] == "a2c_gae"])
    )


def test_variance_rows_and_figures(result):
    rows = result.tables["gradient_variance"]
    assert [r["step"] for r in rows][0] == 0 and len(rows) == 4
    assert all(r["var_baseline"] > 0 and r["var_no_baseline"] > 0 for r in rows)
    assert {p.stem for p in result.figures} == {"learning_curves", "gradient_variance"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)


def test_seeded_runs_repeat_and_baseline_changes_the_estimate():
    cfg = replace(runner.Config(), total_steps=300, n_envs=4, var_episodes=4, var_batches=3)
    a, b = parts.train_a2c(cfg, 3), parts.train_a2c(cfg, 3)
    assert a.returns == b.returns, "the same seed must replay the same run"
    # On the same batch the baseline changes the estimate (it is unbiased only in expectation).
    torch.manual_seed(0)
    model = parts.ref.ActorCritic(4, 2, 16)
    envs, _ = parts.make_envs(64, 0)
    batch = parts.episodes(envs, model, torch.Generator().manual_seed(0))
    g0, g1 = (parts.policy_grad(model, batch, 0.99, b) for b in (False, True))
    assert g0.shape == g1.shape == (sum(p.numel() for p in model.actor.parameters()),)
    assert not np.allclose(g0, g1), "subtracting V(s) must change the per-batch estimate"


def test_config_out_of_range_is_rejected():
    with pytest.raises(ConfigError, match="gamma"):
        validate_config(replace(runner.Config(), gamma=1.5))
    with pytest.raises(ConfigError, match="total_steps"):
        validate_config(replace(runner.Config(), total_steps=10))
