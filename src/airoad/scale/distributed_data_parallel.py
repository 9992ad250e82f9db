"""Data-parallel training from the wire up: a ring all-reduce over point-to-point messages,
DDP-style gradient buckets, a training step that matches one process on the global batch, and
the alpha-beta cost model that says how the ring scales.

Every rank holds a full copy of the model and a 1/p slice of the global batch. After backward,
the gradients are averaged across ranks (an all-reduce divided by p), so every copy takes the
same optimiser step as one process would on the whole batch:

    g = (1/p) * sum_r g_r,   with g_r the mean-loss gradient on rank r's B/p examples.

A ring all-reduce does that sum with 2(p-1) messages per rank, each 1/p of the tensor:
p-1 reduce-scatter steps (each rank ends owning the full sum of one chunk), then p-1
all-gather steps (the owned chunks travel round the ring). Its time is
``2(p-1) * alpha + 2(p-1)/p * n * beta`` for n bytes (alpha: latency per message, beta:
seconds per byte), so bandwidth cost stays flat as p grows while latency cost grows linearly.

Functions take an optional process ``group`` (None: the default group); ranks in messages
are translated to global ranks, as ``dist.send``/``dist.recv`` expect.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch import nn


def chunk_bounds(numel: int, world_size: int) -> list[tuple[int, int]]:
    """Split ``range(numel)`` into ``world_size`` contiguous ``(start, stop)`` chunks.

    The first ``numel % world_size`` chunks get one extra element (as ``torch.tensor_split``);
    chunks may be empty when ``numel < world_size``.
    """
    if world_size < 1 or numel < 0:
        raise ValueError(f"need world_size >= 1 and numel >= 0, got {world_size} and {numel}")
    base, extra = divmod(numel, world_size)
    sizes = [base + (i < extra) for i in range(world_size)]
    stops = np.cumsum(sizes).tolist()
    return [(stop - size, stop) for size, stop in zip(sizes, stops, strict=True)]


def _exchange(
    send: torch.Tensor, recv: torch.Tensor, right: int, left: int, group: dist.ProcessGroup | None
) -> None:
    """Send ``send`` to the right neighbour while receiving ``recv`` from the left one.

    The send is posted without waiting (``isend``): if every rank blocked in a send first, a
    ring of blocking sends could wait on each other forever.
    """
    request = dist.isend(send, dst=right, group=group)
    dist.recv(recv, src=left, group=group)
    request.wait()


def _ring(group: dist.ProcessGroup | None) -> tuple[int, int, int, int]:
    """(rank, world_size, global rank of the right neighbour, of the left one) in ``group``."""
    rank, world = dist.get_rank(group), dist.get_world_size(group)
    to_global = (lambda r: r) if group is None else (lambda r: dist.get_global_rank(group, r))
    return rank, world, to_global((rank + 1) % world), to_global((rank - 1) % world)


def ring_reduce_scatter(flat: torch.Tensor, group: dist.ProcessGroup | None = None) -> int:
    """Reduce-scatter a 1-D tensor in place round the ring; return the chunk index this rank owns.

    Step s (0..p-2): send chunk (rank - s) mod p to the right, receive chunk (rank - s - 1)
    mod p from the left and add it into ours. Afterwards chunk (rank + 1) mod p holds the sum
    over all ranks (the other chunks hold partial sums). Chunks follow ``chunk_bounds``.
    """
    rank, world, right, left = _ring(group)
    bounds = chunk_bounds(flat.numel(), world)
    buffer = torch.empty(max(b - a for a, b in bounds), dtype=flat.dtype)
    for step in range(world - 1):
        a, b = bounds[(rank - step) % world]
        c, d = bounds[(rank - step - 1) % world]
        incoming = buffer[: d - c]
        _exchange(flat[a:b].clone(), incoming, right, left, group)
        flat[c:d] += incoming
    return (rank + 1) % world


def ring_all_gather(flat: torch.Tensor, owned: int, group: dist.ProcessGroup | None = None) -> None:
    """All-gather in place: each rank starts owning chunk ``owned`` and ends with every chunk.

    Step s: send chunk (owned - s) mod p to the right, receive chunk (owned - s - 1) mod p from
    the left into its place (it overwrites a stale partial sum).
    """
    rank, world, right, left = _ring(group)
    bounds = chunk_bounds(flat.numel(), world)
    for step in range(world - 1):
        a, b = bounds[(owned - step) % world]
        c, d = bounds[(owned - step - 1) % world]
        incoming = torch.empty(d - c, dtype=flat.dtype)
        _exchange(flat[a:b].clone(), incoming, right, left, group)
        flat[c:d] = incoming


def ring_all_reduce(tensor: torch.Tensor, group: dist.ProcessGroup | None = None) -> torch.Tensor:
    """Sum ``tensor`` across the ranks of ``group`` in place with only send/recv; return it.

    Works for any shape and any number of elements (uneven chunks); a contiguous copy is
    reduced and written back, so the result equals ``dist.all_reduce(tensor, SUM)`` up to the
    order of floating-point additions.
    """
    if dist.get_world_size(group) == 1:
        return tensor
    flat = tensor.detach().reshape(-1).clone()
    owned = ring_reduce_scatter(flat, group)
    ring_all_gather(flat, owned, group)
    tensor.data.copy_(flat.view_as(tensor))
    return tensor


def bucket_assignment(
    tensors: Sequence[torch.Tensor], bucket_bytes: int, first_bucket_bytes: int | None = None
) -> list[list[int]]:
    """Group tensor indices into buckets of about ``bucket_bytes``, as DDP does.

    Walk the tensors in the given order, one open bucket per dtype; a bucket closes as soon as
    its bytes reach its limit (so it may exceed it by one tensor). The limit is
    ``first_bucket_bytes`` for a dtype's first bucket when given (DDP uses 1 MiB,
    ``dist._DEFAULT_FIRST_BUCKET_BYTES``), else ``bucket_bytes``. Buckets are returned sorted
    by their first index. DDP passes its parameters in reverse, so the last layers' gradients,
    which backward produces first, fill the first bucket and can be sent early.
    """
    first = bucket_bytes if first_bucket_bytes is None else first_bucket_bytes
    if min(bucket_bytes, first) < 1:
        raise ValueError(f"bucket sizes must be at least 1 byte, got {bucket_bytes}, {first}")
    done: list[list[int]] = []
    open_buckets: dict[torch.dtype, tuple[list[int], int]] = {}
    closed: set[torch.dtype] = set()  # dtypes whose first bucket is already closed
    for i, t in enumerate(tensors):
        indices, size = open_buckets.get(t.dtype, ([], 0))
        indices, size = [*indices, i], size + t.numel() * t.element_size()
        if size >= (bucket_bytes if t.dtype in closed else first):
            done.append(indices)
            open_buckets.pop(t.dtype, None)
            closed.add(t.dtype)
        else:
            open_buckets[t.dtype] = (indices, size)
    done += [indices for indices, _ in open_buckets.values()]
    return sorted(done, key=lambda bucket: bucket[0])


AllReduce = Callable[[torch.Tensor, "dist.ProcessGroup | None"], torch.Tensor]


def average_gradients(
    params: Iterable[nn.Parameter],
    bucket_bytes: int = 25 * 2**20,
    group: dist.ProcessGroup | None = None,
    all_reduce: AllReduce = ring_all_reduce,
) -> int:
    """Replace every ``p.grad`` by its mean across ranks, one flat all-reduce per bucket.

    Buckets come from ``bucket_assignment`` over the parameters in reverse order (DDP's order).
    Each bucket's gradients are concatenated, all-reduced with ``all_reduce``, divided by the
    world size and copied back. Returns the number of buckets (messages) sent.
    """
    with_grad = [p for p in params if p.grad is not None][::-1]
    grads = [p.grad for p in with_grad]
    world = dist.get_world_size(group)
    buckets = bucket_assignment(grads, bucket_bytes)
    for bucket in buckets:
        flat = torch.cat([grads[i].reshape(-1) for i in bucket])
        all_reduce(flat, group)
        flat /= world
        for i, piece in zip(bucket, flat.split([grads[i].numel() for i in bucket]), strict=True):
            grads[i].copy_(piece.view_as(grads[i]))
    return len(buckets)


def local_slice(global_batch: int, rank: int, world_size: int) -> slice:
    """Rank ``rank``'s rows of a global batch: equal contiguous shares (mean losses then
    average to the global mean, so the batch must split evenly)."""
    if global_batch % world_size:
        raise ValueError(
            f"a global batch of {global_batch} does not split evenly over {world_size} ranks"
        )
    share = global_batch // world_size
    return slice(rank * share, (rank + 1) * share)


def train_steps(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    lr: float,
    rank: int = 0,
    world_size: int = 1,
    average: Callable[[Iterable[nn.Parameter]], object] | None = None,
) -> list[float]:
    """Plain SGD (``p -= lr * p.grad``) with cross-entropy over the given global batches;
    return this rank's losses.

    Each rank trains on ``local_slice`` of every batch. The gradients must be averaged across
    ranks before the step: either ``model`` is wrapped in ``DistributedDataParallel`` (it
    all-reduces during backward), or ``average`` (e.g. ``average_gradients``) is called with
    the parameters after backward. With ``world_size == 1`` this is one process on the whole
    batch. Each returned loss is the local mean; their mean over ranks is the global loss.
    """
    params = list(model.parameters())
    losses = []
    for x, y in batches:
        rows = local_slice(len(x), rank, world_size)
        for p in params:
            p.grad = None
        loss = nn.functional.cross_entropy(model(x[rows]), y[rows])
        loss.backward()
        if average is not None:
            average(params)
        with torch.no_grad():
            for p in params:
                if p.grad is not None:
                    p -= lr * p.grad
        losses.append(loss.item())
    return losses


def allreduce_time(n_bytes: np.ndarray | float, world_size: int, alpha: float, beta: float):
    """Ring all-reduce time in seconds: ``2(p-1) alpha + 2(p-1)/p * n * beta`` (0 when p = 1)."""
    p = world_size
    return 2 * (p - 1) * alpha + 2 * (p - 1) / p * np.asarray(n_bytes, dtype=float) * beta


def fit_alpha_beta(
    n_bytes: Sequence[float], world_sizes: Sequence[int], seconds: Sequence[float]
) -> tuple[float, float]:
    """Non-negative least-squares ``(alpha, beta)`` of ``allreduce_time`` from measured times.

    The model is linear in (alpha, beta) with features ``2(p-1)`` and ``2(p-1)/p * n``; each
    row is divided by its time, so the fit minimises relative error and small (latency-bound)
    messages count as much as large ones. Costs cannot be negative: when the unconstrained
    solution has a negative coefficient, that one is 0 and the other is refitted alone.
    """
    n, p, t = (np.asarray(v, dtype=float) for v in (n_bytes, world_sizes, seconds))
    A = np.column_stack([2 * (p - 1), 2 * (p - 1) / p * n]) / t[:, None]
    target = np.ones_like(t)
    coef, *_ = np.linalg.lstsq(A, target, rcond=None)
    if (coef < 0).any():
        fits = []
        for keep in (0, 1):  # one coefficient alone: c = (a . 1) / (a . a), clipped at 0
            c = np.zeros(2)
            c[keep] = max(A[:, keep] @ target / (A[:, keep] @ A[:, keep]), 0.0)
            fits.append((np.sum((A @ c - target) ** 2), c))
        coef = min(fits, key=lambda f: f[0])[1]
    return float(coef[0]), float(coef[1])


def step_time(
    compute_s: float, n_bytes: float, world_size: int, alpha: float, beta: float, overlap: bool
) -> float:
    """Predicted seconds per step with a fixed per-rank batch (weak scaling).

    Without overlap the all-reduce follows backward: ``compute + allreduce``. With perfect
    overlap (buckets sent while backward runs) only the longer of the two counts.
    """
    comm = float(allreduce_time(n_bytes, world_size, alpha, beta))
    return max(compute_s, comm) if overlap else compute_s + comm
