"""Runner for logistic-regression: our Newton and gradient-descent fits beside scikit-learn's
LogisticRegression (lbfgs, tight tol) on breast cancer and Titanic (binary), Iris and digits
(multinomial). Same C, same standardised split, so coefficients can be compared directly."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from airoad.classic.logistic_regression import LogisticRegression, log_loss
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, frame_xy, param, render_notes, split, timed


@dataclass(frozen=True)
class Config:
    C: float = param(1.0, gt=0.0, le=1e6)  # inverse penalty strength, the same for both sides
    test_size: float = param(0.25, ge=0.05, le=0.5)
    gd_max_iter: int = param(20_000, ge=1, le=1_000_000)  # gd steps allowed on breast cancer
    digits_samples: int = param(1797, ge=200, le=1797)  # a seeded stratified subset when fewer
    path_points: int = param(13, ge=2, le=200)  # C values on the path, log-spaced 1e-3 .. 1e3
    seed: int = param(0, ge=0)


QUICK = {"gd_max_iter": 2000, "digits_samples": 600, "path_points": 5}

IRIS_2D = ("petal length (cm)", "petal width (cm)")
DATASETS = ("cancer", "titanic", "iris2d", "digits")
MODEL_KEYS = {"ours (newton)": "ours", "ours (gd)": "gd", "sklearn (lbfgs)": "sklearn"}

NOTES = (
    "Newton matches scikit-learn's coefficients to {newton_worst_max_abs_diff:.1e} or better on "
    "all four datasets (same C = {C}); breast cancer needs {cancer_ours_iterations} Newton steps "
    "against {cancer_sklearn_iterations} lbfgs steps.",
    "Gradient descent {cancer_gd_status} after {cancer_gd_iterations} steps and sits "
    "{cancer_gd_max_abs_diff:.1e} from scikit-learn's coefficients: the 1/L step is safe but slow "
    "when features correlate.",
    "Test accuracy: breast cancer {cancer_ours_test_acc:.3f} (sklearn "
    "{cancer_sklearn_test_acc:.3f}), Titanic {titanic_ours_test_acc:.3f}, digits "
    "{digits_ours_test_acc:.3f}; the test log loss is lowest at C = {path_best_C:.3g}.",
    "Titanic: the strongest coefficient is {titanic_top_feature} (odds "
    "x{titanic_top_odds_ratio:.2f} per standard deviation).",
)


def _sklearn(C: float):
    from sklearn.linear_model import LogisticRegression as SkLogisticRegression

    return SkLogisticRegression(C=C, tol=1e-10, max_iter=10_000)


def _standardised(X: np.ndarray, y: np.ndarray, config: Config) -> list:
    """Stratified train/test split, standardised with the training statistics only."""
    from sklearn.preprocessing import StandardScaler

    Xtr, Xte, ytr, yte = split(X, y, config.test_size, config.seed)
    scaler = StandardScaler().fit(Xtr)
    return [scaler.transform(Xtr), scaler.transform(Xte), ytr, yte]


def _titanic_xy() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Titanic (passengers and crew) as numbers: one-hot categories, log fare; and the names."""
    df = load("titanic")
    X = df.drop(columns="survived").assign(fare=lambda d: np.log1p(d["fare"]))
    X = pd.get_dummies(X, columns=["gender", "class", "embarked"], drop_first=True, dtype=float)
    return X.to_numpy(np.float64), df["survived"].to_numpy(), list(X.columns)


def _digits_xy(config: Config) -> tuple[np.ndarray, np.ndarray]:
    """Digits, or a seeded stratified subset of ``digits_samples`` rows."""
    X, y = frame_xy(load("digits"))
    if config.digits_samples < len(X):
        X, _, y, _ = split(X, y, len(X) - config.digits_samples, config.seed)
    return X, y


def _datasets(config: Config) -> tuple[dict[str, list], dict[str, list[str]]]:
    """The four standardised splits, and the feature names of the two binary datasets."""
    cancer = load("breast-cancer")
    titanic_X, titanic_y, titanic_names = _titanic_xy()
    splits = {
        "cancer": _standardised(*frame_xy(cancer), config),
        "titanic": _standardised(titanic_X, titanic_y, config),
        "iris2d": _standardised(*frame_xy(load("iris"), columns=IRIS_2D), config),
        "digits": _standardised(*_digits_xy(config), config),
    }
    names = {"cancer": [c for c in cancer.columns if c != "target"], "titanic": titanic_names}
    return splits, names


def _fit(model, X, y) -> tuple:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a capped gd or a strict lbfgs; n_iter_ tells the story
        return timed(model.fit, X, y)


def _scores(model, X, y) -> tuple[float, float]:
    """(accuracy, log loss) of a fitted model on (X, y); our log_loss for every model."""
    index = np.searchsorted(model.classes_, y)
    log_p = np.log(np.clip(model.predict_proba(X), 1e-300, None))  # sklearn's model has no log form
    return float(np.mean(model.predict(X) == y)), log_loss(index, log_p)


def _compare(name: str, data: list, config: Config, ctx: RunContext) -> tuple:
    """Fit ours (Newton, and gd on breast cancer) and sklearn's; metrics, rows and the models."""
    Xtr, Xte, ytr, yte = data
    with ctx.step(f"{name}: fitting"):
        models = {"ours (newton)": _fit(LogisticRegression(C=config.C), Xtr, ytr)}
        if name == "cancer":
            gd = LogisticRegression(C=config.C, solver="gd", max_iter=config.gd_max_iter, tol=1e-8)
            models["ours (gd)"] = _fit(gd, Xtr, ytr)
        models["sklearn (lbfgs)"] = _fit(_sklearn(config.C), Xtr, ytr)
    sk = models["sklearn (lbfgs)"][0]
    rows, metrics = [], {}
    for label, (model, seconds) in models.items():
        acc, loss = _scores(model, Xte, yte)
        diff = float(
            max(
                np.abs(model.coef_ - sk.coef_).max(), np.abs(model.intercept_ - sk.intercept_).max()
            )
        )
        iterations = int(np.max(model.n_iter_))
        rows.append(
            {
                "dataset": name,
                "model": label,
                "test_accuracy": acc,
                "test_log_loss": loss,
                "max_abs_diff_vs_sklearn": diff,
                "iterations": iterations,
                "fit_seconds": round(seconds, 4),
            }
        )
        key = f"{name}_{MODEL_KEYS[label]}"
        metrics |= {
            f"{key}_test_acc": acc,
            f"{key}_test_log_loss": loss,
            f"{key}_iterations": iterations,
            f"{key}_fit_seconds": round(seconds, 4),
        }
        if label != "sklearn (lbfgs)":
            metrics[f"{key}_max_abs_diff"] = diff
    return metrics, rows, {label: model for label, (model, _) in models.items()}


def _compare_all(splits: dict, config: Config, ctx: RunContext) -> tuple:
    """`_compare` on every dataset, plus the summary numbers the notes quote."""
    metrics: dict = {"C": config.C}
    rows, fitted = [], {}
    for name in ctx.track(DATASETS, "datasets"):
        m, r, fitted[name] = _compare(name, splits[name], config, ctx)
        metrics |= m
        rows += r
    metrics |= {
        "ours_cancer_test_acc": metrics["cancer_ours_test_acc"],
        "sklearn_cancer_test_acc": metrics["cancer_sklearn_test_acc"],
        "newton_worst_max_abs_diff": max(metrics[f"{n}_ours_max_abs_diff"] for n in DATASETS),
        "cancer_gd_status": "converged"
        if metrics["cancer_gd_iterations"] < config.gd_max_iter
        else "hit the cap",
    }
    return metrics, rows, fitted


def _titanic_coefficients(models: dict, names: list[str]) -> tuple[dict, list[dict]]:
    """Titanic coefficients per standard deviation, largest first, ours beside sklearn's."""
    ours, theirs = models["ours (newton)"].coef_[0], models["sklearn (lbfgs)"].coef_[0]
    rows = [
        {"feature": f, "ours": float(a), "sklearn": float(b), "odds_ratio_per_sd": float(np.exp(a))}
        for f, a, b in sorted(zip(names, ours, theirs), key=lambda t: -abs(t[1]))
    ]
    top = {
        "titanic_top_feature": rows[0]["feature"],
        "titanic_top_odds_ratio": rows[0]["odds_ratio_per_sd"],
    }
    return top, rows


def _regularisation_path(data: list, config: Config, ctx: RunContext) -> tuple[dict, dict]:
    """Coefficients (ours and sklearn's) and our test log loss along log-spaced C."""
    Xtr, Xte, ytr, yte = data
    Cs = np.logspace(-3, 3, config.path_points)
    ours, theirs, losses = [], [], []
    for C in ctx.track(list(Cs), "regularisation path"):
        model = _fit(LogisticRegression(C=C), Xtr, ytr)[0]
        ours.append(model.coef_.ravel())
        theirs.append(_fit(_sklearn(C), Xtr, ytr)[0].coef_.ravel())
        losses.append(_scores(model, Xte, yte)[1])
    path = {"Cs": Cs, "ours": np.array(ours), "theirs": np.array(theirs), "losses": losses}
    metrics = {
        "path_best_C": float(Cs[int(np.argmin(losses))]),
        "path_max_abs_diff": float(np.abs(path["ours"] - path["theirs"]).max()),
    }
    return metrics, path


def _boundary_figure(models: dict, data: list, ctx: RunContext) -> None:
    """Iris on two petal features: the regions each model assigns, ours beside sklearn's."""
    Xtr, Xte, ytr, yte = data
    X = np.vstack([Xtr, Xte])
    xx, yy = np.meshgrid(
        np.linspace(X[:, 0].min() - 0.5, X[:, 0].max() + 0.5, 300),
        np.linspace(X[:, 1].min() - 0.5, X[:, 1].max() + 0.5, 300),
    )
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    panels = [("ours (newton)", "ours (newton)"), ("scikit-learn", "sklearn (lbfgs)")]
    with figure(ctx, "decision_boundary", 1, 2, figsize=(11, 4.5), sharey=True) as (fig, axes):
        for ax, (label, key) in zip(axes, panels):
            proba = models[key].predict_proba(grid)
            regions = proba.argmax(1).reshape(xx.shape)
            ax.contourf(xx, yy, regions, levels=[-0.5, 0.5, 1.5, 2.5], cmap="Pastel1", alpha=0.8)
            top = proba.max(1).reshape(xx.shape)
            ax.contour(xx, yy, top, levels=[0.5, 0.8, 0.95], colors="grey", linewidths=0.6)
            for k, marker in zip(range(3), "os^"):
                train, test = Xtr[ytr == k].T, Xte[yte == k].T
                ax.scatter(
                    *train, marker=marker, s=18, edgecolor="k", lw=0.3, label=f"class {k} (train)"
                )
                ax.scatter(*test, marker=marker, s=40, facecolor="none", edgecolor="k", lw=0.8)
            ax.set(
                title=f"{label}: test accuracy {np.mean(models[key].predict(Xte) == yte):.3f}",
                xlabel=f"{IRIS_2D[0]} (standardised)",
            )
        axes[0].set_ylabel(f"{IRIS_2D[1]} (standardised)")
        axes[0].legend(fontsize=8, loc="upper left")
        fig.suptitle(
            "Iris, softmax regression: regions of the most probable class "
            "(grey: max probability 0.5 / 0.8 / 0.95; hollow: test points)"
        )


def _convergence_figure(models: dict, ctx: RunContext) -> None:
    labels = ("ours (newton)", "ours (gd)")
    best = min(min(models[label].loss_history_) for label in labels)
    with figure(ctx, "convergence", figsize=(7, 4.5)) as (_, ax):
        for label in labels:
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


def _path_figure(path: dict, names: list[str], best_C: float, ctx: RunContext) -> None:
    """Left: the six largest coefficients along C (lines ours, dots sklearn); right: log loss."""
    Cs, ours, theirs = path["Cs"], path["ours"], path["theirs"]
    with figure(ctx, "regularisation_path", 1, 2, figsize=(12, 4.5)) as (_, (left, right)):
        for j in np.argsort(-np.abs(ours[-1]))[:6]:
            (line,) = left.plot(Cs, ours[:, j], label=names[j])
            left.plot(Cs, theirs[:, j], "o", color=line.get_color(), ms=4)
        left.set(
            xscale="log",
            xlabel="C (larger = weaker penalty)",
            ylabel="coefficient (standardised feature)",
            title="Breast cancer: 6 largest coefficients (lines ours, dots sklearn)",
        )
        left.legend(fontsize=7)
        right.plot(Cs, path["losses"], "o-")
        right.axvline(best_C, color="k", ls=":", label=f"lowest test log loss at C = {best_C:.3g}")
        right.set(
            xscale="log",
            xlabel="C",
            ylabel="test log loss",
            title="Too much penalty underfits, too little overfits",
        )
        right.legend()


def run(config: Config, ctx: RunContext) -> LabResult:
    splits, names = _datasets(config)
    metrics, rows, fitted = _compare_all(splits, config, ctx)
    top, coef_rows = _titanic_coefficients(fitted["titanic"], names["titanic"])
    path_metrics, path = _regularisation_path(splits["cancer"], config, ctx)
    metrics |= top | path_metrics

    _boundary_figure(fitted["iris2d"], splits["iris2d"], ctx)
    _convergence_figure(fitted["cancer"], ctx)
    _path_figure(path, names["cancer"], metrics["path_best_C"], ctx)

    return LabResult(
        metrics=metrics,
        key_metric="ours_cancer_test_acc",
        library_metric="sklearn_cancer_test_acc",
        tables={"comparison": rows, "titanic_coefficients": coef_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
