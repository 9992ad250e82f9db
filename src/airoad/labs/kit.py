"""The runner kit: the few helpers every lab runner shares, so `run()` reads as a table of contents.

- ``param``: a ``Config`` field that declares its valid range or choices (checked before a run);
- ``timed`` / ``cpu_timed`` / ``race`` / ``fit_race``: time our fit beside the library's on the same data;
- ``thread_limit``: torch and BLAS threads for a block, restored after;
- ``frame_xy`` / ``split``: a registry frame into ``X`` and ``y``, and a seeded (stratified) split;
- ``figure``: make a matplotlib figure that is saved into the run folder when the block ends;
- ``render_notes``: the learner's notes, written as templates and filled from the metrics;
- ``changed_from_full``: which settings differ from the full run (a target belongs to that run).

A runner imports from here and from ``airoad.labs.contract``; nothing here knows about any lab.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from airoad.errors import ConfigError
from airoad.labs.contract import RunContext

_RULE_KEYS = ("ge", "gt", "le", "lt", "choices", "min_len", "also")


def param(
    default: Any,
    *,
    ge: float | None = None,
    gt: float | None = None,
    le: float | None = None,
    lt: float | None = None,
    choices: Sequence[Any] | None = None,
    min_len: int | None = None,
    also: Sequence[Any] | None = None,
) -> Any:
    """A ``Config`` field with its allowed values in the field's metadata.

    ``ge``/``gt``/``le``/``lt`` bound a number (each element of a tuple field), ``choices`` lists
    the allowed values of a string, ``min_len`` the fewest elements of a tuple (default 1),
    ``also`` values allowed outside the range (e.g. ``param(0, ge=100, also=(0,))``: 0 = all rows).
    """
    rules = {"ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "min_len": min_len}
    rules["also"] = tuple(also) if also is not None else None
    metadata = {k: v for k, v in rules.items() if v is not None}
    if choices is not None:
        metadata["choices"] = tuple(choices)
    return dataclasses.field(default=default, metadata=metadata)


def field_rules(config_cls: type) -> dict[str, dict[str, Any]]:
    """Field name -> its declared rules (empty when the field declares none)."""
    return {
        f.name: {k: f.metadata[k] for k in _RULE_KEYS if k in f.metadata}
        for f in dataclasses.fields(config_cls)
    }


def describe_rules(rules: dict[str, Any]) -> str:
    """The allowed values in words, e.g. ``>= 1 and <= 100`` or ``one of: svd, eigh``."""
    if "choices" in rules:
        return "one of: " + ", ".join(str(c) for c in rules["choices"])
    words = {"ge": ">=", "gt": ">", "le": "<=", "lt": "<"}
    parts = [f"{words[k]} {rules[k]}" for k in ("ge", "gt", "le", "lt") if k in rules]
    text = " and ".join(parts) if parts else "any value"
    if rules.get("also"):
        text = " or ".join(str(v) for v in rules["also"]) + " or " + text
    return text


def _bad_number(value: Any, rules: dict[str, Any]) -> bool:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if value in rules.get("also", ()):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return True  # nan and inf are never a sensible learning rate, size or seed
    checks = {
        "ge": lambda b: value >= b,
        "gt": lambda b: value > b,
        "le": lambda b: value <= b,
        "lt": lambda b: value < b,
    }
    return any(not checks[k](rules[k]) for k in checks if k in rules)


def validate_config(config: Any) -> None:
    """Raise ``ConfigError`` naming the first key whose value breaks its declared range."""
    for f in dataclasses.fields(config):
        value, rules = getattr(config, f.name), field_rules(type(config))[f.name]
        if isinstance(value, tuple):
            if len(value) < rules.get("min_len", 1):
                raise ConfigError(
                    f"config key '{f.name}' needs at least {rules.get('min_len', 1)} value(s), "
                    f"got none"
                )
            items = value
        else:
            items = (value,)
        for item in items:
            if "choices" in rules and item not in rules["choices"]:
                raise ConfigError(
                    f"config key '{f.name}' is '{item}'; allowed: {describe_rules(rules)}"
                )
            if _bad_number(item, rules):
                allowed = describe_rules(rules)
                allowed = "a finite number" if allowed == "any value" else allowed
                raise ConfigError(f"config key '{f.name}' is {item}; allowed: {allowed}")


def config_check(ok: bool, key: str, why: str) -> None:
    """A rule across fields, for a Config's ``__post_init__``: one line naming the key.

    ``config_check(self.k_max >= self.k_min + 2, "k_max", "must be at least k_min + 2")``
    """
    if not ok:
        raise ConfigError(f"config key '{key}' {why}")


# ---------------------------------------------------------------- timing


def timed(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[Any, float]:
    """Call ``fn(*args, **kwargs)``; return its result and the wall-clock seconds it took."""
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return out, time.perf_counter() - start


def cpu_timed(fn: Callable[[], Any]) -> tuple[Any, float, float]:
    """``fn()``'s result, its CPU seconds (``process_time``: all threads) and its wall seconds."""
    cpu0 = time.process_time()
    out, wall = timed(fn)
    return out, time.process_time() - cpu0, wall


@contextmanager
def thread_limit(n: int) -> Iterator[None]:
    """torch and BLAS limited to ``n`` threads inside the block; torch's count restored after."""
    import torch
    from threadpoolctl import threadpool_limits

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        with threadpool_limits(n):
            yield
    finally:
        torch.set_num_threads(before)


def race(ours: Callable[[], Any], library: Callable[[], Any]) -> dict[str, Any]:
    """Run our callable and the library's on the same data, one after the other.

    Returns ``{"ours": result, "library": result, "ours_seconds": s, "library_seconds": s}``.
    One run each: the lab shows the ratio; `benchmarks/` is where speed is measured properly.
    """
    ours_out, ours_s = timed(ours)
    lib_out, lib_s = timed(library)
    return {"ours": ours_out, "library": lib_out, "ours_seconds": ours_s, "library_seconds": lib_s}


def fit_race(
    ours: Any, library: Any, X_train: Any, y_train: Any, X_test: Any, method: str = "predict"
) -> dict[str, Any]:
    """Fit our estimator and the library's on the same data, then call ``method`` on the test set.

    Returns ``race``'s dict, with the two outputs of ``method`` and the fit+predict seconds.
    """

    def fit_then(model: Any) -> Callable[[], Any]:
        return lambda: getattr(model.fit(X_train, y_train), method)(X_test)

    return race(fit_then(ours), fit_then(library))


# ---------------------------------------------------------------- data


def frame_xy(
    frame: Any, target: str = "target", columns: Sequence[str] | None = None, dtype: Any = float
) -> tuple[Any, Any]:
    """Split a registry DataFrame into a float feature matrix and the target column."""
    import numpy as np

    if target not in frame.columns:
        raise KeyError(f"frame has no target column '{target}'; columns: {list(frame.columns)}")
    cols = list(columns) if columns is not None else [c for c in frame.columns if c != target]
    return frame[cols].to_numpy(dtype=dtype), np.asarray(frame[target].to_numpy())


def split(X: Any, y: Any, test_size: float, seed: int, stratify: bool = True) -> list[Any]:
    """``train_test_split`` with our seed, stratified on ``y`` by default: Xtr, Xte, ytr, yte."""
    from sklearn.model_selection import train_test_split

    return train_test_split(
        X, y, test_size=test_size, random_state=seed, stratify=y if stratify else None
    )


def subsample(n: int, size: int, seed: int) -> Any:
    """Indices of a seeded random subset of ``size`` rows out of ``n`` (all rows if size >= n)."""
    import numpy as np

    if size >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size, replace=False))


# ---------------------------------------------------------------- figures


@contextmanager
def figure(
    ctx: RunContext, name: str, nrows: int = 1, ncols: int = 1, **subplots_kw: Any
) -> Iterator[tuple[Any, Any]]:
    """``with figure(ctx, "loss", figsize=(6, 4)) as (fig, ax): ...`` saves ``loss.png``.

    The saved path is added to ``ctx.figures``, so a runner returns ``figures=ctx.figures``.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(nrows, ncols, **subplots_kw)
    try:
        yield fig, axes
    except BaseException:
        plt.close(fig)
        raise
    ctx.save_figure(fig, name)


# ---------------------------------------------------------------- notes


def changed_from_full(config: Any, keys: Sequence[str] | None = None) -> list[str]:
    """Names of ``keys`` (default: every field) whose value differs from the full config's.

    A target or a published number belongs to the full config; a note claims it only when
    this list is empty.
    """
    full = type(config)()
    names = keys if keys is not None else [f.name for f in dataclasses.fields(config)]
    return [k for k in names if getattr(config, k) != getattr(full, k)]


def render_notes(templates: Sequence[str], values: dict[str, Any]) -> list[str]:
    """Fill each note template (``str.format`` syntax) from the run's metrics and config.

    A template that names a missing value is a bug in the runner, so it fails loudly.
    """
    out = []
    for template in templates:
        try:
            out.append(template.format(**values))
        except KeyError as exc:
            raise KeyError(f"note template names {exc} that the run did not produce") from None
    return out
