"""Runner for hyperparameter-tuning: grid search, random search and Optuna TPE (two worker
processes sharing one SQLite study) tuning a histogram gradient-boosting classifier on Adult.

Our GridSearch runs beside scikit-learn's GridSearchCV on the same folds; every method gets the
same budget of cross-validated evaluations; the best model of each is scored on held-out rows
of Adult's own test file.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airoad.classic import hyperparameter_tuning as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext

DROPPED = (
    "fnlwgt",
    "education",
    "income",
)  # a survey weight, a duplicate of education-num, the label


@dataclass(frozen=True)
class Config:
    n_train: int = 6000  # rows of Adult's training file searched over (stratified subset)
    n_test: int = 5000  # rows of Adult's test file used to score each method's best model
    max_iter: int = 100  # boosting rounds of every candidate
    cv: int = 3
    scoring: str = "roc_auc"
    grid_learning_rate: tuple[float, ...] = (0.03, 0.1, 0.3)
    grid_max_leaf_nodes: tuple[int, ...] = (8, 31, 63)
    grid_min_samples_leaf: tuple[int, ...] = (10, 50)
    n_workers: int = 2  # Optuna worker processes; each runs budget / n_workers trials
    seed: int = 0


QUICK = {
    "n_train": 800,
    "n_test": 800,
    "max_iter": 15,
    "grid_learning_rate": (0.1, 0.3),
    "grid_max_leaf_nodes": (8, 31),
    "grid_min_samples_leaf": (20,),
}


def adult_arrays(frame: pd.DataFrame, categories: dict[str, list]) -> tuple[np.ndarray, np.ndarray]:
    """Adult rows -> (X float with NaN for missing, y 0/1 for '>50K'); categories -> integer codes."""
    cols = [c for c in frame.columns if c not in DROPPED]
    X = np.column_stack(
        [
            pd.Categorical(frame[c], categories=categories[c]).codes.astype(float)
            if c in categories
            else frame[c].to_numpy(float)
            for c in cols
        ]
    )
    X[X == -1] = np.nan  # pandas codes a missing category as -1; the booster wants NaN
    return X, (frame["income"] == ">50K").to_numpy(int)


def _data(config: Config):
    from sklearn.model_selection import train_test_split

    train, test = load("adult")
    categories = {
        c: sorted(train[c].dropna().unique())
        for c in train.columns
        if c not in DROPPED and train[c].dtype.kind not in "biuf"
    }
    X, y = adult_arrays(train, categories)
    Xte, yte = adult_arrays(test, categories)
    if config.n_train < len(X):
        X, _, y, _ = train_test_split(
            X, y, train_size=config.n_train, stratify=y, random_state=config.seed
        )
    if config.n_test < len(Xte):
        Xte, _, yte, _ = train_test_split(
            Xte, yte, train_size=config.n_test, stratify=yte, random_state=config.seed
        )
    cols = [c for c in train.columns if c not in DROPPED]
    return X, y, Xte, yte, np.array([c in categories for c in cols])


def _spaces(config: Config) -> tuple[dict, dict]:
    from scipy.stats import loguniform

    grid = {
        "learning_rate": list(config.grid_learning_rate),
        "max_leaf_nodes": list(config.grid_max_leaf_nodes),
        "min_samples_leaf": list(config.grid_min_samples_leaf),
    }
    # Same ranges as ref.suggest_params, so random search and TPE explore the same box.
    dists = {
        "learning_rate": loguniform(0.01, 0.5),
        "max_leaf_nodes": [4, 8, 16, 32, 64, 128],
        "min_samples_leaf": [2, 5, 10, 20, 50, 100, 200],
        "l2_regularization": loguniform(1e-4, 10.0),
    }
    return grid, dists


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def _optuna(X, y, categorical, budget: int, config: Config, ctx: RunContext):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress spinner says enough
    data_path = ctx.out_dir / "adult_subset.npz"
    np.savez(data_path, X=X, y=y, categorical=categorical)
    db = ctx.out_dir / "study.db"
    db.unlink(missing_ok=True)  # a rerun into the same folder starts a fresh study
    per_worker = -(-budget // config.n_workers)
    with ctx.step(f"Optuna TPE: {config.n_workers} worker processes x {per_worker} trials"):
        study = ref.run_optuna_workers(
            f"sqlite:///{db.resolve()}",
            "adult-hgb",
            str(data_path),
            n_workers=config.n_workers,
            n_trials_per_worker=per_worker,
            seed=config.seed,
            cv=config.cv,
            scoring=config.scoring,
            max_iter=config.max_iter,
        )
    data_path.unlink()
    return study


def _figures(ctx: RunContext, curves: dict, trials: list[dict]) -> list:
    import matplotlib.pyplot as plt

    paths = []
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, values in curves.items():
        ax.plot(
            np.arange(1, len(values) + 1), np.maximum.accumulate(values), "o-", ms=3, label=name
        )
    ax.set(
        xlabel="configurations evaluated",
        ylabel="best mean CV score so far",
        title="best score vs trials (same budget for every method)",
    )
    ax.legend()
    paths.append(ctx.save_figure(fig, "best_score_vs_trials"))

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for w in sorted({t["worker"] for t in trials}):
        mine = [t for t in trials if t["worker"] == w]
        left.plot([t["number"] for t in mine], [t["value"] for t in mine], "o", label=f"worker {w}")
        right.scatter(
            [t["learning_rate"] for t in mine], [t["value"] for t in mine], label=f"worker {w}"
        )
    left.set(
        xlabel="trial number in the shared study",
        ylabel="mean CV score",
        title="who ran which trial",
    )
    right.set(xscale="log", xlabel="learning_rate", ylabel="mean CV score", title="TPE samples")
    left.legend()
    paths.append(ctx.save_figure(fig, "optuna_trials"))
    return paths


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.metrics import get_scorer
    from sklearn.model_selection import GridSearchCV

    X, y, Xte, yte, categorical = _data(config)
    base = ref.make_booster({}, categorical, config.max_iter, config.seed)
    grid, dists = _spaces(config)
    budget = len(ref.parameter_grid(grid))
    common = {"scoring": config.scoring, "cv": config.cv}

    with ctx.step(f"grid search, ours ({budget} configurations)"):
        ours, ours_s = _timed(lambda: ref.GridSearch(base, grid, **common).fit(X, y))
    with ctx.step("grid search, scikit-learn GridSearchCV"):
        theirs, sk_s = _timed(lambda: GridSearchCV(base, grid, n_jobs=1, **common).fit(X, y))
    with ctx.step(f"random search ({budget} configurations)"):
        rand, rand_s = _timed(
            lambda: ref.RandomSearch(
                base, dists, n_iter=budget, random_state=config.seed, **common
            ).fit(X, y)
        )
    study, opt_s = _timed(lambda: _optuna(X, y, categorical, budget, config, ctx))

    done = [t for t in study.trials if t.value is not None]
    trials = [
        {
            "number": t.number,
            "worker": t.user_attrs["worker"],
            "pid": t.user_attrs["pid"],
            "value": float(t.value),
            **t.params,
        }
        for t in done
    ]
    best_trial = max(done, key=lambda t: t.value)
    scorer = get_scorer(config.scoring)
    opt_model = ref.make_booster(best_trial.params, categorical, config.max_iter, config.seed).fit(
        X, y
    )
    methods = [
        ("grid (ours)", ours.best_score_, ours.best_params_, ours.score(Xte, yte), ours_s),
        (
            "grid (sklearn GridSearchCV)",
            theirs.best_score_,
            theirs.best_params_,
            theirs.score(Xte, yte),
            sk_s,
        ),
        ("random (ours)", rand.best_score_, rand.best_params_, rand.score(Xte, yte), rand_s),
        (
            f"Optuna TPE ({config.n_workers} processes)",
            best_trial.value,
            best_trial.params,
            scorer(opt_model, Xte, yte),
            opt_s,
        ),
    ]
    rows = [
        {
            "method": m,
            "evaluations": budget if "Optuna" not in m else len(done),
            "best_cv_score": float(cv),
            "test_score": float(te),
            "seconds": round(s, 2),
            "best_params": ", ".join(f"{k}={v:.4g}" for k, v in sorted(p.items())),
        }
        for m, cv, p, te, s in methods
    ]
    grid_rows = [
        {
            "params": str(p),
            "ours_mean": float(a),
            "sklearn_mean": float(b),
            "ours_rank": int(ra),
            "sklearn_rank": int(rb),
        }
        for p, a, b, ra, rb in zip(
            ours.cv_results_["params"],
            ours.cv_results_["mean_test_score"],
            theirs.cv_results_["mean_test_score"],
            ours.cv_results_["rank_test_score"],
            theirs.cv_results_["rank_test_score"],
        )
    ]
    curves = {
        "grid": ours.cv_results_["mean_test_score"],
        "random": rand.cv_results_["mean_test_score"],
        "Optuna TPE": np.array([t["value"] for t in sorted(trials, key=lambda t: t["number"])]),
    }
    figures = _figures(ctx, curves, trials)

    winner = max([rows[0], rows[2], rows[3]], key=lambda r: r["best_cv_score"])  # ours only
    workers = sorted({t["worker"] for t in trials})
    metrics = {
        "n_train": len(X),
        "n_test": len(Xte),
        "budget": budget,
        "scoring": config.scoring,
        "ours_grid_best_score": ours.best_score_,
        "sklearn_grid_best_score": float(theirs.best_score_),
        "grid_same_best_params": ours.best_params_ == theirs.best_params_,
        "grid_max_abs_score_diff": float(
            np.abs(
                ours.cv_results_["mean_test_score"] - theirs.cv_results_["mean_test_score"]
            ).max()
        ),
        "random_best_score": rand.best_score_,
        "optuna_best_score": float(best_trial.value),
        "optuna_trials": len(done),
        "optuna_workers": len(workers),
        "optuna_distinct_pids": len({t["pid"] for t in trials}),
        "grid_test_score": rows[0]["test_score"],
        "random_test_score": rows[2]["test_score"],
        "optuna_test_score": rows[3]["test_score"],
        "study_db": str(ctx.out_dir / "study.db"),
    }
    notes = [
        f"Our grid search and GridSearchCV agree: same best params {metrics['grid_same_best_params']}, "
        f"largest mean-score difference {metrics['grid_max_abs_score_diff']:.1e}.",
        f"With {budget} evaluations each, the best CV {config.scoring} is: grid {ours.best_score_:.4f}, random "
        f"{rand.best_score_:.4f}, Optuna TPE {best_trial.value:.4f} -> {winner['method']} wins.",
        f"The Optuna study in {metrics['study_db']} holds {len(done)} trials written by workers {workers} "
        f"(process ids {sorted({t['pid'] for t in trials})}).",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_grid_best_score",
        library_metric="sklearn_grid_best_score",
        tables={
            "methods": rows,
            "grid_vs_sklearn": grid_rows,
            "optuna_trials": sorted(trials, key=lambda t: t["number"]),
        },
        figures=figures,
        notes=notes,
    )
