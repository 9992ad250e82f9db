"""Grader for conditional-vae: the one-hot code against F.one_hot, the conditional encoder and
decoder against a direct computation on the concatenated inputs (values and gradients, float64),
the label really changing the decoder's output, the conditional ELBO against the trusted
`airoad.generative.vae.elbo` and torch.distributions (values, parameter gradients, gradcheck),
one training step against a hand-made SGD step, loss falling on a fixed batch, and sampling."""

from __future__ import annotations

import pytest
import torch
from torch import distributions as D
from torch.nn import functional as F

from airoad.generative import vae as trusted

REFERENCE = "airoad.generative.conditional_vae"

F64 = torch.float64
D_IN, C, L = 6, 3, 2


def _close(got, expected, what, atol=1e-10, rtol=1e-10):
    torch.testing.assert_close(got, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


def _model(impl, seed=0, hidden=(5, 4)):
    torch.manual_seed(seed)
    return impl.ConditionalVAE(D_IN, C, hidden, L).double().eval()


def _batch(n=4, seed=1, binary=False, d=D_IN):
    """Images (n, d), grey in (0, 1) or binary, and labels covering every class."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(n, d, generator=g, dtype=F64) * 0.9 + 0.05
    return (torch.bernoulli(x, generator=g) if binary else x), torch.arange(n) % C


def _encode(model, x, y):
    """The encoder heads on cat([x, one_hot(y)]), written out with torch."""
    h = model.encoder(torch.cat([x, F.one_hot(y, C).to(x.dtype)], -1))
    return model.to_mu(h), model.to_logvar(h)


def _decode(model, z, y):
    """to_logits(decoder(cat([z, one_hot(y)]))) with the code expanded over z's leading dims."""
    c = F.one_hot(y, C).to(z.dtype).expand(*z.shape[:-1], C)
    return model.to_logits(model.decoder(torch.cat([z, c], -1)))


def _direct_elbo(model, x, y, seed):
    """The conditional ELBO from torch.distributions, with eps drawn as vae.reparameterize does."""
    mu, logvar = _encode(model, x, y)
    eps = torch.randn((1, *mu.shape), generator=torch.Generator().manual_seed(seed), dtype=F64)
    z = mu + torch.exp(0.5 * logvar) * eps
    q = D.Independent(D.Normal(mu, torch.exp(0.5 * logvar)), 1)
    prior = D.Independent(D.Normal(torch.zeros_like(mu), torch.ones_like(mu)), 1)
    log_px = D.Independent(D.Bernoulli(logits=_decode(model, z, y)[0]), 1).log_prob(x)
    return log_px - D.kl_divergence(q, prior)


def _param_grads(model, loss, prefix=""):
    """Gradients of loss with respect to the parameters whose names start with prefix."""
    params = [p for name, p in model.named_parameters() if name.startswith(prefix)]
    return torch.autograd.grad(loss, params)


def test_one_hot_matches_torch(impl):
    """one_hot(labels, C, dtype) equals F.one_hot(labels, C).to(dtype), any leading shape; a label >= C is refused."""
    labels = torch.tensor([[0, 2, 1], [3, 3, 0]])
    got = impl.one_hot(labels, 4, F64)
    assert got.dtype == F64, f"expected dtype float64, got {got.dtype}"
    _close(got, F.one_hot(labels, 4).double(), "one-hot codes differ from F.one_hot")
    assert impl.one_hot(torch.tensor([1]), 3).dtype == torch.float32, "dtype defaults to float32"
    with pytest.raises((RuntimeError, ValueError, IndexError)):
        impl.one_hot(torch.tensor([0, 3]), 3)


def test_encode_sees_the_image_and_the_label(impl):
    """encode(x, y) = (to_mu, to_logvar) of encoder(cat([x, one_hot(y)])): values and gradients."""
    model = _model(impl)
    x, y = _batch()
    x.requires_grad_()
    got, expected = impl.ConditionalVAE.encode(model, x, y), _encode(model, x, y)
    for a, b, name in zip(got, expected, ("mu", "logvar")):
        assert a.shape == (4, L), f"{name} should have shape (n, L) = (4, {L}), got {a.shape}"
        _close(a, b, f"{name} should be its head on encoder(cat([x, one_hot(y)], -1))")
    weights = torch.linspace(0.5, 1.5, 2 * 4 * L, dtype=F64).reshape(2, 4, L)
    enc = ("encoder", "to_mu", "to_logvar")
    g_got = _param_grads(model, (torch.stack(got) * weights).sum(), enc)
    g_exp = _param_grads(model, (torch.stack(expected) * weights).sum(), enc)
    for a, b in zip(g_got, g_exp):
        _close(a, b, "encoder parameter gradients differ from the direct computation")


def test_decode_concatenates_the_label_over_leading_dims(impl):
    """decode(z (k, n, L), y (n,)) = to_logits(decoder(cat([z, one_hot(y)]))), image i's label on all k latents."""
    model = _model(impl, seed=1)
    z = torch.randn(3, 4, L, generator=torch.Generator().manual_seed(2), dtype=F64)
    y = torch.tensor([2, 0, 1, 2])
    got = model.decode(z, y)
    assert got.shape == (3, 4, D_IN), f"expected logits (k, n, D) = (3, 4, {D_IN}), got {got.shape}"
    _close(got, _decode(model, z, y), "decode should see cat([z, one_hot(y)], -1)")
    _close(model.decode(z[0], y), _decode(model, z[0], y), "decode of (n, L) latents")


def test_the_label_changes_the_decoder_output(impl):
    """The same z decodes differently under each label, and only through the label's input weights."""
    model = _model(impl, seed=2)
    z = torch.randn(1, L, generator=torch.Generator().manual_seed(3), dtype=F64).expand(C, L)
    logits = model.decode(z, torch.arange(C))
    gaps = torch.cdist(logits, logits) + torch.eye(C, dtype=F64)
    assert gaps.min() > 1e-3, f"labels 0..{C - 1} should give {C} different outputs: gaps {gaps}"
    with (
        torch.no_grad()
    ):  # cut the label's columns of the first decoder layer: y must stop mattering
        model.decoder[0].weight[:, L:] = 0.0
    blind = model.decode(z, torch.arange(C))
    _close(blind, blind[:1].expand(C, D_IN), "with the label's weights zeroed the label still acts")


def test_forward_reparameterizes_with_the_generator(impl):
    """forward(x, y, k, generator) = (decode(z, y), z, mu, logvar), z = mu + exp(logvar / 2) * randn((k, n, L))."""
    model = _model(impl, seed=3)
    x, y = _batch(seed=4)
    logits, z, mu, logvar = model(x, y, 3, torch.Generator().manual_seed(5))
    m, lv = _encode(model, x, y)
    eps = torch.randn((3, 4, L), generator=torch.Generator().manual_seed(5), dtype=F64)
    _close(mu, m, "mu should be the encoder's on [x, one_hot(y)]")
    _close(logvar, lv, "logvar should be the encoder's on [x, one_hot(y)]")
    _close(
        z, m + torch.exp(0.5 * lv) * eps, "z should be vae.reparameterize(mu, logvar, k, generator)"
    )
    _close(logits, _decode(model, z, y), "logits should be decode(z, y)")
    assert model(x, y)[1].shape == (1, 4, L), "forward draws k = 1 latent per image by default"


def test_elbo_equals_vae_elbo_on_the_concatenated_inputs(impl):
    """elbo(x, y, generator) = vae.elbo(x, logits, mu, logvar) on [x, c] and [z, c], = torch.distributions; grads too."""
    model = _model(impl, seed=4)
    x, y = _batch(n=5, seed=6, binary=True)
    got = model.elbo(x, y, torch.Generator().manual_seed(7))
    assert got.shape == (5,), f"one ELBO per image: shape (5,), got {tuple(got.shape)}"
    mu, logvar = _encode(model, x, y)
    z = trusted.reparameterize(mu, logvar, 1, torch.Generator().manual_seed(7))
    _close(got, trusted.elbo(x, _decode(model, z, y)[0], mu, logvar), "differs from vae.elbo")
    expected = _direct_elbo(model, x, y, seed=7)
    _close(got, expected, "conditional ELBO differs from torch.distributions")
    for a, b in zip(_param_grads(model, got.sum()), _param_grads(model, expected.sum())):
        _close(a, b, "ELBO gradient with respect to a parameter differs from torch's")


def test_elbo_passes_gradcheck(impl):
    """Finite differences agree with autograd through elbo with respect to the images (float64)."""
    model = _model(impl, seed=5)
    x, y = _batch(n=3, seed=8)
    x.requires_grad_()
    assert torch.autograd.gradcheck(
        lambda v: model.elbo(v, y, torch.Generator().manual_seed(9)), (x,)
    )


def test_train_step_is_one_step_on_minus_the_mean_elbo(impl):
    """train_step returns -mean ELBO and moves every parameter by -lr times its fresh gradient (SGD; zero_grad first)."""
    model = _model(impl, seed=6)
    x, y = _batch(n=6, seed=10, binary=True)
    loss = -_direct_elbo(model, x, y, seed=11).mean()
    grads = _param_grads(model, loss)
    before = [p.detach().clone() for p in model.parameters()]
    sum(p.sum() for p in model.parameters()).backward()  # stale gradients that must be zeroed
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    got = impl.train_step(model, opt, x, y, torch.Generator().manual_seed(11))
    assert abs(got - loss.item()) < 1e-9, f"train_step returned {got}, expected -ELBO {loss.item()}"
    for p, p0, g in zip(model.parameters(), before, grads):
        _close(p.detach(), p0 - 0.1 * g, "a parameter moved differently from one SGD step")


def test_training_lowers_the_loss_on_a_fixed_batch(impl):
    """40 Adam steps of train_step on one batch lower its -ELBO (same noise before and after) by > 1 nat."""
    torch.manual_seed(7)
    model = impl.ConditionalVAE(20, C, (16,), L).double()
    x, y = _batch(n=12, seed=12, binary=True, d=20)
    with torch.no_grad():
        before = -model.elbo(x, y, torch.Generator().manual_seed(13)).mean().item()
    opt, gen = torch.optim.Adam(model.parameters(), lr=0.02), torch.Generator().manual_seed(14)
    losses = [impl.train_step(model, opt, x, y, gen) for _ in range(40)]
    with torch.no_grad():
        after = -model.elbo(x, y, torch.Generator().manual_seed(13)).mean().item()
    assert after < before - 1.0, f"-ELBO {before:.3f} -> {after:.3f}: training did not lower it"
    assert sum(losses[-5:]) < sum(losses[:5]), f"train_step losses did not fall: {losses}"


def test_sample_decodes_prior_noise_under_each_label(impl):
    """sample(labels, generator) = sigmoid(decode(randn(n, L), labels)) from that generator, in [0, 1]."""
    model = _model(impl, seed=8)
    labels = torch.tensor([0, 1, 2, 2, 0])
    got = model.sample(labels, torch.Generator().manual_seed(15))
    z = torch.randn(5, L, generator=torch.Generator().manual_seed(15), dtype=F64)
    assert got.shape == (5, D_IN), f"one image per label: shape (5, {D_IN}), got {tuple(got.shape)}"
    _close(got, torch.sigmoid(_decode(model, z, labels)), "samples should be Bernoulli means")
    assert got.min() >= 0 and got.max() <= 1, "Bernoulli means lie in [0, 1]"
