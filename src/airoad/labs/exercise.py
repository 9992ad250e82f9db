"""`airoad exercise`: write a lab's stub files into the learner's workspace."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from airoad.catalog.progress import mark_learning
from airoad.errors import AiroadError
from airoad.home import writable_dir, write_atomic
from airoad.labs.runner import built_entry
from airoad.labs.stubs import make_stub


def reference_source(module: str) -> tuple[Path, str]:
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise AiroadError(f"reference module {module} is missing from this install")
    path = Path(spec.origin)
    return path, path.read_text(encoding="utf-8")


def workspace_file(workspace: Path, module: str) -> Path:
    """A reference `airoad.foundations.pca` becomes `<workspace>/pca.py`."""
    return workspace / f"{module.rsplit('.', 1)[-1]}.py"


def write_exercise(lab_id: str, workspace: Path, force: bool = False) -> list[Path]:
    """Write one stub per reference module; never overwrite a learner's file unless forced."""
    entry = built_entry(lab_id)
    if workspace.exists() and not workspace.is_dir():
        raise AiroadError(f"--dir {workspace} is a file: give the folder for your exercise files")
    targets = [(m, workspace_file(workspace, m)) for m in entry.reference]
    existing = [str(p) for _, p in targets if p.exists()]
    if existing and not force:
        raise AiroadError(
            f"{', '.join(existing)} already exists and may hold your work; "
            f"check it with `airoad check {lab_id}` or pass --force to overwrite"
        )
    writable_dir(workspace, "the workspace")
    written = []
    for module, path in targets:
        _, source = reference_source(module)
        header = (
            f"# Exercise for the airoad lab '{lab_id}', generated from {module}.\n"
            f"# Replace every `raise NotImplementedError` with your code, keeping the names\n"
            f"# and signatures, then grade it with: airoad check {lab_id}"
            f"{'' if workspace == Path('workspace') else f' --dir {workspace}'}\n"
        )
        write_atomic(path, make_stub(source, header))
        written.append(path)
    mark_learning(lab_id)
    return written
