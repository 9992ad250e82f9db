"""The gan runner on real MNIST (quick config): the losses move, coverage and the yardstick are
measured, the figures are drawn, and the saved generator serves through the serving contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import gan as runner
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gan")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_quick_training_moves_the_losses(result):
    for name in ("plain", runner.Config().fix):
        log = result.tables[f"dynamics_{name}"]
        assert [r["step"] for r in log][-1] == runner.QUICK["steps"]
        assert all(math.isfinite(r["d_loss"]) and math.isfinite(r["g_loss"]) for r in log)
        # D beats chance (2 ln 2 = 1.386 when D says 1/2 to everything) in every window ...
        assert max(r["d_loss"] for r in log) < 2 * math.log(2)
        assert min(r["d_real"] for r in log) > 0.5
        assert all(r["grad_nonsaturating"] > 0 and r["grad_minimax"] > 0 for r in log)
        # ... and G learns: the untrained G's samples are grey (mean pixel about 0.5), trained
        # ones approach the digits' mostly black images (mean pixel 0.13)
        cov = result.tables[f"coverage_{name}"]
        target = result.metrics["data_mean_pixel"]
        gaps = [abs(c["mean_pixel"] - target) for c in cov]
        assert gaps[0] > gaps[1] > gaps[-1] and gaps[-1] < 0.7 * gaps[0], (
            f"mean pixel {[c['mean_pixel'] for c in cov]} does not approach {target:.3f}"
        )


def test_scores_and_coverage_are_measured(result):
    m = result.metrics
    assert result.key_metric == "score" and m["score"] == min(m["plain_score"], m["fix_score"])
    assert 3.0 < m["floor"] < 10.0 and 1000 < m["baseline"] < 2500  # the MNIST anchors
    assert m["floor"] < m["score"] < m["baseline"], "150 small steps beat noise, not real data"
    assert m["score_over_floor"] == pytest.approx(m["score"] / m["floor"])
    for tag in ("plain", "fix"):
        assert 0.0 <= m[f"{tag}_entropy"] <= math.log2(10) + 1e-9
        assert 1 <= m[f"{tag}_covered"] <= 10
    cov = result.tables["coverage_plain"]
    assert [c["step"] for c in cov] == [0, 75, 150] and sum(cov[-1]["counts"]) == 1000
    assert m["bce_max_abs_diff"] < 1e-5, "our D loss differs from torch's BCE form"
    assert "helped" in m["verdict"] or "did not help" in m["verdict"]


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == ["samples.png", "training_dynamics.png", "mode_collapse.png"]
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_saved_generator_serves_seeded_digits(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["kind"] == "image-generator" and spec["output_range"] == [-1.0, 1.0]
    assert spec["latent_dim"] == runner.QUICK["latent_dim"] and spec["n_labels"] == 0
    served = TorchScriptGenerator(folder)
    a, b = served.generate(4, None, 0), served.generate(4, None, 0)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, served.generate(4, None, 1))


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="batch_size"):
        runner.Config(batch_size=1)
    with pytest.raises(ConfigError, match="lr_d"):
        runner.Config(lr_d=float("nan"))
    with pytest.raises(ConfigError, match="eval_every"):
        runner.Config(steps=100, eval_every=500)
