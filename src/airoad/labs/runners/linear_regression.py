"""Runner for the `linear-regression` lab: our solvers next to scikit-learn's on Boston housing
and diabetes, plus a bias-variance study over polynomial degree."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.data import load
from airoad.foundations import linear_regression as ours
from airoad.labs.contract import LabResult, RunContext

TARGETS = {"boston": "MEDV", "diabetes": "target"}


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = ("boston", "diabetes")
    test_fraction: float = 0.25
    ridge_alpha: float = 1.0
    lasso_alpha: float = 0.1  # on standardised features, in sklearn's 1/(2n) scaling
    lasso_tol: float = 1e-4
    gd_max_iter: int = 20_000
    poly_degree: int = 2  # for the "polynomial + ridge" model
    bv_feature: str = "LSTAT"  # Boston feature for the bias-variance study
    bv_train_size: int = 80  # small training sets make the variance visible
    bv_max_degree: int = 10
    bv_rounds: int = 100  # bootstrap training sets per degree
    seed: int = 0


QUICK = {"gd_max_iter": 3000, "bv_max_degree": 6, "bv_rounds": 15}


def _split(name: str, fraction: float, seed: int):
    """Shuffled train/test split, features standardised with the training statistics."""
    frame = load(name)
    y = frame[TARGETS[name]].to_numpy(np.float64)
    X = frame.drop(columns=TARGETS[name]).to_numpy(np.float64)
    order = np.random.default_rng(seed).permutation(len(y))
    n_test = int(round(fraction * len(y)))
    test, train = order[:n_test], order[n_test:]
    mu, sd = X[train].mean(axis=0), X[train].std(axis=0)
    sd[sd == 0] = 1.0
    X = (X - mu) / sd  # equal scales: a fair penalty for ridge/lasso and a faster descent
    return X[train], y[train], X[test], y[test], list(frame.drop(columns=TARGETS[name]).columns)


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


def _timed_fit(model, X, y) -> float:
    start = time.perf_counter()
    model.fit(X, y)
    return time.perf_counter() - start


def _compare(name: str, config: Config, ctx: RunContext):
    """Fit every model pair on one dataset; table rows, the fitted pairs and the split."""
    Xtr, ytr, Xte, yte, columns = _split(name, config.test_fraction, config.seed)
    rows, fitted = [], {}
    for model_name, mine, theirs, poly in ctx.track(_models(config), f"{name}: fitting"):
        if poly is not None:  # ours builds its own features; sklearn gets PolynomialFeatures
            A_tr = ours.polynomial_features(Xtr, config.poly_degree, include_bias=False)
            A_te = ours.polynomial_features(Xte, config.poly_degree, include_bias=False)
            B_tr, B_te = poly.fit_transform(Xtr), poly.transform(Xte)
        else:
            A_tr, A_te, B_tr, B_te = Xtr, Xte, Xtr, Xte
        ours_s, sk_s = _timed_fit(mine, A_tr, ytr), _timed_fit(theirs, B_tr, ytr)
        rows.append(
            {
                "dataset": name,
                "model": model_name,
                "features": A_tr.shape[1],
                "ours_test_r2": _r2(yte, mine.predict(A_te)),
                "sklearn_test_r2": _r2(yte, theirs.predict(B_te)),
                "max_abs_coef_diff": float(np.abs(mine.coef_ - theirs.coef_).max()),
                "nonzero_coefs": int(np.count_nonzero(mine.coef_)),
                "ours_seconds": round(ours_s, 5),
                "sklearn_seconds": round(sk_s, 5),
            }
        )
        fitted[model_name] = (mine, theirs)
    return rows, fitted, columns


def bias_variance(x: np.ndarray, y: np.ndarray, config: Config, ctx: RunContext):
    """Per degree: (bias^2 + noise, variance, test MSE) of OLS on polynomial features of x.

    Each round fits a bootstrap sample of bv_train_size training rows; the statistics are
    taken over rounds on a fixed held-out set: E[(mean prediction - y)^2] is bias^2 plus the
    irreducible noise, E[Var over rounds of the prediction] is the variance, and their sum
    is the expected test MSE.
    """
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


def _figures(config: Config, ctx: RunContext, first: str, fitted, columns, bv) -> list:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.5), sharey=True)
    pos = np.arange(len(columns))
    for ax, key in zip(axes, ["ols_lstsq", "ridge", "lasso"]):
        mine, theirs = fitted[key]
        ax.barh(pos - 0.2, mine.coef_, height=0.4, label="ours")
        ax.barh(pos + 0.2, theirs.coef_, height=0.4, label="scikit-learn")
        ax.set(title=f"{first}: {key}", xlabel="coefficient (per standard deviation)")
        ax.axvline(0, color="k", lw=0.5)
    axes[0].set_yticks(pos, columns)
    axes[0].legend()
    fig.tight_layout()
    paths.append(ctx.figure_path("coefficients"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    gd, exact = fitted["ols_gd"][0], fitted["ols_lstsq"][0]
    best = gd.loss_history_.min()  # plot the gap to the best loss seen, on a log scale
    ax.semilogy(gd.loss_history_ - best + 1e-16, label="gradient descent: loss - final loss")
    ax.set(
        xlabel="step",
        ylabel="loss gap",
        title=f"{first}: gradient descent (step 1/L) "
        f"converges; final |coef - lstsq| = {np.abs(gd.coef_ - exact.coef_).max():.1e}",
    )
    ax.legend()
    paths.append(ctx.figure_path("gd_loss"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
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
        title=f"Boston MEDV ~ poly({config.bv_feature}): {config.bv_train_size} training rows, "
        f"{config.bv_rounds} bootstrap fits",
    )
    ax.legend()
    paths.append(ctx.figure_path("bias_variance"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def run(config: Config, ctx: RunContext) -> LabResult:
    if not config.datasets or any(d not in TARGETS for d in config.datasets):
        from airoad.errors import ConfigError

        raise ConfigError(f"datasets must be a non-empty subset of {sorted(TARGETS)}")
    rows, first_fits, first_columns = [], None, None
    for name in config.datasets:
        ds_rows, fitted, columns = _compare(name, config, ctx)
        rows += ds_rows
        if first_fits is None:
            first_fits, first_columns = fitted, columns

    boston = load("boston")
    bv = bias_variance(
        boston[config.bv_feature].to_numpy(np.float64),
        boston["MEDV"].to_numpy(np.float64),
        config,
        ctx,
    )
    best = min(bv, key=lambda s: s["test_mse"])

    metrics: dict = {}
    for row in rows:
        prefix = f"{row['dataset']}_{row['model']}"
        metrics[f"{prefix}_r2"] = row["ours_test_r2"]
        metrics[f"{prefix}_sklearn_r2"] = row["sklearn_test_r2"]
        metrics[f"{prefix}_coef_diff"] = row["max_abs_coef_diff"]
    first = config.datasets[0]
    metrics["ours_test_r2"] = metrics[f"{first}_ols_lstsq_r2"]
    metrics["sklearn_test_r2"] = metrics[f"{first}_ols_lstsq_sklearn_r2"]
    metrics["bv_best_degree"] = best["degree"]
    metrics["bv_best_test_mse"] = best["test_mse"]

    figures = _figures(config, ctx, first, first_fits, first_columns, bv)
    worst = max(rows, key=lambda r: r["max_abs_coef_diff"])
    notes = [
        f"{first} test R^2 (OLS): ours {metrics['ours_test_r2']:.4f}, "
        f"scikit-learn {metrics['sklearn_test_r2']:.4f}.",
        f"Largest coefficient gap to scikit-learn: {worst['max_abs_coef_diff']:.1e} "
        f"({worst['dataset']} {worst['model']}).",
        f"Bias-variance: degree {best['degree']} has the lowest expected test MSE "
        f"({best['test_mse']:.1f}); higher degrees trade bias for much more variance.",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_test_r2",
        library_metric="sklearn_test_r2",
        tables={"comparison": rows, "bias_variance": bv},
        figures=figures,
        notes=notes,
    )
