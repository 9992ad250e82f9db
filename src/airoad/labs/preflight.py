"""Load a learner's file in a child process and report, as one JSON line, what is wrong.

Run as `python -m airoad.labs.preflight FILE REFERENCE`; the parent enforces a time limit,
so an endless loop at import time cannot hang `airoad check`.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path


def diagnose(path: Path, reference: str) -> dict:
    from airoad.labs.exercise import reference_source
    from airoad.labs.learner import load_file_as_module
    from airoad.labs.stubs import public_names

    source = path.read_text(encoding="utf-8")
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        return {"ok": False, "problem": f"{path.name} line {exc.lineno}: syntax error: {exc.msg}"}
    try:
        module = load_file_as_module(path, "learner_preflight")
    except BaseException as exc:  # the learner's code may raise anything, SystemExit included
        frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
        where = f" (line {frames[-1].lineno})" if frames else ""
        return {
            "ok": False,
            "problem": f"importing {path.name} raised {type(exc).__name__}: {exc}{where}",
        }
    _, ref_source = reference_source(reference)
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


if __name__ == "__main__":
    print(json.dumps(diagnose(Path(sys.argv[1]), sys.argv[2])))
