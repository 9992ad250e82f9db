"""Helpers of the transformer-translation runner: the leak-free split, the shared BPE
tokeniser, batches, one training loop for both models, decoding, BLEU, and the figures."""

from __future__ import annotations

import re
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from airoad.labs.contract import RunContext
from airoad.labs.kit import cpu_timed, figure
from airoad.transformer import transformer_translation as ref
from airoad.transformer import translation_decoding as dec
from airoad.transformer.attention import Seq2Seq

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ["[PAD]", "[BOS]", "[EOS]", "[UNK]"]  # ids 0..3 in this order


# ---------------------------------------------------------------- data


def normalise_english(sentence: str) -> str:
    """The key that decides the split: lower case, single spaces, no final . ? !"""
    return re.sub(r"\s+", " ", sentence.lower()).strip().rstrip(".?! ")


def split_by_english(
    frame: pd.DataFrame, test_pairs: int, train_pairs: int, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeded split by normalised English sentence: whole groups (one English sentence with
    all its German variants) go to the test set until it holds at least test_pairs pairs, so
    no English sentence is on both sides. train_pairs > 0 keeps a seeded subset of the rest."""
    keys = frame["en"].map(normalise_english)
    sizes = keys.value_counts().sort_index()
    order = np.random.default_rng(seed).permutation(len(sizes))
    n_groups = int(np.searchsorted(np.cumsum(sizes.to_numpy()[order]), test_pairs)) + 1
    test_keys = set(sizes.index[order[:n_groups]])
    is_test = keys.isin(test_keys)
    train, test = frame[~is_test], frame[is_test]
    if train_pairs and train_pairs < len(train):
        train = train.sample(train_pairs, random_state=seed)
    return train.reset_index(drop=True), test.reset_index(drop=True)


def test_groups(test: pd.DataFrame) -> tuple[list[str], list[list[str]]]:
    """One source per distinct English sentence (first spelling) and all its German variants."""
    grouped = test.groupby(test["en"].map(normalise_english), sort=False)
    return [g["en"].iloc[0] for _, g in grouped], [list(g["de"]) for _, g in grouped]


def train_bpe(texts: list[str], vocab_size: int) -> Tokenizer:
    """A BPE vocabulary shared by English and German, trained on the training split only.
    Metaspace marks word starts with '▁', so decoding restores the spaces exactly."""
    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS)
    tok.train_from_iterator(texts, trainer)
    return tok


def encode(tok: Tokenizer, texts: list[str], max_tokens: int) -> list[list[int]]:
    """Token ids per text, cut to max_tokens (the EOS/BOS added later come on top)."""
    return [e.ids[:max_tokens] for e in tok.encode_batch(texts)]


def pad(rows: list[list[int]]) -> torch.Tensor:
    """(N, longest) ids, PAD-filled on the right."""
    out = torch.full((len(rows), max(map(len, rows))), PAD, dtype=torch.long)
    for i, r in enumerate(rows):
        out[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    return out


def batch(src: list[list[int]], tgt: list[list[int]], idx) -> tuple[torch.Tensor, ...]:
    """(src, tgt_in = BOS + target, tgt_out = target + EOS) for the pairs idx."""
    full = pad([[BOS, *tgt[i], EOS] for i in idx])
    return pad([src[i] for i in idx]), full[:, :-1], full[:, 1:]


# ---------------------------------------------------------------- training


def logits_of(model: torch.nn.Module, src, tgt_in) -> torch.Tensor:
    """Teacher-forced logits of either model (the GRU needs the source mask)."""
    if isinstance(model, Seq2Seq):
        return model(src, src != PAD, tgt_in)[0]
    return model(src, tgt_in)


@torch.no_grad()
def held_out_loss(model, data: tuple[torch.Tensor, ...]) -> float:
    """Plain cross-entropy (nats per target token) on fixed held-out pairs, dropout off."""
    was = model.training
    model.eval()
    src, tgt_in, tgt_out = data
    loss = ref.label_smoothed_cross_entropy(logits_of(model, src, tgt_in), tgt_out, 0.0, PAD)
    model.train(was)
    return float(loss)


def train(
    model: torch.nn.Module,
    lr_at: Callable[[int], float],
    pairs: tuple[list, list],
    held_out: tuple[torch.Tensor, ...],
    cfg,
    steps: int,
    ctx: RunContext,
    label: str,
) -> tuple[list[dict], dict]:
    """Adam (betas 0.9/0.98 as in the paper) on seeded random batches, label-smoothed loss,
    gradient clipping; the held-out loss every eval_every steps. Returns (curve, clock)."""
    opt = torch.optim.Adam(model.parameters(), lr=1.0, betas=(0.9, 0.98), eps=1e-9)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_at(s + 1))
    gen = torch.Generator().manual_seed(cfg.seed)
    curve, window = [{"step": 0, "train_loss": None, "held_out_loss": None}], []
    curve[0]["held_out_loss"] = held_out_loss(model, held_out)

    def loop() -> None:
        model.train()
        for step in ctx.track(range(1, steps + 1), f"training {label}"):
            idx = torch.randint(len(pairs[0]), (cfg.batch_size,), generator=gen).tolist()
            src, tgt_in, tgt_out = batch(*pairs, idx)
            logits = logits_of(model, src, tgt_in)
            loss = ref.label_smoothed_cross_entropy(logits, tgt_out, cfg.label_smoothing, PAD)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            window.append(loss.item())
            if step % cfg.eval_every == 0 or step == steps:
                curve.append({"step": step, "train_loss": float(np.mean(window)),
                              "held_out_loss": held_out_loss(model, held_out)})  # fmt: skip
                window.clear()

    _, cpu, wall = cpu_timed(loop)
    model.eval()
    return curve, {"cpu_seconds": cpu, "wall_seconds": wall}


# ---------------------------------------------------------------- decoding and BLEU


def gru_next_logprobs(model: Seq2Seq, src: torch.Tensor) -> dec.NextLogprobs:
    """``next_logprobs`` for the GRU: encode once, replay the decoder over each prefix."""
    mask = src != PAD
    with torch.no_grad():
        states, summary = model.encode(src, mask)

    def step(prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        st, su, m = states[rows], summary[rows], mask[rows]
        s = torch.tanh(model.bridge(su))
        # without attention the context is the summary: replay the state only, and pay for
        # the (wide) output layer once, at the last position
        for t in range(prefix.shape[1] - 1):
            s = model.decoder(torch.cat([model.embed(prefix[:, t]), su], dim=-1), s)
        logits, _, _ = model.step(prefix[:, -1], s, st, su, m)
        return torch.log_softmax(logits, dim=-1)

    return step


def translate(model, tok: Tokenizer, src: torch.Tensor, beam: int, cfg) -> list[str]:
    """Detokenised translations of src (N, S): greedy when beam is 1, else beam search."""
    step = (
        gru_next_logprobs(model, src)
        if isinstance(model, Seq2Seq)
        else dec.transformer_next_logprobs(model, src)
    )
    max_len = src.shape[1] + cfg.extra_tokens
    with torch.no_grad():
        if beam == 1:
            out = dec.greedy_decode(step, len(src), BOS, EOS, PAD, max_len)
        else:
            out, _ = dec.beam_search(step, len(src), BOS, EOS, PAD, max_len, beam, cfg.alpha)
    return [tok.decode(ids) for ids in dec.strip_special(out, EOS, PAD)]


def reference_streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: stream k holds each sentence's k-th reference (None if it has fewer)."""
    width = max(map(len, refs))
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


# ---------------------------------------------------------------- figures


def loss_figure(curves: dict[str, list[dict]], ctx: RunContext) -> None:
    with figure(ctx, "loss_curves", figsize=(8, 4.5)) as (_, ax):
        for (name, curve), colour in zip(curves.items(), ("tab:blue", "tab:orange")):
            steps = [c["step"] for c in curve]
            ax.plot(steps[1:], [c["train_loss"] for c in curve[1:]], "-", color=colour,
                    alpha=0.5, label=f"{name}: train (label-smoothed)")  # fmt: skip
            ax.plot(steps, [c["held_out_loss"] for c in curve], "o-", ms=3, color=colour,
                    label=f"{name}: held-out cross-entropy")  # fmt: skip
        ax.set(xlabel="optimizer step", ylabel="nats per target token",
               title="English -> German: training and held-out loss")  # fmt: skip
        ax.legend(fontsize=8)


def alignment_figure(model, tok: Tokenizer, sources: list[str], ctx: RunContext, cfg) -> None:
    """Cross-attention of the last decoder layer (mean over heads) while the model reads its own
    greedy translation: rows are German tokens, columns English tokens."""
    n = len(sources)
    with figure(ctx, "cross_attention", ncols=n, figsize=(4.6 * n, 4.4)) as (_, axes):
        for ax, text in zip(np.atleast_1d(axes), sources):
            src = pad(encode(tok, [text], cfg.max_tokens))
            out = translate(model, tok, src, 1, cfg)[0]
            tgt = [BOS, *tok.encode(out).ids]
            with torch.no_grad():
                memory, mask = model.encode(src)
                _, w = model.decode(torch.tensor([tgt]), memory, mask, return_attention=True)
            # row j is the step that produced token j + 1 (the last row produced EOS)
            ax.imshow(w[0].mean(0).numpy(), cmap="viridis", vmin=0.0, aspect="auto")
            pieces = tok.encode(text).tokens[: cfg.max_tokens]
            ax.set_xticks(range(len(pieces)), pieces, rotation=90, fontsize=7)
            made = [tok.id_to_token(t) for t in tgt[1:]] + ["EOS"]
            ax.set_yticks(range(len(made)), made, fontsize=7)
            ax.set_title(out if len(out) < 45 else out[:42] + "...", fontsize=8)
