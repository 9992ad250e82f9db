"""Grader for activations-and-losses: NumPy activations and losses with hand-written backward
functions, checked against torch.nn.functional values, torch.autograd gradients (float64) and
central finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

REFERENCE = "airoad.neural.activations_and_losses"

FAST = settings(max_examples=25, deadline=None)
TOL = dict(rtol=1e-10, atol=1e-12)

# name -> (our forward, our backward, torch function); `approximate` rides along for GELU.
ACTIVATIONS = {
    "sigmoid": ("sigmoid", "sigmoid_backward", torch.sigmoid, {}),
    "tanh": ("tanh", "tanh_backward", torch.tanh, {}),
    "relu": ("relu", "relu_backward", F.relu, {}),
    "gelu": (
        "gelu",
        "gelu_backward",
        lambda t: F.gelu(t, approximate="none"),
        {"approximate": "none"},
    ),
    "gelu_tanh": (
        "gelu",
        "gelu_backward",
        lambda t: F.gelu(t, approximate="tanh"),
        {"approximate": "tanh"},
    ),
}


def _torch_value_and_grad(fn, x: np.ndarray, upstream: np.ndarray):
    t = torch.tensor(x, requires_grad=True)
    out = fn(t)
    out.backward(torch.tensor(upstream))
    return out.detach().numpy(), t.grad.numpy()


def _finite_difference(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central differences of the scalar f(x) with respect to every entry of x."""
    x = x.copy()
    g = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f(x)
        x[idx] = old - eps
        down = f(x)
        x[idx] = old
        g[idx] = (up - down) / (2 * eps)
    return g


# ---------------------------------------------------------------- activations


@pytest.mark.parametrize("name", sorted(ACTIVATIONS))
def test_activation_matches_torch_values_and_gradients(impl, name):
    """Each activation and its backward equal torch's value and autograd gradient in float64."""
    fwd, bwd, torch_fn, kw = ACTIVATIONS[name]
    x = np.concatenate([np.linspace(-40, 40, 81), [-1e-3, 0.0, 1e-3, 700.0, -700.0]]).reshape(2, -1)
    upstream = np.random.default_rng(0).normal(size=x.shape)
    value, grad = _torch_value_and_grad(torch_fn, x, upstream)
    ours = np.asarray(getattr(impl, fwd)(x, **kw))
    assert ours.shape == x.shape, f"{fwd} returned shape {ours.shape}, expected {x.shape}"
    assert np.all(np.isfinite(ours)), f"{fwd} overflowed on large inputs"
    np.testing.assert_allclose(ours, value, **TOL, err_msg=f"{name} values differ from torch")
    ours_grad = np.asarray(getattr(impl, bwd)(x, upstream, **kw))
    assert ours_grad.shape == x.shape, f"{bwd} returned shape {ours_grad.shape}, expected {x.shape}"
    np.testing.assert_allclose(
        ours_grad, grad, **TOL, err_msg=f"{name} gradient differs from torch autograd"
    )


@FAST
@given(
    x=arrays(
        np.float64,
        st.tuples(st.integers(1, 4), st.integers(1, 5)),
        elements=st.floats(-8, 8).filter(lambda v: abs(v) > 1e-4),
    ),
    name=st.sampled_from(sorted(ACTIVATIONS)),
)
def test_activation_backward_matches_finite_differences(impl, x, name):
    """Each hand-written activation backward agrees with central finite differences."""
    fwd, bwd, _, kw = ACTIVATIONS[name]
    upstream = np.cos(np.arange(x.size)).reshape(x.shape)  # a fixed, non-uniform upstream gradient
    expected = _finite_difference(
        lambda z: float(np.sum(getattr(impl, fwd)(z, **kw) * upstream)), x
    )
    np.testing.assert_allclose(
        getattr(impl, bwd)(x, upstream, **kw),
        expected,
        rtol=1e-5,
        atol=1e-7,
        err_msg=f"{bwd} disagrees with finite differences",
    )


def test_gelu_rejects_unknown_approximation(impl):
    """gelu and gelu_backward raise ValueError for an approximate other than 'none' or 'tanh'."""
    with pytest.raises(ValueError):
        impl.gelu(np.zeros(3), approximate="erf")
    with pytest.raises(ValueError):
        impl.gelu_backward(np.zeros(3), np.ones(3), approximate="fast")


@pytest.mark.parametrize("axis", [-1, 0])
def test_softmax_matches_torch_and_is_stable(impl, axis):
    """softmax / log_softmax equal torch's along any axis, even for logits of 1000; backward too."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5)) * 3
    x[0, 0], x[1, 2] = 1000.0, -1000.0
    upstream = rng.normal(size=x.shape)
    value, grad = _torch_value_and_grad(lambda t: torch.softmax(t, dim=axis), x, upstream)
    ours = np.asarray(impl.softmax(x, axis=axis))
    assert ours.shape == x.shape, f"softmax returned shape {ours.shape}, expected {x.shape}"
    assert np.all(np.isfinite(ours)), "softmax overflowed: subtract the max first"
    np.testing.assert_allclose(
        ours, value, **TOL, err_msg=f"softmax(axis={axis}) differs from torch"
    )
    np.testing.assert_allclose(
        impl.log_softmax(x, axis=axis),
        torch.log_softmax(torch.tensor(x), dim=axis).numpy(),
        **TOL,
        err_msg=f"log_softmax(axis={axis}) differs from torch",
    )
    np.testing.assert_allclose(
        impl.softmax_backward(x, upstream, axis=axis),
        grad,
        **TOL,
        err_msg=f"softmax_backward(axis={axis}) differs from torch autograd",
    )


def test_softmax_backward_matches_finite_differences(impl):
    """softmax_backward is the Jacobian-vector product that finite differences measure."""
    x = np.random.default_rng(2).normal(size=(3, 4))
    upstream = np.sin(np.arange(12.0)).reshape(3, 4)
    expected = _finite_difference(lambda z: float(np.sum(impl.softmax(z) * upstream)), x)
    np.testing.assert_allclose(
        impl.softmax_backward(x, upstream),
        expected,
        rtol=1e-6,
        atol=1e-9,
        err_msg="softmax_backward disagrees with finite differences",
    )


# ---------------------------------------------------------------- losses


def _loss_case(name: str, rng: np.random.Generator):
    """(our loss name, positional args, index of the differentiated args, torch loss on tensors)."""
    n, k = 7, 5
    labels = rng.integers(0, k, n)
    labels[:k] = np.arange(k)  # every class appears
    if name == "mse":
        return (rng.normal(size=(n, 3)), rng.normal(size=(n, 3))), (0,), F.mse_loss
    if name == "cross_entropy":
        return (
            (rng.normal(size=(n, k)) * 4, labels),
            (0,),
            lambda z: F.cross_entropy(z, torch.tensor(labels)),
        )
    if name == "hinge":
        return (
            (rng.normal(size=(n, k)), labels),
            (0,),
            lambda s: F.multi_margin_loss(s, torch.tensor(labels)),
        )
    if name == "triplet":
        return (
            (rng.normal(size=(n, 4)), rng.normal(size=(n, 4)), rng.normal(size=(n, 4))),
            (0, 1, 2),
            lambda a, p, q: F.triplet_margin_loss(a, p, q, margin=1.0),
        )
    raise KeyError(name)


@pytest.mark.parametrize("name", ["mse", "cross_entropy", "hinge", "triplet"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_loss_matches_torch_values_and_gradients(impl, name, seed):
    """Each loss equals torch.nn.functional's value, and its backward equals torch's autograd."""
    args, diff_idx, torch_loss = _loss_case(name, np.random.default_rng(seed))
    leaves = [torch.tensor(args[i], requires_grad=True) for i in diff_idx]
    if name == "mse":
        ref = torch_loss(leaves[0], torch.tensor(args[1]))
    else:
        ref = torch_loss(*leaves)
    ref.backward()
    value = getattr(impl, name)(*args)
    np.testing.assert_allclose(
        float(value), ref.item(), **TOL, err_msg=f"{name} value differs from torch"
    )
    grads = getattr(impl, name + "_backward")(*args)
    grads = grads if isinstance(grads, tuple) else (grads,)
    assert len(grads) == len(leaves), (
        f"{name}_backward returned {len(grads)} gradients, expected {len(leaves)}"
    )
    for g, leaf in zip(grads, leaves):
        assert np.shape(g) == tuple(leaf.shape), (
            f"{name}_backward shape {np.shape(g)}, expected {tuple(leaf.shape)}"
        )
        np.testing.assert_allclose(
            g, leaf.grad.numpy(), **TOL, err_msg=f"{name} gradient differs from torch"
        )


@pytest.mark.parametrize("name", ["mse", "cross_entropy", "hinge", "triplet"])
def test_loss_backward_matches_finite_differences(impl, name):
    """Each loss backward agrees with central finite differences of the loss."""
    args, diff_idx, _ = _loss_case(name, np.random.default_rng(7))
    grads = getattr(impl, name + "_backward")(*args)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for g, i in zip(grads, diff_idx):

        def f(z, i=i):
            return float(getattr(impl, name)(*(z if j == i else a for j, a in enumerate(args))))

        np.testing.assert_allclose(
            g,
            _finite_difference(f, np.asarray(args[i], float)),
            rtol=1e-5,
            atol=1e-8,
            err_msg=f"{name}_backward (argument {i}) disagrees with finite differences",
        )


def test_cross_entropy_is_stable_for_huge_logits(impl):
    """cross_entropy stays finite for logits in the thousands (log-sum-exp), as torch does."""
    logits = np.array([[5000.0, 0.0, -5000.0], [0.0, 3000.0, 0.0]])
    labels = np.array([2, 1])
    expected = F.cross_entropy(torch.tensor(logits), torch.tensor(labels)).item()
    got = float(impl.cross_entropy(logits, labels))
    assert np.isfinite(got), (
        "cross_entropy overflowed: go through log-softmax with the max subtracted"
    )
    np.testing.assert_allclose(
        got, expected, rtol=1e-12, err_msg="cross_entropy differs from torch"
    )


@pytest.mark.parametrize("margin", [0.5, 2.0])
def test_hinge_and_triplet_use_the_margin(impl, margin):
    """hinge and triplet honour their margin argument exactly like torch."""
    rng = np.random.default_rng(3)
    s, y = rng.normal(size=(6, 4)), np.array([0, 1, 2, 3, 0, 1])
    np.testing.assert_allclose(
        impl.hinge(s, y, margin=margin),
        F.multi_margin_loss(torch.tensor(s), torch.tensor(y), margin=margin).item(),
        **TOL,
        err_msg=f"hinge with margin={margin} differs from torch",
    )
    a, p, q = (rng.normal(size=(6, 3)) for _ in range(3))
    np.testing.assert_allclose(
        impl.triplet(a, p, q, margin=margin),
        F.triplet_margin_loss(*map(torch.tensor, (a, p, q)), margin=margin).item(),
        **TOL,
        err_msg=f"triplet with margin={margin} differs from torch",
    )
