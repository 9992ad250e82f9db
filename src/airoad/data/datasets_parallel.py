"""Parallel text for translation: English-German sentence pairs from the Ding dictionary
(Debian `trans-de-en`), read straight out of the package without installing it.

Ding's file has one entry per line, ``German :: English``; each side lists the same senses
separated by `` | `` (a headword, its plural, example phrases, example sentences), and a sense
lists synonyms separated by ``;``. Most senses are words and phrases with grammar tags
(``{m}``, ``[coll.]``, ``sth``); the example sentences are the parallel text kept here.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from airoad.data.registry import Dataset, register
from airoad.data.sources import DebianPackage

if TYPE_CHECKING:  # imported lazily: pandas is slow to import
    import pandas as pd

# Dictionary placeholders ("to give sb sth", "jdm etw geben"): never in a real sentence.
DING_ABBREVIATIONS = ("sb", "sth", "jd", "jdm", "jdn", "jds", "etw")
_ABBREVIATION = re.compile(r"\b(?:" + "|".join(DING_ABBREVIATIONS) + r")\b")
_MARKUP = set("/;()[]{}")  # alternatives, synonyms, glosses, grammar and subject tags
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'"})  # the file mixes ’ and '


def is_clean_pair(en: str, de: str, min_words: int = 4, max_words: int = 20) -> bool:
    """A whole sentence on both sides: min..max English words, ending in . ? or !, no markup
    characters (/ ; ( ) [ ] { }) and no dictionary placeholder such as sb, sth, jdm, etw."""
    return (
        min_words <= len(en.split()) <= max_words
        and en[-1:] in (".", "?", "!")
        and de[-1:] in (".", "?", "!")
        and not _MARKUP.intersection(en + de)
        and _ABBREVIATION.search(en + " " + de) is None
    )


def ding_pairs(text: str) -> list[tuple[str, str]]:
    """Every aligned (English, German) sense of a Ding file: the k-th `` | `` part of the English
    side translates the k-th part of the German side; comment lines (``#``) are skipped."""
    pairs = []
    for line in text.splitlines():
        if line.startswith("#") or " :: " not in line:
            continue
        de, en = line.split(" :: ", 1)
        de_parts, en_parts = de.split(" | "), en.split(" | ")
        if len(de_parts) == len(en_parts):  # misaligned entries cannot be paired safely
            pairs += [(e.strip(), d.strip()) for e, d in zip(en_parts, de_parts)]
    return pairs


def trans_de_en(folder: Path) -> pd.DataFrame:
    """Clean (en, de) sentence pairs, in file order, exact duplicates dropped; typographic
    apostrophes become ASCII ones, umlauts and German quotes are kept as they are."""
    import pandas as pd

    text = (folder / "de-en.txt").read_text(encoding="utf-8").translate(_APOSTROPHES)
    pairs = [(en, de) for en, de in ding_pairs(text) if is_clean_pair(en, de)]
    frame = pd.DataFrame(pairs, columns=["en", "de"], dtype=str)
    return frame.drop_duplicates(ignore_index=True)


register(
    Dataset(
        name="trans-de-en",
        title="English-German sentence pairs from the Ding dictionary (13,954 pairs)",
        source=DebianPackage(
            package="trans-de-en", version="1.9-6", members={"de-en.txt": "usr/share/trans/de-en"}
        ),
        files={"de-en.txt": "34052c6021d09eadfee7a893a789204265954df70fe9c36d38fa00058d79d326"},
        licence="GPL-2+ (Ding dictionary, Frank Richter, TU Chemnitz)",
        size_mb=6.3,
        loader=trans_de_en,
        returns="DataFrame: en, de (str): example sentences of 4-20 English words ending in "
        ". ? or !, without dictionary markup; an English sentence may have several German rows",
    )
)
