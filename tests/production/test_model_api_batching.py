"""Grader for the model service's concurrency pieces: the token bucket against hand-computed
cases and a step-by-step simulation of its definition, the per-key limiter, and the
micro-batcher under real asyncio concurrency (results reach their own caller, batches never
exceed max_batch, a lone request waits about max_wait, errors stay inside their batch, close()
drains)."""

from __future__ import annotations

import asyncio
import math
import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.production.model_api_batching"


class FakeClock:
    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_token_bucket_hand_computed(impl):
    """burst=3, rate=2/s: three free requests, then waits of 0.5 s and 0.25 s as tokens refill."""
    clock = FakeClock(10.0)
    bucket = impl.TokenBucket(rate=2.0, burst=3, clock=clock)
    assert [bucket.acquire() for _ in range(3)] == [0.0, 0.0, 0.0], "a full bucket allows burst"
    assert bucket.acquire() == pytest.approx(0.5), "empty bucket: 1 token at 2/s is 0.5 s away"
    assert bucket.acquire() == pytest.approx(0.5), "a refused request must not spend tokens"
    clock.now += 0.25  # half a token back
    assert bucket.acquire() == pytest.approx(0.25)
    clock.now += 0.25
    assert bucket.acquire() == 0.0, "after 0.5 s at 2/s one token is back"
    assert bucket.acquire() == pytest.approx(0.5)
    clock.now += 100.0  # refill is capped at burst
    assert [bucket.acquire() == 0.0 for _ in range(4)] == [True, True, True, False]


@settings(max_examples=40, deadline=None)
@given(
    rate=st.sampled_from([0.25, 0.5, 1.0, 2.0, 4.0]),
    burst=st.integers(1, 5),
    eighths=st.lists(st.integers(0, 16), min_size=1, max_size=40),
)
def test_token_bucket_matches_its_definition(impl, rate, burst, eighths):
    """Over any request stream the bucket follows tokens = min(burst, tokens + rate*dt)."""
    clock = FakeClock()  # gaps in eighths of a second and power-of-two rates: exact floats
    bucket = impl.TokenBucket(rate=rate, burst=burst, clock=clock)
    tokens, allowed = float(burst), 0
    for gap in (e / 8 for e in eighths):
        clock.now += gap
        tokens = min(burst, tokens + gap * rate)
        want = 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate
        tokens -= 1.0 if tokens >= 1.0 else 0.0
        got = bucket.acquire()
        allowed += got == 0.0
        assert got == pytest.approx(want, rel=1e-9, abs=1e-9), f"wait {got}, expected {want}"
    assert allowed <= burst + rate * clock.now + 1e-9, "more requests passed than the rate allows"


def test_token_bucket_rejects_bad_limits(impl):
    """rate must be finite and > 0, burst at least 1; a valid bucket still works."""
    for rate, burst in ((0.0, 1), (-1.0, 1), (math.nan, 1), (math.inf, 1), (1.0, 0)):
        with pytest.raises(ValueError):
            impl.TokenBucket(rate=rate, burst=burst, clock=FakeClock())
    assert impl.TokenBucket(rate=1.0, burst=1, clock=FakeClock()).acquire() == 0.0


def test_rate_limiter_keeps_one_bucket_per_key(impl):
    """Each key has its own bucket and limit: one client exhausting its burst leaves others alone."""
    clock = FakeClock()
    limiter = impl.RateLimiter({"a": (1.0, 2), "b": (4.0, 1)}, clock)
    assert [limiter.check("a") for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]
    assert limiter.check("b") == 0.0, "key b must not share key a's bucket"
    assert limiter.check("b") == pytest.approx(0.25), "key b's own rate is 4/s"
    clock.now = 1.0
    assert limiter.check("a") == 0.0


def test_rate_limiter_is_thread_safe(impl):
    """Eight threads hammering one key get exactly burst successes, never more."""
    limiter = impl.RateLimiter({"k": (1e-6, 50)}, FakeClock())
    results: list[float] = []
    lock = threading.Lock()

    failures: list[BaseException] = []

    def hammer():
        try:  # an exception escaping a thread would only be printed, not fail the test
            mine = [limiter.check("k") for _ in range(20)]
        except BaseException as error:  # noqa: BLE001
            failures.append(error)
            return
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=hammer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if failures:
        raise failures[0]
    assert sum(r == 0.0 for r in results) == 50, "exactly burst requests may pass"


class Recorder:
    """A batch function that doubles numbers, records batch sizes and can be made slow."""

    def __init__(self, delay: float = 0.0, fail_on=None):
        self.sizes: list[int] = []
        self.delay, self.fail_on = delay, fail_on

    def __call__(self, items):
        self.sizes.append(len(items))
        time.sleep(self.delay)
        if self.fail_on is not None and self.fail_on in items:
            raise ValueError(f"bad item {self.fail_on}")
        return [2 * x for x in items]


def test_results_reach_their_own_caller_and_batches_stay_small(impl):
    """60 concurrent callers each get 2*x for their own x; no batch exceeds max_batch."""
    fn = Recorder(delay=0.01)
    seen: list[int] = []
    batcher = impl.MicroBatcher(fn, max_batch=8, max_wait_ms=20.0, on_batch=seen.append)

    async def one(x):
        await asyncio.sleep((x % 7) * 0.002)
        return await batcher.submit(x)

    async def main():
        return await asyncio.gather(*(one(x) for x in range(60)))

    assert asyncio.run(main()) == [2 * x for x in range(60)], "a result went to the wrong caller"
    assert sum(fn.sizes) == 60 and max(fn.sizes) <= 8, f"batch sizes {fn.sizes}"
    assert len(fn.sizes) <= 30, f"concurrent requests were not batched: sizes {fn.sizes}"
    assert seen == fn.sizes, "on_batch must see every batch size"


def test_lone_request_waits_about_max_wait(impl):
    """A lone request is served after about max_wait_ms; a full batch does not wait at all."""
    fn = Recorder()

    async def lone():
        batcher = impl.MicroBatcher(fn, max_batch=16, max_wait_ms=60.0)
        start = time.perf_counter()
        assert await batcher.submit(5) == 10
        return time.perf_counter() - start

    elapsed = asyncio.run(lone())
    assert 0.05 <= elapsed < 1.0, f"lone request took {elapsed:.3f} s for max_wait 60 ms"

    async def full():
        batcher = impl.MicroBatcher(fn, max_batch=4, max_wait_ms=5_000.0)
        start = time.perf_counter()
        out = await asyncio.gather(*(batcher.submit(x) for x in range(4)))
        return out, time.perf_counter() - start

    out, elapsed = asyncio.run(full())
    assert out == [0, 2, 4, 6] and elapsed < 2.0, f"a full batch waited {elapsed:.2f} s"
    assert fn.sizes == [1, 4]


def test_errors_reach_only_their_batch(impl):
    """A failing batch fails its own callers; the next batch is still served."""
    fn = Recorder(fail_on=-1)
    batcher = impl.MicroBatcher(fn, max_batch=2, max_wait_ms=200.0)

    async def main():
        return await asyncio.gather(*(batcher.submit(x) for x in (1, -1, 3, 4)),
                                    return_exceptions=True)  # fmt: skip

    first, second, third, fourth = asyncio.run(main())
    assert isinstance(first, ValueError) and isinstance(second, ValueError)
    assert (third, fourth) == (6, 8), "the batch after a failure must still succeed"
    assert fn.sizes == [2, 2]


def test_wrong_result_count_is_an_error(impl):
    """A batch function returning fewer results than items fails that batch's callers only."""
    batcher = impl.MicroBatcher(lambda items: items[:-1] if len(items) == 3 else items,
                                max_batch=3, max_wait_ms=200.0)  # fmt: skip

    async def main():
        bad = await asyncio.gather(*(batcher.submit(x) for x in range(3)), return_exceptions=True)
        return bad, await batcher.submit(7)

    bad, good = asyncio.run(main())
    assert all(isinstance(r, Exception) for r in bad), f"a short result list was handed out: {bad}"
    assert good == 7, "the batcher must keep serving after a bad batch"


def test_close_drains_then_refuses(impl):
    """close() answers everything already queued, then submit raises BatcherClosed."""
    fn = Recorder(delay=0.02)
    batcher = impl.MicroBatcher(fn, max_batch=3, max_wait_ms=1_000.0)

    async def main():
        pending = [asyncio.ensure_future(batcher.submit(x)) for x in range(5)]
        try:
            await asyncio.sleep(0.01)  # all five queued, the first batch under way
            await batcher.close()
            assert all(p.done() for p in pending), "close() returned before the queue drained"
            with pytest.raises(impl.BatcherClosed):
                await batcher.submit(9)
            return [p.result() for p in pending]
        finally:  # never leave a task whose error nobody read (it is logged at exit)
            await asyncio.gather(*pending, return_exceptions=True)

    assert asyncio.run(main()) == [0, 2, 4, 6, 8]
    assert fn.sizes == [3, 2], "the leftover items must be served without waiting max_wait"


def test_batcher_rejects_bad_settings(impl):
    """max_batch >= 1 and a finite max_wait_ms >= 0; max_batch=1 serves one at a time."""
    for kwargs in ({"max_batch": 0}, {"max_wait_ms": -1.0}, {"max_wait_ms": math.nan}):
        with pytest.raises(ValueError):
            impl.MicroBatcher(lambda items: items, **kwargs)
    fn = Recorder()
    one = impl.MicroBatcher(fn, max_batch=1, max_wait_ms=0.0)

    async def main():
        return await asyncio.gather(*(one.submit(x) for x in range(3)))

    assert asyncio.run(main()) == [0, 2, 4] and fn.sizes == [1, 1, 1]
