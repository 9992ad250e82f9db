"""The `linear-regression` runner on the real data (quick config): ours vs sklearn side by side."""

from __future__ import annotations

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import RunContext
from airoad.labs.runners import linear_regression as lr


def test_quick_run_matches_sklearn(tmp_path):
    """A quick run on Boston and diabetes matches sklearn's R^2 and writes three figures."""
    result = lr.run(lr.Config(**lr.QUICK), RunContext(tmp_path))
    m = result.metrics
    assert result.key_metric == "ours_test_r2" and result.library_metric == "sklearn_test_r2"
    assert m["ours_test_r2"] == pytest.approx(m["sklearn_test_r2"], abs=1e-10)
    assert 0.6 < m["ours_test_r2"] < 0.9, (
        "OLS on Boston explains roughly three quarters of the variance"
    )
    rows = result.tables["comparison"]
    assert {r["dataset"] for r in rows} == {"boston", "diabetes"}
    for row in rows:
        # gd may stop early in the quick config; the direct solvers must agree to round-off
        tol = 1e-2 if row["model"] in ("ols_gd", "lasso") else 1e-8
        assert abs(row["ours_test_r2"] - row["sklearn_test_r2"]) < tol, row
    assert m["boston_lasso_coef_diff"] < 0.05  # both stop at the same duality-gap tolerance
    bv = result.tables["bias_variance"]
    assert len(bv) == lr.QUICK["bv_max_degree"]
    assert bv[-1]["variance"] > bv[0]["variance"], "variance should grow with the degree"
    assert {p.name for p in result.figures} == {
        "coefficients.png",
        "gd_loss.png",
        "bias_variance.png",
    }
    for path in result.figures:
        assert path.exists() and path.stat().st_size > 1000, f"{path} is missing or empty"


def test_unknown_dataset_is_a_config_error(tmp_path):
    """Asking for a dataset the lab does not know ends in a ConfigError, not a traceback."""
    with pytest.raises(ConfigError):
        lr.run(lr.Config(datasets=("nope",)), RunContext(tmp_path))
