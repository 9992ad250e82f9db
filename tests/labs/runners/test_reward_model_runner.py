"""The reward-model runner on the quick tiny models: the cached reward model ranks held-out
pairs better than chance, its recorded accuracy is reproduced, calibration bins add up, the
best-of-n table is consistent, the cache hands the same model back, and the four figures exist."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch

from airoad.alignment import reward_model as ref
from airoad.alignment import reward_model_cache as cache
from airoad.alignment import tiny_lm
from airoad.errors import AiroadError, ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import reward_model as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("reward-model"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_reward_model_ranks_held_out_pairs(result):
    m = result.metrics
    assert m["n_test_pairs"] == m["n_sample_pairs"] + m["n_format_pairs"] > 100
    assert m["tiny_accuracy"] > 0.7, "the reward model should beat chance on held-out pairs"
    assert m["format_pair_accuracy"] >= m["sample_pair_accuracy"] - 0.05
    info = cache.load_tiny_with_info(tiny_lm.QUICK)[1]
    assert m["tiny_accuracy"] == pytest.approx(info["test_accuracy"]), "cached record disagrees"
    assert np.mean(info["losses"][-5:]) < np.log(2), "the loss should fall below a blind model's"
    assert "real_accuracy" not in m, "the quick config skips SmolLM2"


def test_loader_returns_the_cached_model_in_eval_mode(result):
    a, b = (cache.load_tiny_reward_model(tiny_lm.QUICK) for _ in range(2))
    assert not a.training and isinstance(a, ref.RewardModel)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), f"{name} differs between two loads"


def test_calibration_and_best_of_tables(result):
    rows = result.tables["calibration"]
    assert sum(r["pairs"] for r in rows) == 2 * result.metrics["n_test_pairs"]
    full = [r for r in rows if r["pairs"]]
    assert all(0 <= r["observed"] <= 1 and 0 <= r["mean_predicted"] <= 1 for r in full)
    best = result.tables["best_of_n"]
    assert [r["n"] for r in best] == [1, 2, 4]
    for r in best:
        assert r["reward_model_pick"] <= r["oracle"] + 1e-12 and r["first_sample"] <= r["oracle"] + 1e-12  # fmt: skip
    assert best[0]["reward_model_pick"] == best[0]["first_sample"], "best of one is the sample"


def test_figures_and_notes(result):
    names = {p.stem for p in result.figures}
    assert names == {"training_loss", "calibration", "rewards_by_kind", "best_of_n"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert len(result.notes) == 2 and "held-out pairwise accuracy" in result.notes[0]


def test_unwritable_cache_is_one_clear_error(monkeypatch):
    def deny(*args):
        raise PermissionError(13, "Permission denied", "/read-only/artifacts")

    fake = types.SimpleNamespace(lookup=lambda *args: None, save=deny, MANIFEST="manifest.json")
    monkeypatch.setattr(cache, "artifacts", fake)
    monkeypatch.setattr(cache, "_fingerprint", lambda config: "sha")
    untrained = ref.RewardModel(tiny_lm.new_model(tiny_lm.QUICK))
    monkeypatch.setattr(cache, "_train_tiny", lambda *args: (untrained, {}))
    with pytest.raises(AiroadError, match="make the data folder writable"):
        cache.load_tiny_reward_model(tiny_lm.QUICK)


def test_config_rejects_out_of_range_values():
    for key, value in (("format_fraction", 1.5), ("lr", float("nan")), ("best_of", 0)):
        with pytest.raises(ConfigError, match=key):
            make_config(runner.Config, runner.QUICK, False, {key: value})
