"""The model-compression runner on the quick saved models and real held-out reviews."""

from __future__ import annotations

import math

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config, parse_overrides
from airoad.labs.runners import model_compression as runner
from airoad.labs.runners import model_compression_parts as parts


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("model-compression")


@pytest.fixture(scope="module")
def result(run_dir, lab_artifact) -> LabResult:
    lab_artifact("bert-sentiment", "classifier")  # made once per session (quick config)
    lab_artifact("char-gpt", "model")
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_every_variant_is_measured(result):
    rows = result.tables["variants"]
    assert len(rows) == len(parts.KEYS) == 8
    assert result.metrics["n_test"] == runner.QUICK["n_test"]
    for r in rows:
        assert 0.0 <= r["accuracy"] <= 1.0 and r["size_mb"] > 0
        assert r["ms_batch1"] > 0 and r["ms_batch32"] > 0
    m = result.metrics
    # the ONNX graph is the same function as the torch model: same predictions
    assert m["onnx_fp32_accuracy"] == m["fp32_accuracy"]
    # the quick artifact recorded its accuracy on the same 64 held-out reviews
    assert math.isclose(m["fp32_accuracy"], m["artifact_accuracy"])


def test_quantised_files_are_smaller(result):
    m = result.metrics
    assert m["onnx_int8_mb"] < 0.3 * m["onnx_fp32_mb"]  # int8 weights, fp32 embeddings kept
    assert m["int8_torch_mb"] < 0.75 * m["fp32_mb"]
    assert m["int4_sym_mb"] < m["int8_torch_mb"]  # encoder Linears at ~4.5 bits, not 8
    assert m["magnitude_mb"] == pytest.approx(m["fp32_mb"], rel=1e-3)  # zeros are stored too


def test_pruning_curve_and_masks(result):
    curve = result.tables["sparsity"]
    kinds = {r["kind"] for r in curve}
    assert kinds == {"magnitude", "structured"}
    assert len(curve) == 2 * (1 + len(runner.QUICK["sparsities"]))
    assert result.metrics["masks_match"] == "yes"
    # 80% of every encoder weight gone costs accuracy (the model is near chance or worse)
    worst = min(r["accuracy"] for r in curve if r["sparsity"] == 0.8)
    assert worst < result.metrics["fp32_curve_accuracy"] - 0.05


def test_int4_error_shrinks_with_smaller_groups(result):
    rows = result.tables["int4_error"]
    for kind in ("symmetric", "asymmetric"):
        errs = {r["group_size"]: r["relative_error"] for r in rows if r["kind"] == kind}
        assert errs[32] < errs[128] < 0.2, f"{kind}: smaller groups should fit the weights better"


def test_char_gpt_quantised_loss_changes_little(result):
    rows = result.tables["char_gpt"]
    assert [r["variant"].split()[0] for r in rows] == ["fp32", "int8", "int4", "int4"]
    base = rows[0]["val_loss"]
    assert 1.0 < base < 4.0  # a trained quick GPT: about 2.6 nats/char
    for r in rows[1:]:
        assert abs(r["loss_change"]) < 0.05 and r["size_mb"] < rows[0]["size_mb"]


def test_figures_and_notes(result, run_dir):
    names = sorted(p.name for p in result.figures)
    assert names == ["accuracy_vs_sparsity.png", "int4_error.png", "size_latency.png"]
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert "masks equal torch.nn.utils.prune's on the real weights: yes" in " ".join(result.notes)
    assert not (run_dir / "variant.pt").exists() and not (run_dir / "gpt.pt").exists()


@pytest.mark.parametrize(
    ("pairs", "key"),
    [(["group_size=33"], "group_size"), (["n_test=3"], "n_test"), (["models=tiny"], "models")],
)
def test_bad_config_is_one_clear_error(pairs, key):
    with pytest.raises(ConfigError, match=key):
        make_config(runner.Config, runner.QUICK, True, parse_overrides(runner.Config, pairs))
