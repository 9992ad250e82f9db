"""Runner for transformer-block: the block's parts beside torch's, then pre-LN against post-LN
as a small character language model on Shakespeare, trained without warm-up at a sweep of
learning rates.

Part 1 copies weights into ``nn.LayerNorm``, ``nn.RMSNorm`` and ``nn.TransformerEncoderLayer``
(both ``norm_first`` settings) and compares values and gradients in float64 on embedded
Shakespeare windows, and checks that RoPE scores depend only on the offset.
Part 2 trains the same seeded model as post-LN and as pre-LN at every learning rate (Adam,
constant rate, no warm-up, no clipping, the same batches, the loss and gradient norm of every
step kept), trains the best pre-LN run again with torch's encoder layers as the library twin,
and compares the four position encodings at one learning rate."""

from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes, thread_limit, validate_config
from airoad.labs.runners.transformer_block_figures import (
    early_training_figure,
    positions_figure,
    stability_figure,
)
from airoad.labs.runners.transformer_block_parts import parts_vs_torch, rope_offsets
from airoad.transformer import transformer_block as ref

POSITIONS = ("sinusoidal", "learned", "rope", "none")


@dataclass(frozen=True)
class Config:
    text_chars: int = param(0, ge=0)  # 0 = the whole corpus (about 5 M characters)
    val_fraction: float = param(0.1, gt=0.0, le=0.5)
    val_chars: int = param(
        20_000, ge=1, le=200_000
    )  # the fixed validation slice every curve is scored on
    d_model: int = param(64, ge=2, le=1024)
    n_heads: int = param(4, ge=1, le=64)
    n_layers: int = param(8, ge=1, le=48)
    d_ff: int = param(256, ge=1, le=8192)
    seq_len: int = param(64, ge=2, le=1024)
    batch_size: int = param(16, ge=1, le=1024)
    steps: int = param(200, ge=1, le=100_000)
    lrs: tuple[float, ...] = param((1e-3, 3e-3, 1e-2, 3e-2), gt=0.0, le=1.0)
    position: str = param("learned", choices=("sinusoidal", "learned", "none"))  # for the sweep
    activation: str = param("gelu", choices=("relu", "gelu"))
    positions_lr: float = param(3e-3, gt=0.0, le=1.0)  # the lr of the position-encoding runs
    eval_every: int = param(50, ge=1)
    check_batch: int = param(4, ge=1, le=256)  # windows in the ours-vs-torch check
    # One thread: this model is too small for a second one to help (68 vs 70 ms per step,
    # measured idle), and on a shared machine it only adds waiting.
    threads: int = param(1, ge=1, le=64)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ConfigError(
                f"config keys 'd_model' ({self.d_model}) and 'n_heads' ({self.n_heads}): the "
                "head width d_model / n_heads must be a whole, even number (RoPE rotates pairs)"
            )
        if self.val_chars <= self.seq_len:
            raise ConfigError(
                f"config key 'val_chars' is {self.val_chars}; it must exceed seq_len "
                f"({self.seq_len}) to hold one validation window"
            )


QUICK = {
    "text_chars": 300_000,
    "val_chars": 4_000,
    "d_model": 32,
    "n_heads": 2,
    "n_layers": 6,
    "d_ff": 64,
    "seq_len": 32,
    "batch_size": 8,
    "steps": 30,
    "lrs": (1e-3, 3e-2),
    "positions_lr": 1e-3,
    "eval_every": 10,
    "check_batch": 2,
}

NOTES = (
    "Our block equals nn.TransformerEncoderLayer to {block_max_abs_diff_out:.1e} (values) and "
    "{block_max_abs_diff_grad:.1e} (gradients) in float64, post-LN and pre-LN; RoPE scores move "
    "by at most {rope_shift_max_abs_diff:.1e} when both positions shift.",
    "{n_layers} layers, no warm-up, {steps} steps: pre-LN is best at lr {pre_ln_best_lr:g} "
    "(validation {pre_ln_best_val_loss:.3f} nats/char), post-LN at lr {post_ln_best_lr:g} "
    "({post_ln_best_val_loss:.3f}); the unigram model scores {unigram_val_loss:.3f}.",
    "{stability_verdict}",
    "torch's encoder layers, same init, batches and lr {pre_ln_best_lr:g}: validation "
    "{torch_pre_ln_val_loss:.3f} (ours {pre_ln_best_val_loss:.3f}); "
    "{ours_ms_per_step:.0f} ms per step for ours, {torch_ms_per_step:.0f} ms for torch's.",
    "Position encodings at lr {positions_lr:g} (pre-LN): {positions_summary}.",
)


# ---------------------------------------------------------------- data


def _shakespeare(config: Config) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """The works in title order as character ids, split by position; the validation slice."""
    works = load("shakespeare")
    text = "\n".join(works[name] for name in sorted(works))
    if config.text_chars:
        text = text[: config.text_chars]
    itos = sorted(set(text))
    lookup = np.zeros(max(map(ord, itos)) + 1, dtype=np.int64)
    lookup[[ord(c) for c in itos]] = np.arange(len(itos))
    ids = torch.from_numpy(lookup[np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)])
    n_train = int(len(ids) * (1 - config.val_fraction))
    val = ids[n_train : n_train + config.val_chars + 1]
    if len(val) <= config.seq_len + 1 or n_train <= config.seq_len + 1:
        raise ConfigError(
            f"config key 'text_chars' is {config.text_chars}: too little text for seq_len "
            f"{config.seq_len} in both the training and the validation part"
        )
    return ids[:n_train], val, itos


def _batch(train: torch.Tensor, config: Config, gen: torch.Generator, size: int = 0):
    """Random windows x (B, T) and their next characters y (B, T); B = size or batch_size."""
    n = size or config.batch_size
    start = torch.randint(0, len(train) - config.seq_len - 1, (n,), generator=gen)
    window = train[start[:, None] + torch.arange(config.seq_len + 1)]
    return window[:, :-1], window[:, 1:]


def _evaluate(model: nn.Module, val: torch.Tensor, seq_len: int) -> float:
    """Mean next-character loss (nats) over non-overlapping windows of the validation slice."""
    n = (len(val) - 1) // seq_len
    x, y = val[: n * seq_len].view(n, seq_len), val[1 : n * seq_len + 1].view(n, seq_len)
    model.eval()
    with torch.no_grad():
        loss = ref.lm_loss(model, x, y).item()  # every window in one batch: val_chars is capped
    model.train()
    return loss


def _unigram_loss(train: torch.Tensor, val: torch.Tensor, vocab: int) -> float:
    """Validation loss of predicting every character from its training frequency alone."""
    counts = torch.bincount(train, minlength=vocab).double() + 0.5
    return float(-(counts / counts.sum()).log()[val[1:]].mean())


def _parts_vs_torch(train: torch.Tensor, vocab: int, config: Config) -> list[dict]:
    """Part 1 (transformer_block_parts) on one seeded batch of Shakespeare windows."""
    gen = torch.Generator().manual_seed(config.seed)
    x_ids, _ = _batch(train, config, gen, size=config.check_batch)
    return parts_vs_torch(x_ids, vocab, config)


# ---------------------------------------------------------------- part 2: training


class _TorchBlock(nn.Module):
    """nn.TransformerEncoderLayer with our block's weights, called the way our LM calls blocks."""

    def __init__(self, block: ref.TransformerBlock, config: Config):
        super().__init__()
        d, h, ff, act = config.d_model, config.n_heads, config.d_ff, config.activation
        self.layer = nn.TransformerEncoderLayer(
            d, h, ff, 0.0, act, batch_first=True, norm_first=block.norm_first
        )
        self.layer.load_state_dict(
            {k.removeprefix("ff."): v for k, v in block.state_dict().items()}
        )

    def forward(self, h: torch.Tensor, causal: bool = True) -> torch.Tensor:
        mask = torch.ones(h.shape[1], h.shape[1], dtype=torch.bool).triu(1)
        return self.layer(h, src_mask=mask, is_causal=True)


def _new_model(vocab: int, config: Config, norm_first: bool, position: str) -> ref.TransformerLM:
    c = config
    return ref.TransformerLM(
        vocab, c.d_model, c.n_heads, c.n_layers, c.d_ff, c.seq_len, position, norm_first,
        c.activation, seed=c.seed,
    )  # fmt: skip


def _train(model: nn.Module, train, val, lr: float, config: Config) -> dict:
    """Adam at a constant lr from step 1 (no warm-up, no clipping); the validation curve.

    A run whose loss turns NaN/inf stops there and is marked diverged.
    """
    gen = torch.Generator().manual_seed(config.seed)  # the same batches for every run
    opt = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.9, 0.98))
    curve = [(0, _evaluate(model, val, config.seq_len))]
    seconds, diverged = 0.0, False  # training time only, the evaluations left out
    losses, grad_norms = [], []
    for step in range(1, config.steps + 1):
        start = time.perf_counter()
        x, y = _batch(train, config, gen)
        loss = ref.lm_loss(model, x, y)
        if not math.isfinite(loss.item()):
            diverged = True
            break
        opt.zero_grad()
        loss.backward()
        grad_norms.append(float(nn.utils.get_total_norm([p.grad for p in model.parameters()])))
        opt.step()
        seconds += time.perf_counter() - start
        losses.append(loss.item())
        if step % config.eval_every == 0 or step == config.steps:
            curve.append((step, _evaluate(model, val, config.seq_len)))
    final = float("nan") if diverged else curve[-1][1]
    run = {"curve": curve, "val_loss": final, "diverged": diverged or not math.isfinite(final)}
    return run | {"seconds": seconds, "train_loss": losses, "grad_norm": grad_norms}


def _stability_sweep(train, val, vocab: int, config: Config, ctx: RunContext) -> list[dict]:
    """Post-LN and pre-LN at every learning rate, from the same seed and on the same batches."""
    runs = [(nf, lr) for nf in (False, True) for lr in config.lrs]
    rows = []
    for norm_first, lr in ctx.track(runs, "post-LN vs pre-LN sweep"):
        model = _new_model(vocab, config, norm_first, config.position)
        out = _train(model, train, val, lr, config)
        rows.append({"layout": "pre-LN" if norm_first else "post-LN", "lr": lr, **out})
    return rows


def _torch_twin(train, val, vocab: int, sweep: list[dict], config: Config, ctx) -> dict:
    """The best pre-LN run again, its blocks replaced by torch's layers (same weights, batches
    and lr); ours is that sweep run."""
    ok = [r for r in sweep if r["layout"] == "pre-LN" and not r["diverged"]]
    ours = min(ok, key=lambda r: r["val_loss"]) if ok else sweep[-1]
    with ctx.step("torch twin (nn.TransformerEncoderLayer)"):
        model = _new_model(vocab, config, True, config.position)
        twin = copy.deepcopy(model)
        twin.blocks = nn.ModuleList(_TorchBlock(b, config) for b in model.blocks)
        x, _ = _batch(train, config, torch.Generator().manual_seed(config.seed))
        with torch.no_grad():
            init_diff = float((model(x) - twin(x)).abs().max())
        out = _train(twin, train, val, ours["lr"], config)
    return {"ours": ours, "torch": out, "lr": ours["lr"], "init_diff": init_diff}


def _positions(train, val, vocab: int, sweep: list[dict], config: Config, ctx: RunContext):
    """Pre-LN at positions_lr with each position encoding (the sweep's run is reused)."""
    same = [r for r in sweep if r["layout"] == "pre-LN" and r["lr"] == config.positions_lr]
    rows = []
    for position in ctx.track(POSITIONS, "position encodings"):
        if same and position == config.position:
            out = same[0]
        else:
            model = _new_model(vocab, config, True, position)
            out = _train(model, train, val, config.positions_lr, config)
        rows.append({"position": position, "val_loss": out["val_loss"], "curve": out["curve"]})
    return rows


# ---------------------------------------------------------------- summary


def _learns(row: dict, unigram: float) -> bool:
    """A run learns when it ends clearly below the unigram model (not just letter frequencies)."""
    return not row["diverged"] and row["val_loss"] < unigram - 0.1


def _first_failing_lr(sweep: list[dict], unigram: float) -> float:
    """The smallest lr where post-LN fails to learn (else the largest lr): the telling one."""
    failing = [r["lr"] for r in sweep if r["layout"] == "post-LN" and not _learns(r, unigram)]
    return min(failing) if failing else max(r["lr"] for r in sweep)


def _summary(parts, rope_diff, sweep, twin, positions, unigram, vocab, config) -> dict:
    blocks = [r for r in parts if r["part"].startswith("block")]
    m: dict = {
        "vocab_size": vocab,
        "unigram_val_loss": unigram,
        "rope_shift_max_abs_diff": rope_diff,
        "block_max_abs_diff_out": max(r["max_abs_diff_out"] for r in blocks),
        "block_max_abs_diff_grad": max(r["max_abs_diff_grad"] for r in blocks),
        "norm_max_abs_diff": max(
            max(r["max_abs_diff_out"], r["max_abs_diff_grad"]) for r in parts if "Norm" in r["part"]
        ),
        "n_lrs": len(config.lrs),
    }
    for layout, key in (("post-LN", "post_ln"), ("pre-LN", "pre_ln")):
        rows = [r for r in sweep if r["layout"] == layout]
        best = min(rows, key=lambda r: r["val_loss"] if not r["diverged"] else math.inf)
        m[f"{key}_best_val_loss"], m[f"{key}_best_lr"] = best["val_loss"], best["lr"]
        m[f"{key}_lrs_that_learn"] = sum(_learns(r, unigram) for r in rows)
    m["torch_pre_ln_val_loss"] = twin["torch"]["val_loss"]
    m["twin_val_loss_abs_diff"] = abs(twin["torch"]["val_loss"] - twin["ours"]["val_loss"])
    m["twin_init_logits_max_abs_diff"] = twin["init_diff"]
    m["ours_ms_per_step"] = 1000 * twin["ours"]["seconds"] / config.steps
    m["torch_ms_per_step"] = 1000 * twin["torch"]["seconds"] / config.steps
    for row in positions:
        m[f"position_{row['position']}_val_loss"] = row["val_loss"]
    return m


def _verdicts(m: dict, positions: list[dict]) -> dict[str, str]:
    """The stability conclusion and the position encodings ranked, as strings for the notes."""
    post, pre, n = m["post_ln_lrs_that_learn"], m["pre_ln_lrs_that_learn"], m["n_lrs"]
    if pre == post:
        verdict = f"Both layouts learn at {pre} of {n} learning rates: no gap in this setting."
    else:
        verdict = f"pre-LN learns at {pre} of {n} learning rates, post-LN at {post}."
    ranked = sorted(positions, key=lambda r: r["val_loss"] if math.isfinite(r["val_loss"]) else 1e9)
    summary = ", ".join(f"{r['position']} {r['val_loss']:.3f}" for r in ranked)
    return {"stability_verdict": verdict, "positions_summary": summary}


# ---------------------------------------------------------------- run


def _tables(parts: list[dict], sweep: list[dict], positions: list[dict]) -> dict:
    keep = ("layout", "lr", "val_loss", "diverged", "seconds")
    return {
        "parts_vs_torch": parts,
        "sweep": [{k: r[k] for k in keep} for r in sweep],
        "positions": [{k: r[k] for k in ("position", "val_loss")} for r in positions],
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    train, val, itos = _shakespeare(config)
    vocab, unigram = len(itos), _unigram_loss(train, val, len(itos))
    with thread_limit(config.threads):
        with ctx.step("our parts vs torch (float64)"):
            parts = _parts_vs_torch(train, vocab, config)
            rope_diff, rope_curves = rope_offsets(config)
        sweep = _stability_sweep(train, val, vocab, config, ctx)
        twin = _torch_twin(train, val, vocab, sweep, config, ctx)
        positions = _positions(train, val, vocab, sweep, config, ctx)
    metrics = _summary(parts, rope_diff, sweep, twin, positions, unigram, vocab, config)
    metrics |= _verdicts(metrics, positions)

    stability_figure(sweep, unigram, twin, config, ctx)
    early_training_figure(sweep, unigram, _first_failing_lr(sweep, unigram), ctx)
    positions_figure(positions, rope_curves, config, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="pre_ln_best_val_loss",
        library_metric="torch_pre_ln_val_loss",
        tables=_tables(parts, sweep, positions),
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
