"""Runner for transformer-translation: the encoder-decoder transformer translates English to
German (Ding dictionary example sentences), scored with sacrebleu's BLEU against a GRU
encoder-decoder without attention trained on the same data with the same tokeniser.

The split is by normalised English sentence (a sentence and all its German variants land on one
side); a shared BPE vocabulary is trained on the training split only. BLEU is corpus BLEU over
the distinct test sentences with every German variant as a reference (sacrebleu's multiple
references); the single-reference score (first variant only) is reported beside it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import sacrebleu
import torch

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes, thread_limit, validate_config
from airoad.labs.runners import transformer_translation_parts as parts
from airoad.transformer import transformer_translation as ref
from airoad.transformer.attention import Seq2Seq


@dataclass(frozen=True)
class Config:
    test_pairs: int = param(1000, ge=50, le=5000)  # held-out pairs (whole English groups)
    train_pairs: int = param(0, ge=100, le=20_000, also=(0,))  # 0 = every remaining pair
    vocab_size: int = param(4000, ge=300, le=16_000)  # shared English + German BPE
    max_tokens: int = param(40, ge=8, le=200)  # longer sentences are cut
    d_model: int = param(128, ge=8, le=512)
    n_heads: int = param(4, ge=1, le=16)
    n_layers: int = param(3, ge=1, le=8)  # encoder and decoder each
    d_ff: int = param(512, ge=8, le=4096)
    dropout: float = param(0.1, ge=0.0, lt=1.0)
    norm_first: bool = False  # post-LN as in the paper; True = pre-LN
    label_smoothing: float = param(0.1, ge=0.0, lt=1.0)
    warmup: int = param(400, ge=1)
    lr_scale: float = param(0.5, gt=0.0, le=10.0)  # multiplies the inverse-sqrt schedule
    steps: int = param(800, ge=1, le=100_000)
    gru_hidden: int = param(128, ge=8, le=2048)
    gru_emb: int = param(128, ge=8, le=1024)
    gru_lr: float = param(2e-3, gt=0.0, le=1.0)
    gru_steps: int = param(800, ge=1, le=100_000)
    batch_size: int = param(64, ge=1, le=1024)
    grad_clip: float = param(1.0, gt=0.0)
    eval_every: int = param(200, ge=1)
    held_out_pairs: int = param(256, ge=8, le=5000)  # scored during training for the curves
    beam_size: int = param(4, ge=2, le=32)
    alpha: float = param(0.6, ge=0.0, le=5.0)  # GNMT length penalty
    extra_tokens: int = param(10, ge=1, le=200)  # decode at most source length + this
    n_examples: int = param(8, ge=1, le=100)
    n_alignments: int = param(3, ge=1, le=6)
    threads: int = param(2, ge=1, le=64)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)
        config_check(self.d_model % self.n_heads == 0, "d_model", "must divide by n_heads")
        config_check(self.held_out_pairs <= self.test_pairs, "held_out_pairs", "> test_pairs")


# fmt: off
QUICK = {  # a tiny model on 1,500 pairs for a few dozen steps: seconds, BLEU near zero
    "test_pairs": 80, "train_pairs": 1500, "vocab_size": 500, "d_model": 32, "n_heads": 2,
    "n_layers": 1, "d_ff": 64, "steps": 40, "gru_steps": 40, "gru_hidden": 32, "gru_emb": 16,
    "warmup": 10, "eval_every": 20, "held_out_pairs": 32, "beam_size": 2, "extra_tokens": 4,
    "n_examples": 3, "n_alignments": 2, "threads": 1,
}
# fmt: on

NOTES = (
    "English -> German on {train_pairs_used} training pairs, {test_sentences} distinct test "
    "sentences ({test_pairs_used} pairs, no English sentence on both sides), shared BPE "
    "vocabulary of {vocab}.",
    "Transformer BLEU {transformer_beam_bleu:.1f} with beam {beam_size} "
    "({transformer_greedy_bleu:.1f} greedy); GRU without attention {gru_beam_bleu:.1f} "
    "({gru_greedy_bleu:.1f} greedy): {verdict}.",
    "With only the first German variant as reference the transformer scores "
    "{transformer_beam_bleu_single_ref:.1f}; chrF {transformer_beam_chrf:.1f} vs "
    "{gru_beam_chrf:.1f}.",
    "Training: transformer {transformer_wall_seconds:.0f} s for {steps} steps "
    "({transformer_parameters} parameters), GRU {gru_wall_seconds:.0f} s for {gru_steps} steps "
    "({gru_parameters} parameters); held-out cross-entropy {transformer_held_out_loss:.2f} vs "
    "{gru_held_out_loss:.2f} nats/token.",
)


def _data(config: Config):
    """Split, tokeniser, encoded training pairs, the test groups and the held-out batch."""
    train, test = parts.split_by_english(
        load("trans-de-en"), config.test_pairs, config.train_pairs, config.seed
    )
    tok = parts.train_bpe(list(train["en"]) + list(train["de"]), config.vocab_size)
    pairs = tuple(parts.encode(tok, list(train[c]), config.max_tokens) for c in ("en", "de"))
    sources, refs = parts.test_groups(test)
    held = test.iloc[: config.held_out_pairs]
    idx = range(len(held))
    held_out = parts.batch(*(parts.encode(tok, list(held[c]), config.max_tokens) for c in ("en", "de")), idx)  # fmt: skip
    info = {"train_pairs_used": len(train), "test_pairs_used": len(test),
            "test_sentences": len(sources), "vocab": tok.get_vocab_size(),
            "leaked_sentences": len(set(train["en"].map(parts.normalise_english))
                                    & set(map(parts.normalise_english, sources)))}  # fmt: skip
    return tok, pairs, sources, refs, held_out, info


def _models(config: Config, vocab: int) -> dict[str, torch.nn.Module]:
    torch.manual_seed(config.seed)  # the GRU has no seed argument
    return {
        "transformer": ref.TranslationTransformer(
            vocab,
            config.d_model,
            config.n_heads,
            config.n_layers,
            config.n_layers,
            config.d_ff,
            config.dropout,
            parts.PAD,
            2 * config.max_tokens + 8,
            config.norm_first,
            seed=config.seed,
        ),  # fmt: skip
        "gru": Seq2Seq(vocab, config.gru_emb, config.gru_hidden, attention=False, pad_id=parts.PAD),
    }


def _train_both(models, pairs, held_out, config: Config, ctx: RunContext):
    """Each model on the same pairs: the paper's schedule for the transformer, a constant rate
    for the GRU (after the same warm-up)."""
    c = config
    schedules = {
        "transformer": (lambda s: ref.inverse_sqrt_lr(s, c.d_model, c.warmup, c.lr_scale), c.steps),
        "gru": (lambda s: c.gru_lr * min(1.0, s / c.warmup), c.gru_steps),
    }
    curves, metrics = {}, {}
    for name, model in models.items():
        lr_at, steps = schedules[name]
        curves[name], clock = parts.train(model, lr_at, pairs, held_out, c, steps, ctx, name)
        metrics |= {f"{name}_{k}": v for k, v in clock.items()}
        metrics[f"{name}_held_out_loss"] = curves[name][-1]["held_out_loss"]
        metrics[f"{name}_parameters"] = sum(p.numel() for p in model.parameters())
    return curves, metrics


def _bleu(models, tok, sources, refs, config: Config, ctx: RunContext):
    """Greedy and beam translations of every test sentence by both models, scored by sacrebleu."""
    src = parts.pad(parts.encode(tok, sources, config.max_tokens))
    streams = parts.reference_streams(refs)
    metrics, rows, outputs = {}, [], {}
    for (name, model), beam in ctx.track([(m, b) for m in models.items() for b in (1, config.beam_size)], "translating"):  # fmt: skip
        mode = "greedy" if beam == 1 else "beam"
        hyps = parts.translate(model, tok, src, beam, config)
        outputs[f"{name}_{mode}"] = hyps
        bleu = sacrebleu.corpus_bleu(hyps, streams)
        chrf = sacrebleu.corpus_chrf(hyps, streams)
        single = sacrebleu.corpus_bleu(hyps, [[r[0] for r in refs]])
        metrics |= {f"{name}_{mode}_bleu": bleu.score, f"{name}_{mode}_chrf": chrf.score,
                    f"{name}_{mode}_bleu_single_ref": single.score}  # fmt: skip
        rows.append({"model": name, "decoding": mode if beam == 1 else f"beam {beam}",
                     "bleu_all_refs": bleu.score, "bleu_first_ref": single.score,
                     "chrf": chrf.score, "brevity_penalty": bleu.bp})  # fmt: skip
    gap = metrics["transformer_beam_bleu"] - metrics["gru_beam_bleu"]
    metrics["verdict"] = f"the transformer is {'ahead' if gap > 0 else 'behind'} by {abs(gap):.1f}"
    return metrics, rows, outputs


def _examples(sources, refs, outputs, config: Config) -> list[dict]:
    return [
        {"english": s, "reference": r[0], "transformer": outputs["transformer_beam"][i],
         "gru": outputs["gru_beam"][i]}
        for i, (s, r) in enumerate(zip(sources[: config.n_examples], refs))
    ]  # fmt: skip


def run(config: Config, ctx: RunContext) -> LabResult:
    with thread_limit(config.threads):
        tok, pairs, sources, refs, held_out, metrics = _data(config)
        models = _models(config, tok.get_vocab_size())
        curves, trained = _train_both(models, pairs, held_out, config, ctx)
        scores, bleu_rows, outputs = _bleu(models, tok, sources, refs, config, ctx)
        metrics |= trained | scores
        parts.loss_figure(curves, ctx)
        short = sorted(sources[:50], key=len)[: config.n_alignments]
        parts.alignment_figure(models["transformer"], tok, short, ctx, config)
    return LabResult(
        metrics=metrics,
        key_metric="transformer_beam_bleu",
        library_metric="gru_beam_bleu",
        tables={"bleu": bleu_rows, "examples": _examples(sources, refs, outputs, config),
                "transformer_curve": curves["transformer"], "gru_curve": curves["gru"]},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )  # fmt: skip
