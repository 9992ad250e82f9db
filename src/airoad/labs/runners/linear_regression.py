"""Runner for the `linear-regression` lab: our solvers next to scikit-learn's on Boston housing
and diabetes, plus a bias-variance study over polynomial degree."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import partial

import numpy as np

from airoad.data import load
from airoad.foundations import linear_regression as ours
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, frame_xy, param, race, render_notes, validate_config

TARGETS = {"boston": "MEDV", "diabetes": "target"}
BOSTON_FEATURES = tuple("CRIM ZN INDUS CHAS NOX RM AGE DIS RAD TAX PTRATIO B LSTAT".split())


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = param(("boston", "diabetes"), choices=tuple(TARGETS))
    test_fraction: float = param(0.25, ge=0.05, le=0.9)
    ridge_alpha: float = param(1.0, ge=0.0, le=1e6)
    # on standardised features, in sklearn's 1/(2n) scaling
    lasso_alpha: float = param(0.1, gt=0.0, le=1e3)
    lasso_tol: float = param(1e-4, gt=0.0, lt=1.0)
    gd_max_iter: int = param(20_000, ge=1, le=1_000_000)
    poly_degree: int = param(2, ge=1, le=4)  # for the "polynomial + ridge" model
    # Boston feature for the bias-variance study
    bv_feature: str = param("LSTAT", choices=BOSTON_FEATURES)
    bv_train_size: int = param(80, ge=5, le=1000)  # small training sets make the variance visible
    bv_max_degree: int = param(10, ge=1, le=15)
    bv_rounds: int = param(100, ge=2, le=10_000)  # bootstrap training sets per degree
    seed: int = param(0, ge=0)


QUICK = {"gd_max_iter": 3000, "bv_max_degree": 6, "bv_rounds": 15}

NOTES = (
    "{datasets[0]} test R^2 (OLS): ours {ours_test_r2:.4f}, scikit-learn {sklearn_test_r2:.4f}.",
    "Largest coefficient gap to scikit-learn: {worst_coef_diff:.1e} ({worst_dataset} "
    "{worst_model}).",
    "Bias-variance: degree {bv_best_degree} has the lowest expected test MSE "
    "({bv_best_test_mse:.1f}); higher degrees trade bias for much more variance.",
)


def _split(name: str, fraction: float, seed: int):
    """Shuffled train/test split, features standardised with the training statistics.

    A seeded permutation rather than ``kit.split``: the lesson's numbers come from this split.
    """
    frame = load(name)
    X, y = frame_xy(frame, TARGETS[name])
    columns = [c for c in frame.columns if c != TARGETS[name]]
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    mu, sd = X[train].mean(axis=0), X[train].std(axis=0)
    sd[sd == 0] = 1.0
    X = (X - mu) / sd  # equal scales: a fair penalty for ridge/lasso and a faster descent
    return X[train], y[train], X[test], y[test], columns


def _models(config: Config):
    """(name, our estimator, sklearn estimator, feature map) for every comparison row."""
    from sklearn import linear_model as sk
    from sklearn.preprocessing import PolynomialFeatures

    poly = PolynomialFeatures(config.poly_degree, include_bias=False)
    lasso = dict(alpha=config.lasso_alpha, tol=config.lasso_tol, max_iter=100_000)
    return [
        ("ols_lstsq", ours.LinearRegression(solver="lstsq"), sk.LinearRegression(), None),
        ("ols_normal", ours.LinearRegression(solver="normal"), sk.LinearRegression(), None),
        (
            "ols_gd",
            ours.LinearRegression(solver="gd", max_iter=config.gd_max_iter, tol=1e-10),
            sk.LinearRegression(),
            None,
        ),
        ("ridge", ours.Ridge(config.ridge_alpha), sk.Ridge(config.ridge_alpha), None),
        ("lasso", ours.Lasso(**lasso), sk.Lasso(**lasso), None),
        (
            f"poly{config.poly_degree}_ridge",
            ours.Ridge(config.ridge_alpha),
            sk.Ridge(config.ridge_alpha),
            poly,
        ),
    ]


def _r2(y: np.ndarray, pred: np.ndarray) -> float:
    return float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2))


def _compare(name: str, config: Config, ctx: RunContext):
    """Fit every model pair on one dataset; table rows, the fitted pairs and the columns."""
    Xtr, ytr, Xte, yte, columns = _split(name, config.test_fraction, config.seed)
    rows, fitted = [], {}
    for model_name, mine, theirs, poly in ctx.track(_models(config), f"{name}: fitting"):
        if poly is not None:  # ours builds its own features; sklearn gets PolynomialFeatures
            A_tr = ours.polynomial_features(Xtr, config.poly_degree, include_bias=False)
            A_te = ours.polynomial_features(Xte, config.poly_degree, include_bias=False)
            B_tr, B_te = poly.fit_transform(Xtr), poly.transform(Xte)
        else:
            A_tr, A_te, B_tr, B_te = Xtr, Xte, Xtr, Xte
        r = race(partial(mine.fit, A_tr, ytr), partial(theirs.fit, B_tr, ytr))
        rows.append(
            {
                "dataset": name,
                "model": model_name,
                "features": A_tr.shape[1],
                "ours_test_r2": _r2(yte, mine.predict(A_te)),
                "sklearn_test_r2": _r2(yte, theirs.predict(B_te)),
                "max_abs_coef_diff": float(np.abs(mine.coef_ - theirs.coef_).max()),
                "nonzero_coefs": int(np.count_nonzero(mine.coef_)),
                "ours_seconds": round(r["ours_seconds"], 5),
                "sklearn_seconds": round(r["library_seconds"], 5),
            }
        )
        fitted[model_name] = (mine, theirs)
    return rows, fitted, columns


def _bias_variance(config: Config, ctx: RunContext) -> list[dict]:
    """Per degree: (bias^2 + noise, variance, test MSE) of OLS on polynomial features of one
    Boston feature.

    Each round fits a bootstrap sample of bv_train_size training rows; the statistics are
    taken over rounds on a fixed held-out set: E[(mean prediction - y)^2] is bias^2 plus the
    irreducible noise, E[Var over rounds of the prediction] is the variance, and their sum
    is the expected test MSE.
    """
    x, y = frame_xy(load("boston"), "MEDV", columns=[config.bv_feature])
    x = x[:, 0]
    rng = np.random.default_rng(config.seed)
    order = rng.permutation(len(y))
    n_test = int(round(config.test_fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    z = (x - x[train].mean()) / x[train].std()
    degrees = list(range(1, config.bv_max_degree + 1))
    samples = [
        rng.choice(train, config.bv_train_size, replace=True) for _ in range(config.bv_rounds)
    ]
    stats = []
    for degree in ctx.track(degrees, "bias-variance over degree"):
        Z_test = ours.polynomial_features(z[test, None], degree, include_bias=False)
        preds = np.array(
            [
                ours.LinearRegression()
                .fit(ours.polynomial_features(z[idx, None], degree, include_bias=False), y[idx])
                .predict(Z_test)
                for idx in samples
            ]
        )  # (rounds, n_test)
        bias2 = float(np.mean((preds.mean(axis=0) - y[test]) ** 2))
        variance = float(np.mean(preds.var(axis=0)))
        stats.append(
            {
                "degree": degree,
                "bias2_plus_noise": bias2,
                "variance": variance,
                "test_mse": float(np.mean((preds - y[test]) ** 2)),
            }
        )
    return stats


def _metrics(rows: list[dict], bv: list[dict], first: str) -> dict:
    """Every row's R^2 pair and coefficient gap; the first dataset's OLS is the headline."""
    metrics: dict = {}
    for row in rows:
        prefix = f"{row['dataset']}_{row['model']}"
        metrics[f"{prefix}_r2"] = row["ours_test_r2"]
        metrics[f"{prefix}_sklearn_r2"] = row["sklearn_test_r2"]
        metrics[f"{prefix}_coef_diff"] = row["max_abs_coef_diff"]
    best = min(bv, key=lambda s: s["test_mse"])
    return metrics | {
        "ours_test_r2": metrics[f"{first}_ols_lstsq_r2"],
        "sklearn_test_r2": metrics[f"{first}_ols_lstsq_sklearn_r2"],
        "bv_best_degree": best["degree"],
        "bv_best_test_mse": best["test_mse"],
    }


def _worst_gap(rows: list[dict]) -> dict:
    """The model whose coefficients are furthest from scikit-learn's (for the notes)."""
    worst = max(rows, key=lambda r: r["max_abs_coef_diff"])
    return {
        "worst_coef_diff": worst["max_abs_coef_diff"],
        "worst_dataset": worst["dataset"],
        "worst_model": worst["model"],
    }


def _coefficient_figure(first: str, fitted: dict, columns: list[str], ctx: RunContext) -> None:
    with figure(ctx, "coefficients", 1, 3, figsize=(15, 4.5), sharey=True) as (_, axes):
        pos = np.arange(len(columns))
        for ax, key in zip(axes, ["ols_lstsq", "ridge", "lasso"]):
            mine, theirs = fitted[key]
            ax.barh(pos - 0.2, mine.coef_, height=0.4, label="ours")
            ax.barh(pos + 0.2, theirs.coef_, height=0.4, label="scikit-learn")
            ax.set(title=f"{first}: {key}", xlabel="coefficient (per standard deviation)")
            ax.axvline(0, color="k", lw=0.5)
        axes[0].set_yticks(pos, columns)
        axes[0].legend()


def _gd_figure(first: str, fitted: dict, ctx: RunContext) -> None:
    gd, exact = fitted["ols_gd"][0], fitted["ols_lstsq"][0]
    best = gd.loss_history_.min()  # plot the gap to the best loss seen, on a log scale
    with figure(ctx, "gd_loss", figsize=(7, 4.5)) as (_, ax):
        ax.semilogy(gd.loss_history_ - best + 1e-16, label="gradient descent: loss - final loss")
        ax.set(
            xlabel="step",
            ylabel="loss gap",
            title=f"{first}: gradient descent (step 1/L) "
            f"converges; final |coef - lstsq| = {np.abs(gd.coef_ - exact.coef_).max():.1e}",
        )
        ax.legend()


def _bias_variance_figure(bv: list[dict], config: Config, ctx: RunContext) -> None:
    with figure(ctx, "bias_variance", figsize=(7, 4.5)) as (_, ax):
        deg = [s["degree"] for s in bv]
        for key, label in [
            ("bias2_plus_noise", "bias$^2$ + noise"),
            ("variance", "variance"),
            ("test_mse", "expected test MSE"),
        ]:
            ax.semilogy(deg, [s[key] for s in bv], marker="o", label=label)
        ax.set(
            xlabel="polynomial degree",
            ylabel="squared error (MEDV units squared)",
            title=f"Boston MEDV ~ poly({config.bv_feature}): {config.bv_train_size} training "
            f"rows, {config.bv_rounds} bootstrap fits",
        )
        ax.legend()


def run(config: Config, ctx: RunContext) -> LabResult:
    validate_config(config)  # a dataset outside TARGETS is a ConfigError, also when called directly
    first = config.datasets[0]
    rows, fits = [], {}
    for name in config.datasets:
        ds_rows, fitted, columns = _compare(name, config, ctx)
        rows += ds_rows
        fits[name] = (fitted, columns)
    bv = _bias_variance(config, ctx)
    metrics = _metrics(rows, bv, first)

    first_fits, first_columns = fits[first]
    _coefficient_figure(first, first_fits, first_columns, ctx)
    _gd_figure(first, first_fits, ctx)
    _bias_variance_figure(bv, config, ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_test_r2",
        library_metric="sklearn_test_r2",
        tables={"comparison": rows, "bias_variance": bv},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **_worst_gap(rows)}),
    )
