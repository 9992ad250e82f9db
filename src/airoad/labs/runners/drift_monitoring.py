"""Runner for drift-monitoring: stream Adult rows past a deployed model and catch drift.

A logistic regression is trained on one part of Adult; a second, held-out part is the
monitors' reference. Simulated streams (no drift, an older population, a new workclass mix, a
concept shift in the label) go through an input monitor (KS / chi-square per feature and on
the prediction, Bonferroni over features) and a performance monitor (chi-square on how often
the model is right, once labels arrive), a sliding window checked every `step` rows. We
measure detection delay and false-alarm rate, and check our tests against scipy on a window."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, figure, param, render_notes
from airoad.labs.runners import drift_monitoring_parts as parts
from airoad.production import drift_monitoring as ref

ADULT_ROWS = 48_842  # both Adult files


@dataclass(frozen=True)
class Config:
    n_fit: int = param(10_000, ge=1_000, le=30_000)  # rows that train the model
    n_reference: int = param(3_000, ge=200, le=10_000)  # held-out rows the monitors compare to
    window: int = param(500, ge=50, le=5_000)  # rows in the sliding window
    step: int = param(100, ge=10, le=1_000)  # rows between two checks
    stream_rows: int = param(3_000, ge=200, le=10_000)
    change_at: int = param(1_500, ge=50, le=9_000)  # rows before the drift starts
    seeds: int = param(5, ge=1, le=30)  # streams per drift scenario
    null_seeds: int = param(10, ge=1, le=50)  # no-drift streams for the false-alarm rate
    alpha: float = param(0.05, gt=0.0, lt=0.5)  # family-wise level of one check
    patience: int = param(2, ge=1, le=20)  # flagged checks in a row that raise an alarm
    age_shift: float = param(0.3, gt=0.0, le=3.0)  # tilt towards older people after the change
    mix_factor: float = param(3.0, gt=1.0, le=50.0)  # non-Private workclasses this much likelier
    concept_flip: float = param(0.3, gt=0.0, le=1.0)  # share of labels flipped after the change
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        config_check(self.window <= self.change_at, "change_at", "must be >= window")
        config_check(self.change_at < self.stream_rows, "change_at", "must be < stream_rows")
        spare = ADULT_ROWS - self.n_fit - self.n_reference
        config_check(self.stream_rows <= spare, "stream_rows", f"must be <= {spare} here")


QUICK = {
    "n_fit": 3_000,
    "n_reference": 800,
    "window": 200,
    "step": 100,
    "stream_rows": 800,
    "change_at": 400,
    "seeds": 2,
    "null_seeds": 2,
}

NOTES = (
    "Age shift: the input monitor caught {age_input_detected:.0%} of streams, median "
    "{age_input_delay:.0f} rows after the change (window {window}, a check every {step} rows).",
    "Workclass mix: caught {mix_input_detected:.0%}, median delay {mix_input_delay:.0f} rows.",
    "Concept shift ({concept_flip:.0%} of labels flipped): input monitor {concept_input_detected:.0%}"
    ", performance monitor {concept_performance_detected:.0%} (median delay "
    "{concept_performance_delay:.0f} rows): {concept_seen_by}.",
    "No drift, {null_seeds} streams: {null_input_check_rate:.1%} of checks flagged with Bonferroni"
    " over {n_watched} features ({null_input_check_rate_raw:.1%} without); "
    "{null_input_stream_rate:.0%} of streams raised at least one false alarm.",
    "Our KS / chi-square p-values equal scipy's to {max_p_rel_diff:.1e} relative on a window.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    frame, y, pred, reference, pool = _prepare(config, ctx)
    runs = _streams(frame, y, pred, reference, pool, config, ctx)
    detection, metrics = _detection_table(runs, config)
    false_alarms, null_metrics = _false_alarm_table(runs["no drift"], config)
    patience = _patience_table(runs, config)
    scipy_rows, scipy_metrics = _scipy_check(frame, y, pred, reference, pool, config)
    metrics |= null_metrics | scipy_metrics | {"n_watched": len(parts.WATCHED)}
    metrics["concept_seen_by"] = _seen_by(metrics)
    _pvalue_figure(runs, config, ctx)
    _psi_figure(runs, config, ctx)
    _null_figure(runs["no drift"], config, ctx)
    return LabResult(
        metrics=metrics,
        key_metric="ours_age_ks_p",
        library_metric="scipy_age_ks_p",
        tables={
            "detection": detection,
            "false_alarms": false_alarms,
            "patience": patience,
            "vs_scipy": scipy_rows,
        },  # fmt: skip
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _prepare(config: Config, ctx: RunContext):
    """Split Adult, train the model, predict every row once, build the monitors' reference."""
    frame, y = parts.adult_rows()
    fit, held, pool = parts.split_rows(len(frame), config.n_fit, config.n_reference, config.seed)
    with ctx.step("training the model"):
        model = parts.fit_model(frame.iloc[fit], y[fit])
        pred = model.predict(frame)
    reference = parts.columns_of(frame.iloc[held], pred[held], y[held])
    # Rare categories (e.g. 'Never-worked') may be missing from the reference sample: declare
    # every value the data can take so the monitor counts them instead of refusing them.
    reference["levels"] = {name: sorted(frame[name].unique()) for name in parts.CATEGORICAL}
    return frame, y, pred, reference, pool


def _stream(frame, y, pred, pool, scenario: str, seed: int, config: Config):
    """The monitor columns of one simulated stream (rows drawn from the pool)."""
    rows, labels = parts.stream_rows(scenario, frame.iloc[pool], y[pool], config, seed)
    return parts.columns_of(frame.iloc[pool[rows]], pred[pool[rows]], labels)


def _streams(frame, y, pred, reference, pool, config: Config, ctx: RunContext) -> dict:
    """Scenario -> one list of checks per seeded stream."""
    jobs = [(s, config.null_seeds if s == "no drift" else config.seeds) for s in parts.SCENARIOS]
    jobs = [(s, config.seed * 1000 + i) for s, n in jobs for i in range(n)]
    runs: dict[str, list] = {s: [] for s in parts.SCENARIOS}
    for scenario, seed in ctx.track(jobs, "streaming"):
        stream = _stream(frame, y, pred, pool, scenario, seed, config)
        runs[scenario].append(parts.watch_stream(stream, reference, reference["levels"], config))
    return runs


def _detection_table(runs: dict, config: Config) -> tuple[list[dict], dict]:
    rows, metrics = [], {}
    for scenario, key in [
        ("age shift", "age"),
        ("category mix", "mix"),
        ("concept shift", "concept"),
    ]:
        for kind in ("input", "performance"):
            row = parts.detections(runs[scenario], kind, config.change_at, config.patience)
            rows.append({"scenario": scenario, "monitor": kind, **row})
            metrics[f"{key}_{kind}_detected"] = row["detected"] / row["streams"]
            metrics[f"{key}_{kind}_delay"] = row["median_delay_rows"]  # -1: never detected
    return rows, metrics


def _false_alarm_table(null_runs: list, config: Config) -> tuple[list[dict], dict]:
    """Per-check and per-stream alarm rates on streams with no drift at all."""
    rows, metrics = [], {}
    for kind, names in [("input", parts.WATCHED), ("performance", ("correct",))]:
        checks = [c for stream in null_runs for c in stream]
        raw = np.mean([min(c[f"p_{n}"] for n in names) < config.alpha for c in checks])
        flagged = float(np.mean([c[kind] for c in checks]))
        streams = parts.alarmed_share(null_runs, kind, config.patience)
        rows.append({"monitor": kind, "checks": len(checks), "check_rate_bonferroni": flagged,
                     "check_rate_uncorrected": float(raw), "stream_rate": float(streams)})  # fmt: skip
        metrics |= {f"null_{kind}_check_rate": flagged, f"null_{kind}_stream_rate": float(streams)}
        metrics[f"null_{kind}_check_rate_raw"] = float(raw)
    return rows, metrics


def _patience_table(runs: dict, config: Config) -> list[dict]:
    """The alarm rule's trade-off, replayed on the recorded checks: alarm after p flagged
    checks in a row -> streams with a false alarm vs median delay of the drifts we want."""
    rows = []
    for p in (1, 2, 3, 5):
        row: dict = {"patience": p}
        for kind in ("input", "performance"):
            row[f"null_streams_alarmed_{kind}"] = parts.alarmed_share(runs["no drift"], kind, p)
        for scenario, kind in [("age shift", "input"), ("concept shift", "performance")]:
            found = parts.detections(runs[scenario], kind, config.change_at, p)
            row[f"{scenario} detected"] = found["detected"] / found["streams"]
            row[f"{scenario} median delay"] = found["median_delay_rows"]
        rows.append(row)
    return rows


def _scipy_check(frame, y, pred, reference, pool, config: Config) -> tuple[list[dict], dict]:
    """Each watched feature: our test beside scipy's on the last window of an age-shift stream."""
    from scipy import stats

    window = _stream(frame, y, pred, pool, "age shift", config.seed * 1000, config)["input"]
    rows = []
    for name in parts.WATCHED:
        a, b = reference["input"][name], window[name][-config.window :]
        if name in parts.NUMERIC:
            ours, lib = ref.ks_2samp(a, b), stats.ks_2samp(a, b)
        else:
            levels = np.unique(np.concatenate([a, b]).astype(str))
            table = np.array([[np.sum(v.astype(str) == c) for c in levels] for v in (a, b)])
            ours, lib = ref.chi2_contingency(table), stats.chi2_contingency(table)
        rows.append({"feature": name, "test": "ks" if name in parts.NUMERIC else "chi2",
                     "statistic_ours": ours.statistic, "statistic_scipy": float(lib.statistic),
                     "p_ours": ours.pvalue, "p_scipy": float(lib.pvalue)})  # fmt: skip
    diff = max(abs(r["p_ours"] - r["p_scipy"]) / max(r["p_scipy"], 1e-300) for r in rows)
    return rows, {"ours_age_ks_p": rows[0]["p_ours"], "scipy_age_ks_p": rows[0]["p_scipy"],
                  "max_p_rel_diff": float(diff)}  # fmt: skip


def _seen_by(m: dict) -> str:
    if m["concept_input_detected"] < 0.5 <= m["concept_performance_detected"]:
        return "only the performance monitor sees it"
    if m["concept_input_detected"] >= 0.5:
        return "the input monitor also fired"
    return "neither monitor caught it reliably"


def _pvalue_figure(runs: dict, config: Config, ctx: RunContext) -> None:
    """-log10 p of every watched feature over the first stream of each drift scenario."""
    names = [*parts.WATCHED, "correct"]
    line = -np.log10(config.alpha / len(parts.WATCHED))
    with figure(ctx, "stream_pvalues", 1, 3, figsize=(15, 4.2), sharey=True) as (_, axes):
        for ax, scenario in zip(axes, parts.SCENARIOS[1:]):
            checks = runs[scenario][0]
            rows = [c["row"] for c in checks]
            for name in names:
                p = np.maximum([c[f"p_{name}"] for c in checks], 1e-300)
                ax.plot(rows, -np.log10(p), lw=2.2 if name == "correct" else 1.2, label=name)
            ax.axhline(
                line, color="k", ls=":", label=f"alarm: p < {config.alpha}/{len(parts.WATCHED)}"
            )
            ax.axvline(config.change_at, color="r", ls="--", label="change point")
            ax.set(title=scenario, xlabel="rows streamed", yscale="symlog")
        axes[0].set_ylabel("-log10 p-value (window vs reference)")
        axes[0].legend(fontsize=7)


def _psi_figure(runs: dict, config: Config, ctx: RunContext) -> None:
    """PSI of every watched feature over the same streams, with the usual 0.1 / 0.25 bands."""
    names = [*parts.WATCHED, "correct"]
    with figure(ctx, "stream_psi", 1, 3, figsize=(15, 4.2), sharey=True) as (_, axes):
        for ax, scenario in zip(axes, parts.SCENARIOS[1:]):
            checks = runs[scenario][0]
            rows = [c["row"] for c in checks]
            for name in names:
                ax.plot(rows, [c[f"psi_{name}"] for c in checks], label=name)
            for level in (0.1, 0.25):
                ax.axhline(level, color="grey", ls=":")
            ax.axvline(config.change_at, color="r", ls="--")
            ax.set(title=scenario, xlabel="rows streamed")
        axes[0].set_ylabel("PSI (window vs reference)")
        axes[0].legend(fontsize=7)


def _null_figure(null_runs: list, config: Config, ctx: RunContext) -> None:
    """Histogram of p-values on no-drift streams: uniform would mean exactly alpha per test."""
    with figure(ctx, "null_pvalues", figsize=(7, 4)) as (_, ax):
        for test, names in [("KS (integer features, ties)", parts.NUMERIC),
                            ("chi-square", (*parts.CATEGORICAL, "prediction", "correct"))]:  # fmt: skip
            p = [c[f"p_{n}"] for s in null_runs for c in s for n in names]
            ax.hist(p, bins=20, range=(0, 1), alpha=0.6, density=True, label=test)
        ax.axhline(1.0, color="k", ls=":", label="uniform")
        ax.set(xlabel="p-value", ylabel="density", title="p-values when nothing drifted")
        ax.legend()
