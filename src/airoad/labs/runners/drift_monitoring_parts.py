"""Pieces of the drift-monitoring runner: the Adult split and model, the simulated streams,
streaming them through the monitors, and the alarm rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from airoad.data import load
from airoad.production.drift_monitoring import DriftMonitor

NUMERIC = ("age", "hours-per-week", "education-num")  # watched with KS
CATEGORICAL = ("workclass", "education")  # watched with chi-square
WATCHED = (*NUMERIC, *CATEGORICAL, "prediction")  # the model's output is watched too
MODEL_NUMERIC = ("age", "education-num", "hours-per-week", "capital-gain", "capital-loss")
MODEL_CATEGORICAL = (
    "workclass",
    "education",
    "marital-status",
    "occupation",
    "relationship",
    "sex",
)
SCENARIOS = ("no drift", "age shift", "category mix", "concept shift")


def adult_rows() -> tuple[pd.DataFrame, np.ndarray]:
    """Both Adult files as one frame (missing categories become '?', as in the raw data) and
    the label y = 1 for income > 50K (the test file writes it '>50K.')."""
    train, test = load("adult")
    frame = pd.concat([train, test], ignore_index=True)
    text = frame.select_dtypes(exclude="number").columns
    frame[text] = frame[text].astype(object).fillna("?")
    y = frame.pop("income").astype(str).str.startswith(">50K").to_numpy(dtype=int)
    return frame, y


def fit_model(frame: pd.DataFrame, y: np.ndarray) -> Any:
    """One-hot + scaled logistic regression: the deployed model whose inputs we watch."""
    from sklearn.compose import make_column_transformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    columns = make_column_transformer(
        (OneHotEncoder(handle_unknown="ignore"), list(MODEL_CATEGORICAL)),
        (StandardScaler(), list(MODEL_NUMERIC)),
    )
    return make_pipeline(columns, LogisticRegression(max_iter=2000)).fit(frame, y)


def split_rows(n: int, n_fit: int, n_reference: int, seed: int) -> tuple[np.ndarray, ...]:
    """Disjoint seeded index sets: model training, monitor reference, the pool streams draw from."""
    order = np.random.default_rng(seed).permutation(n)
    return order[:n_fit], order[n_fit : n_fit + n_reference], order[n_fit + n_reference :]


def columns_of(frame: pd.DataFrame, pred: np.ndarray, y: np.ndarray) -> dict[str, dict]:
    """Monitor inputs for some rows: watched features + prediction, and correctness."""
    watched = {name: frame[name].to_numpy() for name in (*NUMERIC, *CATEGORICAL)}
    watched["prediction"] = pred
    return {"input": watched, "performance": {"correct": (pred == y).astype(int)}}


def stream_rows(
    scenario: str, pool: pd.DataFrame, y: np.ndarray, config: Any, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Row indices into the pool and labels of one stream; the change comes at change_at.

    Before it, rows are drawn uniformly. After it, 'age shift' draws rows with weight
    exp(age_shift * standardised age) (an older population), 'category mix' makes every
    non-Private workclass mix_factor times as likely, and 'concept shift' keeps the uniform
    draw but flips each label with probability concept_flip: P(x) stays, P(y | x) moves.
    """
    rng = np.random.default_rng(seed)
    n_pre = config.change_at
    weights = np.ones(len(pool))
    if scenario == "age shift":
        age = pool["age"].to_numpy(dtype=float)
        weights = np.exp(config.age_shift * (age - age.mean()) / age.std())
    elif scenario == "category mix":
        weights = np.where(pool["workclass"].to_numpy() == "Private", 1.0, config.mix_factor)
    pre = rng.choice(len(pool), n_pre, replace=False)
    post = rng.choice(
        len(pool), config.stream_rows - n_pre, replace=False, p=weights / weights.sum()
    )
    rows = np.concatenate([pre, post])
    labels = y[rows].copy()
    if scenario == "concept shift":
        flip = rng.random(len(post)) < config.concept_flip
        labels[n_pre:] = np.where(flip, 1 - labels[n_pre:], labels[n_pre:])
    return rows, labels


def watch_stream(
    stream: dict[str, dict], reference: dict[str, dict], levels: dict[str, list], config: Any
) -> list[dict[str, Any]]:
    """Feed a stream to fresh input and performance monitors `step` rows at a time; one
    record per check (once the window is full): each feature's p-value and PSI and the flags."""
    monitors = {
        "input": DriftMonitor(
            reference["input"],
            categorical=[*CATEGORICAL, "prediction"],
            window=config.window,
            alpha=config.alpha,
            categories=levels,
        ),
        "performance": DriftMonitor(
            reference["performance"], ["correct"], config.window, config.alpha
        ),
    }
    n = len(stream["performance"]["correct"])
    checks = []
    for end in range(config.step, n + 1, config.step):
        record: dict[str, Any] = {"row": end}
        for kind, monitor in monitors.items():
            monitor.observe({k: v[end - config.step : end] for k, v in stream[kind].items()})
            if end < config.window:
                continue
            report = monitor.report()
            record[kind] = report["drift"]
            for name, f in report["features"].items():
                record[f"p_{name}"], record[f"psi_{name}"] = f["pvalue"], f["psi"]
        if end >= config.window:
            checks.append(record)
    return checks


def first_alarm(flags: list[bool], patience: int) -> int | None:
    """Index of the first check that ends a run of `patience` flagged checks (None: never)."""
    run = 0
    for i, flag in enumerate(flags):
        run = run + 1 if flag else 0
        if run >= patience:
            return i
    return None


def alarm_summary(checks: list[dict], kind: str, change_at: int, patience: int) -> dict:
    """When `kind`'s monitor first raised an alarm before the change (a false alarm) and the
    delay, in rows after the change point, of its first alarm after it (None: missed)."""
    rows = [c["row"] for c in checks]
    flags = [c[kind] for c in checks]
    pre = [f for r, f in zip(rows, flags) if r <= change_at]
    after = [i for i, r in enumerate(rows) if r > change_at]
    hit = first_alarm([flags[i] for i in after], patience) if after else None
    return {
        "false_alarm": first_alarm(pre, patience) is not None,
        "delay": None if hit is None else rows[after[hit]] - change_at,
    }


def detections(streams: list[list[dict]], kind: str, change_at: int, patience: int) -> dict:
    """Over several streams of one scenario: how many `kind` caught after the change, the
    median and worst delay (-1: none caught) and how many alarmed before the change."""
    found = [alarm_summary(c, kind, change_at, patience) for c in streams]
    delays = [f["delay"] for f in found if f["delay"] is not None]
    return {
        "streams": len(found),
        "detected": len(delays),
        "median_delay_rows": float(np.median(delays)) if delays else -1.0,
        "max_delay_rows": max(delays, default=-1),
        "false_alarms_before_change": sum(f["false_alarm"] for f in found),
    }


def alarmed_share(streams: list[list[dict]], kind: str, patience: int) -> float:
    """Share of streams in which `kind` raised at least one alarm anywhere."""
    return float(
        np.mean([first_alarm([c[kind] for c in s], patience) is not None for s in streams])
    )
