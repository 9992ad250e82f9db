"""Plumbing for the model service: Prometheus metrics and the request-body size guard.

Both live in one pure ASGI middleware, outside FastAPI's routing, so a 413 for an oversized
body is decided before any JSON parsing and every answer (413s and 500s included) is counted.
"""

from __future__ import annotations

import json
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


class ServiceMetrics:
    """The service's Prometheus metrics in a registry of its own (two apps never collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "airoad_requests",
            "HTTP requests answered, by route template, method and status code.",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "airoad_request_seconds",
            "Time from request start to the end of the response, by route template.",
            ["route"],
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "airoad_batch_size",
            "Texts per model call made by the micro-batcher.",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class BodyLimitAndMetrics:
    """ASGI middleware: answer 413 to bodies over ``max_bytes``; count and time every request.

    The body is read up front (a declared ``Content-Length`` over the limit is refused without
    reading anything) and replayed to the app, so a chunked upload cannot slip past the limit.
    The route label is the matched route's template (``/predict``), never the raw path, so a
    scanner probing random URLs cannot create unbounded label values.
    """

    def __init__(self, app: Any, max_bytes: int, metrics: ServiceMetrics):
        self.app, self.max_bytes, self.metrics = app, int(max_bytes), metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), [500]

        async def send_counted(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                await _too_large(send_counted, self.max_bytes)
                return
            replay = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive_again() -> dict:
                return replay.pop() if replay else await receive()

            await self.app(scope, receive_again, send_counted)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(label, scope.get("method", ""), str(status[0])).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - start)

    async def _read_body(self, scope: dict, receive: Any) -> bytes | None:
        """The whole body, or None as soon as it is known to exceed the limit."""
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return None
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # client went away
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
            more = message.get("more_body", False)
        return b"".join(chunks)


async def _too_large(send: Any, max_bytes: int) -> None:
    body = json.dumps({"detail": f"request body over the {max_bytes}-byte limit"}).encode()
    await send({
        "type": "http.response.start",
        "status": 413,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": body})
