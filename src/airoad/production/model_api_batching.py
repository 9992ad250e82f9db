"""The two concurrency pieces of a model service: micro-batching and per-key rate limits.

``MicroBatcher`` turns many concurrent one-text requests into a few batched model calls: a
transformer spends nearly as long on one padded text as on sixteen, so batching raises
throughput several times under load, at the price of waiting up to ``max_wait_ms`` for company.

``TokenBucket`` (one per API key, held by ``RateLimiter``) lets a client spend ``burst`` requests
at once and then ``rate`` requests per second: ``tokens = min(burst, tokens + rate * dt)``, a
request costs one token, and a refused request learns how long until the next token exists
(``(1 - tokens) / rate`` seconds, sent back as ``Retry-After``). The clock is a parameter so a
test can move time by hand.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

_STOP = object()  # queued by close(): everything queued before it is still served


class BatcherClosed(RuntimeError):
    """The batcher is draining or stopped and takes no new work."""


class MicroBatcher:
    """Collect concurrent ``submit(item)`` calls into batches for one ``fn(items) -> results``.

    A single worker task takes the first waiting item, then keeps collecting until the batch
    holds ``max_batch`` items or ``max_wait_ms`` have passed since that first item, calls
    ``fn`` once on the whole batch in a worker thread (so the event loop keeps accepting
    requests while the model runs) and hands result ``i`` to the caller of item ``i``. If
    ``fn`` raises (or returns the wrong number of results), only the callers of that batch see
    the error; the worker carries on. ``on_batch(size)`` is called before each model call
    (metrics). ``max_batch=1`` serves requests strictly one at a time.
    """

    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        max_batch: int = 32,
        max_wait_ms: float = 5.0,
        on_batch: Callable[[int], None] | None = None,
    ):
        if int(max_batch) < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        if not (math.isfinite(max_wait_ms) and max_wait_ms >= 0):
            raise ValueError(f"max_wait_ms must be a finite number >= 0, got {max_wait_ms}")
        self.fn, self.max_batch, self.max_wait = fn, int(max_batch), max_wait_ms / 1000.0
        self.on_batch = on_batch
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def submit(self, item: Any) -> Any:
        """Queue one item and wait for its own result (or the error of its batch)."""
        if self.closed:
            raise BatcherClosed("the service is shutting down and takes no new requests")
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._worker is None or self._worker.done():
            # first use, or a new event loop (a test client may open one per request)
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._serve())
        future = loop.create_future()
        self._queue.put_nowait((item, future))
        return await future

    async def close(self) -> None:
        """Take no new items, finish every item already queued, then stop the worker."""
        self.closed = True
        worker = self._worker
        if worker is None or worker.done() or self._loop is not asyncio.get_running_loop():
            return
        self._queue.put_nowait(_STOP)
        await worker

    async def _serve(self) -> None:
        while True:
            first = await self._queue.get()
            if first is _STOP:
                return
            batch, stop = await self._collect(first)
            await self._run(batch)
            if stop:
                return

    async def _collect(self, first: tuple) -> tuple[list[tuple], bool]:
        """The batch that starts with ``first``; True when close() was reached inside it."""
        loop, queue, batch = asyncio.get_running_loop(), self._queue, [first]
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            if queue.empty():
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                try:
                    nxt = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
            else:
                nxt = queue.get_nowait()  # already waiting: take it without sleeping
            if nxt is _STOP:
                return batch, True
            batch.append(nxt)
        return batch, False

    async def _run(self, batch: list[tuple]) -> None:
        live = [(item, fut) for item, fut in batch if not fut.done()]  # skip cancelled callers
        if not live:
            return
        items = [item for item, _ in live]
        if self.on_batch is not None:
            self.on_batch(len(items))
        try:
            results = list(await asyncio.to_thread(self.fn, items))
            if len(results) != len(items):
                raise RuntimeError(f"batch function gave {len(results)} results for {len(items)}")
        except Exception as error:  # noqa: BLE001 - the error belongs to this batch's callers
            for _, fut in live:
                if not fut.done():
                    fut.set_exception(error)
            return
        for (_, fut), result in zip(live, results, strict=True):
            if not fut.done():
                fut.set_result(result)


class TokenBucket:
    """``burst`` tokens, refilled at ``rate`` per second; a request spends one.

    The bucket starts full at the clock's current time. ``acquire()`` returns 0.0 and spends a
    token when one is there; otherwise it spends nothing and returns the seconds until a token
    will be there.
    """

    def __init__(self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic):
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a finite number > 0, got {rate}")
        if int(burst) < 1:
            raise ValueError(f"burst must be at least 1, got {burst}")
        self.rate, self.burst, self.clock = float(rate), int(burst), clock
        self.tokens = float(burst)
        self.last = clock()

    def acquire(self) -> float:
        """0.0 if a token was spent, else the wait in seconds until one is available."""
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + max(0.0, now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


class RateLimiter:
    """One ``TokenBucket`` per API key; ``limits`` maps a key to its ``(rate, burst)``."""

    def __init__(
        self,
        limits: Mapping[str, tuple[float, int]],
        clock: Callable[[], float] = time.monotonic,
    ):
        self.limits, self.clock = dict(limits), clock
        self._buckets: dict[str, TokenBucket] = {}
        self._lock = threading.Lock()  # handlers may run in threads too

    def check(self, key: str) -> float:
        """0.0 if ``key`` may make a request now, else the seconds until it may."""
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                rate, burst = self.limits[key]
                bucket = self._buckets[key] = TokenBucket(rate, burst, self.clock)
            return bucket.acquire()
