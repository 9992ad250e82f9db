"""Ensembles: fit+predict time and test accuracy of our random forest, gradient boosting and
AdaBoost vs scikit-learn's on Titanic and Adult, one thread (n_jobs=1). The forest is timed
twice in one interleaved race: the fast one (ensembles_fast: trees grown together; the target
applies to it) and the readable one (ensembles: one tree after another).

`rows()` is collected by benchmarks/classical.py; run this file alone to print its rows.
Titanic and Adult are encoded by the lab runner's `load_encoded` (one-hot, 75/25 Titanic split).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from classical_decision_tree import race, race_all  # noqa: E402
from sklearn import ensemble as ske  # noqa: E402

from airoad.classic import ensembles as ours  # noqa: E402
from airoad.classic import ensembles_fast as fast  # noqa: E402
from airoad.labs.runners.ensembles import Config, load_encoded  # noqa: E402


def rows(repeats: int = 3, only: list[str] | None = None) -> list[dict]:
    """All rows; with only (words), just the rows whose "estimator data" holds every word."""

    def wanted(label: str) -> bool:
        return all(word in label for word in only or [])

    out = []
    for name in ("titanic", "adult"):
        Xtr, Xte, ytr, yte, _ = load_encoded(name, Config())
        data, shape = (Xtr, Xte, ytr, yte), Xtr.shape
        if wanted(f"RandomForestClassifier {name}"):
            out += _forest_rows(name, data, shape, repeats)  # Adult too: one fit is too noisy
        cases = [
            (
                "GradientBoostingClassifier (100 trees)",
                "<= 5x",
                lambda: ours.GradientBoostingClassifier(n_estimators=100),
                lambda: ske.GradientBoostingClassifier(n_estimators=100, random_state=0),
            ),
            (
                "AdaBoostClassifier (100 stumps)",
                "<= 5x",
                lambda: ours.AdaBoostClassifier(n_estimators=100),
                lambda: ske.AdaBoostClassifier(n_estimators=100, random_state=0),
            ),
        ]
        for estimator, target, make_ours, make_lib in cases:
            if not wanted(f"{estimator} {name}"):
                continue
            ours_s, lib_s, ours_acc, lib_acc = race(
                make_ours, make_lib, data, repeats if name == "titanic" else 1
            )
            out.append(
                {
                    "estimator": estimator,
                    "data": f"{name} {shape[0]}x{shape[1]}",
                    "ours_s": ours_s,
                    "library": "sklearn " + estimator.split(" ")[0],
                    "lib_s": lib_s,
                    "ratio": ours_s / lib_s,
                    "target": target,
                    "ours_acc": ours_acc,
                    "lib_acc": lib_acc,
                }
            )
    return out


def _forest_rows(name: str, data: tuple, shape: tuple, repeats: int) -> list[dict]:
    """The fast and the readable forest against sklearn's, in one interleaved race."""
    n_rf = 100 if name == "titanic" else 30  # the readable full-depth Adult forest: ~0.6 s a tree
    timed = race_all(
        {
            "fast": lambda: fast.RandomForestClassifier(n_estimators=n_rf, random_state=0),
            "readable": lambda: ours.RandomForestClassifier(n_estimators=n_rf, random_state=0),
            "lib": lambda: ske.RandomForestClassifier(n_estimators=n_rf, random_state=0, n_jobs=1),
        },
        data,
        repeats,
    )
    return [
        {
            "estimator": f"RandomForestClassifier ({n_rf} trees) [{version}]",
            "data": f"{name} {shape[0]}x{shape[1]}",
            "ours_s": timed[version][0],
            "library": "sklearn RandomForestClassifier",
            "lib_s": timed["lib"][0],
            "ratio": timed[version][0] / timed["lib"][0],
            "target": target,
            "ours_acc": timed[version][1],
            "lib_acc": timed["lib"][1],
        }
        for version, target in (("fast", "<= 3x"), ("readable", "none set"))
    ]


if __name__ == "__main__":
    for row in rows():
        print(row)
