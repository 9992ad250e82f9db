"""The serving platform behind `airoad serve`: the model loaded how, in which app.

- which model: ``serving_registry.resolve_model`` (a registry alias -> a verified artifact folder);
- ``load_predictor``: eager fp32 torch, or ONNX Runtime int8 (exported once per artifact and
  cached under ``$AIROAD_HOME/serving``).
- ``TorchScriptGenerator``: the image generators of the generative labs (``generator.pt``).
- ``build_app`` / ``create_app_from_env``: the model-api lab's ``create_app`` with all of that
  plugged in; the second one is the uvicorn ``--factory`` the container runs.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from airoad.errors import AiroadError
from airoad.labs import artifacts
from airoad.production.serving_registry import lab_spec, verify

BACKENDS = ("torch", "onnx-int8")
GENERATOR_KIND = "image-generator"


# ---------------------------------------------------------------- loading


def is_generator(folder: Path) -> bool:
    return lab_spec(folder).get("kind") == GENERATOR_KIND


def _onnx_cache(folder: Path) -> Path:
    """One ONNX export per artifact content (its manifest), shared by every server."""
    from airoad.home import home

    digest = hashlib.sha256((folder / artifacts.MANIFEST).read_bytes()).hexdigest()[:16]
    return home() / "serving" / digest


def load_predictor(folder: Path, backend: str = "torch", threads: int | None = None):
    """The classifier in ``folder`` as a predictor: eager fp32 torch or ONNX Runtime int8."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a "Loading weights" bar would tear through the console
    if backend == "torch":
        from airoad.production.predictors import HFTextClassifier

        return HFTextClassifier(folder, threads=threads)
    if backend != "onnx-int8":
        raise AiroadError(f"unknown backend '{backend}': use one of {', '.join(BACKENDS)}")
    from airoad.home import file_lock
    from airoad.production.onnx_text import (
        OnnxTextClassifier,
        export_classifier_onnx,
        quantize_int8,
    )

    cache = _onnx_cache(folder)
    int8 = cache / "model.int8.onnx"
    with file_lock(cache.with_name(cache.name + ".lock")):
        if not int8.is_file():
            cache.mkdir(parents=True, exist_ok=True)
            fp32 = export_classifier_onnx(folder, cache / "model.onnx")
            quantize_int8(fp32, cache / "model.int8.tmp.onnx").replace(int8)
    # One text per ONNX Runtime call: its int8 kernels ran a length-sorted batch of 32 reviews at
    # 43 texts/s and single reviews at 126 texts/s here (benchmarks/results/serving.md).
    return OnnxTextClassifier(int8, folder, threads=threads, batch_size=1)


class TorchScriptGenerator:
    """An image generator saved by a generative lab: ``generator.pt`` (TorchScript) + lab.json.

    lab.json: ``"kind": "image-generator"``, ``latent_dim``, optional ``n_labels`` (> 0: the
    module is conditional and is called as ``module(z, labels)``) and ``output_range`` (the
    values the module returns, default [-1, 1]). The module maps (n, latent_dim) noise to
    (n, H, W) or (n, 1, H, W) floats; ``generate`` returns uint8 (n, H, W).
    """

    def __init__(self, folder: str | Path):
        import torch

        folder = Path(folder)
        spec = lab_spec(folder)
        if spec.get("kind") != GENERATOR_KIND or not (folder / "generator.pt").is_file():
            raise AiroadError(
                f"{folder} is not an image generator: it needs generator.pt and a lab.json "
                f'saying "kind": "{GENERATOR_KIND}"'
            )
        self.latent_dim = int(spec["latent_dim"])
        self.n_labels = int(spec.get("n_labels", 0))
        self.low, self.high = (float(v) for v in spec.get("output_range", (-1.0, 1.0)))
        self.module = torch.jit.load(str(folder / "generator.pt"), map_location="cpu").eval()

    def generate(self, n: int, label: int | None, seed: int) -> np.ndarray:
        import torch

        # ValueError: the service answers it as a 422 with this sentence.
        if self.n_labels and label is None:
            raise ValueError(f"this generator is conditional: give a label 0..{self.n_labels - 1}")
        if label is not None and not 0 <= label < max(self.n_labels, 1):
            raise ValueError(
                f"label {label} is out of range: this generator takes 0..{self.n_labels - 1}"
                if self.n_labels
                else "this generator is unconditional: leave the label out"
            )
        z = torch.randn(n, self.latent_dim, generator=torch.Generator().manual_seed(seed))
        with torch.inference_mode():
            if self.n_labels:
                out = self.module(z, torch.full((n,), label, dtype=torch.long))
            else:
                out = self.module(z)
        images = out.reshape(n, *out.shape[-2:]).double().numpy()
        scaled = (images - self.low) / (self.high - self.low)
        return np.round(255 * np.clip(scaled, 0.0, 1.0)).astype(np.uint8)


# ---------------------------------------------------------------- the app


@dataclass
class Parts:
    """What one server serves: a classifier and/or an image generator, and the drift monitor."""

    predictor: Any = None
    generator: Any = None
    monitor: Any = None


def drift_reference(spec: dict) -> dict | None:
    """The reference columns of a classifier's drift monitor, from its training data: the word
    counts of the fine-food training reviews and their label mix (the labels it predicts)."""
    if spec.get("dataset") != "fine-food":
        return None  # no reference data known for this model
    from airoad.labs.runners import bert_sentiment_parts as bs

    train, _ = bs.reviews(0, 0, seed=0)
    names = list(spec.get("labels", bs.LABELS))
    return {
        "n_words": [len(text.split()) for text in bs.clean(train["review"])],
        "label": [names[y] for y in bs.labels(train)],
    }


def save_drift_reference(folder: Path, path: Path) -> Path:
    """Write the drift reference of the classifier in ``folder`` as JSON, for a server that has
    neither the training data nor the lab code (a container: AIROAD_SERVE_DRIFT_REFERENCE)."""
    reference = drift_reference(lab_spec(folder))
    if reference is None:
        raise AiroadError(f"no training data is known for the model in {folder}")
    Path(path).write_text(json.dumps(reference), encoding="utf-8")
    return Path(path)


def _monitor(reference: dict | None, window: int = 500):
    if reference is None:
        return None
    from airoad.production.drift_monitoring import DriftMonitor

    return DriftMonitor(reference, categorical=["label"], window=window)


def drift_monitor(spec: dict, window: int = 500):
    """A DriftMonitor on the model's training data (see ``drift_reference``), or None."""
    return _monitor(drift_reference(spec), window)


def _monitor_from_file(path: str):
    try:
        reference = json.loads(Path(path).read_text(encoding="utf-8"))
        if set(reference) != {"n_words", "label"}:
            raise ValueError
    except (OSError, ValueError, TypeError):
        raise AiroadError(
            f"AIROAD_SERVE_DRIFT_REFERENCE={path} is not a drift reference written by "
            "airoad.production.serving.save_drift_reference"
        ) from None
    return _monitor(reference)


def load_parts(
    folder: Path,
    backend: str = "torch",
    threads: int | None = None,
    generator_folder: Path | None = None,
    drift: bool = True,
) -> Parts:
    """Load the artifact in ``folder`` (classifier or generator) and an optional second
    generator folder; a classifier trained on known data also gets its drift monitor."""
    if is_generator(folder):
        return Parts(generator=TorchScriptGenerator(folder))
    parts = Parts(predictor=load_predictor(folder, backend, threads))
    if generator_folder is not None:
        parts.generator = TorchScriptGenerator(generator_folder)
    if drift:
        parts.monitor = drift_monitor(lab_spec(folder))
    return parts


def _limits(keys: dict[str, float]):
    from airoad.production.model_api import KeyLimit

    # A burst of one second's worth of requests (at least 20): a page load or a retry storm of
    # a well-behaved client is not refused, a flood is.
    return {k: KeyLimit(rate=r, burst=max(20, math.ceil(r))) for k, r in keys.items()}


def build_app(
    parts: Parts,
    keys: dict[str, float],
    name: str = "model",
    version: str = "0",
    max_batch: int = 32,
    predictor_loader: Any = None,
):
    """The model-api service around ``parts``; ``keys`` maps each API key to its requests/s.
    ``predictor_loader`` (a callable) loads the classifier in the background instead."""
    from airoad.production.model_api import ServiceSettings, create_app

    if not keys:
        raise AiroadError("the service needs at least one API key")
    if parts.predictor is None and predictor_loader is None:
        # create_app (model-api lab) always serves a classifier; /ready would say "failed".
        raise AiroadError(
            "an image generator is served beside a classifier for now: serve the classifier "
            "with AIROAD_SERVE_GENERATOR_DIR set to this folder"
        )
    settings = ServiceSettings(
        api_keys=_limits(keys), max_batch=max_batch, model_name=name, model_version=version
    )
    predictor = predictor_loader if predictor_loader is not None else parts.predictor
    return create_app(predictor, settings, monitor=parts.monitor, generator=parts.generator)


def _env_keys(text: str, default_rate: float) -> dict[str, float]:
    """``key1,key2:100``: keys, each with an optional requests/s after a colon."""
    keys = {}
    for item in filter(None, (i.strip() for i in text.split(","))):
        key, _, rate = item.partition(":")
        try:
            keys[key] = float(rate) if rate else default_rate
        except ValueError:
            raise AiroadError(
                f"AIROAD_API_KEYS entry '{key}:{rate}': the rate after ':' must be a number"
            ) from None
    return keys


def create_app_from_env():
    """The uvicorn ``--factory`` of the container: everything comes from the environment.

    AIROAD_SERVE_MODEL_DIR  the classifier's artifact folder (with its manifest);
    AIROAD_API_KEYS         ``key1,key2:100`` (requests/s per key after ':'; default
                            AIROAD_SERVE_RATE, else 20);
    AIROAD_SERVE_BACKEND    torch (default) or onnx-int8;
    AIROAD_SERVE_GENERATOR_DIR  optional image generator served at /generate beside a classifier;
    AIROAD_SERVE_MAX_BATCH  micro-batch size (default 32; 1 = one request at a time);
    AIROAD_SERVE_THREADS    torch / ONNX Runtime threads (default: the library's);
    AIROAD_SERVE_DRIFT_REFERENCE  optional JSON from ``save_drift_reference``: turns /drift on
                            (an image has neither the training data nor the lab code to build it).
    The classifier loads in the background: /ready answers 503 until it is in memory.
    """
    env = os.environ
    if not env.get("AIROAD_SERVE_MODEL_DIR"):
        raise AiroadError("set AIROAD_SERVE_MODEL_DIR to the artifact folder to serve")
    folder = verify(Path(env["AIROAD_SERVE_MODEL_DIR"]), "AIROAD_SERVE_MODEL_DIR")
    backend = env.get("AIROAD_SERVE_BACKEND", "torch")
    if backend not in BACKENDS:
        raise AiroadError(f"AIROAD_SERVE_BACKEND must be one of {', '.join(BACKENDS)}")
    keys = _env_keys(env.get("AIROAD_API_KEYS", ""), float(env.get("AIROAD_SERVE_RATE", 20)))
    if not keys:
        raise AiroadError("set AIROAD_API_KEYS to the keys clients send as X-API-Key")
    threads = int(env["AIROAD_SERVE_THREADS"]) if env.get("AIROAD_SERVE_THREADS") else None
    gen_dir = env.get("AIROAD_SERVE_GENERATOR_DIR")
    if gen_dir:
        verify(Path(gen_dir), "AIROAD_SERVE_GENERATOR_DIR")
    max_batch = int(env.get("AIROAD_SERVE_MAX_BATCH", 32))
    if is_generator(folder):
        return build_app(load_parts(folder), keys, folder.name, max_batch=max_batch)
    parts = Parts(
        generator=TorchScriptGenerator(gen_dir) if gen_dir else None,
        monitor=_monitor_from_file(ref)
        if (ref := env.get("AIROAD_SERVE_DRIFT_REFERENCE"))
        else None,
    )
    return build_app(
        parts,
        keys,
        name=folder.name,
        max_batch=max_batch,
        predictor_loader=lambda: load_predictor(folder, backend, threads),
    )
