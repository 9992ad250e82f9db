"""Parts of the reward-model runner: rewards by kind of response, best-of-n reranking of the SFT
policy's samples by the reward model, and the four figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from airoad.alignment import reward_model as ref
from airoad.alignment import tiny_lm, tiny_task
from airoad.alignment.tiny_lm import Pair
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure

KINDS = ("correct", "wrong sample", "format-broken")


def kind_of(pair: Pair) -> str:
    """'format-broken' when the rejected answer is one of the two broken copies of the right
    answer, else 'wrong sample' (a wrong answer the policy itself sampled)."""
    broken = {ref.format_broken(pair.problem, kind) for kind in (0, 1)}
    return "format-broken" if pair.rejected in broken else "wrong sample"


def accuracy_by_kind(pairs: Sequence[Pair], r_c: torch.Tensor, r_r: torch.Tensor) -> dict:
    """Held-out pairwise accuracy of the policy's own mistakes and of the format-broken pairs."""
    kinds = np.array([kind_of(p) for p in pairs])
    out = {}
    for kind, key in (("wrong sample", "sample_pair_accuracy"), ("format-broken", "format_pair_accuracy")):  # fmt: skip
        pick = torch.from_numpy(kinds == kind)
        out[key] = ref.pairwise_accuracy(r_c[pick], r_r[pick]) if pick.any() else float("nan")
        out[f"n_{key.split('_')[0]}_pairs"] = int(pick.sum())
    return out


def best_of_n(
    policy, model, items: Sequence[tiny_task.Problem], n: int, seed: int, ctx: RunContext
) -> list[dict]:
    """n samples (temperature 1) per held-out prompt; for each m = 1, 2, 4, ... n: accuracy of
    the first sample, of the one the reward model scores highest among the first m, and of an
    oracle that picks a correct one whenever there is one (pass@m)."""
    gen = torch.Generator().manual_seed(seed)
    correct, scores = [], []
    for start in ctx.track(range(0, len(items), 250), "best-of-n reranking"):
        chunk = items[start : start + 250]
        prompts = tiny_task.prompt_batch(chunk).repeat_interleave(n, dim=0)
        rollout = tiny_lm.sample(policy, prompts, 1.0, gen)
        correct.append(tiny_lm.rewards([p for p in chunk for _ in range(n)], rollout).view(-1, n))
        mask = torch.cat([torch.ones_like(rollout.prompts, dtype=torch.bool), rollout.mask], 1)
        scores.append(ref.rewards_of(model, rollout.ids, mask).view(-1, n))
    correct, scores = torch.cat(correct), torch.cat(scores)
    rows, m = [], 1
    while m <= n:
        pick = scores[:, :m].argmax(1)
        rows.append({
            "n": m, "first_sample": float(correct[:, 0].mean()),
            "reward_model_pick": float(correct[torch.arange(len(correct)), pick].mean()),
            "oracle": float(correct[:, :m].amax(1).mean()),
        })  # fmt: skip
        m *= 2
    return rows


def rewards_by_kind(pairs: Sequence[Pair], r_c: torch.Tensor, r_r: torch.Tensor) -> dict:
    """Rewards of the held-out responses grouped as correct / wrong sample / format-broken."""
    kinds = np.array([kind_of(p) for p in pairs])
    return {
        "correct": r_c.numpy(),
        "wrong sample": r_r.numpy()[kinds == "wrong sample"],
        "format-broken": r_r.numpy()[kinds == "format-broken"],
    }


# ------------------------------------------------------------------ figures


def loss_figure(tiny_losses: Sequence[float], real_losses: Sequence[float], ctx: RunContext) -> None:  # fmt: skip
    """Bradley-Terry training loss per step (a moving average over 20 steps) at both scales."""
    with figure(ctx, "training_loss", 1, 2, figsize=(10, 3.6)) as (_, axes):
        for ax, losses, title in ((axes[0], tiny_losses, "tiny GPT backbone"), (axes[1], real_losses, "SmolLM2 + LoRA")):  # fmt: skip
            ax.set_title(title)
            if len(losses):
                w = min(20, len(losses))
                ax.plot(np.arange(len(losses)), losses, color="0.8", lw=0.8, label="per step")
                smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
                ax.plot(np.arange(w - 1, len(losses)), smooth, label=f"mean of {w}")
                ax.legend()
            else:
                ax.text(0.5, 0.5, "not run (real = false)", ha="center", transform=ax.transAxes)
            ax.axhline(np.log(2), ls="--", color="k", lw=0.8)  # the loss of a reward that is blind
            ax.set_xlabel("step")
            ax.set_ylabel("-log sigmoid(r_c - r_r)")


def calibration_figure(curves: dict[str, torch.Tensor], n_bins: int, ctx: RunContext) -> None:
    """Predicted P(chosen > rejected) in bins (both orders of each pair) against how often it
    happened, one line per scale; the bars are the tiny model's bin counts."""
    with figure(ctx, "calibration", 1, 2, figsize=(10, 4)) as (_, (ax, hist)):
        ax.plot([0, 1], [0, 1], ls="--", color="k", lw=0.8, label="perfect calibration")
        for name, p in curves.items():
            mean_pred, observed, count = ref.calibration(p, n_bins)
            full = count > 0
            ece = ref.expected_calibration_error(p, n_bins)
            ax.plot(mean_pred[full], observed[full], "o-", label=f"{name} (ECE {ece:.3f})")
        ax.set_xlabel("predicted P(first > second)")
        ax.set_ylabel("observed frequency")
        ax.legend()
        first = next(iter(curves.values()))
        hist.hist(first.numpy(), bins=40, range=(0, 1))
        hist.set_xlabel(f"P(chosen > rejected), {next(iter(curves))}")
        hist.set_ylabel("held-out pairs")


def reward_figure(groups: dict[str, np.ndarray], ctx: RunContext) -> None:
    """Histograms of the tiny reward model's scores for each kind of held-out response."""
    with figure(ctx, "rewards_by_kind", figsize=(6.5, 4)) as (_, ax):
        values = np.concatenate([g for g in groups.values() if len(g)])
        bins = np.linspace(values.min(), values.max(), 50)
        for kind in KINDS:
            if len(groups[kind]):
                ax.hist(groups[kind], bins=bins, alpha=0.5, density=True, label=f"{kind} ({len(groups[kind])})")  # fmt: skip
        ax.set_xlabel("reward")
        ax.set_ylabel("density")
        ax.legend()


def best_of_figure(rows: Sequence[dict], greedy: float, ctx: RunContext) -> None:
    """Task accuracy when the reward model picks the best of n samples, against one sample,
    the oracle (any correct) and the greedy answer."""
    with figure(ctx, "best_of_n", figsize=(6.5, 4)) as (_, ax):
        n = [r["n"] for r in rows]
        for key, label in (("reward_model_pick", "reward model picks"), ("oracle", "oracle (pass@n)"), ("first_sample", "one sample")):  # fmt: skip
            ax.plot(n, [r[key] for r in rows], "o-", label=label)
        ax.axhline(greedy, ls="--", color="k", lw=0.8, label="greedy SFT")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("samples per prompt (n)")
        ax.set_ylabel("held-out task accuracy")
        ax.legend()


def real_best_of_n(model, tokenizer, items: Sequence[tiny_task.Problem], n: int, seed: int, ctx: RunContext) -> dict:  # fmt: skip
    """SmolLM2's own replies (n per prompt at temperature 1, plus the greedy one), judged by the
    checker and ranked by the SmolLM2 reward model. Generation uses a fresh copy of SmolLM2:
    the reward model's decoder carries LoRA adapters."""
    from airoad.data.models import load_smollm2
    from airoad.labs.runners.dpo_parts import real_sample  # the dpo lab's batched sampler

    lm = load_smollm2()[0]
    greedy, correct, scores = 0, [], []
    for start in ctx.track(range(0, len(items), 25), "SmolLM2 best-of-n"):
        chunk = items[start : start + 25]
        greedy += sum(tiny_task.check_text(p, t) for p, t in zip(chunk, real_sample(lm, tokenizer, chunk, 8, 0.0, 0)[1]))  # fmt: skip
        many = [p for p in chunk for _ in range(n)]
        texts = [t.strip() for t in real_sample(lm, tokenizer, many, 8, 1.0, seed + start)[1]]
        correct.append(torch.tensor([float(tiny_task.check_text(p, t)) for p, t in zip(many, texts)]).view(-1, n))  # fmt: skip
        scores.append(ref.rewards_of(model, *ref.real_encode(tokenizer, many, texts), 32).view(-1, n))  # fmt: skip
    correct, scores = torch.cat(correct), torch.cat(scores)
    pick = correct[torch.arange(len(correct)), scores.argmax(1)]
    return {
        "real_greedy_accuracy": greedy / len(items), "real_one_sample_accuracy": float(correct[:, 0].mean()),
        "real_best_of_accuracy": float(pick.mean()), "real_oracle_accuracy": float(correct.amax(1).mean()),
        "n_real_best_of": len(items),
    }  # fmt: skip
