"""A production-shaped model service: FastAPI around any predictor with ``predict_proba``.

``create_app(predictor, settings)`` returns the app; what each layer protects against:

- request models with limits (text length, batch size) and a body-size guard (413): a huge or
  malformed request gets a 4xx with one clear sentence and never reaches the model;
- an ``X-API-Key`` header checked against ``ServiceSettings.api_keys`` (401) and a per-key
  token bucket (429 with ``Retry-After``): one noisy client cannot starve the others;
- a ``MicroBatcher`` that merges concurrent requests into one model call: throughput under load;
- ``/health`` (the process answers), ``/ready`` (503 while the model loads or the service
  drains: a load balancer sends no traffic), Prometheus ``/metrics`` (request counts by route
  and status, latency and batch-size histograms, in a registry of the app's own);
- a lifespan that loads the model in the background and, on shutdown, stops taking new work and
  finishes the batches in flight.

Every 4xx a route can return is declared in its OpenAPI ``responses`` with the ``ErrorBody``
model, so a schema fuzzer can hold the service to its own schema.
"""

import asyncio
import hmac
import io
import logging
import math
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from typing import Annotated, Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.security import APIKeyHeader
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from airoad.errors import AiroadError
from airoad.production.model_api_batching import BatcherClosed, MicroBatcher, RateLimiter
from airoad.production.model_api_metrics import BodyLimitAndMetrics, ServiceMetrics

log = logging.getLogger(__name__)


class KeyLimit(BaseModel):
    """The rate limit of one API key: ``burst`` requests at once, then ``rate`` per second."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    rate: float = Field(10.0, gt=0, allow_inf_nan=False)
    burst: int = Field(20, ge=1)


class ServiceSettings(BaseModel):
    """Everything the service is configured by; invalid values fail at construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    api_keys: dict[str, KeyLimit] = Field(default_factory=dict)  # key -> its rate limit
    require_auth: bool = True  # False serves anyone (a local demo), without rate limits
    max_text_chars: int = Field(10_000, ge=1, le=1_000_000)  # longest fine-food review: 7,858
    max_batch_items: int = Field(64, ge=1, le=10_000)  # texts in one /predict/batch request
    max_body_bytes: int = Field(1_000_000, ge=1_024)
    max_batch: int = Field(32, ge=1, le=4_096)  # micro-batch size; 1 = one request at a time
    max_wait_ms: float = Field(5.0, ge=0, le=10_000, allow_inf_nan=False)
    max_images: int = Field(64, ge=1, le=1_024)  # images in one /generate grid
    model_name: str = "model"
    model_version: str = "0"


class ErrorBody(BaseModel):
    """Every error the service answers: one sentence saying what was wrong."""

    detail: str


class Prediction(BaseModel):
    label: str
    score: float  # probability of ``label``
    probabilities: dict[str, float]
    model_version: str


class BatchPrediction(BaseModel):
    predictions: list[Prediction]


class Readiness(BaseModel):
    status: str  # "ready", "loading", "failed" or "draining"
    detail: str = ""


def _utf8(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("text must be valid Unicode (it holds a lone surrogate)") from None
    return text


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the 4xx/5xx codes a route can answer."""
    what = {
        400: "the body could not be read (FastAPI's answer to bytes that are not UTF-8)",
        401: "missing or unknown X-API-Key",
        404: "the feature is not configured on this service",
        409: "the drift monitor has nothing to report yet",
        413: "request body larger than the service accepts",
        422: "the request does not match the schema (the sentence names the field)",
        429: "rate limit of this key exceeded; Retry-After says when to retry",
        500: "the model failed on the batch holding this request (a server fault)",
        503: "the model is loading or the service is shutting down",
    }
    out: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        out[code] = {"model": ErrorBody, "description": what[code]}
    if 429 in out:
        out[429]["headers"] = {
            "Retry-After": {
                "description": "seconds",
                "required": True,
                "schema": {"type": "string"},
            }
        }
    return out


def create_app(
    predictor: Any,
    settings: ServiceSettings,
    monitor: Any = None,
    generator: Any = None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> FastAPI:
    """The FastAPI service around ``predictor``.

    ``predictor`` has ``labels`` and ``predict_proba(texts)`` (see
    ``airoad.production.predictors``), or is a zero-argument callable returning one: then the
    lifespan loads it in a thread and ``/ready`` answers 503 until it is loaded. ``monitor``
    (``observe(columns)``, ``report()``) sees every prediction's ``n_words`` and ``label``;
    ``generator`` (``generate(n, label, seed)`` -> uint8 ``(n, H, W)``) backs ``/generate``.
    ``clock`` drives the rate limiter (a test passes a fake one).
    """
    state: dict[str, Any] = {"draining": False, "error": ""}
    state["predictor"] = predictor if hasattr(predictor, "predict_proba") else None
    metrics = ServiceMetrics()
    limits = {key: (lim.rate, lim.burst) for key, lim in settings.api_keys.items()}
    limiter = RateLimiter(limits, clock)

    def predict_rows(texts: list[str]) -> np.ndarray:
        probs = np.asarray(state["predictor"].predict_proba(list(texts)), dtype=float)
        n_labels = len(state["predictor"].labels)
        if probs.shape != (len(texts), n_labels) or not np.all(np.isfinite(probs)):
            raise RuntimeError(f"predictor returned {probs.shape} (or non-finite) probabilities")
        return probs

    batcher = MicroBatcher(predict_rows, settings.max_batch, settings.max_wait_ms, metrics.batch)

    async def load() -> None:
        try:
            state["predictor"] = await asyncio.to_thread(predictor)
        except Exception as error:  # noqa: BLE001 - reported by /ready, the process stays up
            log.exception("model failed to load")
            state["error"] = f"model failed to load: {error}"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = None if state["predictor"] is not None else asyncio.create_task(load())
        try:
            yield
        finally:
            state["draining"] = True  # /ready says 503, new predictions are refused
            await batcher.close()  # ... and everything already queued is still answered
            if loading is not None:
                await asyncio.gather(loading, return_exceptions=True)

    app = FastAPI(title=f"airoad model service: {settings.model_name}", lifespan=lifespan)
    app.add_middleware(BodyLimitAndMetrics, max_bytes=settings.max_body_bytes, metrics=metrics)
    key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        parts = []
        for err in exc.errors():
            if err.get("type") == "json_invalid":  # loc holds the character position
                why = (err.get("ctx") or {}).get("error", "")
                parts.append(f"body is not valid JSON (character {err['loc'][-1]}): {why}")
                continue
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            parts.append(f"{where}: {err.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(parts)}, status_code=422)

    def authorize(key: Annotated[str | None, Security(key_header)] = None) -> str:
        if not settings.require_auth:
            return "anonymous"
        if not key:
            raise HTTPException(401, "missing X-API-Key header: send one of the service's keys")
        known = next((k for k in limits if hmac.compare_digest(k.encode(), key.encode())), None)
        if known is None:  # compare_digest: no timing hint about how much of a key matched
            raise HTTPException(401, "unknown API key: check the X-API-Key header")
        wait = limiter.check(known)
        if wait > 0:
            rate, burst = limits[known]
            raise HTTPException(
                429,
                f"rate limit of {rate:g} requests/s (burst {burst}) exceeded: retry in {wait:.2f} s",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        return known

    Key = Annotated[str, Security(authorize)]
    Text = Annotated[
        str,
        StringConstraints(min_length=1, max_length=settings.max_text_chars),
        AfterValidator(_utf8),
    ]

    class PredictRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        text: Text

    class BatchRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        texts: list[Text] = Field(min_length=1, max_length=settings.max_batch_items)

    class GenerateRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        n: int = Field(16, ge=1, le=settings.max_images)
        label: int | None = Field(None, ge=0, le=1_000)
        seed: int = Field(0, ge=0, le=2**31 - 1)

    async def predict(texts: list[str]) -> list[Prediction]:
        if state["draining"]:
            raise HTTPException(503, "the service is shutting down: retry on another replica")
        if state["predictor"] is None:
            raise HTTPException(503, state["error"] or "the model is still loading: poll /ready")
        try:
            rows = await asyncio.gather(*(batcher.submit(t) for t in texts))
        except BatcherClosed as error:
            raise HTTPException(503, str(error)) from None
        except Exception as error:  # the model's fault, not the client's: say so, keep serving
            log.exception("prediction failed")
            raise HTTPException(500, f"the model failed on this batch: {error}") from None
        labels = list(state["predictor"].labels)
        out = [
            Prediction(
                label=labels[int(np.argmax(row))],
                score=float(np.max(row)),
                probabilities={name: float(p) for name, p in zip(labels, row, strict=True)},
                model_version=settings.model_version,
            )
            for row in rows
        ]
        if monitor is not None:
            try:  # monitoring must never break a prediction
                monitor.observe(
                    {"n_words": [len(t.split()) for t in texts], "label": [p.label for p in out]}
                )
            except Exception:  # noqa: BLE001
                log.exception("drift monitor rejected the observation")
        return out

    @app.post(
        "/predict", response_model=Prediction, responses=_errors(400, 401, 413, 422, 429, 500, 503)
    )
    async def predict_one(body: PredictRequest, key: Key) -> Prediction:
        """Classify one text."""
        return (await predict([body.text]))[0]

    @app.post(
        "/predict/batch",
        response_model=BatchPrediction,
        responses=_errors(400, 401, 413, 422, 429, 500, 503),
    )
    async def predict_batch(body: BatchRequest, key: Key) -> BatchPrediction:
        """Classify a list of texts (answers in the same order)."""
        return BatchPrediction(predictions=await predict(list(body.texts)))

    @app.get("/health")
    async def health() -> dict[str, str]:
        """Liveness: the process answers. Never touches the model."""
        return {"status": "ok"}

    @app.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
    async def ready() -> JSONResponse:
        """Readiness: 200 when the model is loaded and the service is not draining."""
        if state["draining"]:
            status, detail = "draining", "the service is shutting down"
        elif state["error"]:
            status, detail = "failed", state["error"]
        elif state["predictor"] is None:
            status, detail = "loading", "the model is still loading"
        else:
            return JSONResponse({"status": "ready", "detail": settings.model_name})
        return JSONResponse({"status": status, "detail": detail}, status_code=503)

    @app.get(
        "/metrics",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        """Prometheus text: request counts by route and status, latency and batch sizes."""
        return Response(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/drift", responses=_errors(401, 404, 409, 429))
    async def drift(key: Key) -> dict[str, Any]:
        """The drift monitor's report over its sliding window of recent predictions."""
        if monitor is None:
            raise HTTPException(404, "no drift monitor is configured on this service")
        try:
            report = await asyncio.to_thread(monitor.report)
        except (ValueError, AiroadError) as error:
            raise HTTPException(409, f"no drift report yet: {error}") from None
        return _json_safe(report)

    @app.post(
        "/generate",
        response_class=Response,
        responses={
            200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}},
            **_errors(400, 401, 404, 413, 422, 429),
        },
    )
    async def generate(body: GenerateRequest, key: Key) -> Response:
        """A PNG grid of ``n`` generated images (of class ``label`` when given)."""
        if generator is None:
            raise HTTPException(404, "no image generator is configured on this service")
        try:
            images = await asyncio.to_thread(generator.generate, body.n, body.label, body.seed)
        except (ValueError, IndexError) as error:
            raise HTTPException(422, f"the generator refused the request: {error}") from None
        return Response(png_grid(np.asarray(images)), media_type="image/png")

    app.state.batcher, app.state.metrics, app.state.service = batcher, metrics, state
    return app


def png_grid(images: np.ndarray) -> bytes:
    """Tile uint8 images ``(n, H, W)`` into a near-square grid and encode it as PNG."""
    from PIL import Image

    images = np.asarray(images)
    if images.ndim != 3 or images.shape[0] < 1:
        raise ValueError(f"expected images of shape (n, H, W), got {images.shape}")
    n, h, w = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    grid = np.zeros((rows * h, cols * w), dtype=np.uint8)
    for i, img in enumerate(np.clip(images, 0, 255).astype(np.uint8)):
        r, c = divmod(i, cols)
        grid[r * h : (r + 1) * h, c * w : (c + 1) * w] = img
    buffer = io.BytesIO()
    Image.fromarray(grid, mode="L").save(buffer, format="PNG")
    return buffer.getvalue()


def _json_safe(value: Any) -> Any:
    """Replace NaN/inf (not valid JSON) by None and numpy scalars by Python ones."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
