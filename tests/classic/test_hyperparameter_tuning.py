"""Grader for hyperparameter-tuning: the grid, random draws, cross-validation, GridSearch and
RandomSearch (vs scikit-learn's GridSearchCV on the same folds) and Optuna workers that share
one SQLite study from two processes."""

from __future__ import annotations

import os

import numpy as np
import optuna
import pytest
from classic_api_checks import check_estimator_api
from scipy.stats import loguniform
from sklearn.datasets import load_breast_cancer, load_iris
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV, KFold, ParameterGrid, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

REFERENCE = "airoad.classic.hyperparameter_tuning"


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return X[:240], y[:240]


def _model():
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))


# ---------------------------------------------------------------- candidates and CV


def test_parameter_grid_matches_sklearn_order(impl):
    """parameter_grid lists the same dicts in the same order as sklearn's ParameterGrid."""
    for grid in [
        {"b": [1, 2], "a": [3, 4, 5]},
        [{"c": [1]}, {"a": [0.1, 1.0], "kernel": ["x", "y"]}],
    ]:
        got = list(impl.parameter_grid(grid))
        assert got == list(ParameterGrid(grid)), f"grid order differs from sklearn's: {got}"


def test_sample_parameters_seeded_and_in_range(impl):
    """sample_parameters draws n_iter dicts from lists and scipy distributions, same seed same draws."""
    space = {"C": loguniform(1e-3, 1e2), "penalty": ["l1", "l2"]}
    a = impl.sample_parameters(space, 30, random_state=3)
    assert len(a) == 30 and all(set(p) == {"C", "penalty"} for p in a), (
        "expected 30 dicts with keys C, penalty"
    )
    assert a == impl.sample_parameters(space, 30, random_state=3), (
        "the same random_state must give the same draws"
    )
    assert a != impl.sample_parameters(space, 30, random_state=4), (
        "a different seed should give other draws"
    )
    cs = np.array([p["C"] for p in a])
    assert np.all((cs >= 1e-3) & (cs <= 1e2)), "draws must come from the distribution's support"
    assert {p["penalty"] for p in a} == {"l1", "l2"}, (
        "list values are drawn uniformly from the list"
    )


def test_cross_val_scores_match_sklearn(impl, cancer):
    """cross_val_scores equals cross_val_score for a classifier (stratified) and a KFold splitter."""
    X, y = cancer
    np.testing.assert_allclose(
        impl.cross_val_scores(_model(), X, y, cv=4),
        cross_val_score(_model(), X, y, cv=4),
        atol=1e-12,
        err_msg="accuracy per fold differs",
    )
    np.testing.assert_allclose(
        impl.cross_val_scores(_model(), X, y, cv=3, scoring="roc_auc"),
        cross_val_score(_model(), X, y, cv=3, scoring="roc_auc"),
        atol=1e-12,
        err_msg="roc_auc per fold differs",
    )
    cv = KFold(5, shuffle=True, random_state=0)
    np.testing.assert_allclose(
        impl.cross_val_scores(Ridge(), X, y.astype(float), cv=cv),
        cross_val_score(Ridge(), X, y.astype(float), cv=cv),
        atol=1e-12,
        err_msg="R^2 per fold differs with a KFold splitter",
    )


# ---------------------------------------------------------------- searches


def test_grid_search_matches_gridsearchcv(impl, cancer):
    """GridSearch finds the same best params/score and cv_results_ as GridSearchCV."""
    X, y = cancer
    grid = {
        "logisticregression__C": [0.01, 0.1, 1.0, 10.0],
        "logisticregression__fit_intercept": [True, False],
    }
    ours = impl.GridSearch(_model(), grid, scoring="roc_auc", cv=3).fit(X, y)
    want = GridSearchCV(_model(), grid, scoring="roc_auc", cv=3).fit(X, y)
    assert ours.best_params_ == want.best_params_, (
        f"best_params_ {ours.best_params_} != {want.best_params_}"
    )
    np.testing.assert_allclose(
        ours.best_score_, want.best_score_, atol=1e-12, err_msg="best_score_ differs"
    )
    assert list(ours.cv_results_["params"]) == list(want.cv_results_["params"]), (
        "candidates in a different order"
    )
    for key in ["mean_test_score", "std_test_score", "split0_test_score", "split2_test_score"]:
        np.testing.assert_allclose(
            ours.cv_results_[key], want.cv_results_[key], atol=1e-12, err_msg=f"{key} differs"
        )
    np.testing.assert_array_equal(
        ours.cv_results_["rank_test_score"],
        want.cv_results_["rank_test_score"],
        err_msg="rank_test_score differs",
    )
    assert ours.best_index_ == want.best_index_ and ours.n_splits_ == 3
    np.testing.assert_array_equal(
        ours.predict(X), want.predict(X), err_msg="refitted best model predicts differently"
    )
    np.testing.assert_allclose(
        ours.score(X, y), want.score(X, y), atol=1e-12, err_msg="score differs"
    )


def test_grid_search_ties_share_the_best_rank(impl, cancer):
    """Identical candidates tie: both get rank 1 and best_index_ is the first of them."""
    X, y = cancer
    s = impl.GridSearch(_model(), {"logisticregression__C": [0.01, 1.0, 1.0]}, cv=3).fit(X, y)
    want = GridSearchCV(_model(), {"logisticregression__C": [0.01, 1.0, 1.0]}, cv=3).fit(X, y)
    np.testing.assert_array_equal(
        s.cv_results_["rank_test_score"], want.cv_results_["rank_test_score"]
    )
    assert s.best_index_ == want.best_index_, (
        f"best_index_ {s.best_index_}, sklearn {want.best_index_}"
    )


def test_random_search_scores_match_sklearn(impl, cancer):
    """RandomSearch's draws are scored exactly as GridSearchCV scores the same candidates."""
    X, y = cancer
    space = {
        "logisticregression__C": loguniform(1e-3, 1e2),
        "logisticregression__fit_intercept": [True, False],
    }
    rs = impl.RandomSearch(_model(), space, n_iter=5, cv=3, random_state=0).fit(X, y)
    params = rs.cv_results_["params"]
    assert params == impl.sample_parameters(space, 5, random_state=0), (
        "candidates must be sample_parameters' draws"
    )
    want = GridSearchCV(_model(), [{k: [v] for k, v in p.items()} for p in params], cv=3).fit(X, y)
    np.testing.assert_allclose(
        rs.cv_results_["mean_test_score"],
        want.cv_results_["mean_test_score"],
        atol=1e-12,
        err_msg="mean_test_score differs from sklearn on the same candidates",
    )
    assert rs.best_params_ == want.best_params_ and abs(rs.best_score_ - want.best_score_) < 1e-12


def test_search_api(impl):
    """GridSearch and RandomSearch follow the scikit-learn API (clone, Pipeline, NaN rejected)."""
    X, y = load_iris(return_X_y=True)
    est = LogisticRegression(max_iter=500)
    check_estimator_api(impl.GridSearch(est, {"C": [0.1, 1.0]}, cv=3), X, y, grid={"cv": [2, 3]})
    check_estimator_api(
        impl.RandomSearch(est, {"C": [0.1, 1.0]}, n_iter=2, cv=3, random_state=0),
        X,
        y,
        grid={"n_iter": [1, 2]},
    )


# ---------------------------------------------------------------- Optuna


def test_suggest_params_space(impl):
    """suggest_params asks for the four documented parameters within their ranges."""
    trial = optuna.trial.FixedTrial(
        {
            "learning_rate": 0.1,
            "max_leaf_nodes": 31,
            "min_samples_leaf": 20,
            "l2_regularization": 1.0,
        }
    )
    assert impl.suggest_params(trial) == {
        "learning_rate": 0.1,
        "max_leaf_nodes": 31,
        "min_samples_leaf": 20,
        "l2_regularization": 1.0,
    }
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(20):
        p = impl.suggest_params(study.ask())
        assert 0.01 <= p["learning_rate"] <= 0.5 and 4 <= p["max_leaf_nodes"] <= 128
        assert 2 <= p["min_samples_leaf"] <= 200 and 1e-4 <= p["l2_regularization"] <= 10
    trial = study.ask()
    impl.suggest_params(trial)
    D = optuna.distributions
    assert trial.distributions == {
        "learning_rate": D.FloatDistribution(0.01, 0.5, log=True),
        "max_leaf_nodes": D.IntDistribution(4, 128, log=True),
        "min_samples_leaf": D.IntDistribution(2, 200, log=True),
        "l2_regularization": D.FloatDistribution(1e-4, 10.0, log=True),
    }, f"search space differs from the documented one: {trial.distributions}"


def test_make_booster_settings(impl):
    """make_booster: max_iter trees, no early stopping, the categorical mask and the seed."""
    mask = np.array([True, False, False])
    params = impl.make_booster({"learning_rate": 0.2}, mask, max_iter=7, seed=3).get_params()
    assert params["max_iter"] == 7 and params["random_state"] == 3
    assert params["early_stopping"] is False, "early stopping would change the trees per trial"
    assert params["learning_rate"] == 0.2
    np.testing.assert_array_equal(params["categorical_features"], mask)


def test_two_worker_processes_share_one_study(impl, cancer, tmp_path):
    """run_optuna_workers: two processes add their trials to one SQLite study, values = CV means."""
    X, y = cancer
    data = tmp_path / "data.npz"
    np.savez(data, X=X, y=y, categorical=np.zeros(X.shape[1], dtype=bool))
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = impl.run_optuna_workers(
        storage,
        "shared",
        str(data),
        n_workers=2,
        n_trials_per_worker=2,
        seed=0,
        cv=2,
        scoring="roc_auc",
        max_iter=5,
    )
    trials = optuna.load_study(study_name="shared", storage=storage).trials
    assert len(trials) == 4, f"the shared study has {len(trials)} trials, expected 2 workers x 2"
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials), (
        "every trial must complete"
    )
    assert sorted(t.user_attrs["worker"] for t in trials) == [0, 0, 1, 1], (
        "each worker tags its 2 trials"
    )
    pids = {t.user_attrs["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids, (
        f"trials must come from 2 other processes, got pids {pids}"
    )
    assert study.best_value == max(t.value for t in trials), (
        "run_optuna_workers returns the reloaded study"
    )
    t = trials[0]
    want = cross_val_score(
        impl.make_booster(t.params, np.zeros(X.shape[1], bool), 5, 0), X, y, cv=2, scoring="roc_auc"
    ).mean()
    np.testing.assert_allclose(
        t.value, want, atol=1e-12, err_msg="a trial's value must be its mean CV score"
    )
    ran = impl.optuna_worker(storage, "shared", str(data), 1, worker=2, cv=2, max_iter=5)
    assert ran == 1, f"optuna_worker must return how many trials it ran, got {ran!r}"


def test_failing_worker_is_reported(impl, tmp_path):
    """A worker that crashes (here: a missing data file) raises RuntimeError naming the worker."""
    with pytest.raises(RuntimeError, match="worker 0") as info:
        impl.run_optuna_workers(
            f"sqlite:///{tmp_path / 'study.db'}",
            "broken",
            str(tmp_path / "missing.npz"),
            n_workers=1,
            n_trials_per_worker=1,
        )
    assert type(info.value) is RuntimeError, (
        f"expected RuntimeError, got {type(info.value).__name__}"
    )
    assert "Traceback" in str(info.value) and "\n" in str(info.value), (
        "quote the worker's stderr as text (its lines, not a bytes repr)"
    )
