"""Grader for vae: the reparameterisation trick against Normal.rsample (values, gradients,
moments), the closed-form KL, Gaussian and Bernoulli log-densities and the ELBO against
torch.distributions (values and gradients, float64), the importance-weighted bound (k = 1 is the
one-sample ELBO; it rises with k towards the exact log p(x) of a 1-d latent model found by
quadrature), and the model's encode / decode / forward / sample."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import distributions as D

REFERENCE = "airoad.generative.vae"

FAST = settings(max_examples=15, deadline=None)
F64 = torch.float64


def _gauss(n=5, latent=3, seed=0, grad=True):
    """Seeded float64 (mu, logvar) with requires_grad."""
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(n, latent, generator=g, dtype=F64)
    logvar = torch.randn(n, latent, generator=g, dtype=F64) * 0.7
    return mu.requires_grad_(grad), logvar.requires_grad_(grad)


def _grads(out, inputs):
    """Gradients of sum(out * fixed weights) with respect to inputs."""
    weights = torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).reshape(out.shape)
    return torch.autograd.grad((out * weights).sum(), inputs)


def _close(got, expected, what, atol=1e-10, rtol=1e-10):
    torch.testing.assert_close(got, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


def _normal(mu, logvar):
    return D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1)


def _std_normal(like):
    return D.Independent(D.Normal(torch.zeros_like(like), torch.ones_like(like)), 1)


def _tiny_vae(impl, seed=0, in_dim=6, hidden=(5, 4), latent=2):
    torch.manual_seed(seed)
    return impl.VAE(in_dim, hidden, latent).double().eval()


def _binary(n, d, seed):
    return torch.bernoulli(
        torch.full((n, d), 0.4, dtype=F64), generator=torch.Generator().manual_seed(seed)
    )


def test_reparameterize_equals_normal_rsample(impl):
    """reparameterize draws eps = randn((k, *mu.shape)) in one call: same values and gradients as Normal.rsample."""
    mu, logvar = _gauss()
    got = impl.reparameterize(mu, logvar, 4, torch.Generator().manual_seed(7))
    assert got.shape == (4, 5, 3), f"expected shape (k, n, L) = (4, 5, 3), got {tuple(got.shape)}"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(7)
        expected = D.Normal(mu, torch.exp(0.5 * logvar)).rsample((4,))
    _close(got, expected, "z differs from Normal(mu, exp(logvar/2)).rsample with the same seed")
    for a, b, name in zip(
        _grads(got, (mu, logvar)), _grads(expected, (mu, logvar)), ("mu", "logvar")
    ):
        _close(a, b, f"gradient with respect to {name} differs from rsample's")


def test_reparameterize_gradients_are_analytic(impl):
    """dz/dmu = 1 and dz/dlogvar = exp(logvar/2) * eps / 2: gradients flow to both parameters."""
    mu, logvar = _gauss(n=4, latent=2, seed=1)
    z = impl.reparameterize(mu, logvar, 3, torch.Generator().manual_seed(2))
    eps = torch.randn((3, 4, 2), generator=torch.Generator().manual_seed(2), dtype=F64)
    g_mu, g_logvar = torch.autograd.grad(z.sum(), (mu, logvar))
    _close(g_mu, torch.full_like(mu, 3.0), "d sum(z) / d mu should be k = 3 everywhere")
    assert impl.reparameterize(mu, logvar).shape == (1, 4, 2), "k defaults to 1: shape (1, n, L)"
    expected = (0.5 * torch.exp(0.5 * logvar) * eps).sum(0).detach()
    _close(g_logvar, expected, "d sum(z) / d logvar should be sum_k exp(logvar/2) eps_k / 2")


def test_reparameterize_has_the_right_moments(impl):
    """20,000 samples have mean mu and variance exp(logvar) (within 5 standard errors)."""
    mu = torch.tensor([[0.0, 2.0], [-3.0, 0.5]], dtype=F64)
    logvar = torch.tensor([[0.0, -2.0], [1.5, 0.3]], dtype=F64)
    z = impl.reparameterize(mu, logvar, 20_000, torch.Generator().manual_seed(0))
    var = logvar.exp()
    mean_err = (z.mean(0) - mu).abs() / (var / 20_000).sqrt()
    assert mean_err.max() < 5, f"sample means {z.mean(0)} are too far from mu {mu}"
    ratio = z.var(0) / var  # the sample variance has relative std sqrt(2 / k) = 0.01
    assert (ratio - 1).abs().max() < 0.05, f"sample variances / exp(logvar) = {ratio}, expected 1"


@pytest.mark.parametrize("shape", [(5, 3), (2, 4, 6)])
def test_gaussian_kl_matches_torch(impl, shape):
    """gaussian_kl equals kl_divergence(Independent Normal, N(0, I)), values and gradients."""
    g = torch.Generator().manual_seed(sum(shape))
    mu = torch.randn(shape, generator=g, dtype=F64).requires_grad_()
    logvar = (torch.randn(shape, generator=g, dtype=F64) * 1.5).requires_grad_()
    got = impl.gaussian_kl(mu, logvar)
    expected = D.kl_divergence(_normal(mu, logvar), _std_normal(mu))
    assert got.shape == shape[:-1], f"KL should sum the last dimension: shape {shape[:-1]}"
    _close(got, expected, "KL differs from torch.distributions.kl_divergence")
    for a, b in zip(_grads(got, (mu, logvar)), _grads(expected, (mu, logvar))):
        _close(a, b, "KL gradient differs from torch's")


@FAST
@given(
    mu=st.lists(st.floats(-5, 5), min_size=1, max_size=6),
    logvar=st.lists(st.floats(-6, 4), min_size=6, max_size=6),
)
def test_gaussian_kl_is_per_unit_normal_kl(impl, mu, logvar):
    """For any mu, logvar: KL = sum over units of kl_divergence(Normal(mu, s), Normal(0, 1)) >= 0."""
    m = torch.tensor(mu, dtype=F64)
    lv = torch.tensor(logvar[: len(mu)], dtype=F64)
    expected = D.kl_divergence(D.Normal(m, torch.exp(0.5 * lv)), D.Normal(0.0, 1.0)).sum()
    got = impl.gaussian_kl(m, lv)
    _close(got, expected, "KL differs from the sum of per-unit Normal KLs", atol=1e-9, rtol=1e-9)
    assert got >= -1e-12, f"KL must be non-negative, got {got}"


def test_kl_is_zero_only_at_the_prior(impl):
    """KL(N(0, I) || N(0, I)) = 0 and any other (mu, logvar) gives KL > 0."""
    zero = torch.zeros(2, 4, dtype=F64)
    _close(impl.gaussian_kl(zero, zero), torch.zeros(2, dtype=F64), "KL of the prior to itself")
    assert (impl.gaussian_kl(zero + 0.1, zero) > 0).all() and (
        impl.gaussian_kl(zero, zero - 0.1) > 0
    ).all()


def test_log_normal_matches_torch_with_broadcasting(impl):
    """log_normal(z (k, n, L), mu (n, L), logvar) equals Normal.log_prob summed over L; values and gradients."""
    mu, logvar = _gauss(n=4, latent=3, seed=3)
    z = torch.randn(2, 4, 3, generator=torch.Generator().manual_seed(4), dtype=F64).requires_grad_()
    got = impl.log_normal(z, mu, logvar)
    expected = _normal(mu, logvar).log_prob(z)
    assert got.shape == (2, 4), f"expected shape (k, n) = (2, 4), got {tuple(got.shape)}"
    _close(got, expected, "log N(z; mu, exp(logvar)) differs from Normal.log_prob")
    for a, b in zip(_grads(got, (z, mu, logvar)), _grads(expected, (z, mu, logvar))):
        _close(a, b, "log-density gradient differs from torch's")
    zeros = torch.zeros_like(z)
    _close(impl.log_normal(z, zeros, zeros), _std_normal(z).log_prob(z), "standard normal prior")


def test_bernoulli_log_likelihood_matches_torch(impl):
    """bernoulli_log_likelihood(logits (k, n, D), x (n, D)) equals Bernoulli(logits).log_prob summed; grads too."""
    g = torch.Generator().manual_seed(5)
    logits = (torch.randn(3, 4, 7, generator=g, dtype=F64) * 4).requires_grad_()
    x = _binary(4, 7, seed=6)
    got = impl.bernoulli_log_likelihood(logits, x)
    expected = D.Independent(D.Bernoulli(logits=logits), 1).log_prob(x.expand_as(logits))
    assert got.shape == (3, 4), f"expected shape (k, n) = (3, 4), got {tuple(got.shape)}"
    _close(got, expected, "log p(x|z) differs from torch.distributions.Bernoulli")
    _close(_grads(got, logits)[0], _grads(expected, logits)[0], "gradient wrt logits differs")


def test_bernoulli_log_likelihood_is_stable(impl):
    """Logits of +-300 give finite log-likelihoods (-300 for a pixel predicted wrongly), never -inf or NaN."""
    logits = torch.tensor([[300.0, -300.0, 300.0, -300.0]], dtype=torch.float32)
    x = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    got = impl.bernoulli_log_likelihood(logits, x)
    assert torch.isfinite(got).all(), "use binary_cross_entropy_with_logits, not log(sigmoid(l))"
    _close(
        got,
        torch.tensor([-600.0]),
        "two confident wrong pixels cost 300 nats each",
        atol=1e-3,
        rtol=1e-6,
    )


def test_elbo_matches_torch_distributions(impl):
    """elbo = Bernoulli log_prob - kl_divergence to N(0, I): values and gradients wrt logits, mu, logvar."""
    mu, logvar = _gauss(n=4, latent=3, seed=8)
    logits = torch.randn(
        4, 7, generator=torch.Generator().manual_seed(9), dtype=F64
    ).requires_grad_()
    x = _binary(4, 7, seed=10)
    got = impl.elbo(x, logits, mu, logvar)
    log_px = D.Independent(D.Bernoulli(logits=logits), 1).log_prob(x)
    expected = log_px - D.kl_divergence(_normal(mu, logvar), _std_normal(mu))
    assert got.shape == (4,), f"elbo is one number per image: shape (4,), got {tuple(got.shape)}"
    _close(got, expected, "ELBO differs from torch.distributions")
    for a, b in zip(_grads(got, (logits, mu, logvar)), _grads(expected, (logits, mu, logvar))):
        _close(a, b, "ELBO gradient differs from torch's")


def test_elbo_passes_gradcheck(impl):
    """Finite differences agree with autograd through elbo (float64 gradcheck)."""
    mu, logvar = _gauss(n=2, latent=2, seed=11)
    logits = torch.randn(
        2, 3, generator=torch.Generator().manual_seed(12), dtype=F64
    ).requires_grad_()
    x = _binary(2, 3, seed=13)
    assert torch.autograd.gradcheck(lambda lg, m, lv: impl.elbo(x, lg, m, lv), (logits, mu, logvar))


def test_log_importance_weights_match_torch(impl):
    """log w = log p(x|z) + log p(z) - log q(z|x) from torch.distributions, shape (k, n); grads too."""
    mu, logvar = _gauss(n=4, latent=3, seed=14)
    g = torch.Generator().manual_seed(15)
    z = torch.randn(5, 4, 3, generator=g, dtype=F64).requires_grad_()
    logits = torch.randn(5, 4, 7, generator=g, dtype=F64).requires_grad_()
    x = _binary(4, 7, seed=16)
    got = impl.log_importance_weights(x, logits, z, mu, logvar)
    log_px = D.Independent(D.Bernoulli(logits=logits), 1).log_prob(x.expand_as(logits))
    expected = log_px + _std_normal(z).log_prob(z) - _normal(mu, logvar).log_prob(z)
    assert got.shape == (5, 4), f"expected shape (k, n) = (5, 4), got {tuple(got.shape)}"
    _close(got, expected, "log importance weights differ from torch.distributions")
    inputs = (logits, z, mu, logvar)
    for a, b in zip(_grads(got, inputs), _grads(expected, inputs)):
        _close(a, b, "log-weight gradient differs from torch's")


def test_log_mean_exp_is_stable(impl):
    """log_mean_exp equals log(mean(exp(w))) in float64, and stays exact for weights near -1000 in float32."""
    w = torch.randn(6, 3, generator=torch.Generator().manual_seed(17), dtype=F64) * 3
    _close(impl.log_mean_exp(w), w.exp().mean(0).log(), "log-mean-exp over dim 0")
    _close(impl.log_mean_exp(w, dim=1), w.exp().mean(1).log(), "log-mean-exp over dim 1")
    shifted = (w - 1000).float()
    got = impl.log_mean_exp(shifted)
    assert torch.isfinite(got).all(), "exp(-1000) underflows: subtract the max (torch.logsumexp)"
    _close(got, (w.exp().mean(0).log() - 1000).float(), "shifted weights", atol=1e-3, rtol=1e-6)


def test_encode_and_decode_use_the_layers(impl):
    """encode = (to_mu, to_logvar) of encoder(x); decode = to_logits(decoder(z)), any leading dims."""
    model = _tiny_vae(impl)
    x = _binary(4, 6, seed=18)
    mu, logvar = model.encode(x)
    h = model.encoder(x)
    _close(mu, model.to_mu(h), "mu should be to_mu(encoder(x))")
    _close(logvar, model.to_logvar(h), "logvar should be to_logvar(encoder(x))")
    z = torch.randn(3, 4, 2, generator=torch.Generator().manual_seed(19), dtype=F64)
    _close(model.decode(z), model.to_logits(model.decoder(z)), "decode(z) = to_logits(decoder(z))")


def test_forward_encodes_samples_and_decodes(impl):
    """forward(x, k, generator) = (decode(z), z, mu, logvar) with z from reparameterize on that generator."""
    model = _tiny_vae(impl, seed=1)
    x = _binary(4, 6, seed=20)
    logits, z, mu, logvar = model(x, 3, torch.Generator().manual_seed(21))
    m, lv = model.encode(x)
    eps = torch.randn((3, 4, 2), generator=torch.Generator().manual_seed(21), dtype=F64)
    _close(mu, m, "mu")
    _close(logvar, lv, "logvar")
    _close(z, m + torch.exp(0.5 * lv) * eps, "z should be mu + exp(logvar / 2) * eps")
    _close(logits, model.decode(z), "logits should be decode(z)")
    assert model(x)[1].shape == (1, 4, 2), "forward draws k = 1 latent per image by default"
    assert logits.shape == (3, 4, 6), (
        f"logits shape (k, n, D) = (3, 4, 6), got {tuple(logits.shape)}"
    )


def test_k1_bound_is_the_one_sample_elbo(impl):
    """With k = 1 the importance-weighted bound is log p(x|z) + log p(z) - log q(z|x) for that same z."""
    model = _tiny_vae(impl, seed=2)
    x = _binary(5, 6, seed=22)
    with torch.no_grad():
        logits, z, mu, logvar = model(x, 1, torch.Generator().manual_seed(23))
        got = impl.log_mean_exp(impl.log_importance_weights(x, logits, z, mu, logvar))
    log_px = D.Independent(D.Bernoulli(logits=logits[0]), 1).log_prob(x)
    expected = log_px + _std_normal(z[0]).log_prob(z[0]) - _normal(mu, logvar).log_prob(z[0])
    _close(got, expected, "k = 1 bound differs from the one-sample ELBO estimate")


def _exact_log_px(model, x) -> torch.Tensor:
    """log p(x) of a 1-d latent model by the trapezoid rule on a fine grid over [-10, 10]."""
    grid = torch.linspace(-10, 10, 40_001, dtype=F64)
    logits = model.decode(grid[:, None, None].expand(-1, len(x), 1))  # (G, n, D)
    log_joint = -_bce(logits, x) - 0.5 * (grid**2 + math.log(2 * math.pi))[:, None]
    step = float(grid[1] - grid[0])
    return torch.logsumexp(log_joint, 0) + math.log(step)  # endpoints carry ~exp(-50): negligible


def _bce(logits, x):
    return torch.nn.functional.binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none"
    ).sum(-1)


def test_bound_rises_with_k_towards_exact_log_likelihood(impl):
    """Averaged over repeats the bound rises with k (1, 10, 100), stays below log p(x), and k = 20,000 nears it."""
    model = _tiny_vae(impl, seed=3, in_dim=12, hidden=(6,), latent=1)
    with torch.no_grad():  # a sharper decoder, so q(z|x) is far from p(z|x) and k matters
        model.to_logits.weight.mul_(3)
        model.decoder[0].weight.mul_(3)
        x = _binary(3, 12, seed=24)
        exact = _exact_log_px(model, x)  # about -10.9, -9.8, -9.0
        logits, z, mu, logvar = model(x, 20_000, torch.Generator().manual_seed(25))
        log_w = impl.log_importance_weights(x, logits, z, mu, logvar)  # (20000, 3)
    means = []
    for k in (1, 10, 100):  # 20000 / k independent k-sample bounds per image, averaged
        means.append(impl.log_mean_exp(log_w.reshape(20_000 // k, k, 3), dim=1).mean(0))
    for small, large in zip(means, means[1:]):
        assert (large > small + 0.05).all(), f"mean bound should rise with k = 1, 10, 100: {means}"
    assert (means[1] < exact - 0.05).all(), f"k = 10 bounds {means[1]} not below log p(x) {exact}"
    assert (means[2] < exact + 0.04).all(), f"k = 100 bounds {means[2]} exceed log p(x) {exact}"
    _close(
        impl.log_mean_exp(log_w), exact, "k = 20000 should nearly equal log p(x)", atol=0.03, rtol=0
    )


def test_sample_decodes_prior_noise(impl):
    """sample(n, generator) = sigmoid(decode(z)) for z = randn(n, L) from that generator, in [0, 1]."""
    model = _tiny_vae(impl, seed=4)
    got = model.sample(5, torch.Generator().manual_seed(26))
    z = torch.randn(5, 2, generator=torch.Generator().manual_seed(26), dtype=F64)
    _close(got, torch.sigmoid(model.decode(z)), "samples should be the decoder's Bernoulli means")
    assert got.shape == (5, 6) and got.min() >= 0 and got.max() <= 1
