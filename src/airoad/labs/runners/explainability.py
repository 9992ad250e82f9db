"""Runner for explainability: explaining an XGBoost model of Adult incomes and a LightGBM model
and an MLP of Titanic survival, each from-scratch method beside the library doing the same job.

1. Shapley values on Adult (ten features, log-odds): our KernelSHAP over all 1022 coalitions,
   ``shap.KernelExplainer`` with nsamples = 2^10 and no L1 step, exact Shapley values by
   enumeration and ``shap.TreeExplainer`` with the same background (interventional), row by row.
2. TreeSHAP (``shap.TreeExplainer``, path-dependent) on many test rows: additivity checked
   against the model's margin, the beeswarm figure, mean |SHAP| per feature.
3. Permutation importance (ours vs ``sklearn.inspection``, same random_state) and partial
   dependence with ICE curves for three features (ours vs scikit-learn's brute method).
4. LIME on Titanic (LightGBM probabilities): ours vs ``lime`` fed the same seed, so the same
   perturbation samples; its signs beside KernelSHAP's on the same rows.
5. Integrated gradients of an MLP on Titanic: ours vs ``captum`` for every integration rule,
   and how far each rule is from completeness (sum IG = F(x) - F(baseline)).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes, subsample, timed
from airoad.labs.runners import explainability_parts as parts
from airoad.responsible import attribution as attr
from airoad.responsible import explainability as ref


@dataclass(frozen=True)
class Config:
    adult_rows: int = param(0, ge=500, le=32_561, also=(0,))  # training rows, 0 = all 32561
    n_estimators: int = param(200, ge=5, le=2_000)  # boosting rounds (XGBoost and LightGBM)
    max_depth: int = param(4, ge=1, le=12)
    learning_rate: float = param(0.1, gt=0.0, le=1.0)
    n_background: int = param(50, ge=1, le=500)  # background rows for KernelSHAP / exact / TreeSHAP
    n_kernel: int = param(40, ge=1, le=500)  # Adult test rows explained by all four Shapley methods
    n_explain: int = param(2_000, ge=10, le=16_281)  # Adult test rows for TreeSHAP
    n_perm: int = param(4_000, ge=50, le=16_281)  # Adult test rows for permutation importance
    n_repeats: int = param(5, ge=1, le=50)
    n_pdp: int = param(1_000, ge=10, le=16_281)  # rows averaged by partial dependence
    grid_resolution: int = param(30, ge=2, le=200)
    n_lime: int = param(40, ge=1, le=500)  # Titanic test rows explained by LIME
    lime_samples: int = param(5_000, ge=100, le=100_000)
    mlp_hidden: int = param(32, ge=2, le=512)
    mlp_epochs: int = param(300, ge=1, le=5_000)
    mlp_lr: float = param(0.01, gt=0.0, le=1.0)
    ig_steps: int = param(50, ge=2, le=2_000)
    test_size: float = param(0.25, gt=0.0, lt=1.0)  # Titanic's held-out share
    seed: int = param(0, ge=0)


QUICK = {"adult_rows": 2_000, "n_estimators": 30, "n_background": 8, "n_kernel": 2,
         "n_explain": 200, "n_perm": 300, "n_repeats": 2, "n_pdp": 100, "grid_resolution": 8,
         "n_lime": 3, "lime_samples": 500, "mlp_epochs": 40, "ig_steps": 16}  # fmt: skip

NOTES = (
    "Adult, XGBoost (test accuracy {xgb_accuracy:.3f}), {n_kernel} rows, {n_background} background "
    "rows: our KernelSHAP vs shap.KernelExplainer max |diff| {kernel_vs_shap:.1e}, vs exact "
    "Shapley {kernel_vs_exact:.1e}; exact vs TreeExplainer(interventional) {exact_vs_tree:.1e}.",
    "TreeSHAP on {n_explain} rows: additivity error {tree_additivity:.1e}; top feature by mean "
    "|SHAP| {top_shap}, by permutation importance {top_perm} (ours = sklearn to "
    "{perm_vs_sklearn:.1e}); rank correlation of the two orders {rank_corr:.2f}.",
    "Partial dependence of {pdp_features}: ours = sklearn to {pdp_vs_sklearn:.1e}.",
    "Titanic LIME on {n_lime} rows: ours = lime to {lime_vs_lime:.1e}; its signs agree with "
    "KernelSHAP's on {lime_shap_sign_agreement:.0%} of the features that matter.",
    "Titanic MLP (test accuracy {mlp_accuracy:.3f}): integrated gradients = captum to "
    "{ig_vs_captum:.1e} over every rule; completeness gap with {ig_steps} steps: Gauss-Legendre "
    "{gap_gausslegendre:.1e}, trapezoid {gap_riemann_trapezoid:.1e}, left {gap_riemann_left:.1e}.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    warnings.filterwarnings("ignore", module="(shap|lime|sklearn|xgboost|lightgbm)")
    Xtr, Xte, ytr, yte = parts.adult(config.adult_rows, config.seed)
    with ctx.step("XGBoost on Adult"):
        xgb = parts.xgboost_model(Xtr, ytr, config)
    metrics = {"xgb_accuracy": float(xgb.score(Xte, yte))}
    m, shap_rows = _shapley_on_adult(config, ctx, xgb, Xtr, Xte)
    metrics |= m
    m, phi_tree = _tree_shap(config, xgb, Xte)
    metrics |= m
    m, perm_rows = _permutation(config, xgb, Xte, yte, np.abs(phi_tree).mean(axis=0))
    metrics |= m | _partial_dependence(config, ctx, xgb, Xtr)
    titanic = parts.titanic(config.test_size, config.seed)
    metrics |= _lime_on_titanic(config, ctx, *titanic)
    m, ig_rows = _integrated_gradients(config, ctx, *titanic)
    metrics |= m
    parts.beeswarm(phi_tree, Xte[: len(phi_tree)], parts.ADULT, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="ours_mean_abs_shap",
        library_metric="shap_mean_abs_shap",
        tables={"shapley_rows": shap_rows, "importance": perm_rows, "ig_rules": ig_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _shapley_on_adult(config: Config, ctx, model, Xtr, Xte) -> tuple[dict, list]:
    """Four Shapley computations of the margin for each explained row, their gaps and timings."""
    import shap

    margin = lambda X: model.predict(X, output_margin=True)  # noqa: E731
    bg = Xtr[subsample(len(Xtr), config.n_background, config.seed + 1)]
    kernel, tree = shap.KernelExplainer(margin, bg), shap.TreeExplainer(model, data=bg)
    rows, out = [], {k: [] for k in ("ours", "shap", "exact", "tree", "ours_s", "shap_s")}
    for x in ctx.track(Xte[: config.n_kernel], "Shapley values, four ways"):
        (phi, phi0), ours_s = timed(ref.kernel_shap, margin, x, bg)
        lib, shap_s = timed(kernel.shap_values, x[None], nsamples=2**10, l1_reg=False, silent=True)
        exact, _ = ref.exact_shapley(margin, x, bg)
        for k, v in zip(out, (phi, np.ravel(lib), exact, tree.shap_values(x[None])[0], ours_s, shap_s),
                        strict=True):  # fmt: skip
            out[k].append(v)
        rows.append({"f_x": float(margin(x[None])[0]), "phi0": phi0, "sum_phi": float(phi.sum()),
                     "vs_shap": float(np.abs(phi - out["shap"][-1]).max()),
                     "vs_exact": float(np.abs(phi - exact).max()), "ours_seconds": ours_s,
                     "shap_seconds": shap_s})  # fmt: skip
    ours, lib, exact, tree_phi = (np.array(out[k]) for k in ("ours", "shap", "exact", "tree"))
    parts.waterfall(ours[0], rows[0]["phi0"], rows[0]["f_x"], Xte[0], parts.ADULT, ctx)
    parts.agreement([("KernelSHAP: ours vs shap.KernelExplainer", ours, lib),
                     ("exact Shapley (ours) vs TreeExplainer(interventional)", exact, tree_phi)],
                    ctx)  # fmt: skip
    return {
        "kernel_vs_shap": float(np.abs(ours - lib).max()),
        "kernel_vs_exact": float(np.abs(ours - exact).max()),
        "exact_vs_tree": float(np.abs(exact - tree_phi).max()),
        "ours_mean_abs_shap": float(np.abs(ours).mean()),
        "shap_mean_abs_shap": float(np.abs(lib).mean()),
        "ours_kernel_seconds": float(np.mean(out["ours_s"])),
        "shap_kernel_seconds": float(np.mean(out["shap_s"])),
    }, rows


def _tree_shap(config: Config, model, Xte) -> tuple[dict, np.ndarray]:
    """Path-dependent TreeSHAP on the first n_explain test rows and its additivity gap."""
    import shap

    X = Xte[: config.n_explain]
    explainer = shap.TreeExplainer(model)
    phi = explainer.shap_values(X)
    gap = phi.sum(axis=1) + explainer.expected_value - model.predict(X, output_margin=True)
    return {"tree_additivity": float(np.abs(gap).max())}, phi


def _permutation(config: Config, model, Xte, yte, mean_abs_shap) -> tuple[dict, list]:
    """Permutation importance (accuracy drop), ours and sklearn's, beside mean |TreeSHAP|."""
    from scipy.stats import spearmanr
    from sklearn.inspection import permutation_importance

    X, y = Xte[: config.n_perm], yte[: config.n_perm]
    ours = attr.permutation_importance(model.score, X, y, config.n_repeats, config.seed)
    lib = permutation_importance(model, X, y, n_repeats=config.n_repeats,
                                 random_state=config.seed).importances  # fmt: skip
    rows = [{"feature": n, "perm_ours": float(o.mean()), "perm_sklearn": float(s.mean()),
             "perm_std": float(o.std()), "mean_abs_shap": float(a)}
            for n, o, s, a in zip(parts.ADULT, ours, lib, mean_abs_shap, strict=True)]  # fmt: skip
    rows.sort(key=lambda r: -r["mean_abs_shap"])
    return {
        "perm_vs_sklearn": float(np.abs(ours - lib).max()),
        "top_shap": rows[0]["feature"],
        "top_perm": max(rows, key=lambda r: r["perm_ours"])["feature"],
        "rank_corr": float(spearmanr(ours.mean(axis=1), mean_abs_shap).statistic),
    }, rows


def _partial_dependence(config: Config, ctx, model, Xtr) -> dict:
    """PDP and ICE of three Adult features, ours and scikit-learn's, and the PDP figure."""
    from sklearn.inspection import partial_dependence

    X = Xtr[subsample(len(Xtr), config.n_pdp, config.seed + 2)]
    proba = lambda A: model.predict_proba(A)[:, 1]  # noqa: E731
    curves, gap = [], 0.0
    for name in parts.PDP_FEATURES:
        j = parts.ADULT.index(name)
        grid = attr.pd_grid(X[:, j], config.grid_resolution)
        ours, ice = attr.partial_dependence(proba, X, j, grid)
        lib = partial_dependence(model, X, [j], grid_resolution=config.grid_resolution,
                                 kind="average", method="brute")  # fmt: skip
        gap = max(gap, float(np.abs(ours - lib["average"][0]).max()))
        curves.append({"feature": name, "grid": grid, "ours": ours, "ice": ice,
                       "sklearn": lib["average"][0]})  # fmt: skip
    parts.pdp(curves, ctx)
    return {"pdp_vs_sklearn": gap, "pdp_features": ", ".join(parts.PDP_FEATURES)}


def _lime_on_titanic(config: Config, ctx, Xtr, Xte, ytr, yte) -> dict:
    """LIME (ours and lime's) on LightGBM's survival probability; sign agreement with SHAP."""
    from lime.lime_tabular import LimeTabularExplainer

    model = parts.lightgbm_model(Xtr, ytr, config)
    proba = lambda A: model.predict_proba(A)[:, 1]  # noqa: E731
    mean, std = Xtr.mean(axis=0), np.where(Xtr.std(axis=0) > 0, Xtr.std(axis=0), 1.0)
    bg = Xtr[subsample(len(Xtr), config.n_background, config.seed + 3)]
    gaps, agree = [], []
    for i, x in enumerate(ctx.track(Xte[: config.n_lime], "LIME on Titanic")):
        coef, _, _ = ref.lime_explain(proba, x, mean, std, config.lime_samples, config.seed + i)
        lib = LimeTabularExplainer(Xtr, discretize_continuous=False, feature_selection="none",
                                   random_state=config.seed + i).explain_instance(
            x, model.predict_proba, num_features=len(x), num_samples=config.lime_samples)  # fmt: skip
        gaps.append(np.abs(coef - _lime_vector(lib.local_exp[1], len(x))).max())
        phi, _ = ref.kernel_shap(proba, x, bg)
        big = np.abs(phi) > 0.01  # features whose Shapley value is at least 1 point of probability
        agree.extend(np.sign(coef[big] * (x[big] - mean[big])) == np.sign(phi[big]))
    return {"lime_vs_lime": float(np.max(gaps)),
            "lime_shap_sign_agreement": float(np.mean(agree)) if agree else float("nan")}  # fmt: skip


def _lime_vector(pairs: list[tuple[int, float]], m: int) -> np.ndarray:
    out = np.zeros(m)
    for j, v in pairs:
        out[j] = v
    return out


def _integrated_gradients(config: Config, ctx, Xtr, Xte, ytr, yte) -> tuple[dict, list]:
    """IG of the MLP's survival logit, ours vs captum per rule, and each rule's completeness gap."""
    import torch
    from captum.attr import IntegratedGradients

    with ctx.step("MLP on Titanic"):
        net, mean, std = parts.mlp(Xtr, ytr, config)
    x = torch.as_tensor((Xte - mean) / std)
    base = torch.zeros(1, x.shape[1], dtype=x.dtype)  # the training mean, in standard units
    with torch.no_grad():
        gap_true = (net(x)[:, 1] - net(base)[:, 1]).numpy()
        acc = float((net(x).argmax(dim=1).numpy() == yte).mean())
    rows, metrics = [], {"mlp_accuracy": acc}
    for rule in attr.RULES:
        ours = attr.integrated_gradients(net, x, base, 1, config.ig_steps, rule).detach()
        lib = IntegratedGradients(net).attribute(x, baselines=base.expand_as(x), target=1,
                                                 n_steps=config.ig_steps, method=rule)  # fmt: skip
        completeness = float(np.abs(ours.sum(dim=1).numpy() - gap_true).max())
        rows.append({"rule": rule, "vs_captum": float((ours - lib).abs().max()),
                     "completeness_gap": completeness})  # fmt: skip
        metrics[f"gap_{rule}"] = completeness
    metrics["ig_vs_captum"] = max(r["vs_captum"] for r in rows)
    return metrics, rows
