"""Naive Bayes: fit+predict seconds of ours vs scikit-learn's GaussianNB / MultinomialNB.

Run alone (`python benchmarks/classical_naive_bayes.py`) or through benchmarks/classical.py.
The issue sets no speed target for naive Bayes; the rows report the ratio anyway.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn import naive_bayes as sk  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from timing import race_fit_predict  # noqa: E402

from airoad.classic import naive_bayes as nb  # noqa: E402
from airoad.data import load  # noqa: E402

REPEATS = 9


def _cases():
    """(estimator, data label, ours, theirs, Xtr, ytr, Xte, yte) per row."""
    for name in ("wine", "mnist-5k"):
        if name == "wine":
            df = load("wine")
            X, y = df.drop(columns="target").to_numpy(np.float64), df["target"].to_numpy()
        else:
            X, y = load("mnist-5k")
            X = X.astype(np.float64) / 255.0
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, stratify=y, random_state=0)
        yield (
            "GaussianNB",
            f"{name} {Xtr.shape[0]}+{Xte.shape[0]} x {X.shape[1]}",
            nb.GaussianNB,
            sk.GaussianNB,
            Xtr,
            ytr,
            Xte,
            yte,
        )
    train, test = load("fine-food")
    vec = CountVectorizer(min_df=2)
    Xtr, Xte = vec.fit_transform(train["review"]), vec.transform(test["review"])
    yield (
        "MultinomialNB",
        f"fine-food {Xtr.shape[0]}+{Xte.shape[0]} x {Xtr.shape[1]} words (sparse)",
        nb.MultinomialNB,
        sk.MultinomialNB,
        Xtr,
        train["score"].to_numpy(),
        Xte,
        test["score"].to_numpy(),
    )


def rows() -> list[dict]:
    out = []
    with threadpool_limits(1):
        for estimator, data, ours, theirs, Xtr, ytr, Xte, yte in _cases():
            ours_s, lib_s, p, q = race_fit_predict(ours, theirs, Xtr, ytr, Xte, REPEATS)
            out.append(
                {
                    "estimator": estimator,
                    "data": data,
                    "ours_s": ours_s,
                    "library": f"sklearn {estimator}",
                    "lib_s": lib_s,
                    "ratio": ours_s / lib_s,
                    "target": "none set",
                    "ours_acc": float(np.mean(p == yte)),
                    "lib_acc": float(np.mean(q == yte)),
                }
            )
    return out


if __name__ == "__main__":
    for row in rows():
        print(row)
