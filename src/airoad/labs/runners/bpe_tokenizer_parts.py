"""Hugging Face `tokenizers` beside our BPE for the bpe-tokenizer runner and its benchmark:
the same BPE trained in Rust, WordPiece, Unigram, GPT-2's files, and one compression row."""

from __future__ import annotations

import json
from collections.abc import Callable

from tokenizers import ByteLevelBPETokenizer, Tokenizer, decoders, models, pre_tokenizers, trainers
from tokenizers.implementations import SentencePieceUnigramTokenizer

from airoad.labs.kit import timed
from airoad.transformer import bpe_tokenizer as ref

# metric key -> the tokenizer's name in the tables and figures
KEYS = {
    "ours": "ours BPE",
    "hf_bpe": "tokenizers BPE",
    "wordpiece": "tokenizers WordPiece",
    "unigram": "tokenizers Unigram",
    "gpt2": "GPT-2 (50,257 tokens)",
}


def hf_bpe(text: str, vocab_size: int, min_frequency: int) -> ByteLevelBPETokenizer:
    """tokenizers' Rust BPE trainer with GPT-2's byte-level pre-tokenizer (no prefix space),
    fed the same text in one piece, so it sees exactly the pre-tokens ours sees."""
    tok = ByteLevelBPETokenizer()  # add_prefix_space=False, as GPT-2
    tok.train_from_iterator(
        [text], vocab_size=vocab_size, min_frequency=min_frequency, show_progress=False
    )
    return tok


def _model(tok) -> dict:
    return json.loads(tok._tokenizer.to_str())["model"]


def hf_merges(tok) -> list[tuple[str, str]]:
    """A trained tokenizer's merges as (left, right) pairs, in rank order."""
    merges = _model(tok)["merges"]
    return [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in merges]


def hf_vocab(tok) -> dict[str, int]:
    return _model(tok)["vocab"]


def hf_gpt2(files) -> ByteLevelBPETokenizer:
    """tokenizers' byte-level BPE built from GPT-2's encoder.json and vocab.bpe."""
    return ByteLevelBPETokenizer(str(files.encoder_json), str(files.vocab_bpe))


def _wordpiece(text: str, vocab_size: int) -> Tokenizer:
    """BERT's WordPiece: split on whitespace and punctuation, '##' marks a word's inner pieces."""
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, special_tokens=["[UNK]"], show_progress=False
    )
    tok.train_from_iterator([text], trainer)
    return tok


def _unigram(text: str, vocab_size: int) -> SentencePieceUnigramTokenizer:
    """SentencePiece's Unigram language model ('▁' marks a space); fed line by line, since
    its seed vocabulary comes from substrings of each sentence."""
    tok = SentencePieceUnigramTokenizer()
    tok.train_from_iterator(
        text.splitlines(),
        vocab_size=vocab_size,
        show_progress=False,
        special_tokens=["<unk>"],
        unk_token="<unk>",
    )
    return tok


def library_tokenizers(text: str, vocab_size: int, bpe) -> tuple[dict, list[dict]]:
    """WordPiece and Unigram trained on text (timed), with the already trained BPE."""
    wordpiece, wp_s = timed(_wordpiece, text, vocab_size)
    unigram, uni_s = timed(_unigram, text, vocab_size)
    rows = [
        {"tokenizer": KEYS["wordpiece"], "vocab_size": wordpiece.get_vocab_size(), "train_s": wp_s},
        {"tokenizer": KEYS["unigram"], "vocab_size": unigram.get_vocab_size(), "train_s": uni_s},
    ]
    return {"hf_bpe": bpe, "wordpiece": wordpiece, "unigram": unigram}, rows


def encoders(ours: ref.ByteBPE, library: dict, gpt2) -> dict[str, tuple[Callable, Callable]]:
    """Tokenizer name -> (encode text to ids, decode ids to text)."""

    def pair(tok) -> tuple[Callable, Callable]:
        return (lambda text: tok.encode(text).ids), tok.decode

    out = {KEYS["ours"]: (ours.encode, ours.decode)}
    out |= {KEYS[key]: pair(tok) for key, tok in library.items()}
    return out | {KEYS["gpt2"]: pair(gpt2)}


def compression_row(name: str, encode, decode, corpus: str, text: str) -> dict:
    """UTF-8 bytes per token, tokens per whitespace-separated word, and whether decoding the
    ids gives the text back (WordPiece and Unigram drop or normalise whitespace)."""
    ids, seconds = timed(encode, text)
    return {
        "tokenizer": name,
        "corpus": corpus,
        "tokens": len(ids),
        "bytes_per_token": len(text.encode("utf-8")) / len(ids),
        "tokens_per_word": len(ids) / len(text.split()),
        "lossless": decode(ids) == text,
        "encode_s": seconds,
    }
