"""Runner for attention: our attention beside torch's, then Bahdanau attention in a GRU
encoder-decoder against the same model without it, on a generated digit-reversal task.

Part 1 copies weights into ``nn.MultiheadAttention`` and compares our scaled dot-product
attention, self-attention and cross-attention with torch's (float64 values and gradients on
seeded random inputs; float32 speed). Part 2 trains two ``Seq2Seq`` models on the same stream of
generated batches (random digit strings of length min_len..max_len, target = the string
reversed): one with additive attention and one whose decoder only sees the encoder's final
summary. Greedy decoding is scored per length, and the attention weights are drawn."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import cpu_timed, figure, param, race, render_notes, thread_limit
from airoad.transformer import attention as ref

PAD, BOS, EOS, FIRST_DIGIT = 0, 1, 2, 3  # token ids; digits 0-9 are ids 3..12
VOCAB = FIRST_DIGIT + 10
MODELS = ("attention", "no_attention")


@dataclass(frozen=True)
class Config:
    min_len: int = param(1, ge=1, le=64)  # shortest digit string, in training and in the test
    max_len: int = param(20, ge=2, le=64)  # longest one; the gap is read off at this length
    steps: int = param(1200, ge=1, le=100_000)  # optimiser steps, the same for both models
    batch_size: int = param(64, ge=1, le=4096)
    emb_dim: int = param(32, ge=1, le=1024)
    hidden: int = param(64, ge=1, le=2048)
    lr: float = param(3e-3, gt=0.0, le=1.0)  # peak of the one-cycle schedule
    clip: float = param(1.0, gt=0.0, le=1000.0)  # gradient-norm clipping
    n_test: int = param(200, ge=1, le=100_000)  # test strings per length
    check_repeats: int = param(5, ge=1, le=100)  # timing repeats of the ours-vs-torch check
    threads: int = param(1, ge=1, le=64)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        if self.min_len > self.max_len:
            raise ConfigError(
                f"config key 'min_len' is {self.min_len}; it must be <= max_len ({self.max_len})"
            )


QUICK = {"max_len": 8, "steps": 200, "hidden": 32, "emb_dim": 16, "n_test": 50}

NOTES = (
    "Ours vs torch (float64): outputs differ by at most {check_max_abs_diff_out:.1e}, gradients "
    "by {check_max_abs_diff_grad:.1e}; our multi-head attention takes "
    "{mha_time_ratio_ours_over_torch:.1f}x the time of nn.MultiheadAttention (float32, "
    "forward+backward).",
    "Reversing digit strings of length {min_len}-{max_len} after {steps} steps: exact match "
    "{attention_exact_match:.3f} with attention, {no_attention_exact_match:.3f} without "
    "(mean over lengths).",
    "At length {max_len}: {attention_exact_match_at_max_len:.3f} with attention vs "
    "{no_attention_exact_match_at_max_len:.3f} without; {gap_verdict}",
    "Training took {attention_cpu_seconds:.0f} CPU-s with attention and "
    "{no_attention_cpu_seconds:.0f} CPU-s without ({attention_n_parameters} vs "
    "{no_attention_n_parameters} parameters).",
)


# ---------------------------------------------------------------- part 1: ours vs torch


def _inputs(gen, *shapes: tuple[int, ...]):
    import torch

    return [torch.randn(*s, generator=gen, dtype=torch.float64).requires_grad_() for s in shapes]


def _diff(ours, theirs, inputs) -> dict:
    """Largest |ours - theirs| of the outputs and of the input gradients (one random probe)."""
    import torch

    probe = torch.randn_like(theirs)
    g_ours = torch.autograd.grad(ours, inputs, probe)
    g_theirs = torch.autograd.grad(theirs, inputs, probe)
    return {
        "max_abs_diff_out": float((ours - theirs).detach().abs().max()),
        "max_abs_diff_grad": max(float((a - b).abs().max()) for a, b in zip(g_ours, g_theirs)),
    }


def _mha_pair(d_model: int, heads: int, seed: int, kdim=None, vdim=None, dtype=None):
    """Our MultiHeadAttention with nn.MultiheadAttention's weights copied in (float64 default)."""
    import torch
    from torch import nn

    dtype = torch.float64 if dtype is None else dtype
    torch.manual_seed(seed)
    theirs = nn.MultiheadAttention(d_model, heads, kdim=kdim, vdim=vdim, batch_first=True)
    with torch.no_grad():
        theirs.in_proj_bias.normal_()  # torch starts the biases at zero; make them count
    theirs = theirs.to(dtype)
    ours = ref.MultiHeadAttention(d_model, heads, kdim=kdim, vdim=vdim).to(dtype)
    return ref.copy_from_torch(ours, theirs), theirs


def _sdpa_rows(gen) -> list[dict]:
    """Scaled dot-product attention with no mask, causal, padding and both, against torch."""
    import torch
    import torch.nn.functional as F

    q, k, v = _inputs(gen, (4, 4, 32, 16), (4, 4, 32, 16), (4, 4, 32, 16))
    pad = ref.padding_mask(torch.tensor([32, 20, 9, 1]), 32)[:, None, None, :]
    tri = torch.ones(32, 32, dtype=torch.bool).tril()
    rows = []
    for name, mask, causal in [("none", None, False), ("causal", None, True)] + [
        ("padding", pad, False),
        ("causal+padding", pad, True),
    ]:
        ours, _ = ref.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
        both = tri if mask is None else mask & tri
        theirs = F.scaled_dot_product_attention(q, k, v, attn_mask=both if causal else mask)
        rows.append({"check": f"SDPA, mask {name}", **_diff(ours, theirs, [q, k, v])})
    return rows


def _mha_rows(gen, seed: int) -> list[dict]:
    """Self-attention (causal + key padding) and cross-attention (other length and widths)."""
    import torch

    ours, theirs = _mha_pair(64, 4, seed)
    x = _inputs(gen, (4, 32, 64))[0]
    keep = ref.padding_mask(torch.tensor([32, 25, 12, 3]), 32)
    causal = ref.causal_mask(32)
    out, _ = ours(x, key_mask=keep, causal=True)
    ref_out, _ = theirs(x, x, x, key_padding_mask=~keep, attn_mask=~causal)
    rows = [{"check": "self-attention, 4 heads", **_diff(out, ref_out, [x])}]
    ours, theirs = _mha_pair(64, 4, seed, kdim=48, vdim=40)
    query, key, value = _inputs(gen, (4, 12, 64), (4, 32, 48), (4, 32, 40))
    out, _ = ours(query, key, value, key_mask=keep)
    ref_out, _ = theirs(query, key, value, key_padding_mask=~keep)
    diffs = _diff(out, ref_out, [query, key, value])
    return rows + [{"check": "cross-attention, kdim 48, vdim 40", **diffs}]


def _mha_time_ratio(config: Config) -> tuple[float, float, float]:
    """Median seconds of one float32 self-attention forward+backward, ours then torch's."""
    import torch

    ours, theirs = _mha_pair(64, 4, config.seed, dtype=torch.float32)
    x = torch.randn(16, 64, 64, generator=torch.Generator().manual_seed(config.seed))

    def run_ours() -> None:
        ours(x, causal=True)[0].sum().backward()

    def run_theirs() -> None:
        mask = torch.ones(64, 64, dtype=torch.bool).triu(1)
        theirs(x, x, x, attn_mask=mask, need_weights=False)[0].sum().backward()

    races = [race(run_ours, run_theirs) for _ in range(config.check_repeats)]
    ours_s = float(np.median([r["ours_seconds"] for r in races]))
    theirs_s = float(np.median([r["library_seconds"] for r in races]))
    return ours_s / theirs_s, ours_s, theirs_s


def _check_against_torch(config: Config, ctx: RunContext) -> tuple[dict, list[dict]]:
    """Part 1: every attention we wrote beside torch's, with the same weights."""
    import torch

    gen = torch.Generator().manual_seed(config.seed)
    with ctx.step("our attention vs torch"):
        rows = _sdpa_rows(gen) + _mha_rows(gen, config.seed)
        ratio, ours_s, theirs_s = _mha_time_ratio(config)
    metrics = {
        "check_max_abs_diff_out": max(r["max_abs_diff_out"] for r in rows),
        "check_max_abs_diff_grad": max(r["max_abs_diff_grad"] for r in rows),
        "mha_time_ratio_ours_over_torch": ratio,
        "mha_ours_ms": 1e3 * ours_s,
        "mha_torch_ms": 1e3 * theirs_s,
    }
    return metrics, rows


# ---------------------------------------------------------------- part 2: the generated task


def reversal_batch(rng: np.random.Generator, lengths: np.ndarray):
    """Random digit strings of the given lengths and their reversals, padded with PAD.

    Returns (src (N, S), src_mask (N, S), tgt_in = BOS + reversal (N, S+1),
    tgt_out = reversal + EOS (N, S+1)) as torch tensors, S = max(lengths).
    """
    import torch

    n, width = len(lengths), int(lengths.max())
    pos = np.arange(width)[None, :]
    real = pos < lengths[:, None]
    src = np.where(real, rng.integers(FIRST_DIGIT, VOCAB, (n, width)), PAD)
    back = np.clip(lengths[:, None] - 1 - pos, 0, None)  # position j reads source L-1-j
    rev = np.where(real, np.take_along_axis(src, back, axis=1), PAD)
    tgt_out = np.concatenate([rev, np.full((n, 1), PAD)], axis=1)
    tgt_out[np.arange(n), lengths] = EOS
    tgt_in = np.concatenate([np.full((n, 1), BOS), rev], axis=1)
    as_t = [torch.from_numpy(a.astype(np.int64)) for a in (src, tgt_in, tgt_out)]
    return as_t[0], torch.from_numpy(real), as_t[1], as_t[2]


def _train(attention: bool, config: Config, ctx: RunContext):
    """Adam + one-cycle + clipping on fresh generated batches (the same stream for both models)."""
    import torch
    import torch.nn.functional as F

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    model = ref.Seq2Seq(VOCAB, config.emb_dim, config.hidden, attention=attention, pad_id=PAD)
    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, config.lr, total_steps=config.steps)
    losses = []

    def loop() -> None:
        label = "with attention" if attention else "without attention"
        for _ in ctx.track(range(config.steps), f"training seq2seq {label}"):
            lengths = rng.integers(config.min_len, config.max_len + 1, config.batch_size)
            src, mask, tgt_in, tgt_out = reversal_batch(rng, lengths)
            logits, _ = model(src, mask, tgt_in)
            loss = F.cross_entropy(logits.reshape(-1, VOCAB), tgt_out.reshape(-1), ignore_index=PAD)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            opt.step()
            sched.step()
            losses.append(loss.item())

    _, cpu, wall = cpu_timed(loop)
    return model.eval(), losses, {"cpu_seconds": cpu, "wall_seconds": wall}


def _test_set(config: Config) -> dict[int, tuple]:
    """n_test fixed strings per length, from a stream the training batches never use."""
    rng = np.random.default_rng([config.seed, 1])
    lengths = range(config.min_len, config.max_len + 1)
    return {n: reversal_batch(rng, np.full(config.n_test, n)) for n in lengths}


def _score(model, test: dict[int, tuple]) -> dict[int, tuple[float, float]]:
    """Greedy decoding per length: (exact-match rate, token accuracy incl. the EOS)."""
    scores = {}
    for n, (src, mask, _, tgt_out) in test.items():
        tokens, _ = model.greedy_decode(src, mask, max_len=n + 1, bos_id=BOS)
        hits = tokens == tgt_out
        scores[n] = (float(hits.all(dim=1).float().mean()), float(hits.float().mean()))
    return scores


def _compare_by_length(config: Config, ctx: RunContext):
    """Part 2: train both models, score each length, and say whether the gap grows."""
    test, models, curves, metrics, scores = _test_set(config), {}, {}, {}, {}
    for name in MODELS:
        models[name], curves[name], clock = _train(name == "attention", config, ctx)
        scores[name] = _score(models[name], test)
        exact = [s[0] for s in scores[name].values()]
        metrics |= {
            f"{name}_exact_match": float(np.mean(exact)),
            f"{name}_exact_match_at_max_len": exact[-1],
            f"{name}_first_loss": curves[name][0],
            f"{name}_final_loss": float(np.mean(curves[name][-20:])),
            f"{name}_cpu_seconds": clock["cpu_seconds"],
            f"{name}_wall_seconds": clock["wall_seconds"],
            f"{name}_n_parameters": sum(p.numel() for p in models[name].parameters()),
        }
    rows = [
        {
            "length": n,
            "attention_exact": scores["attention"][n][0],
            "no_attention_exact": scores["no_attention"][n][0],
            "attention_token_acc": scores["attention"][n][1],
            "no_attention_token_acc": scores["no_attention"][n][1],
        }
        for n in test
    ]
    return models, curves, rows, test, metrics | _gap(rows)


def _gap(rows: list[dict]) -> dict:
    """Exact-match gap (attention minus none) over the shortest and the longest third of lengths."""
    gaps = [r["attention_exact"] - r["no_attention_exact"] for r in rows]
    third = max(1, len(gaps) // 3)
    short, long = float(np.mean(gaps[:third])), float(np.mean(gaps[-third:]))
    if long > short + 0.05:
        verdict = (
            f"the gap grows from {short:+.3f} on the shortest third to {long:+.3f} on the longest."
        )
    else:
        verdict = f"the gap does not grow here ({short:+.3f} short, {long:+.3f} long)."
    return {"gap_short": short, "gap_long": long, "gap_verdict": verdict}


# ---------------------------------------------------------------- figures


def _masks_figure(config: Config, ctx: RunContext) -> None:
    import torch

    g = torch.Generator().manual_seed(config.seed)
    q, k = torch.randn(8, 4, generator=g), torch.randn(8, 4, generator=g)
    pad = ref.padding_mask(torch.tensor([5]), 8)
    cases = [("no mask", None, False), ("causal", None, True)]
    cases += [("padding (5 real keys)", pad, False), ("causal + padding", pad, True)]
    with figure(ctx, "masks", 1, 4, figsize=(13, 4.0)) as (fig, axes):
        for ax, (title, mask, causal) in zip(axes, cases):
            _, w = ref.scaled_dot_product_attention(q, k, k, mask=mask, causal=causal)
            ax.imshow(w.numpy(), cmap="viridis", vmin=0, vmax=1)
            ax.set(title=title, xlabel="key position", ylabel="query position")
        fig.suptitle("scaled dot-product attention weights on random q, k (zero where masked)")


def _curves_figure(curves: dict, ctx: RunContext) -> None:
    with figure(ctx, "training_curves", figsize=(7, 4)) as (_, ax):
        for name in MODELS:
            loss = np.asarray(curves[name])
            window = max(1, len(loss) // 50)
            smooth = np.convolve(loss, np.ones(window) / window, mode="valid")
            ax.semilogy(np.arange(len(smooth)) + window, smooth, label=name.replace("_", " "))
        ax.set(xlabel="step", ylabel="train cross-entropy (moving mean)", title="training loss")
        ax.legend()


def _length_figure(rows: list[dict], ctx: RunContext) -> None:
    from matplotlib.ticker import MaxNLocator

    n = [r["length"] for r in rows]
    with figure(ctx, "accuracy_by_length", figsize=(7.5, 4.2)) as (_, ax):
        for name, color in zip(MODELS, ("C0", "C1")):
            label = name.replace("_", " ")
            ax.plot(n, [r[f"{name}_exact"] for r in rows], "o-", color=color, label=label)
            tokens = [r[f"{name}_token_acc"] for r in rows]
            ax.plot(n, tokens, ":", color=color, label=f"{label}, per token")
        ax.fill_between(
            n,
            [r["no_attention_exact"] for r in rows],
            [r["attention_exact"] for r in rows],
            color="C0",
            alpha=0.15,
            label="gap (exact match)",
        )
        ax.set(xlabel="digits in the string", ylabel="test accuracy", ylim=(-0.02, 1.02))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("reversal: exact match (solid) and per-token accuracy (dotted)")
        ax.legend(loc="best")


def _heatmap_figure(model, test: dict, config: Config, ctx: RunContext) -> None:
    lengths = sorted({max(config.min_len, config.max_len // 3), config.max_len * 2 // 3})
    lengths = [n for n in lengths if n < config.max_len] + [config.max_len]
    with figure(ctx, "attention_heatmaps", 1, len(lengths), figsize=(4.3 * len(lengths), 4.4)) as (
        fig,
        axes,
    ):
        for ax, n in zip(np.atleast_1d(axes), lengths):
            src, mask = test[n][0][:1], test[n][1][:1]
            tokens, weights = model.greedy_decode(src, mask, max_len=n + 1, bos_id=BOS)
            image = ax.imshow(weights[0].numpy(), cmap="magma", vmin=0, vmax=1, aspect="auto")
            digits = [str(int(t) - FIRST_DIGIT) for t in src[0]]
            out = [str(int(t) - FIRST_DIGIT) if t >= FIRST_DIGIT else "<eos>" for t in tokens[0]]
            ax.set_xticks(range(n), digits, fontsize=7)
            ax.set_yticks(range(n + 1), out, fontsize=7)
            ax.set(xlabel="source digit", ylabel="decoded token", title=f"length {n}")
        fig.colorbar(image, ax=np.atleast_1d(axes)[-1], label="attention weight")
        fig.suptitle("additive attention while reversing: each output looks at its mirror digit")


def run(config: Config, ctx: RunContext) -> LabResult:
    with thread_limit(config.threads):
        metrics, check_rows = _check_against_torch(config, ctx)
        models, curves, length_rows, test, task = _compare_by_length(config, ctx)
        metrics |= task

        _masks_figure(config, ctx)
        _curves_figure(curves, ctx)
        _length_figure(length_rows, ctx)
        _heatmap_figure(models["attention"], test, config, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="attention_exact_match_at_max_len",
        library_metric="no_attention_exact_match_at_max_len",
        tables={"ours_vs_torch": check_rows, "by_length": length_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
