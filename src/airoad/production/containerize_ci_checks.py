"""Review a Dockerfile and a GitHub Actions workflow with rules of our own, and check that the
Dockerfile fits the repository it builds from (everything short of building the image).

- A Dockerfile is a list of instructions; ``\\`` continues a line, comment lines may sit inside a
  continuation, and every ``FROM`` starts a new stage. The final stage is what runs, so the
  user, the health check and what gets copied are judged there.
- Each rule returns ``Finding(rule, where, message)``; an empty list means the file passed. The
  rules a reviewer cares about: multi-stage, pinned bases (a tag, not ``latest``; a digest is
  stronger), non-root final ``USER``, ``HEALTHCHECK``, exec-form ``CMD``, ``COPY`` not ``ADD``,
  no whole-context copy in the final stage, no secrets baked into ``ENV``/``ARG``.
- ``yaml.safe_load`` reads the workflow key ``on:`` as the boolean ``True`` (YAML 1.1).
- ``.dockerignore``: the last pattern matching a path or one of its parent folders decides.
"""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from airoad.production.containerize_ci import TAG_ONLY

SECRET_NAME = re.compile(r"(?i)(secret|passw(or)?d|token|api_?keys?|private_?key|credential)")


@dataclass(frozen=True)
class Finding:
    """One broken rule: its name, where (``line N`` or a YAML path) and what to do about it."""

    rule: str
    where: str
    message: str


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction: first line, stage index (-1 before the first FROM),
    upper-case keyword, leading ``--flag=value`` options and the remaining arguments."""

    line: int
    stage: int
    keyword: str
    flags: dict[str, str]
    args: str


# ---------------------------------------------------------------- Dockerfile review


def parse_dockerfile(text: str) -> list[Instruction]:
    """Instructions with ``\\`` continuations joined; comment and blank lines skipped (also
    inside a continuation); the stage index grows by one at each ``FROM``."""
    out: list[Instruction] = []
    stage, buf, first = -1, "", 0
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not buf:
            first = number
        buf += " " + line[:-1].strip() if line.endswith("\\") else " " + line
        if line.endswith("\\"):
            continue
        keyword, _, rest = buf.strip().partition(" ")
        keyword, buf = keyword.upper(), ""
        stage += keyword == "FROM"
        flags = {}
        while (m := re.match(r"--([\w-]+)(?:=(\S*))?\s*", rest)) and keyword != "RUN":
            flags[m.group(1)], rest = m.group(2) or "", rest[m.end() :]
        out.append(Instruction(first, stage, keyword, flags, rest.strip()))
    return out


def _env_pairs(ins: Instruction) -> list[tuple[str, str]]:
    """(name, value) pairs of an ENV or ARG (``K=V ...``, legacy ``ENV K V``, bare ``ARG K``)."""
    if "=" not in ins.args.split(" ", 1)[0]:
        name, _, value = ins.args.partition(" ")
        return [(name, value.strip())]
    return [tuple(p.split("=", 1)) for p in re.findall(r"\S+=(?:\"[^\"]*\"|\S*)", ins.args)]


def _pinned(image: str) -> bool:
    """True for ``name:tag`` with a tag other than ``latest``, or any ``@sha256:`` digest."""
    if "@sha256:" in image or image == "scratch":
        return True
    name, _, tag = image.rpartition(":")
    return bool(name) and "/" not in tag and tag != "latest"


def check_dockerfile(text: str) -> list[Finding]:
    """Review a Dockerfile: multi-stage, pinned bases, non-root final USER, HEALTHCHECK, exec-form
    CMD/ENTRYPOINT, COPY not ADD, no whole-context copy in the final stage, no secrets in
    ENV/ARG. Returns the findings (empty = passes), in line order."""
    ins, found = parse_dockerfile(text), []
    froms = [i for i in ins if i.keyword == "FROM"]
    if len(froms) < 2:
        found.append(Finding("multi-stage", "line 1", "use a builder stage and a clean final one"))
    aliases: set[str] = set()
    for f in froms:
        image, *rest = f.args.split() or [""]  # a bare FROM names no image: not pinned
        if image.lower() not in aliases and not _pinned(image):
            found.append(Finding("pinned-base", f"line {f.line}", f"pin {image} to an exact tag"))
        if len(rest) == 2 and rest[0].upper() == "AS":
            aliases.add(rest[1].lower())
    last = froms[-1].line if froms else 0
    final = [i for i in ins if froms and i.stage == froms[-1].stage]
    users = [i.args.split(":")[0] for i in final if i.keyword == "USER"]
    if not users or users[-1] in ("root", "0"):
        found.append(Finding("non-root-user", f"line {last}", "end the final stage as non-root"))
    checks = [i for i in final if i.keyword == "HEALTHCHECK"]
    if not checks or checks[-1].args.upper() == "NONE":
        found.append(Finding("healthcheck", f"line {last}", "add a HEALTHCHECK on /health"))
    for i in ins:
        where = f"line {i.line}"
        if i.keyword in ("CMD", "ENTRYPOINT") and not i.args.startswith("["):
            found.append(Finding("exec-form", where, f"write {i.keyword} as a JSON array"))
        if i.keyword == "ADD":
            found.append(Finding("copy-not-add", where, "use COPY (ADD fetches URLs, unpacks)"))
        whole = i.keyword in ("COPY", "ADD") and "from" not in i.flags
        if whole and i in final and set(i.args.split()[:-1]) & {".", "./", "*"}:
            found.append(Finding("copy-only-needed", where, "copy named paths, not the context"))
        if i.keyword in ("ENV", "ARG"):
            for name, value in _env_pairs(i):
                if SECRET_NAME.search(name) and (value or i.keyword == "ARG"):
                    msg = f"{name} would stay in the image; pass it at run time or as a secret"
                    found.append(Finding("no-secrets", where, msg))
    return sorted(found, key=lambda f: int(f.where.split()[1]))


# ---------------------------------------------------------------- workflow review


def check_workflow(text: str) -> list[Finding]:
    """Review a GitHub Actions workflow: push + pull_request + ``v*`` tag triggers, jobs with
    ``runs-on`` and steps (each ``uses`` xor ``run``, ``needs`` known), actions pinned to an exact
    ``vX.Y.Z`` or commit SHA, explicit least-privilege permissions (write only in a tag-gated
    job), pushes only on tags, no literal secrets. Returns the findings (empty = passes)."""
    doc, found = yaml.safe_load(text) or {}, []
    if not isinstance(doc, dict):
        return [Finding("job-structure", "$", "a workflow is a mapping with on, jobs, ...")]
    on = doc.get("on", doc.get(True)) or {}  # YAML 1.1 reads the key `on` as True
    on = on if isinstance(on, dict) else {k: None for k in ([on] if isinstance(on, str) else on)}
    push = on.get("push") if isinstance(on.get("push"), dict) else {}
    if "pull_request" not in on or "push" not in on or "v*" not in (push.get("tags") or []):
        found.append(Finding("triggers", "on", "trigger on push, pull_request and v* tags"))
    perms = doc.get("permissions")
    if not isinstance(perms, dict) or any(v not in ("read", "none") for v in perms.values()):
        found.append(Finding("least-privilege", "permissions", "set read-only permissions"))
    jobs = doc.get("jobs") or {}
    for name, job in jobs.items():
        if not isinstance(job, dict):
            found.append(Finding("job-structure", f"jobs.{name}", "a job is a mapping"))
            continue
        found += _check_job(f"jobs.{name}", job, set(jobs))
    return found


def _check_job(where: str, job: dict[str, Any], job_names: set[str]) -> list[Finding]:
    """The rules of one job and its steps (``where`` is ``jobs.<name>``)."""
    found, steps, needs = [], job.get("steps") or [], job.get("needs", [])
    if (
        "runs-on" not in job
        or not steps
        or set([needs] if isinstance(needs, str) else needs) - job_names
    ):
        found.append(Finding("job-structure", where, "give it runs-on, steps and known needs"))
    gated = "refs/tags/v" in str(job.get("if", ""))
    perms = job.get("permissions", {})
    if not isinstance(perms, dict) or any(
        v not in ("read", "write", "none") for v in perms.values()
    ):
        found.append(Finding("least-privilege", where, "permissions are read, write or none"))
    elif "write" in perms.values() and not gated:
        found.append(Finding("least-privilege", where, "grant write only to the tag job"))
    for k, step in enumerate(steps):
        at, uses, args = f"{where}.steps[{k}]", str(step.get("uses", "")), step.get("with") or {}
        if ("uses" in step) == ("run" in step):
            found.append(Finding("job-structure", at, "a step has uses or run, not both"))
        ref = uses.partition("@")[2]
        if (
            uses
            and not uses.startswith("./")
            and not re.fullmatch(r"v\d+\.\d+\.\d+|[0-9a-f]{40}", ref)
        ):
            found.append(Finding("pinned-actions", at, f"pin {uses} to vX.Y.Z or a commit SHA"))
        pushes = args.get("push") not in (None, False, "false") or "docker push" in str(
            step.get("run")
        )
        if pushes and not gated:
            found.append(Finding("push-on-tag-only", at, f"push only when {TAG_ONLY}"))
        for key, value in {**args, **(step.get("env") or {})}.items():
            if SECRET_NAME.search(key) and isinstance(value, str) and "${{" not in value:
                found.append(Finding("no-inline-secrets", at, f"read {key} from secrets"))
    return found


# ---------------------------------------------------------------- the repository side


def copy_sources(text: str) -> list[str]:
    """Build-context paths read by COPY/ADD (``--from=`` copies come from a stage, not the repo)."""
    out = []
    for i in parse_dockerfile(text):
        if i.keyword in ("COPY", "ADD") and "from" not in i.flags:
            parts = json.loads(i.args) if i.args.startswith("[") else i.args.split()
            out += parts[:-1]
    return out


def dockerignore_excludes(ignore_text: str, path: str) -> bool:
    """Docker's rule: the LAST pattern matching the path or one of its parent folders decides;
    ``!`` re-includes; ``*`` and ``?`` stop at ``/``, ``**`` crosses folders."""
    parts = path.strip("/").split("/")
    prefixes = ["/".join(parts[: k + 1]) for k in range(len(parts))]
    excluded = False
    for raw in ignore_text.splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate, pattern = pattern.startswith("!"), pattern.lstrip("!").strip("/")
        rx = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*")
        rx = rx.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(rx, p) for p in prefixes):
            excluded = not negate
    return excluded


def check_build_context(dockerfile: str, dockerignore: str, root: Path) -> list[Finding]:
    """Every path the Dockerfile copies exists under ``root`` and is not ignored."""
    found = []
    for src in copy_sources(dockerfile):
        hits = sorted(Path(root).glob(src.rstrip("/"))) if fnmatch.fnmatch(src, "*[*?]*") else []
        if not (Path(root) / src).exists() and not hits:
            found.append(Finding("copy-exists", src, f"{src} is not in the repository"))
        elif dockerignore_excludes(dockerignore, src.rstrip("/")):
            found.append(Finding("copy-not-ignored", src, f"the ignore file excludes {src}"))
    return found


def parse_pins(text: str) -> dict[str, str]:
    """``name -> version`` of ``name==version`` lines (names lower-cased, ``-_.`` runs -> ``-``);
    a requirement that is not pinned maps to ``""``. Comments and ``-r/-c`` lines are skipped."""
    pins = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or line.startswith("-"):
            continue
        name, _, version = re.split(r";", line)[0].partition("==")
        key = re.sub(r"[-_.]+", "-", re.split(r"[\s\[<>=!~]", name.strip())[0].lower())
        pins[key] = version.strip() if version and "*" not in version else ""
    return pins


def check_pins(image_requirements: str, repo_requirements: str) -> list[Finding]:
    """Each requirement the image installs is pinned with ``==`` to the repo's version."""
    repo, found = parse_pins(repo_requirements), []
    for name, version in parse_pins(image_requirements).items():
        if not version:
            found.append(Finding("pinned-requirements", name, f"pin {name} with =="))
        elif repo.get(name) != version:
            msg = f"{name}=={version}, but the repo pins {repo.get(name) or 'nothing'}"
            found.append(Finding("pinned-requirements", name, msg))
    return found


def app_target(dockerfile: str) -> str:
    """The ``module:attr`` that the final CMD hands to ``uvicorn --factory``."""
    cmds = [i for i in parse_dockerfile(dockerfile) if i.keyword == "CMD"]
    args = json.loads(cmds[-1].args) if cmds and cmds[-1].args.startswith("[") else []
    if "--factory" not in args[:-1]:
        raise ValueError("the final CMD does not run `uvicorn --factory module:attr` in exec form")
    return args[args.index("--factory") + 1]


def resolve_target(target: str) -> Callable[..., Any]:
    """Import ``module:attr`` and return it; a clear ValueError when it is missing or not callable."""
    module, _, attr = target.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr, None) if attr else None
    except ImportError as exc:
        raise ValueError(f"{target}: cannot import {module} ({exc})") from None
    if not callable(obj):
        raise ValueError(f"{target} is not a callable module:attr")
    return obj
