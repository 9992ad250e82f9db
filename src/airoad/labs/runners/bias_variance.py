"""Runner for bias-variance: validation and learning curves on Boston housing, ridge and lasso
regularisation paths on diabetes; every curve beside scikit-learn's on the same folds, and every
point labelled under-fitting / good / over-fitting by `label_fit_regions`."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.classic import bias_variance as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes

COLOURS = {ref.UNDER: "tab:blue", ref.GOOD: "tab:green", ref.OVER: "tab:red"}
POLY_FEATURES = ["LSTAT", "RM"]  # % lower-status population, rooms per dwelling: the classic pair


@dataclass(frozen=True)
class Config:
    cv: int = param(5, ge=2, le=20)  # shuffled k-fold, the same splits for ours and scikit-learn's
    repeats: int = param(3, ge=1, le=20)  # k-fold repeated with new shuffles: steadier curves
    max_degree: int = param(8, ge=2, le=15)  # polynomial degrees 1..max_degree of (LSTAT, RM)
    # ridge alphas on a log grid 1e-3..1e5 (degree-2 features of all 13 columns)
    n_ridge_alphas: int = param(25, ge=2, le=200)
    n_sizes: int = param(12, ge=2, le=20)  # training-set sizes in the learning curves
    n_lasso_alphas: int = param(100, ge=2, le=1000)
    n_se: float = param(1.0, ge=0.0, le=10.0)  # "good": within n_se standard errors of the best
    seed: int = param(0, ge=0, le=2**32 - 1)


QUICK = {"repeats": 1, "max_degree": 5, "n_ridge_alphas": 10, "n_sizes": 5, "n_lasso_alphas": 30}

NOTES = (
    "Polynomial degree on {poly_features}: under-fitting at {under}, good at {good}, over-fitting "
    "at {over} (best validation R^2 {ours_best_val_r2:.3f} at degree {best_degree}).",
    "Ridge on degree-2 features of all 13 columns: good for alpha in [{ridge_good_alpha_min:.3g}, "
    "{ridge_good_alpha_max:.3g}]; smaller alphas: {smaller_alphas}; larger alphas: "
    "{larger_alphas}.",
    "Our curves equal scikit-learn's to {curves_max_abs_diff:.1e}; lasso path within "
    "{lasso_path_max_abs_diff:.1e}, ridge within {ridge_path_max_abs_diff:.1e}; the first lasso "
    "feature to enter is {first_lasso_feature}.",
)
LEARNING_NOTE = (
    "Learning curve, {name}: gap at {size} samples = {gap:.3f} (train {train:.3f}, validation "
    "{val:.3f}); last point: {label}."
)


def _boston(seed: int):
    """Boston features, the (LSTAT, RM) pair and MEDV, rows shuffled once with the seed.

    The file lists towns in order and learning curves train on the FIRST n rows of each
    training fold: shuffled, a prefix is a random sample, not a few neighbouring towns.
    """
    df = load("boston")
    X, y = df.drop(columns="MEDV").to_numpy(float), df["MEDV"].to_numpy(float)
    perm = np.random.default_rng(seed).permutation(len(y))
    X, y = X[perm], y[perm]
    cols = list(df.columns[:-1])
    return X, X[:, [cols.index(c) for c in POLY_FEATURES]], y


def _folds(config: Config):
    from sklearn.model_selection import RepeatedKFold

    return RepeatedKFold(n_splits=config.cv, n_repeats=config.repeats, random_state=config.seed)


def _poly(degree: int):
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    return make_pipeline(StandardScaler(), PolynomialFeatures(degree), LinearRegression())


def _curve_rows(name: str, values, tr, va, sk_va, labels) -> list[dict]:
    return [
        {
            "curve": name,
            "x": float(v),
            "train_r2": float(t),
            "val_r2": float(s),
            "sklearn_val_r2": float(k),
            "gap": float(t - s),
            "label": str(lab),
        }
        for v, t, s, k, lab in zip(values, tr.mean(1), va.mean(1), sk_va.mean(1), labels)
    ]


def _tally(labels) -> str:
    """ "3 over-fitting, 1 good" for a list of labels ("none" when empty)."""
    names, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    return ", ".join(f"{c} {n}" for n, c in zip(names, counts)) or "none"


def _validation_curves(X, X2, y, cv, config: Config, ctx: RunContext):
    """Polynomial degree on (LSTAT, RM) and ridge alpha on all degree-2 features, ours vs sklearn."""
    from sklearn import model_selection as ms
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    poly_ridge = make_pipeline(StandardScaler(), PolynomialFeatures(2), StandardScaler(), Ridge())
    specs = [
        ("polynomial degree", _poly(1), X2, "polynomialfeatures__degree"),
        ("ridge alpha", poly_ridge, X, "ridge__alpha"),
    ]
    grids = [np.arange(1, config.max_degree + 1), np.logspace(-3, 5, config.n_ridge_alphas)]
    curves, rows, diff = {}, [], 0.0
    for (name, est, data, param_name), values in ctx.track(
        list(zip(specs, grids)), "validation curves"
    ):
        tr, va = ref.validation_curve(est, data, y, param_name, values, cv=cv, scoring="r2")
        sk_tr, sk_va = ms.validation_curve(
            est, data, y, param_name=param_name, param_range=values, cv=cv, scoring="r2"
        )
        labels = ref.label_fit_regions(tr, va, config.n_se)
        curves[name] = (values, tr, va, labels)
        diff = max(diff, np.abs(tr - sk_tr).max(), np.abs(va - sk_va).max())
        rows += _curve_rows(name, values, tr, va, sk_va, labels)
    return curves, rows, float(diff)


def _learning_curves(X2, y, cv, best_degree: int, config: Config, ctx: RunContext):
    """Learning curves of degree 1, the best degree and best + 2, ours vs sklearn."""
    from sklearn import model_selection as ms

    sizes_req = np.linspace(0.05, 1.0, config.n_sizes)
    learners = {
        "degree 1": 1,
        f"degree {best_degree} (best)": best_degree,
        f"degree {best_degree + 2}": best_degree + 2,
    }
    curves, rows, diff = {}, [], 0.0
    for name, degree in ctx.track(list(learners.items()), "learning curves"):
        est = _poly(degree)
        sizes, tr, va = ref.learning_curve(est, X2, y, train_sizes=sizes_req, cv=cv, scoring="r2")
        sk_sizes, sk_tr, sk_va = ms.learning_curve(
            est, X2, y, train_sizes=sizes_req, cv=cv, scoring="r2"
        )
        diffs = (np.abs(tr - sk_tr).max(), np.abs(va - sk_va).max(), np.abs(sizes - sk_sizes).max())
        diff = max(diff, *diffs)
        curves[name] = (sizes, tr, va, ref.label_fit_regions(tr, va, config.n_se))
        rows += _curve_rows(f"learning: {name}", sizes, tr, va, sk_va, curves[name][3])
    return curves, rows, float(diff)


def _regularisation_paths(config: Config, ctx: RunContext) -> dict:
    """Lasso and ridge coefficient paths on standardised diabetes, ours beside sklearn's."""
    from sklearn.linear_model import Ridge, lasso_path
    from sklearn.preprocessing import StandardScaler

    d = load("diabetes")
    Xd = StandardScaler().fit_transform(d.drop(columns="target").to_numpy(float))
    yd = d["target"].to_numpy(float) - d["target"].mean()
    a_max = ref.lasso_alpha_max(Xd, yd)
    lasso_alphas = np.geomspace(a_max, a_max * 1e-3, config.n_lasso_alphas)
    with ctx.step("lasso path (coordinate descent)"):
        ours_lasso = ref.lasso_path(Xd, yd, lasso_alphas)
    _, sk_lasso, _ = lasso_path(Xd, yd, alphas=lasso_alphas, tol=1e-12, max_iter=100_000)
    ridge_alphas = np.logspace(-2, 5, 40)
    ours_ridge, _ = ref.ridge_path(Xd, yd, ridge_alphas)
    sk_ridge = np.column_stack([Ridge(alpha=a).fit(Xd, yd).coef_ for a in ridge_alphas])
    return {
        "names": list(d.drop(columns="target").columns),
        "lasso": (lasso_alphas, ours_lasso, sk_lasso),
        "ridge": (ridge_alphas, ours_ridge, sk_ridge),
    }


def _path_metrics(paths: dict) -> dict:
    alphas, ours_lasso, sk_lasso = paths["lasso"]
    _, ours_ridge, sk_ridge = paths["ridge"]
    entering = ours_lasso.astype(bool).argmax(axis=1)  # first alpha index where each is non-zero
    entering = np.where(ours_lasso.any(axis=1), entering, len(alphas))
    return {
        "lasso_path_max_abs_diff": float(np.abs(ours_lasso - sk_lasso).max()),
        "ridge_path_max_abs_diff": float(np.abs(ours_ridge - sk_ridge).max()),
        "first_lasso_feature": paths["names"][int(np.argmin(entering))],
    }


def _region_metrics(curves: dict) -> tuple[dict, dict]:
    """Which degrees and ridge alphas each label covers, and the tallies the notes state."""
    values, _, _, labels = curves["polynomial degree"]
    by_label = {lab: [v for v, lb in zip(values.tolist(), labels) if lb == lab] for lab in COLOURS}
    a_vals, _, a_va, a_labels = curves["ridge alpha"]
    good = a_vals[a_labels == ref.GOOD]
    metrics = {f"degrees_{k.replace('-', '_')}": ",".join(map(str, v)) for k, v in by_label.items()}
    metrics |= {
        "ridge_best_alpha": float(a_vals[np.argmax(a_va.mean(1))]),
        "ridge_good_alpha_min": float(good.min()),
        "ridge_good_alpha_max": float(good.max()),
    }
    extra = {
        "under": by_label[ref.UNDER],
        "good": by_label[ref.GOOD],
        "over": by_label[ref.OVER],
        "smaller_alphas": _tally(a_labels[a_vals < good.min()]),
        "larger_alphas": _tally(a_labels[a_vals > good.max()]),
    }
    return metrics, extra


def _learning_notes(curves: dict) -> list[str]:
    return [
        LEARNING_NOTE.format(
            name=name,
            size=sizes[-1],
            gap=tr[-1].mean() - va[-1].mean(),
            train=tr[-1].mean(),
            val=va[-1].mean(),
            label=labels[-1],
        )
        for name, (sizes, tr, va, labels) in curves.items()
    ]


def _shade(ax, x: np.ndarray, labels: np.ndarray) -> None:
    """Shade the x-range of each point by its label (edges halfway between neighbours)."""
    x = np.asarray(x, dtype=float)
    log = x.min() > 0 and x.max() / x.min() > 100
    t = np.log10(x) if log else x
    mids = (t[1:] + t[:-1]) / 2
    edges = np.r_[t[0] - (mids[0] - t[0]), mids, t[-1] + (t[-1] - mids[-1])]
    edges = 10**edges if log else edges
    for i, lab in enumerate(labels):
        ax.axvspan(edges[i], edges[i + 1], color=COLOURS[lab], alpha=0.12, lw=0)


def _plot_curve(ax, x, tr, va, labels, title: str, xlabel: str, log: bool = False) -> None:
    _shade(ax, x, labels)
    for scores, name in [(tr, "train"), (va, "validation")]:
        m, s = scores.mean(1), scores.std(1)
        ax.plot(x, m, "o-", ms=3, label=name)
        ax.fill_between(x, m - s, m + s, alpha=0.2)
    for lab, c in COLOURS.items():
        ax.plot([], [], "s", color=c, alpha=0.4, label=lab)
    low = min(0.0, float(np.percentile(va.mean(1), 10)))
    ax.set(
        title=title,
        xlabel=xlabel,
        ylabel="R^2",
        xscale="log" if log else "linear",
        ylim=(max(low, -0.5), 1.02),
    )
    ax.legend(fontsize=7)


def _validation_figure(ctx: RunContext, curves: dict) -> None:
    with figure(ctx, "validation_curves", 1, 2, figsize=(12, 4.5)) as (_, axes):
        for ax, (name, (values, tr, va, labels)) in zip(axes, curves.items()):
            log = name.startswith("ridge")
            _plot_curve(ax, values, tr, va, labels, f"validation curve: {name}", name, log=log)


def _learning_figure(ctx: RunContext, curves: dict) -> None:
    with figure(ctx, "learning_curves", 1, 3, figsize=(15, 4.2)) as (_, axes):
        for ax, (name, (sizes, tr, va, labels)) in zip(axes, curves.items()):
            _plot_curve(ax, sizes, tr, va, labels, f"learning curve: {name}", "training samples")


def _paths_figure(ctx: RunContext, paths: dict) -> None:
    with figure(ctx, "regularisation_paths", 1, 2, figsize=(12, 4.5)) as (_, axes):
        for ax, kind in zip(axes, ("lasso", "ridge")):
            alphas, ours, sk = paths[kind]
            for j in range(ours.shape[0]):
                ax.plot(alphas, ours[j], lw=2.5, alpha=0.6, label=paths["names"][j])
                ax.plot(alphas, sk[j], "k:", lw=1)
            xlabel = "alpha (dotted: scikit-learn)"
            ax.set(xscale="log", xlabel=xlabel, ylabel="coefficient", title=f"{kind} path")
        axes[0].legend(fontsize=7, ncol=2)


def _best_degree(curves: dict, rows: list[dict]) -> dict:
    """The degree with the best mean validation R^2, and that R^2 by us and by scikit-learn."""
    degrees, _, va, _ = curves["polynomial degree"]
    sk_best = max(r["sklearn_val_r2"] for r in rows if r["curve"] == "polynomial degree")
    return {
        "best_degree": int(degrees[np.argmax(va.mean(1))]),
        "ours_best_val_r2": float(va.mean(1).max()),
        "sklearn_best_val_r2": float(sk_best),
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    X, X2, y = _boston(config.seed)
    cv = _folds(config)
    val, val_rows, val_diff = _validation_curves(X, X2, y, cv, config, ctx)
    best = _best_degree(val, val_rows)
    learn, learn_rows, learn_diff = _learning_curves(X2, y, cv, best["best_degree"], config, ctx)
    paths = _regularisation_paths(config, ctx)

    _validation_figure(ctx, val)
    _learning_figure(ctx, learn)
    _paths_figure(ctx, paths)

    regions, extra = _region_metrics(val)
    metrics = {
        "n_rows_boston": len(X),
        **best,
        "validation_curve_max_abs_diff": val_diff,
        "learning_curve_max_abs_diff": learn_diff,
        **_path_metrics(paths),
        **regions,
    }
    extra |= {"poly_features": POLY_FEATURES, "curves_max_abs_diff": max(val_diff, learn_diff)}
    return LabResult(
        metrics=metrics,
        key_metric="ours_best_val_r2",
        library_metric="sklearn_best_val_r2",
        tables={"curves": val_rows + learn_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **extra}) + _learning_notes(learn),
    )
