"""The stdlib-docstrings loader: PEP 257 summary lines paired with prose documents, read from
the stdlib's source files without importing them."""

from __future__ import annotations

import ast
import sys

import pytest

from airoad.data import load
from airoad.data.datasets_docstrings import MODULES, module_path, summary_and_document
from airoad.llm.summarization import split_sentences


@pytest.fixture(scope="module")
def pairs():
    return load("stdlib-docstrings")


def test_rows_are_pep257_pairs_with_prose_documents(pairs):
    assert list(pairs.columns) == ["module", "qualname", "kind", "summary", "document"]
    assert len(pairs) >= 200 and not pairs.duplicated(["summary", "document"]).any()
    assert set(pairs.kind) == {"function", "method", "class"}
    assert pairs.summary.str.endswith(".").all() and not pairs.summary.str.contains("\n").any()
    assert (pairs.document.map(lambda d: len(split_sentences(d))) >= 3).all()
    assert not pairs.document.str.contains(">>>", regex=False).any()
    assert not pairs.document.str.contains(r"\n[ \t]", regex=True).any()  # no indented lines
    assert not pairs.qualname.str.split(".").map(lambda p: any(s.startswith("_") for s in p)).any()


def test_the_module_list_is_fixed_and_read_without_importing(pairs):
    assert list(MODULES) == sorted(MODULES)
    assert set(pairs.module) <= set(MODULES)
    assert "antigravity" not in sys.modules and "turtle" not in sys.modules
    assert load("stdlib-docstrings").equals(pairs)  # deterministic


def test_a_known_docstring_is_split_at_its_blank_line(pairs):
    path = module_path("textwrap")
    tree = ast.parse(path.read_text(encoding="utf-8"))
    node = next(n for n in tree.body if getattr(n, "name", "") == "dedent")
    summary, document = summary_and_document(ast.get_docstring(node))
    assert summary == ast.get_docstring(node).splitlines()[0]
    row = pairs[(pairs.module == "textwrap") & (pairs.qualname == "dedent")]
    assert len(row) == 1 and row.summary.iloc[0] == summary and row.document.iloc[0] == document
    assert summary_and_document("One line only.") is None
    assert summary_and_document("No period\n\nA. B. C.") is None
