"""The regularization runner on real Fashion-MNIST (quick config)."""

from __future__ import annotations

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import regularization as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("regularization"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_ablation_table_has_every_variant(result):
    rows = result.tables["ablation"]
    assert [r["variant"] for r in rows] == list(runner.VARIANTS)
    for r in rows:
        assert 0.3 < r["test_acc"] <= 1.0, r["variant"]
        assert 1 <= r["epochs_run"] <= runner.QUICK["epochs"]


def test_our_batchnorm_tracks_torch(result):
    m = result.metrics
    assert result.key_metric == "batchnorm_ours_test_acc"
    assert result.library_metric == "batchnorm_torch_test_acc"
    assert abs(m["batchnorm_ours_test_acc"] - m["batchnorm_torch_test_acc"]) <= 0.01


def test_accumulation_matches_big_batch(result):
    assert result.metrics["accumulation_max_grad_diff"] < 1e-12


def test_l1_makes_more_small_weights(result):
    by = {r["variant"]: r for r in result.tables["ablation"]}
    assert by["L1"]["frac_weights_below_1e-3"] > by["baseline"]["frac_weights_below_1e-3"]


def test_figures_are_written(result):
    assert {p.name for p in result.figures} == {"ablation_curves.png", "lr_schedule.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_unknown_variant_is_rejected_before_the_run():
    with pytest.raises(ConfigError, match="'variants' is 'magic'"):
        make_config(runner.Config, runner.QUICK, True, {"variants": ("baseline", "magic")})


def test_validation_images_stay_out_of_training(tmp_path):
    with pytest.raises(ConfigError, match="n_train"):
        runner.run(runner.Config(n_train=59_000, n_val=5_000), RunContext(tmp_path))
