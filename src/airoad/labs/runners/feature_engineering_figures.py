"""Figures of the feature-engineering runner: missing cells, target encodings, and the
encoding / leakage comparison."""

from __future__ import annotations

import numpy as np
import pandas as pd

from airoad.classic import feature_engineering as fe
from airoad.data import load
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure


def missing_values_figure(ctx: RunContext, train) -> None:
    penguins = load("penguins")
    with figure(ctx, "missing_values", 1, 2, figsize=(11, 4)) as (_, axes):
        for ax, (name, frame) in zip(axes, [("adult (train)", train), ("penguins", penguins)]):
            miss = frame.isna().sum()
            miss = miss[miss > 0]
            ax.barh(list(miss.index), miss.to_numpy())
            ax.set(xlabel="missing cells", title=f"{name}: {len(frame)} rows")


def target_encoding_figure(ctx: RunContext, train, y_tr) -> None:
    """Our encodings against sklearn's, and how smoothing pulls rare categories to the mean."""
    from sklearn.preprocessing import TargetEncoder as SkTE

    X = train[["occupation", "native-country"]].fillna("?")
    ours = fe.TargetEncoder().fit(X, y_tr)
    theirs = SkTE().fit(X, y_tr)
    with figure(ctx, "target_encoding", 1, 2, figsize=(11, 4)) as (_, (left, right)):
        for j, name in enumerate(X.columns):
            left.plot(theirs.encodings_[j], ours.encodings_[j], "o", alpha=0.6, label=name)
            cats = ours.categories_[j]
            counts = X[name].value_counts().reindex(cats).to_numpy()
            raw = pd.Series(y_tr).groupby(X[name].to_numpy()).mean().reindex(cats).to_numpy()
            right.scatter(counts, raw, s=12, alpha=0.4, marker="x", label=f"{name}: raw mean")
            right.scatter(counts, ours.encodings_[j], s=12, alpha=0.8, label=f"{name}: smoothed")
        lim = [0, max(0.01, float(np.max(np.concatenate(ours.encodings_))) * 1.05)]
        left.plot(lim, lim, "k:", lw=0.8)
        left.set(
            xlabel="sklearn TargetEncoder",
            ylabel="ours",
            title="category encodings (fit on all rows)",
        )
        left.legend(fontsize=8)
        right.axhline(ours.target_mean_, color="grey", ls="--", lw=0.8, label="overall share >50K")
        right.set(
            xscale="log",
            xlabel="rows in the category",
            ylabel="share >50K",
            title="smoothing pulls rare categories to the mean",
        )
        right.legend(fontsize=7)


def encodings_and_leakage_figure(ctx: RunContext, enc_rows, leak_rows) -> None:
    with figure(ctx, "encodings_and_leakage", 1, 2, figsize=(11, 4)) as (_, (left, right)):
        aucs = [r["cv_roc_auc"] for r in enc_rows]
        stds = [r["roc_auc_std"] for r in enc_rows]
        encodings = [r["encoding"] for r in enc_rows]
        left.bar(encodings, aucs, yerr=stds, capsize=5, color="tab:blue")
        for i, r in enumerate(enc_rows):
            left.text(i, min(aucs) - 0.04, f"{r['features']} cols", ha="center", color="white")
        left.set(
            ylim=(min(aucs) - 0.05, 1.0),
            ylabel="CV ROC AUC (logistic regression)",
            title="encoding the categories",
        )
        labels = [f"{r['step']}\n{r['fitted']}" for r in leak_rows]
        colors = ["tab:red" if "all rows" in r["fitted"] else "tab:green" for r in leak_rows]
        leak_aucs = [r["cv_roc_auc"] for r in leak_rows]
        leak_stds = [r["roc_auc_std"] for r in leak_rows]
        right.barh(labels, leak_aucs, xerr=leak_stds, color=colors, capsize=4)
        right.set(
            xlim=(min(leak_aucs) - 0.05, 1.0),
            xlabel="CV ROC AUC",
            title="leakage: red = fitted before CV, green = inside each fold",
        )
        right.tick_params(axis="y", labelsize=7)
