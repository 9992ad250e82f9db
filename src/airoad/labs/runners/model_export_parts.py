"""Pieces of the model-export runner: the three MNIST models, every save/load format for each,
the agreement and latency measurements, the unsafe-pickle demonstration and the figures."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, subsample, thread_limit, timed
from airoad.production import model_export as ref

EXACT = ("pickle", "joblib", "state_dict", "safetensors")  # same weights, same eager code
TORCH_FORMATS = ("pickle", "state_dict", "safetensors", "torchscript", "onnx")
SKLEARN_FORMATS = ("pickle", "joblib", "onnx", "onnx-f64")
SKLEARN_RTOL = 1e-12  # a reloaded pipeline's arrays are identical; the BLAS summation order is not


@dataclass
class Restored:
    """One model saved in one format and loaded back: its predict function and what it cost."""

    model: str
    fmt: str
    runtime: str
    bytes: int
    save_ms: float
    load_ms: float
    predict: Callable[[np.ndarray], np.ndarray]


def mnist(n_train: int, n_test: int, seed: int) -> dict[str, np.ndarray]:
    """A seeded training subset and the first test images, as float32 in [0, 1] (N, 28, 28)."""
    from airoad.data import load

    data = load("mnist")
    idx = subsample(len(data["y_train"]), n_train, seed)
    return {
        "X_train": data["X_train"][idx].astype(np.float32) / 255.0,
        "y_train": data["y_train"][idx],
        "X_test": data["X_test"][:n_test].astype(np.float32) / 255.0,
        "y_test": data["y_test"][:n_test],
    }


def as_input(name: str, images: np.ndarray, seq_len: int = 28) -> np.ndarray:
    """Images (N, 28, 28) as each model reads them: sklearn (N, 784) float64, the CNN
    (N, 1, 28, 28), the sequence model (N, seq_len, 28): top rows only, or blank rows added."""
    if name == "sklearn":
        return images.reshape(len(images), -1).astype(np.float64)
    if name == "cnn":
        return np.ascontiguousarray(images[:, None])
    rows = images[:, :seq_len]
    pad = np.zeros((len(images), max(seq_len - 28, 0), 28), dtype=images.dtype)
    return np.ascontiguousarray(np.concatenate([rows, pad], axis=1))


def train_torch(model: Any, X: np.ndarray, y: np.ndarray, config: Any, ctx: RunContext) -> Any:
    """AdamW on cross-entropy for `config.epochs` passes in seeded shuffled batches."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from airoad.neural.pytorch_workflow import train_epoch

    gen = torch.Generator().manual_seed(config.seed)
    data = TensorDataset(torch.from_numpy(X), torch.from_numpy(y))
    loader = DataLoader(data, batch_size=config.batch_size, shuffle=True, generator=gen)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr)
    for _ in ctx.track(range(config.epochs), f"training {type(model).__name__}"):
        train_epoch(model, loader, opt)
    return model.eval()


def sklearn_pipeline(config: Any, data: dict) -> Any:
    """StandardScaler -> PCA -> LogisticRegression fitted on the flattened training pixels."""
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    pca = PCA(config.pca_components, random_state=config.seed)
    pipe = make_pipeline(StandardScaler(), pca, LogisticRegression(max_iter=300))
    return pipe.fit(as_input("sklearn", data["X_train"]), data["y_train"])


def torch_predict(module: Any) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    return predict


def _onnx_predict(session: Any, dtype: Any = np.float32, output: int = 0) -> Callable:
    return lambda x: ref.run_onnx(session, x.astype(dtype, copy=False))[output]


def _save_and_load(model: str, steps: dict, folder: Path) -> list[Restored]:
    """For each format: save (timed), load (timed: for ONNX, building the Runtime session),
    and wrap what was loaded as a predict function."""
    rows = []
    for fmt, (runtime, ext, save, load, predictor) in steps.items():
        path, save_s = timed(save, folder / f"{model}.{ext}")
        loaded, load_s = timed(load, path)
        sizes = (ref.size_on_disk(path), 1000 * save_s, 1000 * load_s)
        rows.append(Restored(model, fmt, runtime, *sizes, predictor(loaded)))
    return rows


def export_torch(
    name: str, model: Any, fresh: Callable[[], Any], example: np.ndarray, folder: Path
) -> list[Restored]:
    """Save `model` in every torch format and load each back: weights-only formats load into
    `fresh()` (the same class, untrained); ONNX gets dynamic batch (and, for seq, seq) axes."""
    import torch

    axes = {0: "batch", 1: "seq"} if name == "seq" else {0: "batch"}
    x = torch.from_numpy(example)
    steps = {
        "pickle": ("eager torch", "pkl", lambda p: ref.save_pickle(model, p), ref.load_pickle,
                   torch_predict),
        "state_dict": ("eager torch", "pt", lambda p: ref.save_state_dict(model, p),
                       lambda p: ref.load_state_dict(fresh(), p), torch_predict),
        "safetensors": ("eager torch", "safetensors", lambda p: ref.save_safetensors(model, p),
                        lambda p: ref.load_safetensors(fresh(), p), torch_predict),
        "torchscript": ("TorchScript", "ts", lambda p: ref.export_torchscript(model, x, p),
                        ref.load_torchscript, torch_predict),
        "onnx": ("ONNX Runtime", "onnx", lambda p: ref.export_onnx(model, x, p, axes),
                 ref.onnx_session, _onnx_predict),
    }  # fmt: skip
    assert tuple(steps) == TORCH_FORMATS
    return _save_and_load(name, steps, folder)


def export_sklearn(pipe: Any, folder: Path) -> list[Restored]:
    """The pipeline as pickle, joblib and ONNX (float32 and float64 inputs); predict = probabilities."""
    n = int(pipe.steps[0][1].n_features_in_)
    proba = lambda model: model.predict_proba  # noqa: E731
    steps = {
        "pickle": ("sklearn", "pkl", lambda p: ref.save_pickle(pipe, p), ref.load_pickle, proba),
        "joblib": ("sklearn", "joblib", lambda p: ref.save_joblib(pipe, p), ref.load_joblib,
                   proba),
        "onnx": ("ONNX Runtime", "onnx", lambda p: ref.export_sklearn_onnx(pipe, n, p),
                 ref.onnx_session, lambda s: _onnx_predict(s, np.float32, 1)),
        "onnx-f64": ("ONNX Runtime", "f64.onnx",
                     lambda p: ref.export_sklearn_onnx(pipe, n, p, np.float64),
                     ref.onnx_session, lambda s: _onnx_predict(s, np.float64, 1)),
    }  # fmt: skip
    assert tuple(steps) == SKLEARN_FORMATS
    return _save_and_load("sklearn", steps, folder)


def agreement(
    r: Restored, original: Callable, images: np.ndarray, labels: np.ndarray, config: Any
) -> dict[str, Any]:
    """Worst difference from the original over the config's batch sizes (and sequence lengths
    for the sequence model), exact formats at tolerance 0; test accuracy of the restored model."""
    exact = r.fmt in EXACT
    rtol, atol = (config.rtol, config.atol)
    if exact:  # torch: bit-identical; sklearn: same arrays, but BLAS may sum in another order
        rtol, atol = (SKLEARN_RTOL, 0.0) if r.model == "sklearn" else (0.0, 0.0)
    lengths = config.seq_lengths if r.model == "seq" else (28,)
    inputs = [as_input(r.model, images[:b], t) for b in config.batch_sizes for t in lengths]
    checks = ref.check_round_trip(original, r.predict, inputs, rtol=rtol, atol=atol)
    x = as_input(r.model, images)
    accuracy = float(np.mean(np.argmax(r.predict(x), axis=1) == labels))
    return {
        "model": r.model,
        "format": r.fmt,
        "runtime": r.runtime,
        "bytes": r.bytes,
        "save_ms": r.save_ms,
        "load_ms": r.load_ms,
        "shapes_checked": len(checks),
        "max_abs_diff": max(c["max_abs_diff"] for c in checks),
        "tolerance": "exact" if rtol == atol == 0 else f"rtol {rtol:g}, atol {atol:g}",
        "all_close": all(c["ok"] for c in checks),
        "test_accuracy": accuracy,
        "grid": checks,
    }


def latency(r: Restored, images: np.ndarray, repeats: int) -> dict[str, float]:
    """Median ms per call at batch 1 and batch 64 on one thread (torch, BLAS and ORT)."""
    with thread_limit(1):
        return {
            f"p50_ms_batch_{b}": ref.median_latency_ms(
                r.predict, as_input(r.model, images[:b]), repeats=repeats
            )
            for b in (1, 64)
        }


def pickle_demo(folder: Path) -> list[dict[str, Any]]:
    """Load one harmless payload with each loader; record whether its marker file appeared."""
    import torch

    rows = []
    payload = ref.MarkerPayload(folder / "marker.txt", "the pickle ran this")
    data = pickle.dumps(payload)
    torch.save(payload, folder / "payload.pt")
    (folder / "payload.safetensors").write_bytes(data)
    loaders = [
        ("pickle.loads", lambda: pickle.loads(data)),
        ("joblib.load", lambda: ref.load_joblib(ref.save_joblib(payload, folder / "p.joblib"))),
        ("torch.load(weights_only=False)", lambda: torch.load(folder / "payload.pt", weights_only=False)),
        ("torch.load(weights_only=True)", lambda: ref.load_state_dict(torch.nn.Linear(1, 1), folder / "payload.pt")),
        ("safetensors load_file", lambda: ref.load_safetensors(torch.nn.Linear(1, 1), folder / "payload.safetensors")),
        ("pickle_globals (scan only)", lambda: ref.pickle_globals(data)),
    ]  # fmt: skip
    for loader, call in loaders:
        (folder / "marker.txt").unlink(missing_ok=True)
        try:
            out, outcome = call(), "loaded"
        except Exception as exc:  # the safe loaders refuse: that is the point
            out, outcome = None, f"refused: {type(exc).__name__}"
        ran = (folder / "marker.txt").is_file()
        found = ", ".join(out) if isinstance(out, list) else ""
        rows.append({"loader": loader, "payload_ran": ran, "outcome": outcome, "globals": found})
    (folder / "marker.txt").unlink(missing_ok=True)
    return rows


def size_latency_figure(rows: list[dict], ctx: RunContext) -> None:
    labels = [f"{r['model']}\n{r['format']}" for r in rows]
    panels = [
        ("bytes", 1 / 1024, "size on disk (KiB)"),
        ("load_ms", 1, "load time (ms)"),
        ("p50_ms_batch_1", 1, "median latency, batch 1 (ms)"),
        ("p50_ms_batch_64", 1, "median latency, batch 64 (ms)"),
    ]
    colors = {"eager torch": "C0", "sklearn": "C0", "TorchScript": "C1", "ONNX Runtime": "C2"}
    with figure(ctx, "size_latency", 4, 1, figsize=(11, 11), sharex=True) as (fig, axes):
        for ax, (key, scale, title) in zip(axes, panels, strict=True):
            ax.bar(range(len(rows)), [r[key] * scale for r in rows],
                   color=[colors[r["runtime"]] for r in rows])  # fmt: skip
            ax.set(ylabel=title, yscale="log")
            ax.grid(axis="y", alpha=0.3)
        axes[-1].set_xticks(range(len(rows)), labels, fontsize=7)
        fig.suptitle(
            "every format, one thread (blue: eager/sklearn, orange: TorchScript, green: ORT)"
        )


def agreement_figure(rows: list[dict], config: Any, ctx: RunContext) -> None:
    graphs = [r for r in rows if r["model"] == "seq" and r["format"] in ("torchscript", "onnx")]
    b, t = len(config.batch_sizes), len(config.seq_lengths)
    with figure(ctx, "seq_agreement", 1, len(graphs), figsize=(5 * len(graphs), 3.8)) as (_, axes):
        for ax, r in zip(np.ravel(axes), graphs, strict=True):
            diff = np.array([c["max_abs_diff"] for c in r["grid"]]).reshape(b, t)
            im = ax.imshow(np.log10(diff + 1e-12), cmap="viridis", vmin=-12, vmax=-3)
            ax.set_xticks(range(t), config.seq_lengths)
            ax.set_yticks(range(b), config.batch_sizes)
            title = f"{r['format']} vs eager, log10 max |diff|\n(exported at batch 3, 20 rows)"
            ax.set(xlabel="sequence length (rows)", ylabel="batch size", title=title)
            for (i, j), v in np.ndenumerate(diff):
                ax.text(j, i, f"{v:.0e}", ha="center", va="center", color="w", fontsize=8)
            ax.figure.colorbar(im, ax=ax)
