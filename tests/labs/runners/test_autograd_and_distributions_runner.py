"""The autograd-and-distributions runner on real diabetes data, quick config."""

from __future__ import annotations

import json

from airoad.labs.contract import RunContext
from airoad.labs.runners.autograd_and_distributions import QUICK, Config, run


def test_quick_run_matches_libraries(tmp_path):
    """Quick run: autograd, log-densities, regression and REINFORCE agree with the libraries."""
    result = run(Config(**QUICK), RunContext(tmp_path))
    m = result.metrics
    assert result.key_metric == "ours_linreg_mse" and result.library_metric == "sklearn_linreg_mse"
    assert m["max_autograd_error"] < 1e-12, "autograd derivative differs from the analytic one"
    assert m["max_log_prob_error_vs_scipy"] < 1e-10, "log-densities differ from scipy's"
    assert 0 <= m["ours_linreg_mse"] - m["sklearn_linreg_mse"] < 1e-5, (
        "autograd regression far from sklearn"
    )
    assert m["linreg_max_coef_diff"] < 0.01
    assert abs(m["normal_mean_z_score"]) < 5
    assert m["reinforce_grad_error_100k"] < 0.01, "REINFORCE estimate far from the exact gradient"
    assert m["ours_best_arm_prob"] > 0.5, (
        "the policy should favour the best arm after the quick run"
    )
    assert set(result.tables) >= {
        "derivatives",
        "moments",
        "log_prob_vs_scipy",
        "regression_coefficients",
    }
    assert len(result.figures) == 5
    for fig in result.figures:
        assert fig.exists() and fig.stat().st_size > 10_000, f"{fig} missing or empty"
    json.dumps(result.metrics)
