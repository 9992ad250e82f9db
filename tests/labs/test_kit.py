"""The runner kit: declared ranges are enforced with one-line errors naming the key, and the
timing, data, figure and note helpers do what runners rely on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import RunContext, make_config, parse_overrides
from airoad.labs.kit import (
    changed_from_full,
    config_check,
    cpu_timed,
    describe_rules,
    field_rules,
    figure,
    fit_race,
    frame_xy,
    param,
    render_notes,
    split,
    subsample,
    thread_limit,
    validate_config,
)


@dataclass(frozen=True)
class Cfg:
    epochs: int = param(3, ge=1, le=100)
    lr: float = param(0.1, gt=0.0)
    test_size: float = param(0.25, gt=0.0, lt=1.0)
    solver: str = param("svd", choices=("svd", "eigh"))
    hidden: tuple[int, ...] = param((8, 4), ge=1)
    shuffle: bool = True
    seed: int = param(0, ge=0)


def test_rules_live_in_field_metadata():
    assert field_rules(Cfg)["epochs"] == {"ge": 1, "le": 100}
    assert field_rules(Cfg)["solver"] == {"choices": ("svd", "eigh")}
    assert field_rules(Cfg)["shuffle"] == {}
    assert describe_rules({"ge": 1, "le": 100}) == ">= 1 and <= 100"


def test_defaults_are_valid():
    validate_config(Cfg())


@pytest.mark.parametrize(
    ("pair", "words"),
    [
        ("epochs=0", ["'epochs'", ">= 1"]),
        ("epochs=101", ["'epochs'", "<= 100"]),
        ("lr=0", ["'lr'", "> 0.0"]),
        ("lr=nan", ["'lr'", "nan"]),
        ("lr=inf", ["'lr'", "inf"]),
        ("test_size=2", ["'test_size'", "< 1.0"]),
        ("solver=qr", ["'solver'", "svd, eigh"]),
        ("hidden=", ["'hidden'", "at least 1"]),
        ("hidden=8,0", ["'hidden'", ">= 1"]),
        ("seed=-1", ["'seed'", ">= 0"]),
    ],
)
def test_out_of_range_values_name_the_key_and_the_range(pair, words):
    """A value of the right type but outside its declared range is one clear ConfigError."""
    overrides = parse_overrides(Cfg, [pair])
    with pytest.raises(ConfigError) as err:
        make_config(Cfg, {}, False, overrides)
    message = str(err.value)
    assert "\n" not in message
    for word in words:
        assert word in message, f"{word!r} not in {message!r}"


def test_fit_race_runs_both_on_the_same_data():
    from sklearn.dummy import DummyClassifier

    X, y = np.arange(20.0).reshape(10, 2), np.array([0] * 7 + [1] * 3)
    r = fit_race(DummyClassifier(), DummyClassifier(), X, y, X)
    assert np.array_equal(r["ours"], r["library"]) and (r["ours"] == 0).all()
    assert r["ours_seconds"] >= 0 and r["library_seconds"] >= 0


def test_frame_xy_and_split():
    frame = pd.DataFrame({"a": range(20), "b": range(20, 40), "target": [0, 1] * 10})
    X, y = frame_xy(frame)
    assert X.shape == (20, 2) and X.dtype == np.float64 and list(y[:2]) == [0, 1]
    Xtr, Xte, ytr, yte = split(X, y, test_size=0.5, seed=0)
    assert len(Xte) == 10 and yte.sum() == 5, "the split is stratified on y"
    Xa, *_ = split(X, y, test_size=0.5, seed=0)
    assert np.array_equal(Xa, Xtr), "the same seed gives the same split"
    with pytest.raises(KeyError, match="no target column 'label'"):
        frame_xy(frame, target="label")


def test_subsample_is_seeded_and_sorted():
    a, b = subsample(100, 10, seed=3), subsample(100, 10, seed=3)
    assert np.array_equal(a, b) and len(set(a)) == 10 and list(a) == sorted(a)
    assert np.array_equal(subsample(5, 10, seed=0), np.arange(5))


def test_figure_saves_and_collects(tmp_path):
    ctx = RunContext(tmp_path)
    with figure(ctx, "line", figsize=(3, 2)) as (_fig, ax):
        ax.plot([0, 1], [1, 0])
    assert ctx.figures == [tmp_path / "line.png"] and (tmp_path / "line.png").stat().st_size > 500
    with pytest.raises(RuntimeError), figure(ctx, "broken") as (_fig, _ax):
        raise RuntimeError("plotting failed")
    assert not (tmp_path / "broken.png").exists() and len(ctx.figures) == 1


def test_render_notes_fills_templates_and_fails_on_unknown_names():
    assert render_notes(["acc {acc:.2f} at k = {k}"], {"acc": 0.9812, "k": 5}) == [
        "acc 0.98 at k = 5"
    ]
    with pytest.raises(KeyError, match="'missing'"):
        render_notes(["{missing}"], {})


def test_thread_limit_restores_torch_threads():
    import torch

    before = torch.get_num_threads()
    with thread_limit(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_cpu_timed_reports_cpu_and_wall_seconds():
    out, cpu, wall = cpu_timed(lambda: sum(range(100_000)))
    assert out == sum(range(100_000)) and cpu >= 0 and wall >= 0


def test_changed_from_full_names_the_settings_that_differ():
    assert changed_from_full(Cfg()) == []
    assert changed_from_full(Cfg(epochs=1, seed=3)) == ["epochs", "seed"]
    assert changed_from_full(Cfg(epochs=1, seed=3), ["lr", "seed"]) == ["seed"]


@dataclass(frozen=True)
class Rows:
    rows: int = param(0, ge=100, le=1000, also=(0,))  # 0 = every row
    k_min: int = param(2, ge=1)
    k_max: int = param(8, ge=1)

    def __post_init__(self) -> None:
        config_check(self.k_max >= self.k_min + 2, "k_max", "must be at least k_min + 2")


def test_also_admits_a_value_outside_the_range():
    """`also=(0,)` lets 0 mean "all" while 1..99 stays an error that says so."""
    validate_config(Rows(rows=0))
    validate_config(Rows(rows=500))
    with pytest.raises(ConfigError, match=r"'rows' is 50; allowed: 0 or >= 100 and <= 1000"):
        validate_config(Rows(rows=50))


def test_config_check_names_the_key():
    with pytest.raises(ConfigError, match="config key 'k_max' must be at least k_min"):
        make_config(Rows, {}, False, {"k_min": 5, "k_max": 6})
