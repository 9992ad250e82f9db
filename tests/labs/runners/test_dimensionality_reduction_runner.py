"""The dimensionality-reduction runner on the real MNIST-5k data (quick config)."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import dimensionality_reduction as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("dimensionality-reduction"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_selection_matches_sklearn(result):
    m = result.metrics
    assert (
        result.key_metric == "ours_rfe_accuracy" and result.library_metric == "sklearn_rfe_accuracy"
    )
    assert m["rfe_same_as_sklearn"] and m["mi_same_as_sklearn"]
    assert m["ours_rfe_accuracy"] == m["sklearn_rfe_accuracy"]
    assert m["ours_mi_accuracy"] == m["sklearn_mi_accuracy"]
    assert m["n_train"] + m["n_test"] == runner.QUICK["n_samples"]


def test_comparison_table_covers_every_method_and_k(result):
    rows = result.tables["selection_vs_extraction"]
    assert {(r["k"], r["method"].split(" ")[0]) for r in rows} == {
        (k, name) for k in runner.QUICK["ks"] for name in ("mutual", "RFE,", "PCA")
    }
    for r in rows:
        assert r["same_as_sklearn"], r
        assert 0.3 < r["ours_accuracy"] <= 1.0, r
    # More features help every method on this data.
    for name in ("mutual", "RFE,", "PCA"):
        acc = [r["ours_accuracy"] for r in rows if r["method"].startswith(name)]
        assert acc[-1] >= acc[0], name


def test_tsne_separates_digits_better_than_pca(result):
    m = result.metrics
    assert m["tsne_2d_knn_accuracy"] > m["pca_2d_knn_accuracy"] + 0.2
    assert m["tsne_2d_trustworthiness"] > m["pca_2d_trustworthiness"]


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {
        "pca_vs_tsne.png",
        "selected_pixels.png",
        "accuracy_vs_k.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
