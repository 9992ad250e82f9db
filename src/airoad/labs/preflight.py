"""Load a learner's file in a boxed child process and report what is wrong with it.

Run by `airoad check` as `python -m airoad.labs.preflight` inside the grading box: the file to
load, its reference and the import guard arrive on the box's channel, and the verdict leaves
on it as a signed record, so nothing the learner's code prints can corrupt it. The libraries
the reference imports are imported first; then a `start` record starts the parent's clock, so
the time limit measures the learner's own module-level code.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import traceback
from pathlib import Path

LOAD_ID = "<loading>"


def _preimport(reference_source: str, lab_modules: set[str]) -> None:
    from airoad.labs.learner import imported_modules

    for name in sorted(imported_modules(reference_source)):
        if not any(name == m or name.startswith(m + ".") for m in lab_modules):
            with contextlib.suppress(Exception):
                importlib.import_module(name)


def diagnose(path: Path, reference: str, lab_modules=(), started=lambda: None) -> dict:
    from airoad.labs.exercise import reference_source
    from airoad.labs.learner import decode_source, load_file_as_module
    from airoad.labs.stubs import public_names

    source = decode_source(path.read_bytes())
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        return {"ok": False, "problem": f"{path.name} line {exc.lineno}: syntax error: {exc.msg}"}
    _, ref_source = reference_source(reference)
    _preimport(ref_source, {reference, *lab_modules})
    started()
    try:
        module = load_file_as_module(path, "learner_preflight")
    except BaseException as exc:  # the learner's code may raise anything, SystemExit included
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f" (line {frames[-1].lineno})" if frames else ""
        return {
            "ok": False,
            "problem": f"importing {path.name} raised {type(exc).__name__}: {exc}{where}",
        }
    missing = []
    for qualname in public_names(ref_source):
        obj = module
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                missing.append(qualname)
                break
    if missing:
        return {
            "ok": False,
            "problem": f"{path.name} does not define {', '.join(missing)} "
            f"(the lab's tests call these names)",
        }
    return {"ok": True, "problem": ""}


def main() -> None:
    from airoad.labs.grading_box import Channel
    from airoad.labs.learner import ImportGuard

    channel = Channel.from_env()
    if channel is None:
        sys.exit("run by `airoad check` only")
    config = channel.config
    ImportGuard.from_config(config["guard"]).install()
    verdict = diagnose(
        Path(config["file"]),
        config["reference"],
        lab_modules=set(config["guard"]["files"]),
        started=lambda: channel.send({"t": "start", "id": LOAD_ID}),
    )
    channel.send({"t": "verdict", **verdict})
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(0)  # threads or atexit handlers of the learner's file must not keep us alive


if __name__ == "__main__":
    main()
