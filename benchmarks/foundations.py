"""Fit time of our Phase-1 estimators vs scikit-learn's, same data, same run, one BLAS thread.

Run from the repository root:  python benchmarks/foundations.py [--repeats 7] [--only Lasso]
Prints one markdown table and writes it (with the set-up) to benchmarks/results/foundations.md;
with --only, just the rows whose task and data contain that text, replaced in the results file.

Each fit is repeated; ours and sklearn's alternate so background load hits both alike; the
table shows medians. Both sides get the same float64 arrays and the same tolerance.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from datetime import date
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before NumPy loads its BLAS

import numpy as np  # noqa: E402
import sklearn  # noqa: E402
from sklearn import decomposition, linear_model  # noqa: E402
from threadpoolctl import threadpool_info, threadpool_limits  # noqa: E402

from airoad.data import load  # noqa: E402
from airoad.foundations import linear_regression as lr  # noqa: E402
from airoad.foundations.pca import PCA, flip_signs  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from classical import replace_rows  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "foundations.md"


def race(ours, theirs, repeats: int) -> tuple[float, float, object, object]:
    """Median seconds of two zero-argument fit functions run interleaved, and a fitted model of each."""
    times: dict = {ours: [], theirs: []}
    for i in range(repeats):
        for fit in (ours, theirs) if i % 2 == 0 else (theirs, ours):  # alternate who goes first
            start = time.perf_counter()
            model = fit()
            times[fit].append(time.perf_counter() - start)
            if fit is ours:
                a = model
            else:
                b = model
    return statistics.median(times[ours]), statistics.median(times[theirs]), a, b


def datasets() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    Xm, ym = load("mnist-5k")
    boston = load("boston")
    Xb = boston.drop(columns="MEDV").to_numpy(np.float64)
    Xb = (Xb - Xb.mean(axis=0)) / Xb.std(axis=0)
    Xb2 = lr.polynomial_features(Xb, 2, include_bias=False)
    Xb2 = (Xb2 - Xb2.mean(axis=0)) / Xb2.std(axis=0)
    return {
        "mnist-5k": (Xm.astype(np.float64) / 255.0, ym.astype(np.float64)),
        "boston poly-2": (Xb2, boston["MEDV"].to_numpy(np.float64)),
    }


def cases(data):
    """(task, dataset, our fit, sklearn fit, target ratio, difference, note) per table row."""
    Xm, ym = data["mnist-5k"]
    k, lasso_kw = 50, dict(tol=1e-4, max_iter=10_000)

    def comp_diff(a, b):
        return float(np.abs(a.components_ - flip_signs(b.components_)).max())

    def coef_diff(a, b):
        return float(np.abs(a.coef_ - b.coef_).max())

    def lasso_note(a, b):
        return f"sweeps {a.n_iter_} vs {b.n_iter_}; gap/n {a.dual_gap_:.1e} vs {b.dual_gap_:.1e}"

    yield (
        "PCA, SVD (k=50)",
        "mnist-5k",
        lambda: PCA(k, solver="svd").fit(Xm),
        lambda: decomposition.PCA(k, svd_solver="full").fit(Xm),
        1.2,
        comp_diff,
        lambda a, b: "sklearn svd_solver='full'",
    )
    yield (
        "PCA, covariance eigh (k=50)",
        "mnist-5k",
        lambda: PCA(k, solver="eigh").fit(Xm),
        lambda: decomposition.PCA(k, svd_solver="covariance_eigh").fit(Xm),
        1.2,
        comp_diff,
        lambda a, b: "sklearn svd_solver='covariance_eigh'",
    )
    for name in data:
        X, y = data[name]
        yield (
            "OLS (lstsq)",
            name,
            lambda X=X, y=y: lr.LinearRegression().fit(X, y),
            lambda X=X, y=y: linear_model.LinearRegression().fit(X, y),
            1.5,
            coef_diff,
            lambda a, b: "both SVD least squares (gelsd)",
        )
        yield (
            "Ridge (alpha=1)",
            name,
            lambda X=X, y=y: lr.Ridge(1.0).fit(X, y),
            lambda X=X, y=y: linear_model.Ridge(1.0).fit(X, y),
            1.5,
            coef_diff,
            lambda a, b: "sklearn solver='auto' (cholesky)",
        )
    for name, alpha in [("mnist-5k", 0.01), ("boston poly-2", 0.05)]:
        X, y = data[name]
        yield (
            f"Lasso (alpha={alpha}, tol=1e-4)",
            name,
            lambda X=X, y=y, a=alpha: lr.Lasso(a, **lasso_kw).fit(X, y),
            lambda X=X, y=y, a=alpha: linear_model.Lasso(alpha=a, **lasso_kw).fit(X, y),
            3.0,
            coef_diff,
            lasso_note,
        )


def _write_all(table: str, setup: str) -> None:
    RESULTS.write_text(
        "# Phase 1 foundations: fit time vs scikit-learn\n\n"
        "Written by `python benchmarks/foundations.py`. " + setup + "\n\n" + table + "\n\n"
        "- mnist-5k regressions use the 784 pixels (scaled to [0, 1]) to predict the digit "
        "label as a number: a real, measurably large design matrix, not a sensible model.\n"
        "- boston poly-2: the 13 standardised features plus all their degree-2 products "
        "(104 columns), standardised again.\n"
        "- Lasso: both stop when the duality gap is below tol * ||y - mean(y)||^2; ours checks "
        "it after every sweep, sklearn once the weights stop moving, so sweeps differ and the "
        "coefficients agree to within that tolerance, not to round-off.\n"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", default="", help="run only rows whose 'task data' has this")
    args = parser.parse_args()

    data = datasets()
    load_before = os.getloadavg()[0]
    lines = [
        "| task | data (n x p) | ours ms | sklearn ms | ours / sklearn | target | "
        "max abs diff | notes |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    with threadpool_limits(limits=1):
        for task, name, ours, theirs, target, diff, note in cases(data):
            if args.only not in f"{task} {name}":
                continue
            print(f"timing {task} on {name} ...", file=sys.stderr)
            t_ours, t_theirs, a, b = race(ours, theirs, args.repeats)
            ratio = t_ours / t_theirs
            flag = "" if ratio <= target else " (missed)"
            n, p = data[name][0].shape
            lines.append(
                f"| {task} | {name} ({n} x {p}) | {t_ours * 1e3:.1f} | "
                f"{t_theirs * 1e3:.1f} | {ratio:.2f}{flag} | <= {target:g} | "
                f"{diff(a, b):.1e} | {note(a, b)} |"
            )
        blas = ", ".join(
            sorted({f"{i['internal_api']} {i['num_threads']} thread(s)" for i in threadpool_info()})
        )
    table = "\n".join(lines)
    print(table)
    setup = (
        f"{date.today()}, Python {platform.python_version()}, NumPy {np.__version__}, "
        f"scikit-learn {sklearn.__version__}, {blas}, {platform.machine()}; "
        f"median of {args.repeats} interleaved fits per side; load average "
        f"{load_before:.1f} at the start and {os.getloadavg()[0]:.1f} at the end on "
        f"{os.cpu_count()} cores."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    if args.only:
        replace_rows(RESULTS, lines[2:], f"Rows matching {args.only!r} re-run on {setup}")
    else:
        _write_all(table, setup)
    print(
        f"\nwritten to {RESULTS.relative_to(Path.cwd()) if RESULTS.is_relative_to(Path.cwd()) else RESULTS}",
        file=sys.stderr,
    )


if __name__ == "__main__":
    main()
