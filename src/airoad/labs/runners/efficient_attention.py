"""Runner for efficient-attention: exactness, cost against sequence length, and what the cheap
approximations cost a small language model on Jane Austen's novels.

1. Exactness (random float64 tensors): tiled attention and its recomputing backward against
   ``F.scaled_dot_product_attention``, sliding-window attention against SDPA with the band as an
   explicit mask, causal linear attention against its quadratic form.
2. Scaling: every (method, length) point runs in a FRESH Python process (``python -c``) that
   reports its peak resident memory (VmHWM from /proc, ru_maxrss where /proc is missing) just
   before and just after the attention call, and the median time of a few more calls. The
   growth of the peak is set beside the analytic bytes of one L x L score matrix. Inputs are
   random: the cost of attention does not depend on the values.
3. Quality: the same tiny causal transformer trained on Austen characters with full (our tiled
   attention with its own backward), sliding-window and linear attention, same seed and batches;
   the full model is then re-evaluated with SDPA in place of ours.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, figure, param, render_notes, thread_limit
from airoad.labs.runners.efficient_attention_lm import LM_KINDS
from airoad.labs.runners.efficient_attention_lm import quality as lm_quality
from airoad.transformer import efficient_attention as ref

METHODS = ("naive", "sdpa", "tiled", "window", "linear")
MIB = 2**20
POINT_KEYS = "heads head_dim causal backward block window repeats threads seed".split()
# The whole program of a measuring process: a fresh interpreter that imports torch and this module.
CHILD = "import sys; from airoad.labs.runners.efficient_attention import _point_main as m; m(sys.argv[1])"


@dataclass(frozen=True)
class Config:
    # scaling: one fresh process per (method, length) point
    lengths: tuple[int, ...] = param((512, 1024, 2048, 4096, 8192), ge=16, le=16_384)
    methods: tuple[str, ...] = param(METHODS, choices=METHODS)
    heads: int = param(2, ge=1, le=64)  # batch 1, so one score matrix is heads * L * L floats
    head_dim: int = param(64, ge=1, le=512)
    causal: bool = param(True)
    backward: bool = param(False)  # also time and measure one backward pass (training)
    block: int = param(128, ge=1, le=4096)  # tile of tiled, query block of window, chunk of linear
    window: int = param(256, ge=1, le=16_384)
    repeats: int = param(3, ge=1, le=50)  # timed calls after the measured one
    max_matrix_mib: int = param(2048, ge=1, le=16_384)  # skip naive where one matrix is larger
    point_timeout_s: float = param(240.0, gt=0.0, le=3600.0)  # a slower point is stopped
    threads: int = param(1, ge=1, le=64)  # torch threads in each process
    parallel: int = param(1, ge=1, le=8)  # points measured at once (>1 blurs the timings)
    # exactness, float64
    check_len: int = param(256, ge=2, le=4096)
    # quality: a tiny causal transformer on Austen characters
    context: int = param(128, ge=8, le=4096)
    d_model: int = param(64, ge=4, le=1024)
    lm_heads: int = param(4, ge=1, le=64)
    layers: int = param(2, ge=1, le=12)
    lm_window: int = param(32, ge=1, le=4096)
    batch_size: int = param(16, ge=1, le=1024)
    steps: int = param(400, ge=1, le=100_000)
    lr: float = param(3e-3, gt=0.0, le=1.0)
    eval_every: int = param(50, ge=1, le=100_000)
    eval_batches: int = param(8, ge=1, le=1000)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(self.d_model % self.lm_heads == 0, "d_model", "must be divisible by lm_heads")


QUICK = {
    "lengths": (256, 1024),
    "methods": ("naive", "sdpa", "tiled"),
    "repeats": 1,
    "parallel": 2,
    "check_len": 64,
    "context": 64,
    "batch_size": 8,
    "steps": 20,
    "eval_every": 10,
    "eval_batches": 2,
}

NOTES = (
    "Exact (float64, L = {check_len}): tiled attention equals SDPA to {tiled_max_abs_diff:.1e} "
    "and its recomputing backward gives SDPA's gradients to {flash_grad_max_abs_diff:.1e}; "
    "sliding window equals SDPA with the band mask to {window_max_abs_diff:.1e}; linear "
    "attention equals its quadratic form to {linear_max_abs_diff:.1e}.",
    "At L = {max_length} ({heads} heads x {head_dim}, float32, {mode}) one score matrix is "
    "{matrix_mib_max_len:.0f} MiB. Peak memory grew by: naive {naive_extra_mib_max_len:.0f}, "
    "SDPA {sdpa_extra_mib_max_len:.1f}, tiled {tiled_extra_mib_max_len:.1f}, window "
    "{window_extra_mib_max_len:.1f}, linear {linear_extra_mib_max_len:.1f} MiB "
    "(one fresh process per point).",
    "Time at L = {max_length} ({threads} thread(s)): naive {naive_ms_max_len:.0f} ms, SDPA "
    "{sdpa_ms_max_len:.0f} ms, tiled {tiled_ms_max_len:.0f} ms, window {window_ms_max_len:.0f} ms, "
    "linear {linear_ms_max_len:.0f} ms. Between the two longest lengths naive's memory grew "
    "as L^{naive_memory_exponent:.2f} and tiled's as L^{tiled_memory_exponent:.2f}.",
    "Austen, context {context}, {steps} steps: validation loss full {lm_full_val_loss:.3f}, "
    "window {lm_window} {lm_window_val_loss:.3f}, linear {lm_linear_val_loss:.3f} nats/char; "
    "the full model with SDPA in place of our attention scores {lm_full_sdpa_val_loss:.3f}.",
)


# ---------------------------------------------------------------- attention by name


def attention_fn(method: str, causal: bool, block: int, window: int) -> Callable:
    """(q, k, v) -> output for one benchmark method; 'tiled' uses the recomputing backward."""
    fns = {
        "naive": lambda q, k, v: ref.naive_attention(q, k, v, causal=causal),
        "sdpa": lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=causal),
        "tiled": lambda q, k, v: ref.flash_attention(q, k, v, causal, None, block, block),
        "window": lambda q, k, v: ref.sliding_window_attention(
            q, k, v, window, causal, None, block
        ),
        "linear": lambda q, k, v: ref.linear_attention(q, k, v, causal=causal, chunk=block),
    }
    return fns[method]


# ---------------------------------------------------------------- 1. exactness


def _exactness(config: Config) -> tuple[dict, list[dict]]:
    """Max |ours - reference| in outputs and gradients, seeded float64 (1, 2 heads, L, 16)."""
    g = torch.Generator().manual_seed(config.seed)
    shape = (1, 2, config.check_len, 16)
    q, k, v, grad = (torch.randn(shape, generator=g, dtype=torch.float64) for _ in range(4))
    band = ref.sliding_window_mask(config.check_len, config.lm_window, causal=True)
    sdpa, w = F.scaled_dot_product_attention, config.lm_window

    def quadratic_linear(q, k, v):  # the causal linear-attention formula, term by term
        a = (ref.elu_feature_map(q) @ ref.elu_feature_map(k).transpose(-2, -1)).tril()
        return (a @ v) / (a.sum(-1, keepdim=True) + 1e-6)

    checks = {  # name: (ours, the reference it must equal)
        "tiled": (lambda *t: ref.tiled_attention(*t, False, None, 32, 48)[0], sdpa),
        "tiled_causal": (
            lambda *t: ref.tiled_attention(*t, True, None, 32, 48)[0],
            lambda *t: sdpa(*t, is_causal=True),
        ),
        "flash_causal": (
            lambda *t: ref.flash_attention(*t, True, None, 32, 48),
            lambda *t: sdpa(*t, is_causal=True),
        ),
        "window": (
            lambda *t: ref.sliding_window_attention(*t, w, True, None, 32),
            lambda *t: sdpa(*t, attn_mask=band),
        ),
        "linear_causal": (lambda *t: ref.linear_attention(*t, True, chunk=32), quadratic_linear),
    }
    rows = [_compare(name, *fns, (q, k, v), grad) for name, fns in checks.items()]
    by = {r["check"]: r for r in rows}
    metrics = {
        "tiled_max_abs_diff": max(by[n]["max_abs_diff_out"] for n in ("tiled", "tiled_causal")),
        "flash_grad_max_abs_diff": by["flash_causal"]["max_abs_diff_grad"],
        "window_max_abs_diff": by["window"]["max_abs_diff_out"],
        "linear_max_abs_diff": by["linear_causal"]["max_abs_diff_out"],
    }
    return metrics, rows


def _compare(name: str, ours: Callable, theirs: Callable, qkv: tuple, grad: torch.Tensor) -> dict:
    """One exactness row: largest output difference and largest q/k/v gradient difference."""
    inputs = [t.detach().requires_grad_(True) for t in qkv]
    a, b = ours(*inputs), theirs(*inputs)
    grads = zip(torch.autograd.grad(a, inputs, grad), torch.autograd.grad(b, inputs, grad))
    return {
        "check": name,
        "reference": "quadratic form" if name.startswith("linear") else "SDPA",
        "max_abs_diff_out": float((a - b).detach().abs().max()),
        "max_abs_diff_grad": max(float((x - y).abs().max()) for x, y in grads),
    }


# ---------------------------------------------------------------- 2. scaling, one process per point


def _peak_rss_bytes() -> int:
    """This process's peak resident set so far: VmHWM from /proc, else ru_maxrss (KiB on Linux)."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _point_main(raw: str) -> None:
    """Body of one measuring process: peak RSS before/after one call, then the median time."""
    args = json.loads(raw)
    torch.set_num_threads(args["threads"])
    fn = attention_fn(args["method"], args["causal"], args["block"], args["window"])
    g = torch.Generator().manual_seed(args["seed"])

    def call(n: int) -> None:
        q, k, v = (torch.randn(1, args["heads"], n, args["head_dim"], generator=g) for _ in "qkv")
        if not args["backward"]:
            with torch.no_grad():
                fn(q, k, v)
            return
        for t in (q, k, v):
            t.requires_grad_(True)
        fn(q, k, v).sum().backward()

    call(min(64, args["length"]))  # wake lazy library state (thread pool, kernels) before the mark
    before = _peak_rss_bytes()
    start = time.perf_counter()
    call(args["length"])  # inputs are made inside, so they count in the growth (3 L d floats)
    first = time.perf_counter() - start
    after = _peak_rss_bytes()
    times = []
    for _ in range(args["repeats"]):
        start = time.perf_counter()
        call(args["length"])
        times.append(time.perf_counter() - start)
    report = {"before": before, "after": after, "first_s": first}
    print(json.dumps(report | {"median_s": statistics.median(times)}))


def _measure_point(config: Config, method: str, length: int) -> dict:
    """Start a fresh interpreter for one point; return its row (status ok, skipped or failed)."""
    matrix = ref.attention_matrix_bytes(config.heads, length, length)
    row = {"method": method, "length": length, "matrix_mib": matrix / MIB}
    if method == "naive" and matrix > config.max_matrix_mib * MIB:
        return row | {"status": f"skipped: matrix over {config.max_matrix_mib} MiB"}
    args = {key: getattr(config, key) for key in POINT_KEYS} | {"method": method, "length": length}
    env = os.environ | {"OMP_NUM_THREADS": str(config.threads), "OMP_WAIT_POLICY": "PASSIVE"}
    try:
        done = subprocess.run(
            [sys.executable, "-c", CHILD, json.dumps(args)],
            capture_output=True,
            text=True,
            timeout=config.point_timeout_s,
            env=env,
            check=False,
        )
    except subprocess.TimeoutExpired:  # subprocess.run kills the child before raising
        return row | {"status": f"failed: over {config.point_timeout_s:.0f} s"}
    if done.returncode != 0:
        return row | {"status": f"failed: exit {done.returncode}: {done.stderr.strip()[-200:]}"}
    out = json.loads(done.stdout.strip().splitlines()[-1])
    return row | {
        "status": "ok",
        "ms": 1e3 * out["median_s"],
        "first_ms": 1e3 * out["first_s"],
        "peak_mib": out["after"] / MIB,
        "extra_mib": (out["after"] - out["before"]) / MIB,
    }


def _scaling(config: Config, ctx: RunContext) -> list[dict]:
    """One fresh process per (length, method), lengths in increasing order, ``parallel`` at once."""
    points = [(m, n) for n in sorted(config.lengths) for m in config.methods]
    with ThreadPoolExecutor(config.parallel) as pool:  # threads only wait on their process
        jobs = [pool.submit(_measure_point, config, m, n) for m, n in points]
        return [job.result() for job in ctx.track(jobs, "fresh process per point")]


def _scaling_metrics(config: Config, rows: list[dict]) -> dict:
    """Time and memory growth at the longest length, for every method (NaN where not measured)."""
    top = max(config.lengths)
    ok = {(r["method"], r["length"]): r for r in rows if r["status"] == "ok"}
    metrics = {
        "max_length": top,
        "matrix_mib_max_len": ref.attention_matrix_bytes(config.heads, top, top) / MIB,
    }
    for m in METHODS:
        r = ok.get((m, top), {})
        metrics[f"{m}_ms_max_len"] = r.get("ms", math.nan)
        metrics[f"{m}_extra_mib_max_len"] = r.get("extra_mib", math.nan)
        metrics[f"{m}_memory_exponent"] = _exponent(ok, m, sorted(config.lengths))
    return metrics


def _exponent(ok: dict, method: str, lengths: list[int]) -> float:
    """log(growth ratio) / log(length ratio) between the two longest lengths measured."""
    have = [n for n in lengths if (method, n) in ok and ok[method, n]["extra_mib"] > 0]
    if len(have) < 2:
        return math.nan
    a, b = ok[method, have[-2]]["extra_mib"], ok[method, have[-1]]["extra_mib"]
    return math.log(b / a) / math.log(have[-1] / have[-2])


# 3. quality on Austen: efficient_attention_lm.quality


# ---------------------------------------------------------------- figures


def _time_figure(rows: list[dict], ctx: RunContext) -> None:
    with figure(ctx, "time_vs_length", figsize=(6.5, 4.5)) as (_, ax):
        for m in METHODS:
            pts = [(r["length"], r["ms"]) for r in rows if r["method"] == m and r["status"] == "ok"]
            if pts:
                ax.loglog(*zip(*pts), "o-", label=m, base=2)
        ax.set(
            xlabel="sequence length L", ylabel="ms per call (median)", title="time against length"
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()


def _memory_figure(rows: list[dict], config: Config, ctx: RunContext) -> None:
    lengths = sorted(config.lengths)
    with figure(ctx, "memory_vs_length", 1, 2, figsize=(12, 4.5)) as (_, ax):
        for m in METHODS:
            pts = [r for r in rows if r["method"] == m and r["status"] == "ok"]
            if pts:
                ax[0].loglog(
                    [r["length"] for r in pts],
                    [max(r["extra_mib"], 1 / 256) for r in pts],
                    "o-",
                    label=m,
                    base=2,
                )
                ax[1].plot([r["length"] for r in pts], [r["peak_mib"] for r in pts], "o-", label=m)
        matrix = [ref.attention_matrix_bytes(config.heads, n, n) / MIB for n in lengths]
        ax[0].loglog(lengths, matrix, "k--", label="one L x L matrix (analytic)", base=2)
        qkvo = [4 * config.heads * n * config.head_dim * 4 / MIB for n in lengths]
        ax[0].loglog(lengths, qkvo, "k:", label="q, k, v and output (analytic)", base=2)
        ax[0].set(
            xlabel="sequence length L",
            ylabel="growth of peak RSS during the call (MiB)",
            title="extra memory (fresh process per point)",
        )
        ax[1].set(
            xlabel="sequence length L",
            ylabel="peak RSS of the process (MiB)",
            title="whole-process peak (VmHWM)",
        )
        for a in ax:
            a.grid(True, which="both", alpha=0.3)
            a.legend(fontsize=8)


def _quality_figure(curves: list[dict], config: Config, ctx: RunContext) -> None:
    labels = {
        "full": "full (tiled, exact)",
        "window": f"sliding window {config.lm_window}",
        "linear": "linear (elu + 1)",
    }
    with figure(ctx, "lm_quality", figsize=(6.5, 4.5)) as (_, ax):
        for kind in LM_KINDS:
            pts = [c for c in curves if c["kind"] == kind]
            ax.plot(
                [c["step"] for c in pts], [c["val_loss"] for c in pts], "o-", label=labels[kind]
            )
        ax.set(
            xlabel="training step",
            ylabel="validation loss (nats / char)",
            title=f"Austen, context {config.context}",
        )
        ax.grid(True, alpha=0.3)
        ax.legend()


# ---------------------------------------------------------------- the lab


def run(config: Config, ctx: RunContext) -> LabResult:
    with thread_limit(config.threads):
        exact, check_rows = _exactness(config)
    rows = _scaling(config, ctx)
    scaling = _scaling_metrics(config, rows)
    quality, curves = lm_quality(config, ctx)
    metrics = exact | scaling | quality

    _time_figure(rows, ctx)
    _memory_figure(rows, config, ctx)
    _quality_figure(curves, config, ctx)

    mode = "forward + backward" if config.backward else "forward only"
    values = {**asdict(config), **metrics, "mode": mode}
    return LabResult(
        metrics=metrics,
        key_metric="tiled_extra_mib_max_len",
        library_metric="sdpa_extra_mib_max_len",
        tables={"exactness": check_rows, "scaling": rows, "lm_curves": curves},
        figures=ctx.figures,
        notes=render_notes(NOTES, values),
    )
