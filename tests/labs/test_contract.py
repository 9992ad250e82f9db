"""Config overrides: typed parsing, and clear errors naming the key and the allowed ones."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, make_config, parse_overrides


@dataclass(frozen=True)
class Config:
    epochs: int = 10
    lr: float = 0.1
    name: str = "adam"
    verbose: bool = False
    sizes: tuple[int, ...] = (2, 3)


def test_overrides_are_typed():
    """Each --set value is parsed to its field's type."""
    got = parse_overrides(Config, ["epochs=3", "lr=1e-3", "name=sgd", "verbose=yes", "sizes=4,5,6"])
    assert got == {"epochs": 3, "lr": 1e-3, "name": "sgd", "verbose": True, "sizes": (4, 5, 6)}


@pytest.mark.parametrize(
    "pair, words",
    [
        ("epoch=3", ["unknown config key 'epoch'", "epochs, lr, name, sizes, verbose"]),
        ("epochs=three", ["'epochs' expects int", "'three'"]),
        ("verbose=maybe", ["'verbose' expects bool"]),
        ("sizes=1,x", ["'sizes' expects comma-separated ints"]),
        ("epochs", ["key=value", "allowed keys"]),
    ],
)
def test_bad_overrides_name_the_key(pair, words):
    """A bad key or value is one error that names it (and the allowed keys)."""
    with pytest.raises(ConfigError) as info:
        parse_overrides(Config, [pair])
    for word in words:
        assert word in str(info.value)


def test_quick_then_user_overrides():
    """Defaults are the full run; --quick applies QUICK; --set wins over both."""
    quick = {"epochs": 1, "lr": 0.5}
    assert make_config(Config, quick, False, {}).epochs == 10
    cfg = make_config(Config, quick, True, {"lr": 0.01})
    assert (cfg.epochs, cfg.lr) == (1, 0.01)


def test_lab_result_names_real_metrics():
    """A LabResult whose key metric is not among its metrics is a bug caught at once."""
    with pytest.raises(ValueError, match="acc"):
        LabResult(metrics={"loss": 1.0}, key_metric="acc")
