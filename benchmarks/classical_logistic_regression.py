"""Logistic regression: fit+predict seconds of ours vs scikit-learn's LogisticRegression.

Run alone (`python benchmarks/classical_logistic_regression.py`) or through
benchmarks/classical.py. Standardised features, C = 1, one BLAS thread, median of interleaved
repeats. sklearn runs its default solver (lbfgs, default tol; max_iter raised so it converges)
and, on digits, also newton-cholesky: the same algorithm as ours.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.linear_model import LogisticRegression as SkLogisticRegression  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from timing import race_fit_predict  # noqa: E402

from airoad.classic.logistic_regression import LogisticRegression  # noqa: E402
from airoad.data import load  # noqa: E402

REPEATS = 7


def _datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    cancer, digits, titanic = load("breast-cancer"), load("digits"), load("titanic")
    Xt = pd.get_dummies(
        titanic.drop(columns="survived").assign(fare=lambda d: np.log1p(d["fare"])),
        columns=["gender", "class", "embarked"],
        drop_first=True,
        dtype=float,
    )
    return {
        "breast-cancer": (
            cancer.drop(columns="target").to_numpy(np.float64),
            cancer["target"].to_numpy(),
        ),
        "titanic": (Xt.to_numpy(np.float64), titanic["survived"].to_numpy()),
        "digits": (digits.drop(columns="target").to_numpy(np.float64), digits["target"].to_numpy()),
    }


def rows() -> list[dict]:
    out = []
    with threadpool_limits(1):
        for name, (X, y) in _datasets().items():
            Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
            scaler = StandardScaler().fit(Xtr)
            Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
            kind = "binary" if len(np.unique(y)) == 2 else "multinomial"
            # (our solver, sklearn's solver): Newton vs sklearn's default on binary data; on
            # 10 classes the Hessian is 650 x 650, so compare like with like: L-BFGS vs L-BFGS at
            # sklearn's default tol, and Newton vs newton-cholesky.
            pairs = (
                [("newton", "lbfgs")]
                if kind == "binary"
                else [("lbfgs", "lbfgs"), ("newton", "newton-cholesky")]
            )
            for ours_solver, solver in pairs:
                tol = {"tol": 1e-4} if ours_solver == "lbfgs" else {}
                ours_s, lib_s, p, q = race_fit_predict(
                    lambda: LogisticRegression(C=1.0, solver=ours_solver, max_iter=1000, **tol),  # noqa: B023 (called before the loop moves on)
                    lambda: SkLogisticRegression(C=1.0, solver=solver, max_iter=1000),  # noqa: B023 (called before the loop moves on)
                    Xtr,
                    ytr,
                    Xte,
                    REPEATS,
                )
                out.append(
                    {
                        "estimator": f"LogisticRegression ({ours_solver}, {kind})",
                        "data": f"{name} {Xtr.shape[0]}+{Xte.shape[0]} x {X.shape[1]}",
                        "ours_s": ours_s,
                        "library": f"sklearn LogisticRegression ({solver})",
                        "lib_s": lib_s,
                        "ratio": ours_s / lib_s,
                        "target": "<= 2x",
                        "ours_acc": float(np.mean(p == yte)),
                        "lib_acc": float(np.mean(q == yte)),
                    }
                )
    return out


if __name__ == "__main__":
    for row in rows():
        print(row)
