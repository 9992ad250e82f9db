"""Byte-level byte-pair encoding (BPE), as in GPT-2: train a vocabulary, encode, decode.

Text is split into pre-tokens by GPT-2's regular expression (words with their leading space,
numbers, runs of punctuation, whitespace). Each pre-token is turned into its UTF-8 bytes, and
each byte is shown as one printable character (GPT-2's byte-to-unicode map), so a token is a
plain string and every string of bytes can be spelled: nothing is ever unknown.

Training starts from the 256 byte tokens and repeatedly merges the most frequent adjacent pair
into a new token. Encoding replays the learned merges on each pre-token, lowest rank (earliest
merge) first. Ids of the 256 byte tokens follow GPT-2's order (the byte-to-unicode map's
order, which is also the order of their characters), and merged tokens get the next free ids.

Ties between equally frequent pairs go to the smallest (left id, right id): the rule Hugging
Face's `BpeTrainer` uses, so with these ids both trainers learn the same merges.
"""

from __future__ import annotations

import functools
import heapq
import json
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path

import regex

# GPT-2's pre-tokenizer (also Hugging Face's ByteLevel pre-tokenizer with use_regex=True).
GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
GPT2_SPLIT = regex.compile(GPT2_PATTERN)

Pair = tuple[int, int]


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's map byte -> printable character, in GPT-2's id order.

    The 188 bytes that are printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
    themselves, in byte order; the other 68 bytes (controls, space, soft hyphen) become
    chr(256 + n) in byte order. The dict lists the first group, then the second.
    """
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1)]
    keep += range(ord("®"), ord("ÿ") + 1)
    rest = [b for b in range(256) if b not in set(keep)]
    return {b: chr(b) for b in keep} | {b: chr(256 + n) for n, b in enumerate(rest)}


@functools.cache
def _tables() -> tuple[dict[int, str], dict[int, str]]:
    """str.translate tables: Latin-1 char -> byte char, and back (built once)."""
    b2u = bytes_to_unicode()
    return {b: u for b, u in b2u.items()}, {ord(u): chr(b) for b, u in b2u.items()}


def to_byte_chars(text: str) -> str:
    """The UTF-8 bytes of text, one byte character per byte (GPT-2's spelling)."""
    return text.encode("utf-8").decode("latin-1").translate(_tables()[0])


def from_byte_chars(chars: str) -> bytes:
    """The bytes that a string of byte characters spells (inverse of `to_byte_chars`)."""
    return chars.translate(_tables()[1]).encode("latin-1")


def pretokenize(text: str) -> list[str]:
    """GPT-2's split of text into pre-tokens; concatenated they give the text back."""
    return GPT2_SPLIT.findall(text)


class ByteBPE:
    """A byte-level BPE tokenizer: `vocab` maps token strings (byte characters) to ids,
    `merges[r]` is the pair of token strings merged at rank r."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]]):
        self.vocab = vocab
        self.merges = merges
        self.inverse = {i: token for token, i in vocab.items()}
        self.ranks = {pair: rank for rank, pair in enumerate(merges)}
        self.cache: dict[str, list[int]] = {}  # pre-token -> ids; text repeats its words

    @property
    def vocab_size(self) -> int:
        """The number of token ids."""
        return len(self.vocab)

    @classmethod
    def from_gpt2_files(cls, encoder_json: str | Path, vocab_bpe: str | Path) -> ByteBPE:
        """GPT-2's tokenizer from its two files: `encoder.json` (token -> id) and `vocab.bpe`
        (a '#version' line, then one merge per line: two tokens separated by a space)."""
        vocab = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
        lines = Path(vocab_bpe).read_text(encoding="utf-8").split("\n")
        # '#' is a token too ('# #' is a merge): skip only the header line
        merges = [tuple(line.split(" ")) for line in lines if line and not line.startswith("#v")]
        return cls(vocab, merges)

    def bpe(self, chars: str) -> list[str]:
        """Apply the merges to one pre-token's byte characters: repeatedly merge every
        occurrence (left to right) of the adjacent pair with the lowest rank."""
        word = list(chars)
        while len(word) > 1:
            best = min(zip(word, word[1:]), key=lambda p: self.ranks.get(p, len(self.ranks)))
            if best not in self.ranks:
                break
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            word = out
        return word

    def encode(self, text: str) -> list[int]:
        """text -> token ids: pre-tokenize, then BPE each pre-token (cached by pre-token)."""
        ids: list[int] = []
        for piece in pretokenize(text):
            hit = self.cache.get(piece)
            if hit is None:
                hit = self.cache[piece] = [self.vocab[t] for t in self.bpe(to_byte_chars(piece))]
            ids.extend(hit)
        return ids

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one token stands for."""
        return from_byte_chars(self.inverse[token_id])

    def decode(self, ids: Iterable[int]) -> str:
        """ids -> text; bytes that are not valid UTF-8 become U+FFFD (as in GPT-2)."""
        chars = "".join(self.inverse[int(i)] for i in ids)
        return from_byte_chars(chars).decode("utf-8", errors="replace")


def word_counts(text: str) -> tuple[list[list[int]], list[int], dict[str, int]]:
    """De-duplicated pre-tokens of text as lists of byte-token ids, their counts, and the 256
    byte tokens' vocabulary (GPT-2's ids 0..255). Training works on these, not on the text."""
    vocab = {u: i for i, u in enumerate(bytes_to_unicode().values())}
    counts = Counter(pretokenize(text))
    words = [[vocab[c] for c in to_byte_chars(w)] for w in counts]
    return words, list(counts.values()), vocab


def _add_merge(a: int, b: int, vocab: dict, tokens: list, merges: list) -> int:
    """Record the merge (a, b); its token's id (an existing one if the string is known)."""
    merged = tokens[a] + tokens[b]
    if merged not in vocab:  # ('a', 'bc') after ('ab', 'c'): same string, same id (as HF)
        vocab[merged] = len(tokens)
        tokens.append(merged)
    merges.append((tokens[a], tokens[b]))
    return vocab[merged]


def merge_word(word: list[int], a: int, b: int, new: int) -> list[int]:
    """word with every occurrence of the pair (a, b), left to right, replaced by new."""
    out, i, n = [], 0, len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(new)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def _pair_index(words: list[list[int]], freqs: list[int]):
    """Pair -> total count (each word weighted by its frequency); pair -> words containing it."""
    counts: defaultdict[Pair, int] = defaultdict(int)
    where: defaultdict[Pair, set[int]] = defaultdict(set)
    for i, (word, f) in enumerate(zip(words, freqs)):
        for pair in zip(word, word[1:]):
            counts[pair] += f
            where[pair].add(i)
    return counts, where


def _merge_everywhere(pair: Pair, new: int, words, freqs, counts, where) -> set[Pair]:
    """Merge pair in the words that contain it, updating counts and the index in place.
    Returns the pairs that involve the new token: the only ones whose counts grew."""
    grown: set[Pair] = set()
    for i in where.pop(pair):
        old, f = words[i], freqs[i]
        word = merge_word(old, *pair, new)
        if len(word) == len(old):
            continue  # the index is never pruned; this word lost the pair earlier
        for p in zip(old, old[1:]):
            counts[p] -= f
        for p in zip(word, word[1:]):
            counts[p] += f
            if new in p:
                where[p].add(i)
                grown.add(p)
        words[i] = word
    return grown


def train_bpe(text: str, vocab_size: int, min_frequency: int = 2) -> ByteBPE:
    """Learn merges on text until the vocabulary has vocab_size tokens (or no pair occurs
    min_frequency times). Each step takes the most frequent pair, ties to the smallest ids.

    Incremental: pair counts are kept up to date by touching only the words that contain the
    merged pair (found through an index pair -> words), and the best pair comes from a heap of
    (-count, a, b) entries that may be stale: a popped entry whose count is out of date is
    pushed back with the current count (counts of old pairs only ever fall).
    """
    words, freqs, vocab = word_counts(text)
    tokens, merges = list(vocab), []
    counts, where = _pair_index(words, freqs)
    heap = [(-c, a, b) for (a, b), c in counts.items()]
    heapq.heapify(heap)
    while len(vocab) < vocab_size and heap:
        neg, a, b = heapq.heappop(heap)
        count = counts.get((a, b), 0)
        if -neg != count:
            if count > 0:
                heapq.heappush(heap, (-count, a, b))
            continue
        if count < min_frequency:
            break
        new = _add_merge(a, b, vocab, tokens, merges)
        for p in _merge_everywhere((a, b), new, words, freqs, counts, where):
            heapq.heappush(heap, (-counts[p], *p))
    return ByteBPE(vocab, merges)


def train_bpe_naive(text: str, vocab_size: int, min_frequency: int = 2) -> ByteBPE:
    """The same merges as `train_bpe`, found the slow way: recount every pair of every word
    before each merge, then rewrite every word. A baseline to check and to time against."""
    words, freqs, vocab = word_counts(text)
    tokens, merges = list(vocab), []
    while len(vocab) < vocab_size:
        counts: Counter[Pair] = Counter()
        for word, f in zip(words, freqs):
            for pair in zip(word, word[1:]):
                counts[pair] += f
        if not counts:
            break
        (a, b), count = min(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        if count < min_frequency:
            break
        new = _add_merge(a, b, vocab, tokens, merges)
        words = [merge_word(w, a, b, new) for w in words]
    return ByteBPE(vocab, merges)
