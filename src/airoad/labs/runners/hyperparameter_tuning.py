"""Runner for hyperparameter-tuning: grid search, random search and Optuna TPE (two worker
processes sharing one SQLite study) tuning a histogram gradient-boosting classifier on Adult.

Our GridSearch runs beside scikit-learn's GridSearchCV on the same folds; every method gets the
same budget of cross-validated evaluations; the best model of each is scored on held-out rows
of Adult's own test file.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from airoad.classic import hyperparameter_tuning as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, race, render_notes, split, timed

# A survey weight, a duplicate of education-num, the label.
DROPPED = ("fnlwgt", "education", "income")
SCORINGS = ("roc_auc", "average_precision", "neg_log_loss", "accuracy", "balanced_accuracy", "f1")


@dataclass(frozen=True)
class Config:
    n_train: int = param(6000, ge=200, le=32561)  # rows of Adult's training file searched over
    n_test: int = param(5000, ge=100, le=16281)  # rows of Adult's test file that score each best
    max_iter: int = param(100, ge=1, le=10_000)  # boosting rounds of every candidate
    cv: int = param(3, ge=2, le=10)
    scoring: str = param("roc_auc", choices=SCORINGS)
    grid_learning_rate: tuple[float, ...] = param((0.03, 0.1, 0.3), gt=0.0, le=1.0)
    grid_max_leaf_nodes: tuple[int, ...] = param((8, 31, 63), ge=2, le=4096)
    grid_min_samples_leaf: tuple[int, ...] = param((10, 50), ge=1, le=1000)
    # Optuna worker processes; each runs budget / n_workers trials (rounded up)
    n_workers: int = param(2, ge=1, le=16)
    seed: int = param(0, ge=0, le=2**32 - 1)


QUICK = {
    "n_train": 800,
    "n_test": 800,
    "max_iter": 15,
    "grid_learning_rate": (0.1, 0.3),
    "grid_max_leaf_nodes": (8, 31),
    "grid_min_samples_leaf": (20,),
}

NOTES = (
    "Our grid search and GridSearchCV agree: same best params {grid_same_best_params}, largest "
    "mean-score difference {grid_max_abs_score_diff:.1e}.",
    "With {budget} evaluations each, the best CV {scoring} is: grid {ours_grid_best_score:.4f}, "
    "random {random_best_score:.4f}, Optuna TPE {optuna_best_score:.4f} -> {winner} wins.",
    "The Optuna study in {study_db} holds {optuna_trials} trials written by workers "
    "{worker_ids} (process ids {pids}).",
)


def _adult_arrays(
    frame: pd.DataFrame, categories: dict[str, list]
) -> tuple[np.ndarray, np.ndarray]:
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
    """Stratified subsets of Adult's training and test files, and which columns are categorical."""
    train, test = load("adult")
    categories = {
        c: sorted(train[c].dropna().unique())
        for c in train.columns
        if c not in DROPPED and train[c].dtype.kind not in "biuf"
    }
    X, y = _adult_arrays(train, categories)
    Xte, yte = _adult_arrays(test, categories)
    if config.n_train < len(X):  # keep n_train rows: the "test" part of the split is dropped
        X, _, y, _ = split(X, y, len(X) - config.n_train, config.seed)
    if config.n_test < len(Xte):
        Xte, _, yte, _ = split(Xte, yte, len(Xte) - config.n_test, config.seed)
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


def _grid_and_random(X, y, categorical, config: Config, ctx: RunContext) -> dict:
    """Our grid search beside GridSearchCV, then our random search with the same budget."""
    from sklearn.model_selection import GridSearchCV

    base = ref.make_booster({}, categorical, config.max_iter, config.seed)
    grid, dists = _spaces(config)
    budget = len(ref.parameter_grid(grid))
    common = {"scoring": config.scoring, "cv": config.cv}
    with ctx.step(f"grid search, ours then GridSearchCV ({budget} configurations each)"):
        out = race(
            lambda: ref.GridSearch(base, grid, **common).fit(X, y),
            lambda: GridSearchCV(base, grid, n_jobs=1, **common).fit(X, y),
        )
    rand = ref.RandomSearch(base, dists, n_iter=budget, random_state=config.seed, **common)
    with ctx.step(f"random search ({budget} configurations)"):
        out["random"], out["random_seconds"] = timed(rand.fit, X, y)
    return out | {"budget": budget}


def _optuna(X, y, categorical, budget: int, config: Config, ctx: RunContext) -> dict:
    """TPE in n_workers processes sharing one SQLite study: the study, its trials, the best."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress spinner says enough
    data_path = ctx.out_dir / "adult_subset.npz"
    np.savez(data_path, X=X, y=y, categorical=categorical)
    db = ctx.out_dir / "study.db"
    db.unlink(missing_ok=True)  # a rerun into the same folder starts a fresh study
    per_worker = -(-budget // config.n_workers)
    with ctx.step(f"Optuna TPE: {config.n_workers} worker processes x {per_worker} trials"):
        study, seconds = timed(
            ref.run_optuna_workers,
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
    return {
        "optuna_seconds": seconds,
        "trials": sorted(trials, key=lambda t: t["number"]),
        "best_trial": max(done, key=lambda t: t.value),
    }


def _method_rows(searches: dict, data, categorical, config: Config) -> list[dict]:
    """One row per method: evaluations, best CV score, test score of its best model, seconds."""
    from sklearn.metrics import get_scorer

    Xtr, ytr, Xte, yte = data
    ours, theirs, rand, best = (searches[k] for k in ("ours", "library", "random", "best_trial"))
    opt_model = ref.make_booster(best.params, categorical, config.max_iter, config.seed)
    opt_test = get_scorer(config.scoring)(opt_model.fit(Xtr, ytr), Xte, yte)
    methods = [
        ("grid (ours)", ours, ours.score(Xte, yte), searches["ours_seconds"]),
        (
            "grid (sklearn GridSearchCV)",
            theirs,
            theirs.score(Xte, yte),
            searches["library_seconds"],
        ),
        ("random (ours)", rand, rand.score(Xte, yte), searches["random_seconds"]),
    ]
    rows = [(m, s.best_score_, s.best_params_, te, sec) for m, s, te, sec in methods]
    optuna_name = f"Optuna TPE ({config.n_workers} processes)"
    rows.append((optuna_name, best.value, best.params, opt_test, searches["optuna_seconds"]))
    return [
        {
            "method": m,
            "evaluations": searches["budget"] if "Optuna" not in m else len(searches["trials"]),
            "best_cv_score": float(cv),
            "test_score": float(te),
            "seconds": round(s, 2),
            "best_params": ", ".join(f"{k}={v:.4g}" for k, v in sorted(p.items())),
        }
        for m, cv, p, te, s in rows
    ]


def _grid_rows(ours, theirs) -> list[dict]:
    """Our grid search's cv_results_ beside GridSearchCV's, candidate by candidate."""
    a, b = ours.cv_results_, theirs.cv_results_
    return [
        {
            "params": str(p),
            "ours_mean": float(ma),
            "sklearn_mean": float(mb),
            "ours_rank": int(ra),
            "sklearn_rank": int(rb),
        }
        for p, ma, mb, ra, rb in zip(
            a["params"],
            a["mean_test_score"],
            b["mean_test_score"],
            a["rank_test_score"],
            b["rank_test_score"],
        )
    ]


def _summary(searches: dict, rows: list[dict], ctx: RunContext) -> tuple[dict, dict]:
    """The comparison's metrics, and the values only the notes need (winner, workers, pids)."""
    ours, theirs, rand = searches["ours"], searches["library"], searches["random"]
    ours_means, sk_means = (
        ours.cv_results_["mean_test_score"],
        theirs.cv_results_["mean_test_score"],
    )
    trials = searches["trials"]
    metrics = {
        "ours_grid_best_score": ours.best_score_,
        "sklearn_grid_best_score": float(theirs.best_score_),
        "grid_same_best_params": ours.best_params_ == theirs.best_params_,
        "grid_max_abs_score_diff": float(np.abs(ours_means - sk_means).max()),
        "random_best_score": rand.best_score_,
        "optuna_best_score": float(searches["best_trial"].value),
        "optuna_trials": len(trials),
        "optuna_workers": len({t["worker"] for t in trials}),
        "optuna_distinct_pids": len({t["pid"] for t in trials}),
        "grid_test_score": rows[0]["test_score"],
        "random_test_score": rows[2]["test_score"],
        "optuna_test_score": rows[3]["test_score"],
        "study_db": str(ctx.out_dir / "study.db"),
    }
    ours_rows = [rows[0], rows[2], rows[3]]  # the sklearn grid is the reference, not a contender
    extra = {
        "winner": max(ours_rows, key=lambda r: r["best_cv_score"])["method"],
        "worker_ids": sorted({t["worker"] for t in trials}),
        "pids": sorted({t["pid"] for t in trials}),
    }
    return metrics, extra


def _best_score_figure(ctx: RunContext, searches: dict) -> None:
    curves = {
        "grid": searches["ours"].cv_results_["mean_test_score"],
        "random": searches["random"].cv_results_["mean_test_score"],
        "Optuna TPE": np.array([t["value"] for t in searches["trials"]]),
    }
    with figure(ctx, "best_score_vs_trials", figsize=(7.5, 4.5)) as (_, ax):
        for name, values in curves.items():
            best = np.maximum.accumulate(values)
            ax.plot(np.arange(1, len(values) + 1), best, "o-", ms=3, label=name)
        ax.set(
            xlabel="configurations evaluated",
            ylabel="best mean CV score so far",
            title="best score vs trials (same budget for every method)",
        )
        ax.legend()


def _trials_figure(ctx: RunContext, trials: list[dict]) -> None:
    with figure(ctx, "optuna_trials", 1, 2, figsize=(11, 4)) as (_, (left, right)):
        for w in sorted({t["worker"] for t in trials}):
            mine = [t for t in trials if t["worker"] == w]
            values = [t["value"] for t in mine]
            left.plot([t["number"] for t in mine], values, "o", label=f"worker {w}")
            right.scatter([t["learning_rate"] for t in mine], values, label=f"worker {w}")
        left.set(
            xlabel="trial number in the shared study",
            ylabel="mean CV score",
            title="who ran which trial",
        )
        right.set(xscale="log", xlabel="learning_rate", ylabel="mean CV score", title="TPE samples")
        left.legend()


def run(config: Config, ctx: RunContext) -> LabResult:
    X, y, Xte, yte, categorical = _data(config)
    searches = _grid_and_random(X, y, categorical, config, ctx)
    searches |= _optuna(X, y, categorical, searches["budget"], config, ctx)
    rows = _method_rows(searches, (X, y, Xte, yte), categorical, config)
    summary, extra = _summary(searches, rows, ctx)

    _best_score_figure(ctx, searches)
    _trials_figure(ctx, searches["trials"])

    sizes = {"n_train": len(X), "n_test": len(Xte)}
    metrics = {**sizes, "budget": searches["budget"], "scoring": config.scoring, **summary}
    return LabResult(
        metrics=metrics,
        key_metric="ours_grid_best_score",
        library_metric="sklearn_grid_best_score",
        tables={
            "methods": rows,
            "grid_vs_sklearn": _grid_rows(searches["ours"], searches["library"]),
            "optuna_trials": searches["trials"],
        },
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **extra}),
    )
