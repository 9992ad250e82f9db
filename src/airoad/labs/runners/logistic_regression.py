"""Runner for logistic-regression: our Newton and gradient-descent fits beside scikit-learn's
LogisticRegression (lbfgs, tight tol) on breast cancer and Titanic (binary), Iris and digits
(multinomial). Same C, same standardised split, so coefficients can be compared directly."""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from airoad.classic.logistic_regression import LogisticRegression, log_loss
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    C: float = 1.0  # inverse penalty strength, the same for ours and sklearn's
    test_size: float = 0.25
    gd_max_iter: int = 20_000  # gradient-descent steps allowed on breast cancer
    digits_samples: int = 1797  # rows of digits used (a seeded stratified subset when fewer)
    path_points: int = 13  # C values on the regularisation path, log-spaced 1e-3 .. 1e3
    seed: int = 0


QUICK = {"gd_max_iter": 2000, "digits_samples": 600, "path_points": 5}

IRIS_2D = ("petal length (cm)", "petal width (cm)")


def _sklearn(C: float):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    return SkLogisticRegression(C=C, tol=1e-10, max_iter=10_000)


def _split(X: np.ndarray, y: np.ndarray, config: Config):
    """Stratified train/test split, standardised with the training statistics only."""
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=config.test_size, stratify=y, random_state=config.seed
    )
    scaler = StandardScaler().fit(Xtr)
    return scaler.transform(Xtr), scaler.transform(Xte), ytr, yte


def _timed_fit(model, X, y):
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a capped gd or a strict lbfgs; n_iter_ tells the story
        model.fit(X, y)
    return model, time.perf_counter() - start


def _scores(model, X, y) -> tuple[float, float]:
    """(accuracy, log loss) of a fitted model on (X, y); our log_loss for every model."""
    index = np.searchsorted(model.classes_, y)
    log_p = np.log(np.clip(model.predict_proba(X), 1e-300, None))  # sklearn's model has no log form
    return float(np.mean(model.predict(X) == y)), log_loss(index, log_p)


def _compare(name: str, data, config: Config, ctx: RunContext, gd: bool = False):
    """Fit ours (Newton, optionally gd) and sklearn's; metrics, table rows and the models."""
    Xtr, Xte, ytr, yte = data
    with ctx.step(f"{name}: fitting"):
        models = {"ours (newton)": _timed_fit(LogisticRegression(C=config.C), Xtr, ytr)}
        if gd:
            models["ours (gd)"] = _timed_fit(
                LogisticRegression(C=config.C, solver="gd", max_iter=config.gd_max_iter, tol=1e-8),
                Xtr,
                ytr,
            )
        models["sklearn (lbfgs)"] = _timed_fit(_sklearn(config.C), Xtr, ytr)
    sk = models["sklearn (lbfgs)"][0]
    rows, metrics = [], {}
    for label, (model, seconds) in models.items():
        acc, loss = _scores(model, Xte, yte)
        diff = float(
            max(
                np.abs(model.coef_ - sk.coef_).max(), np.abs(model.intercept_ - sk.intercept_).max()
            )
        )
        rows.append(
            {
                "dataset": name,
                "model": label,
                "test_accuracy": acc,
                "test_log_loss": loss,
                "max_abs_diff_vs_sklearn": diff,
                "iterations": int(np.max(model.n_iter_)),
                "fit_seconds": round(seconds, 4),
            }
        )
        key = {"ours (newton)": "ours", "ours (gd)": "gd", "sklearn (lbfgs)": "sklearn"}[label]
        metrics.update(
            {
                f"{name}_{key}_test_acc": acc,
                f"{name}_{key}_test_log_loss": loss,
                f"{name}_{key}_iterations": int(np.max(model.n_iter_)),
                f"{name}_{key}_fit_seconds": round(seconds, 4),
            }
        )
        if key != "sklearn":
            metrics[f"{name}_{key}_max_abs_diff"] = diff
    return metrics, rows, {k: m for k, (m, _) in models.items()}


def _titanic(config: Config):
    """Titanic (passengers and crew) as numbers: one-hot categories, log fare; and the names."""
    df = load("titanic")
    y = df["survived"].to_numpy()
    X = df.drop(columns="survived").assign(fare=lambda d: np.log1p(d["fare"]))
    X = pd.get_dummies(X, columns=["gender", "class", "embarked"], drop_first=True, dtype=float)
    return _split(X.to_numpy(np.float64), y, config), list(X.columns)


def _digits(config: Config):
    from sklearn.model_selection import train_test_split

    df = load("digits")
    X, y = df.drop(columns="target").to_numpy(np.float64), df["target"].to_numpy()
    if config.digits_samples < len(X):
        X, _, y, _ = train_test_split(
            X, y, train_size=config.digits_samples, stratify=y, random_state=config.seed
        )
    return _split(X, y, config)


def _boundary_figure(models: dict, data, ctx: RunContext):
    """Iris on two petal features: the regions each model assigns, ours beside sklearn's."""
    import matplotlib.pyplot as plt

    Xtr, Xte, ytr, yte = data
    X = np.vstack([Xtr, Xte])
    xx, yy = np.meshgrid(
        np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, 300),
        np.linspace(X[:, 1].min() - 0.5, X[:, 1].max() + 0.5, 300),
    )
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), sharey=True)
    for ax, (label, model) in zip(
        axes,
        [("ours (newton)", models["ours (newton)"]), ("scikit-learn", models["sklearn (lbfgs)"])],
    ):
        proba = model.predict_proba(grid)
        ax.contourf(
            xx,
            yy,
            proba.argmax(1).reshape(xx.shape),
            levels=[-0.5, 0.5, 1.5, 2.5],
            cmap="Pastel1",
            alpha=0.8,
        )
        ax.contour(
            xx,
            yy,
            proba.max(1).reshape(xx.shape),
            levels=[0.5, 0.8, 0.95],
            colors="grey",
            linewidths=0.6,
        )
        for k, marker in zip(range(3), "os^"):
            ax.scatter(
                *Xtr[ytr == k].T,
                marker=marker,
                s=18,
                edgecolor="k",
                lw=0.3,
                label=f"class {k} (train)",
            )
            ax.scatter(
                *Xte[yte == k].T, marker=marker, s=40, facecolor="none", edgecolor="k", lw=0.8
            )
        ax.set(
            title=f"{label}: test accuracy {np.mean(model.predict(Xte) == yte):.3f}",
            xlabel=f"{IRIS_2D[0]} (standardised)",
        )
    axes[0].set_ylabel(f"{IRIS_2D[1]} (standardised)")
    axes[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        "Iris, softmax regression: regions of the most probable class "
        "(grey: max probability 0.5 / 0.8 / 0.95; hollow: test points)"
    )
    return ctx.save_figure(fig, "decision_boundary")


def _convergence_figure(models: dict, ctx: RunContext):
    import matplotlib.pyplot as plt

    best = min(min(models["ours (newton)"].loss_history_), min(models["ours (gd)"].loss_history_))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label in ("ours (newton)", "ours (gd)"):
        hist = np.asarray(models[label].loss_history_) - best
        ax.plot(np.arange(1, len(hist) + 1), np.maximum(hist, 1e-16), label=label)
    ax.set(
        xscale="log",
        yscale="log",
        xlabel="iteration (1 = start)",
        ylabel="objective above its minimum (mean log loss + penalty)",
        title="Breast cancer: Newton converges in a handful of steps, gd in thousands",
    )
    ax.legend()
    return ctx.save_figure(fig, "convergence")


def _path_figure(data, names: list[str], config: Config, ctx: RunContext) -> tuple:
    """Coefficients and test log loss along C, ours as lines and sklearn's as dots."""
    import matplotlib.pyplot as plt

    Xtr, Xte, ytr, yte = data
    Cs = np.logspace(-3, 3, config.path_points)
    ours, theirs, losses = [], [], []
    for C in ctx.track(list(Cs), "regularisation path"):
        model = _timed_fit(LogisticRegression(C=C), Xtr, ytr)[0]
        ours.append(model.coef_.ravel())
        theirs.append(_timed_fit(_sklearn(C), Xtr, ytr)[0].coef_.ravel())
        losses.append(_scores(model, Xte, yte)[1])
    ours, theirs = np.array(ours), np.array(theirs)
    top = np.argsort(-np.abs(ours[-1]))[:6]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    for j in top:
        (line,) = left.plot(Cs, ours[:, j], label=names[j])
        left.plot(Cs, theirs[:, j], "o", color=line.get_color(), ms=4)
    left.set(
        xscale="log",
        xlabel="C (larger = weaker penalty)",
        ylabel="coefficient (standardised feature)",
        title="Breast cancer: 6 largest coefficients (lines ours, dots sklearn)",
    )
    left.legend(fontsize=7)
    right.plot(Cs, losses, "o-")
    best = int(np.argmin(losses))
    right.axvline(Cs[best], color="k", ls=":", label=f"lowest test log loss at C = {Cs[best]:.3g}")
    right.set(
        xscale="log",
        xlabel="C",
        ylabel="test log loss",
        title="Too much penalty underfits, too little overfits",
    )
    right.legend()
    return (
        ctx.save_figure(fig, "regularisation_path"),
        float(Cs[best]),
        float(np.abs(ours - theirs).max()),
    )


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")

    cancer_df = load("breast-cancer")
    cancer_names = [c for c in cancer_df.columns if c != "target"]
    cancer = _split(
        cancer_df[cancer_names].to_numpy(np.float64), cancer_df["target"].to_numpy(), config
    )
    iris_df = load("iris")
    iris = _split(iris_df[list(IRIS_2D)].to_numpy(np.float64), iris_df["target"].to_numpy(), config)
    titanic, titanic_names = _titanic(config)

    metrics: dict = {"C": config.C}
    rows: list[dict] = []
    fitted = {}
    jobs = [
        ("cancer", cancer, True),
        ("titanic", titanic, False),
        ("iris2d", iris, False),
        ("digits", _digits(config), False),
    ]
    for name, data, gd in ctx.track(jobs, "datasets"):
        m, r, models = _compare(name, data, config, ctx, gd=gd)
        metrics.update(m)
        rows += r
        fitted[name] = models

    t_ours, t_sk = fitted["titanic"]["ours (newton)"], fitted["titanic"]["sklearn (lbfgs)"]
    coef_rows = [
        {"feature": f, "ours": float(a), "sklearn": float(b), "odds_ratio_per_sd": float(np.exp(a))}
        for f, a, b in sorted(
            zip(titanic_names, t_ours.coef_[0], t_sk.coef_[0]), key=lambda t: -abs(t[1])
        )
    ]
    figures = [
        _boundary_figure(fitted["iris2d"], iris, ctx),
        _convergence_figure(fitted["cancer"], ctx),
    ]
    path_fig, best_C, path_diff = _path_figure(cancer, cancer_names, config, ctx)
    figures.append(path_fig)
    metrics.update(
        {
            "ours_cancer_test_acc": metrics["cancer_ours_test_acc"],
            "sklearn_cancer_test_acc": metrics["cancer_sklearn_test_acc"],
            "path_best_C": best_C,
            "path_max_abs_diff": path_diff,
        }
    )

    worst = max(metrics[f"{n}_ours_max_abs_diff"] for n, _, _ in jobs)
    gd_converged = metrics["cancer_gd_iterations"] < config.gd_max_iter
    notes = [
        f"Newton matches scikit-learn's coefficients to {worst:.1e} or better on all four datasets "
        f"(same C = {config.C}); breast cancer needs {metrics['cancer_ours_iterations']} Newton steps "
        f"against {metrics['cancer_sklearn_iterations']} lbfgs steps.",
        f"Gradient descent {'converged' if gd_converged else 'hit the cap'} after "
        f"{metrics['cancer_gd_iterations']} steps and sits {metrics['cancer_gd_max_abs_diff']:.1e} "
        "from scikit-learn's coefficients: the 1/L step is safe but slow when features correlate.",
        f"Test accuracy: breast cancer {metrics['cancer_ours_test_acc']:.3f} (sklearn "
        f"{metrics['cancer_sklearn_test_acc']:.3f}), Titanic {metrics['titanic_ours_test_acc']:.3f}, "
        f"digits {metrics['digits_ours_test_acc']:.3f}; the test log loss is lowest at C = {best_C:.3g}.",
        f"Titanic: the strongest coefficient is {coef_rows[0]['feature']} "
        f"(odds x{coef_rows[0]['odds_ratio_per_sd']:.2f} per standard deviation).",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_cancer_test_acc",
        library_metric="sklearn_cancer_test_acc",
        tables={"comparison": rows, "titanic_coefficients": coef_rows},
        figures=figures,
        notes=notes,
    )
