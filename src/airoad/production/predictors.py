"""Predictors the model service can serve: anything with ``labels`` and ``predict_proba``.

The protocol is deliberately tiny so the service (``airoad.production.model_api``) does not care
whether the model runs in eager PyTorch, ONNX Runtime or is a fake in a test:

- ``labels: list[str]``, the class names, in column order;
- ``predict_proba(texts: list[str]) -> np.ndarray`` of shape ``(len(texts), len(labels))``,
  each row a probability distribution (non-negative, summing to 1).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from airoad.errors import AiroadError


@runtime_checkable
class Predictor(Protocol):
    """A text classifier the service can call with a batch of texts."""

    labels: list[str]

    def predict_proba(self, texts: list[str]) -> np.ndarray: ...


class HFTextClassifier:
    """An eager fp32 Hugging Face sequence classifier read from a saved folder (offline).

    The folder holds what ``save_pretrained`` wrote plus ``lab.json`` with ``labels`` and
    ``max_length`` (the bert-sentiment lab's artifact). Texts are tokenised with the folder's
    tokenizer, truncated to ``max_length`` and padded only to the longest text of the batch
    (dynamic padding), ``sub_batch`` texts of similar length per forward pass. ``threads``
    sets torch's intra-op thread count (a process-wide setting) when given.
    """

    def __init__(self, folder: str | Path, threads: int | None = None, sub_batch: int = 8):
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        folder = Path(folder)
        meta_path = folder / "lab.json"
        if not meta_path.is_file():
            raise AiroadError(
                f"{folder} has no lab.json: pass the folder a bert-sentiment run saved "
                "(`airoad run bert-sentiment` makes it)"
            )
        if sub_batch < 1:
            raise AiroadError(f"sub_batch={sub_batch}: use at least 1 text per forward pass")
        meta = json.loads(meta_path.read_text())
        if threads is not None:
            torch.set_num_threads(threads)
        self.labels: list[str] = list(meta["labels"])
        self.max_length = int(meta.get("max_length", 128))
        self.sub_batch = int(sub_batch)
        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
        self.meta = meta

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities, shape (len(texts), len(labels)); float64 softmax of the logits.

        Texts are sorted by length and run ``sub_batch`` at a time, so each forward pass pads
        to a length close to its own texts' (one big batch of mixed reviews pays for padding
        every short review to the longest one: on a CPU that cancels the batching gain).
        """
        import torch

        from airoad.production.onnx_text import clean_text  # as the model saw text in training

        texts = [clean_text(t) for t in texts]
        out = np.zeros((len(texts), len(self.labels)))
        order = np.argsort([len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), self.sub_batch):
            idx = order[start : start + self.sub_batch]
            batch = self.tokenizer(
                [texts[i] for i in idx],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = self.model(**batch).logits
            out[idx] = torch.softmax(logits.double(), dim=-1).numpy()
        return out
