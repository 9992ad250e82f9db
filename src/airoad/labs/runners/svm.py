"""Runner for svm: our SMO kernel SVM and Pegasos linear SVM beside scikit-learn's SVC,
LinearSVC and SGDClassifier, on breast-cancer (binary) and digits (10 classes, one-vs-one).

Both sides get the same split and hyper-parameters; the table reports held-out accuracy, the
support-vector sets and the largest gap between the two decision functions. A 2-D view of
breast-cancer (its first two principal components) shows the margin and the support vectors."""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from airoad.classic import svm as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, fit_race, frame_xy, param, render_notes, split, timed

KERNELS = ("linear", "poly", "rbf")


@dataclass(frozen=True)
class Config:
    test_size: float = param(0.25, ge=0.05, le=0.5)
    C: float = param(1.0, gt=0.0, le=1e6)
    kernels: tuple[str, ...] = param(KERNELS, choices=KERNELS)
    c_grid: tuple[float, ...] = param((0.01, 0.1, 1.0, 10.0, 100.0), gt=0.0, le=1e6)  # RBF sweep
    max_digits: int = param(1797, ge=200, le=1797)  # all of digits; fewer makes the run faster
    pegasos_lam: float = param(1e-3, gt=0.0, le=10.0)
    pegasos_epochs: int = param(30, ge=1, le=10_000)
    tol: float = param(1e-3, gt=0.0, le=0.1)
    seed: int = param(0, ge=0)


QUICK = {
    "max_digits": 600,
    "kernels": ("linear", "rbf"),
    "c_grid": (0.1, 1.0, 10.0),
    "pegasos_epochs": 10,
}

NOTES = (
    "SMO matched libsvm on {accuracy_equal_runs} of {kernel_runs} (data, kernel) runs to the last "
    "test prediction; decision values differ by at most {max_decision_gap:.1e} (tol = {tol}) and "
    "support-vector sets by at most {max_sv_sym_diff} points.",
    "Digits, {digits_kernel} kernel: {ours_digits_rbf_acc:.4f} accuracy with {digits_rbf_n_sv} support "
    "vectors (sklearn {sklearn_digits_rbf_acc:.4f}, {sklearn_digits_rbf_n_sv}).",
    "SMO took {ours_smo_seconds:.2f} s in total vs libsvm's {sklearn_smo_seconds:.2f} s (ratio "
    "{smo_time_ratio:.1f}x).",
    "Pegasos: digits {ours_pegasos_digits_acc:.4f} vs LinearSVC {linearsvc_digits_acc:.4f}; "
    "breast-cancer {ours_pegasos_cancer_acc:.4f} vs {linearsvc_cancer_acc:.4f}.",
    "Best C on breast-cancer (RBF, held-out accuracy): {best_C:g}; support vectors fall from "
    "{softest[ours_n_sv]} at C={softest[C]:g} to {hardest[ours_n_sv]} at C={hardest[C]:g}.",
)


def _data(name: str, config: Config) -> list:
    """A stratified split; breast-cancer standardised, digits a seeded subset of max_digits."""
    from sklearn.preprocessing import StandardScaler

    X, y = frame_xy(load(name))
    if name == "digits" and config.max_digits < len(X):
        keep = np.random.default_rng(config.seed).permutation(len(X))[: config.max_digits]
        X, y = X[keep], y[keep]
    data = split(X, y, config.test_size, config.seed)
    if name == "breast-cancer":  # 30 features on wildly different scales: standardise
        scaler = StandardScaler().fit(data[0])
        data[0], data[1] = scaler.transform(data[0]), scaler.transform(data[1])
    return data  # digits pixels (0-16) share one scale; gamma="scale" copes as it is


def _kernel_rows(config: Config, data: dict, ctx: RunContext) -> list[dict]:
    """SMO against libsvm for every dataset and kernel: accuracy, support vectors, decisions."""
    from sklearn import svm as sk

    rows = []
    jobs = [(name, kernel) for name in data for kernel in config.kernels]
    for name, kernel in ctx.track(jobs, "SMO vs libsvm"):
        Xtr, Xte, ytr, yte = data[name]
        kw = dict(C=config.C, kernel=kernel, tol=config.tol, decision_function_shape="ovo")
        ours, theirs = ref.SVC(**kw), sk.SVC(**kw)
        r = fit_race(ours, theirs, Xtr, ytr, Xte)
        gap = np.abs(ours.decision_function(Xte) - theirs.decision_function(Xte)).max()
        a, b = set(ours.support_.tolist()), set(theirs.support_.tolist())
        rows.append(
            {
                "data": name,
                "kernel": kernel,
                "C": config.C,
                "ours_acc": float((r["ours"] == yte).mean()),
                "sklearn_acc": float((r["library"] == yte).mean()),
                "ours_n_sv": len(a),
                "sklearn_n_sv": len(b),
                "sv_sym_diff": len(a ^ b),
                "max_abs_decision_gap": float(gap),
                "ours_iters": int(ours.n_iter_.sum()),
                "sklearn_iters": int(np.sum(theirs.n_iter_)),
                "ours_s": r["ours_seconds"],
                "sklearn_s": r["library_seconds"],
            }
        )
    return rows


def _linear_models(config: Config, n_train: int) -> dict:
    """Pegasos and the two hinge-loss linear SVMs of scikit-learn, at the same lambda."""
    from sklearn import svm as sk
    from sklearn.linear_model import SGDClassifier

    lam = config.pegasos_lam
    return {
        "ours Pegasos": ref.PegasosSVC(
            lam=lam, n_epochs=config.pegasos_epochs, random_state=config.seed
        ),
        "sklearn LinearSVC(hinge)": sk.LinearSVC(
            C=1.0 / (lam * n_train), loss="hinge", max_iter=50_000
        ),
        "sklearn SGDClassifier(hinge)": SGDClassifier(
            loss="hinge", alpha=lam, random_state=config.seed
        ),
    }


def _fit_predict(model, Xtr: np.ndarray, ytr: np.ndarray, Xte: np.ndarray) -> np.ndarray:
    return model.fit(Xtr, ytr).predict(Xte)


def _linear_rows(config: Config, data: dict) -> list[dict]:
    """Linear SVMs on standardised features: held-out accuracy and fit + predict seconds."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.preprocessing import StandardScaler

    rows = []
    for name, (Xtr, Xte, ytr, yte) in data.items():
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
        for label, model in _linear_models(config, len(Xtr)).items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                pred, secs = timed(_fit_predict, model, Xtr, ytr, Xte)
            rows.append(
                {
                    "data": name,
                    "model": label,
                    "lambda": config.pegasos_lam,
                    "accuracy": float((pred == yte).mean()),
                    "seconds": secs,
                }
            )
    return rows


def _c_sweep(config: Config, data: dict, ctx: RunContext) -> list[dict]:
    """The RBF SVM on breast-cancer across c_grid: accuracy and support vectors."""
    from sklearn import svm as sk

    Xtr, Xte, ytr, yte = data["breast-cancer"]
    rows = []
    for C in ctx.track(config.c_grid, "sweeping C"):
        ours = ref.SVC(C=C, tol=config.tol).fit(Xtr, ytr)
        theirs = sk.SVC(C=C, tol=config.tol).fit(Xtr, ytr)
        rows.append(
            {
                "C": C,
                "ours_acc": float(ours.score(Xte, yte)),
                "sklearn_acc": float(theirs.score(Xte, yte)),
                "ours_train_acc": float(ours.score(Xtr, ytr)),
                "ours_n_sv": len(ours.support_),
                "sklearn_n_sv": len(theirs.support_),
            }
        )
    return rows


def _summary(config: Config, data: dict, kernels: list, linear: list, sweep: list) -> dict:
    """The headline (digits, RBF if run) and the numbers the notes quote."""
    digits_rbf = next(
        (r for r in kernels if r["data"] == "digits" and r["kernel"] == "rbf"), kernels[-1]
    )

    def lin(name: str, prefix: str) -> float:
        return next(
            r["accuracy"] for r in linear if r["data"] == name and r["model"].startswith(prefix)
        )

    ours_s, sk_s = sum(r["ours_s"] for r in kernels), sum(r["sklearn_s"] for r in kernels)
    return {
        "n_digits": len(data["digits"][0]) + len(data["digits"][1]),
        "ours_digits_rbf_acc": digits_rbf["ours_acc"],
        "sklearn_digits_rbf_acc": digits_rbf["sklearn_acc"],
        "digits_rbf_n_sv": digits_rbf["ours_n_sv"],
        "sklearn_digits_rbf_n_sv": digits_rbf["sklearn_n_sv"],
        "digits_kernel": digits_rbf["kernel"],  # rbf unless the config leaves it out
        "max_decision_gap": max(r["max_abs_decision_gap"] for r in kernels),
        "max_sv_sym_diff": max(r["sv_sym_diff"] for r in kernels),
        "accuracy_equal_runs": sum(r["ours_acc"] == r["sklearn_acc"] for r in kernels),
        "kernel_runs": len(kernels),
        "ours_smo_seconds": ours_s,
        "sklearn_smo_seconds": sk_s,
        "smo_time_ratio": ours_s / max(sk_s, 1e-9),
        "ours_pegasos_digits_acc": lin("digits", "ours"),
        "linearsvc_digits_acc": lin("digits", "sklearn LinearSVC"),
        "ours_pegasos_cancer_acc": lin("breast-cancer", "ours"),
        "linearsvc_cancer_acc": lin("breast-cancer", "sklearn LinearSVC"),
        "best_C": max(sweep, key=lambda r: r["ours_acc"])["C"],
    }


def _margin_figure(config: Config, data: dict, ctx: RunContext) -> None:
    """Breast-cancer on its first two principal components: margins of two kernels."""
    from sklearn import svm as sk

    Xtr, _, ytr, _ = data["breast-cancer"]
    # First two principal components of the standardised features (SVD of the centred data).
    _, _, Vt = np.linalg.svd(Xtr - Xtr.mean(axis=0), full_matrices=False)
    Z = (Xtr - Xtr.mean(axis=0)) @ Vt[:2].T
    pad = 0.5
    gx, gy = np.meshgrid(
        np.linspace(Z[:, 0].min() - pad, Z[:, 0].max() + pad, 200),
        np.linspace(Z[:, 1].min() - pad, Z[:, 1].max() + pad, 200),
    )
    grid = np.c_[gx.ravel(), gy.ravel()]
    with figure(ctx, "margin_2d", 1, 2, figsize=(11, 4.6)) as (fig, axes):
        for ax, kernel in zip(axes, ["linear", "rbf"]):
            ours = ref.SVC(C=config.C, kernel=kernel, tol=config.tol).fit(Z, ytr)
            theirs = sk.SVC(C=config.C, kernel=kernel, tol=config.tol).fit(Z, ytr)
            f_ours = ours.decision_function(grid).reshape(gx.shape)
            f_lib = theirs.decision_function(grid).reshape(gx.shape)
            shades = ["#f4c7c3", "#c6dbef"]
            ax.contourf(gx, gy, f_ours, levels=[-1e9, 0, 1e9], colors=shades, alpha=0.6)
            ax.contour(gx, gy, f_ours, levels=[-1, 0, 1], colors="k", linestyles=[":", "-", ":"])
            ax.contour(gx, gy, f_lib, levels=[0], colors="orange", linestyles="--", linewidths=2)
            ax.scatter(Z[:, 0], Z[:, 1], c=np.where(ytr == 1, "tab:blue", "tab:red"), s=8)
            sv = Z[ours.support_]
            ax.scatter(*sv.T, s=45, facecolors="none", edgecolors="k", linewidths=0.7)
            ax.set(
                title=f"{kernel} kernel, C={config.C}: {len(ours.support_)} support vectors",
                xlabel="PC 1",
                ylabel="PC 2",
            )
        axes[0].plot([], [], "k-", label="ours f = 0")
        axes[0].plot([], [], "k:", label="ours f = +/-1 (margin)")
        axes[0].plot([], [], "--", color="orange", label="sklearn SVC f = 0")
        axes[0].legend(fontsize=8, loc="lower left")
        fig.suptitle("breast-cancer in 2-D (red malignant, blue benign); circled: support vectors")


def _sweep_figure(rows: list[dict], ctx: RunContext) -> None:
    Cs = [r["C"] for r in rows]
    with figure(ctx, "c_sweep", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        left.semilogx(Cs, [r["ours_acc"] for r in rows], "o-", lw=3, alpha=0.5, label="ours test")
        left.semilogx(Cs, [r["sklearn_acc"] for r in rows], "k.--", label="sklearn test")
        left.semilogx(Cs, [r["ours_train_acc"] for r in rows], "s:", label="ours train")
        left.set(xlabel="C", ylabel="accuracy", title="RBF SVM on breast-cancer")
        left.legend()
        right.semilogx(Cs, [r["ours_n_sv"] for r in rows], "o-", lw=3, alpha=0.5, label="ours")
        right.semilogx(Cs, [r["sklearn_n_sv"] for r in rows], "k.--", label="sklearn")
        right.set(xlabel="C", ylabel="support vectors", title="softer margin (small C) = more SVs")
        right.legend()


def run(config: Config, ctx: RunContext) -> LabResult:
    data = {name: _data(name, config) for name in ("breast-cancer", "digits")}
    kernel_rows = _kernel_rows(config, data, ctx)
    linear_rows = _linear_rows(config, data)
    sweep = _c_sweep(config, data, ctx)
    metrics = _summary(config, data, kernel_rows, linear_rows, sweep)

    _margin_figure(config, data, ctx)
    _sweep_figure(sweep, ctx)

    values = {**asdict(config), **metrics, "softest": sweep[0], "hardest": sweep[-1]}
    return LabResult(
        metrics=metrics,
        key_metric="ours_digits_rbf_acc",
        library_metric="sklearn_digits_rbf_acc",
        tables={"kernels": kernel_rows, "linear": linear_rows, "c_sweep": sweep},
        figures=ctx.figures,
        notes=render_notes(NOTES, values),
    )
