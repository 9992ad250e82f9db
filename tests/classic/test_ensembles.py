"""Grader for the ensembles lab's forests (bagged CART trees with random features per node),
checked against scikit-learn's forests; the boosting half is graded in test_boosting.py."""

from __future__ import annotations

import numpy as np
import pytest
from classic_api_checks import check_estimator_api, float32_values
from hypothesis import settings
from sklearn import ensemble as ske
from sklearn.datasets import load_breast_cancer, load_diabetes
from sklearn.model_selection import cross_val_score, train_test_split

from airoad.classic.decision_tree_fast import DecisionTreeClassifier

REFERENCE = "airoad.classic.ensembles"

FAST = settings(max_examples=10, deadline=None)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return float32_values(X), y


# ---------------------------------------------------------------- random forest


def test_forest_rejects_zero_trees_like_sklearn(impl, cancer):
    """n_estimators=0 raises ValueError in fit, as sklearn's forest does."""
    X, y = cancer
    with pytest.raises(ValueError):
        ske.RandomForestClassifier(n_estimators=0).fit(X, y)
    with pytest.raises(ValueError):
        impl.RandomForestClassifier(n_estimators=0).fit(X, y)


def test_bootstrap_counts(impl):
    """bootstrap_counts draws n rows with replacement: counts sum to n, about 36.8% are left out."""
    counts = impl.bootstrap_counts(20_000, np.random.default_rng(0))
    assert counts.shape == (20_000,), f"shape {counts.shape}, expected (n,)"
    assert counts.sum() == 20_000 and counts.min() >= 0
    assert abs(np.mean(counts == 0) - np.exp(-1)) < 0.01, (
        "the out-of-bag share should be close to 1/e"
    )
    again = impl.bootstrap_counts(20_000, np.random.default_rng(0))
    np.testing.assert_array_equal(
        counts, again, err_msg="the same generator state must give the same sample"
    )


def test_forest_without_randomness_is_one_tree(impl, cancer):
    """With bootstrap=False and max_features=None every tree is the plain CART tree."""
    X, y = cancer
    forest = impl.RandomForestClassifier(
        n_estimators=3, bootstrap=False, max_features=None, max_depth=4
    ).fit(X, y)
    tree = DecisionTreeClassifier(max_depth=4).fit(X, y)
    np.testing.assert_allclose(forest.predict_proba(X), tree.predict_proba(X), atol=1e-12)


def test_forest_averages_diverse_trees(impl, cancer):
    """predict_proba is the mean of the trees' probabilities, and the trees differ from each other."""
    X, y = cancer
    forest = impl.RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    assert len(forest.estimators_) == 5
    mean = np.mean([t.predict_proba(X) for t in forest.estimators_], axis=0)
    np.testing.assert_allclose(forest.predict_proba(X), mean, atol=1e-12)
    roots = {
        (t.tree_.feature[0], round(float(t.tree_.threshold[0]), 6)) for t in forest.estimators_
    }
    assert len(roots) > 1, (
        "every tree has the same root split: use bootstrap samples and max_features"
    )
    again = impl.RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)
    np.testing.assert_array_equal(
        forest.predict_proba(X), again.predict_proba(X), err_msg="not reproducible"
    )


def test_forest_accuracy_close_to_sklearn(impl, cancer):
    """Random forest 5-fold accuracy on breast cancer is within 1.5 points of sklearn's."""
    X, y = cancer
    ours = cross_val_score(
        impl.RandomForestClassifier(n_estimators=40, random_state=0), X, y, cv=5
    ).mean()
    theirs = np.mean(
        [
            cross_val_score(
                ske.RandomForestClassifier(n_estimators=40, random_state=s), X, y, cv=5
            ).mean()
            for s in range(2)
        ]
    )
    assert abs(ours - theirs) <= 0.015, f"accuracy {ours:.4f} vs sklearn {theirs:.4f}"


def test_forest_refuses_a_different_number_of_features(impl, cancer):
    """predict and predict_proba raise ValueError for X with other columns than fit saw."""
    X, y = cancer
    model = impl.RandomForestClassifier(n_estimators=3, random_state=0).fit(X, y)
    for method in (model.predict, model.predict_proba):
        with pytest.raises(ValueError):
            method(X[:, :5])
    assert model.n_features_in_ == X.shape[1], "a refused predict must not refit n_features_in_"


def test_forest_regressor_close_to_sklearn(impl):
    """Random forest regression R2 on diabetes is within 0.03 of sklearn's."""
    X, y = load_diabetes(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0)
    ours = (
        impl.RandomForestRegressor(n_estimators=40, max_features=0.5, random_state=0)
        .fit(Xtr, ytr)
        .score(Xte, yte)
    )
    theirs = (
        ske.RandomForestRegressor(n_estimators=40, max_features=0.5, random_state=0)
        .fit(Xtr, ytr)
        .score(Xte, yte)
    )
    assert abs(ours - theirs) <= 0.03, f"R2 {ours:.4f} vs sklearn {theirs:.4f}"


# ---------------------------------------------------------------- estimator API


@pytest.mark.parametrize(
    "name, params, grid",
    [
        ("RandomForestClassifier", dict(n_estimators=5, random_state=0), {"max_depth": [2, 4]}),
    ],
)
def test_classifiers_follow_sklearn_api(impl, cancer, name, params, grid):
    """The ensemble classifiers work with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = cancer
    check_estimator_api(getattr(impl, name)(**params), X[:240], y[:240], grid)


@pytest.mark.parametrize(
    "name, params, grid",
    [
        ("RandomForestRegressor", dict(n_estimators=5, random_state=0), {"max_depth": [2, 4]}),
    ],
)
def test_regressors_follow_sklearn_api(impl, name, params, grid):
    """The ensemble regressors work with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = load_diabetes(return_X_y=True)
    check_estimator_api(getattr(impl, name)(**params), X[:200], y[:200], grid)
