"""The real server: `airoad serve bert-sentiment --quick --ui` in a subprocess on a free loopback
port (started once for this file, always stopped), fuzzed with schemathesis against its own
OpenAPI schema, load-tested with async httpx, its demo page fetched, and stopped with SIGTERM
while requests are in flight.

The server runs under a Python audit hook that reports any socket connect or name lookup to a
host other than this machine: the demo page (gradio) must not phone home."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import statistics
import subprocess
import sys
import time

import httpx
import pytest

LAB = "bert-sentiment"
KEY = "fuzz-and-load-key"  # served with a rate limit far above what these tests send
AUDITED_MAIN = """
import sys
LOCAL = {"127.0.0.1", "::1", "localhost", "0.0.0.0", "", None}
def hook(event, args):
    if event == "socket.connect" and isinstance(args[1], tuple) and args[1][0] not in LOCAL:
        sys.stderr.write(f"OUTBOUND connect {args[1]!r}\\n")
    elif event == "socket.getaddrinfo":
        host = args[0].decode() if isinstance(args[0], bytes) else args[0]
        if host not in LOCAL:
            sys.stderr.write(f"OUTBOUND lookup {host!r}\\n")
sys.addaudithook(hook)
sys.argv[0] = "airoad"
from airoad.cli import app
app()
"""
REVIEWS = [
    "Great coffee, rich and smooth. I buy it every month.",
    "The bag arrived torn and the chips were stale.",
    "My dog loves these treats but they are a bit pricey for what you get in the box.",
    "Tastes like cardboard. Would not recommend to anyone.",
]


class Server:
    def __init__(self, proc: subprocess.Popen, url: str, out, err):
        self.proc, self.url, self.out, self.err = proc, url, out, err

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


def _start(tmp) -> Server:
    out, err = tmp / "stdout.txt", tmp / "stderr.txt"
    env = {**os.environ, "AIROAD_HOME": str(tmp / "home"), "OMP_NUM_THREADS": "1"}
    env |= {"COLUMNS": "200", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-c", AUDITED_MAIN, "serve", LAB, "--quick", "--port", "0"]
    cmd += ["--api-key", KEY, "--rate", "100000", "--ui"]
    with open(out, "w") as fo, open(err, "w") as fe:
        proc = subprocess.Popen(cmd, stdout=fo, stderr=fe, env=env, start_new_session=True)
    deadline = time.monotonic() + 240
    url = None
    while time.monotonic() < deadline and proc.poll() is None:
        found = re.search(r"at (http://127\.0\.0\.1:\d+)", out.read_text())
        if found:
            url = found.group(1)
            if httpx.get(url + "/ready").status_code == 200:
                return Server(proc, url, out, err)
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"server did not start:\n{out.read_text()}\n{err.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def server(lab_artifact, tmp_path_factory):
    lab_artifact(LAB, "classifier")  # the quick model is in the cache before the server looks
    srv = _start(tmp_path_factory.mktemp("live_server"))
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait(timeout=30)


def test_fuzzing_finds_no_5xx_and_no_schema_violation(server):
    """schemathesis, valid and invalid inputs on every route: no 5xx, every answer in the schema."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi import checks as oa

    schema = schemathesis.openapi.from_url(server.url + "/openapi.json")
    conformance = [
        not_a_server_error,
        oa.status_code_conformance,
        oa.content_type_conformance,
        oa.response_headers_conformance,
        oa.response_schema_conformance,
    ]
    statuses: list[int] = []

    def fuzz(op, mode, checks) -> None:
        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=12,
            derandomize=True,  # a fixed seed: the same requests every run
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def run(case):
            response = case.call_and_validate(
                base_url=server.url, headers={"X-API-Key": KEY}, checks=checks, timeout=60
            )
            statuses.append(response.status_code)

        run()

    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/predict", "/predict/batch", "/drift", "/generate"}
    for op in operations:
        fuzz(op, GenerationMode.POSITIVE, conformance)
        if op.body:  # routes without input have no invalid input to try
            fuzz(op, GenerationMode.NEGATIVE, [*conformance, oa.negative_data_rejection])
    assert all(s < 500 for s in statuses)
    assert statuses.count(200) >= 20, f"too few successful calls: {sorted(set(statuses))}"
    assert 422 in statuses  # the invalid inputs reached validation and were refused


async def _load(url: str, clients: int, seconds: float) -> tuple[list[float], list[int]]:
    latencies, statuses = [], []
    stop = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=60) as client:

        async def one_client(i: int) -> None:
            while time.perf_counter() < stop:
                start = time.perf_counter()
                text = REVIEWS[(i + len(latencies)) % len(REVIEWS)]
                r = await client.post("/predict", json={"text": text}, headers={"X-API-Key": KEY})
                latencies.append(time.perf_counter() - start)
                statuses.append(r.status_code)

        await asyncio.gather(*(one_client(i) for i in range(clients)))
    return latencies, statuses


def test_load_has_no_errors_and_reports_latency(server):
    """16 concurrent clients for 3 s: every request answered 200; throughput and p50/p95/p99."""
    seconds, calls = 3.0, _model_calls(server.url)
    latencies, statuses = asyncio.run(_load(server.url, 16, seconds))
    assert len(latencies) >= 16 and set(statuses) == {200}
    calls = _model_calls(server.url) - calls
    q = statistics.quantiles(latencies, n=100)
    print(
        f"\nload: {len(latencies) / seconds:.1f} req/s, p50 {q[49] * 1e3:.0f} ms, "
        f"p95 {q[94] * 1e3:.0f} ms, p99 {q[98] * 1e3:.0f} ms over {len(latencies)} requests "
        f"in {calls:.0f} model calls"
    )
    assert calls < len(latencies)  # concurrent requests shared model calls (micro-batching)


def test_demo_page_answers_offline(server):
    """/ui serves the Gradio page, its sign-in takes the API key, and nothing left the machine."""
    with httpx.Client(base_url=server.url + "/ui", follow_redirects=True, timeout=30) as client:
        page = client.get("/")
        assert page.status_code == 200 and "gradio" in page.text.lower()
        assert client.get("/config").status_code == 401
        client.post("/login", data={"username": "me", "password": KEY})
        config = client.get("/config")
        assert config.status_code == 200 and "airoad: bert-sentiment" in config.text
    printed = server.out.read_text()
    assert f"API docs: {server.url}/docs" in printed and f"X-API-Key: {KEY}" in printed
    assert "OUTBOUND" not in server.stderr()


def _model_calls(url: str) -> float:
    found = re.search(r"^airoad_batch_size_count (\S+)$", httpx.get(url + "/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_sigterm_finishes_requests_in_flight(server):
    """SIGTERM with requests in flight: every one is answered 200, then the server exits 0."""
    before = _model_calls(server.url)

    async def in_flight() -> list[int]:
        async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
            body = {"texts": [REVIEWS[2] * 4] * 16}
            tasks = [
                asyncio.create_task(
                    client.post("/predict/batch", json=body, headers={"X-API-Key": KEY})
                )
                for _ in range(4)
            ]
            while _model_calls(server.url) == before:  # the model is working on them
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.1)
            server.proc.send_signal(signal.SIGTERM)
            return [r.status_code for r in await asyncio.gather(*tasks)]

    assert asyncio.run(in_flight()) == [200] * 4
    assert server.proc.wait(timeout=60) == 0, server.stderr()[-2000:]
    with pytest.raises(httpx.ConnectError):
        httpx.get(server.url + "/health")
