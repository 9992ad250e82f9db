"""Runner for bias-variance: validation and learning curves on Boston housing, ridge and lasso
regularisation paths on diabetes; every curve beside scikit-learn's on the same folds, and every
point labelled under-fitting / good / over-fitting by `label_fit_regions`."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airoad.classic import bias_variance as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext

COLOURS = {ref.UNDER: "tab:blue", ref.GOOD: "tab:green", ref.OVER: "tab:red"}


@dataclass(frozen=True)
class Config:
    cv: int = 5  # shuffled k-fold, the same splits for ours and scikit-learn's
    repeats: int = 3  # k-fold repeated with new shuffles: 15 scores per point, steadier curves
    max_degree: int = 8  # polynomial degrees 1..max_degree of (LSTAT, RM)
    n_ridge_alphas: int = 25  # ridge alphas on a log grid 1e-3..1e5 (degree-2 features of all 13)
    n_sizes: int = 12  # training-set sizes in the learning curves
    n_lasso_alphas: int = 100
    n_se: float = 1.0  # the "good" band: within n_se standard errors of the best score
    seed: int = 0


QUICK = {"repeats": 1, "max_degree": 5, "n_ridge_alphas": 10, "n_sizes": 5, "n_lasso_alphas": 30}
POLY_FEATURES = ["LSTAT", "RM"]  # % lower-status population, rooms per dwelling: the classic pair


def _boston():
    df = load("boston")
    return (
        df.drop(columns="MEDV").to_numpy(float),
        df["MEDV"].to_numpy(float),
        list(df.columns[:-1]),
    )


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


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn import model_selection as ms
    from sklearn.linear_model import Ridge, lasso_path
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    X, y, cols = _boston()
    # The file lists towns in order and learning curves train on the FIRST n rows of each
    # training fold: shuffle once so a prefix is a random sample, not a few neighbouring towns.
    perm = np.random.default_rng(config.seed).permutation(len(y))
    X, y = X[perm], y[perm]
    X2 = X[:, [cols.index(c) for c in POLY_FEATURES]]
    cv = ms.RepeatedKFold(n_splits=config.cv, n_repeats=config.repeats, random_state=config.seed)
    poly_ridge = make_pipeline(StandardScaler(), PolynomialFeatures(2), StandardScaler(), Ridge())
    degrees = np.arange(1, config.max_degree + 1)
    alphas = np.logspace(-3, 5, config.n_ridge_alphas)
    curves, rows = {}, []
    specs = [
        ("polynomial degree", _poly(1), X2, "polynomialfeatures__degree", degrees),
        ("ridge alpha", poly_ridge, X, "ridge__alpha", alphas),
    ]
    for name, est, data, param, values in ctx.track(specs, "validation curves"):
        tr, va = ref.validation_curve(est, data, y, param, values, cv=cv, scoring="r2")
        sk_tr, sk_va = ms.validation_curve(
            est, data, y, param_name=param, param_range=values, cv=cv, scoring="r2"
        )
        labels = ref.label_fit_regions(tr, va, config.n_se)
        curves[name] = (
            values,
            tr,
            va,
            labels,
            max(np.abs(tr - sk_tr).max(), np.abs(va - sk_va).max()),
        )
        rows += _curve_rows(name, values, tr, va, sk_va, labels)

    best_degree = int(degrees[np.argmax(curves["polynomial degree"][2].mean(1))])
    sizes_req = np.linspace(0.05, 1.0, config.n_sizes)
    learners = {
        "degree 1": 1,
        f"degree {best_degree} (best)": best_degree,
        f"degree {best_degree + 2}": best_degree + 2,
    }
    lc, lc_diff = {}, 0.0
    for name, degree in ctx.track(list(learners.items()), "learning curves"):
        est = _poly(degree)
        sizes, tr, va = ref.learning_curve(est, X2, y, train_sizes=sizes_req, cv=cv, scoring="r2")
        sk_sizes, sk_tr, sk_va = ms.learning_curve(
            est, X2, y, train_sizes=sizes_req, cv=cv, scoring="r2"
        )
        lc_diff = max(
            lc_diff,
            np.abs(tr - sk_tr).max(),
            np.abs(va - sk_va).max(),
            np.abs(sizes - sk_sizes).max(),
        )
        lc[name] = (sizes, tr, va, ref.label_fit_regions(tr, va, config.n_se))
        rows += _curve_rows(f"learning: {name}", sizes, tr, va, sk_va, lc[name][3])

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
    names = list(d.drop(columns="target").columns)

    figures = []
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, (name, (values, tr, va, labels, _)) in zip(axes, curves.items()):
        _plot_curve(
            ax,
            values,
            tr,
            va,
            labels,
            f"validation curve: {name}",
            name,
            log=name.startswith("ridge"),
        )
    figures.append(ctx.save_figure(fig, "validation_curves"))
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, (name, (sizes, tr, va, labels)) in zip(axes, lc.items()):
        _plot_curve(ax, sizes, tr, va, labels, f"learning curve: {name}", "training samples")
    figures.append(ctx.save_figure(fig, "learning_curves"))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, a, ours, sk, title in [
        (axes[0], lasso_alphas, ours_lasso, sk_lasso, "lasso path"),
        (axes[1], ridge_alphas, ours_ridge, sk_ridge, "ridge path"),
    ]:
        for j in range(ours.shape[0]):
            ax.plot(a, ours[j], lw=2.5, alpha=0.6, label=names[j])
            ax.plot(a, sk[j], "k:", lw=1)
        ax.set(
            xscale="log", xlabel="alpha (dotted: scikit-learn)", ylabel="coefficient", title=title
        )
    axes[0].legend(fontsize=7, ncol=2)
    figures.append(ctx.save_figure(fig, "regularisation_paths"))

    values, tr, va, labels, _ = curves["polynomial degree"]
    sk_best = max(r["sklearn_val_r2"] for r in rows if r["curve"] == "polynomial degree")
    entering = ours_lasso.astype(bool).argmax(
        axis=1
    )  # first alpha index where each coefficient is non-zero
    entering = np.where(ours_lasso.any(axis=1), entering, len(lasso_alphas))
    metrics = {
        "n_rows_boston": len(X),
        "best_degree": best_degree,
        "ours_best_val_r2": float(va.mean(1).max()),
        "sklearn_best_val_r2": float(sk_best),
        "validation_curve_max_abs_diff": float(max(c[4] for c in curves.values())),
        "learning_curve_max_abs_diff": float(lc_diff),
        "lasso_path_max_abs_diff": float(np.abs(ours_lasso - sk_lasso).max()),
        "ridge_path_max_abs_diff": float(np.abs(ours_ridge - sk_ridge).max()),
        "first_lasso_feature": names[int(np.argmin(entering))],
    }
    by_label = {lab: [v for v, lb in zip(values.tolist(), labels) if lb == lab] for lab in COLOURS}
    metrics.update(
        {f"degrees_{k.replace('-', '_')}": ",".join(map(str, v)) for k, v in by_label.items()}
    )
    a_vals, _, a_va, a_labels, _ = curves["ridge alpha"]
    good_alphas = a_vals[a_labels == ref.GOOD]
    metrics.update(
        {
            "ridge_best_alpha": float(a_vals[np.argmax(a_va.mean(1))]),
            "ridge_good_alpha_min": float(good_alphas.min()),
            "ridge_good_alpha_max": float(good_alphas.max()),
        }
    )
    notes = [
        f"Polynomial degree on {POLY_FEATURES}: under-fitting at {by_label[ref.UNDER]}, good at "
        f"{by_label[ref.GOOD]}, over-fitting at {by_label[ref.OVER]} (best validation R^2 "
        f"{metrics['ours_best_val_r2']:.3f} at degree {best_degree}).",
        f"Ridge on degree-2 features of all 13 columns: good for alpha in [{good_alphas.min():.3g}, "
        f"{good_alphas.max():.3g}]; smaller alphas: {_tally(a_labels[a_vals < good_alphas.min()])}; "
        f"larger alphas: {_tally(a_labels[a_vals > good_alphas.max()])}.",
        f"Our curves equal scikit-learn's to {max(metrics['validation_curve_max_abs_diff'], lc_diff):.1e}; "
        f"lasso path within {metrics['lasso_path_max_abs_diff']:.1e}, ridge within "
        f"{metrics['ridge_path_max_abs_diff']:.1e}; the first lasso feature to enter is "
        f"{metrics['first_lasso_feature']}.",
    ]
    for name, (sizes, tr, va, labels) in lc.items():
        notes.append(
            f"Learning curve, {name}: gap at {sizes[-1]} samples = {tr[-1].mean() - va[-1].mean():.3f} "
            f"(train {tr[-1].mean():.3f}, validation {va[-1].mean():.3f}); last point: {labels[-1]}."
        )
    return LabResult(
        metrics=metrics,
        key_metric="ours_best_val_r2",
        library_metric="sklearn_best_val_r2",
        tables={"curves": rows},
        figures=figures,
        notes=notes,
    )
