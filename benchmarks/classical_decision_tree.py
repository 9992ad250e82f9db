"""Decision trees: fit+predict time and test accuracy of ours vs scikit-learn's, one thread.

Time: median of interleaved repeats on one 70/30 split. Accuracy (R2 for the regressor): mean
over 10 splits.
`rows()` is collected by benchmarks/classical.py; run this file alone to print its rows.
`race` is shared with classical_ensembles.py.
"""

from __future__ import annotations

import os
import statistics
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn import tree as sktree  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

from airoad.classic import decision_tree as ours  # noqa: E402
from airoad.data import load  # noqa: E402


def race(make_ours, make_lib, data: tuple, repeats: int) -> tuple[float, float, float, float]:
    """Median fit+predict seconds of two model factories on (Xtr, Xte, ytr, yte), run
    interleaved so background load hits both alike, and each one's score on the test set
    (accuracy, or R2 for regressors). Returns ours_s, lib_s, ours_score, lib_score."""
    Xtr, Xte, ytr, yte = data
    times: dict[str, list[float]] = {"ours": [], "lib": []}
    scores = {}
    for i in range(repeats):
        pair = [("ours", make_ours), ("lib", make_lib)]
        for name, make in pair if i % 2 == 0 else pair[::-1]:
            start = time.perf_counter()
            model = make().fit(Xtr, ytr)
            model.predict(Xte)
            times[name].append(time.perf_counter() - start)
            scores[name] = float(model.score(Xte, yte))
    return (
        statistics.median(times["ours"]),
        statistics.median(times["lib"]),
        scores["ours"],
        scores["lib"],
    )


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
    out = []
    cases = [
        (
            "DecisionTreeClassifier",
            "breast-cancer",
            lambda: ours.DecisionTreeClassifier(),
            lambda: sktree.DecisionTreeClassifier(random_state=0),
        ),
        (
            "DecisionTreeClassifier",
            "digits",
            lambda: ours.DecisionTreeClassifier(),
            lambda: sktree.DecisionTreeClassifier(random_state=0),
        ),
        (
            "DecisionTreeClassifier (entropy)",
            "wine",
            lambda: ours.DecisionTreeClassifier(criterion="entropy"),
            lambda: sktree.DecisionTreeClassifier(criterion="entropy", random_state=0),
        ),
        (
            "DecisionTreeRegressor (max_depth=6)",
            "diabetes",
            lambda: ours.DecisionTreeRegressor(max_depth=6),
            lambda: sktree.DecisionTreeRegressor(max_depth=6, random_state=0),
        ),
    ]
    for estimator, name, make_ours, make_lib in cases:
        data, shape = _split(name)
        ours_s, lib_s, _, _ = race(make_ours, make_lib, data, repeats)
        ours_acc, lib_acc = mean_scores(make_ours, make_lib, name)
        out.append(
            {
                "estimator": estimator,
                "data": f"{name} {shape[0]}x{shape[1]}",
                "ours_s": ours_s,
                "library": "sklearn " + estimator.split(" ")[0],
                "lib_s": lib_s,
                "ratio": ours_s / lib_s,
                "target": "<= 3x",
                "ours_acc": ours_acc,
                "lib_acc": lib_acc,
            }
        )
    return out


if __name__ == "__main__":
    for row in rows():
        print(row)
