"""The explainability runner on real Adult and Titanic data (quick config): every from-scratch
explanation equals its library's, Shapley values add up to the prediction, the tables are
consistent, the figures exist, and out-of-range settings stop before any work."""

from __future__ import annotations

import numpy as np
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import explainability as runner
from airoad.labs.runners import explainability_parts as parts


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("explainability"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_shapley_methods_agree_on_adult(result):
    m = result.metrics
    assert m["kernel_vs_shap"] < 1e-6, "our KernelSHAP must equal shap.KernelExplainer"
    assert m["kernel_vs_exact"] < 1e-9, "KernelSHAP over all coalitions is exact"
    assert m["exact_vs_tree"] < 1e-4, "exact Shapley = interventional TreeSHAP (float32 trees)"
    assert m["tree_additivity"] < 1e-4, "TreeSHAP values must add up to the margin"
    assert m["ours_mean_abs_shap"] == pytest.approx(m["shap_mean_abs_shap"], abs=1e-9)
    assert m["ours_mean_abs_shap"] > 0.01, "the model depends on its features"
    rows = result.tables["shapley_rows"]
    assert len(rows) == runner.QUICK["n_kernel"]
    for r in rows:
        assert r["phi0"] + r["sum_phi"] == pytest.approx(r["f_x"], abs=1e-9), "efficiency"


def test_global_explanations_match_sklearn(result):
    m, rows = result.metrics, result.tables["importance"]
    assert m["perm_vs_sklearn"] == 0.0, "permutation importance must equal sklearn's exactly"
    assert m["pdp_vs_sklearn"] < 1e-12, "partial dependence must equal sklearn's"
    assert [r["feature"] for r in rows] != [] and {r["feature"] for r in rows} == set(parts.ADULT)
    shap_order = [r["mean_abs_shap"] for r in rows]
    assert shap_order == sorted(shap_order, reverse=True), "table sorted by mean |SHAP|"
    assert m["top_shap"] == rows[0]["feature"] and -1 <= m["rank_corr"] <= 1
    assert 0.75 < m["xgb_accuracy"] < 1


def test_lime_and_integrated_gradients(result):
    m = result.metrics
    assert m["lime_vs_lime"] < 1e-9, "our LIME must equal lime on the same samples"
    assert 0 <= m["lime_shap_sign_agreement"] <= 1
    assert m["ig_vs_captum"] < 1e-6, "integrated gradients must equal captum's"
    rules = {r["rule"]: r["completeness_gap"] for r in result.tables["ig_rules"]}
    assert set(rules) == set(runner.attr.RULES)
    assert rules["gausslegendre"] < 1e-6 < rules["riemann_left"], "Gauss-Legendre is far closer"
    assert rules["riemann_middle"] < rules["riemann_left"], "midpoints beat left ends"
    assert 0.6 < m["mlp_accuracy"] < 1


def test_figures_and_notes(result):
    names = {p.stem for p in result.figures}
    assert names == {"beeswarm", "waterfall", "pdp", "shap_agreement"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert len(result.notes) == len(runner.NOTES) and "nan" not in " ".join(result.notes)


def test_out_of_range_settings_are_rejected():
    bad = {"n_kernel": 0, "lime_samples": 10, "ig_steps": 1, "adult_rows": 100,
           "learning_rate": float("nan"), "test_size": 1.0}  # fmt: skip
    for key, value in bad.items():
        with pytest.raises(ConfigError, match=key):
            make_config(runner.Config, runner.QUICK, True, {key: value})


def test_ordinal_codes_are_shared_between_frames():
    import pandas as pd

    a = pd.DataFrame({"c": ["b", None, "a"], "n": [1.0, 2.0, 3.0]})
    b = pd.DataFrame({"c": ["z", "a", "b"], "n": [4.0, 5.0, np.nan]})
    xa, xb = parts.ordinal([a, b], ("c", "n"))
    np.testing.assert_array_equal(xa[:, 0], [1, 2, 0])  # a < b < missing < z
    np.testing.assert_array_equal(xb[:, 0], [3, 0, 1])
    assert np.isnan(xb[2, 1]), "numeric columns pass through (XGBoost handles NaN)"
