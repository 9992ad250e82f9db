"""Grader for titanic-survival: the derived features, the preprocessing built from our
transformers, the pipeline factory and the model comparison, checked against scikit-learn's
ColumnTransformer and cross_validate on the real Titanic table."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold, cross_val_predict, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier

from airoad.data import load

REFERENCE = "airoad.classic.titanic_survival"

NUMERIC = ("age", "log_fare", "sibsp", "parch", "family_size")
CATEGORICAL = ("gender", "class", "embarked", "child", "alone")


@pytest.fixture(scope="module")
def titanic() -> pd.DataFrame:
    return load("titanic")


@pytest.fixture(scope="module")
def table(impl, titanic) -> pd.DataFrame:
    return impl.add_features(titanic)


def _sk_pipeline(model) -> Pipeline:
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), list(NUMERIC)),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), list(CATEGORICAL)),
        ]
    )
    return Pipeline([("features", prep), ("model", model)])


def test_add_features_derives_the_five_columns(impl, titanic):
    """add_features adds family_size, alone, log_fare, child (age < 14) and crew, leaving the input as it was."""
    before = titanic.copy()
    out = impl.add_features(titanic)
    pd.testing.assert_frame_equal(titanic, before, obj="add_features must not modify its input")
    assert len(out) == len(titanic), (
        f"add_features returned {len(out)} rows, expected {len(titanic)}"
    )
    np.testing.assert_array_equal(
        out["family_size"],
        titanic["sibsp"] + titanic["parch"] + 1,
        err_msg="family_size = sibsp + parch + 1",
    )
    np.testing.assert_array_equal(
        out["alone"], (out["family_size"] == 1).astype(int), err_msg="alone"
    )
    np.testing.assert_allclose(
        out["log_fare"], np.log1p(titanic["fare"]), err_msg="log_fare = log(1 + fare)"
    )
    np.testing.assert_array_equal(
        out["child"], (titanic["age"] < 14).astype(int), err_msg="child = age < 14"
    )
    assert int(out["crew"].sum()) == 890, (
        f"crew should count the 890 crew members, got {out['crew'].sum()}"
    )
    assert set(np.unique(out["alone"])) <= {0, 1} and set(np.unique(out["child"])) <= {0, 1}, (
        "0/1 flags"
    )


def test_preprocessor_matches_sklearn_column_transformer(impl, table):
    """make_preprocessor scales NUMERIC and one-hot encodes CATEGORICAL exactly like sklearn's transformers."""
    prep = impl.make_preprocessor()
    got = np.asarray(prep.fit_transform(table))
    want_prep = _sk_pipeline(None).named_steps["features"]
    want = want_prep.fit_transform(table)
    assert got.shape == want.shape, f"preprocessor output {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(
        got, want, rtol=1e-9, atol=1e-12, err_msg="preprocessed matrix differs"
    )
    assert list(prep.get_feature_names_out()) == list(want_prep.get_feature_names_out()), (
        "feature names"
    )
    unseen = table.iloc[:3].copy()
    unseen["embarked"] = "Atlantis"
    block = slice(
        len(NUMERIC) + 2 + 7, len(NUMERIC) + 2 + 7 + 4
    )  # gender (2) and class (7) come first
    np.testing.assert_array_equal(
        np.asarray(prep.transform(unseen))[:, block],
        0.0,
        err_msg="an unseen category must encode as all zeros (handle_unknown='ignore')",
    )


def test_pipeline_factory_builds_fresh_pipelines(impl, table):
    """make_pipeline_factory returns a callable that builds a NEW features+model Pipeline on each call."""
    build = impl.make_pipeline_factory(lambda: LogisticRegression(max_iter=500))
    a, b = build(), build()
    assert isinstance(a, Pipeline), (
        f"the factory must build a sklearn Pipeline, got {type(a).__name__}"
    )
    assert a is not b and a.named_steps["model"] is not b.named_steps["model"], (
        "each call must build new objects"
    )
    assert list(a.named_steps) == ["features", "model"], (
        f"steps {list(a.named_steps)}, expected features, model"
    )
    y = table["survived"].to_numpy()
    proba = a.fit(table, y).predict_proba(table.iloc[:10])
    assert proba.shape == (10, 2), f"predict_proba gave {proba.shape}, expected (10, 2)"
    want = (
        _sk_pipeline(LogisticRegression(max_iter=500)).fit(table, y).predict_proba(table.iloc[:10])
    )
    np.testing.assert_allclose(
        proba, want, atol=1e-8, err_msg="pipeline predictions differ from sklearn's"
    )


def test_compare_models_matches_sklearn_cross_validate(impl, table):
    """compare_models' rows equal sklearn's cross_validate of the same pipelines on StratifiedKFold(shuffle)."""
    y = table["survived"].to_numpy()
    models = {
        "logreg": lambda: LogisticRegression(max_iter=500),
        "tree": lambda: DecisionTreeClassifier(max_depth=4, random_state=0),
    }
    rows, probas = impl.compare_models(models, table, y, n_splits=4, random_state=2)
    assert [r["model"] for r in rows] == ["logreg", "tree"], "one row per model, in the order given"
    cv = StratifiedKFold(4, shuffle=True, random_state=2)
    scoring = {"accuracy": "accuracy", "f1": "f1", "roc_auc": "roc_auc", "log_loss": "neg_log_loss"}
    for row, make in zip(rows, models.values()):
        res = cross_validate(_sk_pipeline(make()), table, y, cv=cv, scoring=scoring)
        for name in scoring:
            scores = res[f"test_{name}"] * (-1 if name == "log_loss" else 1)
            assert row[f"{name}_mean"] == pytest.approx(scores.mean(), abs=1e-9), (
                f"{row['model']} {name}_mean"
            )
            assert row[f"{name}_std"] == pytest.approx(scores.std(), abs=1e-9), (
                f"{row['model']} {name}_std"
            )
        oof = cross_val_predict(_sk_pipeline(make()), table, y, cv=cv, method="predict_proba")[:, 1]
        assert np.shape(probas[row["model"]]) == (len(y),), "probas[name] must be (n_samples,)"
        np.testing.assert_allclose(
            probas[row["model"]],
            oof,
            atol=1e-8,
            err_msg=f"out-of-fold probabilities of {row['model']}",
        )
