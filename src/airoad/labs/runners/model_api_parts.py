"""Parts of the model-api runner: a real uvicorn server on loopback, a closed-loop async load
test, the guard probes, the shutdown probe and the latency figure.

The server runs in a background thread of this process on a socket we bind ourselves
(127.0.0.1, port 0: the OS picks a free port, so two runs never collide) and is always stopped
when its block ends, even on an error.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from airoad.errors import AiroadError
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure

KEY = "lab-key"  # the load-test client's key, with a limit far above what it sends
SLOW_KEY = "slow-key"  # a key with a small limit, to show the 429s


@contextmanager
def serve(app: Any) -> Iterator[tuple[str, Any]]:
    """Run ``app`` under uvicorn on 127.0.0.1 in a thread; yield (base URL, uvicorn server)."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                            timeout_graceful_shutdown=30)  # fmt: skip
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                raise AiroadError(f"the uvicorn server on 127.0.0.1:{port} did not start")
            time.sleep(0.01)
        yield f"http://127.0.0.1:{port}", server
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def model_alone(predictor: Any, texts: list[str], sizes: tuple[int, ...]) -> list[dict]:
    """CPU ms per text of the model alone at each batch size: one padded forward pass per
    batch, and the predictor's own length-sorted sub-batches (``predictor.sub_batch``)."""
    own, rows = predictor.sub_batch, []
    try:
        for size in sizes:
            row = {"batch": size}
            for name, sub in (("padded", size), ("sorted", min(own, size))):
                predictor.sub_batch = sub
                start = time.process_time()
                for i in range(0, len(texts) - size + 1, size):
                    predictor.predict_proba(texts[i : i + size])
                row[f"{name}_cpu_ms"] = (
                    1000 * (time.process_time() - start) / (len(texts) // size * size)
                )
            rows.append(row)
    finally:
        predictor.sub_batch = own
    return rows


def wait_ready(base: str, timeout: float = 120.0) -> None:
    """Poll /ready until the model is loaded (200)."""
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if httpx.get(f"{base}/ready", timeout=5).status_code == 200:
            return
        time.sleep(0.05)
    raise AiroadError(f"{base}/ready did not answer 200 within {timeout:.0f} s")


def predict_batch(base: str, texts: list[str], chunk: int) -> np.ndarray:
    """P(label) rows for ``texts`` from /predict/batch, ``chunk`` texts per request."""
    import httpx

    rows = []
    with httpx.Client(base_url=base, headers={"X-API-Key": KEY}, timeout=300) as client:
        for start in range(0, len(texts), chunk):
            r = client.post("/predict/batch", json={"texts": texts[start : start + chunk]})
            r.raise_for_status()
            rows += [list(p["probabilities"].values()) for p in r.json()["predictions"]]
    return np.array(rows)


def load_test(base: str, texts: list[str], clients: int, n_requests: int) -> dict:
    """``clients`` closed-loop clients send ``n_requests`` /predict calls in all: throughput,
    latency percentiles, and the CPU time the whole process spent per request (on a shared
    machine wall-clock numbers move with the neighbours' load; CPU time much less)."""
    import httpx

    latencies: list[float] = []
    errors = [0]
    counter = iter(range(n_requests))

    async def client_loop(client: httpx.AsyncClient) -> None:
        for i in counter:  # the shared iterator hands each request number out once
            start = time.perf_counter()
            r = await client.post("/predict", json={"text": texts[i % len(texts)]})
            latencies.append(time.perf_counter() - start)
            errors[0] += r.status_code != 200

    async def main() -> float:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEY}, limits=limits,
                                     timeout=300) as client:  # fmt: skip
            start = time.perf_counter()
            await asyncio.gather(*(client_loop(client) for _ in range(clients)))
            return time.perf_counter() - start

    cpu0 = time.process_time()  # every thread of this process: server, model and client
    wall = asyncio.run(main())
    cpu = time.process_time() - cpu0
    ms = np.array(latencies) * 1000
    return {
        "clients": clients, "requests": len(latencies), "errors": errors[0],
        "throughput_rps": len(latencies) / wall,
        "p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)), "cpu_ms_per_request": 1000 * cpu / len(ms),
    }  # fmt: skip


def batch_stats(base: str) -> tuple[float, float]:
    """(model calls, texts predicted) so far, scraped from /metrics like Prometheus would."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{base}/metrics", timeout=30).text
    values = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return values.get("airoad_batch_size_count", 0.0), values.get("airoad_batch_size_sum", 0.0)


def guard_probes(base: str, max_chars: int, max_body: int, burst: int) -> list[dict]:
    """One request per guard, and what the service answered (status, sentence, milliseconds)."""
    import httpx

    ok = {"X-API-Key": KEY}
    probes = [
        ("no API key", "/predict", {"json": {"text": "fine"}}),
        ("unknown API key", "/predict", {"json": {"text": "fine"}, "headers": {"X-API-Key": "x"}}),
        ("empty text", "/predict", {"json": {"text": ""}, "headers": ok}),
        (f"text over {max_chars} chars", "/predict", {"json": {"text": "a" * (max_chars + 1)},
                                                      "headers": ok}),
        ("empty batch", "/predict/batch", {"json": {"texts": []}, "headers": ok}),
        ("broken JSON", "/predict", {"content": b'{"text": ', "headers": {
            **ok, "Content-Type": "application/json"}}),
        (f"body over {max_body} bytes", "/predict", {"content": b"x" * (max_body + 1),
                                                     "headers": ok}),
        ("no drift monitor", "/drift", {"headers": ok}),
    ]  # fmt: skip
    rows = []
    with httpx.Client(base_url=base, timeout=60) as client:
        for name, path, kwargs in probes:
            method = "GET" if path == "/drift" else "POST"
            start = time.perf_counter()
            r = client.request(method, path, **kwargs)
            rows.append(_probe_row(name, r, start))
        slow = {"X-API-Key": SLOW_KEY}
        answers = [client.post("/predict", json={"text": "ok"}, headers=slow)
                   for _ in range(burst + 1)]  # fmt: skip
        rows.append(_probe_row(f"request {burst + 1} in a burst of {burst}", answers[-1], None))
        rows[-1]["accepted_before"] = sum(a.status_code == 200 for a in answers[:-1])
    return rows


def _probe_row(name: str, r: Any, start: float | None) -> dict:
    """One probe's answer; ``ms`` is None for the burst (many requests, not one)."""
    ms = (time.perf_counter() - start) * 1000 if start is not None else None
    return {"probe": name, "status": r.status_code, "detail": r.json().get("detail", ""),
            "retry_after": r.headers.get("retry-after", ""), "ms": ms}  # fmt: skip


def shutdown_probe(app: Any, texts: list[str], in_flight: int) -> dict:
    """Send ``in_flight`` requests, ask the server to stop while they run; count the answers."""
    import httpx

    with serve(app) as (base, server):
        wait_ready(base)

        async def main() -> list:
            async with httpx.AsyncClient(base_url=base, headers={"X-API-Key": KEY},
                                         timeout=120) as client:  # fmt: skip
                seen = server.server_state.total_requests
                calls = [asyncio.ensure_future(client.post("/predict", json={"text": t}))
                         for t in (texts * in_flight)[:in_flight]]  # fmt: skip
                for _ in range(3000):  # until the server has read every request (at most 30 s)
                    if server.server_state.total_requests - seen >= in_flight:
                        break
                    await asyncio.sleep(0.01)
                server.should_exit = True
                return await asyncio.gather(*calls, return_exceptions=True)

        answers = asyncio.run(main())
        after = _refused_after_stop(base)
    ok = sum(getattr(a, "status_code", 0) == 200 for a in answers)
    return {"in_flight": in_flight, "completed": ok, "lost": in_flight - ok, "refused_after": after}


def _refused_after_stop(base: str) -> bool:
    """True when a new connection is refused once the server has stopped."""
    import httpx

    for _ in range(200):
        try:
            httpx.get(f"{base}/health", timeout=1)
        except httpx.TransportError:
            return True
        time.sleep(0.05)
    return False


def latency_figure(rows: list[dict], ctx: RunContext) -> None:
    """Throughput, p50/p99 latency and CPU per request against concurrent clients, batching on
    and off."""
    with figure(ctx, "serving_latency", 1, 3, figsize=(13, 4)) as (fig, (ax_t, ax_l, ax_c)):
        for mode, color in (("micro-batching", "tab:blue"), ("one at a time", "tab:red")):
            mine = [r for r in rows if r["mode"] == mode]
            clients = [r["clients"] for r in mine]
            ax_t.plot(clients, [r["throughput_rps"] for r in mine], "o-", color=color, label=mode)
            ax_l.plot(clients, [r["p50_ms"] for r in mine], "o-", color=color, label=f"{mode} p50")
            ax_l.plot(clients, [r["p99_ms"] for r in mine], "s--", color=color,
                      label=f"{mode} p99")  # fmt: skip
            ax_c.plot(clients, [r["cpu_ms_per_request"] for r in mine], "o-", color=color,
                      label=mode)  # fmt: skip
        for ax in (ax_t, ax_l, ax_c):
            ax.set_xscale("log", base=2)
            ax.set_xticks(clients, [str(c) for c in clients])
            ax.set_xlabel("concurrent clients")
            ax.legend(fontsize=8)
        ax_t.set(ylabel="requests / s", title="throughput (wall clock)")
        ax_l.set_yscale("log")
        ax_l.set(ylabel="latency (ms)", title="latency per request")
        ax_c.set(ylabel="CPU ms per request", title="CPU per request (whole process)")
        ax_t.set_ylim(bottom=0)
        ax_c.set_ylim(bottom=0)
