"""The model-api runner (quick config) on the quick bert-sentiment classifier and real held-out
fine-food reviews: a real uvicorn server on loopback answers exactly what the model says,
micro-batching merges concurrent requests, every guard answers its 4xx and shutdown loses
nothing."""

from __future__ import annotations

import pytest

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import model_api as runner


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    config = runner.Config(**runner.QUICK)
    return runner.run(config, RunContext(tmp_path_factory.mktemp("model-api")))


def test_served_answers_equal_the_model(result):
    m = result.metrics
    assert m["n_reviews"] == runner.QUICK["n_reviews"]
    assert m["served_accuracy"] == m["offline_accuracy"], "HTTP must not change any prediction"
    assert m["label_agreement"] == 1.0 and m["max_prob_diff"] < 1e-5
    assert m["accuracy_verdict"] == "the same as"
    assert 0.5 <= m["served_accuracy"] <= 1.0


def test_load_rows_and_micro_batching(result):
    rows = result.tables["load"]
    assert [(r["mode"], r["clients"]) for r in rows] == [
        (mode, c) for mode in ("micro-batching", "one at a time") for c in runner.QUICK["clients"]
    ]
    for r in rows:
        assert r["errors"] == 0 and r["requests"] == runner.QUICK["requests"]
        assert 0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] and r["throughput_rps"] > 0
        assert r["cpu_ms_per_request"] > 0
    single = [r["mean_batch"] for r in rows if r["mode"] == "one at a time"]
    assert single == [1.0] * len(single), "max_batch=1 must never batch"
    top = rows[len(runner.QUICK["clients"]) - 1]
    assert 1.0 < top["mean_batch"] <= runner.Config().max_batch, (
        f"concurrent clients should be micro-batched, mean batch {top['mean_batch']}"
    )
    assert result.metrics["load_errors"] == 0
    alone = result.tables["model_alone"]
    assert [r["batch"] for r in alone] == list(runner.QUICK["alone_batches"])
    assert all(r["padded_cpu_ms"] > 0 and r["sorted_cpu_ms"] > 0 for r in alone)
    assert alone[0]["padded_cpu_ms"] == alone[0]["sorted_cpu_ms"] or alone[0]["batch"] == 1


def test_guards_and_shutdown(result):
    rows, m = result.tables["guards"], result.metrics
    assert [r["status"] for r in rows] == [401, 401, 422, 422, 422, 422, 413, 404, 429]
    assert all(isinstance(r["detail"], str) and r["detail"] for r in rows)
    assert rows[-1]["accepted_before"] == runner.Config().burst and int(m["retry_after"]) >= 1
    assert m["shutdown_completed"] == runner.QUICK["in_flight"] and m["shutdown_lost"] == 0
    assert m["refused_after"] is True
    assert [p.name for p in result.figures] == ["serving_latency.png"]
    assert result.figures[0].stat().st_size > 10_000


def test_two_servers_at_once_and_always_stopped():
    """Two runs at once: each server binds its own free loopback port and is stopped after."""
    import httpx
    import numpy as np

    from airoad.labs.runners import model_api_parts as parts
    from airoad.production.model_api import ServiceSettings, create_app

    class Constant:
        labels = ["other", "great"]

        def predict_proba(self, texts):
            return np.full((len(texts), 2), 0.5)

    apps = [create_app(Constant(), ServiceSettings(require_auth=False)) for _ in range(2)]
    with parts.serve(apps[0]) as (first, _), parts.serve(apps[1]) as (second, _):
        assert first != second and first.startswith("http://127.0.0.1:")
        for base in (first, second):
            r = httpx.post(f"{base}/predict", json={"text": "fine"}, timeout=30)
            assert r.status_code == 200 and r.json()["score"] == 0.5
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{first}/health", timeout=2)
