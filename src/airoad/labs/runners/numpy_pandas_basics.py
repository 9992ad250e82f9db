"""Runner for numpy-pandas-basics: our linear algebra, derivatives and pandas helpers on real
data (diabetes, penguins, titanic), side by side with NumPy, scikit-learn and pandas."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airoad.data import load
from airoad.foundations import numpy_pandas_basics as ref
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    sizes: tuple[int, ...] = (10, 50, 100, 200, 400)  # random systems A x = b, one size per row
    n_systems: int = 10  # random systems per size
    impute_strategy: str = "median"  # mean | median | most_frequent (numeric penguin columns)
    seed: int = 0


QUICK = {"sizes": (5, 20, 50), "n_systems": 3}

SPECIES = pd.DataFrame(
    {
        "species": ["Adelie", "Chinstrap", "Gentoo"],
        "latin_name": ["Pygoscelis adeliae", "Pygoscelis antarcticus", "Pygoscelis papua"],
    }
)
CLASSES = pd.DataFrame(
    {
        "class": [
            "1st",
            "2nd",
            "3rd",
            "deck crew",
            "engineering crew",
            "restaurant staff",
            "victualling crew",
        ],
        "kind": ["passenger"] * 3 + ["crew"] * 4,
    }
)


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative difference ||a - b|| / ||b||."""
    return float(np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-300))


def _solver_rows(config: Config, ctx: RunContext) -> list[dict]:
    """Random well-conditioned systems of each size: accuracy and time, ours vs NumPy."""
    rng = np.random.default_rng(config.seed)
    rows = []
    for n in ctx.track(list(config.sizes), "solving random systems"):
        err_x, res_ours, res_np, err_det, t_ours, t_np = [], [], [], [], 0.0, 0.0
        for _ in range(config.n_systems):
            # Eigenvalues cluster around 2, so the condition number stays small.
            A = rng.standard_normal((n, n)) / np.sqrt(n) + 2.0 * np.eye(n)
            b = rng.standard_normal(n)
            t0 = time.perf_counter()
            x = ref.solve(A, b)
            t1 = time.perf_counter()
            x_np = np.linalg.solve(A, b)
            t2 = time.perf_counter()
            t_ours, t_np = t_ours + t1 - t0, t_np + t2 - t1
            err_x.append(_rel(x, x_np))
            res_ours.append(_rel(A @ x, b))
            res_np.append(_rel(A @ x_np, b))
            err_det.append(float(abs(ref.det(A) / np.linalg.det(A) - 1.0)))
        rows.append(
            {
                "n": n,
                "rel_diff_x": max(err_x),
                "residual_ours": max(res_ours),
                "residual_numpy": max(res_np),
                "rel_diff_det": max(err_det),
                "ms_ours": 1e3 * t_ours / config.n_systems,
                "ms_numpy": 1e3 * t_np / config.n_systems,
            }
        )
    return rows


def _regression(ctx: RunContext) -> dict[str, float]:
    """Linear regression on diabetes via the normal equations X'X w = X'y, solved by us."""
    df = load("diabetes")
    y = df["target"].to_numpy(dtype=float)
    X = np.column_stack([np.ones(len(df)), df.drop(columns="target").to_numpy(dtype=float)])
    with ctx.step("normal equations on diabetes"):
        Xt = ref.transpose(X)
        w = ref.solve(ref.matmul(Xt, X), ref.matmul(Xt, y[:, None]))[:, 0]
        w_np = np.linalg.lstsq(X, y, rcond=None)[0]

    def r2(weights: np.ndarray) -> float:
        resid = y - X @ weights
        return float(1.0 - resid @ resid / ((y - y.mean()) @ (y - y.mean())))

    return {"ours_r2": r2(w), "numpy_lstsq_r2": r2(w_np), "weights_rel_diff": _rel(w, w_np)}


def _derivative_sweep() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Error of forward and central differences of sin at x = 1 over step sizes h."""
    hs = np.logspace(-14, -1, 40)
    exact = np.cos(1.0)
    x = np.array([1.0])
    central = np.array([abs(ref.numerical_derivative(np.sin, x, h)[0] - exact) for h in hs])
    forward = np.array(
        [abs(ref.numerical_derivative(np.sin, x, h, "forward")[0] - exact) for h in hs]
    )
    return hs, forward, central


def _pandas_part(config: Config) -> tuple[dict, dict[str, list[dict]], pd.DataFrame, pd.DataFrame]:
    """Missing values, imputation, group statistics and merges on penguins and titanic."""
    from sklearn.impute import SimpleImputer

    penguins, titanic = load("penguins"), load("titanic")
    report = ref.missing_report(penguins)

    num = penguins.select_dtypes("number")
    ours = ref.impute(num, config.impute_strategy)
    theirs = SimpleImputer(strategy=config.impute_strategy).fit_transform(num)
    by_species = ref.impute(penguins, "mean", by="species")
    sex_fill = ref.impute(penguins, "most_frequent", columns=["sex"])
    holes = penguins["body_mass_g"].isna()
    impute_rows = [
        {
            "column": c,
            "strategy": config.impute_strategy,
            "ours": float(ours.loc[num[c].isna(), c].iloc[0]),
            "sklearn": float(theirs[num[c].isna().to_numpy(), i][0]),
        }
        for i, c in enumerate(num.columns)
        if num[c].isna().any()
    ]
    for i in penguins.index[holes]:
        # The library side of a per-group fill: SimpleImputer fitted on that species only.
        same = penguins.loc[penguins["species"] == penguins.loc[i, "species"], ["body_mass_g"]]
        impute_rows.append(
            {
                "column": f"body_mass_g (row {i}, {penguins.loc[i, 'species']})",
                "strategy": "mean by species",
                "ours": float(by_species.loc[i, "body_mass_g"]),
                "sklearn": float(SimpleImputer(strategy="mean").fit(same).statistics_[0]),
            }
        )

    cols = ["bill_length_mm", "flipper_length_mm", "body_mass_g"]
    stats = ref.group_stats(penguins, "species", cols)
    want = penguins.groupby("species")[cols].agg(["count", "mean", "std", "min", "max"])
    group_diff = float(np.nanmax(np.abs(stats.to_numpy(float) - want.to_numpy(float))))

    merged = ref.merge_lookup(penguins, SPECIES, on="species")
    crew = ref.merge_lookup(titanic, CLASSES, on="class")
    by_kind = ref.group_stats(crew, "kind", ["survived", "fare", "age"], stats=("count", "mean"))
    fare_by_class = ref.group_stats(titanic, "class", ["fare"], stats=("count", "mean", "std"))

    metrics = {
        "penguins_cells_missing": int(report["n_missing"].sum()),
        "penguins_sex_missing": int(report.loc["sex", "n_missing"]),
        "impute_max_abs_diff_vs_sklearn": float(np.abs(ours.to_numpy(float) - theirs).max()),
        "sex_filled_with": str(sex_fill.loc[penguins["sex"].isna(), "sex"].iloc[0]),
        "group_stats_max_abs_diff_vs_pandas": group_diff,
        "merge_rows_before": len(penguins),
        "merge_rows_after": len(merged),
        "titanic_passenger_survival": float(by_kind.loc["passenger", "survived_mean"]),
        "titanic_crew_survival": float(by_kind.loc["crew", "survived_mean"]),
    }
    tables = {
        "missing_values": [
            {"column": c, "n_missing": int(r["n_missing"]), "pct_missing": float(r["pct_missing"])}
            for c, r in report.iterrows()
        ],
        "imputation": impute_rows,
        "penguins_by_species": _records(
            ref.group_stats(penguins, "species", cols, ("mean", "std"))
        ),
        "titanic_by_kind": _records(by_kind),
        "titanic_fare_by_class": _records(fare_by_class),
    }
    return metrics, tables, report, stats


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {frame.index.name: str(k), **{c: float(v) for c, v in r.items()}}
        for k, r in frame.iterrows()
    ]


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    solver_rows = _solver_rows(config, ctx)
    reg = _regression(ctx)
    hs, fwd, cen = _derivative_sweep()
    pd_metrics, tables, report, stats = _pandas_part(config)
    figures = []

    fig, ax = plt.subplots(figsize=(6, 4))
    n = [r["n"] for r in solver_rows]
    ax.semilogy(
        n, [r["residual_ours"] for r in solver_rows], "o-", label="ours: ||Ax - b|| / ||b||"
    )
    ax.semilogy(n, [r["residual_numpy"] for r in solver_rows], "s--", label="np.linalg.solve")
    ax.semilogy(
        n,
        [max(r["rel_diff_x"], 1e-17) for r in solver_rows],
        "^:",
        label="||x_ours - x_np|| / ||x_np||",
    )
    ax.set(
        xlabel="system size n",
        ylabel="relative error (worst of the systems)",
        title="Gaussian elimination vs LAPACK",
    )
    ax.legend()
    figures.append(ctx.save_figure(fig, "solver_accuracy"))

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    xs = np.linspace(-np.pi, np.pi, 200)
    left.plot(xs, np.sin(xs), label="f(x) = sin x")
    left.plot(xs, np.cos(xs), lw=3, alpha=0.4, label="analytic f'(x) = cos x")
    left.plot(
        xs, ref.numerical_derivative(np.sin, xs, 1e-2), "k--", label="central difference, h=0.01"
    )
    left.set(xlabel="x", title="a derivative, two ways")
    left.legend(fontsize=8)
    right.loglog(hs, np.maximum(fwd, 1e-17), "o-", ms=3, label="forward (error ~ h)")
    right.loglog(hs, np.maximum(cen, 1e-17), "s-", ms=3, label="central (error ~ h^2)")
    right.set(
        xlabel="step h",
        ylabel="|error| of d/dx sin at x=1",
        title="truncation (right) vs rounding (left)",
    )
    right.legend(fontsize=8)
    figures.append(ctx.save_figure(fig, "derivative_error"))

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.barh(report.index.astype(str), report["pct_missing"])
    ax.set(xlabel="% missing", title="Palmer penguins: missing values per column")
    figures.append(ctx.save_figure(fig, "penguins_missing"))

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for ax, col in zip(axes, ["body_mass_g", "flipper_length_mm"]):
        ax.bar(stats.index.astype(str), stats[f"{col}_mean"], yerr=stats[f"{col}_std"], capsize=6)
        ax.set(title=f"{col}: mean +/- std by species")
    figures.append(ctx.save_figure(fig, "penguins_by_species"))

    best_c, best_f = int(np.argmin(cen)), int(np.argmin(fwd))
    metrics = {
        **reg,
        "solve_max_rel_diff_vs_numpy": max(r["rel_diff_x"] for r in solver_rows),
        "det_max_rel_diff_vs_numpy": max(r["rel_diff_det"] for r in solver_rows),
        "central_best_error": float(cen[best_c]),
        "central_best_h": float(hs[best_c]),
        "forward_best_error": float(fwd[best_f]),
        "forward_best_h": float(hs[best_f]),
        **pd_metrics,
    }
    notes = [
        f"Normal equations on diabetes: our R^2 {reg['ours_r2']:.6f} vs numpy lstsq "
        f"{reg['numpy_lstsq_r2']:.6f} (weights differ by {reg['weights_rel_diff']:.1e} relative).",
        f"Best central difference error {cen[best_c]:.1e} at h={hs[best_c]:.0e}; best forward "
        f"{fwd[best_f]:.1e} at h={hs[best_f]:.0e}: smaller h is not always better.",
        f"Merging the species table kept {pd_metrics['merge_rows_before']} -> "
        f"{pd_metrics['merge_rows_after']} rows; "
        f"titanic survival: passengers {pd_metrics['titanic_passenger_survival']:.1%}, "
        f"crew {pd_metrics['titanic_crew_survival']:.1%}.",
    ]
    tables = {
        "solver_vs_numpy": solver_rows,
        "regression_diabetes": [
            {"method": "ours (normal equations)", "r2": reg["ours_r2"]},
            {"method": "np.linalg.lstsq", "r2": reg["numpy_lstsq_r2"]},
        ],
        **tables,
    }
    return LabResult(
        metrics=metrics,
        key_metric="ours_r2",
        library_metric="numpy_lstsq_r2",
        tables=tables,
        figures=figures,
        notes=notes,
    )
