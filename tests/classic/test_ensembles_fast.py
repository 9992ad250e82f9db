"""The forest graders run again on the fast forests (airoad.classic.ensembles_fast), whose trees
grow together, so the readable reference and its faster twin are held to the same tests. A
platform test: it is not in the catalog's tests list, and a learner's file is never graded by
it. (The boosting models are the readable module's own, graded in test_boosting.py.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from sklearn.datasets import load_diabetes
from test_ensembles import (  # noqa: F401 (fixtures and tests collected again in this module)
    cancer,
    test_bootstrap_counts,
    test_classifiers_follow_sklearn_api,
    test_forest_accuracy_close_to_sklearn,
    test_forest_averages_diverse_trees,
    test_forest_regressor_close_to_sklearn,
    test_forest_rejects_zero_trees_like_sklearn,
    test_forest_without_randomness_is_one_tree,
    test_regressors_follow_sklearn_api,
)

from airoad.classic import ensembles

REFERENCE = "airoad.classic.ensembles_fast"


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_trees_grown_together_equal_trees_grown_alone(impl, cancer, criterion):  # noqa: F811
    """Every tree of the fast forest equals the readable forest's tree, array by array."""
    X, y = cancer
    kw = dict(n_estimators=7, criterion=criterion, random_state=3)
    fast = impl.RandomForestClassifier(**kw).fit(X, y)
    alone = ensembles.RandomForestClassifier(**kw).fit(X, y)
    for a, b in zip(fast.estimators_, alone.estimators_, strict=True):
        for field in dataclasses.fields(a.tree_):
            np.testing.assert_array_equal(
                getattr(a.tree_, field.name), getattr(b.tree_, field.name), err_msg=field.name
            )
    np.testing.assert_array_equal(fast.feature_importances_, alone.feature_importances_)


def test_regression_trees_grown_together_match(impl):
    """The fast regression forest predicts what the readable one does (round-off aside)."""
    X, y = load_diabetes(return_X_y=True)
    kw = dict(n_estimators=6, max_features=0.5, min_samples_leaf=3, random_state=1)
    fast = impl.RandomForestRegressor(**kw).fit(X, y).predict(X)
    alone = ensembles.RandomForestRegressor(**kw).fit(X, y).predict(X)
    np.testing.assert_allclose(fast, alone, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_one_hot_columns_split_without_a_sort_as_with_one(impl, monkeypatch, criterion):
    """Two-valued (one-hot) columns, split without a sort, give the trees that sorting them gives."""
    from airoad.classic import decision_tree_fast
    from airoad.labs.runners.ensembles import Config, load_encoded

    X, _, y, _, _ = load_encoded("titanic", Config())
    kw = dict(n_estimators=4, criterion=criterion, max_features=4, random_state=0)
    shortcut = impl.RandomForestClassifier(**kw).fit(X, y)
    assert decision_tree_fast.two_valued_columns(X.T, np.sort(X.T))[1].any(), "no one-hot column"
    monkeypatch.setattr(  # no column counts as two-valued: every drawn column is sorted
        decision_tree_fast,
        "two_valued_columns",
        lambda XT, values: (np.full(len(XT), np.nan), np.zeros(XT.shape, dtype=bool)),
    )
    sorted_ = impl.RandomForestClassifier(**kw).fit(X, y)
    for a, b in zip(shortcut.estimators_, sorted_.estimators_, strict=True):
        for field in dataclasses.fields(a.tree_):
            np.testing.assert_array_equal(
                getattr(a.tree_, field.name), getattr(b.tree_, field.name), err_msg=field.name
            )
