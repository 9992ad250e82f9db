"""Summarisation pairs from the Python standard library's own docstrings (no download).

A docstring that follows PEP 257 opens with a one-line summary ending in a period, then a blank
line, then the details: the author's own summary of the text below it. The loader reads the
source files of a fixed list of stdlib modules with ``ast`` (nothing is imported, so no module
runs), takes the docstrings of public functions, classes and methods (names not starting with
"_", methods of public classes, nested classes too) and keeps a pair (summary, document) when:

- the summary line ends with "." and a blank line follows it;
- the document is the prose of the rest: paragraphs (split at blank lines) with no indented
  line (code, argument lists), no ``>>>`` and no bullet, and not ending in ":" (a paragraph
  that introduces a dropped block), joined by blank lines;
- the document has at least three sentences (``airoad.llm.summarization.split_sentences``).

Pairs are kept in module order, then source order; a (summary, document) pair seen before is
dropped. The docstrings are those of the running interpreter's stdlib, so the rows change a
little between Python versions (276 pairs on Python 3.11.7).
"""

from __future__ import annotations

import ast
import re
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from airoad.data.registry import Dataset, register
from airoad.data.sources import Stdlib

if TYPE_CHECKING:  # imported lazily: pandas is slow to import
    import pandas as pd

# Sorted; pure-Python modules with prose docstrings, present in Python 3.10 to 3.13.
MODULES = (
    "_pydecimal",
    "argparse",
    "ast",
    "asyncio.events",
    "asyncio.tasks",
    "base64",
    "bisect",
    "calendar",
    "cmd",
    "codecs",
    "collections",
    "concurrent.futures._base",
    "configparser",
    "contextlib",
    "copy",
    "csv",
    "dataclasses",
    "datetime",
    "difflib",
    "doctest",
    "email.message",
    "email.utils",
    "enum",
    "fnmatch",
    "fractions",
    "ftplib",
    "functools",
    "gettext",
    "glob",
    "graphlib",
    "gzip",
    "heapq",
    "hmac",
    "http.client",
    "http.cookiejar",
    "imaplib",
    "inspect",
    "ipaddress",
    "json",
    "logging",
    "mailbox",
    "mimetypes",
    "numbers",
    "optparse",
    "os",
    "pathlib",
    "pickle",
    "platform",
    "pprint",
    "queue",
    "random",
    "sched",
    "secrets",
    "selectors",
    "shlex",
    "shutil",
    "smtplib",
    "socket",
    "socketserver",
    "statistics",
    "string",
    "subprocess",
    "tarfile",
    "tempfile",
    "textwrap",
    "threading",
    "timeit",
    "tokenize",
    "traceback",
    "typing",
    "unittest.case",
    "urllib.parse",
    "urllib.request",
    "uuid",
    "warnings",
    "weakref",
    "xml.dom.minidom",
    "xml.etree.ElementTree",
    "zipfile",
)
_NOT_PROSE = re.compile(r"^(\s+\S|\s*>>>|\s*[-*+] |\s*\d+[.)] )", re.M)


def module_path(module: str) -> Path | None:
    """The source file of a stdlib module (a package's ``__init__.py``), None if it is absent."""
    base = Path(sysconfig.get_path("stdlib")).joinpath(*module.split("."))
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    return path if path.is_file() else None


def _documented(body: list[ast.stmt], prefix: str = "") -> Iterator[tuple[str, str, str]]:
    """(qualname, kind, docstring) of public functions and classes, recursing into classes."""
    for node in body:
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if node.name.startswith("_"):
            continue
        name = prefix + node.name
        kind = "class" if isinstance(node, ast.ClassDef) else "function"
        kind = "method" if prefix and kind == "function" else kind
        doc = ast.get_docstring(node, clean=True)
        if doc:
            yield name, kind, doc
        if isinstance(node, ast.ClassDef):
            yield from _documented(node.body, name + ".")


def summary_and_document(docstring: str) -> tuple[str, str] | None:
    """(summary line, prose document) of a cleaned docstring, or None if it has no PEP 257
    summary line or no document with at least three sentences."""
    from airoad.llm.summarization import split_sentences

    lines = docstring.split("\n")
    if len(lines) < 3 or lines[1].strip() or not lines[0].rstrip().endswith("."):
        return None
    paragraphs = re.split(r"\n\s*\n", "\n".join(lines[2:]).strip())
    prose = [
        p.strip()
        for p in paragraphs
        if p.strip() and not _NOT_PROSE.search(p) and not p.rstrip().endswith(":")
    ]
    document = "\n\n".join(prose)
    if len(split_sentences(document)) < 3:
        return None
    return lines[0].strip(), document


def stdlib_docstrings(_folder: Path) -> pd.DataFrame:
    """One row per kept docstring: module, qualname, kind, summary, document."""
    import pandas as pd

    rows, seen = [], set()
    for module in MODULES:
        path = module_path(module)
        if path is None:  # removed from this Python version
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for qualname, kind, doc in _documented(tree.body):
            pair = summary_and_document(doc)
            if pair is None or pair in seen:
                continue
            seen.add(pair)
            rows.append((module, qualname, kind, *pair))
    return pd.DataFrame(rows, columns=["module", "qualname", "kind", "summary", "document"])


register(
    Dataset(
        name="stdlib-docstrings",
        title="Python stdlib docstrings: PEP 257 summary line + prose body (276 on Python 3.11)",
        source=Stdlib(package="the stdlib's .py sources (79 modules, read with ast)"),
        licence="PSF-2.0 (Python standard library)",
        size_mb=0.0,
        loader=stdlib_docstrings,
        returns="DataFrame: module, qualname, kind (function/method/class), summary (the "
        "docstring's first line), document (its prose paragraphs, >= 3 sentences); rows follow "
        "the running Python's stdlib",
    )
)
