"""Graders for distributed-data-parallel: ring all-reduce vs dist.all_reduce at 2, 3 and 4
ranks, buckets vs DDP's own assignment, DDP training vs one process on the global batch, and the
alpha-beta fit vs scipy. Multi-rank checks run in one group of 4 workers for the whole module;
the worker entry points below load the implementation under test inside each worker."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
import torch
import torch.distributed as dist
from hypothesis import given, settings
from hypothesis import strategies as st
from scale_testing import group_fixture, impl_ref, load_impl
from torch import nn
from torch.nn.parallel import DistributedDataParallel

REFERENCE = "airoad.scale.distributed_data_parallel"
WORLD = 4
SHAPES = [(0,), (1,), (2,), (3,), (7,), (13,), (3, 5), (64,)]  # empty, fewer than ranks, uneven
COLLECTIVES = (
    "all_reduce",
    "all_gather",
    "all_gather_into_tensor",
    "reduce_scatter",
    "reduce_scatter_tensor",
    "reduce",
    "broadcast",
    "all_to_all",
    "all_to_all_single",
    "scatter",
    "gather",
)

group = group_fixture(WORLD)
WORKER_FIXTURES = ("group",)  # tools/mutate.py: these tests run the reference in workers
_groups: dict[int, dist.ProcessGroup | None] = {}


def _group_of(size: int) -> dist.ProcessGroup | None:
    """Ranks 0..size-1 as a group (the default group at full size); every rank must create
    every subgroup, in the same order, the first time."""
    world = dist.get_world_size()
    if not _groups:
        for s in range(2, world):
            _groups[s] = dist.new_group(list(range(s)))
        _groups[world] = None
    return _groups[size]


@contextlib.contextmanager
def _send_recv_only():
    """Inside: every collective raises, so only point-to-point messages are left."""
    saved = {name: getattr(dist, name) for name in COLLECTIVES}

    def refuse(*args, **kwargs):
        raise AssertionError("use dist.send/recv (or isend/irecv), not a built-in collective")

    for name in COLLECTIVES:
        setattr(dist, name, refuse)
    try:
        yield
    finally:
        for name, fn in saved.items():
            setattr(dist, name, fn)


def _local(shape, rank: int, seed: int, dtype=torch.float64) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed + 1009 * rank)
    if dtype.is_floating_point:
        return torch.randn(shape, generator=gen, dtype=dtype)
    return torch.randint(-50, 50, shape, generator=gen, dtype=dtype)


def _ring_worker(rank, world_size, ref, seed, dtype=torch.float64):
    """For each group size: (size, shape, ours, dist.all_reduce's, returned-is-input)."""
    impl, rows = load_impl(ref), []
    for size in range(2, world_size + 1):
        sub = _group_of(size)
        if rank >= size:
            continue
        for shape in SHAPES:
            x = _local(shape, rank, seed, dtype)
            expected = x.clone()
            dist.all_reduce(expected, group=sub)
            with _send_recv_only():
                out = impl.ring_all_reduce(x, sub)
            rows.append((size, shape, x, expected, out is x))
    return {"file": impl.__file__, "rows": rows}


def _reduce_scatter_worker(rank, world_size, ref, seed):
    impl, rows = load_impl(ref), []
    for size in range(2, world_size + 1):
        sub = _group_of(size)
        if rank >= size:
            continue
        x = _local((11,), rank, seed)
        total = x.clone()
        dist.all_reduce(total, group=sub)
        with _send_recv_only():
            owned = impl.ring_reduce_scatter(x, sub)
        a, b = impl.chunk_bounds(11, size)[owned]
        rows.append((size, owned, x[a:b], total[a:b]))
    return rows


def _all_gather_worker(rank, world_size, ref, seed):
    impl, rows = load_impl(ref), []
    for size in range(2, world_size + 1):
        sub = _group_of(size)
        if rank >= size:
            continue
        full = _local((10,), 0, seed)  # the same on every rank
        owned = (rank + 1) % size
        a, b = impl.chunk_bounds(10, size)[owned]
        x = torch.full_like(full, float("nan"))
        x[a:b] = full[a:b]  # only the owned chunk is known
        with _send_recv_only():
            impl.ring_all_gather(x, owned, sub)
        rows.append((size, x, full))
    return rows


def _mlp(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()


def _batches(seed: int, steps: int, global_batch: int):
    gen = torch.Generator().manual_seed(seed)
    return [
        (
            torch.randn(global_batch, 6, generator=gen, dtype=torch.float64),
            torch.randint(0, 3, (global_batch,), generator=gen),
        )
        for _ in range(steps)
    ]


def _average_worker(rank, world_size, ref, seed, bucket_bytes):
    """Local gradients averaged by ours (ring and a counting dist.all_reduce)."""
    impl = load_impl(ref)
    (x, y), out = _batches(seed, 1, 8 * world_size)[0], {}
    rows = impl.local_slice(len(x), rank, world_size)
    for how in ("ring", "counted"):
        model = _mlp(seed)
        nn.functional.cross_entropy(model(x[rows]), y[rows]).backward()
        calls = []

        def counted(t, g=None, calls=calls):
            calls.append(t.numel())
            dist.all_reduce(t, group=g)
            return t

        if how == "ring":
            with _send_recv_only():
                n = impl.average_gradients(model.parameters(), bucket_bytes)
        else:
            n = impl.average_gradients(model.parameters(), bucket_bytes, all_reduce=counted)
        out[how] = (n, calls, [p.grad.clone() for p in model.parameters()])
    return out


def _train_worker(rank, world_size, ref, seed, steps, lr, manual):
    impl = load_impl(ref)
    model = _mlp(seed)
    batches = _batches(seed, steps, 4 * world_size)
    if manual:
        with _send_recv_only():
            losses = impl.train_steps(
                model, batches, lr, rank, world_size, average=impl.average_gradients
            )
        return losses, [p.detach() for p in model.parameters()]
    ddp = DistributedDataParallel(model)
    losses = impl.train_steps(ddp, batches, lr, rank, world_size)
    return losses, [p.detach() for p in model.parameters()]


def test_ring_all_reduce_equals_dist_all_reduce(impl, group):
    """ring_all_reduce sums in place like dist.all_reduce at 2, 3 and 4 ranks, uneven chunks too."""
    results = group.run(_ring_worker, impl_ref(impl), 0)
    checked = 0
    for rank, result in enumerate(results):
        for size, shape, got, expected, same in result["rows"]:
            where = f"rank {rank} of {size}, shape {shape}"
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12, msg=where)
            assert same, f"{where}: return the input tensor, reduced in place"
            checked += 1
    assert checked == len(SHAPES) * (2 + 3 + 4)


def test_ring_all_reduce_integers_exact(impl, group):
    """ring_all_reduce gives exactly dist.all_reduce's sums on integer tensors."""
    for result in group.run(_ring_worker, impl_ref(impl), 7, torch.int64):
        for size, shape, got, expected, _ in result["rows"]:
            assert torch.equal(got, expected), f"{size} ranks, shape {shape}: {got} != {expected}"


def test_reduce_scatter_owns_the_full_sum_of_one_chunk(impl, group):
    """After ring_reduce_scatter rank r owns chunk (r + 1) mod p, holding the full sum."""
    for rank, rows in enumerate(group.run(_reduce_scatter_worker, impl_ref(impl), 1)):
        for size, owned, got, expected in rows:
            assert owned == (rank + 1) % size, f"rank {rank} of {size} owns chunk {owned}"
            torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)


def test_all_gather_spreads_the_owned_chunks(impl, group):
    """ring_all_gather fills every chunk from the rank that owns it."""
    for rank, rows in enumerate(group.run(_all_gather_worker, impl_ref(impl), 2)):
        for size, got, full in rows:
            torch.testing.assert_close(got, full, rtol=0, atol=0, msg=f"rank {rank} of {size}")


@settings(max_examples=60, deadline=None)
@given(numel=st.integers(0, 200), world=st.integers(1, 9))
def test_chunk_bounds_match_tensor_split(impl, numel, world):
    """chunk_bounds splits like torch.tensor_split: contiguous, sizes differ by at most one."""
    pieces = torch.tensor_split(torch.arange(numel), world)
    expected = [(int(p[0]), int(p[-1]) + 1) if len(p) else None for p in pieces]
    got = impl.chunk_bounds(numel, world)
    assert len(got) == world
    for (a, b), want, piece in zip(got, expected, pieces, strict=True):
        assert b - a == len(piece), f"chunk sizes {got} differ from tensor_split's"
        assert want is None or (a, b) == want, f"{(a, b)} != {want}"
    assert got[0][0] == 0 and got[-1][1] == numel


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 60), min_size=1, max_size=9),
    kinds=st.lists(st.sampled_from([torch.float32, torch.float64, torch.float16]), min_size=9),
    cap=st.integers(1, 500),
    first=st.one_of(st.none(), st.integers(1, 500)),
)
def test_bucket_assignment_matches_ddp(impl, sizes, kinds, cap, first):
    """bucket_assignment gives the same buckets as DDP's _compute_bucket_assignment_by_size."""
    tensors = [torch.zeros(n, dtype=kind) for n, kind in zip(sizes, kinds, strict=False)]
    limits = [cap] if first is None else [first, cap]
    expected, _ = dist._compute_bucket_assignment_by_size(tensors, limits)
    assert impl.bucket_assignment(tensors, cap, first) == expected, f"limits {limits}"


def test_average_gradients_equals_single_process(impl, group):
    """average_gradients turns local gradients into the global-batch gradient, one message per bucket."""
    seed, bucket_bytes = 3, 200  # small buckets: several messages
    results = group.run(_average_worker, impl_ref(impl), seed, bucket_bytes)
    model = _mlp(seed)
    x, y = _batches(seed, 1, 8 * WORLD)[0]
    nn.functional.cross_entropy(model(x), y).backward()
    grads = [p.grad for p in model.parameters()]
    expected = dist._compute_bucket_assignment_by_size(grads[::-1], [bucket_bytes])[0]
    for rank, out in enumerate(results):
        for how, (n, _, got) in out.items():
            for g, want in zip(got, grads, strict=True):
                torch.testing.assert_close(g, want, rtol=1e-10, atol=1e-12, msg=f"{how} {rank}")
            assert n == len(expected), f"{n} buckets, DDP makes {len(expected)}"
        sizes = [sum(grads[::-1][i].numel() for i in b) for b in expected]
        assert out["counted"][1] == sizes, "all_reduce once per bucket, in bucket order"


@pytest.mark.parametrize("manual", [False, True], ids=["torch_ddp", "ring_buckets"])
def test_training_equals_single_process_on_the_global_batch(impl, group, manual):
    """Parameters after N data-parallel SGD steps equal one process trained on the global batches."""
    seed, steps, lr = 5, 4, 0.5
    results = group.run(_train_worker, impl_ref(impl), seed, steps, lr, manual)
    model, batches = _mlp(seed), _batches(seed, steps, 4 * WORLD)
    single_losses = impl.train_steps(model, batches, lr)
    expected = _mlp(seed)  # plain SGD written out with autograd: w <- w - lr * dL/dw
    for x, y in batches:
        grads = torch.autograd.grad(
            nn.functional.cross_entropy(expected(x), y), [*expected.parameters()]
        )
        with torch.no_grad():
            for w, g in zip(expected.parameters(), grads, strict=True):
                w -= lr * g
    for got, want in zip(model.parameters(), expected.parameters(), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14, msg="one-process SGD steps")
    mean_losses = np.mean([losses for losses, _ in results], axis=0)
    np.testing.assert_allclose(mean_losses, single_losses, rtol=1e-10, err_msg="mean rank loss")
    for rank, (_, params) in enumerate(results):
        for got, want in zip(params, model.parameters(), strict=True):
            torch.testing.assert_close(
                got, want.detach(), rtol=1e-9, atol=1e-11, msg=f"rank {rank}"
            )
    assert single_losses[-1] < single_losses[0], "training should lower the loss"


def test_local_slice_splits_the_batch_evenly(impl):
    """local_slice gives equal contiguous shares and refuses a batch that does not split evenly."""
    rows = torch.arange(12)
    parts = [rows[impl.local_slice(12, r, 3)] for r in range(3)]
    torch.testing.assert_close(torch.cat(parts), rows)
    assert [len(p) for p in parts] == [4, 4, 4]
    with pytest.raises(ValueError, match="evenly"):
        impl.local_slice(10, 0, 4)


@settings(max_examples=25, deadline=None)
@given(
    alpha=st.floats(1e-6, 1e-3),
    beta=st.floats(1e-10, 1e-8),
    noise_seed=st.integers(0, 1000),
)
def test_alpha_beta_fit_matches_scipy(impl, alpha, beta, noise_seed):
    """fit_alpha_beta finds the same relative-error least-squares fit as scipy's curve_fit."""
    from scipy.optimize import curve_fit  # here, so the workers never import it

    n = np.repeat(np.logspace(2, 7, 6), 2)
    p = np.tile([2, 4], 6)
    noise = np.random.default_rng(noise_seed).lognormal(0, 0.1, n.size)
    t = (2 * (p - 1) * alpha + 2 * (p - 1) / p * n * beta) * noise
    np.testing.assert_allclose(
        impl.allreduce_time(n, 2, alpha, beta)[::2], (2 * alpha + n * beta)[::2]
    )

    def model(x, a, b):
        return 2 * (x[1] - 1) * a + 2 * (x[1] - 1) / x[1] * x[0] * b

    (a_ref, b_ref), _ = curve_fit(model, np.vstack([n, p]), t, p0=(alpha, beta), sigma=t)
    a, b = impl.fit_alpha_beta(n, p, t)
    np.testing.assert_allclose([a, b], [a_ref, b_ref], rtol=1e-5, err_msg="(alpha, beta)")


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), size=st.integers(3, 12))
def test_alpha_beta_fit_is_scipy_nnls(impl, seed, size):
    """fit_alpha_beta never returns a negative cost: it is scipy's nnls on the relative-error system."""
    from scipy.optimize import nnls

    rng = np.random.default_rng(seed)
    n = rng.uniform(1e2, 1e7, size)
    p = rng.integers(2, 9, size)
    t = rng.uniform(1e-4, 1e-1, size)  # times unrelated to size: a negative slope is likely
    A = np.column_stack([2 * (p - 1), 2 * (p - 1) / p * n]) / t[:, None]
    want, _ = nnls(A, np.ones(size))
    got = np.array(impl.fit_alpha_beta(n, p, t))
    assert (got >= 0).all(), f"negative cost {got}"
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-14, err_msg="(alpha, beta)")


@settings(max_examples=40, deadline=None)
@given(
    compute=st.floats(1e-4, 1.0),
    n_bytes=st.floats(1e3, 1e9),
    world=st.integers(1, 1024),
    overlap=st.booleans(),
)
def test_step_time_adds_or_overlaps(impl, compute, n_bytes, world, overlap):
    """step_time is compute + all-reduce without overlap and the larger of the two with it."""
    alpha, beta = 3e-5, 2e-9
    comm = 2 * (world - 1) * alpha + 2 * (world - 1) / world * n_bytes * beta
    want = max(compute, comm) if overlap else compute + comm
    got = impl.step_time(compute, n_bytes, world, alpha, beta, overlap)
    np.testing.assert_allclose(got, want, rtol=1e-12)
