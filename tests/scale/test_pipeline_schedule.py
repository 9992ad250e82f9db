"""Grader for pipeline_schedule: the GPipe and 1F1B time lines obey their dependencies, and the
simulated idle fraction equals GPipe's closed form (p - 1) / (m + p - 1)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.scale.pipeline_schedule"

sizes = {"p": st.integers(1, 8), "m": st.integers(1, 24)}
times = st.sampled_from([(1.0, 1.0), (1.0, 2.0), (2.0, 3.0)])


def _check_dependencies(ops, p, m, t_f, t_b):
    by_key = {(op.kind, op.stage, op.micro): op for op in ops}
    assert len(by_key) == len(ops) == 2 * p * m, "every (kind, stage, micro) must run exactly once"
    for (kind, s, i), op in by_key.items():
        assert op.end - op.start == pytest.approx(t_f if kind == "F" else t_b)
        if kind == "F" and s > 0:
            assert op.start >= by_key["F", s - 1, i].end, f"F{s},{i} started before F{s - 1},{i}"
        if kind == "B":
            dep = by_key["B", s + 1, i] if s < p - 1 else by_key["F", s, i]
            assert op.start >= dep.end, f"B{s},{i} started before its input gradient existed"
    for s in range(p):
        spans = sorted((op.start, op.end) for op in ops if op.stage == s)
        assert all(a[1] <= b[0] + 1e-12 for a, b in zip(spans, spans[1:])), "a stage overlapped"


@settings(max_examples=25, deadline=None)
@given(p=sizes["p"], m=sizes["m"], t=times)
def test_gpipe_bubble_matches_formula(impl, p, m, t):
    """The simulated GPipe idle fraction equals (p - 1) / (m + p - 1) and the run takes (m+p-1)(tf+tb)."""
    ops = impl.simulate(impl.gpipe_order(p, m), *t)
    _check_dependencies(ops, p, m, *t)
    assert max(op.end for op in ops) == pytest.approx((m + p - 1) * sum(t))
    assert impl.bubble_fraction(ops) == pytest.approx((p - 1) / (m + p - 1), abs=1e-12)
    assert impl.gpipe_bubble(p, m) == pytest.approx((p - 1) / (m + p - 1), abs=1e-15)


def test_gpipe_order_is_all_forwards_then_backwards(impl):
    """GPipe's stage list is F0..F(m-1), then B(m-1)..B0, the same on every stage."""
    expected = [("F", 0), ("F", 1), ("F", 2), ("B", 2), ("B", 1), ("B", 0)]
    assert impl.gpipe_order(2, 3) == [expected, expected]


@settings(max_examples=25, deadline=None)
@given(p=sizes["p"], m=sizes["m"], t=times)
def test_one_f_one_b_same_bubble_less_memory(impl, p, m, t):
    """1F1B keeps GPipe's bubble but stage s holds at most min(p - s, m) micro-batches (GPipe: m)."""
    orders = impl.one_f_one_b_order(p, m)
    assert all(sorted(o) == sorted(g) for o, g in zip(orders, impl.gpipe_order(p, m)))
    ops = impl.simulate(orders, *t)
    _check_dependencies(ops, p, m, *t)
    assert impl.bubble_fraction(ops) == pytest.approx((p - 1) / (m + p - 1), abs=1e-12)
    gpipe = impl.simulate(impl.gpipe_order(p, m), *t)
    for s in range(p):
        assert impl.peak_in_flight(ops, s) == min(p - s, m), f"stage {s} of 1F1B"
        assert impl.peak_in_flight(gpipe, s) == m, f"stage {s} of GPipe"


def test_one_f_one_b_order_by_hand(impl):
    """1F1B on 3 stages, 4 micro-batches: warm-up forwards, alternate, then drain backwards."""
    F, B = "F", "B"
    assert impl.one_f_one_b_order(3, 4) == [
        [(F, 0), (F, 1), (F, 2), (B, 0), (F, 3), (B, 1), (B, 2), (B, 3)],
        [(F, 0), (F, 1), (B, 0), (F, 2), (B, 1), (F, 3), (B, 2), (B, 3)],
        [(F, 0), (B, 0), (F, 1), (B, 1), (F, 2), (B, 2), (F, 3), (B, 3)],
    ]


def test_bubble_fraction_of_a_hand_made_timeline(impl):
    """bubble_fraction = 1 - busy / (stages x makespan) on a hand-made time line."""
    ops = [impl.Op(0, 0, "F", 0.0, 1.0), impl.Op(1, 0, "F", 1.0, 2.0), impl.Op(1, 0, "B", 2.0, 4.0)]
    ops.append(impl.Op(0, 0, "B", 4.0, 6.0))
    assert impl.bubble_fraction(ops) == pytest.approx(1 - 6.0 / 12.0)
    assert impl.peak_in_flight(ops, 0) == 1


def test_deadlocked_orders_raise(impl):
    """Orders that can never finish (stage 0 waits for a backward before its forward) raise ValueError."""
    with pytest.raises(ValueError):
        impl.simulate([[("B", 0), ("F", 0)], [("F", 0), ("B", 0)]])
