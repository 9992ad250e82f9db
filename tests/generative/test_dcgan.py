"""Graders for the dcgan lab: the architecture rules (strided convolutions, no pooling, batch norm
where DCGAN puts it, shapes per stage, each block against torch.nn.functional), the DCGAN
initialisation, the Wasserstein losses, and the gradient penalty against direct computations
(a linear critic's closed form, per-image autograd, finite differences) with its own gradient
reaching the critic's parameters; one critic step against an SGD update computed by hand."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

REFERENCE = "airoad.generative.dcgan"

LATENT, WIDTH = 5, 4
POOLING = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.LPPool2d)


def _images(n: int, seed: int, dtype=torch.float32) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g, dtype=dtype) * 2 - 1


def _noise(n: int, seed: int) -> torch.Tensor:
    return torch.randn(n, LATENT, generator=torch.Generator().manual_seed(seed))


def _of(module: nn.Module, kind) -> list[nn.Module]:
    return [m for m in module.modules() if isinstance(m, kind)]


class LinearCritic(nn.Module):
    """f(x) = w . x + b: its gradient with respect to every image is w."""

    def __init__(self, w: torch.Tensor):
        super().__init__()
        self.w = nn.Parameter(w.clone())
        self.b = nn.Parameter(torch.tensor(0.3, dtype=w.dtype))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b


class SmallCritic(nn.Module):
    """A nonlinear per-image critic: f(x) = v . tanh(A x) (float64)."""

    def __init__(self, dim: int, seed: int):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.a = nn.Parameter(torch.randn(dim, 6, generator=g, dtype=torch.float64) / dim**0.5)
        self.v = nn.Parameter(torch.randn(6, generator=g, dtype=torch.float64))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x.flatten(1) @ self.a) @ self.v


def test_generator_stage_shapes_and_no_pooling(impl):
    """G: (n, latent) -> 2w x 7 x 7 -> w x 14 x 14 -> 1 x 28 x 28 in [-1, 1]; no pooling, no Linear."""
    torch.manual_seed(0)
    gen = impl.Generator(LATENT, WIDTH)
    z = _noise(3, 1)
    out = gen(z)
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1.0
    assert not _of(gen, POOLING) and not _of(gen, nn.Linear), "DCGAN G: no pooling, no Linear"
    h, shapes = z.view(3, LATENT, 1, 1), []
    for stage in gen.stages:
        h = stage(h)
        shapes.append(tuple(h.shape))
    assert shapes == [(3, 8, 7, 7), (3, 4, 14, 14), (3, 1, 28, 28)], f"stage shapes {shapes}"
    torch.testing.assert_close(out, h)
    convs = _of(gen, nn.ConvTranspose2d)
    assert [c.stride for c in convs] == [(1, 1), (2, 2), (2, 2)], "upsample with stride 2"


def test_generator_blocks_match_functional_forms(impl):
    """Each G block is conv_transpose2d -> batch_norm (batch stats) -> relu; the last ends in tanh."""
    torch.manual_seed(1)
    gen = impl.Generator(LATENT, WIDTH).train()
    z = _noise(4, 2)
    out = gen(z)
    convs, norms = _of(gen, nn.ConvTranspose2d), _of(gen, nn.BatchNorm2d)
    assert len(convs) == 3 and len(norms) == 2, "batch norm after every G block but the last"
    assert convs[0].bias is None and convs[1].bias is None, "no conv bias before a batch norm"
    h = z.view(4, LATENT, 1, 1)
    for i, (conv, stride, pad) in enumerate(zip(convs, (1, 2, 2), (0, 1, 1))):
        h = F.conv_transpose2d(h, conv.weight, conv.bias, stride=stride, padding=pad)
        if i < 2:
            n = norms[i]
            h = F.relu(F.batch_norm(h, None, None, n.weight, n.bias, training=True, eps=n.eps))
    torch.testing.assert_close(out, torch.tanh(h), rtol=1e-5, atol=1e-6)


def test_discriminator_stage_shapes_and_batch_norm_rules(impl):
    """D: 28 -> 14 -> 7 -> one score per image by stride-2 convs; batch norm only in the middle."""
    x = _images(3, 3)
    for bn in (True, False):
        torch.manual_seed(2)
        disc = impl.Discriminator(WIDTH, batch_norm=bn)
        out = disc(x)
        assert out.shape == (3,), "one score per image, shape (n,)"
        assert not _of(disc, POOLING) and not _of(disc, nn.Linear), "no pooling, no Linear"
        h, shapes = x, []
        for stage in disc.stages:
            h = stage(h)
            shapes.append(tuple(h.shape))
        assert shapes == [(3, 4, 14, 14), (3, 8, 7, 7), (3, 1, 1, 1)], f"stage shapes {shapes}"
        torch.testing.assert_close(out, h.flatten())
        assert [c.stride for c in _of(disc, nn.Conv2d)] == [(2, 2), (2, 2), (1, 1)]
        assert len(_of(disc, nn.BatchNorm2d)) == int(bn), f"batch_norm={bn}: norms in D"
        assert not _of(disc.stages[0], nn.BatchNorm2d), "no batch norm on D's input layer"


def test_discriminator_blocks_match_functional_forms(impl):
    """D = conv2d -> leaky_relu(0.2) -> conv2d [-> batch_norm] -> leaky_relu(0.2) -> conv2d (7x7)."""
    x = _images(5, 4)
    for bn in (True, False):
        torch.manual_seed(3)
        disc = impl.Discriminator(WIDTH, batch_norm=bn).train()
        c1, c2, c3 = _of(disc, nn.Conv2d)
        h = F.leaky_relu(F.conv2d(x, c1.weight, c1.bias, stride=2, padding=1), 0.2)
        h = F.conv2d(h, c2.weight, c2.bias, stride=2, padding=1)
        if bn:
            n = _of(disc, nn.BatchNorm2d)[0]
            h = F.batch_norm(h, None, None, n.weight, n.bias, training=True, eps=n.eps)
        expected = F.conv2d(F.leaky_relu(h, 0.2), c3.weight, c3.bias).flatten()
        torch.testing.assert_close(disc(x), expected, rtol=1e-5, atol=1e-6)


def test_critic_scores_each_image_on_its_own(impl):
    """Without batch norm an image's score ignores the rest of the batch; with it, it does not."""
    x = _images(4, 5)
    other = torch.cat([x[:1], -x[1:]])
    for bn in (True, False):
        torch.manual_seed(4)
        disc = impl.Discriminator(WIDTH, batch_norm=bn).train()
        changed = not torch.allclose(disc(other)[0], disc(x)[0], atol=1e-6)
        assert changed == bn, (
            f"batch_norm={bn}: score of image 0 changed with the others = {changed}"
        )


def test_init_weights_follows_dcgan(impl):
    """Conv weights ~ N(0, 0.02), batch-norm scales ~ N(1, 0.02), biases 0; seeded."""
    gen = impl.init_weights(impl.Generator(16, 16), seed=0).requires_grad_(False)
    disc = impl.init_weights(impl.Discriminator(16), seed=0).requires_grad_(False)
    for net in (gen, disc):
        w = torch.cat([m.weight.flatten() for m in _of(net, (nn.Conv2d, nn.ConvTranspose2d))])
        assert abs(float(w.mean())) < 2e-3 and float(w.std()) == pytest.approx(0.02, rel=0.05)
        s = torch.cat([m.weight.flatten() for m in _of(net, nn.BatchNorm2d)])
        assert abs(float(s.mean()) - 1) < 0.01 and 0.01 < float(s.std()) < 0.03
        for m in _of(net, (nn.Conv2d, nn.ConvTranspose2d, nn.BatchNorm2d)):
            assert m.bias is None or not m.bias.any(), "biases start at zero"
    again = impl.init_weights(impl.Generator(16, 16), seed=0)
    other = impl.init_weights(impl.Generator(16, 16), seed=1)
    for a, b in zip(gen.parameters(), again.parameters()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg="the same seed, the same weights")
    assert not torch.equal(gen.stages[0][0].weight, other.stages[0][0].weight)


def test_wasserstein_losses_values_and_gradients(impl):
    """critic_loss = mean f(fake) - mean f(real); G's loss = -mean f(fake): values and grads."""
    g = torch.Generator().manual_seed(6)
    real = torch.randn(5, generator=g, dtype=torch.float64, requires_grad=True)
    fake = torch.randn(3, generator=g, dtype=torch.float64, requires_grad=True)
    loss = impl.critic_loss(real, fake)
    torch.testing.assert_close(loss, fake.mean() - real.mean(), rtol=1e-12, atol=1e-12)
    g_real, g_fake = torch.autograd.grad(loss, (real, fake))
    torch.testing.assert_close(g_real, torch.full_like(real, -1 / 5))
    torch.testing.assert_close(g_fake, torch.full_like(fake, 1 / 3))
    g_loss = impl.wgan_generator_loss(fake)
    torch.testing.assert_close(g_loss, -fake.mean(), rtol=1e-12, atol=1e-12)
    (g_g,) = torch.autograd.grad(g_loss, fake)
    torch.testing.assert_close(g_g, torch.full_like(fake, -1 / 3))


@settings(max_examples=20, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=5), st.integers(0, 1000))
def test_interpolates_lie_on_the_segments(impl, eps_values, seed):
    """x_hat = eps real + (1 - eps) fake: on the segment, |real - x_hat| = (1 - eps) |real - fake|."""
    n = len(eps_values)
    eps = torch.tensor(eps_values, dtype=torch.float64)
    real, fake = _images(n, seed, torch.float64), _images(n, seed + 1, torch.float64)
    x_hat = impl.interpolate(real, fake, eps)
    assert x_hat.shape == real.shape
    e = eps.view(n, 1, 1, 1)
    torch.testing.assert_close(x_hat, e * real + (1 - e) * fake, rtol=1e-12, atol=1e-12)
    d = lambda a, b: torch.linalg.vector_norm((a - b).flatten(1), dim=1)  # noqa: E731
    torch.testing.assert_close(d(real, x_hat), (1 - eps) * d(real, fake), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(d(x_hat, fake), eps * d(real, fake), rtol=1e-9, atol=1e-9)


def test_gradient_penalty_of_a_linear_critic_is_closed_form(impl):
    """For f(x) = w.x + b every gradient is w, so the penalty is lambda (||w|| - 1)^2, any eps."""
    g = torch.Generator().manual_seed(7)
    for scale in (0.01, 0.037, 0.1):  # ||w|| about 0.28, 1.04, 2.8 for 784 pixels
        w = scale * torch.randn(784, generator=g, dtype=torch.float64)
        critic = LinearCritic(w)
        real, fake = _images(4, 8, torch.float64), _images(4, 9, torch.float64)
        eps = torch.rand(4, generator=g, dtype=torch.float64)
        gp = impl.gradient_penalty(critic, real, fake, eps, weight=7.0)
        expected = 7.0 * (w.norm() - 1) ** 2
        torch.testing.assert_close(gp, expected, rtol=1e-10, atol=1e-12)


def test_gradient_penalty_of_a_flat_critic_is_lambda_with_finite_gradient(impl):
    """A constant critic (all gradients 0) gives penalty lambda and a finite, zero gradient."""
    critic = LinearCritic(torch.zeros(784, dtype=torch.float64))
    eps = torch.tensor([0.3, 0.7, 0.5], dtype=torch.float64)
    gp = impl.gradient_penalty(
        critic, _images(3, 30, torch.float64), _images(3, 31, torch.float64), eps, 4.0
    )
    torch.testing.assert_close(gp, torch.tensor(4.0, dtype=torch.float64))
    gp.backward()
    assert critic.w.grad is not None and torch.isfinite(critic.w.grad).all(), "NaN at a zero norm"
    torch.testing.assert_close(critic.w.grad, torch.zeros(784, dtype=torch.float64))


def test_interpolate_rejects_mismatched_shapes(impl):
    """interpolate raises ValueError for real/fake of different shapes or the wrong number of eps."""
    real, fake = _images(3, 32), _images(3, 33)
    with pytest.raises(ValueError):
        impl.interpolate(real, fake[:2], torch.rand(3))
    with pytest.raises(ValueError):
        impl.interpolate(real, fake, torch.rand(2))
    with pytest.raises(ValueError):
        impl.interpolate(real, fake, torch.rand(3, 1))
    assert impl.interpolate(real, fake, torch.ones(3)).shape == real.shape


def test_gradient_penalty_gradient_reaches_the_critic(impl):
    """create_graph: d penalty / dw = 2 lambda (||w|| - 1) w / ||w|| for the linear critic."""
    w = 0.05 * torch.randn(784, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    critic = LinearCritic(w)
    eps = torch.tensor([0.2, 0.9], dtype=torch.float64)
    gp = impl.gradient_penalty(
        critic, _images(2, 11, torch.float64), _images(2, 12, torch.float64), eps, 10.0
    )
    assert gp.requires_grad, "the penalty must stay in the graph (create_graph=True)"
    gp.backward()
    assert critic.w.grad is not None, "no gradient reached the critic's weights"
    expected = 20.0 * (w.norm() - 1) * w / w.norm()
    torch.testing.assert_close(critic.w.grad, expected, rtol=1e-9, atol=1e-12)


def test_gradient_penalty_of_a_nonlinear_critic_matches_per_image_grads(impl):
    """A tanh critic: the penalty equals one computed image by image with torch.autograd.grad."""
    critic = SmallCritic(784, seed=13)
    real, fake = _images(5, 14, torch.float64), _images(5, 15, torch.float64)
    eps = torch.rand(5, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    gp = impl.gradient_penalty(critic, real, fake, eps, weight=3.0)
    terms = []
    for i in range(5):
        x = (eps[i] * real[i : i + 1] + (1 - eps[i]) * fake[i : i + 1]).requires_grad_()
        (g,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
        terms.append((g.norm() - 1) ** 2)
    expected = 3.0 * torch.stack(terms).mean()
    torch.testing.assert_close(gp, expected, rtol=1e-10, atol=1e-12)
    # the penalty's gradient with respect to the critic equals the per-image one's
    got = torch.autograd.grad(gp, list(critic.parameters()))
    want = torch.autograd.grad(expected, list(critic.parameters()))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_gradient_penalty_matches_finite_differences(impl):
    """Gradient norms inside the penalty equal central differences of a small critic (float64)."""
    critic = SmallCritic(12, seed=17)
    g = torch.Generator().manual_seed(18)
    real = torch.randn(3, 12, generator=g, dtype=torch.float64)
    fake = torch.randn(3, 12, generator=g, dtype=torch.float64)
    eps = torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64)
    x_hat = eps[:, None] * real + (1 - eps[:, None]) * fake
    h, basis = 1e-6, torch.eye(12, dtype=torch.float64)
    with torch.no_grad():
        fd = torch.stack(
            [(critic(x_hat + h * e) - critic(x_hat - h * e)) / (2 * h) for e in basis], dim=1
        )
    expected = 2.5 * ((fd.norm(dim=1) - 1) ** 2).mean()
    got = impl.gradient_penalty(critic, real, fake, eps, weight=2.5)
    torch.testing.assert_close(got, expected, rtol=1e-7, atol=1e-9)


def _sgd_twin(module: nn.Module, loss_of) -> tuple[list[torch.Tensor], float]:
    """Gradients of loss_of(params) at a copy of module's parameters (the module is untouched)."""
    names = [n for n, _ in module.named_parameters()]
    twin = [p.detach().clone().requires_grad_() for p in module.parameters()]
    loss = loss_of(lambda *a: torch.func.functional_call(module, dict(zip(names, twin)), a))
    return list(torch.autograd.grad(loss, twin)), loss.item()


def test_critic_step_is_one_sgd_step_on_loss_plus_penalty(impl):
    """Critic step: clears stale grads, detaches G(z), moves by -lr * grad(W loss + penalty)."""
    torch.manual_seed(19)
    gen, critic = impl.Generator(LATENT, WIDTH), impl.Discriminator(WIDTH, batch_norm=False)
    real, z = _images(4, 20), _noise(4, 21)
    eps = torch.tensor([0.1, 0.4, 0.6, 0.95])
    fake = gen(z).detach()
    g_before, c_before = (
        [p.detach().clone() for p in gen.parameters()],
        [p.detach().clone() for p in critic.parameters()],
    )

    def total(f):
        x_hat = (eps.view(4, 1, 1, 1) * real + (1 - eps.view(4, 1, 1, 1)) * fake).requires_grad_()
        (gr,) = torch.autograd.grad(f(x_hat).sum(), x_hat, create_graph=True)
        gp = 10.0 * ((gr.flatten(1).norm(dim=1) - 1) ** 2).mean()
        return f(fake).mean() - f(real).mean() + gp

    grads, loss = _sgd_twin(critic, total)
    for p in critic.parameters():
        p.grad = torch.full_like(p, 100.0)  # a stale gradient the step must clear
    out = impl.critic_step(gen, critic, torch.optim.SGD(critic.parameters(), lr=0.1), real, z, eps)
    assert out["c_loss"] == pytest.approx(loss, rel=1e-4)
    with torch.no_grad():
        w = float(critic_mean(critic, c_before, real) - critic_mean(critic, c_before, fake))
    assert out["wasserstein"] == pytest.approx(w, rel=1e-4, abs=1e-6)
    assert out["c_loss"] == pytest.approx(out["gp"] - out["wasserstein"], rel=1e-5, abs=1e-6)
    for p, before in zip(gen.parameters(), g_before):
        assert p.grad is None, "G got a gradient in the critic step: detach G(z)"
        torch.testing.assert_close(p.detach(), before, rtol=0, atol=0)
    for p, before, grad in zip(critic.parameters(), c_before, grads):
        torch.testing.assert_close(p.detach(), before - 0.1 * grad, rtol=1e-4, atol=1e-6)


def critic_mean(critic: nn.Module, params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    names = [n for n, _ in critic.named_parameters()]
    return torch.func.functional_call(critic, dict(zip(names, params)), (x,)).mean()


def test_wgan_generator_step_updates_only_g(impl):
    """G step: clears G's stale grads and moves only G by -lr * grad of -mean f(G(z))."""
    torch.manual_seed(22)
    gen, critic = impl.Generator(LATENT, WIDTH), impl.Discriminator(WIDTH, batch_norm=False)
    z = _noise(4, 23)
    g_before, c_before = (
        [p.detach().clone() for p in gen.parameters()],
        [p.detach().clone() for p in critic.parameters()],
    )
    grads, loss = _sgd_twin(gen, lambda g: -critic(g(z)).mean())
    for p in gen.parameters():
        p.grad = torch.full_like(p, 100.0)
    out = impl.wgan_generator_step(gen, critic, torch.optim.SGD(gen.parameters(), lr=0.5), z)
    assert out["g_loss"] == pytest.approx(loss, rel=1e-5)
    for p, before in zip(critic.parameters(), c_before):
        torch.testing.assert_close(p.detach(), before, rtol=0, atol=0, msg="critic moved in G step")
    for p, before, grad in zip(gen.parameters(), g_before, grads):
        torch.testing.assert_close(p.detach(), before - 0.5 * grad, rtol=1e-4, atol=1e-6)
