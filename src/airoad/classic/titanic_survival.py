"""Titanic survival, end to end: the reusable glue between the data and the models.

``add_features`` derives a few columns from the raw passenger table, ``make_preprocessor``
scales the numbers and one-hot encodes the categories (our transformers from the
feature-engineering lab), ``make_pipeline_factory`` puts any classifier behind that
preprocessing, and ``compare_models`` cross-validates several such pipelines on the SAME
stratified folds (our evaluation pipeline from the model-evaluation lab), one row per model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.pipeline import Pipeline

from airoad.classic.feature_engineering import OneHotEncoder, StandardScaler
from airoad.classic.model_evaluation import (
    cross_val_proba,
    stratified_kfold_indices,
    summarize_folds,
)

PASSENGER_CLASSES = ("1st", "2nd", "3rd")  # every other class value is a crew department
NUMERIC = ("age", "log_fare", "sibsp", "parch", "family_size")
CATEGORICAL = ("gender", "class", "embarked", "child", "alone")


def add_features(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of the Titanic table with five derived columns (the input is left untouched).

    family_size = sibsp + parch + 1 (the person plus relatives aboard); alone = 1 if
    family_size == 1 else 0; log_fare = log(1 + fare) (fares are very skewed); child = 1 if
    age < 14 else 0 ("women and children first"); crew = 1 if class is not 1st/2nd/3rd else 0.
    The 0/1 columns are ints.
    """
    out = df.copy()
    out["family_size"] = out["sibsp"] + out["parch"] + 1
    out["alone"] = (out["family_size"] == 1).astype(int)
    out["log_fare"] = np.log1p(out["fare"].astype(float))
    out["child"] = (out["age"] < 14).astype(int)
    out["crew"] = (~out["class"].isin(PASSENGER_CLASSES)).astype(int)
    return out


def make_preprocessor(
    numeric: tuple[str, ...] = NUMERIC, categorical: tuple[str, ...] = CATEGORICAL
) -> ColumnTransformer:
    """A ColumnTransformer: our StandardScaler on `numeric`, our OneHotEncoder
    (handle_unknown="ignore") on `categorical`; every other column is dropped.

    Output columns: the scaled numbers first, then the indicator blocks, named like
    ``num__age`` and ``cat__gender_female`` by ``get_feature_names_out``.
    """
    return ColumnTransformer(
        [
            ("num", StandardScaler(), list(numeric)),
            ("cat", OneHotEncoder(handle_unknown="ignore"), list(categorical)),
        ]
    )


def make_pipeline_factory(
    make_model: Callable[[], Any],
    numeric: tuple[str, ...] = NUMERIC,
    categorical: tuple[str, ...] = CATEGORICAL,
) -> Callable[[], Pipeline]:
    """Wrap a model factory: the result builds a FRESH ``Pipeline([("features", preprocessor),
    ("model", make_model())])`` each time it is called, so every fold refits the
    preprocessing on its own training rows (no leakage from the test fold).
    """

    def build() -> Pipeline:
        return Pipeline(
            [("features", make_preprocessor(numeric, categorical)), ("model", make_model())]
        )

    return build


def compare_models(
    factories: dict[str, Callable[[], Any]],
    X: pd.DataFrame,
    y: np.ndarray,
    n_splits: int = 5,
    random_state: int = 0,
    numeric: tuple[str, ...] = NUMERIC,
    categorical: tuple[str, ...] = CATEGORICAL,
) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Cross-validate every model behind the same preprocessing, on one set of folds.

    factories: name -> zero-argument callable returning an unfitted classifier. X: the
    table from add_features; y: (n,) 0/1. The folds are ``stratified_kfold_indices(y,
    n_splits, shuffle=True, random_state)``, shared by all models so their scores are
    paired. Returns (rows, probas): rows[i] = {"model": name, **summarize_folds(...)} in the
    order of `factories`; probas[name] = the (n,) out-of-fold P(survived).
    """
    y = np.asarray(y)
    folds = stratified_kfold_indices(y, n_splits, shuffle=True, random_state=random_state)
    rows, probas = [], {}
    for name, make_model in factories.items():
        pipeline = make_pipeline_factory(make_model, numeric, categorical)
        proba, seconds = cross_val_proba(pipeline, X, y, folds)
        rows.append({"model": name, **summarize_folds(y, proba, folds, seconds)})
        probas[name] = proba
    return rows, probas
