"""The roadmap as data: `labs.toml` loaded into frozen dataclasses and checked.

`labs.toml` lists the phases of the curriculum (`[[phase]]`) and every project or topic of the
five source roadmaps as a lab (`[[lab]]`), built or planned. `load_catalog()` reads it with the
stdlib `tomllib`, validates every entry and returns a `Catalog`. A malformed file raises
`AiroadError` with one sentence naming the entry and the key at fault.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from airoad.errors import AiroadError

ROADMAPS = (
    "000_611b0d8d7e9148d6.txt",
    "001_6e96a5d11c08dd98.txt",
    "002_754df75cb6f727fb.txt",
    "003_7f5de5c50fefa3e1.txt",
    "004_6e06e22a658f6a66.txt",
)
LAYERS = ("must", "should", "good")
STATUSES = ("built", "planned")

_KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
_MODULE = re.compile(r"^airoad(\.[a-z_][a-z0-9_]*)+$")
_TEST = re.compile(r"^tests/([a-z_][a-z0-9_]*/)*test_[a-z0-9_]+\.py$")

_PHASE_KEYS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "title": str,
    "order": int,
    "summary": str,
}
_LAB_KEYS: dict[str, type | tuple[type, ...]] = {
    "id": str,
    "title": str,
    "phase": str,
    "layer": str,
    "roadmaps": list,
    "prerequisites": list,
    "reference": list,
    "tests": list,
    "datasets": list,
    "cpu_minutes": (int, float),
    "status": str,
    "summary": str,
}

# Optional on a lab: grading limits for `airoad check` above its defaults (a lab whose tests load
# a model, start a server or spawn processes needs more): positive numbers.
_OPTIONAL_LAB_KEYS = ("check_memory_mb", "check_test_timeout")


@dataclass(frozen=True)
class Phase:
    """One stage of the curriculum, e.g. `foundations` (order 1)."""

    id: str
    title: str
    order: int
    summary: str


@dataclass(frozen=True)
class LabEntry:
    """One lab: a project or topic of the roadmaps, with what grades it and what it needs."""

    id: str
    title: str
    phase: str
    layer: str
    roadmaps: tuple[str, ...]
    prerequisites: tuple[str, ...]
    reference: tuple[str, ...]
    tests: tuple[str, ...]
    datasets: tuple[str, ...]
    cpu_minutes: float
    status: str
    summary: str
    check_memory_mb: float | None = None  # `airoad check --memory-mb` default for this lab
    check_test_timeout: float | None = None  # `airoad check --timeout` default for this lab

    @property
    def built(self) -> bool:
        return self.status == "built"

    @property
    def runner_module(self) -> str:
        return "airoad.labs.runners." + self.id.replace("-", "_")

    @property
    def lesson_path(self) -> Path:
        return Path(str(files("airoad").joinpath("lessons", f"{self.id}.md")))


@dataclass(frozen=True)
class Catalog:
    """Every phase (in order) and every lab (in file order)."""

    phases: tuple[Phase, ...]
    labs: tuple[LabEntry, ...]

    def get(self, lab_id: str) -> LabEntry:
        for lab in self.labs:
            if lab.id == lab_id:
                return lab
        ids = [lab.id for lab in self.labs]
        close = difflib.get_close_matches(lab_id, ids, n=1, cutoff=0.5)
        hint = f"; did you mean '{close[0]}'?" if close else ";"
        raise AiroadError(f"unknown lab '{lab_id}'{hint} (`airoad labs` lists them)")

    def phase(self, phase_id: str) -> Phase:
        for phase in self.phases:
            if phase.id == phase_id:
                return phase
        raise AiroadError(f"unknown phase '{phase_id}'")

    def by_phase(self) -> list[tuple[Phase, list[LabEntry]]]:
        """Phases in order, each with its labs in file order (empty phases included)."""
        return [(p, [lab for lab in self.labs if lab.phase == p.id]) for p in self.phases]

    def built(self) -> list[LabEntry]:
        return [lab for lab in self.labs if lab.built]

    def ids(self) -> list[str]:
        return [lab.id for lab in self.labs]


def default_path() -> Path:
    return Path(str(files("airoad.catalog").joinpath("labs.toml")))


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and validate the catalog (the packaged `labs.toml` unless `path` is given)."""
    if path is None:
        return _load_default()
    return _load(Path(path))


@functools.lru_cache(maxsize=1)
def _load_default() -> Catalog:
    return _load(default_path())


def _load(path: Path) -> Catalog:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise AiroadError(f"catalog file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise AiroadError(f"{path.name} is not valid TOML: {exc}") from None
    return _build(raw, path.name)


def _build(raw: dict[str, Any], where: str) -> Catalog:
    extra = sorted(set(raw) - {"phase", "lab"})
    if extra:
        raise AiroadError(
            f"{where}: unknown top-level key '{extra[0]}' (expected [[phase]], [[lab]])"
        )
    phase_rows = _table_list(raw, "phase", where)
    phases = tuple(_phase(row, i, where) for i, row in enumerate(phase_rows))
    _check_phases(phases, where)
    phases = tuple(sorted(phases, key=lambda p: p.order))
    lab_rows = _table_list(raw, "lab", where)
    labs = tuple(_lab(row, i, where) for i, row in enumerate(lab_rows))
    _check_labs(labs, {p.id for p in phases}, where)
    return Catalog(phases=phases, labs=labs)


def _table_list(raw: dict[str, Any], key: str, where: str) -> list[dict[str, Any]]:
    rows = raw.get(key)
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise AiroadError(f"{where}: needs at least one [[{key}]] table")
    return rows


def _name(kind: str, row: dict[str, Any], index: int) -> str:
    ident = row.get("id")
    return f"{kind} '{ident}'" if isinstance(ident, str) and ident else f"{kind} #{index + 1}"


def _check_keys(row: dict[str, Any], spec: dict[str, Any], who: str, where: str) -> None:
    for key, kind in spec.items():
        if key not in row:
            raise AiroadError(f"{where}: {who} is missing key '{key}'")
        value = row[key]
        if isinstance(value, bool) or not isinstance(value, kind):
            expected = "a number" if kind == (int, float) else f"a {kind.__name__}"
            raise AiroadError(f"{where}: {who}: key '{key}' must be {expected}, got {value!r}")
        if kind is list and not all(isinstance(v, str) for v in value):
            raise AiroadError(f"{where}: {who}: key '{key}' must be a list of strings")
        if kind is str and not value.strip():
            raise AiroadError(f"{where}: {who}: key '{key}' is empty")
    unknown = sorted(set(row) - set(spec))
    if unknown:
        raise AiroadError(f"{where}: {who} has unknown key '{unknown[0]}'")


def _phase(row: dict[str, Any], index: int, where: str) -> Phase:
    who = _name("phase", row, index)
    _check_keys(row, _PHASE_KEYS, who, where)
    if not _KEBAB.match(row["id"]):
        raise AiroadError(f"{where}: {who}: key 'id' must be kebab-case")
    return Phase(id=row["id"], title=row["title"], order=row["order"], summary=row["summary"])


def _optional_limits(row: dict[str, Any], who: str, where: str) -> dict[str, float]:
    found = {}
    for key in _OPTIONAL_LAB_KEYS:
        if key in row:
            value = row[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise AiroadError(f"{where}: {who}: key '{key}' must be a number, got {value!r}")
            if not 0 < value < float("inf"):
                raise AiroadError(f"{where}: {who}: key '{key}' must be positive, got {value!r}")
            found[key] = float(value)
    return found


def _lab(row: dict[str, Any], index: int, where: str) -> LabEntry:
    who = _name("lab", row, index)
    limits = _optional_limits(row, who, where)
    row = {k: v for k, v in row.items() if k not in _OPTIONAL_LAB_KEYS}
    _check_keys(row, _LAB_KEYS, who, where)
    return LabEntry(
        id=row["id"],
        title=row["title"],
        phase=row["phase"],
        layer=row["layer"],
        roadmaps=tuple(row["roadmaps"]),
        prerequisites=tuple(row["prerequisites"]),
        reference=tuple(row["reference"]),
        tests=tuple(row["tests"]),
        datasets=tuple(row["datasets"]),
        cpu_minutes=float(row["cpu_minutes"]),
        status=row["status"],
        summary=row["summary"],
        **limits,
    )


def _check_phases(phases: tuple[Phase, ...], where: str) -> None:
    seen: dict[str, Phase] = {}
    orders: dict[int, str] = {}
    for phase in phases:
        if phase.id in seen:
            raise AiroadError(f"{where}: phase '{phase.id}': key 'id' is used twice")
        if phase.order in orders:
            raise AiroadError(
                f"{where}: phase '{phase.id}': key 'order' {phase.order} "
                f"is also used by phase '{orders[phase.order]}'"
            )
        seen[phase.id] = phase
        orders[phase.order] = phase.id


def _check_labs(labs: tuple[LabEntry, ...], phase_ids: set[str], where: str) -> None:
    ids: set[str] = set()
    known_datasets = _known_datasets()
    for lab in labs:
        who = f"lab '{lab.id}'"

        def bad(key: str, why: str) -> AiroadError:
            return AiroadError(f"{where}: {who}: key '{key}' {why}")  # noqa: B023 (called before the loop moves on)

        if not _KEBAB.match(lab.id):
            raise bad("id", "must be kebab-case (lowercase words joined by '-')")
        if lab.id in ids:
            raise bad("id", "is used twice (lab ids must be unique)")
        ids.add(lab.id)
        if lab.phase not in phase_ids:
            raise bad(
                "phase",
                f"names unknown phase '{lab.phase}' (known: {', '.join(sorted(phase_ids))})",
            )
        if lab.layer not in LAYERS:
            raise bad("layer", f"must be one of {'/'.join(LAYERS)}, got '{lab.layer}'")
        if lab.status not in STATUSES:
            raise bad("status", f"must be one of {'/'.join(STATUSES)}, got '{lab.status}'")
        if not lab.roadmaps:
            raise bad("roadmaps", "must name at least one roadmap file")
        for name in lab.roadmaps:
            if name not in ROADMAPS:
                raise bad("roadmaps", f"names unknown roadmap file '{name}'")
        if len(set(lab.roadmaps)) != len(lab.roadmaps):
            raise bad("roadmaps", "lists a roadmap twice")
        for name in lab.datasets:
            if name not in known_datasets:
                raise bad("datasets", f"names unknown dataset '{name}'")
        for module in lab.reference:
            if not _MODULE.match(module):
                raise bad("reference", f"'{module}' is not a module path like airoad.topic.module")
        for test in lab.tests:
            if not _TEST.match(test):
                raise bad("tests", f"'{test}' is not a path like tests/<topic>/test_<name>.py")
        if lab.built and not (lab.reference and lab.tests):
            raise bad("reference", "and 'tests' must be non-empty for a built lab")
        if not lab.cpu_minutes > 0:
            raise bad("cpu_minutes", f"must be positive, got {lab.cpu_minutes}")
        if lab.id in lab.prerequisites:
            raise bad("prerequisites", "lists the lab itself")
    for lab in labs:
        for pre in lab.prerequisites:
            if pre not in ids:
                raise AiroadError(
                    f"{where}: lab '{lab.id}': key 'prerequisites' names unknown lab '{pre}'"
                )
    _check_acyclic(labs, where)


def _check_acyclic(labs: tuple[LabEntry, ...], where: str) -> None:
    """Depth-first search; a back edge is a cycle, reported as a -> b -> ... -> a."""
    graph = {lab.id: lab.prerequisites for lab in labs}
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt) :] + [nxt]
                raise AiroadError(
                    f"{where}: lab '{nxt}': key 'prerequisites' forms a cycle "
                    f"({' -> '.join(cycle)})"
                )
            if nxt not in state:
                visit(nxt, path)
        path.pop()
        state[node] = 2

    for lab in labs:
        if lab.id not in state:
            visit(lab.id, [])


def _known_datasets() -> set[str]:
    from airoad.data.store import all_datasets  # lazy: the registry imports loaders

    return {ds.name for ds in all_datasets()}
