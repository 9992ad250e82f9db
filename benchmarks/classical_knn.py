"""kNN: fit+predict seconds of ours vs scikit-learn's brute KNeighborsClassifier (n_jobs=1).

Run alone (`python benchmarks/classical_knn.py`) or through benchmarks/classical.py.
Same split, same k, one BLAS/OpenMP thread; median of interleaved repeats.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neighbors import KNeighborsClassifier as SkKNN  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from timing import race_fit_predict  # noqa: E402

from airoad.classic.knn import KNeighborsClassifier  # noqa: E402
from airoad.data import load  # noqa: E402

REPEATS = 7


def _data():
    digits = load("digits")
    Xd, yd = digits.drop(columns="target").to_numpy(np.float64), digits["target"].to_numpy()
    Xm, ym = load("mnist-5k")
    return {"digits": (Xd, yd), "mnist-5k": (Xm.astype(np.float64) / 255.0, ym)}


def rows() -> list[dict]:
    out = []
    with threadpool_limits(1):
        for name, (X, y) in _data().items():
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
            for weights in ("uniform", "distance"):
                ours_s, lib_s, p, q = race_fit_predict(
                    lambda: KNeighborsClassifier(5, weights=weights),  # noqa: B023 (called before the loop moves on)
                    lambda: SkKNN(5, weights=weights, algorithm="brute", n_jobs=1),  # noqa: B023 (called before the loop moves on)
                    Xtr,
                    ytr,
                    Xte,
                    REPEATS,
                )
                out.append(
                    {
                        "estimator": f"KNeighborsClassifier (k=5, {weights})",
                        "data": f"{name} {Xtr.shape[0]}+{Xte.shape[0]} x {X.shape[1]}",
                        "ours_s": ours_s,
                        "library": "sklearn KNeighborsClassifier (brute)",
                        "lib_s": lib_s,
                        "ratio": ours_s / lib_s,
                        "target": "<= 1.5x",
                        "ours_acc": float(np.mean(p == yte)),
                        "lib_acc": float(np.mean(q == yte)),
                    }
                )
    return out


if __name__ == "__main__":
    for row in rows():
        print(row)
