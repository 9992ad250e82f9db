"""Grader for the model service, in process (httpx over ASGI, no socket): predictions equal the
predictor's own, every bad input gets its documented 4xx with a sentence naming the problem,
API keys and the per-key rate limit (fake clock), micro-batching under concurrent requests,
Prometheus metrics, /ready through loading and draining, graceful shutdown, the OpenAPI
schema declaring every error, and the /drift and /generate routes."""

from __future__ import annotations

import asyncio
import io
import json
import math
import re
import threading

import httpx
import numpy as np
import pytest
from model_api_testing import (
    KEY,
    OTHER,
    BrokenClassifier,
    FakeClassifier,
    FakeClock,
    FakeGenerator,
    FakeMonitor,
    expected,
    make_app,
    post,
    run,
)

REFERENCE = "airoad.production.model_api"


def test_predict_returns_the_predictors_probabilities(impl):
    """/predict and /predict/batch answer the predictor's label, score and probabilities."""
    texts = ["good egg", "bland", "ggg"]
    single, batch = run(
        make_app(impl), [post(texts[0]), post({"texts": texts}, path="/predict/batch")]
    )
    assert single.status_code == 200 and batch.status_code == 200, single.text + batch.text
    answers = [single.json()] + batch.json()["predictions"][1:]
    for text, got in zip(texts, answers, strict=True):
        probs = expected(text)
        assert got["label"] == FakeClassifier.labels[int(np.argmax(probs))]
        assert got["score"] == pytest.approx(probs.max())
        assert got["probabilities"] == pytest.approx(dict(zip(FakeClassifier.labels, probs)))
    assert [p["probabilities"]["great"] for p in batch.json()["predictions"]] == pytest.approx(
        [expected(t)[1] for t in texts]
    ), "batch answers must come back in request order"


@pytest.mark.parametrize(
    ("body", "where", "why"),
    [
        ({"text": ""}, "text", "at least 1"),
        ({"text": "x" * 41}, "text", "at most 40"),
        ({}, "text", "required"),
        ({"text": 3}, "text", "string"),
        ({"text": "ok", "extra": 1}, "extra", "not permitted"),
        ({"texts": []}, "texts", "at least 1"),
        ({"texts": ["a"] * 6}, "texts", "at most 5"),
        ({"texts": ["a", ""]}, "texts.1", "at least 1"),
        ([1, 2], "body", "valid dictionary"),
    ],
)
def test_bad_input_gets_422_naming_the_field(impl, body, where, why):
    """Each invalid body gets 422 with one sentence naming the field and the broken limit."""
    path = "/predict/batch" if isinstance(body, dict) and "texts" in body else "/predict"
    fake = FakeClassifier()
    (r,) = run(make_app(impl, fake), [post(body, path=path)])
    assert r.status_code == 422, f"expected 422, got {r.status_code}: {r.text}"
    detail = r.json()["detail"]
    assert isinstance(detail, str), "detail must be one readable sentence, not a list"
    assert where in detail and why in detail.lower(), f"{detail!r} should name {where!r}: {why}"
    assert fake.sizes == [], "invalid input must never reach the model"


def test_malformed_and_oversized_bodies_are_4xx(impl):
    """Broken JSON and lone surrogates get 422; bodies over max_body_bytes get 413, chunked too."""
    fake = FakeClassifier()
    headers = {"X-API-Key": KEY, "Content-Type": "application/json"}

    async def chunks():  # a streamed body without Content-Length
        for _ in range(30):
            yield b"x" * 100

    responses = run(make_app(impl, fake), [
        ("POST", "/predict", {"content": b'{"text": "unterminated', "headers": headers}),
        ("POST", "/predict", {"content": b'{"text": "\\ud800"}', "headers": headers}),
        ("POST", "/predict", {"content": json.dumps({"text": "y" * 3000}), "headers": headers}),
        ("POST", "/predict", {"content": chunks(), "headers": headers}),
    ])  # fmt: skip
    assert [r.status_code for r in responses] == [422, 422, 413, 413], [r.text for r in responses]
    assert all(isinstance(r.json()["detail"], str) for r in responses)
    assert "JSON" in responses[0].json()["detail"], "say the body is not valid JSON"
    assert "2048" in responses[2].json()["detail"], "413 should say the limit"
    assert fake.sizes == []


def test_api_key_is_required_and_checked(impl):
    """No key or an unknown key gets 401; a known key passes; health, ready, metrics are open."""
    responses = run(make_app(impl), [
        post("hi", key=None), post("hi", key="wrong"), post("hi", key=OTHER),
        ("GET", "/health", {}), ("GET", "/ready", {}), ("GET", "/metrics", {}),
    ])  # fmt: skip
    assert [r.status_code for r in responses] == [401, 401, 200, 200, 200, 200]
    assert "X-API-Key" in responses[0].json()["detail"]
    assert "unknown" in responses[1].json()["detail"].lower()
    (open_app,) = run(make_app(impl, require_auth=False), [post("hi", key=None)])
    assert open_app.status_code == 200, "require_auth=False must serve without a key"


def test_rate_limit_per_key_with_retry_after(impl):
    """burst 2 at 0.5/s: the third request gets 429 with Retry-After 2; time heals; keys apart."""
    clock = FakeClock()
    limits = {KEY: {"rate": 0.5, "burst": 2}, OTHER: {"rate": 0.5, "burst": 2}}
    app = make_app(impl, clock=clock, api_keys=limits)
    codes = [run(app, [post("a")])[0] for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].headers.get("retry-after") == "2", "1 token at 0.5/s is 2 s away"
    assert "rate limit" in codes[2].json()["detail"]
    assert run(app, [post("a", key=OTHER)])[0].status_code == 200, "keys must not share a bucket"
    clock.now = 1.0
    r = run(app, [post("a")])[0]
    assert r.status_code == 429 and r.headers["retry-after"] == "1"
    clock.now = 2.0
    assert run(app, [post("a")])[0].status_code == 200, "after 2 s a token is back"


def test_concurrent_requests_are_micro_batched(impl):
    """40 concurrent /predict calls: each gets its own answer, in batches of at most max_batch."""
    fake = FakeClassifier(delay=0.01)
    texts = ["g" * (i % 5) + "x" * (i % 7) + str(i) for i in range(40)]
    responses = run(make_app(impl, fake), [post(t) for t in texts])
    assert all(r.status_code == 200 for r in responses)
    got = [r.json()["probabilities"]["great"] for r in responses]
    assert got == pytest.approx([expected(t)[1] for t in texts]), "answers crossed callers"
    assert sum(fake.sizes) == 40 and max(fake.sizes) <= 8, f"batch sizes {fake.sizes}"
    assert len(fake.sizes) <= 20, f"concurrent requests were not batched: {fake.sizes}"


def test_metrics_count_requests_and_batches(impl):
    """/metrics has request counts by route and status, latencies and the batch-size histogram."""
    fake = FakeClassifier()
    app = make_app(impl, fake)
    run(app, [post("a"), post("b"), post("c", key=None)])
    other = make_app(impl)  # a second app in the same process must not collide
    run(other, [post("z")])
    text = run(app, [("GET", "/metrics", {})])[0].text

    def sample(pattern: str) -> float:
        found = re.search(pattern + r"\}\s+([0-9.e+]+)", text)
        assert found, f"no sample matching {pattern} in /metrics"
        return float(found.group(1))

    def labelled(name: str, **labels: str) -> str:
        return name + r"\{" + "".join(rf'(?=[^}}]*{k}="{re.escape(v)}")' for k, v in labels.items())

    assert sample(labelled("airoad_requests_total", route="/predict", status="200") + "[^}]*") == 2
    assert sample(labelled("airoad_requests_total", route="/predict", status="401") + "[^}]*") == 1
    assert sample(r"airoad_request_seconds_count\{[^}]*route=\"/predict\"[^}]*") == 3
    batches = re.search(r"airoad_batch_size_count\s+([0-9.]+)", text)
    assert batches and float(batches.group(1)) == len(fake.sizes)
    total = re.search(r"airoad_batch_size_sum\s+([0-9.]+)", text)
    assert total and float(total.group(1)) == 2, "batch sizes must sum to the 2 texts predicted"


def test_ready_follows_loading_and_draining(impl):
    """/ready is 503 while the model loads, 200 once loaded, 503 again while shutting down."""
    gate = threading.Event()

    def loader():
        gate.wait(5)
        return FakeClassifier()

    app = make_app(impl, predictor=loader)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            async with app.router.lifespan_context(app):
                early = [
                    await c.get("/health"),
                    await c.get("/ready"),
                    await c.post("/predict", json={"text": "g"}, headers={"X-API-Key": KEY}),
                ]
                gate.set()
                for _ in range(100):
                    if (await c.get("/ready")).status_code == 200:
                        break
                    await asyncio.sleep(0.02)
                loaded = [
                    await c.get("/ready"),
                    await c.post("/predict", json={"text": "g"}, headers={"X-API-Key": KEY}),
                ]
            late = [
                await c.get("/ready"),
                await c.post("/predict", json={"text": "g"}, headers={"X-API-Key": KEY}),
            ]
        return early, loaded, late  # fmt: skip

    early, loaded, late = asyncio.run(main())
    assert [r.status_code for r in early] == [200, 503, 503], "not ready while loading"
    assert early[1].json()["status"] == "loading"
    assert [r.status_code for r in loaded] == [200, 200]
    assert [r.status_code for r in late] == [503, 503], "draining: no new work after shutdown"
    assert late[0].json()["status"] == "draining"


def test_failed_load_is_reported_by_ready(impl):
    """A loader that raises leaves the process up and /ready 503 with the reason."""

    def loader():
        raise OSError("weights file missing")

    app = make_app(impl, predictor=loader)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            async with app.router.lifespan_context(app):
                for _ in range(100):
                    r = await c.get("/ready")
                    if r.json()["status"] != "loading":
                        return r, await c.get("/health")
                    await asyncio.sleep(0.02)
        return r, None

    ready, health = asyncio.run(main())
    assert ready.status_code == 503 and ready.json()["status"] == "failed"
    assert "weights file missing" in ready.json()["detail"]
    assert health is not None and health.status_code == 200


def test_shutdown_finishes_requests_in_flight(impl):
    """Requests already in flight when shutdown starts all complete with 200."""
    fake = FakeClassifier(delay=0.1)
    app = make_app(impl, fake, max_batch=2)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            async with app.router.lifespan_context(app):
                flying = [asyncio.ensure_future(c.post("/predict", json={"text": f"g{i}"},
                          headers={"X-API-Key": KEY})) for i in range(6)]  # fmt: skip
                for _ in range(400):  # until the first batch runs and the rest are queued
                    if fake.sizes:
                        break
                    await asyncio.sleep(0.005)
                await asyncio.sleep(0.05)
            return await asyncio.gather(*flying)

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * 6
    assert sum(fake.sizes) == 6


def test_openapi_declares_every_error(impl):
    """The OpenAPI schema declares each 4xx/503 with a string detail, the limits and the key."""
    (r,) = run(make_app(impl), [("GET", "/openapi.json", {})])
    schema = r.json()
    for path in ("/predict", "/predict/batch"):
        responses = schema["paths"][path]["post"]["responses"]
        assert {"200", "401", "413", "422", "429", "500", "503"} <= set(responses), path
        ref = responses["422"]["content"]["application/json"]["schema"]["$ref"].split("/")[-1]
        assert schema["components"]["schemas"][ref]["properties"]["detail"]["type"] == "string"
        assert responses["429"]["headers"]["Retry-After"].get("required") is True, (
            "every 429 carries Retry-After: declare it required"
        )
    assert {"401", "404"} <= set(schema["paths"]["/drift"]["get"]["responses"])
    assert {"401", "404", "422"} <= set(schema["paths"]["/generate"]["post"]["responses"])
    assert "503" in schema["paths"]["/ready"]["get"]["responses"]
    text = json.dumps(schema)
    assert '"maxLength": 40' in text and '"maxItems": 5' in text, "limits belong in the schema"
    schemes = schema["components"]["securitySchemes"].values()
    assert any(s.get("in") == "header" and s.get("name") == "X-API-Key" for s in schemes)


def test_drift_monitor_sees_predictions(impl):
    """Every prediction reaches monitor.observe (n_words, label); /drift returns its report."""
    features = {"n_words": {"test": "ks", "statistic": 0.25, "p_value": math.nan}}
    monitor = FakeMonitor({"drift": False, "rows": np.int64(3), "features": features})
    app = make_app(impl, monitor=monitor)
    texts = ["a good day", "gg", "plain text here now"]
    one, batch, drift = run(app, [post(texts[0])])[0], None, None
    batch, drift = run(app, [post({"texts": texts[1:]}, path="/predict/batch"),
                             ("GET", "/drift", {"headers": {"X-API-Key": KEY}})])  # fmt: skip
    assert one.status_code == batch.status_code == drift.status_code == 200
    words = [n for obs in monitor.seen for n in obs["n_words"]]
    labels = [lab for obs in monitor.seen for lab in obs["label"]]
    assert words == [3, 1, 4], f"n_words seen {words}"
    assert labels == [FakeClassifier.labels[int(np.argmax(expected(t)))] for t in texts]
    features["n_words"]["p_value"] = None
    assert drift.json() == {"drift": False, "rows": 3, "features": features}, (
        "NaN is not JSON: it should come back as null"
    )
    empty, missing = run(make_app(impl, monitor=FakeMonitor()), [
        ("GET", "/drift", {"headers": {"X-API-Key": KEY}})]
    )[0], run(make_app(impl), [("GET", "/drift", {"headers": {"X-API-Key": KEY}})])[0]  # fmt: skip
    assert empty.status_code == 409 and "empty" in empty.json()["detail"]
    assert missing.status_code == 404 and "monitor" in missing.json()["detail"]


def test_generate_returns_a_png_grid(impl):
    """/generate answers a PNG tiling n images near-square; bad label 422; no generator 404."""
    from PIL import Image

    app = make_app(impl, generator=FakeGenerator())
    h = {"X-API-Key": KEY}
    ok, bad, none, big_seed, top_seed, default = run(app, [
        ("POST", "/generate", {"json": {"n": 5, "seed": 3}, "headers": h}),
        ("POST", "/generate", {"json": {"n": 2, "label": 12}, "headers": h}),
        ("POST", "/generate", {"json": {"n": 0}, "headers": h}),
        ("POST", "/generate", {"json": {"n": 1, "seed": 2**31}, "headers": h}),
        ("POST", "/generate", {"json": {"n": 1, "seed": 2**31 - 1}, "headers": h}),
        ("POST", "/generate", {"json": {}, "headers": h}),
    ])  # fmt: skip
    assert ok.status_code == 200 and ok.headers["content-type"] == "image/png"
    grid = np.asarray(Image.open(io.BytesIO(ok.content)))
    assert grid.shape == (2 * 4, 3 * 6), "5 images of 4x6 tile into 2 rows of 3"
    images = FakeGenerator().generate(5, None, 3)
    np.testing.assert_array_equal(grid[4:8, 6:12], images[4], err_msg="image 4 is row 1, col 1")
    assert bad.status_code == 422 and "below 10" in bad.json()["detail"]
    assert none.status_code == 422 and big_seed.status_code == 422, "n >= 1, seed < 2**31"
    assert top_seed.status_code == 200, "seed 2**31 - 1 is a valid seed"
    default_grid = np.asarray(Image.open(io.BytesIO(default.content)))
    assert default_grid.shape == (4 * 4, 4 * 6), "the default is n=16: a 4x4 grid"
    (missing,) = run(make_app(impl), [("POST", "/generate", {"json": {"n": 1}, "headers": h})])
    assert missing.status_code == 404 and "generator" in missing.json()["detail"]


def test_settings_reject_bad_values(impl):
    """ServiceSettings refuses limits that cannot work (zero batch, negative wait, NaN rate)."""
    from pydantic import ValidationError

    for bad in ({"max_batch": 0}, {"max_wait_ms": -1}, {"max_text_chars": 0},
                {"api_keys": {"k": {"rate": float("nan"), "burst": 1}}}):  # fmt: skip
        with pytest.raises(ValidationError):
            impl.ServiceSettings(**bad)
    caps = {"max_text_chars": 1_000_001, "max_body_bytes": 1_023, "max_wait_ms": 10_001,
            "max_batch_items": 10_001, "max_batch": 4_097, "max_images": 1_025}  # fmt: skip
    for key, value in caps.items():  # the caps written in ServiceSettings
        with pytest.raises(ValidationError):
            impl.ServiceSettings(**{key: value})
    edges = [{"max_text_chars": 1_000_000, "max_body_bytes": 1_024, "max_wait_ms": 10_000,
              "max_batch_items": 10_000, "max_batch": 4_096, "max_images": 1_024},
             {"max_wait_ms": 0, "max_batch": 1}]  # fmt: skip
    for edge in edges:  # the limits themselves are allowed
        assert impl.ServiceSettings(**edge).model_dump().items() >= edge.items()
    (r,) = run(make_app(impl, max_batch=1), [post("g")])
    assert r.status_code == 200, "max_batch=1 (batching off) must still serve"


def test_model_failure_is_a_500_for_its_batch_only(impl):
    """A predictor answering the wrong shape gets 500 naming it; the next request is served."""
    app = make_app(impl, BrokenClassifier())
    (broken,) = run(app, [post("gg")])
    (fine,) = run(app, [post("gg")])
    assert broken.status_code == 500, f"expected 500, got {broken.status_code}: {broken.text}"
    assert "(1, 3)" in broken.json()["detail"], "say what the predictor returned"
    assert fine.status_code == 200 and fine.json()["probabilities"]["great"] == pytest.approx(
        expected("gg")[1]
    )
