"""Grader for ensembles: random forests, gradient boosting (squared and log loss) and AdaBoost
(SAMME) on top of the decision-tree lab's trees, checked against scikit-learn's ensembles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import ensemble as ske
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.model_selection import cross_val_score, train_test_split

from airoad.classic.decision_tree_fast import DecisionTreeClassifier
from airoad.data import load

REFERENCE = "airoad.classic.ensembles"

FAST = settings(max_examples=10, deadline=None)


def _f32(X: np.ndarray) -> np.ndarray:
    """Round X to float32 values, as sklearn's trees store it, so thresholds compare identically."""
    return np.asarray(X, dtype=np.float32).astype(np.float64)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return _f32(X), y


# ---------------------------------------------------------------- gradient boosting


def test_gb_classifier_matches_sklearn(impl, cancer):
    """Log-loss boosting: prior log-odds init, Newton leaf steps; probabilities equal sklearn's."""
    X, y = cancer
    Xtr, ytr = X[::2], y[::2]
    # Compared on the training rows: a tied split may send an unseen row another way.
    Xte = Xtr
    ours = impl.GradientBoostingClassifier(n_estimators=20, learning_rate=0.2, max_depth=3).fit(
        Xtr, ytr
    )
    theirs = ske.GradientBoostingClassifier(
        n_estimators=20, learning_rate=0.2, max_depth=3, random_state=0
    ).fit(Xtr, ytr)
    p = ytr.mean()
    assert np.isclose(ours.init_, np.log(p / (1 - p))), (
        f"init_ = {ours.init_}, expected the prior log-odds"
    )
    proba = ours.predict_proba(Xte)
    assert proba.shape == (len(Xte), 2), (
        f"predict_proba returned {proba.shape}, expected (n_samples, 2)"
    )
    np.testing.assert_allclose(
        proba,
        theirs.predict_proba(Xte),
        atol=1e-9,
        err_msg="probabilities differ (leaf value = sum(y - p) / sum(p (1 - p)))",
    )
    np.testing.assert_allclose(
        ours.decision_function(Xte), theirs.decision_function(Xte), atol=1e-8
    )
    np.testing.assert_allclose(
        ours.train_score_,
        theirs.train_score_,
        rtol=1e-9,
        err_msg="train_score_ must be the binomial deviance after each stage",
    )
    np.testing.assert_array_equal(ours.predict(Xte), theirs.predict(Xte))


def test_gb_classifier_staged_probabilities_match_sklearn(impl, cancer):
    """staged_predict_proba equals sklearn's at every stage (rows sum to 1)."""
    X, y = cancer
    Xtr, ytr = X[::2], y[::2]
    kw = dict(n_estimators=5, learning_rate=0.3, max_depth=2)
    ours = impl.GradientBoostingClassifier(**kw).fit(Xtr, ytr)
    theirs = ske.GradientBoostingClassifier(**kw, random_state=0).fit(Xtr, ytr)
    stages = list(ours.staged_predict_proba(Xtr))
    assert len(stages) == 5, f"{len(stages)} stages, expected n_estimators = 5"
    for m, (a, b) in enumerate(zip(stages, theirs.staged_predict_proba(Xtr))):
        np.testing.assert_allclose(a, b, atol=1e-9, err_msg=f"stage {m} probabilities differ")


def test_boosting_and_forest_reject_zero_trees_like_sklearn(impl, cancer):
    """n_estimators=0 raises ValueError in fit, as sklearn's ensembles do."""
    X, y = cancer
    for ours, theirs in [
        (impl.GradientBoostingClassifier, ske.GradientBoostingClassifier),
        (impl.RandomForestClassifier, ske.RandomForestClassifier),
    ]:
        with pytest.raises(ValueError):
            theirs(n_estimators=0).fit(X, y)
        with pytest.raises(ValueError):
            ours(n_estimators=0).fit(X, y)


def test_gb_regressor_matches_sklearn_stage_by_stage(impl):
    """Squared-loss boosting fits residuals: every staged prediction equals sklearn's."""
    X, y = load_diabetes(return_X_y=True)
    X = _f32(X)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    ours = impl.GradientBoostingRegressor(n_estimators=15, learning_rate=0.3, max_depth=2).fit(
        Xtr, ytr
    )
    theirs = ske.GradientBoostingRegressor(
        n_estimators=15, learning_rate=0.3, max_depth=2, random_state=0
    ).fit(Xtr, ytr)
    assert np.isclose(ours.init_, ytr.mean()), "init_ must be the mean of y"
    stages = list(ours.staged_predict(Xte))
    assert len(stages) == 15, (
        f"staged_predict yielded {len(stages)} stages, expected n_estimators = 15"
    )
    for m, (a, b) in enumerate(zip(stages, theirs.staged_predict(Xte))):
        np.testing.assert_allclose(a, b, rtol=1e-9, err_msg=f"stage {m + 1} differs from sklearn's")
    np.testing.assert_allclose(
        ours.train_score_, theirs.train_score_, rtol=1e-9, err_msg="train_score_ (MSE) differs"
    )


@FAST
@given(
    seed=st.integers(0, 10_000),
    lr=st.sampled_from([0.05, 0.5, 1.0]),
    depth=st.integers(1, 4),
    min_leaf=st.integers(1, 8),
)
def test_gb_random_regression_matches_sklearn(impl, seed, lr, depth, min_leaf):
    """For random data and any learning rate, depth and leaf size, predictions equal sklearn's."""
    rng = np.random.default_rng(seed)
    X, y = _f32(rng.normal(size=(60, 3))), rng.normal(size=60)
    params = dict(n_estimators=5, learning_rate=lr, max_depth=depth, min_samples_leaf=min_leaf)
    ours = impl.GradientBoostingRegressor(**params).fit(X, y)
    theirs = ske.GradientBoostingRegressor(**params, random_state=0).fit(X, y)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)


def test_gb_classifier_on_titanic_matches_sklearn(impl):
    """On one-hot encoded Titanic passengers, boosted probabilities equal sklearn's."""
    df = load("titanic")
    X = _f32(pd.get_dummies(df.drop(columns="survived"), dtype=float).to_numpy())
    y = df["survived"].to_numpy()
    ours = impl.GradientBoostingClassifier(n_estimators=10, max_depth=2).fit(X, y)
    theirs = ske.GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)


def test_gb_classifier_is_binary(impl):
    """GradientBoostingClassifier raises a ValueError for more than two classes."""
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError):
        impl.GradientBoostingClassifier(n_estimators=2).fit(X, y)


# ---------------------------------------------------------------- AdaBoost


@pytest.mark.parametrize("loader", [load_breast_cancer, load_iris, load_wine])
def test_adaboost_matches_sklearn(impl, loader):
    """SAMME: stump weights, weighted errors, decision_function and probabilities equal sklearn's."""
    X, y = loader(return_X_y=True)
    X = _f32(X)
    ours = impl.AdaBoostClassifier(n_estimators=15, learning_rate=0.5).fit(X, y)
    theirs = ske.AdaBoostClassifier(n_estimators=15, learning_rate=0.5, random_state=0).fit(X, y)
    assert len(ours.estimators_) == len(theirs.estimators_), "number of fitted stumps differs"
    np.testing.assert_allclose(
        ours.estimator_errors_,
        theirs.estimator_errors_,
        rtol=1e-9,
        err_msg="weighted errors differ (did the weights update right?)",
    )
    np.testing.assert_allclose(
        ours.estimator_weights_,
        theirs.estimator_weights_,
        rtol=1e-9,
        err_msg="alpha = lr * (log((1 - e) / e) + log(K - 1)) differs",
    )
    np.testing.assert_allclose(ours.decision_function(X), theirs.decision_function(X), atol=1e-9)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


def test_adaboost_stops_on_a_perfect_stump(impl):
    """When one stump classifies every sample, boosting stops with that single stump."""
    X = np.arange(20, dtype=float)[:, None]
    y = (X[:, 0] >= 10).astype(int)
    model = impl.AdaBoostClassifier(n_estimators=10).fit(X, y)
    assert len(model.estimators_) == 1, f"{len(model.estimators_)} stumps, expected 1"
    np.testing.assert_array_equal(model.predict(X), y)


def test_adaboost_staged_decision_function(impl, cancer):
    """staged_decision_function yields one score per stage and ends at decision_function."""
    X, y = cancer
    model = impl.AdaBoostClassifier(n_estimators=8).fit(X, y)
    stages = list(model.staged_decision_function(X))
    assert len(stages) == len(model.estimators_)
    np.testing.assert_allclose(stages[-1], model.decision_function(X))
    theirs = ske.AdaBoostClassifier(n_estimators=8, random_state=0).fit(X, y)
    for a, b in zip(stages, theirs.staged_decision_function(X)):
        np.testing.assert_allclose(a, b, atol=1e-9)


# ---------------------------------------------------------------- random forest


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
        ("GradientBoostingClassifier", dict(n_estimators=5), {"learning_rate": [0.1, 0.5]}),
        ("AdaBoostClassifier", dict(n_estimators=5), {"n_estimators": [3, 5]}),
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
        ("GradientBoostingRegressor", dict(n_estimators=5), {"max_depth": [1, 2]}),
    ],
)
def test_regressors_follow_sklearn_api(impl, name, params, grid):
    """The ensemble regressors work with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = load_diabetes(return_X_y=True)
    check_estimator_api(getattr(impl, name)(**params), X[:200], y[:200], grid)
