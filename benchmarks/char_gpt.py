"""nanoGPT's CPU recipe against char-gpt's own recipe, one after the other, at equal wall time.

Run from the repository root:  python benchmarks/char_gpt.py [--threads 2] [--max-iters 2000]
Writes benchmarks/results/char_gpt.md (set-up, final numbers, both curves) and char_gpt.png
(held-out loss against training seconds).

The baseline replicates the command of nanoGPT's README (karpathy/nanoGPT, commit 3adf61e):

    python train.py config/train_shakespeare_char.py --device=cpu --compile=False
      --eval_iters=20 --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
      --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0

with the values it leaves to config/train_shakespeare_char.py (learning_rate=1e-3, min_lr=1e-4,
beta2=0.99, warmup_iters=100, gradient_accumulation_steps=1) and to train.py (bias=False,
weight_decay=1e-1, beta1=0.9, grad_clip=1.0, decay_lr=True; on the CPU no autocast, so float32).
The model is airoad's ``GPT`` (pre-LN, exact GELU MLP 4x, tied embeddings, N(0, 0.02) init with
c_proj at 0.02 / sqrt(2 L): nanoGPT's model.py) with every bias removed (bias=False), and
attention through ``F.scaled_dot_product_attention(is_causal=True)``, nanoGPT's path on torch 2.
Its loop runs iterations 0..max_iters inclusive (2001 updates); the learning rate warms up as
lr (it + 1) / (warmup + 1), then follows a cosine to min_lr at lr_decay_iters.

Differences, on purpose: the text is airoad's ``shakespeare`` (the 42 works, 5.06 M characters,
84 distinct) rather than nanoGPT's 1 MB tiny-shakespeare, split as in the char-gpt lab (last 10%
held out); and the held-out loss is exact over a fixed slice (the first 200 000 held-out
characters cut into consecutive 64-character windows, every target scored once, float32, the same
windows for both) instead of nanoGPT's 20 random batches. So the baseline's number is not
comparable with the README's 1.88. The clocks count training only (the evaluations are paused
out of both); ours trains for exactly the baseline's measured training seconds, with a cosine
schedule over that time budget, its compile time (if any) inside the budget.
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from datetime import date
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle torch threads sleep, not spin

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from airoad.labs.runners import char_gpt_parts as parts  # noqa: E402
from airoad.transformer import char_gpt as ref  # noqa: E402
from airoad.transformer import gpt_training as train_ref  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
VAL_CHARS, CURVE_CHARS, EVAL_BLOCK, EVAL_POINTS = 200_000, 20_000, 64, 8


@dataclass(frozen=True)
class Recipe:
    """One training recipe; the model is always 4 layers, 4 heads, 128 wide, no dropout."""

    name: str
    block_size: int
    batch_size: int
    max_lr: float
    min_lr: float
    warmup_steps: int
    max_iters: int | None  # nanoGPT stops after a step count; None: the time budget decides
    bias: bool
    bf16: bool
    compile: bool
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0


NANOGPT = Recipe("nanoGPT CPU recipe", 64, 12, 1e-3, 1e-4, 100, 2000, False, False, False)
OURS = Recipe("char-gpt recipe", 64, 32, 6e-3, 6e-4, 100, None, True, False, False)


def fused_attention(q, k, v, dropout_p: float = 0.0):
    """nanoGPT's attention on torch >= 2 (its ``self.flash`` path); our masked softmax for the
    KV-cache case (fewer queries than keys), which training and evaluation never reach."""
    if q.shape[-2] != k.shape[-2]:
        return _masked_attention(q, k, v, dropout_p)
    return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, is_causal=True)


_masked_attention = ref.causal_attention
ref.causal_attention = fused_attention  # this process only: both recipes attend the same way


def nanogpt_lr(it: int, r: Recipe) -> float:
    """nanoGPT's get_lr (train.py) with lr_decay_iters = max_iters, as the README's command."""
    if it < r.warmup_steps:
        return r.max_lr * (it + 1) / (r.warmup_steps + 1)
    ratio = min(1.0, (it - r.warmup_steps) / (r.max_iters - r.warmup_steps))
    return r.min_lr + 0.5 * (1.0 + math.cos(math.pi * ratio)) * (r.max_lr - r.min_lr)


def budget_lr(step: int, seconds: float, budget_s: float, r: Recipe) -> float:
    """Linear warm-up over the first steps, then a cosine from max_lr to min_lr over the time
    budget: the schedule ends when the clock does, whatever the step time turns out to be."""
    warm = min(1.0, (step + 1) / r.warmup_steps)
    progress = min(1.0, seconds / budget_s)
    return warm * (r.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (r.max_lr - r.min_lr))


def build(r: Recipe, vocab_size: int, seed: int) -> tuple[ref.GPT, torch.optim.AdamW]:
    """airoad's GPT at the recipe's context; bias=False drops every Linear and LayerNorm bias
    (they start at zero, so the other weights are the same draws either way)."""
    torch.manual_seed(seed)
    model = ref.GPT(ref.GPTConfig(vocab_size, r.block_size, 4, 4, 128, 0.0))
    if not r.bias:
        for m in model.modules():
            if isinstance(m, nn.Linear | nn.LayerNorm) and m.bias is not None:
                m.register_parameter("bias", None)
    # nanoGPT's configure_optimizers: decay on dim >= 2, none on the rest, plain AdamW on CPU
    return model, train_ref.make_optimizer(model, r.max_lr, r.weight_decay, r.betas)


def train(r: Recipe, data: dict, budget_s: float | None, seed: int, evals: int) -> dict:
    """Train one recipe, stopping at max_iters (nanoGPT) or when budget_s training seconds are
    spent; evaluate evals + 1 times along the way with the clock paused."""
    model, opt = build(r, data["vocab_size"], seed)
    # train_step calls .loss and .parameters(); a compiled loss keeps evaluation uncompiled
    stepper = SimpleNamespace(
        loss=torch.compile(model.loss) if r.compile else model.loss, parameters=model.parameters
    )
    gen, load0 = torch.Generator().manual_seed(seed), os.getloadavg()
    curve = [{"step": 0, "seconds": 0.0, "val_loss": _score(model, data["curve"])}]
    step, clock, cpu, losses = 0, 0.0, 0.0, []
    while (step <= r.max_iters) if budget_s is None else (clock < budget_s):
        start, cpu_start = time.perf_counter(), time.process_time()
        lr = nanogpt_lr(step, r) if budget_s is None else budget_lr(step, clock, budget_s, r)
        x, y = train_ref.get_batch(data["train"], r.batch_size, r.block_size, gen)
        loss, _ = train_ref.train_step(stepper, opt, x, y, lr, r.grad_clip, r.bf16)
        clock += time.perf_counter() - start
        cpu += time.process_time() - cpu_start
        step, losses = step + 1, losses + [loss]
        due = (
            step % max(1, r.max_iters // evals) == 0 or step > r.max_iters
            if budget_s is None
            else clock >= budget_s * len(curve) / evals
        )
        if due:
            point = {"step": step, "seconds": clock, "val_loss": _score(model, data["curve"])}
            curve.append(point)
            print(f"{r.name}: {curve[-1]}", flush=True)
    final = _score(model, data["val"])
    own = final if r.block_size == EVAL_BLOCK else _score(model, data["val"], r.block_size)
    return {
        "recipe": r,
        "curve": curve,
        "steps": step,
        "train_seconds": clock,
        "train_cpu_seconds": cpu,
        "val_loss": final,
        "val_loss_own_context": own,
        "last_train_loss": sum(losses[-50:]) / len(losses[-50:]),
        "tokens": step * r.batch_size * r.block_size,
        "n_parameters": sum(p.numel() for p in model.parameters()),
        "load_before": load0,
        "load_after": os.getloadavg(),
    }


def _score(model: ref.GPT, ids: torch.Tensor, block: int = EVAL_BLOCK) -> float:
    """Exact nats per character over the fixed slice, in float32 (no autocast)."""
    return train_ref.evaluate(model, ids, block)


def load_data(val_chars: int = VAL_CHARS, curve_chars: int = CURVE_CHARS) -> dict:
    """The char-gpt lab's text, split and vocabulary; the fixed held-out slices: val_chars
    targets for the final number, the first curve_chars of them for the curves."""
    text = parts.shakespeare_text()
    train_text, val_text = parts.held_out_split(text, 0.1, VAL_CHARS, NANOGPT.block_size)
    vocab = train_ref.CharVocab(text)
    return {
        "train": vocab.encode(train_text),
        "val": vocab.encode(val_text[: val_chars + 1]),
        "curve": vocab.encode(val_text[: curve_chars + 1]),
        "vocab_size": len(vocab.chars),
        "train_chars": len(train_text),
    }


def _machine() -> str:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or platform.machine(),
    )
    amx = getattr(torch.cpu, "_is_amx_tile_supported", lambda: False)()
    return f"{cpu} ({os.cpu_count()} cores, AMX {'yes' if amx else 'no'})"


def _recipe_row(res: dict) -> str:
    r = res["recipe"]
    precision = "bf16 autocast" if r.bf16 else "float32"
    return (
        f"| {r.name} | {r.batch_size} x {r.block_size} | {r.max_lr:g} -> {r.min_lr:g} | "
        f"{'yes' if r.bias else 'no'} | {precision}{', compiled' if r.compile else ''} | "
        f"{res['steps']} | {res['tokens'] / 1e6:.2f} M | {res['train_seconds']:.0f} | "
        f"{res['train_cpu_seconds']:.0f} | "
        f"{res['tokens'] / res['train_seconds']:,.0f} | **{res['val_loss']:.4f}** | "
        f"{res['val_loss_own_context']:.4f} | {res['last_train_loss']:.3f} | "
        f"{res['load_before'][0]:.1f} -> {res['load_after'][0]:.1f} |"
    )


def _figure(results: list[dict], data: dict, path: Path) -> None:
    """Curves on the short slice (lines), final numbers on the long one (stars)."""
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for res in results:
        c = res["curve"]
        (line,) = ax.plot(
            [p["seconds"] for p in c[1:]],
            [p["val_loss"] for p in c[1:]],
            "o-",
            ms=4,
            label=f"{res['recipe'].name}, first {len(data['curve']) - 1:,} chars",
        )
        ax.plot(
            c[-1]["seconds"],
            res["val_loss"],
            "*",
            ms=13,
            color=line.get_color(),
            label=f"final, first {len(data['val']) - 1:,} chars: {res['val_loss']:.3f}",
        )
    ax.set(
        xlabel="training seconds (evaluation excluded)",
        ylabel="held-out nats per character (64-char windows)",
        title="nanoGPT's CPU recipe vs char-gpt's, same text, split and clock",
    )
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _report(results: list[dict], data: dict, args, wall_s: float) -> str:
    base, ours = results
    gap = base["val_loss"] - ours["val_loss"]
    head = (
        "| recipe | batch x context | lr | biases | precision | steps | tokens | train s | CPU s | "
        "tokens/s | held-out nats/char (64-char windows) | own context | train loss (last 50) "
        "| load avg before -> after |\n|" + "---|" * 14
    )
    curves = "\n".join(
        f"| {res['recipe'].name} | {p['step']} | {p['seconds']:.1f} | {p['val_loss']:.4f} |"
        for res in results
        for p in res["curve"]
    )
    setup = (
        f"{date.today()}, Python {sys.version.split()[0]}, torch {torch.__version__}, "
        f"{_machine()}, shared with other jobs; torch threads {torch.get_num_threads()} "
        f"(OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}); {wall_s / 60:.1f} minutes in all."
    )
    verdict = "reached" if gap >= 0.05 else "missed"
    cpu_ratio = ours["train_cpu_seconds"] / max(base["train_cpu_seconds"], 1e-9)
    if not 0.8 <= cpu_ratio <= 1.25:  # a shared machine gave one run more of the CPU
        verdict = (
            f"not settled: ours got {cpu_ratio:.2f}x the baseline's CPU seconds in the same "
            "wall time because the machine's load changed; re-run on an idle machine"
        )
    return (
        f"# char-gpt against nanoGPT's CPU recipe at equal wall time\n\n{setup}\n\n"
        f"`python benchmarks/char_gpt.py {' '.join(sys.argv[1:])}`\n\n"
        f"Text: airoad's `shakespeare` (42 works, {data['train_chars']:,} training characters, "
        f"{data['vocab_size']} distinct), not nanoGPT's 1 MB tiny-shakespeare; held-out loss "
        f"exact over the first {len(data['val']) - 1:,} held-out characters in consecutive 64-character "
        'windows, float32, the same windows for both ("own context": ours scored again in '
        "windows of its own training context); the curves score the first "
        f"{len(data['curve']) - 1:,} of them. Both models are 4 layers x 4 heads x 128 wide. "
        "nanoGPT's README reports 1.88 for this recipe on its own text and split: a different "
        "number, not comparable.\n\n"
        f"{head}\n{_recipe_row(base)}\n{_recipe_row(ours)}\n\n"
        f"At equal training seconds ours is **{gap:.3f} nats/char lower** than the baseline "
        f"(goal: at least 0.05; {verdict}).\n\n"
        f"![held-out loss against seconds](char_gpt.png)\n\n"
        f"## Curves (first {len(data['curve']) - 1:,} held-out characters)\n\n"
        "| recipe | step | training s | held-out nats/char |\n|---|---|---|---|\n"
        f"{curves}\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    parser.add_argument("--max-iters", type=int, default=NANOGPT.max_iters, help="baseline")
    parser.add_argument("--budget", type=float, help="skip the baseline; train ours this long")
    parser.add_argument("--ours", nargs="*", default=[], help="overrides, e.g. batch_size=64")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--evals", type=int, default=EVAL_POINTS, help="curve points per run")
    parser.add_argument("--val-chars", type=int, default=VAL_CHARS, help="the final number")
    parser.add_argument("--curve-chars", type=int, default=CURVE_CHARS, help="the curves")
    parser.add_argument("--out", default=str(RESULTS / "char_gpt"), help="path without suffix")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    types = {k: type(v) for k, v in asdict(OURS).items()}
    overrides = dict(kv.split("=", 1) for kv in args.ours)
    ours = replace(
        OURS,
        **{k: types[k](v) if types[k] is not bool else v == "True" for k, v in overrides.items()},
    )
    data, start = load_data(args.val_chars, args.curve_chars), time.perf_counter()
    if args.budget:
        res = train(ours, data, args.budget, args.seed, args.evals)
        print({k: v for k, v in res.items() if k != "curve"})
        return
    base = train(replace(NANOGPT, max_iters=args.max_iters), data, None, args.seed, args.evals)
    results = [base, train(ours, data, base["train_seconds"], args.seed, args.evals)]
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    _figure(results, data, out.with_suffix(".png"))
    report = _report(results, data, args, time.perf_counter() - start)
    out.with_suffix(".md").write_text(report, encoding="utf-8")
    print(report)


if __name__ == "__main__":
    main()
