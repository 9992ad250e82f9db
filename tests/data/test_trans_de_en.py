"""The trans-de-en loader on the real cached Ding file (Debian trans-de-en 1.9-6)."""

from __future__ import annotations

import re

import pytest

from airoad.data import load
from airoad.data.datasets_parallel import DING_ABBREVIATIONS, ding_pairs, is_clean_pair


@pytest.fixture(scope="module")
def pairs():
    return load("trans-de-en")


def test_pair_count_and_columns(pairs):
    assert list(pairs.columns) == ["en", "de"]
    assert 13_000 <= len(pairs) <= 15_000  # 13,954 with version 1.9-6
    assert not pairs.duplicated().any()
    # English sentences repeat with other German variants, but rarely here
    assert 0 < len(pairs) - pairs["en"].nunique() < 200


def test_filter_holds_on_every_pair(pairs):
    words = pairs["en"].str.split().str.len()
    assert words.between(4, 20).all()
    for side in ("en", "de"):
        assert pairs[side].str[-1].isin([".", "?", "!"]).all()
        assert not pairs[side].str.contains(r"[/;()\[\]{}]").any()


def test_no_dictionary_abbreviations(pairs):
    pattern = r"\b(?:" + "|".join(DING_ABBREVIATIONS) + r")\b"
    text = pairs["en"] + " " + pairs["de"]
    assert not text.str.contains(pattern).any()
    assert not text.str.contains("\u2019").any(), "typographic apostrophes become ASCII"


def test_umlauts_survive_utf8(pairs):
    german = "".join(pairs["de"])
    for ch in "äöüÄÖÜß":
        assert ch in german, f"{ch!r} missing: the file was not read as UTF-8"
    assert not re.search("Ã[¤¶¼]", german), "mojibake: UTF-8 decoded as Latin-1"


def test_parser_and_filter_on_ding_lines():
    text = (
        "# Version :: devel\n"
        "Er kommt. | Sie kommt morgen früh. :: He comes. | She is coming tomorrow morning.\n"
        "jdm. etw. geben | Gib es ihm! :: to give sb sth | Give it to him now!\n"
        "kaputt {adj} :: broken; bust [coll.]\n"
        "a | b | c :: x | y\n"
    )
    got = ding_pairs(text)
    assert ("She is coming tomorrow morning.", "Sie kommt morgen früh.") in got
    assert len(got) == 5  # 2 + 2 + 1 senses; the misaligned line is skipped
    clean = [p for p in got if is_clean_pair(*p)]
    assert clean == [("She is coming tomorrow morning.", "Sie kommt morgen früh."),
                     ("Give it to him now!", "Gib es ihm!")]  # fmt: skip
    assert not is_clean_pair("to give sb sth now.", "jdm etw geben.")
