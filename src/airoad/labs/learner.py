"""Which implementation a grader tests: the reference module or a learner's file.

`airoad check` sets AIROAD_LEARNER_FILES to a JSON map {reference module: learner file};
the tests' `impl` fixture calls `load_implementation`, so the SAME tests grade both.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType

ENV_VAR = "AIROAD_LEARNER_FILES"


def learner_files() -> dict[str, str]:
    raw = os.environ.get(ENV_VAR, "")
    return json.loads(raw) if raw else {}


def load_file_as_module(path: Path, name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look the module up by name
    spec.loader.exec_module(module)
    return module


def load_implementation(reference: str) -> ModuleType:
    """The learner's version of `reference` when one is registered, else the reference."""
    path = learner_files().get(reference)
    if path is None:
        return importlib.import_module(reference)
    return load_file_as_module(Path(path), "learner_" + reference.rsplit(".", 1)[-1])
