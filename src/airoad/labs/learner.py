"""Which implementation a grader tests: the reference module or a learner's file.

`airoad check` sets AIROAD_LEARNER_FILES to a JSON map {reference module: learner file};
the tests' `impl` fixture calls `load_implementation`, so the SAME tests grade both.

While grading, `ImportGuard` keeps the learner's file from importing the code it is meant to
write: the lab's reference modules and the airoad topic packages (except what the reference
itself imports, which the stub keeps). A sibling module of the same lab is served from the
learner's own file, so `from airoad.classic.clustering import KMeans` in a learner's
`mixture.py` uses the learner's KMeans. Only imports made by the learner's files are looked at;
the graders and the libraries import what they like.
"""

from __future__ import annotations

import builtins
import importlib
import importlib.util
import io
import json
import os
import sys
import tokenize
from pathlib import Path
from types import ModuleType

ENV_VAR = "AIROAD_LEARNER_FILES"


def learner_files() -> dict[str, str]:
    raw = os.environ.get(ENV_VAR, "")
    return json.loads(raw) if raw else {}


def module_name(reference: str) -> str:
    return "learner_" + reference.rsplit(".", 1)[-1]


def decode_source(data: bytes) -> str:
    """The text of a Python file as the interpreter reads it (UTF-8 unless a coding line says
    otherwise); UnicodeDecodeError or SyntaxError when it cannot be read."""
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    return data.decode(encoding)


def load_file_as_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if sys.modules.get(name) is module:
            del sys.modules[name]
        raise
    return module


def load_implementation(reference: str) -> ModuleType:
    """The learner's version of `reference` when one is registered, else the reference."""
    path = learner_files().get(reference)
    if path is None:
        return importlib.import_module(reference)
    return load_file_as_module(Path(path), module_name(reference))


def imported_modules(source: str) -> set[str]:
    """Every absolute module name a source file imports (`from a.b import c` gives a.b, a.b.c)."""
    import ast

    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def guard_policy(references: list[str], files: dict) -> dict:
    """The ImportGuard's configuration for a lab: its modules and the topic packages are
    blocked, except what the references themselves import (prerequisite labs the stub keeps)."""
    from airoad.catalog import load_catalog
    from airoad.labs.exercise import reference_source

    lab = set(references)
    topics = {".".join(m.split(".")[:2]) for e in load_catalog().labs for m in e.reference}
    blocked = sorted(topics | lab | {"airoad.labs.runners"})

    def under(name: str, prefixes) -> bool:
        return any(name == p or name.startswith(p + ".") for p in prefixes)

    allowed = set()
    for module in references:
        allowed |= imported_modules(reference_source(module)[1])
    allowed = {a for a in allowed if under(a, blocked) and not under(a, lab)}
    files = {m: str(p) for m, p in files.items()}
    return {"files": files, "blocked": blocked, "allowed": sorted(allowed)}


class ImportGuard:
    """Refuses, in a learner's files only, imports of the code the learner should write."""

    def __init__(self, files: dict[str, str], blocked: list[str], allowed: list[str]):
        self.files = dict(files)  # reference module -> learner file
        self.owner: dict[str, str] = {}  # learner file (as given and resolved) -> reference
        for reference, path in self.files.items():
            self.owner[path] = self.owner[os.path.realpath(path)] = reference
        self.blocked = tuple(blocked)
        self.allowed = frozenset(allowed)

    @classmethod
    def from_config(cls, config: dict) -> ImportGuard:
        return cls(config["files"], config["blocked"], config["allowed"])

    def _is_blocked(self, name: str) -> bool:
        if name in self.allowed:
            return False
        return any(name == b or name.startswith(b + ".") for b in self.blocked)

    def _refuse(self, own: str, name: str) -> ImportError:
        mine = Path(self.files[own]).name
        if name == own:
            why = "the reference this lab asks you to write: write the code instead of importing it"
        else:
            tops = [a for a in self.allowed if not any(a.startswith(b + ".") for b in self.allowed)]
            kept = ", ".join(sorted(tops)) or "nothing"
            why = (
                "which `airoad check` does not let your code import "
                f"(from airoad it may import what the lab's reference imports: {kept})"
            )
        return ImportError(f"{mine} imports {name}, {why}", name=name)

    def _sibling(self, own: str, name: str, want_module: bool) -> ModuleType:
        if name == own:
            raise self._refuse(own, name)
        if not want_module:
            raise ImportError(f"write `from {name} import ...`: your own file is used for it")
        loaded = sys.modules.get(module_name(name))
        if loaded is not None and getattr(loaded, "__file__", None) == self.files[name]:
            return loaded
        return load_file_as_module(Path(self.files[name]), module_name(name))

    def resolve(self, own: str, name: str, fromlist, want_module: bool = False):
        """The module to hand the learner's file instead of importing `name`, or None."""
        if name in self.files:
            return self._sibling(own, name, bool(fromlist) or want_module)
        subs = [f"{name}.{item}" for item in fromlist or ()]
        for sub in subs:
            if sub in self.files:
                self._sibling(own, sub, want_module=False)  # raises: own file, or say how
        if self._is_blocked(name):
            raise self._refuse(own, name)
        for sub in subs:
            if name not in self.allowed and self._is_blocked(sub):
                raise self._refuse(own, sub)
        return None

    def install(self) -> None:
        guard, original, original_import_module = self, builtins.__import__, importlib.import_module

        def guarded_import(name, globals=None, locals=None, fromlist=(), level=0):
            if level == 0:
                scope = globals if isinstance(globals, dict) else sys._getframe(1).f_globals
                own = guard.owner.get(scope.get("__file__"))  # type: ignore[arg-type]
                if own is not None:
                    module = guard.resolve(own, name, fromlist)
                    if module is not None:
                        return module
            return original(name, globals, locals, fromlist, level)

        def guarded_import_module(name, package=None):
            own = guard.owner.get(sys._getframe(1).f_globals.get("__file__"))
            if own is not None and not name.startswith("."):
                module = guard.resolve(own, name, (), want_module=True)
                if module is not None:
                    return module
            return original_import_module(name, package)

        builtins.__import__ = guarded_import
        importlib.import_module = guarded_import_module
