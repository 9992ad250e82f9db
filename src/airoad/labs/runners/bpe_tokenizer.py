"""Runner for bpe-tokenizer: byte-level BPE trained on Shakespeare, GPT-2's own vocabulary, and
Hugging Face's tokenizers beside both.

The works are joined in title order and split by position (the last 10% is held out, as in the
char-gpt lab). Our trainer and `tokenizers`' Rust BPE trainer learn merges on the same training
text (timed; the merge lists must be equal). GPT-2's vocabulary and merges (the `gpt2-bpe`
dataset) are loaded into our `ByteBPE` and into `tokenizers.ByteLevelBPETokenizer`, and both
encode held-out Shakespeare and the Python docs (the ids must be equal). WordPiece and Unigram,
trained by `tokenizers` on the same text with the same vocabulary size, and GPT-2's 50,257-token
vocabulary are compared with ours on compression: UTF-8 bytes per token and tokens per
whitespace-separated word, on both held-out texts.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, figure, param, render_notes, timed, validate_config
from airoad.labs.runners import bpe_tokenizer_parts as parts
from airoad.transformer import bpe_tokenizer as ref


@dataclass(frozen=True)
class Config:
    train_chars: int = param(1_000_000, ge=10_000, also=(0,))  # 0 = the whole training part
    val_fraction: float = param(0.1, gt=0.0, le=0.5)
    eval_chars: int = param(200_000, ge=1_000)  # held-out Shakespeare, and Python docs, each
    vocab_size: int = param(1024, ge=257, le=50_000)
    min_frequency: int = param(2, ge=1)
    sweep_sizes: tuple[int, ...] = param((512, 1024, 2048, 4096), ge=257, le=50_000)
    show_merges: int = param(20, ge=1, le=1000)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(len(self.sweep_sizes) > 0, "sweep_sizes", "needs at least one size")


QUICK = {  # 100 k training characters, 512 tokens, 20 k characters scored: seconds
    "train_chars": 100_000,
    "eval_chars": 20_000,
    "vocab_size": 512,
    "sweep_sizes": (300, 512),
}

NOTES = (
    "Trained on {train_chars} characters ({n_words} distinct pre-tokens) to {vocab_size} "
    "tokens ({n_merges} merges): ours {ours_train_s:.2f} s, tokenizers' Rust trainer "
    "{hf_train_s:.2f} s ({train_ratio:.1f}x); same merges as tokenizers: {merges_match_hf}.",
    "GPT-2's vocabulary in our ByteBPE: {gpt2_id_mismatches} ids differ from tokenizers' on "
    "{gpt2_tokens} tokens of held-out Shakespeare and Python docs; encoding took "
    "{gpt2_ours_encode_s:.2f} s (tokenizers {gpt2_hf_encode_s:.2f} s).",
    "Held-out Shakespeare, bytes per token: ours {ours_bytes_per_token:.2f}, WordPiece "
    "{wordpiece_bytes_per_token:.2f}, Unigram {unigram_bytes_per_token:.2f} (same vocabulary "
    "size; most compact: {most_compact}), GPT-2's 50,257 tokens {gpt2_bytes_per_token:.2f}.",
    "Python docs with the Shakespeare vocabulary: ours {ours_bytes_per_token_docs:.2f} bytes "
    "per token, GPT-2 {gpt2_bytes_per_token_docs:.2f}; decode(encode(text)) == text for ours "
    "on both: {ours_lossless}.",
)


def _texts(config: Config) -> tuple[str, str, str]:
    """Training Shakespeare, a held-out Shakespeare slice and a Python docs slice."""
    works = load("shakespeare")
    text = "\n".join(works[name] for name in sorted(works))
    cut = int(round(len(text) * (1.0 - config.val_fraction)))
    train, held = text[:cut], text[cut:]
    docs = load("python-docs")
    docs_text = "\n".join(docs[name] for name in sorted(docs))
    config_check(
        config.train_chars <= len(train),
        "train_chars",
        f"is {config.train_chars}; the training part has only {len(train)} characters",
    )
    return (
        train[: config.train_chars or None],
        held[: config.eval_chars],
        docs_text[: config.eval_chars],
    )


def _train_race(train: str, config: Config) -> tuple[ref.ByteBPE, dict]:
    """Ours and tokenizers' BPE trainer on the same text: seconds, and are the merges equal?"""
    ours, ours_s = timed(ref.train_bpe, train, config.vocab_size, config.min_frequency)
    hf, hf_s = timed(parts.hf_bpe, train, config.vocab_size, config.min_frequency)
    same = parts.hf_merges(hf) == ours.merges and parts.hf_vocab(hf) == ours.vocab
    return ours, {
        "n_words": len(ref.word_counts(train)[1]),
        "n_merges": len(ours.merges),
        "ours_train_s": ours_s,
        "hf_train_s": hf_s,
        "train_ratio": ours_s / hf_s,
        "merges_match_hf": "yes" if same else "no",
        "hf_bpe": hf,
    }


def _gpt2_check(held: str, docs: str) -> tuple[ref.ByteBPE, object, dict]:
    """GPT-2's files in ours and in tokenizers: ids on both texts, encoding seconds."""
    files = load("gpt2-bpe")
    ours = ref.ByteBPE.from_gpt2_files(files.encoder_json, files.vocab_bpe)
    hf = parts.hf_gpt2(files)
    ours_ids, ours_s = timed(lambda: [ours.encode(t) for t in (held, docs)])
    hf_ids, hf_s = timed(lambda: [hf.encode(t).ids for t in (held, docs)])
    mismatches = sum(
        len(a) + len(b) if len(a) != len(b) else sum(x != y for x, y in zip(a, b))
        for a, b in zip(ours_ids, hf_ids)
    )
    return (
        ours,
        hf,
        {
            "gpt2_id_mismatches": mismatches,
            "gpt2_tokens": sum(len(ids) for ids in hf_ids),
            "gpt2_ours_encode_s": ours_s,
            "gpt2_hf_encode_s": hf_s,
        },
    )


def _compression(tokenizers: dict, held: str, docs: str) -> tuple[list[dict], dict]:
    """Bytes per token and tokens per word of every tokenizer on both texts."""
    rows = [
        parts.compression_row(name, encode, decode, corpus, text)
        for name, (encode, decode) in tokenizers.items()
        for corpus, text in (("shakespeare", held), ("python-docs", docs))
    ]
    get = {(r["tokenizer"], r["corpus"]): r for r in rows}
    metrics = {}
    for key, name in parts.KEYS.items():
        metrics[f"{key}_bytes_per_token"] = get[name, "shakespeare"]["bytes_per_token"]
        metrics[f"{key}_tokens_per_word"] = get[name, "shakespeare"]["tokens_per_word"]
        metrics[f"{key}_bytes_per_token_docs"] = get[name, "python-docs"]["bytes_per_token"]
    small = ("ours", "wordpiece", "unigram")
    metrics["most_compact"] = max(small, key=lambda k: metrics[f"{k}_bytes_per_token"])
    ours_rows = [r for r in rows if r["tokenizer"] == parts.KEYS["ours"]]
    metrics["ours_lossless"] = "yes" if all(r["lossless"] for r in ours_rows) else "no"
    return rows, metrics


def _sweep(train: str, held: str, config: Config, ctx: RunContext) -> list[dict]:
    """Training seconds (ours, tokenizers') and held-out bytes per token by vocabulary size."""
    rows = []
    for size in ctx.track(sorted(config.sweep_sizes), "vocabulary sweep"):
        ours, ours_s = timed(ref.train_bpe, train, size, config.min_frequency)
        _, hf_s = timed(parts.hf_bpe, train, size, config.min_frequency)
        n_bytes = len(held.encode("utf-8"))
        rows.append(
            {
                "vocab_size": size,
                "ours_train_s": ours_s,
                "hf_train_s": hf_s,
                "bytes_per_token": n_bytes / len(ours.encode(held)),
            }
        )
    return rows


def _first_merges(bpe: ref.ByteBPE, n: int) -> list[dict]:
    """The first n merges as readable text (spaces shown as '·')."""

    def show(token: str) -> str:
        return ref.from_byte_chars(token).decode("utf-8", "replace").replace(" ", "·")

    return [
        {"rank": r, "left": show(a), "right": show(b), "token": show(a + b)}
        for r, (a, b) in enumerate(bpe.merges[:n])
    ]


def _compression_figure(rows: list[dict], ctx: RunContext) -> None:
    names = list(dict.fromkeys(r["tokenizer"] for r in rows))
    with figure(ctx, "compression", 1, 2, figsize=(11, 4.2)) as (_, axes):
        for ax, key, label in zip(
            axes,
            ("bytes_per_token", "tokens_per_word"),
            ("UTF-8 bytes per token", "tokens per word"),
        ):
            for j, corpus in enumerate(("shakespeare", "python-docs")):
                vals = [
                    next(r[key] for r in rows if r["tokenizer"] == n and r["corpus"] == corpus)
                    for n in names
                ]
                ax.bar([i + 0.4 * j for i in range(len(names))], vals, width=0.4, label=corpus)
            ax.set_xticks([i + 0.2 for i in range(len(names))], names, rotation=20, fontsize=8)
            ax.set(ylabel=label, title=f"{label} (held-out text)")
            ax.legend(fontsize=8)


def _sweep_figure(rows: list[dict], gpt2_bpt: float, ctx: RunContext) -> None:
    sizes = [r["vocab_size"] for r in rows]
    with figure(ctx, "vocab_sweep", 1, 2, figsize=(11, 4.2)) as (_, (left, right)):
        left.plot(sizes, [r["bytes_per_token"] for r in rows], "o-", label="ours, trained")
        left.axhline(gpt2_bpt, color="k", ls="--", label=f"GPT-2, 50,257 tokens: {gpt2_bpt:.2f}")
        left.set(
            xscale="log",
            xlabel="vocabulary size",
            ylabel="bytes per token",
            title="held-out Shakespeare compression",
        )
        left.legend(fontsize=8)
        right.plot(sizes, [r["ours_train_s"] for r in rows], "o-", label="ours (Python)")
        right.plot(sizes, [r["hf_train_s"] for r in rows], "s-", label="tokenizers (Rust)")
        right.set(
            xscale="log",
            xlabel="vocabulary size",
            ylabel="seconds",
            title="training time, same text",
        )
        right.legend(fontsize=8)


def _lengths_figure(ours: ref.ByteBPE, gpt2: ref.ByteBPE, ctx: RunContext) -> None:
    with figure(ctx, "token_lengths", figsize=(7, 4)) as (_, ax):
        for bpe, label in ((ours, f"ours, {ours.vocab_size} tokens"), (gpt2, "GPT-2, 50,257")):
            lengths = [len(bpe.token_bytes(i)) for i in bpe.inverse]
            ax.hist(lengths, bins=range(1, 18), density=True, alpha=0.5, label=label)
        ax.set(
            xlabel="token length in bytes",
            ylabel="fraction of the vocabulary",
            title="how long the learned tokens are",
        )
        ax.legend()


def run(config: Config, ctx: RunContext) -> LabResult:
    train, held, docs = _texts(config)
    ours, metrics = _train_race(train, config)
    gpt2, gpt2_hf, gpt2_metrics = _gpt2_check(held, docs)
    metrics |= gpt2_metrics
    library, lib_rows = parts.library_tokenizers(train, config.vocab_size, metrics.pop("hf_bpe"))
    tokenizers = parts.encoders(ours, library, gpt2_hf)
    rows, compression = _compression(tokenizers, held, docs)
    metrics |= compression | {"train_chars": len(train), "eval_chars": len(held)}
    sweep = _sweep(train, held, config, ctx)

    _compression_figure(rows, ctx)
    _sweep_figure(sweep, metrics["gpt2_bytes_per_token"], ctx)
    _lengths_figure(ours, gpt2, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_bytes_per_token",
        library_metric="hf_bpe_bytes_per_token",
        tables={
            "compression": rows,
            "library_training": lib_rows,
            "vocab_sweep": sweep,
            "first_merges": _first_merges(ours, config.show_merges),
        },
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
