"""Batches, training loops, evaluation and figures for the dpo runner.

- tiny scale: preference pairs (``tiny_lm.Pair``) become batches in ``trl``'s layout (chosen
  rows, then rejected rows; every prompt has the same length, responses are right-padded); the
  policy starts as a copy of the cached SFT model, which stays frozen as the reference.
- real scale: SmolLM2-135M-Instruct with LoRA adapters on the attention projections; the
  reference is the same network with the adapters switched off (``disable_adapter``), so no
  second copy of the weights is kept.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import torch

from airoad.alignment import dpo as ref
from airoad.alignment import tiny_lm, tiny_task
from airoad.alignment.tiny_lm import Pair
from airoad.alignment.tiny_task import TOKENIZER, Problem
from airoad.labs.kit import figure

Track = Callable[[Sequence, str], object]


def pair_batch(pairs: Sequence[Pair]) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids (2B, T), completion_mask (2B, T)): chosen turns, then rejected turns, right-padded;
    the mask is 1 on the response and its <end> token."""
    rows = [tiny_task.chat_example(p.problem.prompt, getattr(p, side))
            for side in ("chosen", "rejected") for p in pairs]  # fmt: skip
    ids = torch.full((len(rows), max(map(len, rows))), TOKENIZER.pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    start = len(tiny_task.chat_prompt(pairs[0].problem.prompt))  # same for every prompt
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, start : len(row)] = 1
    return ids, mask


@torch.no_grad()
def pair_stats(policy, reference, pairs: Sequence[Pair], beta: float) -> dict:
    """Held-out pair metrics: preference accuracy, mean implicit reward margin, and the mean
    summed log-prob of the chosen and the rejected response under the policy."""
    ids, mask = pair_batch(pairs)
    logps = ref.sequence_logprobs(policy(ids), ids, mask)
    chosen, rejected = ref.implicit_rewards(logps, ref.sequence_logprobs(reference(ids), ids, mask),
                                            beta).chunk(2)  # fmt: skip
    pc, pr = logps.chunk(2)
    return {"pref_acc": ref.preference_accuracy(chosen, rejected),
            "margin": float((chosen - rejected).mean()),
            "logp_chosen": float(pc.mean()), "logp_rejected": float(pr.mean())}  # fmt: skip


def train_tiny(cfg, sft, pairs: list[Pair], held: list[Pair], prompts: list[Problem],
               loss_type: str, beta: float, track: Track) -> tuple[torch.nn.Module, list[dict]]:  # fmt: skip
    """DPO or IPO from the SFT policy for cfg.epochs passes over the pairs (AdamW, constant lr);
    every cfg.eval_every steps: held-out pair stats and greedy accuracy on ``prompts``."""
    torch.manual_seed(cfg.seed)
    policy = copy.deepcopy(sft).train()
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    per_epoch = max(len(pairs) // cfg.batch, 1)
    history = [_evaluate(policy, sft, held, prompts, beta, 0, float("nan"))]
    for step in track(range(1, cfg.epochs * per_epoch + 1), f"{loss_type} on tiny pairs"):
        if (step - 1) % per_epoch == 0:
            order = torch.randperm(len(pairs), generator=gen)
        chunk = order[((step - 1) % per_epoch) * cfg.batch :][: cfg.batch]
        ids, mask = pair_batch([pairs[i] for i in chunk])
        loss, _, _ = ref.preference_loss(policy, sft, ids, mask, beta, loss_type)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        opt.step()
        if step % cfg.eval_every == 0 or step == cfg.epochs * per_epoch:
            history.append(_evaluate(policy, sft, held, prompts, beta, step, loss.item()))
    return policy.eval(), history


def _evaluate(policy, sft, held, prompts, beta: float, step: int, loss: float) -> dict:
    policy.eval()
    row = {"step": step, "train_loss": loss, **pair_stats(policy, sft, held, beta),
           "task_acc": tiny_lm.accuracy(policy, prompts)}  # fmt: skip
    policy.train()
    return row


@torch.no_grad()
def greedy_right(model, items: Sequence[Problem], batch: int = 500) -> np.ndarray:
    """(N,) bool: the greedy response is exactly the sum."""
    out = []
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        rollout = tiny_lm.sample(model, tiny_task.prompt_batch(chunk), 0.0)
        out.append(tiny_lm.rewards(chunk, rollout).numpy() > 0.5)
    return np.concatenate(out) if out else np.zeros(0, bool)


def win_counts(ours: np.ndarray, baseline: np.ndarray) -> dict:
    """Per prompt, judged by the checker: win = ours right and the baseline wrong, loss = the
    reverse; ties (both right or both wrong) are counted apart. win_rate = wins over decisive
    prompts; win_rate_ties_split counts a tie as half a win over all prompts."""
    wins, losses = int((ours & ~baseline).sum()), int((~ours & baseline).sum())
    both_right, both_wrong = int((ours & baseline).sum()), int((~ours & ~baseline).sum())
    n = len(ours)
    return {"wins": wins, "losses": losses, "ties_right": both_right, "ties_wrong": both_wrong,
            "win_rate": wins / max(wins + losses, 1),
            "win_rate_ties_split": (wins + 0.5 * (both_right + both_wrong)) / max(n, 1)}  # fmt: skip


# ------------------------------------------------------------------ real scale (SmolLM2 + LoRA)


def real_prompt_ids(tok, problem: Problem) -> list[int]:
    return tok.apply_chat_template(tiny_task.real_messages(problem), add_generation_prompt=True,
                                   tokenize=True, return_dict=False)  # fmt: skip


@torch.no_grad()
def real_sample(lm, tok, items: Sequence[Problem], max_new: int, temperature: float, seed: int):
    """(response token lists cut after the first eos, texts) for each problem; left-padded
    batch generation (temperature 0 = greedy)."""
    rows = [real_prompt_ids(tok, p) for p in items]
    width = max(map(len, rows))
    ids = torch.tensor([[tok.pad_token_id] * (width - len(r)) + r for r in rows])
    attn = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    torch.manual_seed(seed)  # HF sampling draws from the global generator
    out = lm.generate(input_ids=ids, attention_mask=attn, max_new_tokens=max_new,
                      do_sample=temperature > 0, temperature=temperature or None, top_k=0,
                      top_p=1.0, pad_token_id=tok.pad_token_id)  # fmt: skip
    responses = []
    for r in out[:, width:].tolist():
        cut = r.index(tok.eos_token_id) + 1 if tok.eos_token_id in r else len(r)
        responses.append(r[:cut])
    return responses, tok.batch_decode(out[:, width:], skip_special_tokens=True)


def real_accuracy(lm, tok, items: Sequence[Problem], max_new: int, batch: int = 50) -> float:
    right = 0
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        texts = real_sample(lm, tok, chunk, max_new, 0.0, 0)[1]
        right += sum(tiny_task.check_text(p, t) for p, t in zip(chunk, texts))
    return right / max(len(items), 1)


def real_pairs(lm, tok, items: Sequence[Problem], cfg) -> list[tuple[list, list, list]]:
    """(prompt ids, chosen ids, rejected ids) from k sampled replies per problem judged by
    check_text: chosen = a right reply (else the bare answer + eos), rejected = a wrong one."""
    out = []
    for i in range(0, len(items), 16):
        chunk = items[i : i + 16]
        reps, texts = real_sample(lm, tok, [p for p in chunk for _ in range(cfg.k)],
                                  cfg.real_max_new, cfg.temperature, cfg.seed + i)  # fmt: skip
        for j, p in enumerate(chunk):
            group = list(zip(reps[j * cfg.k :][: cfg.k], texts[j * cfg.k :][: cfg.k]))
            right = [r for r, t in group if tiny_task.check_text(p, t)]
            wrong = [r for r, t in group if not tiny_task.check_text(p, t)]
            if wrong:
                fallback = tok(p.answer, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
                out.append((real_prompt_ids(tok, p), right[0] if right else fallback, wrong[0]))
    return out


def real_batch(triples, pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """trl's layout for token lists: (ids, attention mask, completion mask), each (2B, T)."""
    rows = [(p, c) for p, c, _ in triples] + [(p, r) for p, _, r in triples]
    width = max(len(p) + len(c) for p, c in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attn, mask = torch.zeros_like(ids), torch.zeros_like(ids)
    for i, (p, c) in enumerate(rows):
        ids[i, : len(p) + len(c)] = torch.tensor(p + c)
        attn[i, : len(p) + len(c)] = 1
        mask[i, len(p) : len(p) + len(c)] = 1
    return ids, attn, mask


def train_real(cfg, lm, tok, triples, track: Track) -> list[dict]:
    """DPO on the LoRA adapters; the reference is the model with its adapters disabled."""
    torch.manual_seed(cfg.seed)
    params = [p for p in lm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.real_lr, weight_decay=0.0)
    gen, rows = torch.Generator().manual_seed(cfg.seed), []
    lm.train()
    for step in track(range(cfg.real_steps), "DPO on SmolLM2 + LoRA"):
        pick = torch.randperm(len(triples), generator=gen)[: cfg.real_batch]
        ids, attn, mask = real_batch([triples[i] for i in pick], tok.pad_token_id)

        loss, chosen, rejected = ref.preference_loss(
            partial(_logits, lm, attn), partial(_logits, lm, attn, adapters=False), ids, mask,
            cfg.beta,
        )  # fmt: skip
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        rows.append({"step": step + 1, "loss": loss.item(),
                     "pref_acc": ref.preference_accuracy(chosen, rejected),
                     "margin": float((chosen - rejected).mean())})  # fmt: skip
    lm.eval()
    return rows


def _logits(lm, attn: torch.Tensor, ids: torch.Tensor, adapters: bool = True) -> torch.Tensor:
    """Logits of the peft model, or of the base model underneath (adapters off = reference)."""
    if adapters:
        return lm(input_ids=ids, attention_mask=attn).logits
    with lm.disable_adapter():
        return lm(input_ids=ids, attention_mask=attn).logits


def add_lora(lm, rank: int):
    """peft LoRA adapters on q/k/v/o (zero-initialised B, so the start equals the base)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"])  # fmt: skip
    return get_peft_model(lm, config)


# ------------------------------------------------------------------ figures


def curves_figure(histories: dict[str, list[dict]], sft_acc: float, ctx) -> None:
    """Held-out preference accuracy, reward margin and task accuracy over training."""
    with figure(ctx, "dpo_training", 1, 3, figsize=(14, 4)) as (fig, axes):
        for name, rows in histories.items():
            steps = [r["step"] for r in rows]
            for ax, key in zip(axes, ("pref_acc", "margin", "task_acc"), strict=True):
                ax.plot(steps, [r[key] for r in rows], marker=".", label=name)
        axes[2].axhline(sft_acc, color="grey", ls="--", label="SFT policy")
        titles = ("held-out preference accuracy", "implicit reward margin (chosen - rejected)",
                  "greedy task accuracy (held-out prompts)")  # fmt: skip
        for ax, title in zip(axes, titles, strict=True):
            ax.set(title=title, xlabel="step")
            ax.legend()
        fig.tight_layout()


def logps_figure(histories: dict[str, list[dict]], ctx) -> None:
    """What moved: the policy's log-probs of the chosen and the rejected held-out responses."""
    with figure(ctx, "logps", figsize=(7, 4.5)) as (fig, ax):
        for (name, rows), color in zip(histories.items(), ("C0", "C1", "C2"), strict=False):
            steps = [r["step"] for r in rows]
            ax.plot(steps, [r["logp_chosen"] for r in rows], color=color, label=f"{name} chosen")
            ax.plot(steps, [r["logp_rejected"] for r in rows], color=color, ls="--",
                    label=f"{name} rejected")  # fmt: skip
        ax.set(xlabel="step", ylabel="mean summed log-prob (held-out pairs)",
               title="log pi(response | prompt) of chosen and rejected responses")  # fmt: skip
        ax.legend()
        fig.tight_layout()


def win_figure(rows: list[dict], ctx) -> None:
    """Per-prompt outcomes against the SFT policy: wins, ties (both right / both wrong), losses."""
    parts = ("wins", "ties_right", "ties_wrong", "losses")
    colors = ("tab:green", "tab:olive", "lightgrey", "tab:red")
    with figure(ctx, "win_rate", figsize=(7, 3.5)) as (fig, ax):
        left = np.zeros(len(rows))
        for key, color in zip(parts, colors, strict=True):
            vals = np.array([r[key] for r in rows], float)
            ax.barh([r["method"] for r in rows], vals, left=left, color=color, label=key)
            left += vals
        ax.set(xlabel="held-out prompts", title="against the SFT policy, judged by the checker")
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
