"""Helpers of the fairness-audit runner: the two tasks as matrices, the figures, audit.md."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from airoad.labs.kit import figure, subsample

ADULT_NUMERIC = ["age", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
ADULT_CATEGORICAL = ["workclass", "marital-status", "occupation", "relationship", "race", "sex"]
COMPAS_GROUPS = ("African-American", "Caucasian")  # ProPublica's comparison; the rest are small
COMPAS_NUMERIC = ["age", "priors_count", "log_stay_days"]
COMPAS_CATEGORICAL = ["c_charge_degree", "sex", "age_cat"]
METHOD_LABELS = {
    "baseline": "logistic regression",
    "reweighing": "reweighing (ours)",
    "threshold_dp": "group thresholds, DP (ours)",
    "threshold_eo": "group thresholds, EO (ours)",
    "expgrad_dp": "exponentiated gradient, DP",
    "expgrad_eo": "exponentiated gradient, EO",
    "compas_score": "COMPAS score (decile >= 5)",
}


@dataclass
class Task:
    """One audit task: train/test matrices, 0/1 labels and the sensitive group of each row."""

    name: str
    X_train: np.ndarray
    y_train: np.ndarray
    a_train: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    a_test: np.ndarray
    positive: str  # what y = 1 means
    extra: dict  # dataset-specific columns of the test rows (COMPAS deciles)


def _encode(train, test, numeric, categorical):
    """Standardised numbers and one-hot categories, fitted on the training rows only."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    cats = make_pipeline(
        SimpleImputer(strategy="most_frequent"),
        OneHotEncoder(handle_unknown="ignore", min_frequency=20, sparse_output=False),
    )
    prep = ColumnTransformer([("num", StandardScaler(), numeric), ("cat", cats, categorical)])
    return prep.fit_transform(train), prep.transform(test)


def adult_task(group: str, max_rows: int, seed: int) -> Task:
    """Adult's own train/test split; income > 50K is y = 1; the group column is not a feature."""
    from airoad.data import load

    train, test = load("adult")
    if max_rows:
        train = train.iloc[subsample(len(train), max_rows, seed)]
        test = test.iloc[subsample(len(test), max_rows, seed + 1)]
    cats = [c for c in ADULT_CATEGORICAL if c != group]
    X_train, X_test = _encode(train, test, ADULT_NUMERIC, cats)
    y_train, y_test = ((f["income"] == ">50K").to_numpy(np.int64) for f in (train, test))
    return Task("adult", X_train, y_train, train[group].to_numpy(str), X_test, y_test,
                test[group].to_numpy(str), "income > 50K", {})  # fmt: skip


def compas_task(test_size: float, max_rows: int, seed: int) -> Task:
    """ProPublica's rows of the two largest groups (a seeded subset of max_rows if > 0), a
    seeded split stratified by group and label; y = 1 means re-arrested within two years.
    Race is not a feature; the COMPAS decile rides along."""
    from airoad.data import load
    from airoad.labs.kit import split

    frame = load("compas")
    frame = frame[frame["race"].isin(COMPAS_GROUPS)].reset_index(drop=True)
    if max_rows:
        frame = frame.iloc[subsample(len(frame), max_rows, seed)].reset_index(drop=True)
    stay = (frame["c_jail_out"] - frame["c_jail_in"]).dt.total_seconds() / 86_400
    frame["log_stay_days"] = np.log1p(stay.clip(lower=0).fillna(0))
    strata = frame["race"] + frame["two_year_recid"].astype(str)  # both groups keep both labels
    train_idx, test_idx = split(np.arange(len(frame)), strata.to_numpy(), test_size, seed)[:2]
    train, test = frame.iloc[train_idx], frame.iloc[test_idx]
    X_train, X_test = _encode(train, test, COMPAS_NUMERIC, COMPAS_CATEGORICAL)
    return Task("compas", X_train, train["two_year_recid"].to_numpy(np.int64),
                train["race"].to_numpy(str), X_test, test["two_year_recid"].to_numpy(np.int64),
                test["race"].to_numpy(str), "re-arrested within 2 years",
                {"decile": test["decile_score"].to_numpy()})  # fmt: skip


def tradeoff_figure(rows: list[dict], ctx) -> None:
    """Accuracy against the DP and EO differences, one panel per dataset and disparity."""
    datasets = sorted({r["dataset"] for r in rows})
    with figure(ctx, "tradeoff", len(datasets), 2, figsize=(11, 4.2 * len(datasets))) as (
        fig,
        axes,
    ):
        axes = np.atleast_2d(axes)
        markers = dict(zip(METHOD_LABELS, "osD^v<>", strict=True))
        for i, ds in enumerate(datasets):
            for j, (key, label) in enumerate((("dp_diff", "demographic-parity difference"),
                                              ("eo_diff", "equalised-odds difference"))):  # fmt: skip
                ax = axes[i, j]
                for r in (r for r in rows if r["dataset"] == ds):
                    ax.scatter(r[key], r["accuracy"], marker=markers[r["method"]], s=60,
                               label=METHOD_LABELS[r["method"]])  # fmt: skip
                ax.set(xlabel=label, ylabel="test accuracy", title=f"{ds}: accuracy vs {label}")
                ax.grid(alpha=0.3)
            axes[i, 0].legend(fontsize=8, loc="best")
        fig.suptitle("Accuracy-vs-disparity trade-off (left is fairer, up is more accurate)")


def calibration_figure(curves: dict[str, dict], ctx) -> None:
    """Outcome rate against mean score per bin and group, one panel per scorer."""
    with figure(ctx, "calibration", 1, len(curves), figsize=(5.2 * len(curves), 4.4)) as (_, axes):
        for ax, (title, by_group) in zip(np.atleast_1d(axes), curves.items(), strict=True):
            for g, (mean_score, rate, count) in by_group.items():
                ok = count > 0
                ax.plot(mean_score[ok], rate[ok], "o-", label=f"{g} (n={int(count.sum())})")
            ax.plot([0, 1], [0, 1], "k:", lw=1, label="perfectly calibrated")
            ax.set(xlabel="mean score in bin", ylabel="observed positive rate", title=title,
                   xlim=(0, 1), ylim=(0, 1))  # fmt: skip
            ax.legend(fontsize=8)


def _md_table(rows: list[dict], digits: int = 3) -> str:
    cols = list(rows[0])
    cell = lambda v: f"{v:.{digits}f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def write_audit(path: Path, sections: list[tuple[str, str, list[dict]]]) -> Path:
    """audit.md: a title, then per section a heading, a sentence and a markdown table."""
    parts = ["# Fairness audit", "", "Every number below was computed by this run on the "
             "held-out rows; differences are max - min over groups, ratios min / max.", ""]  # fmt: skip
    for title, text, rows in sections:
        parts += [f"## {title}", "", text, "", _md_table(rows), ""]
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
