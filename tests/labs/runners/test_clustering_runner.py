"""The clustering runner on the real digits data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import clustering as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(
        runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("clustering"))
    )


def test_key_metric_is_digits_inertia_beside_sklearn(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_digits_inertia"
        and result.library_metric == "sklearn_digits_inertia"
    )
    assert m["n_digits"] == runner.QUICK["max_digits"]
    assert m["ours_digits_inertia"] == pytest.approx(m["sklearn_digits_inertia"], rel=0.03)


def test_same_start_means_same_answer(result):
    m = result.metrics
    assert m["same_init_ari"] == 1.0
    assert m["same_init_inertia_ours"] == pytest.approx(m["same_init_inertia_sklearn"], rel=1e-9)
    assert m["gmm_loglik_ours"] == pytest.approx(m["gmm_loglik_sklearn"], rel=1e-6)
    assert m["min_ari_vs_sklearn_same_start"] == 1.0


def test_table_covers_every_method(result):
    names = [r["method"] for r in result.tables["methods"]]
    assert len(names) == 4 + len(runner.QUICK["linkages"])
    assert any(n.startswith("DBSCAN") for n in names) and any(n.startswith("GMM") for n in names)
    assert [r["k"] for r in result.tables["elbow"]] == list(runner.QUICK["elbow_k"])
    inertias = [r["ours_inertia"] for r in result.tables["elbow"]]
    assert inertias == sorted(inertias, reverse=True), "inertia must fall as k grows"


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {"digit_centroids.png", "elbow.png", "blobs_2d.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
