"""Graders for diffusion: the schedules against a running product and the cosine formula, the
closed-form q(x_t|x_0) against iterating the noising steps (exactly, with the step noises composed
by the reparameterisation, and in distribution over many seeded draws), the posterior
q(x_{t-1}|x_t,x_0) against Bayes' rule for two Gaussians, DDIM steps that land exactly on
q_sample with the true noise, the training loss replayed draw by draw, and both samplers run with
the exact noise predictor of Gaussian data (their samples must have the data's mean and spread)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.nn import functional as F

REFERENCE = "airoad.generative.diffusion"

FAST = settings(max_examples=12, deadline=None)
F64 = torch.float64


def _close(got, expected, what, atol=1e-10, rtol=1e-10):
    torch.testing.assert_close(got, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


def _schedule(impl, T=50, beta_start=1e-3, beta_end=0.2):
    """A short float64 linear schedule built here, so tests do not depend on linear_schedule."""
    betas = torch.linspace(beta_start, beta_end, T, dtype=F64)
    alphas = 1.0 - betas
    return impl.Schedule(betas=betas, alphas=alphas, alpha_bars=torch.cumprod(alphas, 0))


def _x0(shape=(6, 1, 4, 4), seed=0):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def _oracle(schedule, x0):
    """eps_model that knows x0: returns the exact noise that turns x0 into x_t."""

    def eps_model(x_t, t):
        ab = schedule.alpha_bars[t].reshape(-1, *([1] * (x_t.dim() - 1))).to(x_t.dtype)
        return (x_t - ab.sqrt() * x0) / (1 - ab).sqrt()

    return eps_model


def _gaussian_data_oracle(schedule, m, s):
    """The exact E[eps | x_t] when the data is N(m, s^2) in every coordinate."""

    def eps_model(x_t, t):
        ab = schedule.alpha_bars[t].reshape(-1, *([1] * (x_t.dim() - 1))).to(x_t.dtype)
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * m) / (ab * s**2 + 1 - ab)

    return eps_model


def test_linear_schedule_alpha_bars_are_a_running_product(impl):
    """betas = linspace(beta_start, beta_end, T); alphas = 1 - betas; alpha_bars = running product."""
    sched = impl.linear_schedule(1000)
    assert sched.T == 1000, f"T should be 1000, got {sched.T}"
    for name in ("betas", "alphas", "alpha_bars"):
        v = getattr(sched, name)
        assert v.dtype == F64 and v.shape == (1000,), f"{name}: expected float64 (1000,)"
    _close(sched.betas, torch.linspace(1e-4, 0.02, 1000, dtype=F64), "betas")
    _close(sched.alphas, 1 - sched.betas, "alphas")
    running, expected = 1.0, []
    for a in sched.alphas.tolist():
        running *= a
        expected.append(running)
    _close(sched.alpha_bars, torch.tensor(expected, dtype=F64), "alpha_bars", rtol=1e-9)
    other = impl.linear_schedule(10, 0.01, 0.3)
    _close(other.betas, torch.linspace(0.01, 0.3, 10, dtype=F64), "betas with custom ends")


def test_cosine_schedule_follows_the_squared_cosine(impl):
    """cosine: alpha_bar_t = f(t+1)/f(0) with f(u) = cos((u/T + s)/(1 + s) pi/2)^2, betas <= 0.999."""
    T, s = 100, 0.008
    sched = impl.cosine_schedule(T, s)
    f = [math.cos(((u / T) + s) / (1 + s) * math.pi / 2) ** 2 for u in range(T + 1)]
    betas = torch.tensor([min(1 - f[t + 1] / f[t], 0.999) for t in range(T)], dtype=F64)
    _close(sched.betas, betas, "cosine betas", rtol=1e-9, atol=1e-12)
    # where no clipping happened, the running product telescopes to f(t+1) / f(0)
    _close(
        sched.alpha_bars[:-1],
        torch.tensor(f[1:-1], dtype=F64) / f[0],
        "cosine alpha_bars",
        rtol=1e-9,
        atol=1e-12,
    )
    _close(sched.alphas, 1 - sched.betas, "cosine alphas")
    assert sched.betas.max() <= 0.999 and sched.T == T, "betas must be clipped at 0.999"


def test_schedules_reject_bad_arguments(impl):
    """Schedules raise ValueError for T < 1 or betas outside 0 < beta_start <= beta_end < 1."""
    for args in ((0,), (10, 0.0, 0.02), (10, 0.02, 0.01), (10, 1e-4, 1.0)):
        with pytest.raises(ValueError):
            impl.linear_schedule(*args)
    with pytest.raises(ValueError):
        impl.cosine_schedule(0)


def test_q_step_is_one_noising_step(impl):
    """q_step: x_t = sqrt(1 - beta_t) x_{t-1} + sqrt(beta_t) noise, with each example's own t."""
    sched, x = _schedule(impl), _x0()
    noise, t = _x0(seed=1), torch.tensor([0, 3, 10, 20, 40, 49])
    beta = sched.betas[t].reshape(-1, 1, 1, 1)
    _close(impl.q_step(x, t, noise, sched), (1 - beta).sqrt() * x + beta.sqrt() * noise, "q_step")


def test_closed_form_equals_iterated_steps_with_composed_noise(impl):
    """q_sample(x0, k, eps) equals k+1 noising steps when eps composes the step noises (float64)."""
    sched, x0 = _schedule(impl), _x0(shape=(3, 2, 5))
    g = torch.Generator().manual_seed(3)
    for k in (0, 1, 7, 49):
        x, weighted = x0.clone(), torch.zeros_like(x0)
        for step in range(k + 1):
            e = torch.randn(x0.shape, generator=g, dtype=F64)
            beta = sched.betas[step]
            x = (1 - beta).sqrt() * x + beta.sqrt() * e  # the step written out, not impl.q_step
            weighted = (1 - beta).sqrt() * weighted + beta.sqrt() * e
        # the sum of scaled Gaussians is one Gaussian of variance 1 - alpha_bar_k
        eps = weighted / (1 - sched.alpha_bars[k]).sqrt()
        t = torch.full((3,), k)
        _close(impl.q_sample(x0, t, eps, sched), x, f"q_sample at t={k} vs iterated steps")


def test_closed_form_matches_iterated_steps_in_distribution(impl):
    """Many seeded draws: q_sample and iterated steps share mean sqrt(ab) x0 and variance 1 - ab."""
    sched, n, k = _schedule(impl), 20000, 30
    x0 = torch.full((n, 1), 1.5, dtype=F64)
    g = torch.Generator().manual_seed(0)
    x = x0.clone()
    for step in range(k + 1):
        x = (1 - sched.betas[step]).sqrt() * x + sched.betas[step].sqrt() * torch.randn(
            (n, 1), generator=g, dtype=F64
        )
    eps = torch.randn((n, 1), generator=g, dtype=F64)
    jump = impl.q_sample(x0, torch.full((n,), k), eps, sched)
    ab = float(sched.alpha_bars[k])
    mean, var = math.sqrt(ab) * 1.5, 1 - ab
    for name, draws in (("iterated", x), ("q_sample", jump)):
        se_mean, se_var = math.sqrt(var / n), var * math.sqrt(2 / (n - 1))
        assert abs(draws.mean().item() - mean) < 5 * se_mean, f"{name} mean should be {mean:.4f}"
        assert abs(draws.var().item() - var) < 5 * se_var, f"{name} variance should be {var:.4f}"


@given(shape=st.sampled_from([(4, 3), (2, 4, 7, 7), (2, 1, 8, 4, 4)]), seed=st.integers(0, 99))
@FAST
def test_q_sample_broadcasts_over_any_trailing_shape(impl, shape, seed):
    """q_sample uses each example's own t and works for any trailing shape, float32 or float64."""
    sched = _schedule(impl)
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(shape, generator=g)
    noise = torch.randn(shape, generator=g)
    t = torch.randint(0, sched.T, (shape[0],), generator=g)
    got = impl.q_sample(x0, t, noise, sched)
    assert got.dtype == torch.float32 and got.shape == x0.shape, "keep x0's dtype and shape"
    for i in range(shape[0]):
        ab = float(sched.alpha_bars[t[i]])
        expected = math.sqrt(ab) * x0[i] + math.sqrt(1 - ab) * noise[i]
        _close(got[i], expected, f"example {i} (t={int(t[i])})", atol=1e-6, rtol=1e-5)


def test_predict_x0_inverts_q_sample(impl):
    """predict_x0(q_sample(x0, t, eps), t, eps) gives back x0."""
    sched, x0, eps = _schedule(impl), _x0(), _x0(seed=1)
    t = torch.tensor([0, 1, 5, 25, 48, 49])
    _close(impl.predict_x0(impl.q_sample(x0, t, eps, sched), t, eps, sched), x0, "x0", atol=1e-9)


def test_posterior_matches_bayes_rule(impl):
    """q(x_{t-1}|x_t,x0): precision 1/(1-ab_prev) + alpha/beta, mean by Bayes' rule for Gaussians."""
    sched, x0, x_t = _schedule(impl), _x0(), _x0(seed=1)
    t = torch.tensor([1, 2, 10, 30, 48, 49])
    mean, var = impl.q_posterior(x0, x_t, t, sched)
    ab_prev = sched.alpha_bars[t - 1].reshape(-1, 1, 1, 1)
    alpha, beta = sched.alphas[t].reshape(-1, 1, 1, 1), sched.betas[t].reshape(-1, 1, 1, 1)
    # prior x_{t-1} ~ N(sqrt(ab_prev) x0, 1 - ab_prev); likelihood x_t ~ N(sqrt(alpha) x_{t-1}, beta)
    bayes_var = 1 / (1 / (1 - ab_prev) + alpha / beta)
    bayes_mean = bayes_var * (ab_prev.sqrt() * x0 / (1 - ab_prev) + alpha.sqrt() * x_t / beta)
    _close(var.expand_as(x0), bayes_var.expand_as(x0), "posterior variance")
    _close(mean, bayes_mean, "posterior mean")
    mean0, var0 = impl.q_posterior(x0, x_t, torch.zeros(6, dtype=torch.long), sched)
    _close(mean0, x0, "at t = 0 the posterior mean is x0")
    _close(var0.expand_as(x0), torch.zeros_like(x0), "at t = 0 the posterior variance is 0")


def test_ddim_step_with_true_noise_lands_on_q_sample(impl):
    """DDIM eta=0 with the true noise: step t -> t_prev gives q_sample(x0, t_prev, eps); -1 gives x0."""
    sched, x0, eps = _schedule(impl), _x0(), _x0(seed=1)
    t = torch.tensor([49, 30, 20, 10, 5, 1])
    x_t = impl.q_sample(x0, t, eps, sched)
    t_prev = torch.tensor([40, 0, 19, 3, 4, 0])
    expected = impl.q_sample(x0, t_prev, eps, sched)
    _close(impl.ddim_step(x_t, t, t_prev, eps, sched), expected, "x_{t_prev}", atol=1e-9)
    x_clean = impl.ddim_step(x_t, t, torch.full_like(t, -1), eps, sched, noise=_x0(seed=5))
    _close(x_clean, x0, "x0 recovered exactly", atol=1e-9)


def test_ddim_step_with_eta_one_is_the_ddpm_step(impl):
    """DDIM eta=1 from t to t-1 is x_{t-1} = posterior mean + sqrt(posterior variance) * noise."""
    sched, x_t, eps, z = _schedule(impl), _x0(), _x0(seed=1), _x0(seed=2)
    t = torch.tensor([1, 2, 10, 30, 48, 49])
    x0_hat = (x_t - (1 - sched.alpha_bars[t]).sqrt().reshape(-1, 1, 1, 1) * eps) / sched.alpha_bars[
        t
    ].sqrt().reshape(-1, 1, 1, 1)
    mean, var = impl.q_posterior(x0_hat, x_t, t, sched)
    got = impl.ddim_step(x_t, t, t - 1, eps, sched, eta=1.0, noise=z)
    _close(got, mean + var.sqrt() * z, "DDIM(eta=1) vs DDPM step", atol=1e-9)


def test_ddim_sample_with_true_noise_recovers_x0(impl):
    """ddim_sample (eta=0) from x_T = q_sample(x0, T-1, eps) with an exact noise model returns x0."""
    sched, x0, eps = _schedule(impl), _x0(), _x0(seed=1)
    x_T = impl.q_sample(x0, torch.full((6,), sched.T - 1), eps, sched)
    for n_steps in (1, 7, 50):
        got = impl.ddim_sample(_oracle(sched, x0), x0.shape, sched, n_steps, x_T=x_T)
        _close(got, x0, f"x0 after {n_steps} DDIM steps", atol=1e-8)


def test_ddim_timesteps_span_the_chain(impl):
    """ddim_timesteps: round(linspace(T-1, 0, n)), descending long; n outside 1..T is a ValueError."""
    got = impl.ddim_timesteps(1000, 5)
    assert got.tolist() == [999, 749, 500, 250, 0], f"expected [999, 749, 500, 250, 0], got {got}"
    assert impl.ddim_timesteps(50, 50).tolist() == list(range(49, -1, -1))
    for bad in (0, 51):
        with pytest.raises(ValueError):
            impl.ddim_timesteps(50, bad)


def test_noise_prediction_loss_replays_draw_by_draw(impl):
    """The loss draws t then noise from the generator and is the MSE of the model's noise estimate."""
    sched, x0 = _schedule(impl), _x0(shape=(5, 1, 3, 3)).float()
    weight = torch.tensor(0.7, requires_grad=True)
    seen = {}

    def model(x_t, t):
        seen["t"] = t
        return weight * x_t

    loss = impl.noise_prediction_loss(model, x0, sched, torch.Generator().manual_seed(4))
    g = torch.Generator().manual_seed(4)
    t = torch.randint(0, sched.T, (5,), generator=g)
    noise = torch.randn(x0.shape, generator=g, dtype=x0.dtype)
    ab = sched.alpha_bars[t].float().reshape(-1, 1, 1, 1)
    w2 = weight.detach().clone().requires_grad_()
    expected = F.mse_loss(w2 * (ab.sqrt() * x0 + (1 - ab).sqrt() * noise), noise)
    assert torch.equal(seen["t"], t), f"timesteps should be {t.tolist()}"
    _close(loss, expected, "loss", atol=1e-6, rtol=1e-5)
    (g_ours,), (g_ref,) = torch.autograd.grad(loss, weight), torch.autograd.grad(expected, w2)
    _close(g_ours, g_ref, "d loss / d weight", atol=1e-6, rtol=1e-5)


def test_ddpm_sample_replays_the_ancestral_chain(impl):
    """ddpm_sample: x_T, then per step x0_hat -> posterior mean + sqrt(var) * fresh noise (t > 0)."""
    sched, shape = _schedule(impl, T=12), (3, 2, 2)
    model = _gaussian_data_oracle(sched, 0.3, 0.5)
    got = impl.ddpm_sample(model, shape, sched, torch.Generator().manual_seed(7))
    g = torch.Generator().manual_seed(7)
    x = torch.randn(shape, generator=g)
    for step in range(sched.T - 1, -1, -1):
        ab, a, b = (float(v[step]) for v in (sched.alpha_bars, sched.alphas, sched.betas))
        mean = (x - b / math.sqrt(1 - ab) * model(x, torch.full((3,), step))) / math.sqrt(a)
        var = (1 - float(sched.alpha_bars[step - 1])) / (1 - ab) * b if step else 0.0
        x = mean + math.sqrt(var) * torch.randn(shape, generator=g) if step else mean
    _close(got, x, "ancestral chain", atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_samplers_are_seeded(impl, sampler):
    """Samplers: same generator seed, same samples; another seed, other samples; x_T fixes DDIM."""
    sched = _schedule(impl, T=10)
    model = _gaussian_data_oracle(sched, 0.0, 0.5)

    def draw(seed):
        g = torch.Generator().manual_seed(seed)
        if sampler == "ddpm":
            return impl.ddpm_sample(model, (4, 1, 3, 3), sched, g)
        return impl.ddim_sample(model, (4, 1, 3, 3), sched, 5, g)

    a, b, c = draw(1), draw(1), draw(2)
    assert a.shape == (4, 1, 3, 3), f"expected shape (4, 1, 3, 3), got {tuple(a.shape)}"
    assert torch.equal(a, b), "the same seed must give the same samples"
    assert not torch.allclose(a, c), "different seeds must give different samples"
    if sampler == "ddim":
        x_T = torch.randn((4, 1, 3, 3), generator=torch.Generator().manual_seed(3))
        one = impl.ddim_sample(
            model, x_T.shape, sched, 5, torch.Generator().manual_seed(0), x_T=x_T
        )
        two = impl.ddim_sample(
            model, x_T.shape, sched, 5, torch.Generator().manual_seed(9), x_T=x_T
        )
        assert torch.equal(one, two), "with eta = 0 and x_T given, the generator must not matter"


@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "ddim_eta1"])
def test_samplers_reproduce_gaussian_data(impl, sampler):
    """With the exact noise model of N(0.5, 0.3^2) data, samples have that mean and std."""
    sched, m, s, n = impl.linear_schedule(200, 1e-4, 0.1), 0.5, 0.3, 4000
    model, g = _gaussian_data_oracle(sched, m, s), torch.Generator().manual_seed(0)
    if sampler == "ddpm":
        x = impl.ddpm_sample(model, (n, 1), sched, g)
    else:
        eta = 0.0 if sampler == "ddim" else 1.0  # every step: few DDIM steps shrink the spread
        x = impl.ddim_sample(model, (n, 1), sched, 200, g, eta=eta)
    assert abs(x.mean().item() - m) < 0.03, f"{sampler}: sample mean {x.mean():.3f}, want {m}"
    assert abs(x.std().item() - s) < 0.03, f"{sampler}: sample std {x.std():.3f}, want {s}"


def test_clip_bounds_the_predicted_x0(impl):
    """clip=c clamps x0_hat to [-c, c] in both samplers, so the samples stay inside it."""
    sched = _schedule(impl, T=10)
    model = _gaussian_data_oracle(sched, 3.0, 0.5)  # data far outside [-1, 1]
    g = torch.Generator().manual_seed(0)
    free = impl.ddpm_sample(model, (50, 1), sched, g)
    assert free.mean() > 2.0, "without clip the samples should follow the data near 3"
    for x in (
        impl.ddpm_sample(model, (50, 1), sched, torch.Generator().manual_seed(0), clip=1.0),
        impl.ddim_sample(model, (50, 1), sched, 5, torch.Generator().manual_seed(0), clip=1.0),
    ):
        assert x.abs().max() <= 1.0 + 1e-4, f"clipped samples should be in [-1, 1], max {x.max()}"
    # where the clamp never binds, clipping (and the eps recomputed from x0) changes nothing
    narrow, x_T = _gaussian_data_oracle(sched, 0.0, 0.1), torch.randn((50, 1), generator=g)
    free = impl.ddim_sample(narrow, (50, 1), sched, 5, x_T=x_T)
    _close(impl.ddim_sample(narrow, (50, 1), sched, 5, x_T=x_T, clip=1.0), free,
           "a clip that never binds must not change DDIM", atol=1e-5, rtol=1e-5)  # fmt: skip
