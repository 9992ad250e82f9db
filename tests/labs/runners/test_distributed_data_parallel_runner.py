"""The distributed-data-parallel runner on real MNIST (quick config: spawned gloo workers): DDP
matches one process, the all-reduce benchmark and the alpha-beta fit are consistent, and the
scaling table follows the model."""

from __future__ import annotations

import numpy as np
import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import distributed_data_parallel as runner
from airoad.scale import distributed_data_parallel as ref


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    config = runner.Config(**runner.QUICK)
    return runner.run(config, RunContext(tmp_path_factory.mktemp("ddp")))


def test_ddp_equals_one_process_on_mnist(result):
    m, rows = result.metrics, result.tables["ddp_vs_single"]
    assert len(rows) == runner.QUICK["steps"]
    assert m["max_param_diff"] < 1e-12, "float64 DDP should match one process to rounding"
    assert m["max_loss_diff"] < 1e-12
    assert m["ddp_accuracy"] == m["single_accuracy"] > 0.2  # better than chance after 12 steps
    assert rows[-1]["single_loss"] < rows[0]["single_loss"], "training should lower the loss"
    assert m["buckets"] == m["ours_buckets"] >= 1, "our bucket_assignment should match DDP's"
    assert m["ddp_step_ms"] > 0 and m["compute_ms"] > 0


def test_benchmark_and_fit_are_consistent(result):
    bench, m = result.tables["bandwidth"], result.metrics
    sizes = [2**k for k in range(10, runner.QUICK["bench_max_log2"] + 1)]
    assert sorted({r["world"] for r in bench}) == list(runner.QUICK["bench_world_sizes"])
    assert [r["bytes"] for r in bench if r["world"] == 2] == sizes
    for r in bench:
        assert r["ours_s"] > 0 and r["gloo_s"] > 0
        p = r["world"]
        assert r["ours_busbw"] == pytest.approx(r["bytes"] * 2 * (p - 1) / p / r["ours_s"] / 1e9)
    assert m["alpha_us"] > 0 and m["bandwidth_gbs"] > 0, "the fit should give positive costs"
    n, p, t = (np.array([r[k] for r in bench], float) for k in ("bytes", "world", "ours_s"))
    alpha, beta = ref.fit_alpha_beta(n, p, t)
    assert m["alpha_us"] == pytest.approx(alpha * 1e6)


def test_scaling_table_follows_the_model(result):
    table, m = result.tables["scaling"], result.metrics
    workers = [r["workers"] for r in table]
    assert set(runner.Config().predict_workers) <= set(workers)
    assert table[0]["workers"] == 1 and table[0]["allreduce_ms"] == 0
    steps = [r["step_ms"] for r in table]
    assert steps == sorted(steps), "more workers never make the ring cheaper"
    for r in table:
        assert r["step_ms_overlap"] <= r["step_ms"] + 1e-12
        assert 0 < r["efficiency"] <= 1
        assert r["step_ms"] == pytest.approx(m["compute_ms"] + r["allreduce_ms"])
    assert "512 workers" in m["prediction"]
    assert {p.stem for p in result.figures} == {"ddp_vs_single", "bandwidth", "scaling"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)


def test_uneven_global_batch_is_refused():
    with pytest.raises(ConfigError, match="global_batch"):
        runner.Config(global_batch=63, world_size=2)


def test_a_latency_only_fit_reports_unbounded_bandwidth():
    """beta = 0 (the non-negative fit on noisy timings of small messages; a CI failure) must not
    divide by zero: the scaling table is still made and the bandwidth is reported as infinite."""
    import math

    import torch

    config = runner.Config(**runner.QUICK)
    table, m = runner._scaling(config, {"compute_ms": 2.0}, torch.nn.Linear(4, 2), 1e-5, 0.0, 0.1)
    assert math.isinf(m["bandwidth_gbs"]) and m["alpha_us"] == pytest.approx(10.0)
    assert [r["workers"] for r in table] and all(r["step_ms"] > 0 for r in table)
