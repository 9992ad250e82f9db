"""Readers that turn cached files into NumPy arrays and pandas frames."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pandas costs ~0.5 s to import: `airoad --help` must not pay for it
    import pandas as pd


def sklearn_frame(loader_name: str) -> Callable[[Path], pd.DataFrame]:
    """A loader for a dataset bundled with scikit-learn: features plus a `target` column."""

    def load(_folder: Path) -> pd.DataFrame:
        from sklearn import datasets

        bunch = getattr(datasets, loader_name)(as_frame=True)
        frame = bunch.frame.copy()
        if "target_names" in bunch:
            frame.attrs["target_names"] = [str(t) for t in bunch.target_names]
        return frame

    return load


def mnist_5k(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(X uint8 (5000, 784), y int64 (5000,)): each CSV row is 784 pixels then the label."""
    raw = np.loadtxt(folder / "mnist_5k.csv.gz", delimiter=",", dtype=np.int64)
    return raw[:, :-1].astype(np.uint8), raw[:, -1]


BOSTON_COLUMNS = [
    "CRIM",
    "ZN",
    "INDUS",
    "CHAS",
    "NOX",
    "RM",
    "AGE",
    "DIS",
    "RAD",
    "TAX",
    "PTRATIO",
    "B",
    "LSTAT",
    "MEDV",
]


def boston(folder: Path) -> pd.DataFrame:
    """506 x 14; MEDV (median home value, $1000s) is the target."""
    import pandas as pd

    return pd.read_csv(folder / "boston_housing.csv", header=None, names=BOSTON_COLUMNS)


def csv(fname: str, **kwargs: Any) -> Callable[[Path], pd.DataFrame]:
    """A loader that reads one cached CSV with `pandas.read_csv(**kwargs)`."""

    def load(folder: Path) -> pd.DataFrame:
        import pandas as pd

        return pd.read_csv(folder / fname, **kwargs)

    return load
