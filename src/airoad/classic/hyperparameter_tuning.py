"""Hyperparameter search from scratch: grid search and random search with k-fold
cross-validation (the scikit-learn GridSearchCV / RandomizedSearchCV API), and Bayesian
optimisation with Optuna's TPE sampler spread over several worker PROCESSES that share one
study through a SQLite file.

Every candidate configuration theta is scored by its mean cross-validated score

    score(theta) = (1 / K) sum_k  scorer(model_theta fitted on folds != k,  fold k)

and the search returns the argmax. Grid search tries every combination, random search draws
n_iter of them, and TPE fits two densities over the configurations tried so far (good ones
l(theta), the rest g(theta)) and proposes the theta that maximises l(theta) / g(theta).

Folds come from ``sklearn.model_selection.check_cv`` (stratified k-fold for classifiers, no
shuffling) and scores from ``sklearn.metrics.check_scoring``, so the splits and numbers line up
with scikit-learn's searches: the lesson is the search, not how to cut folds.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
from sklearn.metrics import check_scoring
from sklearn.model_selection import check_cv
from sklearn.utils.validation import check_is_fitted, validate_data

# ---------------------------------------------------------------- candidates


def parameter_grid(param_grid: dict | list[dict]) -> list[dict]:
    """Every combination of a grid, in scikit-learn's ``ParameterGrid`` order.

    param_grid: {name: list of values} or a list of such dicts (their grids are concatenated).
    Within one dict the names are sorted and the LAST name varies fastest:
    {"b": [1, 2], "a": [3, 4]} -> [{a:3,b:1}, {a:3,b:2}, {a:4,b:1}, {a:4,b:2}].
    """
    grids = [param_grid] if isinstance(param_grid, dict) else list(param_grid)
    out = []
    for grid in grids:
        names = sorted(grid)
        out += [dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))]
    return out


def sample_parameters(param_distributions: dict, n_iter: int, random_state=None) -> list[dict]:
    """n_iter independent random configurations.

    param_distributions: {name: a list (drawn uniformly) or a scipy.stats distribution (its
    ``rvs``)}. Names are visited in sorted order and every draw uses one
    ``np.random.default_rng(random_state)``, so the same seed gives the same list. Unlike
    scikit-learn's ParameterSampler, all-list spaces are sampled WITH replacement.
    """
    rng = np.random.default_rng(random_state)
    names = sorted(param_distributions)
    out = []
    for _ in range(n_iter):
        params = {}
        for name in names:
            space = param_distributions[name]
            params[name] = (
                space.rvs(random_state=rng)
                if hasattr(space, "rvs")
                else space[int(rng.integers(len(space)))]
            )
        out.append(params)
    return out


def cross_val_scores(estimator, X, y, cv=5, scoring=None) -> np.ndarray:
    """Test score of a fresh clone of `estimator` on every fold: (n_splits,) floats.

    Fold k: fit on all rows outside fold k, score on fold k with
    ``check_scoring(estimator, scoring)`` (the estimator's own ``score`` when scoring is None).
    Same numbers as ``sklearn.model_selection.cross_val_score`` with the same cv.
    """
    X, y = np.asarray(X), np.asarray(y)
    splitter = check_cv(cv, y, classifier=is_classifier(estimator))
    scorer = check_scoring(estimator, scoring=scoring)
    scores = []
    for train, test in splitter.split(X, y):
        model = clone(estimator).fit(X[train], y[train])
        scores.append(scorer(model, X[test], y[test]))
    return np.asarray(scores, dtype=float)


# ---------------------------------------------------------------- searches


class _BaseSearch(MetaEstimatorMixin, BaseEstimator):
    """Shared fit/predict of the two searches; subclasses list the candidates."""

    def _candidates(self) -> list[dict]:
        """The configurations to try, in order."""
        raise NotImplementedError

    def fit(self, X, y) -> _BaseSearch:
        """Score every candidate by k-fold CV, keep the best, refit it on all of X, y.

        Sets cv_results_ = {"params": [...], "split<i>_test_score": (n_candidates,) for every
        fold i, "mean_test_score", "std_test_score" (ddof=0), "rank_test_score" (1 = best,
        ties share the lower rank)}, best_index_ (the FIRST candidate of highest mean),
        best_params_, best_score_, n_splits_ and, when refit, best_estimator_. Returns self.
        """
        validate_data(self, X, y, skip_check_array=True)  # records n_features_in_ only
        X, y = np.asarray(X), np.asarray(y)
        candidates = self._candidates()
        if not candidates:
            raise ValueError("the search space is empty")
        folds = [
            np.asarray(
                cross_val_scores(clone(self.estimator).set_params(**p), X, y, self.cv, self.scoring)
            )
            for p in candidates
        ]
        scores = np.vstack(folds)  # (n_candidates, n_splits)
        mean = scores.mean(axis=1)
        # Rank: 1 + how many candidates score strictly higher ("min" ranking, ties share).
        rank = 1 + (mean[None, :] > mean[:, None]).sum(axis=1)
        self.cv_results_ = {
            "params": candidates,
            "mean_test_score": mean,
            "std_test_score": scores.std(axis=1),
            "rank_test_score": rank,
        }
        for i in range(scores.shape[1]):
            self.cv_results_[f"split{i}_test_score"] = scores[:, i]
        self.n_splits_ = scores.shape[1]
        self.best_index_ = int(np.argmax(mean))
        self.best_params_ = candidates[self.best_index_]
        self.best_score_ = float(mean[self.best_index_])
        if self.refit:
            self.best_estimator_ = clone(self.estimator).set_params(**self.best_params_).fit(X, y)
        return self

    def predict(self, X) -> np.ndarray:
        """best_estimator_'s predictions for X: shape (n_samples,)."""
        check_is_fitted(self, "best_estimator_")
        return self.best_estimator_.predict(X)

    def score(self, X, y) -> float:
        """best_estimator_'s score on X, y with the search's own scoring."""
        check_is_fitted(self, "best_estimator_")
        return float(
            check_scoring(self.best_estimator_, scoring=self.scoring)(self.best_estimator_, X, y)
        )


class GridSearch(_BaseSearch):
    """Exhaustive search: cross-validate every combination of `param_grid`.

    Parameters: estimator; param_grid ({name: values} or a list of them, see parameter_grid);
    scoring (None = estimator.score, or a scikit-learn scoring name such as "roc_auc");
    cv (int = (stratified) k-fold, or a splitter); refit (refit the best on all data).
    Fitted: cv_results_, best_index_, best_params_, best_score_, best_estimator_, n_splits_.
    """

    def __init__(self, estimator=None, param_grid=None, scoring=None, cv=5, refit=True):
        self.estimator = estimator
        self.param_grid = param_grid
        self.scoring = scoring
        self.cv = cv
        self.refit = refit

    def _candidates(self) -> list[dict]:
        """Every combination of param_grid, in parameter_grid order."""
        return parameter_grid(self.param_grid)


class RandomSearch(_BaseSearch):
    """Random search: cross-validate `n_iter` configurations drawn from the distributions.

    Parameters: estimator; param_distributions (see sample_parameters); n_iter; scoring; cv;
    refit; random_state (seeds the draws). Fitted attributes as GridSearch.
    """

    def __init__(
        self,
        estimator=None,
        param_distributions=None,
        n_iter=10,
        scoring=None,
        cv=5,
        refit=True,
        random_state=None,
    ):
        self.estimator = estimator
        self.param_distributions = param_distributions
        self.n_iter = n_iter
        self.scoring = scoring
        self.cv = cv
        self.refit = refit
        self.random_state = random_state

    def _candidates(self) -> list[dict]:
        """n_iter draws from param_distributions, seeded by random_state."""
        return sample_parameters(self.param_distributions, self.n_iter, self.random_state)


# ---------------------------------------------------------------- Optuna workers


def suggest_params(trial) -> dict:
    """Ask an Optuna trial for one HistGradientBoostingClassifier configuration.

    learning_rate: float in [0.01, 0.5], log scale; max_leaf_nodes: int in [4, 128], log;
    min_samples_leaf: int in [2, 200], log; l2_regularization: float in [1e-4, 10], log.
    Returns {name: value} with exactly those four names.
    """
    return {
        "learning_rate": trial.suggest_float("learning_rate", 0.01, 0.5, log=True),
        "max_leaf_nodes": trial.suggest_int("max_leaf_nodes", 4, 128, log=True),
        "min_samples_leaf": trial.suggest_int("min_samples_leaf", 2, 200, log=True),
        "l2_regularization": trial.suggest_float("l2_regularization", 1e-4, 10.0, log=True),
    }


def make_booster(params: dict, categorical: np.ndarray, max_iter: int = 100, seed: int = 0):
    """HistGradientBoostingClassifier(**params) with `max_iter` trees, no early stopping,
    the boolean mask `categorical` (n_features,) as categorical_features and random_state=seed."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    return HistGradientBoostingClassifier(
        max_iter=max_iter,
        early_stopping=False,
        categorical_features=np.asarray(categorical, dtype=bool),
        random_state=seed,
        **params,
    )


def optuna_worker(
    storage: str,
    study_name: str,
    data_path: str,
    n_trials: int,
    worker: int,
    seed: int = 0,
    cv: int = 3,
    scoring: str = "roc_auc",
    max_iter: int = 100,
) -> int:
    """What one worker PROCESS runs: load the shared study and add `n_trials` trials to it.

    data_path: an .npz with X (n, d) float, y (n,) and categorical (d,) bool. Each trial asks
    suggest_params, scores make_booster(params, ...) with cross_val_scores (its mean is the
    value to maximise) and records user attributes "worker" (this worker's number) and "pid"
    (os.getpid()). The TPE sampler is seeded with seed + worker so workers explore differently.
    Returns the number of trials this worker ran.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    data = np.load(data_path)
    X, y, categorical = data["X"], data["y"], data["categorical"]
    study = optuna.load_study(
        study_name=study_name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(seed=seed + worker),
    )

    def objective(trial) -> float:
        trial.set_user_attr("worker", worker)
        trial.set_user_attr("pid", os.getpid())
        model = make_booster(suggest_params(trial), categorical, max_iter, seed)
        return float(cross_val_scores(model, X, y, cv, scoring).mean())

    study.optimize(objective, n_trials=n_trials)
    return n_trials


def run_optuna_workers(
    storage: str,
    study_name: str,
    data_path: str,
    n_workers: int = 2,
    n_trials_per_worker: int = 10,
    timeout: float = 3600.0,
    **worker_kwargs,
):
    """Create the study (maximise) in `storage`, then run `n_workers` worker processes at once.

    storage: an Optuna storage URL such as "sqlite:////abs/run/study.db". Each worker is a new
    Python process (``subprocess``, so it works on every OS) that loads THIS file and calls
    optuna_worker(storage, study_name, data_path, n_trials_per_worker, worker=i,
    **worker_kwargs); the processes share nothing but the database. Raise RuntimeError with
    the worker's stderr if one fails. Returns the study, reloaded after all workers finished.
    """
    import optuna

    optuna.create_study(
        storage=storage, study_name=study_name, direction="maximize", load_if_exists=True
    )
    launcher = (
        "import importlib.util, json, sys\n"
        "spec = importlib.util.spec_from_file_location('hpt_worker', sys.argv[1])\n"
        "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
        "mod.optuna_worker(**json.loads(sys.argv[2]))\n"
    )
    procs = []
    for worker in range(n_workers):
        kwargs = dict(
            worker_kwargs,
            storage=storage,
            study_name=study_name,
            data_path=str(data_path),
            n_trials=n_trials_per_worker,
            worker=worker,
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", launcher, str(Path(__file__).resolve()), json.dumps(kwargs)],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    errors = []
    for worker, proc in enumerate(procs):  # wait for all, even when one fails
        _, err = proc.communicate(timeout=timeout)
        if proc.returncode != 0:
            errors.append(f"worker {worker} exited with {proc.returncode}: {err.strip()[-2000:]}")
    if errors:
        raise RuntimeError("; ".join(errors))
    return optuna.load_study(study_name=study_name, storage=storage)
