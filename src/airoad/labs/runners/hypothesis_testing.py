"""Runner for hypothesis-testing: did Titanic passengers who paid more survive more?

EDA figures, then our Welch t-test, permutation test, chi-square tests, an exact binomial test
and Bayes' theorem, each beside scipy.stats (or the direct frequency) on the same data. Every
conclusion is computed from a p-value and alpha, never written in."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from airoad.data import load
from airoad.foundations import hypothesis_testing as ref
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes

PASSENGER_CLASSES = ("1st", "2nd", "3rd")


@dataclass(frozen=True)
class Config:
    passengers_only: bool = True  # crew rows have fare 0: they paid nothing, so leave them out
    alpha: float = param(0.05, gt=0.0, lt=1.0)
    n_permutations: int = param(20_000, ge=100, le=1_000_000)
    fare_bins: int = param(5, ge=2, le=20)  # quantile bins for the survival-by-fare figure
    seed: int = param(0, ge=0)


QUICK = {"n_permutations": 1000}

# One note per test, in the order of the tests table; `{<test>_...}` values come from its row.
NOTES = (
    "Survivors paid {fare_diff:+.2f} on average ({mean_fare_survived:.2f} vs "
    "{mean_fare_died:.2f}); Welch p = {ours_welch_p:.3g}, so we {fare_conclusion}: {fare_reading}",
    "welch fare (H0: equal mean fare): p = {welch_fare_p_ours:.3g} "
    "(scipy {welch_fare_p_scipy:.3g}) -> {welch_fare_decision} at alpha = {alpha}",
    "welch log1p(fare) (H0: equal mean log fare): p = {welch_log1p_fare_p_ours:.3g} "
    "(scipy {welch_log1p_fare_p_scipy:.3g}) -> {welch_log1p_fare_decision} at alpha = {alpha}",
    "permutation fare (H0: labels exchangeable): p = {permutation_fare_p_ours:.3g} "
    "(scipy {permutation_fare_p_scipy:.3g}) -> {permutation_fare_decision} at alpha = {alpha}",
    "chi2 gender (H0: survival independent of gender): p = {chi2_gender_p_ours:.3g} "
    "(scipy {chi2_gender_p_scipy:.3g}) -> {chi2_gender_decision} at alpha = {alpha}",
    "chi2 class (H0: survival independent of class): p = {chi2_class_p_ours:.3g} "
    "(scipy {chi2_class_p_scipy:.3g}) -> {chi2_class_decision} at alpha = {alpha}",
    "binomial 1st class (H0: 1st-class rate = overall rate): p = "
    "{binomial_1st_class_p_ours:.3g} (scipy {binomial_1st_class_p_scipy:.3g}) -> "
    "{binomial_1st_class_decision} at alpha = {alpha}",
    "Binomial test: {binom_k} of {binom_n} 1st-class passengers survived vs {binom_expected:.1f} "
    "expected at the overall rate {binom_p0:.3f}; normal approximation p = "
    "{normal_approx_binomial_p:.3g}.",
    "Bayes: P(survived | 1st class) = {bayes_p_survived_given_1st:.4f}, direct count "
    "{direct_p_survived_given_1st:.4f}.",
)
ASSOCIATION = (
    "paying more went with surviving more (an association: fare tracks class and class tracks "
    "deck position)."
)
NO_EVIDENCE = "these data do not show that paying more helped."


def _decision(p: float, alpha: float) -> str:
    return "reject H0" if p < alpha else "do not reject H0"


def _welch(x: np.ndarray, surv: np.ndarray) -> tuple[dict, dict]:
    from scipy import stats

    ours = ref.welch_t_test(x[surv], x[~surv])
    lib = stats.ttest_ind(x[surv], x[~surv], equal_var=False)
    row = {
        "stat_ours": ours.statistic,
        "stat_scipy": float(lib.statistic),
        "df": ours.df,
        "p_ours": ours.pvalue,
        "p_scipy": float(lib.pvalue),
    }
    return row, {}


def _permutation(x: np.ndarray, surv: np.ndarray, config: Config) -> tuple[dict, dict]:
    from scipy import stats

    ours = ref.permutation_test(x[surv], x[~surv], config.n_permutations, seed=config.seed)
    lib = stats.permutation_test(
        (x[surv], x[~surv]),
        lambda a, b, axis: a.mean(axis) - b.mean(axis),
        n_resamples=config.n_permutations,
        vectorized=True,
        batch=500,
        rng=config.seed + 1,
    )
    row = {
        "stat_ours": float(x[surv].mean() - x[~surv].mean()),
        "stat_scipy": float(lib.statistic),
        "p_ours": ours,
        "p_scipy": float(lib.pvalue),
    }
    return row, {"null": lib.null_distribution, "observed": float(lib.statistic)}


def _chi2(df: pd.DataFrame, col: str) -> tuple[dict, dict]:
    from scipy import stats

    table, _, _ = ref.contingency_table(df[col].to_numpy(), df["survived"].to_numpy())
    ours = ref.chi2_independence(table)
    stat, p, _, _ = stats.chi2_contingency(table, correction=False)
    row = {
        "stat_ours": ours.statistic,
        "stat_scipy": float(stat),
        "df": float(ours.dof),
        "p_ours": ours.pvalue,
        "p_scipy": float(p),
    }
    return row, {}


def _binomial(surv: np.ndarray, first: np.ndarray) -> tuple[dict, dict]:
    """Exact one-sided test: are 1st-class survivors more than the overall rate predicts?"""
    from scipy import stats

    k, n, p0 = int(surv[first].sum()), int(first.sum()), float(surv.mean())
    # P(K >= k) summed from the pmf: 1 - cdf(k - 1) would cancel to 0 in this far tail.
    p_ours = float(np.sum(ref.binomial_pmf(np.arange(k, n + 1), n, p0)))
    lib = stats.binomtest(k, n, p0, alternative="greater")
    z = (k - 0.5 - n * p0) / np.sqrt(n * p0 * (1 - p0))  # normal approximation, continuity-corr.
    pvalue = float(lib.pvalue)
    row = {"stat_ours": float(k), "stat_scipy": float(k), "p_ours": p_ours, "p_scipy": pvalue}
    extras = {
        "binom": (k, n, p0, float(ref.normal_cdf(-z))),
        "binom_one_minus_cdf": float(1.0 - ref.binomial_cdf(k - 1, n, p0)),
    }
    return row, extras


def _tests(df: pd.DataFrame, config: Config, ctx: RunContext) -> tuple[list[dict], dict]:
    """Run every test with our code and with scipy; one table row per test, decided from p."""
    surv = df["survived"].to_numpy() == 1
    fare = df["fare"].to_numpy(dtype=float)
    first = (df["class"] == "1st").to_numpy()
    # Every H0 is "no difference / no association"; NOTES spells each one out.
    specs = [
        ("welch fare", lambda: _welch(fare, surv)),
        ("welch log1p(fare)", lambda: _welch(np.log1p(fare), surv)),
        ("permutation fare", lambda: _permutation(fare, surv, config)),
        ("chi2 gender", lambda: _chi2(df, "gender")),
        ("chi2 class", lambda: _chi2(df, "class")),
        ("binomial 1st class", lambda: _binomial(surv, first)),
    ]
    rows, extras = [], {}
    for name, fn in ctx.track(specs, "running tests"):
        row, extra = fn()
        rows.append({"test": name, **row, "decision": _decision(row["p_ours"], config.alpha)})
        extras |= extra
    return rows, extras


def _bayes(df: pd.DataFrame) -> list[dict]:
    """P(survived | B) by Bayes' theorem beside the direct frequency, for two events B."""
    surv, first, female = df["survived"] == 1, df["class"] == "1st", df["gender"] == "female"
    rows = []
    for label, b in [("1st class", first), ("female", female)]:
        post = float(ref.bayes_posterior(surv.mean(), b[surv].mean(), b[~surv].mean()))
        rows.append(
            {
                "P(survived | B)": label,
                "prior P(survived)": float(surv.mean()),
                "P(B | survived)": float(b[surv].mean()),
                "P(B | died)": float(b[~surv].mean()),
                "bayes": post,
                "direct frequency": float(surv[b].mean()),
            }
        )
    return rows


def _metrics(df: pd.DataFrame, rows: list[dict], bayes: list[dict], extras: dict, alpha: float):
    surv = df["survived"] == 1
    by_test = {r["test"]: r for r in rows}
    welch, perm = by_test["welch fare"], by_test["permutation fare"]
    gender, klass = by_test["chi2 gender"], by_test["chi2 class"]
    binomial = by_test["binomial 1st class"]
    return {
        "n_rows": len(df),
        "mean_fare_survived": float(df.loc[surv, "fare"].mean()),
        "mean_fare_died": float(df.loc[~surv, "fare"].mean()),
        "ours_welch_t": welch["stat_ours"],
        "scipy_welch_t": welch["stat_scipy"],
        "welch_df": welch["df"],
        "ours_welch_p": welch["p_ours"],
        "scipy_welch_p": welch["p_scipy"],
        "ours_log_fare_p": by_test["welch log1p(fare)"]["p_ours"],
        "ours_permutation_p": perm["p_ours"],
        "scipy_permutation_p": perm["p_scipy"],
        "ours_chi2_gender": gender["stat_ours"],
        "ours_chi2_gender_p": gender["p_ours"],
        "scipy_chi2_gender_p": gender["p_scipy"],
        "ours_chi2_class": klass["stat_ours"],
        "ours_chi2_class_p": klass["p_ours"],
        "scipy_chi2_class_p": klass["p_scipy"],
        "ours_binomial_p": binomial["p_ours"],
        "scipy_binomial_p": binomial["p_scipy"],
        "normal_approx_binomial_p": extras["binom"][3],
        "binomial_p_as_one_minus_cdf": extras["binom_one_minus_cdf"],
        "bayes_p_survived_given_1st": bayes[0]["bayes"],
        "direct_p_survived_given_1st": bayes[0]["direct frequency"],
        "alpha": alpha,
        "fare_conclusion": welch["decision"],
    }


def _note_values(rows: list[dict], metrics: dict, extras: dict) -> dict:
    """What NOTES needs beyond the metrics: each test's p-values and decision, the reading."""
    values = {}
    for r in rows:
        key = re.sub(r"[^a-z0-9]+", "_", r["test"]).strip("_")
        values |= {f"{key}_{f}": r[f] for f in ("p_ours", "p_scipy", "decision")}
    diff = metrics["mean_fare_survived"] - metrics["mean_fare_died"]
    helped = metrics["ours_welch_p"] < metrics["alpha"] and diff > 0
    k, n, p0, _ = extras["binom"]
    return values | {
        "fare_diff": diff,
        "fare_reading": ASSOCIATION if helped else NO_EVIDENCE,
        "binom_k": k,
        "binom_n": n,
        "binom_p0": p0,
        "binom_expected": n * p0,
    }


def _fare_figure(df: pd.DataFrame, ctx: RunContext) -> None:
    surv = df["survived"] == 1
    with figure(ctx, "fare_by_survival", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        bins = np.logspace(np.log10(max(df["fare"].min(), 1.0)), np.log10(df["fare"].max() + 1), 30)
        for mask, label in [(~surv, "died"), (surv, "survived")]:
            left.hist(df.loc[mask, "fare"].clip(lower=1.0), bins=bins, alpha=0.55, label=label)
        left.set(
            xscale="log", xlabel="fare (log scale)", ylabel="passengers", title="fare by outcome"
        )
        left.legend()
        fares = [df.loc[~surv, "fare"], df.loc[surv, "fare"]]
        right.boxplot(fares, tick_labels=["died", "survived"])
        right.set(yscale="log", ylabel="fare (log scale)", title="fare: median and spread")


def _class_gender_figure(df: pd.DataFrame, ctx: RunContext) -> None:
    with figure(ctx, "survival_by_class_gender", figsize=(7, 4)) as (_, ax):
        rates = df.groupby(["class", "gender"])["survived"].mean().unstack()
        x = np.arange(len(rates))
        for j, gender in enumerate(rates.columns):
            ax.bar(x + (j - 0.5) * 0.4, rates[gender], width=0.4, label=gender)
        ax.axhline((df["survived"] == 1).mean(), color="k", ls=":", label="overall")
        ax.set_xticks(x, rates.index, rotation=20)
        ax.set(ylabel="survival rate", title="survival by class and gender")
        ax.legend()


def _fare_bin_figure(df: pd.DataFrame, fare_bins: int, ctx: RunContext) -> None:
    with figure(ctx, "survival_by_fare_bin", figsize=(7, 4)) as (_, ax):
        bin_of = pd.qcut(df["fare"], fare_bins, duplicates="drop")
        g = df.groupby(bin_of, observed=True)["survived"].agg(["mean", "size"])
        se = np.sqrt(g["mean"] * (1 - g["mean"]) / g["size"])  # binomial standard error
        ax.errorbar(np.arange(len(g)), g["mean"], yerr=1.96 * se, fmt="o-", capsize=5)
        ax.set_xticks(np.arange(len(g)), [str(i) for i in g.index], rotation=20, fontsize=8)
        ax.set(
            xlabel="fare quantile bin",
            ylabel="survival rate (95% CI)",
            title="survival rate by fare quantile",
        )


def _null_figure(extras: dict, ctx: RunContext) -> None:
    with figure(ctx, "permutation_null", figsize=(7, 4)) as (_, ax):
        ax.hist(extras["null"], bins=50, color="grey", alpha=0.7, label="permuted differences (H0)")
        ax.axvline(extras["observed"], color="r", label=f"observed {extras['observed']:.1f}")
        ax.set(xlabel="mean fare survived - mean fare died", title="permutation null distribution")
        ax.legend()


def _distributions_figure(extras: dict, ctx: RunContext) -> None:
    """Our normal pdf/cdf and binomial pmf on top of scipy's, with the observed count."""
    from scipy import stats

    k, n, p0, _ = extras["binom"]
    with figure(ctx, "distributions", 1, 2, figsize=(10, 4)) as (_, (left, right)):
        z = np.linspace(-4, 4, 200)
        left.plot(z, ref.normal_pdf(z), lw=3, alpha=0.5, label="ours pdf")
        left.plot(z, stats.norm.pdf(z), "k--", label="scipy pdf")
        left.plot(z, ref.normal_cdf(z), lw=3, alpha=0.5, label="ours cdf")
        left.plot(z, stats.norm.cdf(z), "k:", label="scipy cdf")
        left.set(title="standard normal", xlabel="z")
        left.legend(fontsize=8)
        ks = np.arange(n + 1)
        pmf = ref.binomial_pmf(ks, n, p0)
        right.bar(ks, pmf, width=1.0, alpha=0.6, label=f"ours: Binomial({n}, {p0:.3f})")
        right.plot(ks, stats.binom.pmf(ks, n, p0), "k.", ms=2, label="scipy pmf")
        right.axvline(k, color="r", label=f"observed 1st-class survivors = {k}")
        right.set(xlabel="survivors among 1st class under H0", title="exact binomial test")
        right.legend(fontsize=8)


def run(config: Config, ctx: RunContext) -> LabResult:
    titanic = load("titanic")
    df = titanic[titanic["class"].isin(PASSENGER_CLASSES)] if config.passengers_only else titanic
    df = df.reset_index(drop=True)

    rows, extras = _tests(df, config, ctx)
    bayes_rows = _bayes(df)
    metrics = _metrics(df, rows, bayes_rows, extras, config.alpha)

    _fare_figure(df, ctx)
    _class_gender_figure(df, ctx)
    _fare_bin_figure(df, config.fare_bins, ctx)
    _null_figure(extras, ctx)
    _distributions_figure(extras, ctx)

    values = {**asdict(config), **metrics, **_note_values(rows, metrics, extras)}
    return LabResult(
        metrics=metrics,
        key_metric="ours_welch_p",
        library_metric="scipy_welch_p",
        tables={"tests": rows, "bayes": bayes_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, values),
    )
