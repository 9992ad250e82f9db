"""NumPy and pandas basics: the moves every later lab takes for granted.

Part 1 - linear algebra by hand: a matrix product, a transpose, and solving ``A x = b`` by
Gaussian elimination with partial pivoting (which also gives the determinant for free).
Part 2 - calculus by hand: derivatives and gradients by finite differences, the tool you use
to check every analytic gradient you will ever write.
Part 3 - tabular data with pandas: a missing-value report, imputation (optionally per group),
group statistics computed the way ``groupby`` does it (split, apply, combine) and a safe
many-to-one merge.

Everything here is plain NumPy / pandas; the tests compare it with ``np.linalg``,
``sklearn.impute.SimpleImputer`` and ``DataFrame.groupby``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

# ---------------------------------------------------------------- linear algebra


def matmul(A: np.ndarray, B: np.ndarray) -> np.ndarray:
    """Matrix product ``C = A @ B`` without ``@``: ``C[i, j] = sum_k A[i, k] * B[k, j]``.

    A: (n, k), B: (k, m) -> C: (n, m) float array.
    Raise ``ValueError`` when the inner sizes differ (or either input is not 2-D).
    """
    A, B = np.asarray(A, dtype=float), np.asarray(B, dtype=float)
    if A.ndim != 2 or B.ndim != 2 or A.shape[1] != B.shape[0]:
        raise ValueError(f"cannot multiply shapes {A.shape} and {B.shape}")
    # Broadcast to (n, k, m): entry [i, k, j] = A[i, k] * B[k, j], then sum over k.
    # Memory is n*k*m, fine for the teaching sizes used here.
    return (A[:, :, None] * B[None, :, :]).sum(axis=1)


def transpose(A: np.ndarray) -> np.ndarray:
    """The transpose without ``.T``: ``At[i, j] = A[j, i]``.

    A: (n, m) -> At: (m, n), a new array with A's dtype.
    """
    A = np.asarray(A)
    n, m = A.shape
    rows, cols = np.indices((m, n))  # every (i, j) position of the result
    return A[cols, rows]


def forward_eliminate(A: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Reduce ``A x = b`` to an upper-triangular system ``U x = c`` with partial pivoting.

    A: (n, n); b: (n,) or (n, k) (several right-hand sides at once).
    Returns ``(U, c, n_swaps)``: U (n, n) upper triangular (zeros below the diagonal), c with
    b's shape, and the number of row swaps made (the determinant's sign is ``(-1)**n_swaps``).
    At column j the row with the largest ``|U[i, j]|`` (i >= j) becomes the pivot row; a
    column whose best pivot is exactly 0 is skipped (the matrix is singular). Inputs are not
    modified.
    """
    U = np.array(A, dtype=float)
    c = np.array(b, dtype=float)
    n = U.shape[0]
    if U.shape != (n, n) or c.shape[0] != n:
        raise ValueError(f"need A (n, n) and b (n,) or (n, k); got {U.shape} and {c.shape}")
    n_swaps = 0
    for j in range(n - 1):
        # Partial pivoting: dividing by the largest candidate keeps every multiplier <= 1,
        # so rounding errors are not amplified.
        p = j + int(np.argmax(np.abs(U[j:, j])))
        if U[p, j] == 0.0:
            continue
        if p != j:
            U[[j, p]] = U[[p, j]]
            c[[j, p]] = c[[p, j]]
            n_swaps += 1
        factors = U[j + 1 :, j] / U[j, j]  # one multiplier per row below the pivot
        U[j + 1 :, j:] -= np.outer(factors, U[j, j:])  # every row update at once
        c[j + 1 :] -= factors.reshape(-1, *([1] * (c.ndim - 1))) * c[j]
        U[j + 1 :, j] = 0.0  # exact zeros, not rounding leftovers
    return U, c, n_swaps


def back_substitute(U: np.ndarray, c: np.ndarray) -> np.ndarray:
    """Solve the upper-triangular system ``U x = c`` from the last row up.

    ``x[i] = (c[i] - U[i, i+1:] @ x[i+1:]) / U[i, i]``. U: (n, n); c: (n,) or (n, k);
    returns x with c's shape. Raise ``np.linalg.LinAlgError`` when a diagonal entry is 0.
    """
    U = np.asarray(U, dtype=float)
    x = np.array(c, dtype=float)
    n = U.shape[0]
    for i in range(n - 1, -1, -1):
        if U[i, i] == 0.0:
            raise np.linalg.LinAlgError("matrix is singular: zero pivot")
        x[i] = (x[i] - U[i, i + 1 :] @ x[i + 1 :]) / U[i, i]
    return x


def solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Solve ``A x = b`` (no matrix inverse): forward elimination, then back substitution.

    A: (n, n); b: (n,) or (n, k) -> x with b's shape, float.
    Raise ``np.linalg.LinAlgError`` for a singular A, like ``np.linalg.solve``.
    """
    U, c, _ = forward_eliminate(A, b)
    return back_substitute(U, c)


def det(A: np.ndarray) -> float:
    """Determinant from elimination: ``det(A) = (-1)**n_swaps * prod(diag(U))``.

    A: (n, n) -> a Python float (0.0 for a singular matrix).
    """
    A = np.asarray(A, dtype=float)
    U, _, n_swaps = forward_eliminate(A, np.zeros(A.shape[0]))
    return float((-1.0) ** n_swaps * np.prod(np.diag(U)))


# ---------------------------------------------------------------- derivatives


def numerical_derivative(
    f: Callable[[np.ndarray], np.ndarray], x: np.ndarray, h: float = 1e-5, method: str = "central"
) -> np.ndarray:
    """Finite-difference derivative of an elementwise function ``f`` at every point of x.

    central: ``(f(x + h) - f(x - h)) / (2h)``, error O(h**2);
    forward: ``(f(x + h) - f(x)) / h``, error O(h).
    x: any shape -> float array of x's shape. Raise ``ValueError`` for another method.
    """
    x = np.asarray(x, dtype=float)
    if method == "central":
        return (f(x + h) - f(x - h)) / (2.0 * h)
    if method == "forward":
        return (f(x + h) - f(x)) / h
    raise ValueError(f"method must be 'central' or 'forward', got {method!r}")


def numerical_gradient(
    f: Callable[[np.ndarray], float], x: np.ndarray, h: float = 1e-5
) -> np.ndarray:
    """Central-difference gradient of a scalar function of a vector.

    ``g[i] = (f(x + h e_i) - f(x - h e_i)) / (2h)`` with ``e_i`` the i-th unit vector.
    x: (n,) -> g: (n,) float array.
    """
    x = np.asarray(x, dtype=float)
    steps = h * np.eye(x.size)  # row i is h * e_i
    return np.array([(f(x + e) - f(x - e)) / (2.0 * h) for e in steps], dtype=float)


# ---------------------------------------------------------------- pandas


def missing_report(df: pd.DataFrame) -> pd.DataFrame:
    """How much is missing, per column.

    Returns a DataFrame indexed by df's column names (same order) with columns
    ``n_missing`` (int, count of NaN/None) and ``pct_missing`` (float, 100 * n_missing / rows).
    """
    n_missing = df.isna().to_numpy().sum(axis=0)
    pct = 100.0 * n_missing / max(len(df), 1)
    return pd.DataFrame(
        {"n_missing": n_missing.astype(int), "pct_missing": pct}, index=pd.Index(df.columns)
    )


def _fill_value(s: pd.Series, strategy: str):
    """The statistic that fills a column's holes: its mean, median or most frequent value.

    Ignores missing values; returns NaN when the column is entirely missing. Ties for the
    most frequent value go to the smallest value (as scikit-learn's SimpleImputer does).
    """
    present = s.dropna()
    if present.empty:
        return np.nan
    if strategy == "mean":
        return present.mean()
    if strategy == "median":
        return present.median()
    counts = present.value_counts()
    return min(counts.index[counts == counts.max()])


def impute(
    df: pd.DataFrame,
    strategy: str = "mean",
    columns: Sequence[str] | None = None,
    by: str | None = None,
) -> pd.DataFrame:
    """Fill missing values; returns a new DataFrame (df is left unchanged).

    strategy: ``"mean"``, ``"median"`` or ``"most_frequent"`` (anything else: ValueError).
    columns: which columns to fill; default every column with a hole (only numeric ones for
    mean/median). by: a column name to fill each group with its own statistic (e.g. the
    species' mean), falling back to the whole column's statistic for a group with no values.
    """
    if strategy not in ("mean", "median", "most_frequent"):
        raise ValueError(f"strategy must be mean, median or most_frequent, got {strategy!r}")
    out = df.copy()
    if columns is None:
        candidates = df if strategy == "most_frequent" else df.select_dtypes("number")
        columns = [c for c in candidates.columns if df[c].isna().any() and c != by]
    for col in columns:
        if by is not None:
            per_group = df.groupby(by)[col].transform(lambda s: _fill_value(s, strategy))
            out[col] = out[col].fillna(per_group)
        out[col] = out[col].fillna(_fill_value(df[col], strategy))
    return out


def group_stats(
    df: pd.DataFrame,
    by: str,
    cols: Sequence[str],
    stats: Sequence[str] = ("count", "mean", "std", "min", "max"),
) -> pd.DataFrame:
    """Per-group statistics with NumPy, the way ``df.groupby(by)[cols].agg(stats)`` works.

    Split: map each row's group to an integer code. Apply: sum per code with ``np.bincount``
    (count and mean), a second pass of squared deviations (std, ddof=1), ``np.fmin.at`` /
    ``np.fmax.at`` (min, max). Combine: one row per group. Missing values are skipped;
    rows whose group is missing are dropped.
    Returns a DataFrame indexed by the sorted group values (index name = by) with columns
    ``f"{col}_{stat}"`` for each col, then each stat; count is int, the others float.
    """
    codes, groups = pd.factorize(df[by], sort=True)  # code -1 marks a missing group
    keep = codes >= 0
    codes, g = codes[keep], len(groups)
    result: dict[str, np.ndarray] = {}
    for col in cols:
        x = df[col].to_numpy(dtype=float)[keep]
        ok = ~np.isnan(x)
        cx, xv = codes[ok], x[ok]
        count = np.bincount(cx, minlength=g)
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.bincount(cx, weights=xv, minlength=g) / count
            # Two passes (mean first, then squared deviations) avoid the cancellation of
            # the one-pass formula E[x^2] - E[x]^2.
            ss = np.bincount(cx, weights=(xv - mean[cx]) ** 2, minlength=g)
            std = np.sqrt(ss / (count - 1))
        std[count < 2] = np.nan
        lo, hi = np.full(g, np.nan), np.full(g, np.nan)
        np.fmin.at(lo, cx, xv)  # fmin ignores the NaN start value
        np.fmax.at(hi, cx, xv)
        values = {"count": count, "mean": mean, "std": std, "min": lo, "max": hi}
        for stat in stats:
            if stat not in values:
                raise ValueError(f"unknown stat {stat!r}; choose from {sorted(values)}")
            result[f"{col}_{stat}"] = values[stat]
    return pd.DataFrame(result, index=pd.Index(groups, name=by))


def merge_lookup(df: pd.DataFrame, lookup: pd.DataFrame, on: str) -> pd.DataFrame:
    """Left-join a lookup table (one row per key) onto df, refusing to lose or add rows.

    Returns df's rows in df's order with the lookup's other columns appended; the result
    has exactly ``len(df)`` rows. Raise ``ValueError`` when a key appears twice in lookup
    (the join would duplicate rows) or when a non-missing key of df has no lookup row.
    """
    if lookup[on].duplicated().any():
        dupes = sorted(lookup.loc[lookup[on].duplicated(), on].astype(str).unique())
        raise ValueError(f"lookup has duplicate keys in '{on}': {dupes}")
    merged = df.merge(lookup, on=on, how="left", validate="many_to_one", indicator=True)
    unmatched = (merged["_merge"] == "left_only") & merged[on].notna()
    if unmatched.any():
        missing = sorted(merged.loc[unmatched, on].astype(str).unique())
        raise ValueError(f"keys of '{on}' missing from lookup: {missing}")
    merged = merged.drop(columns="_merge")
    merged.index = df.index
    return merged
