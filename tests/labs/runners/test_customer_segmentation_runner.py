"""The customer-segmentation runner on the real ISLP Credit data (quick config)."""

from __future__ import annotations

import math

import pytest

from airoad.classic import customer_segmentation as ref
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import customer_segmentation as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("customer-segmentation"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_silhouette_beside_sklearn_for_every_k(result):
    assert result.key_metric == "ours_silhouette" and result.library_metric == "sklearn_silhouette"
    rows = result.tables["choose_k"]
    assert [r["k"] for r in rows] == list(range(2, 11))
    for r in rows:
        assert math.isclose(r["ours_silhouette"], r["sklearn_silhouette"], abs_tol=1e-12), r
    assert result.metrics["max_abs_silhouette_sample_diff"] < 1e-10


def test_k_is_chosen_by_the_rule(result):
    rows, m = result.tables["choose_k"], result.metrics
    ks = [r["k"] for r in rows]
    k, _ = ref.choose_k(
        ks, [r["inertia"] for r in rows], [r["ours_silhouette"] for r in rows], tolerance=0.02
    )
    assert m["chosen_k"] == k == 3  # students with balances, affluent customers, the rest
    assert m["elbow_k"] == 5 and m["best_silhouette_k"] == 3
    assert m["n_customers"] == 400


def test_profile_names_come_from_the_centroids(result):
    profiles = result.tables["segment_profiles"]
    assert len(profiles) == result.metrics["chosen_k"]
    assert sum(p["customers"] for p in profiles) == 400
    names = [p["name"] for p in profiles]
    assert len(set(names)) == len(names)
    for p in profiles:  # every word of a name matches the sign of that feature's z-score
        for term in p["name"].split(", "):
            if term == "average":
                continue
            level, feature = term.split(" ", 1)
            z = next(
                v for key, v in p.items() if key.startswith("z ") and key[2:].lower() == feature
            )
            assert (z > 0) == (level == "high") and abs(z) >= 0.35, (p["name"], z)
    assert any("student" in n for n in names) and any("high income" in n for n in names)


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {
        "choose_k.png",
        "silhouette_plot.png",
        "segments_2d.png",
        "segment_profiles.png",
    }
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
