"""The lab contract: what every lab runner module provides and returns.

A runner module `airoad.labs.runners.<lab_id_with_underscores>` defines:

- ``Config``: a frozen dataclass whose defaults are the FULL run (the real lesson);
- ``QUICK``: a dict of overrides that make the run take seconds (tests and the tour);
- ``run(config: Config, ctx: RunContext) -> LabResult``.

Runners load real data through ``airoad.data.load`` and never fall back to synthetic data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_type_hints

from airoad.errors import ConfigError

Scalar = int | float | str | bool


@dataclass
class LabResult:
    """What a lab run reports.

    metrics: flat name -> number/str; written to metrics.json and logged to MLflow.
    key_metric: the name in `metrics` of our headline number (shown by the tour).
    library_metric: the name in `metrics` of the trusted library's number on the same data.
    tables: name -> rows (list of dicts), printed after the run and saved as JSON.
    figures: PNG paths written into the run folder.
    notes: short lines for the learner (e.g. the computed conclusion of a test).
    """

    metrics: dict[str, Scalar]
    key_metric: str
    library_metric: str | None = None
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in (self.key_metric, self.library_metric):
            if name is not None and name not in self.metrics:
                raise ValueError(f"LabResult names metric '{name}' that is not in metrics")


class RunContext:
    """What the runner hands a lab: its output folder and a progress reporter."""

    def __init__(
        self,
        out_dir: Path,
        progress: Any = None,
        seed: int = 0,
        lab_id: str | None = None,
        config: Any = None,
    ):
        self.out_dir = Path(out_dir)
        self.lab_id, self.config = lab_id, config  # set by `airoad run`; keys the artifact cache
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._progress = progress  # a rich.progress.Progress, or None when silent
        self.seed = seed
        self.figures: list[Path] = []  # every figure saved so far, in order

    def figure_path(self, name: str) -> Path:
        """Path for a PNG figure in the run folder, e.g. ``ctx.figure_path("scatter")``."""
        return self.out_dir / f"{name}.png"

    def save_figure(self, fig: Any, name: str, tight: bool = True, dpi: int = 110) -> Path:
        """Save a matplotlib figure as `<run folder>/<name>.png`, close it, return the path."""
        import matplotlib.pyplot as plt

        if tight:
            fig.tight_layout()
        path = self.figure_path(name)
        fig.savefig(path, dpi=dpi)
        plt.close(fig)
        if path not in self.figures:
            self.figures.append(path)
        return path

    def save_artifact(self, name: str, writer: Any) -> Path:
        """Keep a trained model for other labs: ``writer(folder)`` writes its files.

        Under `airoad run` it goes to the artifact cache, keyed by lab id and config hash;
        when a runner is called directly (a test, a notebook) it stays in the run folder.
        """
        if self.lab_id is None or self.config is None:
            folder = self.out_dir / "artifacts" / name
            folder.mkdir(parents=True, exist_ok=True)
            writer(folder)
            return folder
        from airoad.labs import artifacts

        return artifacts.save(self.lab_id, self.config, name, writer)

    def track(self, items: Sequence[Any] | range, description: str) -> Iterator[Any]:
        """Iterate over `items` with a progress bar (silent when no progress is attached)."""
        if self._progress is None:
            yield from items
            return
        task = self._progress.add_task(description, total=len(items))
        for item in items:
            yield item
            self._progress.advance(task)
        self._progress.remove_task(task)

    @contextmanager
    def step(self, description: str) -> Iterator[None]:
        """A spinner for one opaque step (e.g. a library fit)."""
        if self._progress is None:
            yield
            return
        task = self._progress.add_task(description, total=None)
        try:
            yield
        finally:
            self._progress.remove_task(task)


# ---------------------------------------------------------------- configs


def config_fields(config_cls: type) -> dict[str, type]:
    hints = get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _coerce(key: str, raw: str, typ: type) -> Any:
    origin = getattr(typ, "__origin__", None)
    try:
        if typ is bool:
            low = raw.strip().lower()
            if low in ("1", "true", "yes", "on"):
                return True
            if low in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if typ in (int, float, str):
            return typ(raw)
        if origin is tuple:
            inner = typ.__args__[0]
            return tuple(inner(v) for v in raw.split(",") if v.strip())
    except ValueError:
        pass
    else:
        raise ConfigError(f"config key '{key}' has a type airoad cannot parse: {typ}")
    kind = getattr(typ, "__name__", str(typ))
    if origin is tuple:
        kind = f"comma-separated {typ.__args__[0].__name__}s"
    raise ConfigError(f"config key '{key}' expects {kind}, got '{raw}'")


def parse_overrides(config_cls: type, pairs: Sequence[str]) -> dict[str, Any]:
    """Turn ``["lr=0.1", "epochs=3"]`` into typed overrides, naming any bad key or value."""
    fields_ = config_fields(config_cls)
    allowed = ", ".join(sorted(fields_))
    out: dict[str, Any] = {}
    for pair in pairs:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}'; allowed keys: {allowed}")
        key, raw = pair.split("=", 1)
        key = key.strip()
        if key not in fields_:
            raise ConfigError(f"unknown config key '{key}'; allowed keys: {allowed}")
        out[key] = _coerce(key, raw, fields_[key])
    return out


def make_config(
    config_cls: type, quick: dict[str, Any], use_quick: bool, overrides: dict[str, Any]
):
    """Full defaults, then the quick overrides if asked, then the user's --set overrides."""
    from airoad.labs.kit import validate_config

    values = dict(quick) if use_quick else {}
    values.update(overrides)
    config = config_cls(**values)
    validate_config(config)  # a range the Config declares is checked before any work starts
    return config
