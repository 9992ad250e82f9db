"""Model export: how a trained model leaves Python's memory and comes back, safely and fast.

- pickle / joblib write ANY Python object (an sklearn pipeline, a whole ``nn.Module``). Loading
  replays opcodes, and an object's ``__reduce__`` may name any importable callable plus its
  arguments: unpickling calls it. Loading an untrusted pickle runs its author's code
  (``MarkerPayload`` proves it with a harmless callable that writes a file).
- ``torch.load(weights_only=True)`` unpickles with an allow-list (tensors, plain containers) and
  refuses every other global; safetensors is an 8-byte length, a JSON header (name -> dtype,
  shape, byte offsets) and raw bytes: there is nothing in it to execute.
- TorchScript (``torch.jit.trace``) and ONNX store the computation graph with the weights, so
  the model runs without its Python class: ONNX in ONNX Runtime (``torch.onnx.export(...,
  dynamo=True)`` for torch, ``skl2onnx`` for scikit-learn) with symbolic batch/sequence axes.
- A round trip is only trusted once checked: outputs of the restored model against the
  original's, ``|restored - original| <= atol + rtol * |original|``, on shapes other than the
  ones used at export.
"""

from __future__ import annotations

import json
import pickle
import pickletools
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

STRING_OPS = {"SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE"}
STRING_OPS |= {"SHORT_BINSTRING", "BINSTRING", "STRING"}


class SequenceClassifier(nn.Module):
    """A 1-D conv text-style classifier: any number of steps in, one logit row per sequence out.

    x (N, T, F) -> conv1d over T (kernel 3, padding 1: T steps of `hidden` channels) -> ReLU ->
    max over T (so T may vary) -> linear -> logits (N, n_classes). An MNIST digit read row by
    row is a sequence of T = 28 steps of F = 28 pixels.
    """

    def __init__(self, n_features: int = 28, hidden: int = 64, n_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv1d(n_features, hidden, kernel_size=3, padding=1)
        self.out = nn.Linear(hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (N, T, F) -> logits (N, n_classes): conv1d on x.transpose(1, 2), ReLU, amax over T."""
        h = torch.relu(self.conv(x.transpose(1, 2)))  # (N, hidden, T)
        return self.out(h.amax(dim=2))


# ---------------------------------------------------------------- pickle and joblib


def save_pickle(obj: Any, path: str | Path) -> Path:
    """Write ``obj`` with ``pickle`` (highest protocol) to ``path``; returns the path."""
    path = Path(path)
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_pickle(path: str | Path) -> Any:
    """Read a pickle file back. UNSAFE on files you did not write: loading calls whatever
    callables the file names (see ``MarkerPayload``)."""
    with open(path, "rb") as fh:
        return pickle.load(fh)


def save_joblib(obj: Any, path: str | Path, compress: int = 0) -> Path:
    """Write ``obj`` with ``joblib.dump`` (numpy arrays stored as raw buffers; ``compress`` 0-9
    trades size for time); returns the path. joblib files are pickles: the same warning holds."""
    import joblib

    joblib.dump(obj, path, compress=compress)
    return Path(path)


def load_joblib(path: str | Path) -> Any:
    """Read a joblib file back with ``joblib.load`` (unsafe on untrusted files, like pickle)."""
    import joblib

    return joblib.load(path)


class MarkerPayload:
    """A harmless stand-in for a malicious pickle: unpickling it writes ``text`` to ``marker``.

    A real attacker would name ``os.system`` instead of ``Path.write_text``; the mechanism is
    the same, and nothing here runs until someone LOADS the bytes.
    """

    def __init__(self, marker: str | Path, text: str = "payload ran on load"):
        self.marker, self.text = Path(marker), text

    def __reduce__(self) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """Tell pickle to rebuild this object by calling ``Path.write_text(marker, text)``:
        returns ``(callable, args)``; the unpickler performs the call."""
        return (Path.write_text, (self.marker, self.text))


def pickle_globals(data: bytes) -> list[str]:
    """The importable names (``"module.qualname"``) a pickle would load, found WITHOUT loading it.

    Walk ``pickletools.genops(data)``: ``GLOBAL``/``INST`` carry ``"module name"`` directly;
    ``STACK_GLOBAL`` (protocol 4+) pops the two strings pushed before it, which may come back
    from the memo (``MEMOIZE``/``PUT`` store the last value, ``GET`` pushes it again). Returns
    each name once, in order of first appearance. This is what pickle scanners do.
    """
    names: list[str] = []
    strings: list[str | None] = []  # values pushed so far (None: not a string)
    memo: dict[int, str | None] = {}
    for op, arg, _ in pickletools.genops(data):
        name = op.name
        if name in STRING_OPS:
            strings.append(arg if isinstance(arg, str) else arg.decode("latin-1"))
        elif name == "MEMOIZE":
            memo[len(memo)] = strings[-1] if strings else None
        elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
            memo[arg] = strings[-1] if strings else None
        elif name in ("GET", "BINGET", "LONG_BINGET"):
            strings.append(memo.get(arg))
        elif name in ("GLOBAL", "INST", "STACK_GLOBAL"):
            pair = arg.split(" ") if name != "STACK_GLOBAL" else strings[-2:]
            found = ".".join(str(part) for part in pair)
            names += [found] if found not in names else []
            strings.append(None)  # the class or function now on the stack
        elif name == "POP" and strings:
            strings.pop()
        elif name not in ("FRAME", "PROTO"):
            strings.append(None)  # any other push hides the strings below it
    return names


# ---------------------------------------------------------------- weights only


def save_state_dict(model: nn.Module, path: str | Path) -> Path:
    """``torch.save(model.state_dict(), path)``: tensors only (a zip holding a small pickle)."""
    torch.save(model.state_dict(), path)
    return Path(path)


def load_state_dict(model: nn.Module, path: str | Path) -> nn.Module:
    """Load weights into ``model`` (strict: every key must match) with
    ``torch.load(path, weights_only=True)``, which refuses any global outside its allow-list
    (``pickle.UnpicklingError``). Returns ``model`` in eval mode."""
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def save_safetensors(model: nn.Module, path: str | Path) -> Path:
    """Write ``model.state_dict()`` as safetensors (each tensor made contiguous); returns path."""
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    return Path(path)


def load_safetensors(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a safetensors file into ``model`` (strict); returns ``model`` in eval mode. A file that
    is not safetensors raises (``SafetensorError``) before anything in it is interpreted."""
    from safetensors.torch import load_file

    model.load_state_dict(load_file(str(path)), strict=True)
    return model.eval()


def safetensors_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a safetensors file, read by hand: the first 8 bytes are its length n
    (unsigned little-endian), the next n bytes are JSON: ``{name: {"dtype", "shape",
    "data_offsets": [begin, end]}, "__metadata__": {...} (optional)}``."""
    with open(path, "rb") as fh:
        n = int.from_bytes(fh.read(8), "little")
        return json.loads(fh.read(n))


# ---------------------------------------------------------------- graphs: TorchScript, ONNX


def export_torchscript(model: nn.Module, example: torch.Tensor, path: str | Path) -> Path:
    """Trace ``model`` (eval mode, no grad) on ``example`` with ``torch.jit.trace`` and save it.

    Tracing records the ops one call ran: shapes stay symbolic when the code never reads them
    as Python ints, but a Python ``if`` on the data is frozen to the branch taken."""
    with torch.no_grad():
        torch.jit.trace(model.eval(), example).save(str(path))
    return Path(path)


def load_torchscript(path: str | Path) -> torch.jit.ScriptModule:
    """``torch.jit.load`` on CPU: the graph runs without the model's Python class."""
    return torch.jit.load(str(path), map_location="cpu")


def export_onnx(
    model: nn.Module,
    example: torch.Tensor,
    path: str | Path,
    dynamic_axes: dict[int, str],
    max_size: int = 4096,
) -> Path:
    """Export ``model`` (eval mode) with the dynamo exporter to ONE ``.onnx`` file.

    ``torch.onnx.export(model, (example,), path, dynamo=True, dynamic_shapes=...,
    input_names=["input"], output_names=["output"], external_data=False)`` where every axis in
    ``dynamic_axes`` (e.g. ``{0: "batch", 1: "seq"}``) becomes ``torch.export.Dim(name, min=1,
    max=max_size)``: the graph's input then has those named symbolic dims. Export on an example
    whose dynamic sizes are >= 2 (torch.export specialises sizes 0 and 1)."""
    dims = {
        axis: torch.export.Dim(name, min=1, max=max_size) for axis, name in dynamic_axes.items()
    }
    torch.onnx.export(
        model.eval(),
        (example,),
        str(path),
        dynamo=True,
        dynamic_shapes=(dims,),
        input_names=["input"],
        output_names=["output"],
        external_data=False,
        verbose=False,
    )
    return Path(path)


def export_sklearn_onnx(
    pipeline: Any, n_features: int, path: str | Path, dtype: Any = np.float32
) -> Path:
    """Convert a fitted scikit-learn pipeline with ``skl2onnx.to_onnx``; input ``"input"`` of
    shape (None, n_features) in ``dtype`` (float32 or float64: float64 keeps sklearn's exact
    arithmetic), outputs ``label`` and ``probabilities`` as plain tensors (zipmap off)."""
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    kind = DoubleTensorType if np.dtype(dtype) == np.float64 else FloatTensorType
    onx = to_onnx(
        pipeline, initial_types=[("input", kind([None, n_features]))], options={"zipmap": False}
    )
    Path(path).write_bytes(onx.SerializeToString())
    return Path(path)


def onnx_session(path: str | Path, threads: int = 1) -> Any:
    """An ``onnxruntime.InferenceSession`` on CPU with ``threads`` intra-op threads and one
    inter-op thread (so latencies compare with one-thread torch)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_onnx(session: Any, x: np.ndarray) -> list[np.ndarray]:
    """Feed ``x`` to the session's single input; returns every output, in graph order."""
    return session.run(None, {session.get_inputs()[0].name: x})


# ---------------------------------------------------------------- checking and measuring


def check_round_trip(
    original: Callable[[Any], Any],
    restored: Callable[[Any], Any],
    inputs: Sequence[Any],
    rtol: float,
    atol: float,
) -> list[dict[str, Any]]:
    """Compare ``restored(x)`` with ``original(x)`` (both as float64 arrays) on each input.

    One row per input: ``{"shape": tuple(x.shape), "max_abs_diff": float, "ok": bool}`` where
    ok means equal shapes and ``|restored - original| <= atol + rtol * |original|`` everywhere
    (a NaN anywhere is never ok; max_abs_diff is inf when the shapes differ)."""
    rows = []
    for x in inputs:
        want = np.asarray(original(x), dtype=np.float64)
        got = np.asarray(restored(x), dtype=np.float64)
        if want.shape != got.shape:
            rows.append({"shape": tuple(np.shape(x)), "max_abs_diff": float("inf"), "ok": False})
            continue
        diff = np.abs(got - want)
        ok = bool(np.all(diff <= atol + rtol * np.abs(want)))  # NaN compares False
        worst = float(diff.max()) if diff.size else 0.0
        rows.append({"shape": tuple(np.shape(x)), "max_abs_diff": worst, "ok": ok})
    return rows


def size_on_disk(path: str | Path) -> int:
    """Bytes a saved model takes: the file's size, or the sum over every file in a folder."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


def median_latency_ms(
    fn: Callable[[Any], Any], x: Any, repeats: int = 20, warmup: int = 2
) -> float:
    """Median wall milliseconds of ``fn(x)`` over ``repeats`` timed calls, after ``warmup``
    untimed calls (caches, lazy initialisation). The median ignores a few calls slowed by
    other processes."""
    for _ in range(warmup):
        fn(x)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn(x)
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)
