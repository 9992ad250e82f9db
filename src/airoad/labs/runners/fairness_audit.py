"""Runner for fairness-audit: a bias audit of two classifiers and of the COMPAS score.

1. Tasks: Adult (income > 50K, audited by sex; its own train/test files) and COMPAS
   (re-arrest within two years, ProPublica's rows, African-American vs Caucasian; a seeded
   split). The group column is never a model input.
2. Audit: per-group selection rate, TPR, FPR, accuracy and calibration of a logistic
   regression, and of the COMPAS decile itself (decile >= 5, ProPublica's "high risk");
   demographic-parity and equalised-odds differences and ratios, each checked against
   fairlearn's MetricFrame and metric functions on the same predictions.
3. Mitigation: reweighing (ours), group thresholds for DP and EO (ours, checked prediction by
   prediction against fairlearn's ThresholdOptimizer with the same random_state), and
   fairlearn's ExponentiatedGradient for DP and EO; accuracy vs disparity for every method.
4. audit.md in the run folder: the tables as markdown.
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass

import numpy as np

from airoad.errors import AiroadError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import param, render_notes
from airoad.labs.runners import fairness_audit_parts as parts
from airoad.responsible import fairness_audit as ref
from airoad.responsible import fairness_mitigation as mit

COMPAS_CURVE = "compas: COMPAS decile / 10 (a rank: compare groups)"
RATES = ("selection_rate", "true_positive_rate", "false_positive_rate", "accuracy")
DISPARITIES = ("demographic_parity_difference", "demographic_parity_ratio",
               "equalized_odds_difference", "equalized_odds_ratio")  # fmt: skip


@dataclass(frozen=True)
class Config:
    adult_group: str = param("sex", choices=("sex", "race"))  # the audited column of Adult
    max_rows: int = param(0, ge=500, le=32561, also=(0,))  # rows per Adult split / of COMPAS
    library_check: str = param("all", choices=("all", "baseline"))  # methods fairlearn re-scores
    compas_test_size: float = param(0.3, ge=0.1, le=0.9)
    C: float = param(1.0, gt=0.0, le=1e4)  # inverse L2 strength of the logistic regressions
    grid_size: int = param(1000, ge=10, le=100_000)  # threshold search grid (fairlearn's)
    eg_eps: float = param(0.01, gt=0.0, le=1.0)  # allowed constraint violation of expgrad
    eg_max_iter: int = param(50, ge=1, le=1000)
    calibration_bins: int = param(10, ge=2, le=50)
    seed: int = param(0, ge=0, le=2**31 - 1)


QUICK = {"max_rows": 1000, "grid_size": 100, "eg_max_iter": 3, "library_check": "baseline"}

NOTES = (
    "Adult by {adult_group}: the unmitigated model has accuracy {adult_baseline_accuracy:.3f}, "
    "DP difference {adult_baseline_dp_diff:.3f} (ratio {adult_baseline_dp_ratio:.2f}: "
    "{adult_four_fifths} the four-fifths rule) and EO difference {adult_baseline_eo_diff:.3f}.",
    "COMPAS decile >= 5 on the test rows: FPR {compas_score_fpr_hi:.1%} for "
    "{compas_score_fpr_hi_group} against {compas_score_fpr_lo:.1%}, while within each score "
    "bin holding at least 20 people of each group the two re-arrest rates differ by "
    "{compas_score_calibration_gap_mean:.1%} on average (at most "
    "{compas_score_calibration_gap:.1%}).",
    "Lowest EO difference: Adult {adult_best_eo_method} ({adult_best_eo_diff:.3f} at accuracy "
    "{adult_best_eo_accuracy:.3f}), COMPAS {compas_best_eo_method} ({compas_best_eo_diff:.3f} "
    "at accuracy {compas_best_eo_accuracy:.3f}).",
    "Against fairlearn: our group-threshold predictions equal ThresholdOptimizer's on "
    "{threshold_agreement:.1%} of test rows (worst dataset and constraint); our rates and "
    "disparities differ from MetricFrame's and its functions' by at most {max_metric_gap:.1e}.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    tasks = [parts.adult_task(config.adult_group, config.max_rows, config.seed),
             parts.compas_task(config.compas_test_size, config.max_rows, config.seed)]  # fmt: skip
    metrics: dict = {"adult_group": config.adult_group}
    methods, per_group, curves = [], [], {}
    for task in ctx.track(tasks, "audit and mitigate"):
        preds, scores, agreement = _mitigate(task, config, ctx)
        rows = _score_methods(task, preds)
        methods += rows
        per_group += _per_group(task, preds)
        checked = preds if config.library_check == "all" else {"baseline": preds["baseline"]}
        metrics |= _summary(task.name, rows) | agreement | _library_gaps(task, checked)
        curves[f"{task.name}: logistic regression"] = ref.calibration_by_group(
            task.y_test, scores, task.a_test, config.calibration_bins)  # fmt: skip
    compas = tasks[1]
    curves[COMPAS_CURVE] = ref.calibration_by_group(
        compas.y_test, compas.extra["decile"] / 10, compas.a_test, 10)  # fmt: skip
    metrics |= _compas_score(compas, curves[COMPAS_CURVE])
    metrics |= _overall(metrics)
    parts.tradeoff_figure(methods, ctx)
    parts.calibration_figure(curves, ctx)
    _write_report(ctx, methods, per_group, curves)
    return LabResult(
        metrics=metrics,
        key_metric="adult_baseline_dp_diff",
        library_metric="adult_baseline_dp_diff_fairlearn",
        tables={"methods": methods, "per_group": per_group},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _logistic(config: Config):
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=config.C, max_iter=2000)


def _mitigate(task: parts.Task, config: Config, ctx: RunContext) -> tuple[dict, np.ndarray, dict]:
    """Test-set 0/1 predictions of every method, the baseline's scores, and the agreement of
    our group thresholds with fairlearn's ThresholdOptimizer."""
    from fairlearn.postprocessing import ThresholdOptimizer
    from fairlearn.reductions import DemographicParity, EqualizedOdds, ExponentiatedGradient

    Xtr, ytr, atr, Xte, ate = task.X_train, task.y_train, task.a_train, task.X_test, task.a_test
    base = _logistic(config).fit(Xtr, ytr)
    scores_tr, scores = base.predict_proba(Xtr)[:, 1], base.predict_proba(Xte)[:, 1]
    preds = {"baseline": (scores >= 0.5).astype(np.int64)}
    w = mit.reweighing_weights(ytr, atr)
    preds["reweighing"] = _logistic(config).fit(Xtr, ytr, sample_weight=w).predict(Xte)
    agreement = {}
    for short, constraint in (("dp", "demographic_parity"), ("eo", "equalized_odds")):
        try:
            rules = mit.fit_group_thresholds(scores_tr, ytr, atr, constraint, config.grid_size)
        except ValueError as exc:
            msg = f"{task.name}: {exc}; use more rows (max_rows) or adult_group=sex"
            raise AiroadError(msg) from None
        preds[f"threshold_{short}"] = mit.predict_groups(rules, scores, ate, config.seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # fairlearn warns that a prefit model is reused
            lib = ThresholdOptimizer(
                estimator=base,
                constraints=constraint,
                prefit=True,
                predict_method="predict_proba",
                grid_size=config.grid_size,
            )
            lib_pred = lib.fit(Xtr, ytr, sensitive_features=atr).predict(
                Xte, sensitive_features=ate, random_state=config.seed)  # fmt: skip
        agreement[f"{task.name}_threshold_{short}_agreement"] = float(
            np.mean(lib_pred == preds[f"threshold_{short}"]))  # fmt: skip
    for short, moment in (("dp", DemographicParity), ("eo", EqualizedOdds)):
        with ctx.step(f"{task.name}: exponentiated gradient ({short})"):
            eg = ExponentiatedGradient(_logistic(config), moment(), eps=config.eg_eps,
                                       max_iter=config.eg_max_iter)  # fmt: skip
            eg.fit(Xtr, ytr, sensitive_features=atr)
            preds[f"expgrad_{short}"] = np.asarray(eg.predict(Xte, random_state=config.seed))
    if "decile" in task.extra:
        preds["compas_score"] = (task.extra["decile"] >= 5).astype(np.int64)
    return preds, scores, agreement


def _score_methods(task: parts.Task, preds: dict) -> list[dict]:
    """One row per method: accuracy and the four disparities (ours) on the test rows."""
    y, a = task.y_test, task.a_test
    return [{"dataset": task.name, "method": name, "accuracy": ref.accuracy(y, p),
             "dp_diff": ref.demographic_parity_difference(y, p, a),
             "dp_ratio": ref.demographic_parity_ratio(y, p, a),
             "eo_diff": ref.equalized_odds_difference(y, p, a),
             "eo_ratio": ref.equalized_odds_ratio(y, p, a)}
            for name, p in preds.items()]  # fmt: skip


def _per_group(task: parts.Task, preds: dict) -> list[dict]:
    """One row per method and group: size, base rate and the four rates (ours)."""
    y, a = task.y_test, task.a_test
    rows = []
    for name, p in preds.items():
        rates = {r: ref.by_group(getattr(ref, r), y, p, a) for r in RATES}
        for g in rates["accuracy"]:
            rows.append({"dataset": task.name, "method": name, "group": g,
                         "n": int((a == g).sum()), "base_rate": float(y[a == g].mean()),
                         **{r: rates[r][g] for r in RATES}})  # fmt: skip
    return rows


def _library_gaps(task: parts.Task, preds: dict) -> dict:
    """Largest |ours - fairlearn| over every method's rates and disparities."""
    import fairlearn.metrics as flm
    from sklearn.metrics import accuracy_score

    y, a, gaps = task.y_test, task.a_test, [0.0]
    lib_rates = {"selection_rate": flm.selection_rate, "true_positive_rate":
                 flm.true_positive_rate, "false_positive_rate": flm.false_positive_rate,
                 "accuracy": accuracy_score}  # fmt: skip
    for p in preds.values():
        frame = flm.MetricFrame(metrics=lib_rates, y_true=y, y_pred=p, sensitive_features=a)
        for r in RATES:
            ours = np.array(list(ref.by_group(getattr(ref, r), y, p, a).values()))
            gaps.append(float(np.max(np.abs(ours - frame.by_group[r].to_numpy(float)))))
        for d in DISPARITIES:
            lib = getattr(flm, d)(y, p, sensitive_features=a)
            gaps.append(abs(getattr(ref, d)(y, p, a) - lib))
    dp_lib = flm.demographic_parity_difference(y, preds["baseline"], sensitive_features=a)
    return {f"{task.name}_max_metric_gap": max(gaps),
            f"{task.name}_baseline_dp_diff_fairlearn": float(dp_lib)}  # fmt: skip


def _summary(name: str, rows: list[dict]) -> dict:
    """Flat metrics of every method, the four-fifths verdict and the fairest method by EO."""
    out = {
        f"{name}_{r['method']}_{k}": r[k] for r in rows for k in r if k not in ("dataset", "method")
    }
    out[f"{name}_four_fifths"] = "passes" if out[f"{name}_baseline_dp_ratio"] >= 0.8 else "fails"
    best = min((r for r in rows if r["method"] != "compas_score"), key=lambda r: r["eo_diff"])
    out |= {
        f"{name}_best_eo_method": parts.METHOD_LABELS[best["method"]],
        f"{name}_best_eo_diff": best["eo_diff"],
        f"{name}_best_eo_accuracy": best["accuracy"],
    }
    return out


def _compas_score(task: parts.Task, curve: dict) -> dict:
    """ProPublica's finding in two numbers: FPR by group, and the calibration gap per bin."""
    p = (task.extra["decile"] >= 5).astype(np.int64)
    fpr = ref.by_group(ref.false_positive_rate, task.y_test, p, task.a_test)
    hi, lo = max(fpr, key=fpr.get), min(fpr, key=fpr.get)
    (_, r0, c0), (_, r1, c1) = curve.values()
    big = (c0 >= 20) & (c1 >= 20)
    if not big.any():
        raise AiroadError("no COMPAS score bin has 20 people of each group: lower compas_test_size")
    gaps, n = np.abs(r0 - r1)[big], (c0 + c1)[big]
    return {"compas_score_fpr_hi_group": str(hi), "compas_score_fpr_hi": fpr[hi],
            "compas_score_fpr_lo": fpr[lo], "compas_score_calibration_gap": float(gaps.max()),
            "compas_score_calibration_gap_mean": float(np.average(gaps, weights=n))}  # fmt: skip


def _overall(metrics: dict) -> dict:
    """The worst agreement and the largest library gap over both datasets."""
    return {
        "threshold_agreement": min(v for k, v in metrics.items() if k.endswith("_agreement")),
        "max_metric_gap": max(v for k, v in metrics.items() if k.endswith("_max_metric_gap")),
    }


def _write_report(ctx: RunContext, methods: list, per_group: list, curves: dict) -> None:
    """audit.md in the run folder: methods, per-group rates, calibration bins."""
    calib = [{"scorer": title, "group": g, "bin": i + 1, "n": int(c[i]),
              "mean_score": float(s[i]), "positive_rate": float(r[i])}
             for title, by_group in curves.items() for g, (s, r, c) in by_group.items()
             for i in range(len(c)) if c[i] > 0]  # fmt: skip
    parts.write_audit(ctx.out_dir / "audit.md", [
        ("Accuracy and disparity by method", "Test rows; DP = demographic parity (selection "
         "rates), EO = equalised odds (the worse of the TPR and FPR gaps).", methods),
        ("Rates per group", "Selection rate, true and false positive rates and accuracy of "
         "every method within each group.", per_group),
        ("Calibration per group", "Within each score bin, the share of positives per group: "
         "a calibrated score has it close to the mean score.", calib),
    ])  # fmt: skip
