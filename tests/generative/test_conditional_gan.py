"""Graders for the conditional-gan lab: the projection term against an explicit per-sample inner
product (values and gradients), both discriminators and the generator layer by layer, that the
label changes D's output, clear errors for bad labels, and one step of each player checked
against an SGD update computed by hand (the other player must not move)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

REFERENCE = "airoad.generative.conditional_gan"

LATENT, CLASSES = 4, 3


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _embedding(module: nn.Module) -> torch.Tensor:
    (emb,) = [m for m in module.modules() if isinstance(m, nn.Embedding)]
    return emb.weight


def _mlp(linears: list[nn.Linear], h: torch.Tensor) -> torch.Tensor:
    """LeakyReLU(0.2) after every layer but the last."""
    *hidden, last = linears
    for layer in hidden:
        h = F.leaky_relu(layer(h), 0.2)
    return last(h)


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def _players(impl, kind: str, seed: int = 0):
    torch.manual_seed(seed)
    gen = impl.ConditionalGenerator(LATENT, CLASSES, embed_dim=3, hidden=(8,))
    if kind == "projection":
        return gen, impl.ProjectionDiscriminator(CLASSES, hidden=(8, 6))
    return gen, impl.ConcatDiscriminator(CLASSES, embed_dim=3, hidden=(8,))


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


@settings(max_examples=20, deadline=None)
@given(st.integers(1, 6), st.integers(1, 5), st.integers(0, 10_000))
def test_projection_term_is_the_per_sample_inner_product(impl, n, d, seed):
    """projection_term(h, E, y)[i] = E[y_i] . h_i: values and gradients match a per-sample loop."""
    g = torch.Generator().manual_seed(seed)
    h = torch.randn(n, d, dtype=torch.float64, generator=g).requires_grad_()
    emb = torch.randn(CLASSES, d, dtype=torch.float64, generator=g).requires_grad_()
    labels = torch.randint(CLASSES, (n,), generator=g)
    got = impl.projection_term(h, emb, labels)
    expected = torch.stack([torch.dot(emb[labels[i]], h[i]) for i in range(n)])
    assert got.shape == (n,), "one class term per sample, shape (n,)"
    torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
    w = torch.randn(n, dtype=torch.float64, generator=g)  # a generic upstream gradient
    g_got = torch.autograd.grad((got * w).sum(), (h, emb))
    g_exp = torch.autograd.grad((expected * w).sum(), (h, emb))
    for a, b, name in zip(g_got, g_exp, ("h", "embedding")):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg=f"gradient wrt {name}")
    unused = torch.ones(CLASSES, dtype=torch.bool)
    unused[labels] = False
    assert (g_got[1][unused] == 0).all(), "rows of classes not in the batch get no gradient"


def test_projection_term_passes_gradcheck(impl):
    """torch.autograd.gradcheck agrees with the analytic gradient of projection_term."""
    g = torch.Generator().manual_seed(1)
    h = torch.randn(4, 3, dtype=torch.float64, generator=g, requires_grad=True)
    emb = torch.randn(CLASSES, 3, dtype=torch.float64, generator=g, requires_grad=True)
    labels = torch.tensor([0, 2, 2, 1])
    assert torch.autograd.gradcheck(lambda a, b: impl.projection_term(a, b, labels), (h, emb))


def test_projection_discriminator_is_psi_plus_projection(impl):
    """Projection D: logit = psi(phi(x)) + E[y] . phi(x), phi the LeakyReLU MLP body."""
    _, disc = _players(impl, "projection", seed=2)
    x, y = _images(5, 3), torch.tensor([0, 1, 2, 2, 0])
    *body, psi = _linears(disc)
    assert [(m.in_features, m.out_features) for m in body] == [(784, 8), (8, 6)]
    assert (psi.in_features, psi.out_features) == (6, 1)
    emb = _embedding(disc)
    assert emb.shape == (CLASSES, 6), "one embedding row of the feature width per class"
    h = x.reshape(5, -1)
    for layer in body:
        h = F.leaky_relu(layer(h), 0.2)
    expected = psi(h).squeeze(1) + (emb[y] * h).sum(1)
    out = disc(x, y)
    assert out.shape == (5,), "one logit per image, shape (n,)"
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(disc(x.reshape(5, 784), y), out)


def test_concat_discriminator_is_an_mlp_on_pixels_and_embedding(impl):
    """Concat D: logit = MLP([x_flat, E[y]]) with LeakyReLU(0.2) between the Linear layers."""
    _, disc = _players(impl, "concat", seed=4)
    x, y = _images(4, 5), torch.tensor([2, 0, 1, 1])
    linears = _linears(disc)
    assert [(m.in_features, m.out_features) for m in linears] == [(787, 8), (8, 1)]
    expected = _mlp(linears, torch.cat([x.reshape(4, -1), _embedding(disc)[y]], 1)).squeeze(1)
    out = disc(x, y)
    assert out.shape == (4,), "one logit per image, shape (n,)"
    torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kind", ["projection", "concat"])
def test_discriminator_output_depends_on_the_label(impl, kind):
    """The same image gets a different logit under another label (projection: by (E[a]-E[b]).h)."""
    _, disc = _players(impl, kind, seed=6)
    x = _images(3, 7)
    outs = [disc(x, torch.full((3,), c)) for c in range(CLASSES)]
    for a in range(CLASSES):
        for b in range(a):
            assert (outs[a] - outs[b]).abs().min() > 1e-6, f"labels {a} and {b} give the same D"
    if kind == "projection":
        emb = _embedding(disc)
        with torch.no_grad():
            h = disc.features(x)
        torch.testing.assert_close(outs[1] - outs[0], h @ (emb[1] - emb[0]), rtol=1e-4, atol=1e-5)


def test_generator_joins_the_label_embedding_to_the_noise(impl):
    """G(z, y) = tanh(MLP([z, E[y]])) as (n, 1, 28, 28); another label gives another image."""
    gen, _ = _players(impl, "projection", seed=8)
    z = torch.randn(3, LATENT, generator=torch.Generator().manual_seed(9))
    y = torch.tensor([1, 0, 2])
    linears = _linears(gen)
    assert [(m.in_features, m.out_features) for m in linears] == [(7, 8), (8, 784)]
    expected = torch.tanh(_mlp(linears, torch.cat([z, _embedding(gen)[y]], 1)))
    out = gen(z, y)
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1.0
    torch.testing.assert_close(out, expected.view(3, 1, 28, 28), rtol=1e-5, atol=1e-6)
    other = gen(z, (y + 1) % CLASSES)
    assert (other - out).abs().amax(dim=(1, 2, 3)).min() > 1e-4, "the label must change G(z, y)"


@pytest.mark.parametrize("bad", [[0, 3], [-1, 0], [0.0, 1.0], [[0], [1]], [0, 1, 2]])
def test_bad_labels_are_a_clear_error(impl, bad):
    """A label outside 0..n_classes-1, a float label or a wrong shape raises a ValueError."""
    gen, proj = _players(impl, "projection")
    _, concat = _players(impl, "concat")
    labels = torch.tensor(bad)
    z, x = torch.zeros(2, LATENT), torch.zeros(2, 1, 28, 28)
    for call in (lambda: gen(z, labels), lambda: proj(x, labels), lambda: concat(x, labels)):
        with pytest.raises(ValueError, match="labels must"):
            call()
    with pytest.raises(ValueError, match=r"0\.\.2"):
        impl.check_labels(torch.tensor([0, 3]), 2, CLASSES)
    ok = torch.tensor([2, 0])
    assert impl.check_labels(ok, 2, CLASSES) is ok


@pytest.mark.parametrize("kind", ["projection", "concat"])
def test_discriminator_step_updates_only_d(impl, kind):
    """D step: fakes G(z, y) for the real batch's labels, detached; SGD moves only D by -lr*grad."""
    gen, disc = _players(impl, kind, seed=10)
    real, y = _images(6, 11), torch.tensor([0, 1, 2, 0, 1, 2])
    z = torch.randn(6, LATENT, generator=torch.Generator().manual_seed(12))
    g_before, d_before = _params(gen), _params(disc)
    for p in disc.parameters():
        p.grad = torch.full_like(p, 100.0)  # a stale gradient the step must not reuse
    twin = {n: p.detach().clone().requires_grad_() for n, p in disc.named_parameters()}
    fake = gen(z, y).detach()
    r_logit = torch.func.functional_call(disc, twin, (real, y))
    f_logit = torch.func.functional_call(disc, twin, (fake, y))
    loss = F.binary_cross_entropy_with_logits(r_logit, torch.full_like(r_logit, 0.9))
    loss = loss + F.binary_cross_entropy_with_logits(f_logit, torch.zeros_like(f_logit))
    grads = torch.autograd.grad(loss, list(twin.values()))

    out = impl.discriminator_step(
        gen, disc, torch.optim.SGD(disc.parameters(), lr=0.1), real, y, z, 0.9
    )
    assert out["d_loss"] == pytest.approx(loss.item(), rel=1e-5)
    assert out["d_real"] == pytest.approx(torch.sigmoid(r_logit).mean().item(), rel=1e-5)
    assert out["d_fake"] == pytest.approx(torch.sigmoid(f_logit).mean().item(), rel=1e-5)
    for p, before in zip(gen.parameters(), g_before):
        assert p.grad is None, "G got a gradient in the D step: detach G(z, y)"
        torch.testing.assert_close(p.detach(), before, rtol=0, atol=0)
    for p, before, grad in zip(disc.parameters(), d_before, grads):
        torch.testing.assert_close(p.detach(), before - 0.1 * grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_generator_step_updates_only_g(impl, loss):
    """G step: loss of D(G(z, y), y) with the chosen G loss; SGD moves only G by -lr * grad."""
    gen, disc = _players(impl, "projection", seed=13)
    y = torch.tensor([2, 2, 0, 1])
    z = torch.randn(4, LATENT, generator=torch.Generator().manual_seed(14))
    g_before, d_before = _params(gen), _params(disc)
    for p in gen.parameters():
        p.grad = torch.full_like(p, 100.0)
    twin = {n: p.detach().clone().requires_grad_() for n, p in gen.named_parameters()}
    logits = disc(torch.func.functional_call(gen, twin, (z, y)), y)
    target = torch.ones_like(logits) if loss == "nonsaturating" else torch.zeros_like(logits)
    value = F.binary_cross_entropy_with_logits(logits, target)
    value = value if loss == "nonsaturating" else -value
    grads = torch.autograd.grad(value, list(twin.values()))

    out = impl.generator_step(gen, disc, torch.optim.SGD(gen.parameters(), lr=0.5), z, y, loss)
    assert out["g_loss"] == pytest.approx(value.item(), rel=1e-5)
    assert out["d_fake_g"] == pytest.approx(torch.sigmoid(logits).mean().item(), rel=1e-5)
    for p, before in zip(disc.parameters(), d_before):
        torch.testing.assert_close(p.detach(), before, rtol=0, atol=0, msg="D moved in the G step")
    for p, before, grad in zip(gen.parameters(), g_before, grads):
        torch.testing.assert_close(p.detach(), before - 0.5 * grad, rtol=1e-5, atol=1e-6)


def test_bind_labels_fixes_the_second_argument(impl):
    """bind_labels(module, y)(x) == module(x, y)."""
    _, disc = _players(impl, "concat", seed=15)
    x, y = _images(3, 16), torch.tensor([1, 2, 0])
    torch.testing.assert_close(impl.bind_labels(disc, y)(x), disc(x, y), rtol=0, atol=0)


def test_class_labels_and_seeded_sample(impl):
    """class_labels runs class by class; sample = (G(z, y) + 1) / 2 for seeded z, mode kept."""
    expected = torch.tensor([0, 0, 1, 1, 2, 2])
    torch.testing.assert_close(impl.class_labels(2, CLASSES), expected)
    assert impl.class_labels(100).tolist() == sorted(list(range(10)) * 100)
    gen, _ = _players(impl, "projection", seed=17)
    gen.train()
    images = impl.sample(gen, expected, seed=3)
    z = torch.randn(6, LATENT, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want = (gen(z, expected) + 1) / 2
    assert images.shape == (6, 1, 28, 28) and not images.requires_grad
    torch.testing.assert_close(images, want)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert gen.training, "sample() must put G back in training mode"
    assert not torch.equal(impl.sample(gen, expected, seed=4), images)
