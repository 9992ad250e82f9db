"""Grader for autograd-engine, part 2: the NumPy ``Tensor`` engine gives the same values and
gradients as torch.autograd (float64) on Hypothesis-generated expressions, agrees with finite
differences, and an MLP trained with the engine follows torch's loss trajectory on iris."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from autograd_checks import TOL, finite_difference, grad_of
from hypothesis import given, settings
from hypothesis import strategies as st

from airoad.data import load

REFERENCE = "airoad.neural.autograd_engine"

FAST = settings(max_examples=30, deadline=None)


# ---------------------------------------------------------------- the array engine

# Second operands that broadcast against a (3, 4) array in every way NumPy allows.
BROADCAST_SHAPES = [(3, 4), (4,), (1, 4), (3, 1), (1, 1), ()]

UNARY = {
    "exp": (lambda t, torch_: (t.tanh() * 2.0).exp()),  # bounded input: no overflow to inf
    "log": (lambda t, torch_: (t * t + 0.5).log()),
    "relu": (lambda t, torch_: t.relu()),
    "tanh": (lambda t, torch_: t.tanh()),
    "sigmoid": (lambda t, torch_: t.sigmoid()),
    "neg_pow": (lambda t, torch_: -((t * t + 1.0) ** 0.5)),
    "log_softmax": (lambda t, torch_: t.log_softmax(dim=1) if torch_ else t.log_softmax(axis=1)),
    "log_softmax0": (lambda t, torch_: t.log_softmax(dim=0) if torch_ else t.log_softmax(axis=0)),
    "sum_keep": (
        lambda t, torch_: (
            t - (t.sum(dim=1, keepdim=True) if torch_ else t.sum(axis=1, keepdims=True))
        )
    ),
    "mean0": (lambda t, torch_: t * (t.mean(dim=0) if torch_ else t.mean(axis=0))),
    "reshape": (lambda t, torch_: t.reshape(4, 3).reshape(3, 4)),
    "index": (lambda t, torch_: t * t[np.array([0, 2, 2])][np.array([1, 2, 0])]),
    "slice": (lambda t, torch_: t + t[:, 1:2] * 2.0),
    "matmul": (lambda t, torch_: t @ (t.reshape(4, 3) * 0.5)[:, [0, 1, 2, 0]]),
}
BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / (b * b + 1.0),
}


def _tensor_program(program, a, b, to_leaf, torch_: bool):
    """Apply a list of (binary op, unary op) steps to a (3, 4) and a broadcastable b."""
    x = a
    for binary, unary in program:
        x = UNARY[unary](BINARY[binary](x, b), torch_)
    weights = to_leaf(np.linspace(-1.0, 1.0, 12).reshape(3, 4))  # a non-uniform final reduction
    return (x * weights).sum()


tensor_programs = st.lists(
    st.tuples(st.sampled_from(sorted(BINARY)), st.sampled_from(sorted(UNARY))),
    min_size=1,
    max_size=4,
)


@FAST
@given(
    program=tensor_programs, shape=st.sampled_from(BROADCAST_SHAPES), seed=st.integers(0, 10_000)
)
def test_tensor_matches_torch_on_random_broadcast_expressions(impl, program, shape, seed):
    """Tensor values and gradients equal torch.autograd's on random expressions with broadcasting."""
    rng = np.random.default_rng(seed)
    a_np, b_np = rng.normal(size=(3, 4)), rng.normal(size=shape)
    a, b = impl.Tensor(a_np.copy()), impl.Tensor(b_np.copy())
    out = _tensor_program(program, a, b, impl.Tensor, torch_=False)
    out.backward()
    ta = torch.tensor(a_np, requires_grad=True)
    tb = torch.tensor(b_np, requires_grad=True)
    ref = _tensor_program(program, ta, tb, torch.tensor, torch_=True)
    ref.backward()
    assert np.shape(out.data) == (), (
        f"sum() returned shape {np.shape(out.data)}, expected a scalar ()"
    )
    np.testing.assert_allclose(
        out.data,
        ref.item(),
        rtol=1e-8,
        atol=1e-10,
        err_msg=f"forward differs from torch for {program}",
    )
    assert grad_of(b).shape == shape, (
        f"grad of b has shape {grad_of(b).shape}, expected {shape} (unbroadcast)"
    )
    np.testing.assert_allclose(
        grad_of(a),
        ta.grad.numpy(),
        rtol=1e-8,
        atol=1e-10,
        err_msg=f"grad of a differs from torch for {program}",
    )
    np.testing.assert_allclose(
        grad_of(b),
        tb.grad.numpy(),
        rtol=1e-8,
        atol=1e-10,
        err_msg=f"grad of b (shape {shape}) differs from torch for {program}",
    )


@pytest.mark.parametrize(
    "axis, keepdims", [(None, False), (0, False), (1, True), ((0, 2), False), (-1, False)]
)
def test_sum_and_mean_over_axes(impl, axis, keepdims):
    """sum and mean over any axes (and keepdims) match torch in value and gradient."""
    x_np = np.random.default_rng(1).normal(size=(2, 3, 4))
    for name in ("sum", "mean"):
        x = impl.Tensor(x_np.copy())
        out = getattr(x, name)(axis=axis, keepdims=keepdims)
        tx = torch.tensor(x_np, requires_grad=True)
        dim = tuple(range(3)) if axis is None else axis
        ref = getattr(tx, name)(dim=dim, keepdim=keepdims)
        assert out.data.shape == tuple(ref.shape), (
            f"{name}(axis={axis}) shape {out.data.shape}, expected {tuple(ref.shape)}"
        )
        upstream = np.random.default_rng(2).normal(size=tuple(ref.shape))
        out.backward(upstream)
        ref.backward(torch.tensor(upstream))
        np.testing.assert_allclose(out.data, ref.detach().numpy(), **TOL, err_msg=f"{name} value")
        np.testing.assert_allclose(
            grad_of(x), tx.grad.numpy(), **TOL, err_msg=f"{name}(axis={axis}) gradient"
        )


def test_batched_matmul_broadcasts_and_unbroadcasts(impl):
    """(2, 3, 4) @ (4, 5) matches torch; the shared (4, 5) matrix gets its grad summed over the batch."""
    rng = np.random.default_rng(3)
    a_np, b_np = rng.normal(size=(2, 3, 4)), rng.normal(size=(4, 5))
    a, b = impl.Tensor(a_np.copy()), impl.Tensor(b_np.copy())
    (a @ b).tanh().sum().backward()
    ta, tb = torch.tensor(a_np, requires_grad=True), torch.tensor(b_np, requires_grad=True)
    (ta @ tb).tanh().sum().backward()
    assert grad_of(b).shape == (4, 5), f"grad of b has shape {grad_of(b).shape}, expected (4, 5)"
    np.testing.assert_allclose(grad_of(a), ta.grad.numpy(), **TOL, err_msg="matmul grad of a")
    np.testing.assert_allclose(grad_of(b), tb.grad.numpy(), **TOL, err_msg="matmul grad of b")


def test_log_softmax_is_stable_for_huge_logits(impl):
    """log_softmax of logits like 1000 stays finite and equals torch's (shift by the max)."""
    x_np = np.array([[1000.0, 0.0, -1000.0], [5.0, 5.0, 5.0]])
    x = impl.Tensor(x_np.copy())
    out = x.log_softmax(axis=1)
    out.backward(np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]))
    tx = torch.tensor(x_np, requires_grad=True)
    ref = torch.log_softmax(tx, dim=1)
    ref.backward(torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64))
    assert np.all(np.isfinite(out.data)), "log_softmax overflowed: subtract the max first"
    np.testing.assert_allclose(out.data, ref.detach().numpy(), **TOL, err_msg="log_softmax value")
    np.testing.assert_allclose(grad_of(x), tx.grad.numpy(), **TOL, err_msg="log_softmax gradient")


def test_repeated_index_accumulates(impl):
    """Indexing the same row twice sends both gradients back to it (np.add.at, not assignment)."""
    x = impl.Tensor(np.arange(6.0).reshape(3, 2))
    x[np.array([0, 0, 2])].sum().backward()
    np.testing.assert_allclose(
        grad_of(x),
        [[2, 2], [0, 0], [1, 1]],
        err_msg="row 0 was picked twice, so its grad should be 2",
    )


def test_tensor_gradients_match_finite_differences(impl):
    """Tensor gradients of a small network loss agree with central finite differences."""
    rng = np.random.default_rng(4)
    X, y = rng.normal(size=(5, 3)), np.array([0, 1, 2, 1, 0])
    W_np, b_np = rng.normal(size=(3, 3)), rng.normal(size=(3,))

    def loss(W, b):
        logits = (impl.Tensor(X) @ impl.Tensor(W) + impl.Tensor(b)).sigmoid() * 3.0
        return -logits.log_softmax(axis=1)[np.arange(5), y].mean()

    W, b = impl.Tensor(W_np.copy()), impl.Tensor(b_np.copy())
    logits = (impl.Tensor(X) @ W + b).sigmoid() * 3.0
    (-logits.log_softmax(axis=1)[np.arange(5), y].mean()).backward()
    fd_W, fd_b = finite_difference(
        lambda w, bb: float(loss(w, bb).data), [W_np.copy(), b_np.copy()]
    )
    np.testing.assert_allclose(
        grad_of(W), fd_W, rtol=1e-5, atol=1e-8, err_msg="dW disagrees with finite differences"
    )
    np.testing.assert_allclose(
        grad_of(b), fd_b, rtol=1e-5, atol=1e-8, err_msg="db disagrees with finite differences"
    )


# ---------------------------------------------------------------- the MLP


@pytest.fixture(scope="module")
def iris_std():
    df = load("iris")
    X = df.drop(columns="target").to_numpy()
    return (X - X.mean(0)) / X.std(0), df["target"].to_numpy()


def test_cross_entropy_matches_torch(impl):
    """cross_entropy(logits, labels) equals torch.nn.functional.cross_entropy, value and gradient."""
    rng = np.random.default_rng(5)
    z_np, y = rng.normal(size=(6, 4)) * 3, rng.integers(0, 4, 6)
    z = impl.Tensor(z_np.copy())
    loss = impl.cross_entropy(z, y)
    loss.backward()
    tz = torch.tensor(z_np, requires_grad=True)
    ref = torch.nn.functional.cross_entropy(tz, torch.tensor(y))
    ref.backward()
    np.testing.assert_allclose(float(loss.data), ref.item(), **TOL, err_msg="cross-entropy value")
    np.testing.assert_allclose(grad_of(z), tz.grad.numpy(), **TOL, err_msg="cross-entropy gradient")


def test_mlp_follows_torch_loss_trajectory_on_iris(impl, iris_std):
    """An MLP trained with the engine has the same loss at every step as torch from the same weights."""
    X, y = iris_std
    model = impl.MLP((4, 8, 3), seed=0)
    params = model.parameters()
    assert [tuple(p.data.shape) for p in params] == [(4, 8), (8,), (8, 3), (3,)], (
        "parameters() order/shapes"
    )
    torch_params = [torch.tensor(p.data.copy(), requires_grad=True) for p in params]
    ours = impl.train_mlp(model, X, y, lr=0.2, epochs=40)
    assert len(ours) == 40, f"train_mlp returned {len(ours)} losses, expected one per epoch (40)"
    opt = torch.optim.SGD(torch_params, lr=0.2)
    tX, ty, theirs = torch.tensor(X), torch.tensor(y), []
    W1, b1, W2, b2 = torch_params
    for _ in range(40):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(torch.tanh(tX @ W1 + b1) @ W2 + b2, ty)
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(
        ours, theirs, rtol=1e-9, atol=1e-12, err_msg="loss trajectory differs from torch"
    )
    assert ours[-1] < 0.5 * ours[0], "training should at least halve the loss on iris"


def test_mlp_init_matches_torch_linear_default(impl):
    """MLP weights have the spread of torch.nn.Linear's default init, within +-1/sqrt(fan_in); biases 0."""
    torch.manual_seed(0)
    params = impl.MLP((300, 100, 10), seed=0).parameters()
    for W, b in zip(params[0::2], params[1::2]):
        fan_in, fan_out = W.data.shape
        ref = torch.nn.Linear(fan_in, fan_out).weight.detach().double()
        np.testing.assert_allclose(
            W.data.std(), ref.std().item(), rtol=0.1, err_msg=f"std of a {W.data.shape} weight"
        )
        assert np.abs(W.data).max() <= 1 / np.sqrt(fan_in), "weights stay within +-1/sqrt(fan_in)"
        np.testing.assert_array_equal(b.data, 0.0, err_msg="biases start at 0")
