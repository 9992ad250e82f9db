"""Grader for the gradient-descent lab: optimizers and schedules against torch.optim, line fits
against least squares."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.foundations.gradient_descent"

N_STEPS = 100
OPT_TOL = dict(rtol=1e-9, atol=1e-12)  # float64 on both sides: only rounding may differ


def _grad_sequence(seed: int = 0, shape: tuple[int, ...] = (3,)) -> np.ndarray:
    """Fixed gradients of mixed scales (some tiny, so eps placement matters)."""
    rng = np.random.default_rng(seed)
    scale = np.array([1.0, 1e-3, 10.0])[: shape[-1]]
    return rng.normal(size=(N_STEPS, *shape)) * scale


def _torch_trajectory(name: str, kwargs: dict, p0: np.ndarray, grads: np.ndarray) -> np.ndarray:
    """Parameters after each torch.optim step when fed the given gradients."""
    p = torch.nn.Parameter(torch.tensor(p0, dtype=torch.float64))
    opt = getattr(torch.optim, name)([p], **kwargs)
    out = []
    for g in grads:
        p.grad = torch.tensor(g, dtype=torch.float64)
        opt.step()
        out.append(p.detach().numpy().copy())
    return np.array(out)


def _our_trajectory(opt, p0: np.ndarray, grads: np.ndarray) -> np.ndarray:
    p = p0.copy()
    out = []
    for i, g in enumerate(grads):
        p = opt.step(p, g)
        assert np.shape(p) == p0.shape, (
            f"step {i} returned shape {np.shape(p)}, expected {p0.shape}"
        )
        out.append(np.array(p, dtype=float))
    return np.array(out)


def _assert_same_trajectory(ours: np.ndarray, theirs: np.ndarray, what: str) -> None:
    bad = ~np.isclose(ours, theirs, **OPT_TOL)
    if bad.any():
        step = int(np.argwhere(bad)[0][0])
        fmt = lambda a: np.array2string(a, precision=10)  # noqa: E731 - enough digits to see it
        raise AssertionError(
            f"{what}: first differs from torch.optim at step {step + 1}: "
            f"ours {fmt(ours[step])} vs torch {fmt(theirs[step])}"
        )


P0 = np.array([0.5, -1.0, 2.0])

SGD_CASES = [
    {"lr": 0.1},
    {"lr": 0.05, "momentum": 0.9},
    {"lr": 0.05, "momentum": 0.9, "nesterov": True},
    {"lr": 0.1, "momentum": 0.5, "weight_decay": 0.01},
    {"lr": 0.1, "weight_decay": 0.1},
]
RMSPROP_CASES = [
    {"lr": 0.01},
    {"lr": 0.001, "alpha": 0.9, "eps": 1e-3},
    {"lr": 0.01, "momentum": 0.9},
    {"lr": 0.01, "weight_decay": 0.1},
]
ADAM_CASES = [
    {"lr": 0.01},
    {"lr": 0.1, "betas": (0.5, 0.9)},
    {"lr": 0.01, "eps": 1e-2},
    {"lr": 0.01, "weight_decay": 0.1},
]


@pytest.mark.parametrize(
    "kwargs", SGD_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items())
)
def test_sgd_matches_torch(impl, kwargs):
    """SGD (momentum, Nesterov, weight decay) follows torch.optim.SGD step for step."""
    grads = _grad_sequence(1)
    _assert_same_trajectory(
        _our_trajectory(impl.SGD(**kwargs), P0, grads),
        _torch_trajectory("SGD", kwargs, P0, grads),
        f"SGD({kwargs})",
    )


@pytest.mark.parametrize(
    "kwargs", RMSPROP_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items())
)
def test_rmsprop_matches_torch(impl, kwargs):
    """RMSprop (eps outside the sqrt, optional momentum/weight decay) follows torch.optim.RMSprop."""
    grads = _grad_sequence(2)
    _assert_same_trajectory(
        _our_trajectory(impl.RMSprop(**kwargs), P0, grads),
        _torch_trajectory("RMSprop", kwargs, P0, grads),
        f"RMSprop({kwargs})",
    )


@pytest.mark.parametrize(
    "kwargs", ADAM_CASES, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items())
)
def test_adam_matches_torch(impl, kwargs):
    """Adam (bias correction, eps after the corrected sqrt, L2 decay) follows torch.optim.Adam."""
    grads = _grad_sequence(3)
    _assert_same_trajectory(
        _our_trajectory(impl.Adam(**kwargs), P0, grads),
        _torch_trajectory("Adam", kwargs, P0, grads),
        f"Adam({kwargs})",
    )


@pytest.mark.parametrize("name", ["SGD", "RMSprop", "Adam"])
def test_defaults_match_torch(impl, name):
    """Optimizers built with no arguments use torch.optim's default hyper-parameters."""
    grads = _grad_sequence(4)
    _assert_same_trajectory(
        _our_trajectory(getattr(impl, name)(), P0, grads),
        _torch_trajectory(name, {}, P0, grads),
        f"{name}() with defaults",
    )


@pytest.mark.parametrize(
    "name,kwargs",
    [("SGD", {"lr": 1e-3, "momentum": 0.9}), ("RMSprop", {"lr": 1e-3}), ("Adam", {"lr": 1e-2})],
)
def test_rosenbrock_trajectory_matches_torch(impl, name, kwargs):
    """On the Rosenbrock function (gradients depend on the path) we track torch for 100 steps."""

    def rosen_grad(p: np.ndarray) -> np.ndarray:
        x, y = p
        return np.array([-2 * (1 - x) - 400 * x * (y - x * x), 200 * (y - x * x)])

    opt = getattr(impl, name)(**kwargs)
    ours = np.array([-1.0, 1.5])
    p = torch.nn.Parameter(torch.tensor(ours, dtype=torch.float64))
    topt = getattr(torch.optim, name)([p], **kwargs)
    for step in range(N_STEPS):
        ours = np.asarray(opt.step(ours, rosen_grad(ours)), dtype=float)
        p.grad = torch.tensor(rosen_grad(p.detach().numpy()), dtype=torch.float64)
        topt.step()
        np.testing.assert_allclose(
            ours,
            p.detach().numpy(),
            rtol=1e-8,
            atol=1e-10,
            err_msg=f"{name} left torch's path at step {step + 1}",
        )


@settings(max_examples=15, deadline=None)
@given(
    lr=st.floats(1e-4, 0.5),
    beta1=st.floats(0.0, 0.99),
    beta2=st.floats(0.5, 0.9999),
    eps=st.sampled_from([1e-8, 1e-6, 1e-3]),
    seed=st.integers(0, 1000),
)
def test_adam_property_any_hyperparameters(impl, lr, beta1, beta2, eps, seed):
    """Adam matches torch for any valid lr, betas and eps (Hypothesis)."""
    grads = np.random.default_rng(seed).normal(size=(30, 2))
    kwargs = {"lr": lr, "betas": (beta1, beta2), "eps": eps}
    p0 = np.array([1.0, -2.0])
    ours = _our_trajectory(impl.Adam(**kwargs), p0, grads)
    theirs = _torch_trajectory("Adam", kwargs, p0, grads)
    np.testing.assert_allclose(ours, theirs, rtol=1e-8, atol=1e-11, err_msg=f"Adam({kwargs})")


# ---------------------------------------------------------------- schedules


def _torch_lrs(make_scheduler, n: int, base_lr: float) -> list[float]:
    """The lr torch uses for updates 0..n-1 when the scheduler is stepped after each update."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=base_lr)
    sched = make_scheduler(opt)
    lrs = []
    for _ in range(n):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


@settings(max_examples=15, deadline=None)
@given(base_lr=st.floats(1e-3, 1.0), step_size=st.integers(1, 20), gamma=st.floats(0.05, 0.95))
def test_step_decay_matches_steplr(impl, base_lr, step_size, gamma):
    """step_decay gives StepLR's learning rate at every step."""
    want = _torch_lrs(lambda o: torch.optim.lr_scheduler.StepLR(o, step_size, gamma), 60, base_lr)
    got = [impl.step_decay(t, base_lr, step_size, gamma) for t in range(60)]
    np.testing.assert_allclose(got, want, rtol=1e-10, err_msg="step_decay differs from StepLR")


@settings(max_examples=15, deadline=None)
@given(base_lr=st.floats(1e-3, 1.0), t_max=st.integers(1, 40), eta_frac=st.floats(0.0, 0.5))
def test_cosine_matches_cosineannealinglr(impl, base_lr, t_max, eta_frac):
    """cosine_annealing gives CosineAnnealingLR's learning rate, also past t_max."""
    eta_min = eta_frac * base_lr
    want = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, t_max, eta_min), 80, base_lr
    )
    got = [impl.cosine_annealing(t, base_lr, t_max, eta_min) for t in range(80)]
    np.testing.assert_allclose(
        got, want, rtol=1e-9, atol=1e-12, err_msg="cosine_annealing differs from CosineAnnealingLR"
    )


@pytest.mark.parametrize("start_factor,warmup", [(1 / 3, 5), (0.01, 17), (0.5, 1)])
def test_linear_warmup_matches_linearlr(impl, start_factor, warmup):
    """linear_warmup gives LinearLR's learning rate, flat at base_lr after the warm-up."""
    want = _torch_lrs(
        lambda o: torch.optim.lr_scheduler.LinearLR(
            o, start_factor=start_factor, total_iters=warmup
        ),
        40,
        0.2,
    )
    got = [impl.linear_warmup(t, 0.2, warmup, start_factor) for t in range(40)]
    np.testing.assert_allclose(got, want, rtol=1e-10, err_msg="linear_warmup differs from LinearLR")


def test_warmup_cosine_matches_sequentiallr(impl):
    """warmup_cosine equals SequentialLR(LinearLR then CosineAnnealingLR)."""
    sch = torch.optim.lr_scheduler
    warm, total, eta_min = 8, 50, 1e-3

    def make(o):
        return sch.SequentialLR(
            o,
            [
                sch.LinearLR(o, start_factor=0.1, total_iters=warm),
                sch.CosineAnnealingLR(o, T_max=total - warm, eta_min=eta_min),
            ],
            milestones=[warm],
        )

    want = _torch_lrs(make, total, 0.3)
    got = [impl.warmup_cosine(t, 0.3, warm, total, 0.1, eta_min) for t in range(total)]
    np.testing.assert_allclose(
        got,
        want,
        rtol=1e-9,
        atol=1e-12,
        err_msg="warmup_cosine differs from SequentialLR(LinearLR, Cosine)",
    )


# ---------------------------------------------------------------- the line fit


@pytest.fixture(scope="module")
def bmi_xy():
    from sklearn.datasets import load_diabetes

    data = load_diabetes()
    x = data.data[:, 2]  # bmi
    return (x - x.mean()) / x.std(), (data.target - data.target.mean()) / data.target.std()


@settings(max_examples=20, deadline=None)
@given(m=st.floats(-3, 3), b=st.floats(-3, 3), seed=st.integers(0, 100))
def test_mse_and_grad_match_autograd(impl, m, b, seed):
    """mse_loss and mse_grad equal torch's MSE and its autograd gradient."""
    rng = np.random.default_rng(seed)
    x, y = rng.normal(size=20), rng.normal(size=20)
    theta = torch.tensor([m, b], dtype=torch.float64, requires_grad=True)
    loss = torch.mean((theta[0] * torch.from_numpy(x) + theta[1] - torch.from_numpy(y)) ** 2)
    loss.backward()
    grad = np.asarray(impl.mse_grad(np.array([m, b]), x, y))
    assert grad.shape == (2,), f"mse_grad returned shape {grad.shape}, expected (2,)"
    assert math.isclose(impl.mse_loss(np.array([m, b]), x, y), loss.item(), rel_tol=1e-10)
    np.testing.assert_allclose(
        grad, theta.grad.numpy(), rtol=1e-9, atol=1e-12, err_msg="mse_grad differs from autograd"
    )


def test_batch_indices_are_epoch_permutations(impl):
    """batch_indices cuts a fresh permutation per epoch into batch_size chunks, seeded."""
    n, bs, epochs = 23, 5, 3
    batches = impl.batch_indices(n, bs, epochs, seed=7)
    per_epoch = math.ceil(n / bs)
    assert len(batches) == epochs * per_epoch, (
        f"got {len(batches)} batches, expected {epochs * per_epoch}"
    )
    for e in range(epochs):
        chunk = batches[e * per_epoch : (e + 1) * per_epoch]
        assert [len(c) for c in chunk] == [5, 5, 5, 5, 3], (
            "each epoch: full batches, short last one"
        )
        assert sorted(np.concatenate(chunk).tolist()) == list(range(n)), (
            "an epoch must visit every index once"
        )
    again = impl.batch_indices(n, bs, epochs, seed=7)
    assert all(np.array_equal(a, b) for a, b in zip(batches, again)), (
        "same seed must give same batches"
    )
    other = impl.batch_indices(n, bs, epochs, seed=8)
    assert not all(np.array_equal(a, b) for a, b in zip(batches, other)), "the seed must matter"


def test_batch_gd_matches_torch_loop(impl, bmi_xy):
    """Batch GD with a cosine schedule ends where the same torch loop ends; history is full-data MSE."""
    x, y = bmi_xy
    epochs = 40
    theta, losses = impl.fit_line(
        x,
        y,
        impl.SGD(lr=0.1, momentum=0.5),
        batch_size=None,
        epochs=epochs,
        seed=0,
        schedule=lambda t: impl.cosine_annealing(t, 0.1, epochs, 0.01),
    )
    losses = np.asarray(losses)
    assert losses.shape == (epochs + 1,), (
        f"history has shape {losses.shape}, expected ({epochs + 1},)"
    )
    assert math.isclose(losses[0], float(np.mean(y**2)), rel_tol=1e-10), (
        "losses[0] is the MSE at theta0 = [0, 0]"
    )

    p = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    opt = torch.optim.SGD([p], lr=0.1, momentum=0.5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs, eta_min=0.01)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        opt.zero_grad()
        torch.mean((p[0] * xt + p[1] - yt) ** 2).backward()
        opt.step()
        sched.step()
    np.testing.assert_allclose(
        theta,
        p.detach().numpy(),
        rtol=1e-8,
        atol=1e-10,
        err_msg="final [m, b] differs from torch's batch GD",
    )
    assert math.isclose(losses[-1], impl.mse_loss(theta, x, y), rel_tol=1e-10), (
        "last loss is at the final theta"
    )


@pytest.mark.parametrize(
    "name,kwargs,batch_size,epochs,tol",
    [
        ("SGD", {"lr": 0.1}, None, 200, 1e-6),
        ("SGD", {"lr": 0.01}, 1, 20, 0.05),
        ("Adam", {"lr": 0.02}, 32, 50, 0.02),
        ("RMSprop", {"lr": 0.005}, 32, 50, 0.03),
    ],
)
def test_fit_line_reaches_least_squares(impl, bmi_xy, name, kwargs, batch_size, epochs, tol):
    """On diabetes (standardised bmi -> target) every variant lands near np.polyfit's line."""
    x, y = bmi_xy
    m_ls, b_ls = np.polyfit(x, y, 1)
    theta, losses = impl.fit_line(
        x, y, getattr(impl, name)(**kwargs), batch_size=batch_size, epochs=epochs, seed=0
    )
    n_batches = epochs * (1 if batch_size is None else math.ceil(len(x) / batch_size))
    assert len(losses) == n_batches + 1, (
        f"history has {len(losses)} entries, expected {n_batches + 1}"
    )
    assert abs(theta[0] - m_ls) < tol and abs(theta[1] - b_ls) < tol, (
        f"{name} batch_size={batch_size}: [m, b] = {theta}, least squares {[m_ls, b_ls]}, tol {tol}"
    )


def test_zero_schedule_freezes_parameters(impl, bmi_xy):
    """fit_line sets optimizer.lr = schedule(t) before every update (lr 0 -> nothing moves)."""
    x, y = bmi_xy
    theta0 = np.array([0.3, -0.2])
    theta, losses = impl.fit_line(
        x,
        y,
        impl.Adam(lr=0.1),
        batch_size=64,
        epochs=2,
        seed=1,
        schedule=lambda t: 0.0,
        theta0=theta0,
    )
    np.testing.assert_array_equal(theta, theta0, err_msg="with lr 0 the line must not move")
    assert np.ptp(losses) == 0.0, "with lr 0 the loss history must be flat"
