"""The gradient-descent runner on real diabetes data, quick config."""

from __future__ import annotations

import json

import numpy as np

from airoad.labs.contract import RunContext
from airoad.labs.runners.gradient_descent import QUICK, Config, run


def test_quick_run_matches_torch_and_least_squares(tmp_path):
    """Quick run: every variant reproduces torch.optim, lands near least squares, writes figures."""
    result = run(Config(**QUICK), RunContext(tmp_path))
    m = result.metrics
    assert result.key_metric == "ours_adam_mse" and result.library_metric == "torch_adam_mse"
    assert abs(m["ours_adam_mse"] - m["torch_adam_mse"]) < 1e-12, (
        "Adam must replay torch.optim exactly"
    )
    assert m["max_loss_diff_vs_torch"] < 1e-12, "some variant drifted from torch.optim"
    assert abs(m["ls_m"] - 0.5865) < 1e-3, "least-squares slope of bmi on target (standardised)"
    # mini-batch variants are within a small excess MSE of the least-squares floor
    for name in ("adam", "rmsprop", "momentum", "cosine", "warm_up_cosine", "step_decay"):
        excess = m[f"ours_{name}_mse"] - m["sklearn_ls_mse"]
        assert 0 <= excess < 1e-3, f"{name}: excess MSE {excess}"
    assert len(result.tables["variants"]) == 10
    for fig in result.figures:
        assert fig.exists() and fig.stat().st_size > 10_000, f"{fig} missing or empty"
    json.dumps(result.metrics)  # metrics must be JSON-serialisable
    assert all(np.isfinite(v) for v in m.values() if isinstance(v, float))
