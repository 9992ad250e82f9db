"""Runner for model-export: three models trained on MNIST leave Python in every common format
and come back, and each copy is checked and timed against the original.

1. Models: a scikit-learn pipeline (StandardScaler -> PCA -> LogisticRegression) on flattened
   pixels, the `cnn` lab's FashionCNN architecture, and a 1-D conv SequenceClassifier that reads
   each digit as a sequence of 28 rows.
2. Formats: pickle and joblib (sklearn), pickle / state_dict / safetensors / TorchScript (torch)
   and ONNX (skl2onnx; torch's dynamo exporter with a dynamic batch axis, and a dynamic sequence
   axis for the sequence model); each file's size, save and load time.
3. Agreement: every loaded copy against the original on the test digits, at several batch sizes
   and, for the sequence model, sequence lengths (top rows only, or blank rows added), exact for
   the weight formats and within rtol/atol for the graph formats; plus test accuracy.
4. Latency: median ms per call at batch 1 and 64 on one thread.
5. Unsafe pickle: one harmless payload through each loader; which of them ran it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes
from airoad.labs.runners import model_export_parts as parts

MODELS = ("sklearn", "cnn", "seq")


@dataclass(frozen=True)
class Config:
    n_train: int = param(20_000, ge=500, le=60_000)
    n_test: int = param(10_000, ge=100, le=10_000)
    epochs: int = param(2, ge=1, le=20)
    batch_size: int = param(128, ge=8, le=4_096)
    lr: float = param(3e-3, gt=0.0, le=1.0)
    channels: tuple[int, ...] = param((16, 32), ge=1, le=256, min_len=2)  # the CNN's two stages
    hidden: int = param(64, ge=4, le=1_024)  # the CNN's dense layer
    seq_hidden: int = param(64, ge=4, le=1_024)  # conv channels of the sequence model
    pca_components: int = param(50, ge=1, le=784)
    batch_sizes: tuple[int, ...] = param((1, 7, 64), ge=1, le=1_024)  # agreement checks
    seq_lengths: tuple[int, ...] = param((7, 28, 56), ge=1, le=4_096)  # rows fed to the seq model
    rtol: float = param(1e-4, ge=0.0, le=1.0)  # tolerance for TorchScript / ONNX copies
    atol: float = param(1e-5, ge=0.0, le=1.0)
    repeats: int = param(50, ge=3, le=10_000)  # timed calls per latency median
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(len(self.channels) == 2, "channels", "takes exactly two values, e.g. 16,32")
        config_check(max(self.batch_sizes) <= self.n_test, "batch_sizes", "must be <= n_test")


QUICK = {
    "n_train": 1_000,
    "n_test": 500,
    "epochs": 1,
    "channels": (4, 8),
    "hidden": 16,
    "seq_hidden": 16,
    "pca_components": 20,
    "batch_size": 32,
    "repeats": 5,
}

NOTES = (
    "Accuracy on {n_test} MNIST test digits: pipeline {sklearn_test_accuracy:.4f}, CNN "
    "{cnn_test_accuracy:.4f}, sequence model {seq_test_accuracy:.4f}. Torch copies from pickle, "
    "state_dict and safetensors bit-identical, sklearn copies from pickle and joblib within "
    "1e-12 relative (worst {sklearn_pickle_max_abs_diff:.1e}): {weights_exact}.",
    "Graph copies within rtol {rtol:g}, atol {atol:g} on every batch size and sequence length "
    "tried: {graphs_close}; worst ONNX difference {onnx_max_abs_diff:.1e} (torch), "
    "{sklearn_onnx_max_abs_diff:.1e} (float32 sklearn), {sklearn_onnx_f64_max_abs_diff:.1e} "
    "(float64 sklearn).",
    "One thread, batch 1: the CNN takes {cnn_eager_ms_b1:.3f} ms eager, {cnn_torchscript_ms_b1:.3f} "
    "ms TorchScript, {cnn_onnx_ms_b1:.3f} ms in ONNX Runtime ({cnn_onnx_speedup_b1:.1f}x eager); "
    "batch 64: {cnn_eager_ms_b64:.1f} / {cnn_torchscript_ms_b64:.1f} / {cnn_onnx_ms_b64:.1f} ms.",
    "Unsafe pickle: the payload ran under {ran_under}; it was refused by {refused_by}.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    data = parts.mnist(config.n_train, config.n_test, config.seed)
    models, factories = _train(config, data, ctx)
    restored = _export(config, models, factories, ctx)
    rows = _check_and_time(config, models, restored, data, ctx)
    demo_rows = parts.pickle_demo(_folder(ctx, "pickle_demo"))
    metrics = _summary(config, rows, demo_rows)

    parts.size_latency_figure(rows, ctx)
    parts.agreement_figure(rows, config, ctx)

    table = [{k: v for k, v in r.items() if k != "grid"} for r in rows]
    return LabResult(
        metrics=metrics,
        key_metric="onnx_max_abs_diff",
        library_metric=None,
        tables={"formats": table, "unsafe_pickle": demo_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _folder(ctx: RunContext, name: str):
    folder = ctx.out_dir / name
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _train(config: Config, data: dict, ctx: RunContext) -> tuple[dict, dict]:
    """The pipeline, the CNN and the sequence model, each trained on the same training digits."""
    import torch

    from airoad.neural.cnn import FashionCNN
    from airoad.production.model_export import SequenceClassifier

    factories = {
        "cnn": lambda: FashionCNN(tuple(config.channels), config.hidden).eval(),
        "seq": lambda: SequenceClassifier(28, config.seq_hidden).eval(),
    }
    with ctx.step("fitting the scikit-learn pipeline"):
        models = {"sklearn": parts.sklearn_pipeline(config, data)}
    for name, make in factories.items():
        torch.manual_seed(config.seed)
        X = parts.as_input(name, data["X_train"])
        models[name] = parts.train_torch(make(), X, data["y_train"], config, ctx)
    return models, factories


def _export(config: Config, models: dict, factories: dict, ctx: RunContext) -> list:
    """Every format of every model, saved into `<run>/exports/` and loaded back."""
    import onnxscript  # noqa: F401 - imported up front so save_ms times the export, not imports
    import skl2onnx  # noqa: F401

    folder = _folder(ctx, "exports")
    with ctx.step("saving and exporting (the ONNX dynamo exports take seconds each)"):
        restored = parts.export_sklearn(models["sklearn"], folder)
        for name in ("cnn", "seq"):
            example = parts.as_input(name, _example_images(), 20 if name == "seq" else 28)
            restored += parts.export_torch(name, models[name], factories[name], example, folder)
    return restored


def _example_images():
    """Export example: 3 blank digits (torch.export specialises sizes 0 and 1, so batch 3 and
    20 rows; the values do not matter, only the shapes)."""
    return np.zeros((3, 28, 28), dtype=np.float32)


def _check_and_time(config: Config, models: dict, restored: list, data: dict, ctx: RunContext):
    originals = {
        "sklearn": models["sklearn"].predict_proba,
        **{name: parts.torch_predict(models[name]) for name in ("cnn", "seq")},
    }
    rows = []
    for r in ctx.track(restored, "checking and timing every copy"):
        row = parts.agreement(r, originals[r.model], data["X_test"], data["y_test"], config)
        rows.append(row | parts.latency(r, data["X_test"], config.repeats))
    return rows


def _summary(config: Config, rows: list[dict], demo_rows: list[dict]) -> dict:
    by = {(r["model"], r["format"]): r for r in rows}
    exact = [r for r in rows if r["format"] in parts.EXACT]
    graphs = [r for r in rows if r["format"] not in parts.EXACT]
    cnn = {f: by["cnn", f] for f in ("pickle", "torchscript", "onnx")}
    metrics = {f"{m}_test_accuracy": by[m, "pickle"]["test_accuracy"] for m in MODELS}
    metrics |= {
        "weights_exact": "yes" if all(r["all_close"] for r in exact) else "NO",
        "sklearn_pickle_max_abs_diff": by["sklearn", "pickle"]["max_abs_diff"],
        "graphs_close": "yes" if all(r["all_close"] for r in graphs) else "NO",
        "onnx_max_abs_diff": max(by[m, "onnx"]["max_abs_diff"] for m in ("cnn", "seq")),
        "sklearn_onnx_max_abs_diff": by["sklearn", "onnx"]["max_abs_diff"],
        "sklearn_onnx_f64_max_abs_diff": by["sklearn", "onnx-f64"]["max_abs_diff"],
        "cnn_onnx_bytes": cnn["onnx"]["bytes"],
        "cnn_safetensors_bytes": by["cnn", "safetensors"]["bytes"],
    }
    for b in (1, 64):
        for label, fmt in (("eager", "pickle"), ("torchscript", "torchscript"), ("onnx", "onnx")):
            metrics[f"cnn_{label}_ms_b{b}"] = cnn[fmt][f"p50_ms_batch_{b}"]
        metrics[f"cnn_onnx_speedup_b{b}"] = (
            metrics[f"cnn_eager_ms_b{b}"] / metrics[f"cnn_onnx_ms_b{b}"]
        )
    ran = [d["loader"] for d in demo_rows if d["payload_ran"]]
    refused = [d["loader"] for d in demo_rows if d["outcome"].startswith("refused")]
    metrics["ran_under"] = ", ".join(ran) or "no loader"
    metrics["refused_by"] = ", ".join(refused) or "no loader"
    return metrics
