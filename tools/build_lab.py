"""Turn a planned catalog entry into a built one, editing labs.toml in place (keeps comments).

usage: python tools/build_lab.py ID [--reference M ...] [--tests T ...] [--datasets D ...]
       [--cpu-minutes N]
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

CATALOG = Path(__file__).resolve().parents[1] / "src" / "airoad" / "catalog" / "labs.toml"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("lab_id")
    parser.add_argument("--reference", nargs="+")
    parser.add_argument("--tests", nargs="+")
    parser.add_argument("--datasets", nargs="*")
    parser.add_argument("--cpu-minutes", type=float)
    args = parser.parse_args()
    text = CATALOG.read_text(encoding="utf-8")
    start = text.index(f'id = "{args.lab_id}"\n')
    end = text.find("[[lab]]", start)
    end = len(text) if end < 0 else end
    block = text[start:end]
    updates = {
        "status": "built",
        "reference": args.reference,
        "tests": args.tests,
        "datasets": args.datasets,
        "cpu_minutes": None
        if args.cpu_minutes is None
        else (int(args.cpu_minutes) if args.cpu_minutes.is_integer() else args.cpu_minutes),
    }
    for key, value in updates.items():
        if value is None:
            continue
        block, n = re.subn(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", block, flags=re.M)
        if n != 1:
            raise SystemExit(f"{args.lab_id}: key {key} not found exactly once")
    CATALOG.write_text(text[:start] + block + text[end:], encoding="utf-8")


if __name__ == "__main__":
    main()
