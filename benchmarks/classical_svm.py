"""Fit + predict time of our SVMs vs scikit-learn's, same data, same run, one BLAS thread.

Run from the repository root:  python benchmarks/classical_svm.py
`rows()` returns one dict per estimator for the lead's aggregated table.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy loads its BLAS

import statistics  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402

import numpy as np  # noqa: E402
from sklearn import svm as sk  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

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
    cases = [
        ("SVC (SMO, rbf)", digits, lambda: SVC(), lambda: sk.SVC(), "sklearn SVC", 5.0),
        (
            "SVC (SMO, poly 3)",
            digits,
            lambda: SVC(kernel="poly"),
            lambda: sk.SVC(kernel="poly"),
            "sklearn SVC",
            5.0,
        ),
        ("SVC (SMO, rbf)", cancer, lambda: SVC(), lambda: sk.SVC(), "sklearn SVC", 5.0),
        (
            "PegasosSVC (lam=1e-3)",
            digits_scaled,
            lambda: PegasosSVC(lam=1e-3),
            lambda: sk.LinearSVC(
                C=1 / (1e-3 * len(digits_scaled[0])), loss="hinge", max_iter=50_000
            ),
            "sklearn LinearSVC(hinge)",
            5.0,
        ),
    ]
    with threadpool_limits(limits=1), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for name, (Xtr, Xte, ytr, yte, label), ours, theirs, lib, target in cases:
            t_o, t_l, a_o, a_l = race(ours, theirs, (Xtr, Xte, ytr, yte), repeats)
            out.append(
                {
                    "estimator": name,
                    "data": label,
                    "ours_s": t_o,
                    "library": lib,
                    "lib_s": t_l,
                    "ratio": t_o / t_l,
                    "target": f"<= {target:g}x",
                    "ours_acc": a_o,
                    "lib_acc": a_l,
                }
            )
    return out


if __name__ == "__main__":
    for r in rows():
        print(
            f"{r['estimator']:24s} {r['data']:28s} ours {r['ours_s']:.4f}s  {r['library']} "
            f"{r['lib_s']:.4f}s  ratio {r['ratio']:.2f} ({r['target']})  acc {r['ours_acc']:.4f} "
            f"vs {r['lib_acc']:.4f}"
        )
