"""Parts of the lora-finetune runner: the keyword task, scoring, training, the quantisation error
table, and the one-process-per-method memory and time measurement.

The task: a sentence of the Python docs (``pydoc_data.topics``) that quotes a keyword, with the
keyword blanked out; the model answers with the keyword alone, in SmolLM2's chat format::

    <|im_start|>user\\nWhich Python keyword fills the blank? ...<|im_end|>\\n<|im_start|>assistant\\nNone<|im_end|>

The loss counts only the answer tokens (the keyword and ``<|im_end|>``). Accuracy compares the
logits of the first token of every candidate keyword at the answer position (their first tokens
are distinct), so 100 prompts cost one forward pass each, and no generation.
"""

from __future__ import annotations

import ctypes
import gc
import json
import keyword
import os
import re
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from airoad.llm import lora_finetune as ref
from airoad.llm import nf4

KEYWORDS = tuple(keyword.kwlist)
_QUOTED = re.compile(r"[\"“](" + "|".join(KEYWORDS) + r")[\"”]")
_SENTENCE_END = re.compile(r"(?<=[.;:])\s+(?=[A-Z\"])")
QUESTION = "Which Python keyword fills the blank? Reply with the keyword only.\n"
USER, ASSISTANT, END = "<|im_start|>user\n", "<|im_start|>assistant\n", "<|im_end|>"
MIB = 2**20
LLAMA_LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@contextmanager
def quiet_hf() -> Iterator[None]:
    """No Hugging Face progress bars or deprecation warnings inside the run's own display."""
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if shown:
            hf_logging.enable_progress_bar()


# ---------------------------------------------------------------- the task


def keyword_cloze(docs: dict[str, str]) -> list[tuple[str, str]]:
    """(sentence with one keyword blanked as "___", the keyword) from the docs' prose: every
    sentence of 5-40 words that quotes a keyword, once per keyword it quotes; no duplicates."""
    seen: set[tuple[str, str]] = set()
    for topic in sorted(docs):
        for para in re.split(r"\n\s*\n", docs[topic]):
            if para.startswith("   ") or any(m in para for m in ("::=", "***", "===")):
                continue  # code examples, grammar rules and headings are not prose
            for sentence in _SENTENCE_END.split(" ".join(para.split())):
                if 5 <= len(sentence.split()) <= 40:
                    for word in sorted(set(_QUOTED.findall(sentence))):
                        blanked = re.sub(rf"[\"“]{word}[\"”]", '"___"', sentence)
                        seen.add((blanked, word))
    return sorted(seen)


@dataclass
class Example:
    ids: list[int]  # prompt + answer tokens
    n_prompt: int  # the answer starts at this position
    answer: str


def encode(pairs: list[tuple[str, str]], tokenizer: Any, seq_len: int) -> list[Example]:
    """Chat-format token ids of each (sentence, keyword) pair; pairs longer than seq_len dropped."""
    out = []
    for sentence, word in pairs:
        prompt = tokenizer.encode(f"{USER}{QUESTION}{sentence}{END}\n{ASSISTANT}")
        answer = tokenizer.encode(f"{word}{END}")
        if len(prompt) + len(answer) <= seq_len:
            out.append(Example(prompt + answer, len(prompt), word))
    return out


def split_task(examples: list[Example], n_val: int, seed: int) -> tuple[list, list]:
    """A seeded shuffle: the first n_val examples are held out, the rest train."""
    order = np.random.default_rng(seed).permutation(len(examples))
    return [examples[i] for i in order[n_val:]], [examples[i] for i in order[:n_val]]


def candidate_ids(tokenizer: Any) -> torch.Tensor:
    """The first token of every keyword's answer; they must differ for first-token scoring."""
    first = [tokenizer.encode(word)[0] for word in KEYWORDS]
    if len(set(first)) != len(first):
        raise RuntimeError("two keywords share a first token: first-token scoring cannot work")
    return torch.tensor(first)


def collate(batch: list[Example], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded ids, attention mask, and the (row, position) of every answer token's
    prediction (the logits at position t predict token t + 1)."""
    width = max(len(e.ids) for e in batch)
    ids = torch.full((len(batch), width), pad_id)
    mask = torch.zeros(len(batch), width, dtype=torch.long)
    rows, pos, targets = [], [], []
    for i, e in enumerate(batch):
        ids[i, : len(e.ids)] = torch.tensor(e.ids)
        mask[i, : len(e.ids)] = 1
        span = range(e.n_prompt - 1, len(e.ids) - 1)
        rows += [i] * len(span)
        pos += list(span)
        targets += e.ids[e.n_prompt :]
    first = torch.tensor([e.n_prompt - 1 for e in batch])
    return {
        "ids": ids,
        "mask": mask,
        "rows": torch.tensor(rows),
        "pos": torch.tensor(pos),
        "targets": torch.tensor(targets),
        "first_pos": first,
    }


def answer_logits(lm: nn.Module, batch: dict, rows: torch.Tensor, pos: torch.Tensor):
    """Logits at the chosen positions only: the 49k-wide output layer runs on a few rows,
    not on every padded position."""
    hidden = lm.model(input_ids=batch["ids"], attention_mask=batch["mask"]).last_hidden_state
    return lm.lm_head(hidden[rows, pos])


def answer_loss(lm: nn.Module, batch: dict) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens (keyword and end marker)."""
    return F.cross_entropy(answer_logits(lm, batch, batch["rows"], batch["pos"]), batch["targets"])


@torch.no_grad()
def evaluate(lm: nn.Module, examples: list[Example], cands: torch.Tensor, pad_id: int, bs: int):
    """Held-out answer loss (token-weighted), first-token accuracy and each prediction."""
    lm.eval()
    total, count, predictions = 0.0, 0, []
    for start in range(0, len(examples), bs):
        chunk = examples[start : start + bs]
        batch = collate(chunk, pad_id)
        n_rows = len(batch["rows"])
        rows = torch.cat([batch["rows"], torch.arange(len(chunk))])
        logits = answer_logits(lm, batch, rows, torch.cat([batch["pos"], batch["first_pos"]]))
        total += float(F.cross_entropy(logits[:n_rows], batch["targets"], reduction="sum"))
        count += n_rows
        predictions += [KEYWORDS[i] for i in logits[n_rows:, cands].argmax(1).tolist()]
    accuracy = float(np.mean([p == e.answer for p, e in zip(predictions, examples)]))
    return {"loss": total / count, "accuracy": accuracy, "predictions": predictions}


def batches(n_train: int, steps: int, batch_size: int, seed: int) -> list[list[int]]:
    """Example indices for each step: seeded epochs of a shuffled training set."""
    rng, order = np.random.default_rng(seed), []
    while len(order) < steps * batch_size:
        order += rng.permutation(n_train).tolist()
    return [order[i * batch_size : (i + 1) * batch_size] for i in range(steps)]


def train(lm: nn.Module, train_set: list[Example], config: Any, pad_id: int, track) -> list[dict]:
    """AdamW on the trainable parameters; the curve of the answer loss, one row per step."""
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=config.lr)
    plan = batches(len(train_set), config.steps, config.batch_size, config.seed)
    lm.train()
    curve = []
    for step, idx in enumerate(track(plan, "LoRA fine-tuning SmolLM2")):
        start = time.perf_counter()
        loss = answer_loss(lm, collate([train_set[i] for i in idx], pad_id))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        curve.append(
            {
                "step": step + 1,
                "train_loss": float(loss.detach()),
                "seconds": time.perf_counter() - start,
            }
        )
    lm.eval()
    return curve


# ---------------------------------------------------------------- quantisation error


def _roundtrips(w: torch.Tensor) -> dict[str, torch.Tensor]:
    """Each format's round trip of one fp32 weight matrix (block size 64 throughout)."""
    out = {"fp16": w.half().float(), "bf16": w.bfloat16().float()}
    for bits in (8, 4):
        q, absmax = nf4.absmax_quantize(w, bits, 64)
        out[f"int{bits} absmax"] = nf4.absmax_dequantize(q, absmax, bits, w.shape)
    out["nf4"] = nf4.nf4_dequantize(nf4.nf4_quantize(w, 64, double_quant=False))
    out["nf4 + double quant"] = nf4.nf4_dequantize(nf4.nf4_quantize(w, 64, double_quant=True))
    return out


BITS = {
    "fp16": 16.0,
    "bf16": 16.0,
    "int8 absmax": 8 + 32 / 64,
    "int4 absmax": 4 + 32 / 64,
    "nf4": nf4.bits_per_parameter(64, double_quant=False),
    "nf4 + double quant": nf4.bits_per_parameter(64, double_quant=True),
}


def quantisation_table(encoder: nn.Module) -> list[dict]:
    """Round-trip error of every format over all of MiniLM's linear weights (fp32 originals):
    relative RMS error, mean and max absolute error, storage bits per weight."""
    sq: dict[str, float] = dict.fromkeys(BITS, 0.0)
    ab, mx = dict.fromkeys(BITS, 0.0), dict.fromkeys(BITS, 0.0)
    norm, n = 0.0, 0
    for module in encoder.modules():
        if isinstance(module, nn.Linear):
            w = module.weight.detach().float()
            norm, n = norm + float(w.pow(2).sum()), n + w.numel()
            for name, back in _roundtrips(w).items():
                err = (back - w).abs()
                sq[name] += float(err.pow(2).sum())
                ab[name] += float(err.sum())
                mx[name] = max(mx[name], float(err.max()))
    return [
        {
            "format": name,
            "bits_per_weight": BITS[name],
            "relative_rms_error": (sq[name] / norm) ** 0.5,
            "mean_abs_error": ab[name] / n,
            "max_abs_error": mx[name],
            "weights": n,
        }
        for name in BITS
    ]


# ---------------------------------------------------------------- one process per method

CHILD = "import sys; from airoad.labs.runners.lora_finetune_parts import method_main; method_main()"


def _status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        return next(int(line.split()[1]) for line in status if line.startswith(field + ":"))


def prepare(lm: nn.Module, method: str, args: dict) -> None:
    """Make ``lm`` trainable the way ``method`` says (full, lora, qlora or adapter), in place."""
    targets = tuple(args["targets"])
    if method == "full":
        lm.requires_grad_(True)
    elif method == "lora":
        ref.add_lora(lm, targets, args["r"], args["alpha"], seed=args["seed"])
    elif method == "qlora":
        others = tuple(name for name in LLAMA_LINEARS if name not in targets)
        nf4.add_qlora(lm, targets, others, args["r"], args["alpha"], seed=args["seed"])
    else:
        ref.add_adapters(lm, ("o_proj", "down_proj"), args["bottleneck"], seed=args["seed"])


def method_main() -> None:
    """Body of one measuring process: load SmolLM2, prepare it, time the steps, report JSON."""
    from airoad.data.models import load_smollm2

    args = json.loads(sys.argv[1])
    torch.set_num_threads(args["threads"])
    lm, _ = load_smollm2()
    with torch.no_grad():  # copy the weights out of the file's memory map, which would stay
        for p in lm.parameters():  # mapped (and resident) while any one tensor still used it
            p.data = p.data.clone()
    load_peak, (_, total) = _status_kib("VmHWM"), ref.count_parameters(lm)
    prepare(lm, args["method"], args)
    trainable, _ = ref.count_parameters(lm)  # of the model as loaded: NF4 codes are no parameters
    gc.collect()
    _release_freed_memory()
    opt = torch.optim.AdamW([p for p in lm.parameters() if p.requires_grad], lr=1e-5)
    try:  # since Linux 4.0, writing 5 resets VmHWM: the peak of the steps alone
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
    except OSError:
        pass
    ready, times = _status_kib("VmRSS"), []
    lm.train()
    for step in args["batches"]:
        batch = {k: torch.tensor(v) for k, v in step.items()}
        start = time.perf_counter()
        answer_loss(lm, batch).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
    print(
        json.dumps(
            {
                "trainable": trainable,
                "total": total,
                "seconds": times,
                "rss_ready_kib": ready,
                "train_peak_kib": _status_kib("VmHWM"),
                "load_peak_kib": load_peak,
                "process_peak_kib": _maxrss_kib(),
            }
        )
    )


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc keeps them otherwise), so the resident size
    after replacing fp32 weights by NF4 codes shows what the process really still holds."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: the numbers then include freed but unreturned memory


def _maxrss_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def measure(method: str, args: dict, timeout_s: float) -> dict:
    """Run ``method_main`` in a fresh interpreter; its row of the table (status ok or failed)."""
    env = os.environ | {"OMP_NUM_THREADS": str(args["threads"]), "OMP_WAIT_POLICY": "PASSIVE"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(args | {"method": method})],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"method": method, "status": f"failed: over {timeout_s:.0f} s"}
    if done.returncode != 0:
        return {"method": method, "status": f"failed: {done.stderr.strip()[-300:]}"}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    later = out["seconds"][1:] or out["seconds"]  # the first step also warms up the allocator
    return {
        "method": method,
        "status": "ok",
        "trainable_params": out["trainable"],
        "trainable_pct": 100 * out["trainable"] / out["total"],
        "s_per_step": float(np.mean(later)),
        "first_step_s": out["seconds"][0],
        "load_peak_rss_mib": out["load_peak_kib"] / 1024,
        "rss_ready_mib": out["rss_ready_kib"] / 1024,
        "train_peak_rss_mib": out["train_peak_kib"] / 1024,
        "process_peak_rss_mib": out["process_peak_kib"] / 1024,
    }
