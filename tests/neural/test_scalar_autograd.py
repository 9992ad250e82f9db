"""Grader for autograd-engine, part 1: the scalar ``Value`` engine gives the same values and
gradients as torch.autograd (float64) on Hypothesis-generated expressions and agrees with finite
differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from autograd_checks import TOL, finite_difference
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.neural.scalar_autograd"

FAST = settings(max_examples=30, deadline=None)


SCALAR_OPS = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
    "radd": lambda a, b: 2.0 + a,
    "rsub": lambda a, b: 1.5 - b,
    "rdiv": lambda a, b: 1.0 / (a * a + 0.5),
    "pow": lambda a, b: (a * a + 0.1) ** 1.5,
    "exp": lambda a, b: (a * 0.3).exp(),
    "log": lambda a, b: (a * a + 1.0).log(),
    "tanh": lambda a, b: a.tanh(),
    "relu": lambda a, b: b.relu() * a,
    "neg": lambda a, b: -a,
}


def _scalar_program(draw_ops, xs, constant):
    """Run the same list of ops on a list of scalars (ours or torch's); every op reuses nodes."""
    nodes = list(xs)
    for op, i, j in draw_ops:
        nodes.append(SCALAR_OPS[op](nodes[i % len(nodes)], nodes[j % len(nodes)]))
    return sum(nodes[len(xs) :], constant)


scalar_programs = st.lists(
    st.tuples(st.sampled_from(sorted(SCALAR_OPS)), st.integers(0, 20), st.integers(0, 20)),
    min_size=1,
    max_size=8,
)


@FAST
@given(
    program=scalar_programs,
    values=st.lists(st.floats(-2, 2).filter(lambda v: abs(v) > 1e-3), min_size=3, max_size=3),
)
def test_value_matches_torch_on_random_expressions(impl, program, values):
    """Value gives the same output and input gradients as torch.autograd on random expressions."""
    ours = [impl.Value(v) for v in values]
    out = _scalar_program(program, ours, impl.Value(0.0))
    out.backward()
    theirs = [torch.tensor(v, dtype=torch.float64, requires_grad=True) for v in values]
    ref = _scalar_program(program, theirs, torch.tensor(0.0, dtype=torch.float64))
    ref.backward()
    np.testing.assert_allclose(
        out.data, ref.item(), **TOL, err_msg="Value forward differs from torch"
    )
    for k, (a, b) in enumerate(zip(ours, theirs)):
        expected = 0.0 if b.grad is None else b.grad.item()
        np.testing.assert_allclose(
            a.grad, expected, **TOL, err_msg=f"d out / d x{k} differs from torch"
        )


def test_value_accumulates_when_a_node_is_reused(impl):
    """A Value used several times receives the sum of all its gradient contributions."""
    a = impl.Value(3.0)
    b = a * a + a  # d/da = 2a + 1 = 7
    c = b * a  # d/da = (2a + 1) a + b = 21 + 12 = 33
    c.backward()
    assert c.data == pytest.approx(36.0)
    assert a.grad == pytest.approx(33.0), f"got grad {a.grad}, expected 33 (gradients must add up)"


def test_value_gradients_match_finite_differences(impl):
    """Value gradients of a neuron tanh(w . x + b) agree with central finite differences."""

    def f(w1, w2, b):
        x1, x2 = impl.Value(0.7), impl.Value(-1.3)
        return (x1 * w1 + x2 * w2 + b).tanh()

    params = [impl.Value(0.4), impl.Value(-0.2), impl.Value(0.1)]
    f(*params).backward()
    expected = finite_difference(
        lambda p: float(f(*(impl.Value(v) for v in p)).data), [np.array([0.4, -0.2, 0.1])]
    )[0]
    np.testing.assert_allclose(
        [p.grad for p in params],
        expected,
        rtol=1e-6,
        err_msg="Value gradients disagree with finite differences",
    )
