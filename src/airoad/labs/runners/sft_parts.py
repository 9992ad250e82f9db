"""The sft runner's pieces: SmolLM2 at the real scale (greedy answers, packed LoRA SFT) and the
figures. The tiny scale lives in ``airoad.alignment.tiny_lm`` (the cached base, the SFT loop)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from airoad.alignment import sft as ref
from airoad.alignment import tiny_task
from airoad.alignment.tiny_task import Problem
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.llm import lora_finetune

MAX_NEW = 5  # a sum of two 3-digit numbers is at most 4 digit tokens, then <|im_end|>


def prompt_texts(items: Sequence[Problem]) -> list[str]:
    """Each problem's chat prompt, rendered by our template (generation prompt included)."""
    return [
        ref.render_chatml(tiny_task.real_messages(p), add_generation_prompt=True) for p in items
    ]


def template_mismatches(tokenizer: Any, items: Sequence[Problem]) -> int:
    """How many prompts (with and without a reply) our renderer tokenizes differently from
    ``tokenizer.apply_chat_template`` (0 when the template is right)."""
    bad = 0
    for p in items:
        msgs = tiny_task.real_messages(p)
        ours, start = ref.chat_tokens(tokenizer, msgs, p.answer)
        chat = [*msgs, {"role": "assistant", "content": p.answer}]
        theirs = _ids(tokenizer.apply_chat_template(chat, tokenize=True))
        head = _ids(tokenizer.apply_chat_template(msgs, tokenize=True, add_generation_prompt=True))
        bad += ours != theirs or ours[:start] != head
    return bad


def _ids(out: Any) -> list[int]:
    """apply_chat_template returns a list or a BatchEncoding, depending on the version."""
    return list(out["input_ids"] if hasattr(out, "keys") else out)


@torch.no_grad()
def replies(lm: Any, tokenizer: Any, items: Sequence[Problem], batch: int, track) -> list[str]:
    """Greedy replies (left-padded batches, at most MAX_NEW new tokens)."""
    tokenizer.padding_side = "left"
    texts, out = prompt_texts(items), []
    lm.eval()
    for i in track(range(0, len(texts), batch), "SmolLM2 answering"):
        enc = tokenizer(texts[i : i + batch], return_tensors="pt", padding=True,
                        add_special_tokens=False)  # fmt: skip
        gen = lm.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False,
                          pad_token_id=tokenizer.pad_token_id)  # fmt: skip
        out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    return out


def accuracy(items: Sequence[Problem], texts: Sequence[str]) -> float:
    return float(np.mean([tiny_task.check_text(p, t) for p, t in zip(items, texts, strict=True)]))


def packed_logits(lm: Any, batch: ref.Batch) -> torch.Tensor:
    """A Hugging Face causal LM on packed rows: the block-diagonal 4-D mask and per-example
    positions."""
    bias = ref.attention_bias(batch.segments, torch.float32)
    return lm(input_ids=batch.ids, attention_mask=bias, position_ids=batch.positions).logits


def examples(tokenizer: Any, items: Sequence[Problem]) -> list[tuple[list[int], int]]:
    return [ref.chat_tokens(tokenizer, tiny_task.real_messages(p), p.answer) for p in items]


def padded(exs: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """One example per row, right-padded: ids, attention mask, labels (IGNORE off the reply)."""
    t = max(len(ids) for ids, _ in exs)
    ids = torch.full((len(exs), t), pad_id, dtype=torch.long)
    labels = torch.full_like(ids, ref.IGNORE)
    for i, (row, start) in enumerate(exs):
        ids[i, : len(row)] = torch.tensor(row)
        labels[i, start : len(row)] = ids[i, start : len(row)]
    mask = (torch.arange(t)[None, :] < torch.tensor([len(r) for r, _ in exs])[:, None]).long()
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


@torch.no_grad()
def loss_check(lm: Any, exs: Sequence[tuple[list[int], int]], pad_id: int, max_len: int) -> dict:
    """Our loss on packed rows beside Hugging Face's own loss on the same examples unpacked
    (one per row, right-padded, its ``labels=`` argument)."""
    lm.eval()
    batch = ref.pack(exs, max_len, pad_id)
    ours = ref.response_loss(packed_logits(lm, batch), batch.labels)
    theirs = lm(**padded(exs, pad_id)).loss
    return {"loss_packed_ours": float(ours), "loss_unpacked_hf": float(theirs),
            "loss_abs_diff": abs(float(ours) - float(theirs))}  # fmt: skip


def lora_sft(lm: Any, exs: list, config: Any, pad_id: int, track) -> tuple[list[float], dict]:
    """LoRA adapters on SmolLM2, then ``sft.train`` on packed rows of ``real_batch`` examples
    each step (cosine learning rate to a tenth). Returns the losses and token counts."""
    lora_finetune.add_lora(lm, config.lora_targets, config.lora_r, 2.0 * config.lora_r,
                           seed=config.seed)  # fmt: skip
    trainable = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=config.real_lr, weight_decay=0.0)
    size = config.real_batch
    batches = [ref.pack(exs[s * size : (s + 1) * size], config.pack_len, pad_id)
               for s in range(config.real_steps)]  # fmt: skip
    steps = np.arange(config.real_steps)
    lrs = config.real_lr * (0.55 + 0.45 * np.cos(np.pi * steps / max(config.real_steps, 1)))
    losses = ref.train(lm, opt, track(batches, "LoRA SFT of SmolLM2"), lrs.tolist(), packed_logits)
    lm.eval()
    real = sum(len(ids) for ids, _ in exs[: size * config.real_steps])
    longest = [max(len(ids) for ids, _ in exs[s * size : (s + 1) * size]) for s in steps]
    tokens = {"tokens_real": real, "tokens_packed": sum(b.ids.numel() for b in batches),
              "tokens_padded": int(size * sum(longest)), "rows_packed": sum(len(b.ids) for b in batches),
              "lora_params": sum(p.numel() for p in trainable)}  # fmt: skip
    return losses, tokens


# ------------------------------------------------------------------ figures


def loss_figure(tiny_losses: Sequence[float], real_losses: Sequence[float], ctx: RunContext):
    with figure(ctx, "sft_loss", 1, 2, figsize=(10, 3.6)) as (fig, (left, right)):
        left.plot(tiny_losses, lw=1)
        left.set(xlabel="step", ylabel="nats per response token", title="tiny GPT: SFT loss")
        right.plot(real_losses, lw=1, color="C1")
        right.set(xlabel="step", ylabel="nats per response token",
                  title="SmolLM2 + LoRA: SFT loss (packed rows)")  # fmt: skip
        fig.tight_layout()


def accuracy_figure(m: dict, ctx: RunContext) -> None:
    with figure(ctx, "accuracy", figsize=(6, 3.6)) as (fig, ax):
        x = np.arange(2)
        before = [m["tiny_accuracy_before"], m["real_accuracy_before"]]
        after = [m["tiny_accuracy_after"], m["real_accuracy_after"]]
        ax.bar(x - 0.2, before, 0.4, label="before SFT")
        ax.bar(x + 0.2, after, 0.4, label="after SFT")
        for xi, b, a in zip(x, before, after, strict=True):
            ax.text(xi - 0.2, b, f"{b:.2f}", ha="center", va="bottom", fontsize=8)
            ax.text(xi + 0.2, a, f"{a:.2f}", ha="center", va="bottom", fontsize=8)
        labels = [f"tiny GPT\n({m['tiny_n_eval']} held-out)",
                  f"SmolLM2-135M\n({m['real_n_eval']} held-out)"]  # fmt: skip
        ax.set(xticks=x, xticklabels=labels, ylim=(0, 1.08), ylabel="exact-answer accuracy",
               title="held-out accuracy before and after SFT")  # fmt: skip
        ax.legend(fontsize=8)
        fig.tight_layout()


def packing_figure(batch: ref.Batch, ctx: RunContext) -> None:
    """The first packed row: which key each query may attend to, and the loss mask."""
    with figure(ctx, "packing", 1, 2, figsize=(10, 4.2),
                gridspec_kw={"width_ratios": [3, 2]}) as (fig, (left, right)):  # fmt: skip
        seg = batch.segments[:1]
        left.imshow(ref.block_causal_mask(seg)[0].numpy(), cmap="Greys", interpolation="nearest")
        left.set(xlabel="key position", ylabel="query position",
                 title="packed row: block-diagonal causal mask")  # fmt: skip
        t = np.arange(seg.shape[1])
        right.step(t, seg[0].numpy(), where="mid", label="example id (0 = padding)")
        right.step(t, batch.positions[0].numpy() / 10, where="mid", label="position / 10")
        right.fill_between(t, 0, (batch.labels[0] != ref.IGNORE).numpy(), step="mid", alpha=0.3,
                           color="C2", label="loss on (reply tokens)")  # fmt: skip
        right.set(xlabel="token position", title="segments, positions and the loss mask")
        right.legend(fontsize=7, loc="upper left")
        fig.tight_layout()
