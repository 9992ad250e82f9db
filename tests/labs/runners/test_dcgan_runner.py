"""The dcgan runner on real Fashion-MNIST (quick config): both variants' losses and scores move,
the gradient penalty matches torch.func, the figures are drawn, and the saved generator serves
through the serving contract."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import dcgan as runner
from airoad.production.serving import TorchScriptGenerator


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("dcgan")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_quick_training_lowers_the_losses_and_scores(result):
    dc, wg = result.tables["dynamics_dcgan"], result.tables["dynamics_wgan-gp"]
    assert dc[-1]["step"] == runner.QUICK["steps"] and wg[-1]["step"] == runner.QUICK["wgan_steps"]
    assert all(math.isfinite(v) for row in dc + wg for v in row.values())
    # D learns to tell real from fake: its loss falls below its first window's
    assert min(r["d_loss"] for r in dc[1:]) < dc[0]["d_loss"] - 0.3
    # the critic's loss (W loss + penalty) falls and its Wasserstein estimate rises
    assert wg[-1]["c_loss"] < wg[0]["c_loss"] and wg[-1]["wasserstein"] > wg[0]["wasserstein"]
    for name in ("dcgan", "wgan-gp"):
        cps = result.tables[f"checkpoints_{name}"]
        assert [c["step"] for c in cps][0] == 0 and len(cps) == runner.QUICK["checkpoints"]
        assert cps[-1]["score"] < cps[0]["score"], f"{name}: the score did not fall {cps}"
        assert all(a["cpu_s"] <= b["cpu_s"] for a, b in zip(cps, cps[1:]))


def test_scores_against_floor_and_baseline(result):
    m = result.metrics
    assert result.key_metric == "score" and m["score"] == min(m["dcgan_score"], m["wgan_score"])
    assert 4.0 < m["floor"] < 10.0 and 500 < m["baseline"] < 1500  # the Fashion-MNIST anchors
    assert m["floor"] < m["score"] < 2 * m["baseline"]
    assert m["score_over_baseline"] == pytest.approx(m["score"] / m["baseline"])
    assert m["saved"] == ("dcgan" if m["dcgan_score"] <= m["wgan_score"] else "wgan-gp")
    assert m["gp_max_abs_diff"] < 1e-9, "our gradient penalty differs from torch.func's"
    assert m["gp_last"] >= 0


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == ["sample_evolution.png", "losses.png", "samples.png"]
    for path in result.figures:
        assert path.stat().st_size > 10_000, f"{path.name} looks empty"


def test_saved_generator_serves_seeded_images(result, run_dir):
    folder = run_dir / "artifacts" / "generator"
    spec = json.loads((folder / "lab.json").read_text("utf-8"))
    assert spec["kind"] == "image-generator" and spec["output_range"] == [-1.0, 1.0]
    assert spec["latent_dim"] == runner.QUICK["latent_dim"] and spec["n_labels"] == 0
    assert spec["dataset"] == "fashion-mnist"
    served = TorchScriptGenerator(folder)
    a, b = served.generate(4, None, 0), served.generate(4, None, 0)
    assert a.dtype == np.uint8 and a.shape == (4, 28, 28)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, served.generate(4, None, 1))
    # eval-mode batch norm: one image does not depend on the others drawn with it
    z = torch.randn(4, spec["latent_dim"], generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(served.module(z[:1])[0], served.module(z)[0])


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="batch_size"):
        runner.Config(batch_size=1)
    with pytest.raises(ConfigError, match="gp_weight"):
        runner.Config(gp_weight=float("nan"))
    with pytest.raises(ConfigError, match="n_critic"):
        runner.Config(n_critic=0)
    with pytest.raises(ConfigError, match="checkpoints"):
        runner.Config(checkpoints=1)
