"""Grader for the autograd-and-distributions lab: derivatives vs analytic and finite differences,
samplers and log-densities vs scipy / torch.distributions, autograd regression vs scikit-learn,
REINFORCE vs the exact policy gradient."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

REFERENCE = "airoad.foundations.autograd_and_distributions"

F64 = torch.float64


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# ---------------------------------------------------------------- derivatives

FUNCTIONS = {
    "sin(x) exp(-x^2)": (
        lambda x: torch.sin(x) * torch.exp(-(x**2)),
        lambda x: (torch.cos(x) - 2 * x * torch.sin(x)) * torch.exp(-(x**2)),
    ),
    "tanh": (torch.tanh, lambda x: 1 - torch.tanh(x) ** 2),
    "softplus": (torch.nn.functional.softplus, torch.sigmoid),
    "x^3 - 2x": (lambda x: x**3 - 2 * x, lambda x: 3 * x**2 - 2),
}


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_derivative_matches_analytic(impl, name):
    """derivative(f, x) (autograd) equals the hand-derived f'(x) at every point."""
    f, df = FUNCTIONS[name]
    x = torch.linspace(-3, 3, 101, dtype=F64)
    got = impl.derivative(f, x)
    assert got.shape == x.shape, (
        f"derivative returned shape {tuple(got.shape)}, expected {tuple(x.shape)}"
    )
    torch.testing.assert_close(
        got, df(x), rtol=1e-12, atol=1e-12, msg=f"autograd f'(x) wrong for {name}"
    )


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(-4, 4), min_size=1, max_size=20))
def test_derivative_agrees_with_central_difference(impl, xs):
    """Autograd and central differences agree to ~1e-8 in float64 (Hypothesis over points)."""
    f, _ = FUNCTIONS["sin(x) exp(-x^2)"]
    x = torch.tensor(xs, dtype=F64)
    torch.testing.assert_close(
        impl.derivative(f, x), impl.central_difference(f, x), rtol=0, atol=1e-8
    )


def test_central_difference_is_second_order(impl):
    """central_difference of x^3 is exactly 3x^2 + h^2: the symmetric formula, not a one-sided one."""
    x = torch.linspace(-2, 2, 9, dtype=F64)
    h = 1e-3
    got = impl.central_difference(lambda t: t**3, x, h)
    torch.testing.assert_close(
        got, 3 * x**2 + h**2, rtol=0, atol=1e-9, msg="expected (f(x+h) - f(x-h)) / (2h)"
    )


def test_gradient_field_matches_analytic(impl):
    """gradient_field returns (df/dx, df/dy) on a grid with the grid's shape."""
    x, y = torch.meshgrid(
        torch.linspace(-2, 2, 20, dtype=F64), torch.linspace(-1, 3, 30, dtype=F64), indexing="ij"
    )
    gx, gy = impl.gradient_field(lambda a, b: a**2 * b + torch.sin(b), x, y)
    assert gx.shape == x.shape and gy.shape == y.shape, (
        f"got {tuple(gx.shape)}, {tuple(gy.shape)}, expected (20, 30)"
    )
    torch.testing.assert_close(gx, 2 * x * y, rtol=1e-12, atol=1e-12, msg="df/dx wrong")
    torch.testing.assert_close(gy, x**2 + torch.cos(y), rtol=1e-12, atol=1e-12, msg="df/dy wrong")


# ---------------------------------------------------------------- sampling

N = 200_000


def _within(estimate: float, truth: float, se: float, what: str, k: float = 5.0) -> None:
    assert abs(estimate - truth) < k * se, (
        f"{what}: got {estimate:.5f}, expected {truth:.5f} +- {k * se:.5f}"
    )


@pytest.mark.parametrize("mu,sigma", [(0.0, 1.0), (1.5, 0.7), (-3.0, 4.0)])
def test_normal_sampler_moments_and_shape(impl, mu, sigma):
    """sample_normal: shape (n,), mean and variance within 5 standard errors, passes a KS test."""
    x = impl.sample_normal(mu, sigma, N, _gen(0))
    assert x.shape == (N,), f"sample_normal returned shape {tuple(x.shape)}, expected ({N},)"
    x = x.double()
    _within(x.mean().item(), mu, sigma / N**0.5, "sample mean")
    _within(x.var().item(), sigma**2, sigma**2 * (2 / N) ** 0.5, "sample variance")
    assert stats.kstest(x.numpy(), "norm", args=(mu, sigma)).pvalue > 1e-3, (
        "samples do not look normal (KS test)"
    )


def test_samplers_are_seeded(impl):
    """The same generator seed gives the same draws; another seed gives others."""
    for draw in (
        lambda s: impl.sample_normal(0.0, 1.0, 50, _gen(s)),
        lambda s: impl.sample_bernoulli(0.5, 50, _gen(s)),
        lambda s: impl.sample_categorical(torch.tensor([0.2, 0.3, 0.5]), 50, _gen(s)),
    ):
        assert torch.equal(draw(3), draw(3)), "same seed must give identical samples"
        assert not torch.equal(draw(3), draw(4)), "different seeds must give different samples"


@pytest.mark.parametrize("p", [0.03, 0.3, 0.9])
def test_bernoulli_sampler_mean(impl, p):
    """sample_bernoulli gives zeros and ones with frequency p (within 5 standard errors)."""
    x = impl.sample_bernoulli(p, N, _gen(1))
    assert x.shape == (N,), f"sample_bernoulli returned shape {tuple(x.shape)}, expected ({N},)"
    assert set(torch.unique(x).tolist()) <= {0.0, 1.0}, "Bernoulli samples must be 0 or 1"
    _within(x.double().mean().item(), p, (p * (1 - p) / N) ** 0.5, "frequency of ones")


def test_categorical_sampler_frequencies(impl):
    """sample_categorical hits each class with its probability (chi-square test, int64 indices)."""
    probs = torch.tensor([0.05, 0.4, 0.0, 0.25, 0.3], dtype=F64)
    k = impl.sample_categorical(probs, N, _gen(2))
    assert k.shape == (N,) and k.dtype == torch.int64, (
        f"got shape {tuple(k.shape)} dtype {k.dtype}, expected ({N},) int64"
    )
    counts = torch.bincount(k, minlength=5).numpy()
    assert len(counts) == 5 and counts[2] == 0, f"class counts {counts}: class 2 has probability 0"
    keep = probs.numpy() > 0
    p_value = stats.chisquare(counts[keep], N * probs.numpy()[keep]).pvalue
    assert p_value > 1e-3, (
        f"class frequencies {counts / N} do not match {probs.tolist()} (p = {p_value:.1e})"
    )


# ---------------------------------------------------------------- log-densities


@settings(max_examples=20, deadline=None)
@given(mu=st.floats(-5, 5), sigma=st.floats(0.05, 10), seed=st.integers(0, 1000))
def test_normal_log_prob_matches_scipy(impl, mu, sigma, seed):
    """normal_log_prob equals scipy.stats.norm.logpdf and torch.distributions.Normal.log_prob."""
    x = torch.from_numpy(np.random.default_rng(seed).normal(mu, 3 * sigma, size=50))
    got = impl.normal_log_prob(x, mu, sigma)
    np.testing.assert_allclose(
        got.numpy(),
        stats.norm.logpdf(x.numpy(), mu, sigma),
        rtol=1e-10,
        atol=1e-10,
        err_msg="differs from scipy.stats.norm.logpdf",
    )
    # float64 loc/scale: python floats would make torch.distributions compute in float32
    normal = torch.distributions.Normal(torch.tensor(mu, dtype=F64), torch.tensor(sigma, dtype=F64))
    torch.testing.assert_close(got, normal.log_prob(x), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("p", [0.0, 1e-6, 0.3, 1.0])
def test_bernoulli_log_prob_matches_scipy(impl, p):
    """bernoulli_log_prob equals scipy.stats.bernoulli.logpmf, including p = 0 and p = 1."""
    x = torch.tensor([0.0, 1.0, 1.0, 0.0], dtype=F64)
    got = impl.bernoulli_log_prob(x, p).numpy()
    np.testing.assert_allclose(got, stats.bernoulli.logpmf(x.numpy().astype(int), p), rtol=1e-12)


def test_categorical_log_prob_matches_scipy(impl):
    """categorical_log_prob equals log of scipy's one-draw multinomial pmf and torch's Categorical."""
    logits = torch.tensor([2.0, -1.0, 0.5, 300.0, 299.0], dtype=F64)  # large: needs log-softmax
    k = torch.tensor([0, 1, 2, 3, 4, 3], dtype=torch.int64)
    got = impl.categorical_log_prob(k, logits)
    assert got.shape == k.shape, f"got shape {tuple(got.shape)}, expected {tuple(k.shape)}"
    probs = torch.softmax(logits, 0).numpy()
    want = [stats.multinomial.logpmf(np.eye(5)[i], 1, probs) for i in k.tolist()]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(got, torch.distributions.Categorical(logits=logits).log_prob(k))


# ---------------------------------------------------------------- linear regression with autograd


@pytest.fixture(scope="module")
def diabetes_std():
    from sklearn.datasets import load_diabetes

    X, y = load_diabetes(return_X_y=True)
    X = (X - X.mean(0)) / X.std(0)
    y = (y - y.mean()) / y.std()
    return torch.from_numpy(X), torch.from_numpy(y)


def test_linear_regression_matches_sklearn(impl, diabetes_std):
    """Autograd gradient descent on standardised diabetes reaches sklearn's LinearRegression."""
    from sklearn.linear_model import LinearRegression

    X, y = diabetes_std
    model, losses = impl.fit_linear_regression(X, y, lr=0.2, epochs=3000)
    pred = model(X)
    assert pred.shape == (len(y),), f"model(X) has shape {tuple(pred.shape)}, expected ({len(y)},)"
    assert losses.shape == (3000,), f"losses shape {tuple(losses.shape)}, expected (3000,)"
    sk = LinearRegression().fit(X.numpy(), y.numpy())
    w = model.linear.weight.detach().reshape(-1).numpy()
    np.testing.assert_allclose(w, sk.coef_, atol=1e-3, err_msg="coefficients differ from sklearn's")
    assert abs(model.linear.bias.item() - sk.intercept_) < 1e-6, "intercept differs from sklearn's"
    assert torch.all(torch.diff(losses) <= 1e-12), (
        "full-batch GD with a small lr must never raise the loss"
    )


# ---------------------------------------------------------------- REINFORCE

MEANS = [0.2, 0.5, 0.8, 0.3, 0.6]


def test_bandit_pull_frequencies(impl):
    """BernoulliBandit.pull pays 0/1 with each arm's mean, in the shape of the arms tensor."""
    bandit = impl.BernoulliBandit(MEANS)
    arms = torch.arange(5).repeat(20_000)
    r = bandit.pull(arms, _gen(0))
    assert r.shape == arms.shape, f"pull returned {tuple(r.shape)}, expected {tuple(arms.shape)}"
    freq = torch.stack([r[arms == i].double().mean() for i in range(5)]).numpy()
    np.testing.assert_allclose(freq, MEANS, atol=0.015, err_msg="reward frequency per arm")


def test_policy_is_a_uniform_categorical(impl):
    """SoftmaxPolicy() returns a torch.distributions.Categorical, uniform before training."""
    dist = impl.SoftmaxPolicy(4)()
    assert isinstance(dist, torch.distributions.Categorical), f"got {type(dist).__name__}"
    torch.testing.assert_close(dist.probs, torch.full((4,), 0.25, dtype=dist.probs.dtype))


def test_reinforce_loss_value_and_gradient(impl):
    """reinforce_loss = -mean((r - b) log pi(a)) and its gradient follows through log_probs."""
    logits = torch.tensor([0.1, -0.4, 0.7], dtype=F64, requires_grad=True)
    arms = torch.tensor([0, 2, 2, 1])
    r = torch.tensor([1.0, 0.0, 1.0, 1.0], dtype=F64)
    logp = torch.log_softmax(logits, 0)[arms]
    loss = impl.reinforce_loss(logp, r, 0.25)
    assert loss.dim() == 0, f"loss must be a scalar, got shape {tuple(loss.shape)}"
    torch.testing.assert_close(loss, -((r - 0.25) * logp).mean())
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0, (
        "loss must keep the autograd graph"
    )


@settings(max_examples=15, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=5, max_size=5))
def test_policy_gradient_matches_autograd(impl, logit_list):
    """policy_gradient equals autograd's gradient of J = softmax(logits) . means (Hypothesis)."""
    logits = torch.tensor(logit_list, dtype=F64, requires_grad=True)
    (want,) = torch.autograd.grad(torch.softmax(logits, 0) @ torch.tensor(MEANS, dtype=F64), logits)
    torch.testing.assert_close(
        impl.policy_gradient(logits.detach(), MEANS), want, rtol=1e-10, atol=1e-12
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_reinforce_estimate_is_unbiased(impl, seed):
    """The REINFORCE estimate from 200k pulls matches the exact policy gradient within 0.01."""
    logits = torch.tensor([0.5, -0.3, 0.0, 1.0, -1.0], dtype=F64)
    est = impl.reinforce_gradient(logits, MEANS, 200_000, seed)
    assert est.shape == (5,), f"gradient shape {tuple(est.shape)}, expected (5,)"
    exact = impl.policy_gradient(logits, MEANS)
    np.testing.assert_allclose(
        est.numpy(),
        exact.numpy(),
        atol=0.01,
        err_msg="REINFORCE estimate is far from the exact gradient",
    )
    assert not torch.allclose(est, torch.zeros(5, dtype=F64)), "estimate must not be zero"


def test_reinforce_baseline_is_the_mean_of_earlier_rewards(impl):
    """train_reinforce equals a step-by-step torch replay whose baseline is the mean earlier reward."""
    batch, lr, seed = 16, 0.5, 3
    _, history = impl.train_reinforce(MEANS, 4 * batch, batch_size=batch, lr=lr, seed=seed)
    g = torch.Generator().manual_seed(seed)
    bandit = impl.BernoulliBandit(MEANS)
    logits = torch.zeros(len(MEANS), dtype=F64, requires_grad=True)
    opt = torch.optim.SGD([logits], lr=lr)
    earlier: list[torch.Tensor] = []
    for t in range(4):
        dist = torch.distributions.Categorical(logits=logits)
        arms = torch.multinomial(dist.probs.detach(), batch, replacement=True, generator=g)
        rewards = bandit.pull(arms, g)
        b = torch.cat(earlier).mean() if earlier else 0.0
        opt.zero_grad()
        (-torch.mean((rewards - b) * dist.log_prob(arms))).backward()
        opt.step()
        earlier.append(rewards)
        torch.testing.assert_close(
            history[t], torch.softmax(logits.detach(), 0), msg=f"update {t} differs from the replay"
        )


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_reinforce_learns_best_arm(impl, seed):
    """After 3000 pulls the trained policy puts most of its mass on the best arm (seeded)."""
    policy, history = impl.train_reinforce(MEANS, episodes=3000, batch_size=32, lr=1.0, seed=seed)
    assert history.shape == (3000 // 32, 5), (
        f"history shape {tuple(history.shape)}, expected (93, 5)"
    )
    p_best = torch.softmax(policy.logits.detach(), 0)[2].item()
    assert p_best > 0.8, (
        f"best arm (index 2, mean 0.8) has probability {p_best:.3f}, expected > 0.8"
    )
    torch.testing.assert_close(
        history[-1],
        torch.softmax(policy.logits.detach(), 0),
        msg="last history row must be the final policy",
    )
