"""Parts of the grpo runner: the GRPO loop on the tiny SFT policy, the same loop on
SmolLM2-135M-Instruct with LoRA, and the figures.

One GRPO step: draw prompts, sample a group of G responses for each, score them with the task's
checker, turn the rewards into group-relative advantages, then take ``mu`` gradient steps on the
clipped + KL loss against the log-probs the sampling policy gave (``old``) and those of the frozen
reference (the SFT policy at the tiny scale; SmolLM2 with its LoRA adapter switched off at the
real scale).
"""

from __future__ import annotations

import copy
import time
from functools import partial
from typing import Any

import numpy as np
import torch

from airoad.alignment import grpo as ref
from airoad.alignment import tiny_lm, tiny_task
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure


def _update(policy, logprobs_fn, old, ref_logp, adv, mask, config, opt, mu: int) -> dict:
    """``mu`` optimiser steps on the GRPO loss (``logprobs_fn()``: the policy's log-probs of the
    sampled tokens, with gradient); statistics of the last one."""
    for _ in range(mu):
        logp = logprobs_fn()
        loss = ref.grpo_loss(logp, old, ref_logp, adv, mask, config.epsilon, config.beta,
                             config.loss_type)  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in policy.parameters() if p.requires_grad], 1.0)
        opt.step()
    lp = logp.detach()
    real = mask.sum().clamp(min=1)
    return {
        "loss": loss.item(),
        "kl": float((ref.k3_kl(lp, ref_logp) * mask).sum() / real),
        "clip_fraction": ref.clip_fraction(lp, old, adv, mask, config.epsilon),
    }


def _step_row(step: int, rewards: torch.Tensor, mask: torch.Tensor, group: int, stats: dict):
    tied = rewards.view(-1, group).std(dim=1) == 0
    return {"step": step, "reward": float(rewards.mean()),
            "length": float(mask.sum(1).float().mean()),
            "tied_groups": float(tied.float().mean()), **stats}  # fmt: skip


# ------------------------------------------------------------------ tiny scale


def tiny_grpo(config: Any, lm: tiny_lm.TinyLMConfig, sft, held: list, ctx: RunContext):
    """GRPO on a copy of the SFT policy (the original stays frozen as the reference).
    Returns (policy, per-step rows, evaluation rows)."""
    torch.manual_seed(config.seed)
    policy = copy.deepcopy(sft).requires_grad_(True)
    reference = copy.deepcopy(sft).eval().requires_grad_(False)  # the caller's model is untouched
    opt = torch.optim.AdamW(policy.parameters(), lr=config.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(config.seed)
    items = tiny_task.problems(config.steps * config.prompts, seed=config.seed + 2)
    rows, evals = [], [{"step": 0, "accuracy": tiny_lm.accuracy(policy, held)}]
    for step in ctx.track(range(1, config.steps + 1), "GRPO on the tiny SFT policy"):
        batch = items[(step - 1) * config.prompts : step * config.prompts]
        group = [p for p in batch for _ in range(config.group)]
        roll = tiny_lm.sample(policy, tiny_task.prompt_batch(group), config.temperature, gen)
        rewards = tiny_lm.rewards(group, roll)
        adv = ref.group_advantages(rewards, config.group)
        with torch.no_grad():
            old, ref_logp = (tiny_lm.response_logprobs(m, roll) for m in (policy, reference))
        stats = _update(policy, partial(tiny_lm.response_logprobs, policy, roll), old, ref_logp,
                        adv, roll.mask, config, opt, config.mu)  # fmt: skip
        rows.append(_step_row(step, rewards, roll.mask, config.group, stats))
        if step % config.eval_every == 0 or step == config.steps:
            evals.append({"step": step, "accuracy": tiny_lm.accuracy(policy, held)})
    return policy.eval(), rows, evals


# ------------------------------------------------------------------ real scale (SmolLM2 + LoRA)


class Chat:
    """SmolLM2 with a LoRA adapter, its tokenizer, and the batched pieces GRPO needs."""

    def __init__(self, config: Any):
        from peft import LoraConfig, get_peft_model

        from airoad.data.models import load_smollm2

        torch.manual_seed(config.seed)
        base, self.tok = load_smollm2()
        self.tok.padding_side = "left"  # generation continues every prompt from the same column
        lora = LoraConfig(r=config.lora_r, lora_alpha=2 * config.lora_r, lora_dropout=0.0,
                          target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # fmt: skip
        self.model = get_peft_model(base, lora).eval()
        self.max_new = config.real_max_new

    def encode(self, items: list) -> dict:
        texts = [self.tok.apply_chat_template(tiny_task.real_messages(p), tokenize=False,
                                              add_generation_prompt=True) for p in items]  # fmt: skip
        return self.tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    @torch.no_grad()
    def generate(self, enc: dict, sample: bool, temperature: float = 1.0):
        """(completion ids (B, R), mask (B, R): True up to and including the first <|im_end|>)."""
        out = self.model.generate(**enc, max_new_tokens=self.max_new, do_sample=sample,
                                  temperature=temperature if sample else None, top_k=0,
                                  top_p=1.0, pad_token_id=self.tok.pad_token_id)  # fmt: skip
        ids = out[:, enc["input_ids"].shape[1] :]
        return ids, tiny_lm.response_mask(ids, self.tok.eos_token_id)

    def logprobs(self, enc: dict, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """log pi of each completion token (B, R); the logits one position earlier score it."""
        full = torch.cat([enc["input_ids"], ids], 1)
        att = torch.cat([enc["attention_mask"], mask.long()], 1)
        logits = self.model(input_ids=full, attention_mask=att).logits[:, -ids.shape[1] - 1 : -1]
        logp = logits.float().log_softmax(-1).gather(-1, ids.unsqueeze(-1)).squeeze(-1)
        return logp * mask

    def rewards(self, items: list, ids: torch.Tensor) -> torch.Tensor:
        texts = self.tok.batch_decode(ids, skip_special_tokens=True)
        return torch.tensor([float(tiny_task.check_text(p, t)) for p, t in zip(items, texts)])

    def accuracy(self, items: list, batch: int) -> float:
        right = 0.0
        for i in range(0, len(items), batch):
            chunk = items[i : i + batch]
            right += float(self.rewards(chunk, self.generate(self.encode(chunk), False)[0]).sum())
        return right / max(len(items), 1)


def real_grpo(config: Any, ctx: RunContext) -> tuple[list, dict]:
    """A short GRPO run on SmolLM2-135M-Instruct + LoRA; accuracy before/after on held-out
    problems; the reference is the same model with the adapter disabled."""
    start, cpu = time.perf_counter(), time.process_time()
    chat = Chat(config)
    held = tiny_task.problems(config.real_eval, seed=20_000, split="test", digits=config.digits)
    before = chat.accuracy(held, config.real_batch)
    items = tiny_task.problems(config.real_steps * config.real_prompts, seed=config.seed + 3,
                               digits=config.digits)  # fmt: skip
    params = [p for p in chat.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.real_lr, weight_decay=0.0)
    rows = []
    for step in ctx.track(range(1, config.real_steps + 1), "GRPO on SmolLM2 + LoRA"):
        batch = items[(step - 1) * config.real_prompts : step * config.real_prompts]
        group = [p for p in batch for _ in range(config.group)]
        enc = chat.encode(group)
        ids, mask = chat.generate(enc, True, config.temperature)
        rewards = chat.rewards(group, ids)
        adv = ref.group_advantages(rewards, config.group)
        with torch.no_grad():
            old = chat.logprobs(enc, ids, mask)
            with chat.model.disable_adapter():
                ref_logp = chat.logprobs(enc, ids, mask)
        stats = _update(chat.model, partial(chat.logprobs, enc, ids, mask), old, ref_logp, adv,
                        mask, config, opt, 1)  # fmt: skip
        rows.append(_step_row(step, rewards, mask, config.group, stats))
    after = chat.accuracy(held, config.real_batch)
    return rows, {"real_before": before, "real_after": after, "real_n_eval": len(held),
                  "real_seconds": time.perf_counter() - start,
                  "real_cpu_seconds": time.process_time() - cpu}  # fmt: skip


# ------------------------------------------------------------------ figures


def curves_figure(rows: list, evals: list, ctx: RunContext, name: str, title: str) -> None:
    """Reward, accuracy, response length and KL to the reference over GRPO steps."""
    steps = np.array([r["step"] for r in rows])
    with figure(ctx, name, 1, 3, figsize=(13, 3.8)) as (fig, (ax_r, ax_l, ax_k)):
        ax_r.plot(
            steps, [r["reward"] for r in rows], lw=0.8, alpha=0.6, label="mean reward (samples)"
        )
        if evals:
            ax_r.plot([e["step"] for e in evals], [e["accuracy"] for e in evals], "o-",
                      color="C3", label="held-out greedy accuracy")  # fmt: skip
        ax_r.set(xlabel="GRPO step", ylabel="fraction correct", title="reward and accuracy")
        ax_r.legend(fontsize=8)
        ax_l.plot(steps, [r["length"] for r in rows], color="C2")
        ax_l.set(xlabel="GRPO step", ylabel="tokens (incl. end)", title="mean response length")
        ax_k.plot(steps, [r["kl"] for r in rows], color="C4", label="k3 KL to reference")
        ax_k.plot(steps, [r["clip_fraction"] for r in rows], color="C1", lw=0.8,
                  label="clipped token share")  # fmt: skip
        ax_k.set(xlabel="GRPO step", title="KL per token and clipping")
        ax_k.legend(fontsize=8)
        fig.suptitle(title)
