"""Fit + predict time of our clustering estimators vs scikit-learn's on standardised digits
(k = 10), same data, same run, one BLAS thread. "acc" is the adjusted Rand index against the
true digit labels (clustering has no accuracy).

Run from the repository root:  python benchmarks/classical_clustering.py
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy loads its BLAS

import statistics  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402
from sklearn import cluster as sk  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402
from sklearn.mixture import GaussianMixture as SkGMM  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

from airoad.classic import clustering as cl  # noqa: E402
from airoad.classic.mixture import GaussianMixture  # noqa: E402
from airoad.data import load  # noqa: E402


def race(ours, theirs, X, y, repeats: int) -> tuple[float, float, float, float]:
    """Median fit+predict seconds of two model factories (interleaved) and their ARI vs y."""
    times: dict = {0: [], 1: []}
    ari = [0.0, 0.0]
    for i in range(repeats):
        for side in (0, 1) if i % 2 == 0 else (1, 0):
            make = ours if side == 0 else theirs
            start = time.perf_counter()
            model = make().fit(X)  # DBSCAN and agglomerative cannot predict new points
            labels = model.predict(X) if hasattr(model, "predict") else model.labels_
            times[side].append(time.perf_counter() - start)
            ari[side] = float(adjusted_rand_score(y, labels))
    return statistics.median(times[0]), statistics.median(times[1]), ari[0], ari[1]


def rows(repeats: int = 5) -> list[dict]:
    df = load("digits")
    X = StandardScaler().fit_transform(df.drop(columns="target").to_numpy(np.float64))
    y = df["target"].to_numpy()
    _, _, Vt = np.linalg.svd(X - X.mean(axis=0), full_matrices=False)
    P = (X - X.mean(axis=0)) @ Vt[:20].T
    init = cl.kmeans_plusplus(X, 10, np.random.default_rng(0))
    gmm_init = dict(
        means_init=cl.kmeans_plusplus(P, 10, np.random.default_rng(0)),
        weights_init=np.full(10, 0.1),
        precisions_init=np.stack([np.linalg.inv(np.cov(P.T) + 1e-3 * np.eye(20))] * 10),
    )
    label = f"scaled digits ({len(X)} x {X.shape[1]})"
    cases = [
        (
            "KMeans (same init, Lloyd)",
            X,
            label,
            lambda: cl.KMeans(10, init=init),
            lambda: sk.KMeans(10, init=init, n_init=1, algorithm="lloyd"),
            "sklearn KMeans",
            2.0,
        ),
        (
            "KMeans (k-means++ x10)",
            X,
            label,
            lambda: cl.KMeans(10, n_init=10, random_state=0),
            lambda: sk.KMeans(10, n_init=10, random_state=0),
            "sklearn KMeans",
            2.0,
        ),
        (
            "DBSCAN (eps=4, min_samples=5)",
            X,
            label,
            lambda: cl.DBSCAN(4.0, min_samples=5),
            lambda: sk.DBSCAN(eps=4.0, min_samples=5),
            "sklearn DBSCAN",
            3.0,
        ),
        (
            "Agglomerative (ward)",
            X,
            label,
            lambda: cl.AgglomerativeClustering(10, linkage="ward"),
            lambda: sk.AgglomerativeClustering(10, linkage="ward"),
            "sklearn AgglomerativeClustering",
            3.0,
        ),
        (
            "Agglomerative (average)",
            X,
            label,
            lambda: cl.AgglomerativeClustering(10, linkage="average"),
            lambda: sk.AgglomerativeClustering(10, linkage="average"),
            "sklearn AgglomerativeClustering",
            3.0,
        ),
        (
            "GaussianMixture (EM, full, same init)",
            P,
            f"digits 20 PCs ({len(P)} x 20)",
            lambda: GaussianMixture(10, reg_covar=1e-4, **gmm_init),
            lambda: SkGMM(10, reg_covar=1e-4, **gmm_init),
            "sklearn GaussianMixture",
            2.0,
        ),
    ]
    out = []
    with threadpool_limits(limits=1):
        for name, data, dlabel, ours, theirs, lib, target in cases:
            t_o, t_l, a_o, a_l = race(ours, theirs, data, y, repeats)
            out.append(
                {
                    "estimator": name,
                    "data": dlabel,
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
            f"{r['estimator']:38s} {r['data']:28s} ours {r['ours_s']:.4f}s  lib {r['lib_s']:.4f}s  "
            f"ratio {r['ratio']:.2f} ({r['target']})  ARI {r['ours_acc']:.4f} vs {r['lib_acc']:.4f}"
        )
