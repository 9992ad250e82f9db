"""Grader for the ensembles lab's boosting: gradient boosting (squared and log loss) and AdaBoost
(SAMME) on top of the decision-tree lab's trees, checked against scikit-learn's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from classic_api_checks import check_estimator_api, float32_values
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import ensemble as ske
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.model_selection import train_test_split

from airoad.data import load

REFERENCE = "airoad.classic.boosting"

FAST = settings(max_examples=10, deadline=None)


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return float32_values(X), y


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


def test_gb_regressor_matches_sklearn_stage_by_stage(impl):
    """Squared-loss boosting fits residuals: every staged prediction equals sklearn's."""
    X, y = load_diabetes(return_X_y=True)
    X = float32_values(X)
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
    X, y = float32_values(rng.normal(size=(60, 3))), rng.normal(size=60)
    params = dict(n_estimators=5, learning_rate=lr, max_depth=depth, min_samples_leaf=min_leaf)
    ours = impl.GradientBoostingRegressor(**params).fit(X, y)
    theirs = ske.GradientBoostingRegressor(**params, random_state=0).fit(X, y)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)


def test_gb_classifier_on_titanic_matches_sklearn(impl):
    """On one-hot encoded Titanic passengers, boosted probabilities equal sklearn's."""
    df = load("titanic")
    X = float32_values(pd.get_dummies(df.drop(columns="survived"), dtype=float).to_numpy())
    y = df["survived"].to_numpy()
    ours = impl.GradientBoostingClassifier(n_estimators=10, max_depth=2).fit(X, y)
    theirs = ske.GradientBoostingClassifier(n_estimators=10, max_depth=2, random_state=0).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-9)


def test_gb_classifier_is_binary(impl):
    """GradientBoostingClassifier raises a ValueError for more than two classes."""
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError):
        impl.GradientBoostingClassifier(n_estimators=2).fit(X, y)
    tags = impl.GradientBoostingClassifier().__sklearn_tags__()
    assert tags.classifier_tags.multi_class is False, "tag the classifier binary-only for sklearn"


# ---------------------------------------------------------------- AdaBoost


@pytest.mark.parametrize("loader", [load_breast_cancer, load_iris, load_wine])
def test_adaboost_matches_sklearn(impl, loader):
    """SAMME: stump weights, weighted errors, decision_function and probabilities equal sklearn's."""
    X, y = loader(return_X_y=True)
    X = float32_values(X)
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
    theirs = ske.AdaBoostClassifier(n_estimators=10, random_state=0).fit(X, y)
    assert list(model.estimator_weights_) == [theirs.estimator_weights_[0]] == [1.0], (
        "a perfect stump gets weight 1.0 and zero error, as in sklearn"
    )
    assert list(model.estimator_errors_) == [0.0]


def test_adaboost_refuses_a_first_learner_no_better_than_chance(impl):
    """On XOR every stump errs on half the weight: fit raises ValueError, as sklearn's does."""
    X = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    y = np.array([0, 1, 1, 0])
    with pytest.raises(ValueError):
        ske.AdaBoostClassifier(n_estimators=3, random_state=0).fit(X, y)
    with pytest.raises(ValueError):
        impl.AdaBoostClassifier(n_estimators=3).fit(X, y)


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


def test_boosting_rejects_zero_trees_like_sklearn(impl, cancer):
    """n_estimators=0 raises ValueError in fit, as sklearn's boosting does."""
    X, y = cancer
    with pytest.raises(ValueError):
        ske.GradientBoostingClassifier(n_estimators=0).fit(X, y)
    with pytest.raises(ValueError):
        impl.GradientBoostingClassifier(n_estimators=0).fit(X, y)


# ---------------------------------------------------------------- estimator API


@pytest.mark.parametrize(
    "name, params, grid",
    [
        ("GradientBoostingClassifier", dict(n_estimators=5), {"learning_rate": [0.1, 0.5]}),
        ("AdaBoostClassifier", dict(n_estimators=5), {"n_estimators": [3, 5]}),
    ],
)
def test_classifiers_follow_sklearn_api(impl, cancer, name, params, grid):
    """The boosting classifiers work with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = cancer
    check_estimator_api(getattr(impl, name)(**params), X[:240], y[:240], grid)


@pytest.mark.parametrize(
    "name, params, grid",
    [
        ("GradientBoostingRegressor", dict(n_estimators=5), {"max_depth": [1, 2]}),
    ],
)
def test_regressors_follow_sklearn_api(impl, name, params, grid):
    """The boosting regressor works with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = load_diabetes(return_X_y=True)
    check_estimator_api(getattr(impl, name)(**params), X[:200], y[:200], grid)
