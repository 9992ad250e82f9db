"""Parts of the explainability runner: Adult and Titanic as ordinal-coded frames, the models
(XGBoost on Adult, LightGBM and a small PyTorch MLP on Titanic), and the four figures."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from airoad.data import load
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, split, subsample

# Ten Adult columns so KernelSHAP can enumerate all 2^10 coalitions (education is kept as its
# number, fnlwgt is a sampling weight, race and native-country are left to the fairness lab).
ADULT = ("age", "workclass", "education-num", "marital-status", "occupation", "relationship",
         "sex", "capital-gain", "capital-loss", "hours-per-week")  # fmt: skip
TITANIC = ("gender", "age", "class", "embarked", "fare", "sibsp", "parch")
PDP_FEATURES = ("age", "education-num", "hours-per-week")


def ordinal(frames: list[pd.DataFrame], columns: tuple[str, ...]) -> list[np.ndarray]:
    """Each frame's ``columns`` as floats; text columns become the index of their value in the
    sorted categories of all frames together (missing values are the category "missing")."""
    both = pd.concat([f[list(columns)] for f in frames], keys=range(len(frames)))
    for c in columns:
        if not pd.api.types.is_numeric_dtype(both[c]):
            text = both[c].astype(object).where(both[c].notna(), "missing").astype(str)
            both[c] = pd.Categorical(text, categories=sorted(set(text))).codes
    return [both.loc[i].to_numpy(np.float64) for i in range(len(frames))]


def adult(rows: int, seed: int) -> tuple:
    """(X_train, X_test, y_train, y_test): the ten ``ADULT`` columns, income > 50K as 1;
    ``rows`` > 0 keeps a seeded sample of the training rows."""
    train, test = load("adult")
    if rows:
        train = train.iloc[subsample(len(train), rows, seed)]
    Xtr, Xte = ordinal([train, test], ADULT)
    return (
        Xtr,
        Xte,
        (train["income"] == ">50K").to_numpy(int),
        (test["income"] == ">50K").to_numpy(int),
    )


def titanic(test_size: float, seed: int) -> tuple:
    """(X_train, X_test, y_train, y_test) of the ``TITANIC`` columns, a seeded stratified split."""
    df = load("titanic")
    (X,) = ordinal([df], TITANIC)
    return split(X, df["survived"].to_numpy(int), test_size, seed)


def xgboost_model(X: np.ndarray, y: np.ndarray, config: Any):
    from xgboost import XGBClassifier

    model = XGBClassifier(n_estimators=config.n_estimators, max_depth=config.max_depth,
                          learning_rate=config.learning_rate, n_jobs=1,
                          random_state=config.seed)  # fmt: skip
    return model.fit(X, y)


def lightgbm_model(X: np.ndarray, y: np.ndarray, config: Any):
    from lightgbm import LGBMClassifier

    model = LGBMClassifier(n_estimators=config.n_estimators, learning_rate=config.learning_rate,
                           num_leaves=15, n_jobs=1, random_state=config.seed, verbose=-1)  # fmt: skip
    return model.fit(X, y)


def mlp(X: np.ndarray, y: np.ndarray, config: Any):
    """A one-hidden-layer tanh MLP (float64, two logits) trained full-batch with Adam on
    standardised features; returns (model, mean, std) so inputs can be standardised alike."""
    import torch

    torch.manual_seed(config.seed)
    mean, std = X.mean(axis=0), np.where(X.std(axis=0) > 0, X.std(axis=0), 1.0)
    net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], config.mlp_hidden), torch.nn.Tanh(),
                              torch.nn.Linear(config.mlp_hidden, 2)).double()  # fmt: skip
    xt, yt = torch.as_tensor((X - mean) / std), torch.as_tensor(y)
    opt = torch.optim.Adam(net.parameters(), lr=config.mlp_lr)
    for _ in range(config.mlp_epochs):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(net(xt), yt)
        loss.backward()
        opt.step()
    return net.eval(), mean, std


# ---------------------------------------------------------------- figures


def beeswarm(phi: np.ndarray, X: np.ndarray, names: tuple[str, ...], ctx: RunContext) -> None:
    """One row of dots per feature (largest mean |SHAP| on top), coloured by the feature's rank."""
    order = np.argsort(np.abs(phi).mean(axis=0))
    rng = np.random.default_rng(0)
    with figure(ctx, "beeswarm", figsize=(7, 5)) as (fig, ax):
        for row, j in enumerate(order):
            ranks = pd.Series(X[:, j]).rank(pct=True).to_numpy()
            jitter = rng.uniform(-0.3, 0.3, len(phi)) * _density(phi[:, j])
            dots = ax.scatter(phi[:, j], row + jitter, c=ranks, cmap="coolwarm", s=5,
                              vmin=0, vmax=1, rasterized=True)  # fmt: skip
        ax.set_yticks(range(len(order)), [names[j] for j in order])
        ax.axvline(0, color="grey", lw=0.8)
        ax.set_xlabel("TreeSHAP value (log-odds of income > 50K)")
        ax.set_title(f"Adult, XGBoost: TreeSHAP on {len(phi)} test rows")
        fig.colorbar(dots, ax=ax, label="feature value (rank, low to high)")


def _density(values: np.ndarray) -> np.ndarray:
    """A 0..1 spread per dot: wide where many dots share a value (the swarm's shape)."""
    counts, edges = np.histogram(values, bins=40)
    idx = np.clip(np.digitize(values, edges) - 1, 0, len(counts) - 1)
    return counts[idx] / counts.max()


def waterfall(phi, phi0, fx, x, names, ctx: RunContext) -> None:
    """Bars from the base value to f(x), one per feature, largest |phi| at the top."""
    order = np.argsort(np.abs(phi))
    with figure(ctx, "waterfall", figsize=(7, 4.5)) as (fig, ax):
        start = phi0 + np.concatenate([[0], np.cumsum(phi[order[::-1]])])[:-1][::-1]
        colors = np.where(phi[order] > 0, "tab:red", "tab:blue")
        ax.barh(range(len(phi)), phi[order], left=start, color=colors)
        for row, (s, v) in enumerate(zip(start, phi[order], strict=True)):
            ax.text(max(s, s + v), row, f" {v:+.2f}", va="center", fontsize=8)
        ends = np.concatenate([start, start + phi[order], [phi0, fx]])
        pad = 0.12 * (ends.max() - ends.min()) + 1e-9
        ax.set_xlim(ends.min() - pad, ends.max() + 2 * pad)
        ax.set_yticks(range(len(phi)), [f"{names[j]} = {x[j]:g}" for j in order])
        ax.axvline(phi0, color="grey", ls="--", lw=0.8, label=f"E f(background) = {phi0:.2f}")
        ax.axvline(fx, color="black", lw=0.8, label=f"f(x) = {fx:.2f}")
        ax.set_xlabel("log-odds of income > 50K")
        ax.set_title("One Adult prediction, our KernelSHAP (all 1022 coalitions)")
        ax.legend(loc="lower right", fontsize=8)


def pdp(curves: list[dict], ctx: RunContext) -> None:
    """PDP (ours, line) over ICE curves (grey) with scikit-learn's PDP (dots), per feature."""
    with figure(ctx, "pdp", 1, len(curves), figsize=(4 * len(curves), 3.6)) as (fig, axes):
        for ax, c in zip(np.atleast_1d(axes), curves, strict=True):
            ax.plot(c["grid"], c["ice"][:40].T, color="grey", lw=0.5, alpha=0.5)
            ax.plot(c["grid"], c["ours"], color="tab:red", lw=2.5, label="PDP (ours)")
            ax.plot(c["grid"], c["sklearn"], "k.", ms=4, label="sklearn")
            ax.set_xlabel(c["feature"])
            ax.set_ylabel("P(income > 50K)")
        np.atleast_1d(axes)[0].legend(fontsize=8)
        fig.suptitle("Partial dependence with 40 ICE curves, Adult XGBoost")


def agreement(pairs: list[tuple[str, np.ndarray, np.ndarray]], ctx: RunContext) -> None:
    """Scatter of every SHAP value by two methods; on the diagonal when they agree."""
    with figure(ctx, "shap_agreement", 1, len(pairs), figsize=(4.2 * len(pairs), 4)) as (fig, axes):
        for ax, (label, a, b) in zip(np.atleast_1d(axes), pairs, strict=True):
            lim = [min(a.min(), b.min()), max(a.max(), b.max())]
            ax.plot(lim, lim, color="grey", lw=0.8)
            ax.scatter(a.ravel(), b.ravel(), s=8)
            ax.set_title(f"{label}\nmax |diff| {np.abs(a - b).max():.1e}", fontsize=9)
            ax.set_xlabel("ours")
        np.atleast_1d(axes)[0].set_ylabel("library")
