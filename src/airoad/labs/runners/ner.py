"""Runner for ner: all-MiniLM-L6-v2 fine-tuned as a token classifier (PER, LOC, ORG in BIO) on
Austen and Shakespeare sentences that spaCy's en_core_web_md labelled (silver labels), then
scored beside spaCy itself on hand-labelled gold sentences that training never sees.

Scores are seqeval's entity-level (exact span) precision, recall and F1, with 95% bootstrap
intervals over the gold sentences; the same resamples give a paired interval for the difference.
spaCy is also scored on the gold sentences lower-cased: what capitals are worth to a cased tagger
(MiniLM's tokenizer lower-cases everything).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes, thread_limit, timed
from airoad.labs.runners import ner_parts as parts
from airoad.llm import ner as ref


@dataclass(frozen=True)
class Config:
    n_train: int = param(2000, ge=16, le=20_000)  # silver sentences to fine-tune on
    n_heldout: int = param(400, ge=8, le=5_000)  # silver sentences to measure agreement on
    n_gold: int = param(0, ge=1, le=1_000, also=(0,))  # 0 = every gold sentence
    max_length: int = param(64, ge=8, le=256)  # word pieces kept per sentence
    epochs: int = param(3, ge=1, le=50)
    batch_size: int = param(16, ge=1, le=512)
    group_size: int = param(50, ge=0, le=10_000)  # batches per length-sorted group; 0 = off
    lr: float = param(5e-5, gt=0.0, le=1.0)
    warmup_ratio: float = param(0.1, ge=0.0, lt=1.0)
    weight_decay: float = param(0.01, ge=0.0, le=1.0)
    n_boot: int = param(2000, ge=10, le=100_000)
    n_table: int = param(15, ge=1, le=200)
    threads: int = param(0, ge=1, le=256, also=(0,))  # 0 = torch's default (what `airoad run` sets)
    seed: int = param(0, ge=0)


QUICK = {"n_train": 64, "n_heldout": 32, "n_gold": 40, "epochs": 1, "n_boot": 200, "n_table": 5}

NOTES = (
    "Gold entity F1 on {n_gold} hand-labelled sentences: MiniLM {ours_f1:.3f} "
    "(95% CI {ours_f1_lo:.3f}-{ours_f1_hi:.3f}), spaCy en_core_web_md {spacy_f1:.3f} "
    "({spacy_f1_lo:.3f}-{spacy_f1_hi:.3f}); ours minus spaCy {diff_f1:+.3f} "
    "({diff_lo:+.3f} to {diff_hi:+.3f}): {diff_verdict}.",
    "MiniLM learnt from spaCy's own tags ({n_train} sentences, {steps} steps, "
    "{train_minutes:.1f} min) and reproduces them with F1 {agreement_f1:.3f} on {n_heldout} "
    "held-out silver sentences.",
    "Capitals matter: spaCy drops to F1 {spacy_lower_f1:.3f} on the same gold sentences "
    "lower-cased; MiniLM's tokenizer lower-cases everything, so it never sees them.",
)


def _silver(nlp, config: Config, gold_texts: set[str], ctx: RunContext):
    """Training and held-out sentences (words) with spaCy's tags; gold sentences excluded."""
    pool = parts.sentences()
    picked = parts.training_pool(pool, gold_texts, config.n_train + config.n_heldout, config.seed)
    order = np.random.default_rng(config.seed + 1).permutation(len(picked))
    sents = [parts.words(picked[i][1]) for i in order]
    with ctx.step(f"spaCy tags {len(sents)} silver sentences"):
        tags = parts.spacy_tags(nlp, sents)
    k = config.n_train
    return (sents[:k], tags[:k]), (sents[k:], tags[k:]), len(pool)


def _fine_tune(model, tok, train, config: Config, ctx: RunContext):
    items = ref.encode_words(tok, train[0], train[1], config.max_length)
    steps = math.ceil(len(items) / config.batch_size) * config.epochs
    torch.manual_seed(config.seed)  # dropout
    losses, seconds = timed(
        ref.train_tagger, model, items, tok.pad_token_id, config.batch_size, steps, config.lr,
        warmup_steps=int(round(config.warmup_ratio * steps)), weight_decay=config.weight_decay,
        seed=config.seed, group_size=config.group_size,
        track=lambda order: ctx.track(order, "fine-tuning MiniLM"),
    )  # fmt: skip
    return losses, seconds


def _tag(model, tok, sents: list[list[str]], config: Config) -> list[list[str]]:
    items = ref.encode_words(tok, sents, None, config.max_length)
    return ref.predict_tags(model, items, [len(s) for s in sents], tok.pad_token_id)


def _systems(model, tok, nlp, sents: list[list[str]], config: Config) -> dict:
    """Word-level tags of the gold sentences from our model, spaCy, and spaCy on lower case."""
    lower = [[w.lower() for w in s] for s in sents]
    return {
        "MiniLM (ours)": _tag(model, tok, sents, config),
        "spaCy en_core_web_md": parts.spacy_tags(nlp, sents),
        "spaCy, lower-cased text": parts.spacy_tags(nlp, lower),
    }


def _gold_scores(gold, systems: dict, config: Config) -> tuple[dict, list[dict], dict]:
    """seqeval scores of every system, bootstrap intervals, and the paired difference."""
    truth = [g["tags"] for g in gold]
    boot = parts.bootstrap_f1(truth, systems, config.n_boot, config.seed)
    rows, intervals, metrics = [], {}, {}
    for name, key in zip(systems, ("ours", "spacy", "spacy_lower")):
        s = parts.seqeval_scores(truth, systems[name])
        lo, hi = np.percentile(boot[name], [2.5, 97.5])
        intervals[name] = (float(lo), float(hi))
        rows.append({"system": name, **s, "f1_lo": float(lo), "f1_hi": float(hi)})
        metrics |= {f"{key}_{k}": v for k, v in s.items() if not k.startswith("n_")}
        metrics |= {f"{key}_f1_lo": float(lo), f"{key}_f1_hi": float(hi)}
    names = list(systems)
    lo, hi = np.percentile(boot[names[0]] - boot[names[1]], [2.5, 97.5])
    verdict = "spaCy is better" if hi < 0 else "MiniLM is better" if lo > 0 else "no clear winner"
    metrics |= {"diff_f1": metrics["ours_f1"] - metrics["spacy_f1"], "diff_lo": float(lo)}
    metrics |= {"diff_hi": float(hi), "diff_verdict": verdict}
    return metrics, rows, intervals


def run(config: Config, ctx: RunContext) -> LabResult:
    with thread_limit(config.threads or torch.get_num_threads()):
        gold = parts.load_gold()[: config.n_gold or None]
        with ctx.step("loading spaCy en_core_web_md and MiniLM"):
            nlp = parts.load_spacy()
            model, tok = parts.load_tagger(config.seed)
        train, heldout, pool_size = _silver(nlp, config, {g["text"] for g in gold}, ctx)
        losses, seconds = _fine_tune(model, tok, train, config, ctx)
        systems = _systems(model, tok, nlp, [g["words"] for g in gold], config)
        metrics, rows, intervals = _gold_scores(gold, systems, config)
        agreement = parts.seqeval_scores(heldout[1], _tag(model, tok, heldout[0], config))
        metrics |= {"agreement_f1": agreement["f1"], "steps": len(losses), "pool": pool_size}
        metrics |= {"train_minutes": seconds / 60, "final_loss": float(np.mean(losses[-20:]))}
        metrics |= {"n_gold": len(gold), "n_train": len(train[0]), "n_heldout": len(heldout[0])}
        ours, spacy = systems["MiniLM (ours)"], systems["spaCy en_core_web_md"]
        table = parts.disagreements(gold, ours, spacy, config.n_table)
        parts.f1_figure(rows[:2], intervals, ctx)
        parts.confusion_figure(gold, dict(list(systems.items())[:2]), ctx)
        parts.loss_figure(losses, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="ours_f1",
        library_metric="spacy_f1",
        tables={"gold_scores": rows, "disagreements": table, "curve": _curve(losses)},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _curve(losses: list[float]) -> list[dict]:
    return [{"step": i + 1, "loss": v} for i, v in enumerate(losses)]
