"""Fakes and request helpers shared by the model-api graders (imported by name)."""

from __future__ import annotations

import asyncio
import time

import httpx
import numpy as np

KEY, OTHER = "secret-key", "other-key"


class FakeClassifier:
    """P(great) grows with the share of 'g' in the text; records every batch it is given."""

    labels = ["other", "great"]

    def __init__(self, delay: float = 0.0):
        self.sizes: list[int] = []
        self.delay = delay

    def predict_proba(self, texts):
        self.sizes.append(len(texts))
        time.sleep(self.delay)
        p = np.array([(t.count("g") + 1) / (len(t) + 2) for t in texts])
        return np.stack([1 - p, p], axis=1)


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make_app(impl, predictor=None, clock=None, monitor=None, generator=None, **overrides):
    limits = {KEY: {"rate": 1000.0, "burst": 1000}, OTHER: {"rate": 1000.0, "burst": 1000}}
    settings = impl.ServiceSettings(
        **{
            "api_keys": limits,
            "max_text_chars": 40,
            "max_batch_items": 5,
            "max_body_bytes": 2048,
            "max_batch": 8,
            "max_wait_ms": 20.0,
            **overrides,
        }  # fmt: skip
    )
    extra = {"clock": clock} if clock is not None else {}
    predictor = predictor if predictor is not None else FakeClassifier()
    return impl.create_app(predictor, settings, monitor=monitor, generator=generator, **extra)


def run(app, requests):
    """Send (method, path, kwargs) requests concurrently; the responses in the same order."""

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await asyncio.gather(*(client.request(m, p, **kw) for m, p, kw in requests))

    return asyncio.run(main())


def post(text_or_body, key=KEY, path="/predict", **kw):
    body = {"text": text_or_body} if isinstance(text_or_body, str) else text_or_body
    headers = {"X-API-Key": key} if key else {}
    return ("POST", path, {"json": body, "headers": headers, **kw})


def expected(text: str) -> np.ndarray:
    return FakeClassifier().predict_proba([text])[0]


class FakeMonitor:
    def __init__(self, report=None):
        self.seen: list[dict] = []
        self._report = report

    def observe(self, columns):
        self.seen.append({k: list(v) for k, v in columns.items()})

    def report(self):
        if self._report is None:
            raise ValueError("the window is empty")
        return self._report


class FakeGenerator:
    def generate(self, n, label, seed):
        if label is not None and label > 9:
            raise ValueError("label must be below 10")
        rng = np.random.default_rng(seed)
        return rng.integers(0, 256, size=(n, 4, 6), dtype=np.uint8)


class BrokenClassifier(FakeClassifier):
    """Returns three columns for two labels once, then behaves."""

    def predict_proba(self, texts):
        good = super().predict_proba(texts)
        return np.hstack([good, good[:, :1]]) if len(self.sizes) == 1 else good
