"""Runner for svm: our SMO kernel SVM and Pegasos linear SVM beside scikit-learn's SVC,
LinearSVC and SGDClassifier, on breast-cancer (binary) and digits (10 classes, one-vs-one).

Both sides get the same split and hyper-parameters; the table reports held-out accuracy, the
support-vector sets and the largest gap between the two decision functions. A 2-D view of
breast-cancer (its first two principal components) shows the margin and the support vectors."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.classic import svm as ref
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    test_size: float = 0.25
    C: float = 1.0
    kernels: tuple[str, ...] = ("linear", "poly", "rbf")
    c_grid: tuple[float, ...] = (0.01, 0.1, 1.0, 10.0, 100.0)  # swept on breast-cancer, RBF
    max_digits: int = 1797  # all of digits; fewer makes the run faster
    pegasos_lam: float = 1e-3
    pegasos_epochs: int = 30
    tol: float = 1e-3
    seed: int = 0


QUICK = {
    "max_digits": 600,
    "kernels": ("linear", "rbf"),
    "c_grid": (0.1, 1.0, 10.0),
    "pegasos_epochs": 10,
}


def _data(name: str, config: Config):
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    df = load(name)
    X, y = df.drop(columns="target").to_numpy(np.float64), df["target"].to_numpy()
    if name == "digits" and config.max_digits < len(X):
        keep = np.random.default_rng(config.seed).permutation(len(X))[: config.max_digits]
        X, y = X[keep], y[keep]
    split = train_test_split(X, y, test_size=config.test_size, random_state=config.seed, stratify=y)
    if name == "breast-cancer":  # 30 features on wildly different scales: standardise
        scaler = StandardScaler().fit(split[0])
        split[0], split[1] = scaler.transform(split[0]), scaler.transform(split[1])
    return split  # digits pixels (0-16) share one scale; gamma="scale" copes as it is


def _timed(make, Xtr, ytr, Xte):
    start = time.perf_counter()
    model = make().fit(Xtr, ytr)
    pred = model.predict(Xte)
    return model, pred, time.perf_counter() - start


def _kernel_rows(config: Config, data: dict, ctx: RunContext) -> list[dict]:
    from sklearn import svm as sk

    rows = []
    jobs = [(name, kernel) for name in data for kernel in config.kernels]
    for name, kernel in ctx.track(jobs, "SMO vs libsvm"):
        Xtr, Xte, ytr, yte = data[name]
        kw = dict(C=config.C, kernel=kernel, tol=config.tol, decision_function_shape="ovo")
        ours, p_ours, t_ours = _timed(lambda: ref.SVC(**kw), Xtr, ytr, Xte)  # noqa: B023 (called before the loop moves on)
        theirs, p_lib, t_lib = _timed(lambda: sk.SVC(**kw), Xtr, ytr, Xte)  # noqa: B023 (called before the loop moves on)
        gap = np.abs(ours.decision_function(Xte) - theirs.decision_function(Xte)).max()
        a, b = set(ours.support_.tolist()), set(theirs.support_.tolist())
        rows.append(
            {
                "data": name,
                "kernel": kernel,
                "C": config.C,
                "ours_acc": float((p_ours == yte).mean()),
                "sklearn_acc": float((p_lib == yte).mean()),
                "ours_n_sv": len(a),
                "sklearn_n_sv": len(b),
                "sv_sym_diff": len(a ^ b),
                "max_abs_decision_gap": float(gap),
                "ours_iters": int(ours.n_iter_.sum()),
                "sklearn_iters": int(np.sum(theirs.n_iter_)),
                "ours_s": t_ours,
                "sklearn_s": t_lib,
            }
        )
    return rows


def _linear_rows(config: Config, data: dict) -> list[dict]:
    import warnings

    from sklearn import svm as sk
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier
    from sklearn.preprocessing import StandardScaler

    rows = []
    for name, (Xtr, Xte, ytr, yte) in data.items():
        scaler = StandardScaler().fit(Xtr)
        Xtr, Xte = scaler.transform(Xtr), scaler.transform(Xte)
        lam = config.pegasos_lam
        models = {
            "ours Pegasos": lambda: ref.PegasosSVC(
                lam=lam,  # noqa: B023 (called before the loop moves on)
                n_epochs=config.pegasos_epochs,
                random_state=config.seed,  # noqa: B023 (called before the loop moves on)
            ),
            "sklearn LinearSVC(hinge)": lambda: sk.LinearSVC(
                C=1.0 / (lam * len(Xtr)),  # noqa: B023 (called before the loop moves on)
                loss="hinge",
                max_iter=50_000,  # noqa: B023 (called before the loop moves on)
            ),
            "sklearn SGDClassifier(hinge)": lambda: SGDClassifier(
                loss="hinge",
                alpha=lam,  # noqa: B023 (called before the loop moves on)
                random_state=config.seed,  # noqa: B023 (called before the loop moves on)
            ),
        }
        for label, make in models.items():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                _, pred, secs = _timed(make, Xtr, ytr, Xte)
            rows.append(
                {
                    "data": name,
                    "model": label,
                    "lambda": lam,
                    "accuracy": float((pred == yte).mean()),
                    "seconds": secs,
                }
            )
    return rows


def _c_sweep(config: Config, data: dict, ctx: RunContext) -> list[dict]:
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


def _margin_figure(config: Config, data: dict, ctx: RunContext):
    import matplotlib.pyplot as plt
    from sklearn import svm as sk

    Xtr, _, ytr, _ = data["breast-cancer"]
    # First two principal components of the standardised features (SVD of the centred data).
    _, _, Vt = np.linalg.svd(Xtr - Xtr.mean(axis=0), full_matrices=False)
    Z = (Xtr - Xtr.mean(axis=0)) @ Vt[:2].T
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.6))
    pad = 0.5
    gx, gy = np.meshgrid(
        np.linspace(Z[:, 0].min() - pad, Z[:, 0].max() + pad, 200),
        np.linspace(Z[:, 1].min() - pad, Z[:, 1].max() + pad, 200),
    )
    grid = np.c_[gx.ravel(), gy.ravel()]
    for ax, kernel in zip(axes, ["linear", "rbf"]):
        ours = ref.SVC(C=config.C, kernel=kernel, tol=config.tol).fit(Z, ytr)
        theirs = sk.SVC(C=config.C, kernel=kernel, tol=config.tol).fit(Z, ytr)
        f_ours = ours.decision_function(grid).reshape(gx.shape)
        f_lib = theirs.decision_function(grid).reshape(gx.shape)
        ax.contourf(gx, gy, f_ours, levels=[-1e9, 0, 1e9], colors=["#f4c7c3", "#c6dbef"], alpha=0.6)
        ax.contour(gx, gy, f_ours, levels=[-1, 0, 1], colors="k", linestyles=[":", "-", ":"])
        ax.contour(gx, gy, f_lib, levels=[0], colors="orange", linestyles="--", linewidths=2)
        ax.scatter(Z[:, 0], Z[:, 1], c=np.where(ytr == 1, "tab:blue", "tab:red"), s=8)
        sv = Z[ours.support_]
        ax.scatter(sv[:, 0], sv[:, 1], s=45, facecolors="none", edgecolors="k", linewidths=0.7)
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
    return ctx.save_figure(fig, "margin_2d")


def _sweep_figure(rows: list[dict], ctx: RunContext):
    import matplotlib.pyplot as plt

    Cs = [r["C"] for r in rows]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.semilogx(Cs, [r["ours_acc"] for r in rows], "o-", lw=3, alpha=0.5, label="ours test")
    left.semilogx(Cs, [r["sklearn_acc"] for r in rows], "k.--", label="sklearn test")
    left.semilogx(Cs, [r["ours_train_acc"] for r in rows], "s:", label="ours train")
    left.set(xlabel="C", ylabel="accuracy", title="RBF SVM on breast-cancer")
    left.legend()
    right.semilogx(Cs, [r["ours_n_sv"] for r in rows], "o-", lw=3, alpha=0.5, label="ours")
    right.semilogx(Cs, [r["sklearn_n_sv"] for r in rows], "k.--", label="sklearn")
    right.set(xlabel="C", ylabel="support vectors", title="softer margin (small C) = more SVs")
    right.legend()
    return ctx.save_figure(fig, "c_sweep")


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    data = {name: _data(name, config) for name in ("breast-cancer", "digits")}
    kernel_rows = _kernel_rows(config, data, ctx)
    linear_rows = _linear_rows(config, data)
    sweep = _c_sweep(config, data, ctx)
    figures = [_margin_figure(config, data, ctx), _sweep_figure(sweep, ctx)]

    def row(name: str, kernel: str) -> dict:
        return next(r for r in kernel_rows if r["data"] == name and r["kernel"] == kernel)

    def lin(name: str, prefix: str) -> float:
        return next(
            r["accuracy"]
            for r in linear_rows
            if r["data"] == name and r["model"].startswith(prefix)
        )

    digits_rbf = row("digits", "rbf") if "rbf" in config.kernels else kernel_rows[-1]
    same = sum(r["ours_acc"] == r["sklearn_acc"] for r in kernel_rows)
    metrics = {
        "n_digits": len(data["digits"][0]) + len(data["digits"][1]),
        "ours_digits_rbf_acc": digits_rbf["ours_acc"],
        "sklearn_digits_rbf_acc": digits_rbf["sklearn_acc"],
        "digits_rbf_n_sv": digits_rbf["ours_n_sv"],
        "sklearn_digits_rbf_n_sv": digits_rbf["sklearn_n_sv"],
        "max_decision_gap": max(r["max_abs_decision_gap"] for r in kernel_rows),
        "max_sv_sym_diff": max(r["sv_sym_diff"] for r in kernel_rows),
        "accuracy_equal_runs": same,
        "kernel_runs": len(kernel_rows),
        "ours_smo_seconds": sum(r["ours_s"] for r in kernel_rows),
        "sklearn_smo_seconds": sum(r["sklearn_s"] for r in kernel_rows),
        "ours_pegasos_digits_acc": lin("digits", "ours"),
        "linearsvc_digits_acc": lin("digits", "sklearn LinearSVC"),
        "ours_pegasos_cancer_acc": lin("breast-cancer", "ours"),
        "linearsvc_cancer_acc": lin("breast-cancer", "sklearn LinearSVC"),
        "best_C": max(sweep, key=lambda r: r["ours_acc"])["C"],
    }
    notes = [
        f"SMO matched libsvm on {same} of {len(kernel_rows)} (data, kernel) runs to the last test "
        f"prediction; decision values differ by at most {metrics['max_decision_gap']:.1e} "
        f"(tol = {config.tol}) and support-vector sets by at most {metrics['max_sv_sym_diff']} points.",
        f"Digits, RBF: {digits_rbf['ours_acc']:.4f} accuracy with {digits_rbf['ours_n_sv']} support "
        f"vectors (sklearn {digits_rbf['sklearn_acc']:.4f}, {digits_rbf['sklearn_n_sv']}).",
        f"SMO took {metrics['ours_smo_seconds']:.2f} s in total vs libsvm's "
        f"{metrics['sklearn_smo_seconds']:.2f} s (ratio "
        f"{metrics['ours_smo_seconds'] / max(metrics['sklearn_smo_seconds'], 1e-9):.1f}x).",
        f"Pegasos: digits {metrics['ours_pegasos_digits_acc']:.4f} vs LinearSVC "
        f"{metrics['linearsvc_digits_acc']:.4f}; breast-cancer {metrics['ours_pegasos_cancer_acc']:.4f} "
        f"vs {metrics['linearsvc_cancer_acc']:.4f}.",
        f"Best C on breast-cancer (RBF, held-out accuracy): {metrics['best_C']:g}; support vectors "
        f"fall from {sweep[0]['ours_n_sv']} at C={sweep[0]['C']:g} to {sweep[-1]['ours_n_sv']} at "
        f"C={sweep[-1]['C']:g}.",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_digits_rbf_acc",
        library_metric="sklearn_digits_rbf_acc",
        tables={"kernels": kernel_rows, "linear": linear_rows, "c_sweep": sweep},
        figures=figures,
        notes=notes,
    )
