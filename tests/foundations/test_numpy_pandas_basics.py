"""Grader for numpy-pandas-basics: linear algebra, finite differences and pandas moves,
checked against np.linalg, analytic derivatives, SimpleImputer and DataFrame.groupby."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.linalg
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.impute import SimpleImputer

from airoad.data import load

REFERENCE = "airoad.foundations.numpy_pandas_basics"

FAST = settings(max_examples=25, deadline=None)


@pytest.fixture(scope="module")
def penguins() -> pd.DataFrame:
    return load("penguins")


@pytest.fixture(scope="module")
def titanic() -> pd.DataFrame:
    return load("titanic")


def _well_conditioned(n: int, seed: int) -> np.ndarray:
    """A random matrix whose eigenvalues sit near 2 (condition number in the tens at most)."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n)) / np.sqrt(n) + 2.0 * np.eye(n)


# ---------------------------------------------------------------- linear algebra


def test_matmul_matches_numpy(impl):
    """matmul(A, B) equals A @ B for rectangular matrices and returns shape (n, m)."""
    rng = np.random.default_rng(0)
    A, B = rng.standard_normal((4, 7)), rng.standard_normal((7, 3))
    C = np.asarray(impl.matmul(A, B))
    assert C.shape == (4, 3), f"matmul returned shape {C.shape}, expected (4, 3)"
    np.testing.assert_allclose(
        C, A @ B, rtol=1e-12, atol=1e-12, err_msg="matmul differs from A @ B"
    )


def test_matmul_rejects_mismatched_shapes(impl):
    """matmul raises ValueError when A's columns differ from B's rows."""
    with pytest.raises(ValueError):
        impl.matmul(np.ones((2, 3)), np.ones((2, 3)))


def test_matmul_rejects_shapes_that_would_broadcast(impl):
    """matmul raises ValueError for (2, 1) @ (3, 2) and 1-D input, where broadcasting hides the error."""
    with pytest.raises(ValueError):
        impl.matmul(np.ones((2, 1)), np.ones((3, 2)))
    with pytest.raises(ValueError):
        impl.matmul(np.ones(3), np.ones((3, 2)))


def test_transpose_swaps_axes(impl):
    """transpose(A)[i, j] == A[j, i], with shape (m, n) for A of shape (n, m)."""
    A = np.arange(12.0).reshape(3, 4)
    At = np.asarray(impl.transpose(A))
    assert At.shape == (4, 3), f"transpose returned shape {At.shape}, expected (4, 3)"
    np.testing.assert_array_equal(At, A.T, err_msg="transpose differs from A.T")


@FAST
@given(n=st.integers(1, 12), k=st.integers(1, 3), seed=st.integers(0, 10_000))
def test_solve_matches_numpy_on_random_systems(impl, n, k, seed):
    """solve(A, b) equals np.linalg.solve on random well-conditioned systems (b vector or matrix)."""
    A = _well_conditioned(n, seed)
    b = np.random.default_rng(seed + 1).standard_normal((n, k) if k > 1 else n)
    x = np.asarray(impl.solve(A, b))
    assert x.shape == b.shape, f"solve returned shape {x.shape}, expected b's shape {b.shape}"
    np.testing.assert_allclose(
        x,
        np.linalg.solve(A, b),
        rtol=1e-9,
        atol=1e-10,
        err_msg="solve differs from np.linalg.solve",
    )


def test_solve_needs_pivoting(impl):
    """solve handles a zero in the top-left corner (needs a row swap, i.e. partial pivoting)."""
    A = np.array([[0.0, 2.0, 1.0], [1.0, 1.0, 0.0], [3.0, 0.0, 1.0]])
    b = np.array([3.0, 2.0, 4.0])
    np.testing.assert_allclose(
        impl.solve(A, b),
        np.linalg.solve(A, b),
        rtol=1e-12,
        atol=1e-12,
        err_msg="solve failed on a matrix with A[0, 0] == 0",
    )


def test_solve_is_accurate_with_tiny_pivot(impl):
    """With a tiny (1e-17) top-left entry, pivoting keeps the solution accurate."""
    A = np.array([[1e-17, 1.0], [1.0, 1.0]])
    b = np.array([1.0, 2.0])
    np.testing.assert_allclose(
        impl.solve(A, b),
        np.linalg.solve(A, b),
        rtol=1e-12,
        err_msg="no pivoting? dividing by 1e-17 ruins the answer",
    )


def test_solve_raises_on_singular(impl):
    """solve raises np.linalg.LinAlgError for a singular matrix."""
    A = np.array([[1.0, 2.0], [2.0, 4.0]])
    with pytest.raises(np.linalg.LinAlgError):
        impl.solve(A, np.array([1.0, 1.0]))


def test_forward_eliminate_gives_upper_triangular(impl):
    """forward_eliminate returns U upper-triangular, c, and a swap count; U x = c keeps the solution."""
    A, b = _well_conditioned(6, 3), np.arange(6.0)
    U, c, n_swaps = impl.forward_eliminate(A, b)
    U = np.asarray(U)
    assert U.shape == (6, 6), f"U has shape {U.shape}, expected (6, 6)"
    np.testing.assert_allclose(
        np.tril(U, -1), 0.0, atol=1e-12, err_msg="U has entries below the diagonal"
    )
    assert isinstance(n_swaps, (int, np.integer)), f"n_swaps should be an int, got {type(n_swaps)}"
    np.testing.assert_allclose(
        U @ np.linalg.solve(A, b),
        c,
        atol=1e-10,
        err_msg="U x = c does not hold for the true solution x",
    )
    np.testing.assert_array_equal(
        A, _well_conditioned(6, 3), err_msg="forward_eliminate modified A"
    )


def test_forward_eliminate_matches_lapack_lu(impl):
    """U and the swap count equal LAPACK's partial-pivoting LU (scipy.linalg.lu_factor)."""
    A = np.random.default_rng(7).standard_normal((6, 6))  # pivots needed in most columns
    U, _, n_swaps = impl.forward_eliminate(A, np.zeros(6))
    lu, piv = scipy.linalg.lu_factor(A)
    np.testing.assert_allclose(
        np.asarray(U), np.triu(lu), atol=1e-10, err_msg="U differs from LU's"
    )
    swaps = int(np.sum(piv != np.arange(6)))
    assert n_swaps == swaps, f"n_swaps is {n_swaps}, LAPACK swapped rows {swaps} times"


def test_back_substitute_matches_numpy(impl):
    """back_substitute solves an upper-triangular system like np.linalg.solve."""
    U = np.triu(_well_conditioned(5, 7))
    c = np.arange(1.0, 6.0)
    np.testing.assert_allclose(
        impl.back_substitute(U, c),
        np.linalg.solve(U, c),
        rtol=1e-12,
        err_msg="back_substitute differs from np.linalg.solve",
    )


@FAST
@given(n=st.integers(1, 10), seed=st.integers(0, 10_000))
def test_det_matches_numpy(impl, n, seed):
    """det(A) equals np.linalg.det, sign included (row swaps flip it)."""
    A = np.random.default_rng(seed).standard_normal((n, n))
    d = impl.det(A)
    assert np.ndim(d) == 0, "det must return a single number"
    np.testing.assert_allclose(
        d, np.linalg.det(A), rtol=1e-9, atol=1e-12, err_msg="det differs from np.linalg.det"
    )


def test_det_of_singular_and_permutation(impl):
    """det is 0 for a singular matrix and -1 for a single row swap of the identity."""
    assert abs(impl.det(np.array([[1.0, 2.0], [2.0, 4.0]]))) < 1e-12, (
        "singular matrix should have det 0"
    )
    P = np.eye(3)[[1, 0, 2]]
    np.testing.assert_allclose(
        impl.det(P), -1.0, atol=1e-12, err_msg="one row swap should give det -1"
    )


# ---------------------------------------------------------------- derivatives


@pytest.mark.parametrize(
    "f, df",
    [
        (np.sin, np.cos),
        (np.exp, np.exp),
        (lambda x: x**3 - 2 * x, lambda x: 3 * x**2 - 2),
        (lambda x: np.log1p(x**2), lambda x: 2 * x / (1 + x**2)),
    ],
    ids=["sin", "exp", "cubic", "log1p"],
)
def test_central_derivative_matches_analytic(impl, f, df):
    """numerical_derivative (central) matches the analytic derivative to about 1e-8."""
    x = np.linspace(-2, 2, 9)
    d = np.asarray(impl.numerical_derivative(f, x))
    assert d.shape == x.shape, f"derivative has shape {d.shape}, expected x's shape {x.shape}"
    np.testing.assert_allclose(d, df(x), rtol=1e-7, atol=1e-8, err_msg="central difference is off")


def test_central_beats_forward(impl):
    """At h = 1e-3 the central error is O(h^2), far below the forward error O(h)."""
    x, h = np.array([1.0]), 1e-3
    err_c = abs(impl.numerical_derivative(np.sin, x, h=h, method="central")[0] - np.cos(1.0))
    err_f = abs(impl.numerical_derivative(np.sin, x, h=h, method="forward")[0] - np.cos(1.0))
    # Taylor: forward error ~ h/2 |sin(1)| = 4.2e-4, central ~ h^2/6 |cos(1)| = 9e-8.
    assert 1e-4 < err_f < 1e-3, f"forward error {err_f:.2e}, expected about 4e-4"
    assert err_c < 1e-6, f"central error {err_c:.2e}, expected about 9e-8"


def test_unknown_method_raises(impl):
    """numerical_derivative raises ValueError for an unknown method."""
    with pytest.raises(ValueError):
        impl.numerical_derivative(np.sin, np.zeros(2), method="backward-ish")


@FAST
@given(n=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_gradient_of_quadratic(impl, n, seed):
    """numerical_gradient of 0.5 x'Ax + b'x equals the analytic (A + A')/2 x + b."""
    rng = np.random.default_rng(seed)
    A, b, x = rng.standard_normal((n, n)), rng.standard_normal(n), rng.standard_normal(n)
    g = np.asarray(impl.numerical_gradient(lambda v: 0.5 * v @ A @ v + b @ v, x))
    assert g.shape == (n,), f"gradient has shape {g.shape}, expected ({n},)"
    np.testing.assert_allclose(
        g,
        0.5 * (A + A.T) @ x + b,
        rtol=1e-6,
        atol=1e-7,
        err_msg="numerical gradient differs from the analytic one",
    )


def test_gradient_of_rosenbrock(impl):
    """numerical_gradient of the Rosenbrock function matches its analytic gradient."""

    def rosen(v):
        return (1 - v[0]) ** 2 + 100 * (v[1] - v[0] ** 2) ** 2

    x = np.array([-1.2, 1.0])
    exact = np.array([-2 * (1 - x[0]) - 400 * x[0] * (x[1] - x[0] ** 2), 200 * (x[1] - x[0] ** 2)])
    np.testing.assert_allclose(
        impl.numerical_gradient(rosen, x), exact, rtol=1e-7, err_msg="Rosenbrock gradient is off"
    )


# ---------------------------------------------------------------- pandas


def test_missing_report_on_penguins(impl, penguins):
    """missing_report counts NaNs per column (n_missing int, pct_missing in percent)."""
    rep = impl.missing_report(penguins)
    assert list(rep.columns) == ["n_missing", "pct_missing"], f"columns are {list(rep.columns)}"
    assert list(rep.index) == list(penguins.columns), "index must be df's columns, in order"
    np.testing.assert_array_equal(
        rep["n_missing"].to_numpy(),
        penguins.isna().sum().to_numpy(),
        err_msg="n_missing differs from df.isna().sum()",
    )
    np.testing.assert_allclose(
        rep["pct_missing"].to_numpy(),
        100 * penguins.isna().mean().to_numpy(),
        rtol=1e-12,
        err_msg="pct_missing should be 100 * n_missing / rows",
    )
    assert rep.loc["sex", "n_missing"] == 11, "penguins has 11 missing sex values"


@pytest.mark.parametrize("strategy", ["mean", "median", "most_frequent"])
def test_impute_matches_simple_imputer(impl, penguins, strategy):
    """impute on the numeric columns equals sklearn's SimpleImputer for each strategy."""
    num = penguins.select_dtypes("number")
    out = impl.impute(num, strategy)
    assert isinstance(out, pd.DataFrame) and out.shape == num.shape, (
        "impute must return a DataFrame of df's shape"
    )
    expected = SimpleImputer(strategy=strategy).fit_transform(num)
    np.testing.assert_allclose(
        out.to_numpy(dtype=float),
        expected,
        rtol=1e-12,
        err_msg=f"impute({strategy!r}) differs from SimpleImputer",
    )


def test_impute_most_frequent_on_text(impl, penguins):
    """impute('most_frequent') fills the text column sex like SimpleImputer and leaves df unchanged."""
    before = penguins.isna().sum().sum()
    out = impl.impute(penguins, "most_frequent", columns=["sex"])
    expected = SimpleImputer(strategy="most_frequent").fit_transform(penguins[["sex"]]).ravel()
    assert list(out["sex"]) == list(expected), "sex filled differently from SimpleImputer"
    assert penguins.isna().sum().sum() == before, "impute modified its input; return a copy"


def test_impute_by_group_uses_group_statistic(impl, penguins):
    """impute(by='species') fills each hole with that species' own mean."""
    df = penguins.copy()
    df.loc[[0, 200], "body_mass_g"] = np.nan  # an Adelie and a Gentoo lose their mass
    out = impl.impute(df, "mean", columns=["body_mass_g"], by="species")
    for row in (0, 3, 200):
        sp = df.loc[row, "species"]
        want = df.loc[df["species"] == sp, "body_mass_g"].mean()
        np.testing.assert_allclose(
            out.loc[row, "body_mass_g"],
            want,
            rtol=1e-12,
            err_msg=f"row {row} ({sp}) should get the {sp} mean",
        )
    assert out["body_mass_g"].notna().all(), "some body_mass_g values are still missing"


def test_impute_by_group_falls_back_to_overall(impl):
    """A group with no values falls back to the whole column's statistic."""
    df = pd.DataFrame({"g": ["a", "a", "b"], "x": [1.0, 3.0, np.nan]})
    out = impl.impute(df, "mean", by="g")
    assert out.loc[2, "x"] == 2.0, (
        f"group b has no values; expected overall mean 2.0, got {out.loc[2, 'x']}"
    )


def test_impute_rejects_unknown_strategy(impl, penguins):
    """impute raises ValueError for an unknown strategy."""
    with pytest.raises(ValueError):
        impl.impute(penguins, "mode-ish")


@pytest.mark.parametrize(
    "by, cols",
    [
        ("species", ["bill_length_mm", "body_mass_g", "flipper_length_mm"]),
        ("island", ["bill_depth_mm"]),
    ],
)
def test_group_stats_matches_pandas_on_penguins(impl, penguins, by, cols):
    """group_stats equals df.groupby(by)[cols].agg(count, mean, std, min, max), NaNs skipped."""
    stats = ["count", "mean", "std", "min", "max"]
    got = impl.group_stats(penguins, by, cols)
    want = penguins.groupby(by)[cols].agg(stats)
    want.columns = [f"{c}_{s}" for c, s in want.columns]
    assert list(got.columns) == list(want.columns), (
        f"columns {list(got.columns)}, expected {list(want.columns)}"
    )
    assert list(got.index) == list(want.index), (
        f"index {list(got.index)}, expected {list(want.index)}"
    )
    np.testing.assert_allclose(
        got.to_numpy(dtype=float),
        want.to_numpy(dtype=float),
        rtol=1e-10,
        err_msg="group statistics differ from pandas groupby",
    )


def test_group_stats_on_titanic(impl, titanic):
    """group_stats of fare by class (mean only) equals the pandas groupby mean."""
    got = impl.group_stats(titanic, "class", ["fare", "age"], stats=("mean",))
    want = titanic.groupby("class")[["fare", "age"]].mean()
    assert list(got.columns) == ["fare_mean", "age_mean"], f"columns are {list(got.columns)}"
    np.testing.assert_allclose(
        got.to_numpy(dtype=float),
        want.to_numpy(),
        rtol=1e-10,
        err_msg="mean fare/age per class differs from pandas",
    )


def test_group_stats_is_numerically_stable(impl):
    """std of values near 1e9 stays exact (two-pass formula, not E[x^2] - E[x]^2)."""
    df = pd.DataFrame({"g": ["a"] * 4, "x": 1e9 + np.array([0.0, 1.0, 2.0, 3.0])})
    got = impl.group_stats(df, "g", ["x"], stats=("std",))
    np.testing.assert_allclose(
        got["x_std"].iloc[0],
        np.std([0, 1, 2, 3], ddof=1),
        rtol=1e-9,
        err_msg="std lost precision on large values",
    )


def test_group_stats_on_tiny_groups(impl):
    """Groups of 1, 2 and 3 values: std is NaN only for the single value, like pandas."""
    df = pd.DataFrame({"g": list("abbccc"), "x": [5.0, 1.0, 4.0, 2.0, 3.0, 7.0]})
    got = impl.group_stats(df, "g", ["x"])
    want = df.groupby("g")[["x"]].agg(["count", "mean", "std", "min", "max"])
    np.testing.assert_allclose(
        got.to_numpy(dtype=float),
        want.to_numpy(dtype=float),
        rtol=1e-12,
        err_msg="statistics of groups with 1-3 values differ from pandas",
    )


SPECIES = pd.DataFrame(
    {
        "species": ["Adelie", "Chinstrap", "Gentoo"],
        "latin_name": ["Pygoscelis adeliae", "Pygoscelis antarcticus", "Pygoscelis papua"],
    }
)


def test_merge_lookup_keeps_rows(impl, penguins):
    """merge_lookup adds the lookup columns and keeps every penguin row, in order."""
    out = impl.merge_lookup(penguins, SPECIES, on="species")
    assert len(out) == len(penguins), f"merge changed the row count: {len(out)} vs {len(penguins)}"
    want = penguins.merge(SPECIES, on="species", how="left", validate="many_to_one")
    assert list(out.columns) == list(want.columns), f"columns {list(out.columns)}"
    assert list(out["latin_name"]) == list(want["latin_name"]), "latin_name differs from pd.merge"
    assert list(out["species"]) == list(penguins["species"]), "row order changed"


def test_merge_lookup_rejects_duplicate_keys(impl, penguins):
    """merge_lookup raises ValueError when the lookup repeats a key (rows would multiply)."""
    dup = pd.concat([SPECIES, SPECIES.iloc[[0]]], ignore_index=True)
    with pytest.raises(ValueError):
        impl.merge_lookup(penguins, dup, on="species")


def test_merge_lookup_rejects_missing_keys(impl, penguins):
    """merge_lookup raises ValueError when a key of df has no lookup row."""
    with pytest.raises(ValueError):
        impl.merge_lookup(penguins, SPECIES.iloc[:2], on="species")
