"""The fine-tuned sentiment classifier as ONNX: export, int8 quantisation, and a predictor.

``export_classifier_onnx`` traces a ``from_pretrained`` folder (BERT-style sequence classifier)
with the dynamo exporter into one ONNX graph ``(input_ids, attention_mask) -> logits`` whose
batch and sequence axes are dynamic, so one file serves any batch of any length up to the
model's position limit. ``quantize_int8`` stores its weight matrices as int8 with one fp32
scale each (onnxruntime's dynamic quantisation: activations are quantised per batch at run
time). ``OnnxTextClassifier`` runs either file under ONNX Runtime behind the Predictor protocol
(``labels``, ``predict_proba``), tokenising exactly as the torch model was trained: the folder's
tokenizer, truncation to ``lab.json``'s ``max_length``, padding to the longest text of a batch.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from airoad.errors import AiroadError

INPUTS = ("input_ids", "attention_mask")
_BR = re.compile(r"<br\s*/?>", re.IGNORECASE)


def clean_text(text: str) -> str:
    """The text as the bert-sentiment model saw it in training: HTML ``<br />`` breaks turned
    into spaces and runs of whitespace collapsed (``lab.json``'s ``text`` field says so)."""
    return " ".join(_BR.sub(" ", text).split())


@contextlib.contextmanager
def quiet():
    """Context manager: silence the exporters' chatter (torchvision ops it skips, deprecations, progress bars)."""
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "root", "onnxruntime")]
    levels = [lg.level for lg in loggers]
    try:
        for lg in loggers:
            lg.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)
        if bars:
            hf_logging.enable_progress_bar()


def _lab_spec(folder: Path) -> dict:
    path = Path(folder) / "lab.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


class _LogitsOnly(torch.nn.Module):
    """The classifier with positional inputs and a plain logits tensor out (no ModelOutput)."""

    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids=input_ids, attention_mask=attention_mask).logits


def export_classifier_onnx(folder: str | Path, out_path: str | Path, opset: int = 18) -> Path:
    """Export the sequence classifier saved in ``folder`` to ``out_path`` (ONNX, one file).

    Dynamo exporter (``torch.onnx.export(..., dynamo=True)``): inputs ``input_ids`` and
    ``attention_mask`` (batch, seq) int64, output ``logits`` (batch, n_labels) fp32, with
    ``batch`` and ``seq`` dynamic (seq at most the model's ``max_position_embeddings``). The
    labels and ``max_length`` of ``lab.json`` go into the file's metadata. Returns ``out_path``.
    """
    from transformers import AutoModelForSequenceClassification

    folder, out_path = Path(folder), Path(out_path)
    with quiet():
        model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    wrapped = _LogitsOnly(model).eval()  # eval: no dropout in the traced graph
    example = (torch.ones(2, 8, dtype=torch.long), torch.ones(2, 8, dtype=torch.long))
    batch = torch.export.Dim("batch", min=1, max=4096)
    seq = torch.export.Dim("seq", min=2, max=model.config.max_position_embeddings)
    shapes = {name: {0: batch, 1: seq} for name in INPUTS}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), quiet():
        program = torch.onnx.export(
            wrapped,
            example,
            input_names=list(INPUTS),
            output_names=["logits"],
            dynamic_shapes=shapes,
            opset_version=opset,
            dynamo=True,
            external_data=False,
            verbose=False,
        )
    spec = _lab_spec(folder)
    labels = spec.get("labels") or [
        model.config.id2label[i] for i in range(model.config.num_labels)
    ]
    meta = {"labels": json.dumps(labels), "max_length": str(spec.get("max_length", 512))}
    program.model.metadata_props.update(meta)
    program.save(out_path, external_data=False)
    return out_path


def quantize_int8(onnx_path: str | Path, out_path: str | Path) -> Path:
    """Dynamic int8 quantisation of ``onnx_path`` with onnxruntime (``quantize_dynamic``):
    weights of MatMul/Gemm stored as signed int8 (QInt8) with a scale each, activations
    quantised on the fly per batch. Metadata is kept. Returns ``out_path``."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    model = onnx.load(str(onnx_path))
    # The dynamo exporter records intermediate shapes (value_info) from its example input; the
    # quantiser's own shape inference then sees a conflict (384 vs 2) and stops. Dropping them
    # lets it infer every shape afresh; the graph itself is unchanged.
    del model.graph.value_info[:]
    with quiet():  # it suggests a pre-processing pass; plain dynamic quantisation is the lesson
        quantize_dynamic(model, out_path, weight_type=QuantType.QInt8)
    return out_path


def ort_session(onnx_path: str | Path, threads: int | None = None):
    """An ONNX Runtime CPU session. With ``threads`` set: that many intra-op threads and one
    inter-op thread (so threads=1 really uses one core); None keeps ONNX Runtime's default."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])


class OnnxTextClassifier:
    """Predictor over an ONNX classifier: ``labels`` and ``predict_proba(texts)``.

    ``tokenizer_dir`` is the ``from_pretrained`` folder (tokenizer files, optionally ``lab.json``
    with ``labels`` and ``max_length``; what is missing there comes from the ONNX metadata).
    ``threads`` sets ONNX Runtime's intra-op threads (None = its default, all cores).
    """

    def __init__(
        self,
        onnx_path: str | Path,
        tokenizer_dir: str | Path,
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        from transformers import AutoTokenizer

        onnx_path = Path(onnx_path)
        if not onnx_path.is_file():
            raise AiroadError(
                f"no ONNX model at {onnx_path}: export one with export_classifier_onnx"
            )
        if threads is not None and threads < 1:
            raise AiroadError(f"threads must be at least 1 (or None for all cores), not {threads}")
        self.session = ort_session(onnx_path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        spec = _lab_spec(Path(tokenizer_dir))
        self.labels: list[str] = list(spec.get("labels") or json.loads(meta["labels"]))
        self.max_length = int(spec.get("max_length") or meta.get("max_length", 512))
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir, local_files_only=True)

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits (len(texts), n_labels) fp32; batches of ``batch_size`` sorted by length
        so that padding stays short, returned in the input order."""
        out = np.zeros((len(texts), len(self.labels)), dtype=np.float32)
        if not len(texts):  # the tokenizer fails on an empty list
            return out
        texts = [clean_text(t) for t in texts]
        ids = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        order = np.argsort([len(s) for s in ids], kind="stable")
        pad = self.tokenizer.pad_token_id or 0
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            width = max(len(ids[i]) for i in rows)
            input_ids = np.full((len(rows), width), pad, dtype=np.int64)
            mask = np.zeros((len(rows), width), dtype=np.int64)
            for r, i in enumerate(rows):
                input_ids[r, : len(ids[i])] = ids[i]
                mask[r, : len(ids[i])] = 1
            feeds = {"input_ids": input_ids, "attention_mask": mask}
            out[rows] = self.session.run(["logits"], feeds)[0]
        return out

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (len(texts), len(labels)), rows summing to 1 (stable softmax)."""
        z = self.logits(texts)
        z = np.exp(z - z.max(axis=1, keepdims=True))
        return z / z.sum(axis=1, keepdims=True)


TINY_WORDS = (
    "the a and is it this not very good great bad awful love hate coffee tea taste "
    "product buy again would never best worst ok fine dog food price box"
).split()


def save_tiny_classifier(folder: str | Path, seed: int = 0, max_length: int = 16) -> Path:
    """A tiny random BERT sequence classifier (2 layers, hidden 32, labels ["other", "great"])
    with a word-level WordPiece tokenizer and a ``lab.json``, saved like the bert-sentiment
    artifact: for tests and demos that need the format, not the accuracy. Returns ``folder``."""
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *TINY_WORDS, "!", ".", ","]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(folder / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
        num_labels=2,
        id2label={0: "other", 1: "great"},
        label2id={"other": 0, "great": 1},
    )
    with torch.random.fork_rng():  # seeded weights without touching the global generator
        torch.manual_seed(seed)
        model = BertForSequenceClassification(config).eval()
    with quiet():
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    spec = {"labels": ["other", "great"], "max_length": max_length, "dataset": "none (random)"}
    (folder / "lab.json").write_text(json.dumps(spec, indent=2), encoding="utf-8")
    return folder
