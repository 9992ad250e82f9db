"""The experiments of the mixture-of-experts runner: Shakespeare as character ids, one timed
training run of a dense or an MoE char-gpt (validation curve, expert load per step), the library
check of the balance loss, and the two figures. Split from the runner to keep each file short."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from transformers.models.switch_transformers.modeling_switch_transformers import (
    load_balancing_loss_func,
)

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure
from airoad.transformer import char_gpt
from airoad.transformer import gpt_training as train_ref
from airoad.transformer import mixture_of_experts as ref

Config = Any  # the runner's Config; only its fields are read here


def shakespeare(config: Config) -> tuple[torch.Tensor, torch.Tensor, int]:
    """char-gpt's data: the works in title order as character ids, the last val_fraction held
    out; returns train ids, held-out ids and the vocabulary size."""
    works = load("shakespeare")
    text = "\n".join(works[name] for name in sorted(works))[: config.text_chars or None]
    vocab = train_ref.CharVocab(text)
    ids = vocab.encode(text)
    cut = int(round(len(ids) * (1.0 - config.val_fraction)))
    if len(ids) - cut <= config.val_chars:
        raise ConfigError(
            f"config key 'val_chars' is {config.val_chars}; the held-out part has only "
            f"{len(ids) - cut} characters (raise text_chars or lower val_chars)"
        )
    return ids[:cut], ids[cut:], len(vocab.chars)


def build(kind: str, config: Config, vocab_size: int) -> torch.nn.Module:
    """A seeded dense GPT, or the MoE GPT with the same attention and embeddings."""
    gpt = char_gpt.GPTConfig(
        vocab_size, config.block_size, config.n_layer, config.n_head, config.n_embd
    )
    torch.manual_seed(config.seed)
    if kind == "dense":
        return char_gpt.GPT(gpt)
    moe = ref.MoEConfig(
        n_experts=config.n_experts,
        k=config.top_k,
        capacity_factor=config.capacity_factor,
        hidden=expert_hidden(config),
        balance_coef=config.balance_coef,
        z_coef=config.z_coef,
        noise_std=config.noise_std,
    )
    return ref.MoEGPT(gpt, moe)


def expert_hidden(config: Config) -> int:
    """Each expert's width: 4C / k unless set, so k experts hold one dense MLP's weights."""
    return config.expert_hidden or 4 * config.n_embd // config.top_k


@contextmanager
def eval_capacity(model: torch.nn.Module, factor: float) -> Iterator[None]:
    """Every MoE layer uses ``factor`` inside the block (Switch evaluates with a larger one)."""
    layers = [m for m in model.modules() if isinstance(m, ref.MoE)]
    before = [m.capacity_factor for m in layers]
    for m in layers:
        m.capacity_factor = factor
    try:
        yield
    finally:
        for m, f in zip(layers, before):
            m.capacity_factor = f


def _load_row(model: torch.nn.Module, step: int) -> list[dict]:
    """Each MoE layer's share of kept assignments per expert and its drop rate, this step."""
    rows = []
    for layer, m in enumerate(getattr(model, "moe_layers", list)()):
        tokens, dropped = m.stats["tokens"].double(), float(m.stats["dropped"])
        routed = float(tokens.sum()) + dropped
        row = {"step": step, "layer": layer, "drop_rate": dropped / routed}
        rows.append(row | {f"expert_{e}": float(t) / routed for e, t in enumerate(tokens)})
    return rows


def train(
    kind: str, steps: int, train_ids, val_ids, vocab_size: int, config: Config, ctx: RunContext
) -> dict:
    """One run of ``steps`` AdamW steps (char-gpt's schedule, clipping and batches, seeded).

    Returns the model, its curve (held-out loss on the curve slice every eval_every steps,
    against steps and training seconds, wall and CPU, evaluation excluded) and, for an MoE, the
    expert load of every step.
    """
    model = build(kind, config, vocab_size)
    opt = train_ref.make_optimizer(model, config.max_lr, config.weight_decay)
    cfg = train_ref.TrainConfig(
        config.batch_size, config.block_size, config.max_lr, config.min_lr,
        config.warmup_steps, steps, config.weight_decay, config.grad_clip,
        config.precision == "bf16",
    )  # fmt: skip
    gen, curve_ids = torch.Generator().manual_seed(config.seed), val_ids[: config.curve_chars + 1]
    curve, load_rows, seconds, cpu_seconds, losses = [], [], 0.0, 0.0, []
    bounds = sorted({*range(0, steps, config.eval_every), steps})
    for start, stop in ctx.track(list(zip(bounds, bounds[1:])), f"training {kind} ({steps} steps)"):
        for step in range(start, stop):
            tic, cpu_tic = time.perf_counter(), time.process_time()
            losses += train_ref.train_steps(model, opt, train_ids, cfg, gen, step, step + 1)
            seconds += time.perf_counter() - tic
            cpu_seconds += time.process_time() - cpu_tic
            load_rows += _load_row(model, step)
        with eval_capacity(model, config.eval_capacity_factor):
            val = train_ref.evaluate(model, curve_ids, config.block_size)
        curve.append({"run": kind, "step": stop, "seconds": seconds, "cpu_seconds": cpu_seconds,
                      "val_loss": val, "train_loss": float(np.mean(losses[start:stop]))})  # fmt: skip
    return {"model": model, "curve": curve, "load": load_rows, "steps": steps,
            "seconds": seconds, "cpu_seconds": cpu_seconds}  # fmt: skip


def score(run: dict, val_ids: torch.Tensor, config: Config) -> dict:
    """The final held-out loss on the first val_chars characters and the run's throughput."""
    model = run["model"]
    with eval_capacity(model, config.eval_capacity_factor):
        val = train_ref.evaluate(model, val_ids[: config.val_chars + 1], config.block_size)
    counts = ref.parameter_counts(model)
    tokens = run["steps"] * config.batch_size * config.block_size
    late = [r["drop_rate"] for r in run["load"] if r["step"] >= run["steps"] // 2]
    return {
        "val_loss": val,
        "steps": run["steps"],
        "train_seconds": run["seconds"],
        "train_cpu_seconds": run["cpu_seconds"],
        "tokens_per_s": tokens / run["seconds"],
        "tokens_per_cpu_s": tokens / run["cpu_seconds"],
        "total_params": counts["total"],
        "active_params": counts["active"],
        "drop_rate_2nd_half": float(np.mean(late)) if late else 0.0,
    }


def balance_check(model: ref.MoEGPT, val_ids: torch.Tensor, config: Config) -> dict:
    """Block 0's router on real held-out windows: our balance loss vs transformers' (top-1 only)
    and the share of tokens each expert would take with no capacity limit."""
    x = val_ids[: 8 * config.block_size].view(8, config.block_size)
    block = model.blocks[0]
    with torch.no_grad():
        h = model.wte(x) + model.wpe(torch.arange(config.block_size))
        h = block.ln_2(h + block.attn(block.ln_1(h))).reshape(-1, config.n_embd)
        probs, _, chosen = ref.top_k_routing(block.mlp.router(h), config.top_k)
        ours = float(ref.load_balancing_loss(probs, chosen))
        hf = float(load_balancing_loss_func(probs[None], chosen[None])) / config.top_k
    share = torch.bincount(chosen.reshape(-1), minlength=config.n_experts) / chosen.numel()
    return {
        "balance_loss_layer0": ours,
        "balance_loss_transformers_diff": abs(ours - hf),
        "max_expert_share_layer0": float(share.max()),
    }


def loss_figure(curves: list[dict], clock: str, ctx: RunContext) -> None:
    """Held-out loss against optimizer steps (left) and against training seconds (right)."""
    time_key = "cpu_seconds" if clock == "cpu" else "seconds"
    with figure(ctx, "val_loss_vs_time", 1, 2, figsize=(11, 4.2), sharey=True) as (_, axes):
        for run in dict.fromkeys(c["run"] for c in curves):
            rows = [c for c in curves if c["run"] == run]
            for ax, key in zip(axes, ("step", time_key)):
                ax.plot(
                    [r[key] for r in rows], [r["val_loss"] for r in rows], "o-", ms=3, label=run
                )
        axes[0].set(xlabel="optimizer step", ylabel="held-out loss (nats/char)",
                    title="equal steps")  # fmt: skip
        axes[1].set(xlabel=f"training {clock} seconds (evaluation excluded)", title="equal time")
        axes[1].legend()
        low = min(c["val_loss"] for c in curves)
        axes[0].set_ylim(low - 0.05, low + 1.0)  # the interesting end of the curves


def load_figure(load_rows: list[dict], config: Config, ctx: RunContext) -> None:
    """Per layer: each expert's share of assignments (stacked) and the drop rate, over steps."""
    n = config.n_layer
    with figure(ctx, "expert_utilisation", 1, n, figsize=(3.2 * n, 3.6), sharey=True) as (
        _,
        axes,
    ):
        axes = np.atleast_1d(axes)
        window = max(1, config.eval_every // 4)  # a moving average over steps
        for layer, ax in enumerate(axes):
            rows = [r for r in load_rows if r["layer"] == layer]
            steps = [r["step"] for r in rows][window - 1 :]
            shares = [
                _smooth([r[f"expert_{e}"] for r in rows], window) for e in range(config.n_experts)
            ]
            ax.stackplot(
                steps, shares, labels=[f"expert {e}" for e in range(config.n_experts)], alpha=0.8
            )
            drops = _smooth([r["drop_rate"] for r in rows], window)
            ax.plot(steps, drops, "k--", lw=1.5, label="dropped")
            ax.set(title=f"block {layer}", xlabel="optimizer step", ylim=(0, 1))
        axes[0].set_ylabel("share of routed assignments")
        axes[-1].legend(fontsize=7, loc="lower right")


def _smooth(values: list[float], window: int) -> np.ndarray:
    return np.convolve(values, np.ones(window) / window, mode="valid")
