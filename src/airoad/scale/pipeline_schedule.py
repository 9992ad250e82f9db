"""Pipeline parallelism, simulated: a model cut into p consecutive stages (one per device), a
batch cut into m micro-batches, and the time line of who computes what when.

Stage s runs forward F(s, i) of micro-batch i after F(s-1, i) (it needs that stage's output)
and backward B(s, i) after B(s+1, i) (it needs that gradient); the last stage starts B(p-1, i)
after its own F(p-1, i). A device does one thing at a time, in the order its schedule lists.

GPipe (Huang et al. 2019) runs every forward, then every backward. With forward time t_f and
backward time t_b per stage and micro-batch, the last stage cannot start before (p-1) t_f and
the first stage idles (p-1) t_b at the end, so the run takes (m + p - 1)(t_f + t_b) and each
device is idle for the bubble fraction

    bubble = 1 - m (t_f + t_b) / ((m + p - 1)(t_f + t_b)) = (p - 1) / (m + p - 1).

1F1B (PipeDream-Flush) keeps the same bubble but alternates one forward, one backward once the
pipe is full, so stage s holds at most p - s micro-batches' activations instead of m.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Op:
    """One unit of work: ``kind`` "F" or "B" of micro-batch ``micro`` on stage ``stage``."""

    stage: int
    micro: int
    kind: str
    start: float
    end: float


def gpipe_order(n_stages: int, n_micro: int) -> list[list[tuple[str, int]]]:
    """Each stage's work list for GPipe: F0 .. F(m-1), then B(m-1) .. B0 (last in, first out).

    Returns ``n_stages`` lists of (kind, micro) pairs.
    """
    forwards = [("F", i) for i in range(n_micro)]
    backwards = [("B", i) for i in reversed(range(n_micro))]
    return [forwards + backwards for _ in range(n_stages)]


def one_f_one_b_order(n_stages: int, n_micro: int) -> list[list[tuple[str, int]]]:
    """Each stage's work list for 1F1B: stage s warms up with min(p - s - 1, m) forwards, then
    alternates one forward and one backward, then drains the remaining backwards (in micro order).

    Returns ``n_stages`` lists of (kind, micro) pairs.
    """
    orders = []
    for s in range(n_stages):
        warm = min(n_stages - s - 1, n_micro)
        order = [("F", i) for i in range(warm)]
        for i in range(n_micro - warm):
            order += [("F", warm + i), ("B", i)]
        order += [("B", i) for i in range(n_micro - warm, n_micro)]
        orders.append(order)
    return orders


def simulate(
    orders: list[list[tuple[str, int]]], t_forward: float = 1.0, t_backward: float = 2.0
) -> list[Op]:
    """Run each stage's list in order, every op as early as its dependencies allow.

    An op starts at max(the stage's previous op's end, the end of the op it depends on); F takes
    ``t_forward``, B ``t_backward``. Returns every Op (any order). A schedule whose dependencies
    can never be met (a deadlock) raises ValueError.
    """
    p = len(orders)
    done: dict[tuple[str, int, int], float] = {}  # (kind, stage, micro) -> end time
    nxt, free = [0] * p, [0.0] * p
    ops: list[Op] = []
    while len(ops) < sum(map(len, orders)):
        progressed = False
        for s in range(p):
            if nxt[s] == len(orders[s]):
                continue
            kind, i = orders[s][nxt[s]]
            if kind == "F":
                dep = ("F", s - 1, i) if s > 0 else None
            else:
                dep = ("B", s + 1, i) if s < p - 1 else ("F", s, i)
            if dep is not None and dep not in done:
                continue
            start = max(free[s], done[dep] if dep else 0.0)
            end = start + (t_forward if kind == "F" else t_backward)
            done[(kind, s, i)], free[s] = end, end
            ops.append(Op(s, i, kind, start, end))
            nxt[s] += 1
            progressed = True
        if not progressed:
            raise ValueError("the stage orders deadlock: some op waits for one that never runs")
    return ops


def bubble_fraction(ops: list[Op]) -> float:
    """The fraction of device time spent idle: 1 - busy / (n_stages * makespan).

    makespan = latest end - earliest start; busy = the summed durations of all ops.
    """
    n_stages = len({op.stage for op in ops})
    makespan = max(op.end for op in ops) - min(op.start for op in ops)
    busy = sum(op.end - op.start for op in ops)
    return 1.0 - busy / (n_stages * makespan)


def gpipe_bubble(n_stages: int, n_micro: int) -> float:
    """The closed form (p - 1) / (m + p - 1) of GPipe's idle fraction."""
    return (n_stages - 1) / (n_micro + n_stages - 1)


def peak_in_flight(ops: list[Op], stage: int) -> int:
    """The most micro-batches whose activations ``stage`` holds at once: from the end of their
    forward to the end of their backward (what the stage must keep in memory)."""
    events = sorted((op.end, 1 if op.kind == "F" else -1) for op in ops if op.stage == stage)
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak
