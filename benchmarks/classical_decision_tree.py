"""Decision trees: fit+predict time and test accuracy of our two CART implementations (the
readable recursive reference and the breadth-first fast one) vs scikit-learn's, one thread.

Time: median of interleaved repeats of all three on one 70/30 split. Accuracy (R2 for the regressor): mean
over 10 splits.
`rows()` is collected by benchmarks/classical.py; run this file alone to print its rows.
`race` is shared with classical_ensembles.py.
"""

from __future__ import annotations

import os
import statistics
import time
from functools import partial

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn import tree as sktree  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from airoad.classic import decision_tree as readable  # noqa: E402
from airoad.classic import decision_tree_fast as ours  # noqa: E402
from airoad.data import load  # noqa: E402


def race_all(makers: dict, data: tuple, repeats: int) -> dict[str, tuple[float, float]]:
    """{name: (median fit+predict seconds, test score)} of model factories on (Xtr, Xte, ytr,
    yte), run interleaved (the order turns every repeat) so background load hits all alike.
    The score is accuracy, or R2 for regressors."""
    Xtr, Xte, ytr, yte = data
    times: dict[str, list[float]] = {name: [] for name in makers}
    scores = {}
    names = list(makers)
    for i in range(repeats):
        for name in names[i % len(names) :] + names[: i % len(names)]:
            start = time.perf_counter()
            model = makers[name]().fit(Xtr, ytr)
            model.predict(Xte)
            times[name].append(time.perf_counter() - start)
            scores[name] = float(model.score(Xte, yte))
    return {name: (statistics.median(times[name]), scores[name]) for name in names}


def race(make_ours, make_lib, data: tuple, repeats: int) -> tuple[float, float, float, float]:
    """race_all of two factories -> ours_s, lib_s, ours_score, lib_score."""
    (ours_s, ours_score), (lib_s, lib_score) = race_all(
        {"ours": make_ours, "lib": make_lib}, data, repeats
    ).values()
    return ours_s, lib_s, ours_score, lib_score


def _split(name: str, seed: int = 0):
    frame = load(name)
    X, y = frame.drop(columns="target").to_numpy(np.float64), frame["target"].to_numpy()
    strat = y if name != "diabetes" else None
    return tuple(train_test_split(X, y, test_size=0.3, random_state=seed, stratify=strat)), X.shape


def mean_scores(make_ours, make_lib, name: str, n_splits: int = 10) -> tuple[float, float]:
    """Test scores averaged over n_splits random splits: one split alone is dominated by how
    each library breaks tied splits (sklearn's random_state), not by the algorithm."""
    ours_scores, lib_scores = [], []
    for seed in range(n_splits):
        (Xtr, Xte, ytr, yte), _ = _split(name, seed)
        ours_scores.append(make_ours().fit(Xtr, ytr).score(Xte, yte))
        lib_scores.append(make_lib().set_params(random_state=seed).fit(Xtr, ytr).score(Xte, yte))
    return float(np.mean(ours_scores)), float(np.mean(lib_scores))


def rows(repeats: int = 7) -> list[dict]:
    """Per case, a row for the fast tree and one for the readable tree, each vs sklearn."""
    out = []
    cases = [
        ("DecisionTreeClassifier", "breast-cancer", "DecisionTreeClassifier", {}),
        ("DecisionTreeClassifier", "digits", "DecisionTreeClassifier", {}),
        (
            "DecisionTreeClassifier (entropy)",
            "digits",
            "DecisionTreeClassifier",
            {"criterion": "entropy"},
        ),
        (
            "DecisionTreeClassifier (entropy)",
            "wine",
            "DecisionTreeClassifier",
            {"criterion": "entropy"},
        ),
        (
            "DecisionTreeRegressor (max_depth=6)",
            "diabetes",
            "DecisionTreeRegressor",
            {"max_depth": 6},
        ),
    ]
    for estimator, name, cls, params in cases:
        data, shape = _split(name)
        makers = {
            "fast": partial(getattr(ours, cls), **params),
            "readable": partial(getattr(readable, cls), **params),
            "lib": partial(getattr(sktree, cls), **params, random_state=0),
        }
        timed = race_all(makers, data, repeats)
        for version, target in (("fast", "<= 3x"), ("readable", "none set")):
            ours_acc, lib_acc = mean_scores(makers[version], makers["lib"], name)
            out.append(
                {
                    "estimator": f"{estimator} [{version}]",
                    "data": f"{name} {shape[0]}x{shape[1]}",
                    "ours_s": timed[version][0],
                    "library": "sklearn " + cls,
                    "lib_s": timed["lib"][0],
                    "ratio": timed[version][0] / timed["lib"][0],
                    "target": target,
                    "ours_acc": ours_acc,
                    "lib_acc": lib_acc,
                    "readable_over_fast": timed["readable"][0] / timed["fast"][0],
                }
            )
    return out


if __name__ == "__main__":
    for row in rows():
        print(row)
