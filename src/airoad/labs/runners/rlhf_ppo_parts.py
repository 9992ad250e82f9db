"""The PPO loop, the two scales and the figures of the rlhf-ppo runner.

``ppo_update`` is the part both scales share: from one batch of sampled responses (old
log-probs, values and reference log-probs already recorded) it builds the KL-shaped rewards,
GAE advantages (whitened) and returns, then runs ``ppo_epochs`` passes of shuffled minibatches.
A scale only supplies ``evaluate(idx) -> (logp, values)`` for a minibatch of rows.

- tiny: the cached SFT char-gpt with a value head on its hidden states, the frozen SFT copy as
  reference, the cached Bradley-Terry reward model (``reward_model_cache.load_tiny_reward_model``) as
  the score; the task's checker is measured beside it but never optimised.
- real: SmolLM2-135M-Instruct with LoRA adapters (peft) on q/v projections, a value head on its
  last hidden states, the reference = the same model with the adapters switched off, and the
  SmolLM2 reward model (``reward_model_cache.load_real_reward_model``) as the score; the checker
  (``tiny_task.check_text``) is measured beside it.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from airoad.alignment import reward_model, tiny_lm, tiny_task
from airoad.alignment import rlhf_ppo as ref
from airoad.alignment.tiny_task import Problem
from airoad.labs.kit import figure

Evaluate = Callable[[Tensor], tuple[Tensor, Tensor]]


def ppo_update(
    cfg, opt, params, evaluate: Evaluate, mask, old_logp, old_values, ref_logp, scores, beta, gen
) -> dict[str, float]:
    """KL-shaped rewards -> GAE -> ``cfg.ppo_epochs`` x minibatches of the clipped PPO loss.
    Returns the batch's statistics (KL estimators summed over each response, then averaged)."""
    rewards = ref.shaped_rewards(scores, old_logp, ref_logp, mask, beta)
    adv, returns = ref.advantages_and_returns(rewards, old_values, mask, cfg.gamma, cfg.lam)
    adv = ref.masked_whiten(adv, mask)
    kl = ref.kl_estimators(old_logp, ref_logp)
    stats: dict[str, list[float]] = {"policy": [], "value": [], "clipfrac": [], "approx_kl": []}
    n = mask.shape[0]
    for _ in range(cfg.ppo_epochs):
        for idx in torch.randperm(n, generator=gen).split(cfg.minibatch):
            logp, values = evaluate(idx)
            out = ref.ppo_losses(logp, values, old_logp[idx], old_values[idx], adv[idx],
                                 returns[idx], mask[idx], cfg.clip, cfg.value_clip or None,
                                 cfg.vf_coef)  # fmt: skip
            opt.zero_grad(set_to_none=True)
            out["loss"].backward()
            nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            for k in stats:
                stats[k].append(out[k].item())
    m = mask.to(old_logp.dtype)
    return {**{k: float(np.mean(v)) for k, v in stats.items()},
            **{f"kl_{k}": float((v * m).sum(1).mean()) for k, v in kl.items()},
            "length": float(m.sum(1).mean())}  # fmt: skip


# ------------------------------------------------------------------ tiny scale


def rm_scores(rm: reward_model.RewardModel, roll: tiny_lm.Rollout) -> Tensor:
    """The reward model's score (B,) of each prompt + response (its mask covers the prompt)."""
    mask = torch.cat([torch.ones_like(roll.prompts, dtype=torch.bool), roll.mask], 1)
    with torch.no_grad():
        return rm(roll.ids, mask)


def evaluate_tiny(policy, rm, items: Sequence[Problem], batch: int = 500) -> dict[str, float]:
    """Greedy held-out accuracy (the checker) and mean reward-model score of the same replies."""
    right, score = 0.0, 0.0
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        roll = tiny_lm.sample(policy, tiny_task.prompt_batch(chunk), 0.0)
        right += float(tiny_lm.rewards(chunk, roll).sum())
        score += float(rm_scores(rm, roll).sum())
    return {"accuracy": right / len(items), "rm_score": score / len(items)}


def train_tiny(cfg, sft, rm, beta: float, held: Sequence[Problem], track, bias: float = 0.0):
    """PPO from the SFT policy at KL coefficient beta, optimising the RM score minus ``bias``
    (the SFT policy's mean score, so its replies start near 0 and the value head starts close);
    one curve row per iteration (sampled responses: raw RM score, checker accuracy, KL, ...)
    and greedy held-out checkpoints."""
    torch.manual_seed(cfg.seed)
    model = ref.PolicyWithValue(copy.deepcopy(sft)).eval()  # no dropout anywhere
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    train = tiny_task.problems(cfg.iterations * cfg.batch, seed=cfg.seed + 50_000)
    rows, checks = [], [{"iteration": 0, **evaluate_tiny(model.policy, rm, held[: cfg.n_curve])}]
    for it in track(range(cfg.iterations), f"PPO, beta = {beta}"):
        items = train[it * cfg.batch : (it + 1) * cfg.batch]
        roll = tiny_lm.sample(model.policy, tiny_task.prompt_batch(items), cfg.temperature, gen)
        with torch.no_grad():
            old_logp, old_v = ref.response_logprobs_values(model, roll.prompts, roll.responses, roll.mask)  # fmt: skip
            ref_logp = tiny_lm.response_logprobs(sft, roll)
        scores = rm_scores(rm, roll)

        def evaluate(idx: Tensor, roll=roll) -> tuple[Tensor, Tensor]:
            return ref.response_logprobs_values(model, roll.prompts[idx], roll.responses[idx], roll.mask[idx])  # fmt: skip

        stats = ppo_update(cfg, opt, list(model.parameters()), evaluate, roll.mask, old_logp,
                           old_v, ref_logp, scores - bias, beta, gen)  # fmt: skip
        rows.append({"beta": beta, "iteration": it + 1, "rm_score": float(scores.mean()),
                     "accuracy": float(tiny_lm.rewards(items, roll).mean()), **stats})  # fmt: skip
        if (it + 1) % cfg.eval_every == 0 or it + 1 == cfg.iterations:
            checks.append({"iteration": it + 1, **evaluate_tiny(model.policy, rm, held[: cfg.n_curve])})  # fmt: skip
    final = evaluate_tiny(model.policy, rm, held)
    return {"beta": beta, "rows": rows, "checks": checks, "final": final, "policy": model.policy}


# ------------------------------------------------------------------ real scale (SmolLM2 + LoRA)


class RealPolicy(nn.Module):
    """A (peft-wrapped) causal LM and a value head Linear(hidden, 1) on its last hidden states."""

    def __init__(self, lm: nn.Module, hidden: int) -> None:
        super().__init__()
        self.lm = lm
        self.value_head = nn.Linear(hidden, 1)
        nn.init.zeros_(self.value_head.weight)
        nn.init.zeros_(self.value_head.bias)

    def forward(self, ids: Tensor, attn: Tensor, p: int, responses: Tensor, mask: Tensor):
        """(log-probs, values) of the response tokens, (B, R), 0 off mask. Prompts are
        left-padded, so positions count real tokens only."""
        pos = (attn.long().cumsum(1) - 1).clamp_min(0)
        out = self.lm(input_ids=ids[:, :-1], attention_mask=attn[:, :-1], position_ids=pos[:, :-1],
                      output_hidden_states=True)  # fmt: skip
        logp = torch.log_softmax(out.logits[:, p - 1 :].float(), -1)
        picked = logp.gather(-1, responses.unsqueeze(-1)).squeeze(-1)
        values = self.value_head(out.hidden_states[-1][:, p - 1 :]).squeeze(-1)
        return picked * mask, values * mask


def real_prompts(tok, items: Sequence[Problem]) -> tuple[Tensor, Tensor]:
    """Left-padded chat prompts (B, P) and their attention mask."""
    texts = [tok.apply_chat_template(tiny_task.real_messages(p), add_generation_prompt=True,
                                     tokenize=False) for p in items]  # fmt: skip
    enc = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"].bool()


def real_generate(lm, tok, items, max_new: int, temperature: float, seed: int):
    """(prompts, prompt attention, responses (B, R) padded after the first eos, mask, texts)."""
    ids, attn = real_prompts(tok, items)
    torch.manual_seed(seed)  # HF sampling draws from the global generator
    with torch.no_grad():
        # sample from the full distribution (no top-k / top-p cut): PPO's ratios assume it
        how = {"do_sample": True, "temperature": temperature, "top_k": 0, "top_p": 1.0}
        out = lm.generate(input_ids=ids, attention_mask=attn, max_new_tokens=max_new,
                          pad_token_id=tok.pad_token_id,
                          **(how if temperature > 0 else {"do_sample": False}))  # fmt: skip
    responses = out[:, ids.shape[1] :]
    mask = tiny_lm.response_mask(responses, tok.eos_token_id)
    responses = responses.masked_fill(~mask, tok.pad_token_id)
    texts = tok.batch_decode(responses, skip_special_tokens=True)
    return ids, attn, responses, mask, texts


def real_evaluate(lm, tok, items, max_new: int, score, batch: int = 50) -> dict[str, float]:
    """Greedy replies: accuracy under the real-scale checker and their mean ``score``."""
    right, total = 0.0, 0.0
    for i in range(0, len(items), batch):
        chunk = items[i : i + batch]
        texts = real_generate(lm, tok, chunk, max_new, 0.0, 0)[-1]
        right += float(check_scores(chunk, texts).sum())
        total += float(score(chunk, texts).sum())
    return {"accuracy": right / len(items), "score": total / len(items)}


def add_lora(lm, rank: int):
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.0,
                        target_modules=["q_proj", "v_proj"])  # fmt: skip
    return get_peft_model(lm, config)


def check_scores(items: Sequence[Problem], texts: Sequence[str]) -> Tensor:
    """1 where the reply's first integer is the sum (``tiny_task.check_text``), else 0."""
    return torch.tensor([float(tiny_task.check_text(p, t)) for p, t in zip(items, texts)])


def real_rm_scorer(rm, rm_tok):
    """``score(items, texts)``: the SmolLM2 reward model's score (B,) of each whole chat."""

    def score(items: Sequence[Problem], texts: Sequence[str]) -> Tensor:
        return reward_model.rewards_of(rm, *reward_model.real_encode(rm_tok, items, texts))

    return score


def train_real(cfg, lm, tok, held: Sequence[Problem], track, score=check_scores) -> dict:
    """PPO on the LoRA adapters + value head, reward = ``score(items, texts)`` (B,) (the
    SmolLM2 reward model in the runner); the checker's accuracy is measured beside it, greedy on
    ``held`` before and after and on the sampled replies of every iteration."""
    torch.manual_seed(cfg.seed)
    before = real_evaluate(lm, tok, held, cfg.real_max_new, score)
    model = RealPolicy(add_lora(lm, cfg.real_rank), lm.config.hidden_size)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.real_lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    train = tiny_task.problems(cfg.real_iterations * cfg.real_batch, cfg.seed + 60_000, digits=2)
    rows = []
    for it in track(range(cfg.real_iterations), "PPO on SmolLM2 + LoRA"):
        items = train[it * cfg.real_batch : (it + 1) * cfg.real_batch]
        ids, attn, resp, mask, texts = real_generate(model.lm, tok, items, cfg.real_max_new,
                                                     cfg.temperature, cfg.seed + it)  # fmt: skip
        full, p = torch.cat([ids, resp], 1), ids.shape[1]
        full_attn = torch.cat([attn, mask], 1)
        with torch.no_grad():
            old_logp, old_v = model(full, full_attn, p, resp, mask)
            with model.lm.disable_adapter():
                ref_logp, _ = model(full, full_attn, p, resp, mask)
        scores = score(items, texts)

        def evaluate(idx: Tensor, full=full, full_attn=full_attn, resp=resp, mask=mask, p=p):
            return model(full[idx], full_attn[idx], p, resp[idx], mask[idx])

        stats = ppo_update(cfg, opt, params, evaluate, mask, old_logp, old_v, ref_logp, scores,
                           cfg.real_beta, gen)  # fmt: skip
        rows.append({"iteration": it + 1, "reward": float(scores.mean()),
                     "accuracy": float(check_scores(items, texts).mean()), **stats})  # fmt: skip
    after = real_evaluate(model.lm, tok, held, cfg.real_max_new, score)
    return {"before": before, "after": after, "rows": rows}


# ------------------------------------------------------------------ figures


def smooth(values: Sequence[float], window: int = 9) -> np.ndarray:
    """Moving average over up to ``window`` iterations (shorter at the start)."""
    v = np.asarray(values, dtype=float)
    c = np.cumsum(np.insert(v, 0, 0.0))
    lo = np.maximum(np.arange(1, len(v) + 1) - window, 0)
    return (c[1:] - c[lo]) / (np.arange(1, len(v) + 1) - lo)


def curves_figure(runs: list[dict], ctx) -> None:
    """Per iteration, one line per beta (moving average of 9): RM score and checker accuracy of
    the sampled responses, and the KL to the SFT policy (k1 and k3 summed over each response)."""
    with figure(ctx, "reward_and_kl", ncols=3, figsize=(13, 3.8)) as (fig, axes):
        for run in runs:
            it, rows = [r["iteration"] for r in run["rows"]], run["rows"]
            label = f"beta = {run['beta']:g}"
            axes[0].plot(it, smooth([r["rm_score"] for r in rows]), label=label)
            line = axes[1].plot(it, smooth([r["accuracy"] for r in rows]), label=label)[0]
            axes[2].plot(it, smooth([r["kl_k1"] for r in rows]), color=line.get_color(), label=f"{label}: k1")  # fmt: skip
            axes[2].plot(it, smooth([r["kl_k3"] for r in rows]), color=line.get_color(), ls="--", label=f"{label}: k3")  # fmt: skip
        axes[0].set(xlabel="PPO iteration", ylabel="reward-model score", title="what PPO optimises")  # fmt: skip
        axes[1].set(xlabel="PPO iteration", ylabel="checker accuracy (sampled)", title="what we want")  # fmt: skip
        axes[2].set(xlabel="PPO iteration", ylabel="KL to SFT (nats / response)", title="drift from the SFT policy")  # fmt: skip
        for ax in axes:
            ax.legend(fontsize=7)


def hacking_figure(runs: list[dict], ctx) -> None:
    """Greedy held-out checkpoints: RM score (x) against checker accuracy (y), one path per
    beta from the SFT start; reward hacking is a path that goes right but not up."""
    with figure(ctx, "reward_hacking", figsize=(6.5, 4.5)) as (fig, ax):
        for run in runs:
            xs = [c["rm_score"] for c in run["checks"]]
            ys = [c["accuracy"] for c in run["checks"]]
            ax.plot(xs, ys, marker="o", ms=3, label=f"beta = {run['beta']:g}")
            ax.annotate(f"it {run['checks'][-1]['iteration']}", (xs[-1], ys[-1]), fontsize=7)
        ax.scatter([xs[0]], [ys[0]], color="black", zorder=3, label="SFT start")
        ax.set(xlabel="mean reward-model score (greedy, held-out)",
               ylabel="checker accuracy (greedy, held-out)",
               title="Reward model vs the real goal during PPO")  # fmt: skip
        ax.legend(fontsize=8)
