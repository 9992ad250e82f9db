"""Fit + predict time of our SVMs vs scikit-learn's, same data, same run, one BLAS thread.

Run from the repository root:  python benchmarks/classical_svm.py
`rows()` returns one dict per estimator for the lead's aggregated table. Each SVC case is one
interleaved race of the fast SVC (svm_fast: all one-vs-one duals stepped together; the target
applies to it), the readable one (svm: one dual after another) and sklearn's.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy loads its BLAS

sys.path.insert(0, str(Path(__file__).resolve().parent))

import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from classical_decision_tree import race_all  # noqa: E402
from sklearn import svm as sk  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from airoad.classic import svm_fast  # noqa: E402
from airoad.classic.svm import SVC, PegasosSVC  # noqa: E402
from airoad.data import load  # noqa: E402


def _split(name: str, scale: bool):
    df = load(name)
    X, y = df.drop(columns="target").to_numpy(np.float64), df["target"].to_numpy()
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    if scale:
        sc = StandardScaler().fit(Xtr)
        Xtr, Xte = sc.transform(Xtr), sc.transform(Xte)
    return Xtr, Xte, ytr, yte, f"{name} ({len(X)} x {X.shape[1]})"


def race(ours, theirs, data, repeats: int = 5) -> tuple[float, float, float, float]:
    """Median fit+predict seconds of two model factories (interleaved) and their test accuracy."""
    Xtr, Xte, ytr, yte = data
    times: dict = {0: [], 1: []}
    acc = [0.0, 0.0]
    for i in range(repeats):
        for side in (0, 1) if i % 2 == 0 else (1, 0):  # alternate who goes first
            make = ours if side == 0 else theirs
            start = time.perf_counter()
            pred = make().fit(Xtr, ytr).predict(Xte)
            times[side].append(time.perf_counter() - start)
            acc[side] = float((pred == yte).mean())
    return statistics.median(times[0]), statistics.median(times[1]), acc[0], acc[1]


def rows(repeats: int = 5) -> list[dict]:
    out = []
    digits, cancer = _split("digits", scale=False), _split("breast-cancer", scale=True)
    digits_scaled = _split("digits", scale=True)
    svc_cases = [
        ("SVC (SMO, rbf)", digits, {}),
        ("SVC (SMO, poly 3)", digits, {"kernel": "poly"}),
        ("SVC (SMO, rbf)", cancer, {}),
    ]
    pegasos = (
        lambda: PegasosSVC(lam=1e-3),
        lambda: sk.LinearSVC(C=1 / (1e-3 * len(digits_scaled[0])), loss="hinge", max_iter=50_000),
    )
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, (Xtr, Xte, ytr, yte, label), kw in svc_cases:
            timed = race_all(
                {
                    "fast": lambda kw=kw: svm_fast.SVC(**kw),
                    "readable": lambda kw=kw: SVC(**kw),
                    "lib": lambda kw=kw: sk.SVC(**kw),
                },
                (Xtr, Xte, ytr, yte),
                repeats,
            )
            for version, target in (("fast", "<= 5x"), ("readable", "none set")):
                out.append(
                    _row(
                        f"{name} [{version}]",
                        label,
                        timed[version],
                        "sklearn SVC",
                        timed["lib"],
                        target,
                    )
                )
        Xtr, Xte, ytr, yte, label = digits_scaled
        t_o, t_l, a_o, a_l = race(*pegasos, (Xtr, Xte, ytr, yte), repeats)
        out.append(
            _row(
                "PegasosSVC (lam=1e-3)",
                label,
                (t_o, a_o),
                "sklearn LinearSVC(hinge)",
                (t_l, a_l),
                "<= 5x",
            )
        )
    return out


def _row(estimator: str, data: str, ours: tuple, library: str, lib: tuple, target: str) -> dict:
    """One table row from (seconds, accuracy) of ours and of the library."""
    return {
        "estimator": estimator,
        "data": data,
        "ours_s": ours[0],
        "library": library,
        "lib_s": lib[0],
        "ratio": ours[0] / lib[0],
        "target": target,
        "ours_acc": ours[1],
        "lib_acc": lib[1],
    }


if __name__ == "__main__":
    for r in rows():
        print(
            f"{r['estimator']:24s} {r['data']:28s} ours {r['ours_s']:.4f}s  {r['library']} "
            f"{r['lib_s']:.4f}s  ratio {r['ratio']:.2f} ({r['target']})  acc {r['ours_acc']:.4f} "
            f"vs {r['lib_acc']:.4f}"
        )
