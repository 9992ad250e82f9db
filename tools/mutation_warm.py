"""The warm parent of tools/mutate.py: what it imports and prepares once, before it forks a
child per mutant, so that each child starts in about two seconds instead of five or more."""

from __future__ import annotations

import ast
import gc
import importlib
import importlib.metadata
import sys
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("numpy", "pandas", "scipy", "sklearn", "torch", "transformers", "hypothesis", "pytest")


def warm_up() -> None:
    """Import the heavy libraries once, in the parent every child is forked from."""
    for name in HEAVY:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    for plugin in importlib.metadata.entry_points(group="pytest11"):  # pytest loads them per child
        try:
            plugin.load()
        except Exception:
            pass
    from hypothesis import Phase, settings

    # Same examples every run, no example database, no deadline on a shared machine, and no
    # shrinking: a mutant is killed by the first failing example, its smallest form is not needed.
    settings.register_profile(
        "mutate",
        database=None,
        derandomize=True,
        deadline=None,
        phases=(Phase.explicit, Phase.generate),
        report_multiple_bugs=False,
    )
    settings.load_profile("mutate")


def warm_lab(entry) -> None:
    """Import what the lab's references and grader files import, so each child starts warm."""
    names = list(entry.reference)
    for test in entry.tests:
        folder = str(REPO / Path(test).parent)
        if folder not in sys.path:
            sys.path.append(folder)  # the graders' helper modules, as pytest finds them
        tree = ast.parse((REPO / test).read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.Import):
                names += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                names.append(node.module)
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:
            pass
    try:  # hypothesis reads the constants of each new local module once: here, not per child
        from hypothesis.internal.conjecture.providers import _get_local_constants

        with warnings.catch_warnings():  # "slow code in plugin": its plugin was imported above
            warnings.simplefilter("ignore")
            _get_local_constants()
    except Exception:
        pass
    gc.collect()
    gc.freeze()  # the children's gc passes (pytest runs several at exit) skip the warm heap
