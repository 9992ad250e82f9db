"""Runner for hypothesis-testing: did Titanic passengers who paid more survive more?

EDA figures, then our Welch t-test, permutation test, chi-square tests, an exact binomial test
and Bayes' theorem, each beside scipy.stats (or the direct frequency) on the same data. Every
conclusion is computed from a p-value and alpha, never written in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from airoad.data import load
from airoad.foundations import hypothesis_testing as ref
from airoad.labs.contract import LabResult, RunContext

PASSENGER_CLASSES = ("1st", "2nd", "3rd")


@dataclass(frozen=True)
class Config:
    passengers_only: bool = True  # crew rows have fare 0: they paid nothing, so leave them out
    alpha: float = 0.05
    n_permutations: int = 20_000
    fare_bins: int = 5  # quantile bins for the survival-by-fare figure
    seed: int = 0


QUICK = {"n_permutations": 1000}


def _decision(p: float, alpha: float) -> str:
    return "reject H0" if p < alpha else "do not reject H0"


def _tests(df: pd.DataFrame, config: Config, ctx: RunContext) -> tuple[list[dict], dict]:
    """Run every test with our code and with scipy; one table row per test."""
    from scipy import stats

    surv = df["survived"].to_numpy() == 1
    fare = df["fare"].to_numpy(dtype=float)
    first = (df["class"] == "1st").to_numpy()
    extras: dict = {}

    def welch(x: np.ndarray) -> dict:
        ours = ref.welch_t_test(x[surv], x[~surv])
        lib = stats.ttest_ind(x[surv], x[~surv], equal_var=False)
        return {
            "stat_ours": ours.statistic,
            "stat_scipy": float(lib.statistic),
            "df": ours.df,
            "p_ours": ours.pvalue,
            "p_scipy": float(lib.pvalue),
        }

    def permutation(x: np.ndarray) -> dict:
        ours = ref.permutation_test(x[surv], x[~surv], config.n_permutations, seed=config.seed)
        lib = stats.permutation_test(
            (x[surv], x[~surv]),
            lambda a, b, axis: a.mean(axis) - b.mean(axis),
            n_resamples=config.n_permutations,
            vectorized=True,
            batch=500,
            rng=config.seed + 1,
        )
        extras["null"], extras["observed"] = lib.null_distribution, float(lib.statistic)
        return {
            "stat_ours": float(x[surv].mean() - x[~surv].mean()),
            "stat_scipy": float(lib.statistic),
            "p_ours": ours,
            "p_scipy": float(lib.pvalue),
        }

    def chi2(col: str) -> dict:
        table, _, _ = ref.contingency_table(df[col].to_numpy(), df["survived"].to_numpy())
        ours = ref.chi2_independence(table)
        stat, p, dof, _ = stats.chi2_contingency(table, correction=False)
        return {
            "stat_ours": ours.statistic,
            "stat_scipy": float(stat),
            "df": float(ours.dof),
            "p_ours": ours.pvalue,
            "p_scipy": float(p),
        }

    def binomial() -> dict:
        # Exact one-sided test: are 1st-class survivors more than the overall rate predicts?
        k, n, p0 = int(surv[first].sum()), int(first.sum()), float(surv.mean())
        # P(K >= k) summed from the pmf: 1 - cdf(k - 1) would cancel to 0 in this far tail.
        p_ours = float(np.sum(ref.binomial_pmf(np.arange(k, n + 1), n, p0)))
        extras["binom_one_minus_cdf"] = float(1.0 - ref.binomial_cdf(k - 1, n, p0))
        lib = stats.binomtest(k, n, p0, alternative="greater")
        z = (k - 0.5 - n * p0) / np.sqrt(
            n * p0 * (1 - p0)
        )  # normal approximation, continuity-corrected
        extras["binom"] = (k, n, p0, float(ref.normal_cdf(-z)))
        return {
            "stat_ours": float(k),
            "stat_scipy": float(k),
            "p_ours": p_ours,
            "p_scipy": float(lib.pvalue),
        }

    # (short name, what H0 says, how to run it); every H0 is "no difference / no association".
    specs = [
        ("welch fare", "equal mean fare", lambda: welch(fare)),
        ("welch log1p(fare)", "equal mean log fare", lambda: welch(np.log1p(fare))),
        ("permutation fare", "labels exchangeable", lambda: permutation(fare)),
        ("chi2 gender", "survival independent of gender", lambda: chi2("gender")),
        ("chi2 class", "survival independent of class", lambda: chi2("class")),
        ("binomial 1st class", "1st-class rate = overall rate", binomial),
    ]
    rows = []
    for name, h0, fn in ctx.track(specs, "running tests"):
        row = {"test": name, **fn()}
        row["decision"] = _decision(row["p_ours"], config.alpha)
        extras.setdefault("h0", {})[name] = h0
        rows.append(row)
    return rows, extras


def _figures(df: pd.DataFrame, config: Config, ctx: RunContext, extras: dict) -> list:
    import matplotlib.pyplot as plt
    from scipy import stats

    out = []
    surv = df["survived"] == 1
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    bins = np.logspace(np.log10(max(df["fare"].min(), 1.0)), np.log10(df["fare"].max() + 1), 30)
    for mask, label in [(~surv, "died"), (surv, "survived")]:
        left.hist(df.loc[mask, "fare"].clip(lower=1.0), bins=bins, alpha=0.55, label=label)
    left.set(xscale="log", xlabel="fare (log scale)", ylabel="passengers", title="fare by outcome")
    left.legend()
    right.boxplot([df.loc[~surv, "fare"], df.loc[surv, "fare"]], tick_labels=["died", "survived"])
    right.set(yscale="log", ylabel="fare (log scale)", title="fare: median and spread")
    out.append(ctx.save_figure(fig, "fare_by_survival"))

    fig, ax = plt.subplots(figsize=(7, 4))
    rates = df.groupby(["class", "gender"])["survived"].mean().unstack()
    x = np.arange(len(rates))
    for j, gender in enumerate(rates.columns):
        ax.bar(x + (j - 0.5) * 0.4, rates[gender], width=0.4, label=gender)
    ax.axhline(surv.mean(), color="k", ls=":", label="overall")
    ax.set_xticks(x, rates.index, rotation=20)
    ax.set(ylabel="survival rate", title="survival by class and gender")
    ax.legend()
    out.append(ctx.save_figure(fig, "survival_by_class_gender"))

    fig, ax = plt.subplots(figsize=(7, 4))
    bin_of = pd.qcut(df["fare"], config.fare_bins, duplicates="drop")
    g = df.groupby(bin_of, observed=True)["survived"].agg(["mean", "size"])
    se = np.sqrt(g["mean"] * (1 - g["mean"]) / g["size"])  # binomial standard error
    ax.errorbar(np.arange(len(g)), g["mean"], yerr=1.96 * se, fmt="o-", capsize=5)
    ax.set_xticks(np.arange(len(g)), [str(i) for i in g.index], rotation=20, fontsize=8)
    ax.set(
        xlabel="fare quantile bin",
        ylabel="survival rate (95% CI)",
        title="survival rate by fare quantile",
    )
    out.append(ctx.save_figure(fig, "survival_by_fare_bin"))

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.hist(extras["null"], bins=50, color="grey", alpha=0.7, label="permuted differences (H0)")
    ax.axvline(extras["observed"], color="r", label=f"observed {extras['observed']:.1f}")
    ax.set(xlabel="mean fare survived - mean fare died", title="permutation null distribution")
    ax.legend()
    out.append(ctx.save_figure(fig, "permutation_null"))

    k, n, p0, _ = extras["binom"]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    z = np.linspace(-4, 4, 200)
    left.plot(z, ref.normal_pdf(z), lw=3, alpha=0.5, label="ours pdf")
    left.plot(z, stats.norm.pdf(z), "k--", label="scipy pdf")
    left.plot(z, ref.normal_cdf(z), lw=3, alpha=0.5, label="ours cdf")
    left.plot(z, stats.norm.cdf(z), "k:", label="scipy cdf")
    left.set(title="standard normal", xlabel="z")
    left.legend(fontsize=8)
    ks = np.arange(n + 1)
    right.bar(
        ks,
        ref.binomial_pmf(ks, n, p0),
        width=1.0,
        alpha=0.6,
        label=f"ours: Binomial({n}, {p0:.3f})",
    )
    right.plot(ks, stats.binom.pmf(ks, n, p0), "k.", ms=2, label="scipy pmf")
    right.axvline(k, color="r", label=f"observed 1st-class survivors = {k}")
    right.set(xlabel="survivors among 1st class under H0", title="exact binomial test")
    right.legend(fontsize=8)
    out.append(ctx.save_figure(fig, "distributions"))
    return out


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    titanic = load("titanic")
    df = titanic[titanic["class"].isin(PASSENGER_CLASSES)] if config.passengers_only else titanic
    df = df.reset_index(drop=True)

    rows, extras = _tests(df, config, ctx)
    figures = _figures(df, config, ctx, extras)

    surv, first = df["survived"] == 1, df["class"] == "1st"
    female = df["gender"] == "female"
    bayes_rows = []
    for label, b in [("1st class", first), ("female", female)]:
        post = float(ref.bayes_posterior(surv.mean(), b[surv].mean(), b[~surv].mean()))
        bayes_rows.append(
            {
                "P(survived | B)": label,
                "prior P(survived)": float(surv.mean()),
                "P(B | survived)": float(b[surv].mean()),
                "P(B | died)": float(b[~surv].mean()),
                "bayes": post,
                "direct frequency": float(surv[b].mean()),
            }
        )

    welch, perm = rows[0], rows[2]
    k, n, p0, p_normal = extras["binom"]
    metrics = {
        "n_rows": len(df),
        "mean_fare_survived": float(df.loc[surv, "fare"].mean()),
        "mean_fare_died": float(df.loc[~surv, "fare"].mean()),
        "ours_welch_t": welch["stat_ours"],
        "scipy_welch_t": welch["stat_scipy"],
        "welch_df": welch["df"],
        "ours_welch_p": welch["p_ours"],
        "scipy_welch_p": welch["p_scipy"],
        "ours_log_fare_p": rows[1]["p_ours"],
        "ours_permutation_p": perm["p_ours"],
        "scipy_permutation_p": perm["p_scipy"],
        "ours_chi2_gender": rows[3]["stat_ours"],
        "ours_chi2_gender_p": rows[3]["p_ours"],
        "scipy_chi2_gender_p": rows[3]["p_scipy"],
        "ours_chi2_class": rows[4]["stat_ours"],
        "ours_chi2_class_p": rows[4]["p_ours"],
        "scipy_chi2_class_p": rows[4]["p_scipy"],
        "ours_binomial_p": rows[5]["p_ours"],
        "scipy_binomial_p": rows[5]["p_scipy"],
        "normal_approx_binomial_p": p_normal,
        "binomial_p_as_one_minus_cdf": extras["binom_one_minus_cdf"],
        "bayes_p_survived_given_1st": bayes_rows[0]["bayes"],
        "direct_p_survived_given_1st": bayes_rows[0]["direct frequency"],
        "alpha": config.alpha,
        "fare_conclusion": welch["decision"],
    }
    diff = metrics["mean_fare_survived"] - metrics["mean_fare_died"]
    notes = [
        f"{r['test']} (H0: {extras['h0'][r['test']]}): p = {r['p_ours']:.3g} "
        f"(scipy {r['p_scipy']:.3g}) -> {r['decision']} at alpha = {config.alpha}"
        for r in rows
    ]
    notes.insert(
        0,
        (
            f"Survivors paid {diff:+.2f} on average ({metrics['mean_fare_survived']:.2f} vs "
            f"{metrics['mean_fare_died']:.2f}); Welch p = {welch['p_ours']:.3g}, so we "
            f"{welch['decision']}: "
            + (
                "paying more went with surviving more (an association: fare "
                "tracks class and class tracks deck position)."
                if welch["p_ours"] < config.alpha and diff > 0
                else "these data do not show that paying more helped."
            )
        ),
    )
    notes.append(
        f"Binomial test: {k} of {n} 1st-class passengers survived vs {n * p0:.1f} expected "
        f"at the overall rate {p0:.3f}; normal approximation p = {p_normal:.3g}."
    )
    notes.append(
        f"Bayes: P(survived | 1st class) = {bayes_rows[0]['bayes']:.4f}, direct count "
        f"{bayes_rows[0]['direct frequency']:.4f}."
    )
    return LabResult(
        metrics=metrics,
        key_metric="ours_welch_p",
        library_metric="scipy_welch_p",
        tables={"tests": rows, "bayes": bayes_rows},
        figures=figures,
        notes=notes,
    )
