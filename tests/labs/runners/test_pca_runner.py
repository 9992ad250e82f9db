"""The `pca` runner on the real data (quick config): metrics, tables, figures, ours vs sklearn."""

from __future__ import annotations

import pytest

from airoad.labs.contract import RunContext
from airoad.labs.runners import pca


def test_quick_run_matches_sklearn(tmp_path):
    """A quick run writes its figures and reports our explained variance next to sklearn's."""
    result = pca.run(pca.Config(**pca.QUICK), RunContext(tmp_path))
    m = result.metrics
    assert result.key_metric == "ours_evr_2" and result.library_metric == "sklearn_evr_2"
    assert m["ours_evr_2"] == pytest.approx(m["sklearn_evr_2"], abs=1e-10)
    assert 0.10 < m["ours_evr_2"] < 0.30, (
        "two MNIST components keep roughly a sixth of the variance"
    )
    assert m["iris_evr_2"] == pytest.approx(0.9777, abs=1e-3)
    assert m["iris_max_component_diff"] < 1e-8 and m["mnist_max_component_diff"] < 1e-8
    assert 20 < m["mnist_components_for_90pct"] < 200
    assert {"comparison", "variance"} <= set(result.tables)
    for row in result.tables["comparison"]:
        if "ratio" in row["quantity"]:
            assert row["abs_diff"] < 1e-10, row
    names = {p.name for p in result.figures}
    assert names == {"iris_2d.png", "mnist_2d.png", "explained_variance.png", "reconstructions.png"}
    for path in result.figures:
        assert path.exists() and path.stat().st_size > 1000, f"{path} is missing or empty"
