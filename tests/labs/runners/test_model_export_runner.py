"""The model-export runner on real MNIST (quick config): every format of the three models loads
back and agrees with the original, the ONNX graphs keep symbolic axes, the unsafe-pickle demo
runs its payload only under the unsafe loaders, and the size/latency table is filled."""

from __future__ import annotations

import onnx
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import model_export as runner
from airoad.labs.runners import model_export_parts as parts


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("model_export")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_every_format_round_trips(result):
    rows = result.tables["formats"]
    got = [(r["model"], r["format"]) for r in rows]
    want = [("sklearn", f) for f in parts.SKLEARN_FORMATS]
    want += [(m, f) for m in ("cnn", "seq") for f in parts.TORCH_FORMATS]
    assert got == want
    for r in rows:
        assert r["all_close"], f"{r['model']} {r['format']} differs by {r['max_abs_diff']:.2e}"
        if r["model"] != "sklearn" and r["format"] in parts.EXACT:
            assert r["max_abs_diff"] == 0 and r["tolerance"] == "exact"
    seq_checks = next(r for r in rows if (r["model"], r["format"]) == ("seq", "onnx"))
    cfg = runner.Config(**runner.QUICK)
    assert seq_checks["shapes_checked"] == len(cfg.batch_sizes) * len(cfg.seq_lengths)
    m = result.metrics
    assert m["weights_exact"] == "yes" and m["graphs_close"] == "yes"
    assert m["sklearn_onnx_f64_max_abs_diff"] < 1e-12 < m["sklearn_onnx_max_abs_diff"] < 1e-4
    assert 0 < m["onnx_max_abs_diff"] < 1e-5


def test_accuracy_is_the_same_in_every_format(result):
    by_model: dict[str, list[float]] = {}
    for r in result.tables["formats"]:
        by_model.setdefault(r["model"], []).append(r["test_accuracy"])
    for model, accs in by_model.items():
        assert max(accs) - min(accs) <= 2 / runner.QUICK["n_test"], f"{model}: {accs}"
    m = result.metrics
    assert m["sklearn_test_accuracy"] > 0.7  # about 0.83 on 1000 training digits
    assert m["cnn_test_accuracy"] > 0.2 and m["seq_test_accuracy"] > 0.2  # chance is 0.1


def test_onnx_files_keep_symbolic_axes(run_dir):
    dims = {}
    for name in ("cnn", "seq", "sklearn"):
        graph = onnx.load(str(run_dir / "exports" / f"{name}.onnx"))
        shape = graph.graph.input[0].type.tensor_type.shape.dim
        dims[name] = [
            d.dim_param or (d.dim_value if d.HasField("dim_value") else None) for d in shape
        ]
    assert dims["seq"] == ["batch", "seq", 28]
    assert dims["cnn"] == ["batch", 1, 28, 28]
    assert dims["sklearn"] == [None, 784], "skl2onnx's None batch is an unnamed dynamic dim"


def test_size_and_latency_table(result, run_dir):
    for r in result.tables["formats"]:
        assert r["bytes"] > 1000 and r["load_ms"] > 0 and r["save_ms"] > 0
        assert 0 < r["p50_ms_batch_1"] and 0 < r["p50_ms_batch_64"]
    cnn = {r["format"]: r for r in result.tables["formats"] if r["model"] == "cnn"}
    assert cnn["onnx"]["bytes"] == (run_dir / "exports" / "cnn.onnx").stat().st_size
    # safetensors holds the raw float32 weights plus a small header: smaller than a pickle
    assert cnn["safetensors"]["bytes"] < cnn["pickle"]["bytes"]
    assert result.metrics["cnn_onnx_speedup_b64"] > 0


def test_unsafe_pickle_demo(result, run_dir):
    rows = {r["loader"]: r for r in result.tables["unsafe_pickle"]}
    for loader in ("pickle.loads", "joblib.load", "torch.load(weights_only=False)"):
        assert rows[loader]["payload_ran"], f"{loader} should have run the payload"
    for loader in ("torch.load(weights_only=True)", "safetensors load_file"):
        assert not rows[loader]["payload_ran"] and rows[loader]["outcome"].startswith("refused")
    scan = rows["pickle_globals (scan only)"]
    assert not scan["payload_ran"] and "pathlib.Path.write_text" in scan["globals"]
    assert not (run_dir / "pickle_demo" / "marker.txt").exists(), "the marker is cleaned up"


def test_figures_and_notes(result):
    assert {p.name for p in result.figures} == {"size_latency.png", "seq_agreement.png"}
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
    assert len(result.notes) == len(runner.NOTES)
    assert "refused by torch.load(weights_only=True)" in result.notes[-1]


def test_config_rules_are_one_line_errors():
    with pytest.raises(ConfigError, match="channels"):
        runner.Config(channels=(4, 8, 16))
    with pytest.raises(ConfigError, match="batch_sizes"):
        runner.Config(n_test=100, batch_sizes=(1, 500))
