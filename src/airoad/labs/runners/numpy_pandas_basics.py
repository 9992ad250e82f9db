"""Runner for numpy-pandas-basics: our linear algebra, derivatives and pandas helpers on real
data (diabetes, penguins, titanic), side by side with NumPy, scikit-learn and pandas."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import numpy as np
import pandas as pd

from airoad.data import load
from airoad.foundations import numpy_pandas_basics as ref
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, frame_xy, param, race, render_notes


@dataclass(frozen=True)
class Config:
    # random systems A x = b, one size per row
    sizes: tuple[int, ...] = param((10, 50, 100, 200, 400), ge=1, le=2000)
    n_systems: int = param(10, ge=1, le=1000)  # random systems per size
    # how the numeric penguin columns are filled
    impute_strategy: str = param("median", choices=("mean", "median", "most_frequent"))
    seed: int = param(0, ge=0)


QUICK = {"sizes": (5, 20, 50), "n_systems": 3}

NOTES = (
    "Normal equations on diabetes: our R^2 {ours_r2:.6f} vs numpy lstsq {numpy_lstsq_r2:.6f} "
    "(weights differ by {weights_rel_diff:.1e} relative).",
    "Best central difference error {central_best_error:.1e} at h={central_best_h:.0e}; best "
    "forward {forward_best_error:.1e} at h={forward_best_h:.0e}: smaller h is not always better.",
    "Merging the species table kept {merge_rows_before} -> {merge_rows_after} rows; titanic "
    "survival: passengers {titanic_passenger_survival:.1%}, crew {titanic_crew_survival:.1%}.",
)

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
GROUP_COLUMNS = ["bill_length_mm", "flipper_length_mm", "body_mass_g"]


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    """Relative difference ||a - b|| / ||b||."""
    return float(np.linalg.norm(np.asarray(a) - b) / max(np.linalg.norm(b), 1e-300))


def _records(frame: pd.DataFrame) -> list[dict]:
    return [
        {frame.index.name: str(k), **{c: float(v) for c, v in r.items()}}
        for k, r in frame.iterrows()
    ]


def _solver_race(config: Config, ctx: RunContext) -> tuple[dict, list[dict]]:
    """Random well-conditioned systems of each size: accuracy and time, ours vs NumPy."""
    rng = np.random.default_rng(config.seed)
    rows = []
    for n in ctx.track(list(config.sizes), "solving random systems"):
        err_x, res_ours, res_np, err_det, t_ours, t_np = [], [], [], [], 0.0, 0.0
        for _ in range(config.n_systems):
            # Eigenvalues cluster around 2, so the condition number stays small.
            A = rng.standard_normal((n, n)) / np.sqrt(n) + 2.0 * np.eye(n)
            b = rng.standard_normal(n)
            r = race(partial(ref.solve, A, b), partial(np.linalg.solve, A, b))
            x, x_np = r["ours"], r["library"]
            t_ours, t_np = t_ours + r["ours_seconds"], t_np + r["library_seconds"]
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
    metrics = {
        "solve_max_rel_diff_vs_numpy": max(r["rel_diff_x"] for r in rows),
        "det_max_rel_diff_vs_numpy": max(r["rel_diff_det"] for r in rows),
    }
    return metrics, rows


def _regression(ctx: RunContext) -> tuple[dict, list[dict]]:
    """Linear regression on diabetes via the normal equations X'X w = X'y, solved by us."""
    X, y = frame_xy(load("diabetes"))
    X = np.column_stack([np.ones(len(X)), X])
    with ctx.step("normal equations on diabetes"):
        Xt = ref.transpose(X)
        w = ref.solve(ref.matmul(Xt, X), ref.matmul(Xt, y[:, None]))[:, 0]
        w_np = np.linalg.lstsq(X, y, rcond=None)[0]

    def r2(weights: np.ndarray) -> float:
        resid = y - X @ weights
        return float(1.0 - resid @ resid / ((y - y.mean()) @ (y - y.mean())))

    metrics = {"ours_r2": r2(w), "numpy_lstsq_r2": r2(w_np), "weights_rel_diff": _rel(w, w_np)}
    rows = [
        {"method": "ours (normal equations)", "r2": metrics["ours_r2"]},
        {"method": "np.linalg.lstsq", "r2": metrics["numpy_lstsq_r2"]},
    ]
    return metrics, rows


def _derivative_sweep() -> tuple[dict, dict]:
    """Error of forward and central differences of sin at x = 1 over step sizes h."""
    hs = np.logspace(-14, -1, 40)
    exact = np.cos(1.0)
    x = np.array([1.0])
    central = np.array([abs(ref.numerical_derivative(np.sin, x, h)[0] - exact) for h in hs])
    forward = np.array(
        [abs(ref.numerical_derivative(np.sin, x, h, "forward")[0] - exact) for h in hs]
    )
    best_c, best_f = int(np.argmin(central)), int(np.argmin(forward))
    metrics = {
        "central_best_error": float(central[best_c]),
        "central_best_h": float(hs[best_c]),
        "forward_best_error": float(forward[best_f]),
        "forward_best_h": float(hs[best_f]),
    }
    return metrics, {"hs": hs, "forward": forward, "central": central}


def _imputation(penguins: pd.DataFrame, config: Config) -> tuple[dict, dict, pd.DataFrame]:
    """Missing values, then whole-column and per-species fills beside SimpleImputer's."""
    from sklearn.impute import SimpleImputer

    report = ref.missing_report(penguins)
    num = penguins.select_dtypes("number")
    ours = ref.impute(num, config.impute_strategy)
    theirs = SimpleImputer(strategy=config.impute_strategy).fit_transform(num)
    by_species = ref.impute(penguins, "mean", by="species")
    sex_fill = ref.impute(penguins, "most_frequent", columns=["sex"])
    holes = penguins["body_mass_g"].isna()
    rows = [
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
        rows.append(
            {
                "column": f"body_mass_g (row {i}, {penguins.loc[i, 'species']})",
                "strategy": "mean by species",
                "ours": float(by_species.loc[i, "body_mass_g"]),
                "sklearn": float(SimpleImputer(strategy="mean").fit(same).statistics_[0]),
            }
        )
    metrics = {
        "penguins_cells_missing": int(report["n_missing"].sum()),
        "penguins_sex_missing": int(report.loc["sex", "n_missing"]),
        "impute_max_abs_diff_vs_sklearn": float(np.abs(ours.to_numpy(float) - theirs).max()),
        "sex_filled_with": str(sex_fill.loc[penguins["sex"].isna(), "sex"].iloc[0]),
    }
    missing = [
        {"column": c, "n_missing": int(r["n_missing"]), "pct_missing": float(r["pct_missing"])}
        for c, r in report.iterrows()
    ]
    return metrics, {"missing_values": missing, "imputation": rows}, report


def _groups_and_merges(penguins: pd.DataFrame, titanic: pd.DataFrame):
    """Our group statistics beside groupby().agg(), and row-preserving lookup merges."""
    stats = ref.group_stats(penguins, "species", GROUP_COLUMNS)
    want = penguins.groupby("species")[GROUP_COLUMNS].agg(["count", "mean", "std", "min", "max"])
    merged = ref.merge_lookup(penguins, SPECIES, on="species")
    crew = ref.merge_lookup(titanic, CLASSES, on="class")
    by_kind = ref.group_stats(crew, "kind", ["survived", "fare", "age"], stats=("count", "mean"))
    fare_by_class = ref.group_stats(titanic, "class", ["fare"], stats=("count", "mean", "std"))
    metrics = {
        "group_stats_max_abs_diff_vs_pandas": float(
            np.nanmax(np.abs(stats.to_numpy(float) - want.to_numpy(float)))
        ),
        "merge_rows_before": len(penguins),
        "merge_rows_after": len(merged),
        "titanic_passenger_survival": float(by_kind.loc["passenger", "survived_mean"]),
        "titanic_crew_survival": float(by_kind.loc["crew", "survived_mean"]),
    }
    tables = {
        "penguins_by_species": _records(
            ref.group_stats(penguins, "species", GROUP_COLUMNS, ("mean", "std"))
        ),
        "titanic_by_kind": _records(by_kind),
        "titanic_fare_by_class": _records(fare_by_class),
    }
    return metrics, tables, stats


def _solver_figure(rows: list[dict], ctx: RunContext) -> None:
    with figure(ctx, "solver_accuracy", figsize=(6, 4)) as (_, ax):
        n = [r["n"] for r in rows]
        ax.semilogy(n, [r["residual_ours"] for r in rows], "o-", label="ours: ||Ax - b|| / ||b||")
        ax.semilogy(n, [r["residual_numpy"] for r in rows], "s--", label="np.linalg.solve")
        ax.semilogy(
            n,
            [max(r["rel_diff_x"], 1e-17) for r in rows],
            "^:",
            label="||x_ours - x_np|| / ||x_np||",
        )
        ax.set(
            xlabel="system size n",
            ylabel="relative error (worst of the systems)",
            title="Gaussian elimination vs LAPACK",
        )
        ax.legend()


def _derivative_figure(sweep: dict, ctx: RunContext) -> None:
    with figure(ctx, "derivative_error", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        xs = np.linspace(-np.pi, np.pi, 200)
        left.plot(xs, np.sin(xs), label="f(x) = sin x")
        left.plot(xs, np.cos(xs), lw=3, alpha=0.4, label="analytic f'(x) = cos x")
        central = ref.numerical_derivative(np.sin, xs, 1e-2)
        left.plot(xs, central, "k--", label="central difference, h=0.01")
        left.set(xlabel="x", title="a derivative, two ways")
        left.legend(fontsize=8)
        hs = sweep["hs"]
        for key, marker, label in (
            ("forward", "o-", "forward (error ~ h)"),
            ("central", "s-", "central (error ~ h^2)"),
        ):
            right.loglog(hs, np.maximum(sweep[key], 1e-17), marker, ms=3, label=label)
        right.set(
            xlabel="step h",
            ylabel="|error| of d/dx sin at x=1",
            title="truncation (right) vs rounding (left)",
        )
        right.legend(fontsize=8)


def _missing_figure(report: pd.DataFrame, ctx: RunContext) -> None:
    with figure(ctx, "penguins_missing", figsize=(6, 3.5)) as (_, ax):
        ax.barh(report.index.astype(str), report["pct_missing"])
        ax.set(xlabel="% missing", title="Palmer penguins: missing values per column")


def _species_figure(stats: pd.DataFrame, ctx: RunContext) -> None:
    with figure(ctx, "penguins_by_species", 1, 2, figsize=(9, 3.5)) as (_, axes):
        for ax, col in zip(axes, ["body_mass_g", "flipper_length_mm"]):
            mean, std = stats[f"{col}_mean"], stats[f"{col}_std"]
            ax.bar(stats.index.astype(str), mean, yerr=std, capsize=6)
            ax.set(title=f"{col}: mean +/- std by species")


def run(config: Config, ctx: RunContext) -> LabResult:
    solver_metrics, solver_rows = _solver_race(config, ctx)
    reg_metrics, reg_rows = _regression(ctx)
    sweep_metrics, sweep = _derivative_sweep()
    penguins, titanic = load("penguins"), load("titanic")
    impute_metrics, impute_tables, report = _imputation(penguins, config)
    group_metrics, group_tables, stats = _groups_and_merges(penguins, titanic)

    _solver_figure(solver_rows, ctx)
    _derivative_figure(sweep, ctx)
    _missing_figure(report, ctx)
    _species_figure(stats, ctx)

    metrics = {**reg_metrics, **solver_metrics, **sweep_metrics, **impute_metrics}
    metrics |= group_metrics
    return LabResult(
        metrics=metrics,
        key_metric="ours_r2",
        library_metric="numpy_lstsq_r2",
        tables={
            "solver_vs_numpy": solver_rows,
            "regression_diabetes": reg_rows,
            **impute_tables,
            **group_tables,
        },
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
