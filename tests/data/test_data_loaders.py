"""Loaders on the real cached data. `make test` fetches everything first; a missing dataset
fails here with the DatasetMissing message naming the fetch command (it is never skipped)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from airoad.data import load, store
from airoad.data.datasets_tabular import ADULT_COLUMNS
from airoad.data.datasets_text import shakespeare_titles


@pytest.fixture(scope="module")
def mnist():
    return load("mnist")


@pytest.fixture(scope="module")
def fashion():
    return load("fashion-mnist")


def _check_idx(data, train_counts, test_counts):
    assert list(data) == ["X_train", "y_train", "X_test", "y_test"]
    assert data["X_train"].shape == (60000, 28, 28) and data["X_train"].dtype == np.uint8
    assert data["X_test"].shape == (10000, 28, 28) and data["X_test"].dtype == np.uint8
    assert data["y_train"].dtype == np.int64 and data["y_test"].dtype == np.int64
    assert np.bincount(data["y_train"]).tolist() == train_counts
    assert np.bincount(data["y_test"]).tolist() == test_counts
    assert data["X_train"].max() == 255 and data["X_train"].min() == 0
    assert data["X_train"].flags.writeable, "learners normalise in place"


def test_mnist(mnist):
    _check_idx(
        mnist,
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949],
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009],
    )
    assert mnist["y_train"][:5].tolist() == [5, 0, 4, 1, 9]


def test_fashion_mnist(fashion):
    _check_idx(fashion, [6000] * 10, [1000] * 10)
    assert fashion["y_train"][:3].tolist() == [9, 0, 0]


def test_adult():
    train, test = load("adult")
    assert train.shape == (32561, 15) and test.shape == (16281, 15)
    for frame in (train, test):
        assert list(frame.columns) == ADULT_COLUMNS
        assert set(frame["income"]) == {"<=50K", ">50K"}
        assert frame["age"].dtype == np.int64
        assert not frame["education"].str.startswith(" ").any()
    assert train["income"].value_counts().to_dict() == {"<=50K": 24720, ">50K": 7841}
    assert test["income"].value_counts().to_dict() == {"<=50K": 12435, ">50K": 3846}
    assert train.isna().sum()[["workclass", "occupation", "native-country"]].tolist() == [
        1836,
        1843,
        583,
    ]
    assert test.iloc[0]["age"] == 25 and test.iloc[0]["education"] == "11th"


def test_credit():
    credit = load("credit")
    assert credit.shape == (400, 11) and credit.index.name == "ID"
    assert credit.index[0] == 1 and credit.index[-1] == 400
    assert credit["Gender"].value_counts().to_dict() == {"Female": 207, "Male": 193}
    assert credit["Balance"].mean() == pytest.approx(520.015)


def test_nyse():
    nyse = load("nyse")
    assert nyse.shape == (6051, 5) and isinstance(nyse.index, pd.DatetimeIndex)
    assert str(nyse.index[0].date()) == "1962-12-03"
    assert nyse["train"].dtype == bool and int(nyse["train"].sum()) == 4281


def test_airline():
    series = load("airline")
    assert isinstance(series, pd.Series) and len(series) == 144
    assert isinstance(series.index, pd.PeriodIndex) and series.index.freqstr == "M"
    assert str(series.index[0]) == "1949-01" and str(series.index[-1]) == "1960-12"
    assert series.iloc[0] == 112 and series.iloc[-1] == 432


def test_shakespeare():
    works = load("shakespeare")
    assert len(works) == 42 and sum(map(len, works.values())) == 5_057_198
    assert works["hamlet"].startswith("HAMLET, PRINCE OF DENMARK")
    assert "To be, or not to be" in works["hamlet"]
    assert len(set("".join(works.values()))) == 84
    titles = shakespeare_titles(store.folder(store.get("shakespeare")))
    assert set(titles) == set(works) and titles["lear"] == "King Lear"


def test_austen():
    novels = load("austen")
    assert list(novels) == [
        "Sense & Sensibility",
        "Pride & Prejudice",
        "Mansfield Park",
        "Emma",
        "Northanger Abbey",
        "Persuasion",
    ]
    assert "It is a truth universally acknowledged" in novels["Pride & Prejudice"]
    assert novels["Emma"].startswith("EMMA")
    assert 3_900_000 < sum(map(len, novels.values())) < 4_100_000


def test_fine_food():
    train, test = load("fine-food")
    assert train.shape == (4000, 3) and test.shape == (1000, 3)
    assert list(train.columns) == ["product", "review", "score"]
    assert train["score"].value_counts().to_dict() == {"great": 2600, "other": 1400}
    assert test["score"].value_counts().to_dict() == {"great": 658, "other": 342}
    assert not train["review"].str.contains("<br", regex=False).any()
    assert list(train.index[:2]) == [0, 1]


def test_python_docs():
    docs = load("python-docs")
    assert len(docs) == 79 and "assert" in docs and "for" in docs
    assert all(isinstance(v, str) and v for v in docs.values())
