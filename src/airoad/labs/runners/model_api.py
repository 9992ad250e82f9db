"""Runner for model-api: the fine-tuned MiniLM sentiment classifier behind our FastAPI service,
served by a real uvicorn server on loopback.

1. Accuracy: the held-out fine-food reviews go through ``/predict/batch``; the served answers
   must equal the model called directly in this process (same labels, same accuracy).
2. Load: closed-loop async httpx clients at a few concurrency levels, with micro-batching on
   (``max_batch``, ``max_wait_ms``) and off (``max_batch=1``): throughput, p50/p95/p99, the mean
   batch size the server's own ``/metrics`` reports.
3. Guards: one bad request per protection (auth, limits, body size, rate limit) and its answer.
4. Shutdown: requests in flight when the server is told to stop all complete.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes, timed
from airoad.labs.runners import bert_sentiment_parts as bert_parts
from airoad.labs.runners import model_api_parts as parts


@dataclass(frozen=True)
class Config:
    model: str = param("full", choices=("full", "quick"))  # which bert-sentiment run's model
    n_reviews: int = param(0, ge=16, le=1000, also=(0,))  # held-out reviews; 0 = all 1000
    clients: tuple[int, ...] = param((1, 8, 32), ge=1, le=256)  # concurrency levels
    requests: int = param(256, ge=8, le=100_000)  # /predict calls per level and mode
    max_batch: int = param(32, ge=2, le=1024)  # micro-batch size when batching is on
    max_wait_ms: float = param(5.0, ge=0.0, le=1000.0)
    batch_items: int = param(64, ge=1, le=1000)  # texts per /predict/batch request
    rate: float = param(2.0, gt=0.0, le=1000.0)  # requests/s of the slow key (429 demo)
    burst: int = param(5, ge=1, le=1000)
    in_flight: int = param(32, ge=1, le=1000)  # requests running when shutdown starts
    alone_batches: tuple[int, ...] = param((1, 8, 32), ge=1, le=1000)  # model-alone batch sizes
    alone_texts: int = param(64, ge=1, le=1000)  # reviews timed in the model-alone table
    threads: int = param(0, ge=1, le=256, also=(0,))  # torch threads; 0 = torch's default
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        reviews = self.n_reviews or 1000
        config_check(self.alone_texts <= reviews, "alone_texts", "must be at most n_reviews")
        config_check(max(self.alone_batches) <= self.alone_texts, "alone_batches",
                     "must not exceed alone_texts")  # fmt: skip


QUICK = {"model": "quick", "n_reviews": 16, "clients": (1, 4), "requests": 16, "in_flight": 4,
         "alone_batches": (1, 8), "alone_texts": 16}  # fmt: skip

NOTES = (
    "Accuracy through /predict/batch on {n_reviews} held-out reviews: {served_accuracy:.3f}, "
    "{accuracy_verdict} the model called directly ({offline_accuracy:.3f}; {label_agreement:.0%} "
    "of labels agree, probabilities within {max_prob_diff:.1e}); bert-sentiment recorded "
    "{recorded_accuracy:.3f} on its own test reviews.",
    "At {top_clients} concurrent clients micro-batching serves {batched_rps:.1f} requests/s "
    "against {single_rps:.1f} one at a time ({speedup:.1f}x), p99 {batched_p99_ms:.0f} ms vs "
    "{single_p99_ms:.0f} ms, mean batch {mean_batch:.1f} texts; {load_errors} failed requests. "
    "CPU per request (server, model and client): {batched_cpu_ms:.1f} ms batched vs "
    "{single_cpu_ms:.1f} ms ({cpu_saving:.0%} saved).",
    "The model alone (CPU ms per review): one at a time {alone_single_ms:.1f}; batches of "
    "{alone_top} padded to their longest review {alone_padded_ms:.1f}, sorted by length in "
    "sub-batches {alone_sorted_ms:.1f}.",
    "Guards: {guard_verdict} ({guard_summary}); the slow key's burst of {burst} "
    "passed and the next request got 429, Retry-After {retry_after} s.",
    "Shutdown with {in_flight} requests in flight: {shutdown_completed} completed, "
    "{shutdown_lost} lost; new connections refused afterwards: {refused_after}.",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    predictor, (texts, y) = _model_and_reviews(config, ctx)
    metrics = _accuracy(predictor, texts, y, config, ctx)
    alone_rows = parts.model_alone(predictor, texts[: config.alone_texts], config.alone_batches)
    load_rows = _load(predictor, texts, config, ctx)
    guard_rows = _guards(predictor, config)
    metrics |= _shutdown(predictor, texts, config)
    parts.latency_figure(load_rows, ctx)
    metrics |= _load_metrics(load_rows, config) | _guard_metrics(guard_rows)
    metrics |= _alone_metrics(alone_rows)
    metrics["recorded_accuracy"] = float(predictor.meta.get("test_accuracy", float("nan")))
    return LabResult(
        metrics=metrics,
        key_metric="served_accuracy",
        library_metric="offline_accuracy",
        tables={"load": load_rows, "guards": guard_rows, "model_alone": alone_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _model_and_reviews(config: Config, ctx: RunContext) -> tuple:
    """The bert-sentiment classifier (its cached artifact) and the held-out reviews."""
    from airoad.labs.artifacts import require
    from airoad.production.predictors import HFTextClassifier

    with ctx.step("loading the bert-sentiment classifier"):
        folder = require("bert-sentiment", "classifier", quick=config.model == "quick")
        predictor = HFTextClassifier(folder, threads=config.threads or None)
    _, test_df = bert_parts.reviews(0, config.n_reviews, config.seed)
    return predictor, (bert_parts.clean(test_df["review"]), bert_parts.labels(test_df))


def _app(predictor, config: Config, max_batch: int):
    """Our service around the predictor: the lab's key, a slow key, batching as asked."""
    from airoad.production.model_api import KeyLimit, ServiceSettings, create_app

    keys = {parts.KEY: KeyLimit(rate=1e6, burst=1_000_000),
            parts.SLOW_KEY: KeyLimit(rate=config.rate, burst=config.burst)}  # fmt: skip
    settings = ServiceSettings(api_keys=keys, max_batch=max_batch, max_wait_ms=config.max_wait_ms,
                               max_batch_items=config.batch_items, model_name="bert-sentiment")  # fmt: skip
    return create_app(predictor, settings), settings


def _accuracy(predictor, texts: list[str], y: np.ndarray, config: Config, ctx) -> dict:
    """Served probabilities (over HTTP) against the model's own, on the same reviews."""
    with ctx.step(f"offline predictions on {len(texts)} reviews"):
        offline, offline_s = timed(predictor.predict_proba, texts)
    app, _ = _app(predictor, config, config.max_batch)
    with ctx.step("the same reviews through /predict/batch"), parts.serve(app) as (base, _):
        parts.wait_ready(base)
        served, served_s = timed(parts.predict_batch, base, texts, config.batch_items)
    return {
        "n_reviews": len(texts),
        "offline_accuracy": float(np.mean(offline.argmax(1) == y)),
        "served_accuracy": float(np.mean(served.argmax(1) == y)),
        "label_agreement": float(np.mean(offline.argmax(1) == served.argmax(1))),
        "accuracy_verdict": "the same as"
        if np.array_equal(offline.argmax(1), served.argmax(1))
        else "DIFFERENT from",
        "max_prob_diff": float(np.abs(offline - served).max()),
        "offline_seconds": offline_s, "served_seconds": served_s,
    }  # fmt: skip


def _load(predictor, texts: list[str], config: Config, ctx) -> list[dict]:
    """The load test at every concurrency level, micro-batching on and off."""
    rows = []
    for mode, max_batch in (("micro-batching", config.max_batch), ("one at a time", 1)):
        app, _ = _app(predictor, config, max_batch)
        with parts.serve(app) as (base, _):
            parts.wait_ready(base)
            for clients in ctx.track(config.clients, f"load test, {mode}"):
                calls0, texts0 = parts.batch_stats(base)
                row = parts.load_test(base, texts, clients, config.requests)
                calls, done = (a - b for a, b in zip(parts.batch_stats(base), (calls0, texts0)))
                rows.append({"mode": mode, **row, "mean_batch": done / max(calls, 1.0)})
    return rows


def _load_metrics(rows: list[dict], config: Config) -> dict:
    top = max(config.clients)
    on = next(r for r in rows if r["mode"] == "micro-batching" and r["clients"] == top)
    off = next(r for r in rows if r["mode"] == "one at a time" and r["clients"] == top)
    return {
        "top_clients": top, "batched_rps": on["throughput_rps"], "single_rps": off["throughput_rps"],
        "speedup": on["throughput_rps"] / off["throughput_rps"], "batched_p99_ms": on["p99_ms"],
        "single_p99_ms": off["p99_ms"], "mean_batch": on["mean_batch"],
        "batched_cpu_ms": on["cpu_ms_per_request"], "single_cpu_ms": off["cpu_ms_per_request"],
        "cpu_saving": 1 - on["cpu_ms_per_request"] / off["cpu_ms_per_request"],
        "load_errors": int(sum(r["errors"] for r in rows)),
    }  # fmt: skip


def _alone_metrics(rows: list[dict]) -> dict:
    top = max(rows, key=lambda r: r["batch"])
    single = min(rows, key=lambda r: r["batch"])
    return {"alone_top": top["batch"], "alone_single_ms": single["padded_cpu_ms"],
            "alone_padded_ms": top["padded_cpu_ms"], "alone_sorted_ms": top["sorted_cpu_ms"]}  # fmt: skip


def _guards(predictor, config: Config) -> list[dict]:
    """Each protection probed once on a live server."""
    app, settings = _app(predictor, config, config.max_batch)
    with parts.serve(app) as (base, _):
        parts.wait_ready(base)
        return parts.guard_probes(base, settings.max_text_chars, settings.max_body_bytes,
                                  config.burst)  # fmt: skip


def _guard_metrics(rows: list[dict]) -> dict:
    summary = ", ".join(f"{r['probe']} {r['status']}" for r in rows[:-1])
    return {
        "guard_summary": summary,
        "guard_verdict": "every bad request got its 4xx"
        if all(400 <= r["status"] < 500 for r in rows)
        else "some bad requests did NOT get a 4xx",
        "guard_5xx": sum(r["status"] >= 500 for r in rows),
        "retry_after": rows[-1]["retry_after"],
        "burst_status": rows[-1]["status"],
    }


def _shutdown(predictor, texts: list[str], config: Config) -> dict:
    app, _ = _app(predictor, config, config.max_batch)
    out = parts.shutdown_probe(app, texts, config.in_flight)
    return {"shutdown_completed": out["completed"], "shutdown_lost": out["lost"],
            "refused_after": out["refused_after"]}  # fmt: skip
