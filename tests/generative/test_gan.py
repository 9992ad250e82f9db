"""Graders for the gan lab: the losses against F.binary_cross_entropy_with_logits and hand values
(values and gradients), the saturation of the minimax loss, the two networks layer by layer, and
one training step of each player checked against an SGD update computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

REFERENCE = "airoad.generative.gan"

LATENT = 4


def _logits(n: int, seed: int, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(n, generator=g, dtype=torch.float64)).requires_grad_()


def _grad(fn, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().clone().requires_grad_()
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    return value.detach(), grad


def _linears(module: nn.Module) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)]


def _pair(impl, seed: int = 0, mbstd: bool = False):
    torch.manual_seed(seed)
    return impl.Generator(LATENT, (8,)), impl.Discriminator((8,), use_minibatch_std=mbstd)


def _batch(seed: int, n: int = 6):
    g = torch.Generator().manual_seed(seed)
    real = torch.rand(n, 1, 28, 28, generator=g) * 2 - 1
    return real, torch.randn(n, LATENT, generator=g)


def _params(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def test_discriminator_loss_matches_bce_with_logits(impl):
    """D loss = BCE-with-logits(real, real_label) + BCE-with-logits(fake, 0): values and grads."""
    for real_label in (1.0, 0.9):
        real, fake = _logits(7, 0), _logits(5, 1)

        def ours(r, f, t=real_label):
            return impl.discriminator_loss(r, f, t)

        def torch_form(r, f, t=real_label):
            r_loss = F.binary_cross_entropy_with_logits(r, torch.full_like(r, t))
            return r_loss + F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))

        got = ours(real, fake)
        expected = torch_form(real, fake)
        torch.testing.assert_close(got, expected, rtol=1e-12, atol=1e-12)
        g_ours = torch.autograd.grad(got, (real, fake))
        g_torch = torch.autograd.grad(expected, (real, fake))
        for a, b in zip(g_ours, g_torch):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg="D loss gradient")


def test_generator_losses_match_bce_with_logits(impl):
    """Non-saturating = BCE(fake, 1); minimax = -BCE(fake, 0): values and grads on logits."""
    fake = _logits(9, 2)
    forms = {
        impl.generator_loss_nonsaturating: lambda f: F.binary_cross_entropy_with_logits(
            f, torch.ones_like(f)
        ),
        impl.generator_loss_minimax: lambda f: (
            -F.binary_cross_entropy_with_logits(f, torch.zeros_like(f))
        ),
    }
    for ours, theirs in forms.items():
        v_ours, g_ours = _grad(ours, fake)
        v_torch, g_torch = _grad(theirs, fake)
        torch.testing.assert_close(v_ours, v_torch, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(g_ours, g_torch, rtol=1e-12, atol=1e-12)


def test_losses_equal_hand_computed_values(impl):
    """At D = 1/2 and 3/4 the losses equal the logs computed by hand."""
    half = torch.zeros(3, dtype=torch.float64)  # logit 0: D = 1/2
    three_q = torch.full((2,), math.log(3.0), dtype=torch.float64)  # D = 3/4
    cases = [
        (impl.discriminator_loss(half, half), 2 * math.log(2)),
        (impl.discriminator_loss(three_q, three_q), -math.log(0.75) - math.log(0.25)),
        (
            impl.discriminator_loss(three_q, half, 0.9),
            -0.9 * math.log(0.75) - 0.1 * math.log(0.25) + math.log(2),
        ),  # fmt: skip
        (impl.generator_loss_nonsaturating(three_q), -math.log(0.75)),
        (impl.generator_loss_minimax(three_q), math.log(0.25)),
        (impl.generator_loss_minimax(half), -math.log(2)),
    ]
    for got, expected in cases:
        assert float(got) == pytest.approx(expected, rel=1e-12), f"expected {expected}"


def test_nonsaturating_gradient_is_large_where_minimax_vanishes(impl):
    """When D rejects a fake (D(G(z)) ~ 0) the non-saturating gradient is ~-1, minimax's ~0."""
    logits = torch.tensor([-12.0, -8.0, 0.0, 8.0], dtype=torch.float64)
    d = torch.sigmoid(logits)
    n = len(logits)
    _, g_ns = _grad(impl.generator_loss_nonsaturating, logits)
    _, g_mm = _grad(impl.generator_loss_minimax, logits)
    torch.testing.assert_close(g_ns, -(1 - d) / n, rtol=1e-10, atol=0, msg="d/dl = -(1 - D) / n")
    torch.testing.assert_close(g_mm, -d / n, rtol=1e-10, atol=0, msg="d/dl = -D / n")
    assert abs(g_ns[0]) > 0.99 / n and abs(g_mm[0]) < 1e-5 / n, "minimax saturates at D ~ 0"
    assert abs(g_ns[0] / g_mm[0]) > 1e5


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-300, 300), min_size=1, max_size=6), st.floats(0.5, 1.0))
def test_losses_are_finite_for_extreme_logits(impl, values, real_label):
    """No log(0): float32 logits of +-300 give finite losses equal to torch's BCE."""
    x = torch.tensor(values, dtype=torch.float32)
    ones, zeros = torch.ones_like(x), torch.zeros_like(x)
    expected = [
        F.binary_cross_entropy_with_logits(x, real_label * ones)
        + F.binary_cross_entropy_with_logits(x, zeros),
        F.binary_cross_entropy_with_logits(x, ones),
        -F.binary_cross_entropy_with_logits(x, zeros),
    ]
    got = [
        impl.discriminator_loss(x, x, real_label),
        impl.generator_loss_nonsaturating(x),
        impl.generator_loss_minimax(x),
    ]
    for a, b in zip(got, expected):
        assert torch.isfinite(a), f"loss is {a} for logits {values}"
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)


def test_minibatch_std_matches_torch_std_and_gradcheck(impl):
    """Appends mean over features of the batch std (biased, +1e-8 under the root); gradcheck."""
    h = torch.randn(5, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    out = impl.minibatch_std(h)
    expected = torch.sqrt(torch.std(h, dim=0, correction=0) ** 2 + 1e-8).mean()
    assert out.shape == (5, 4)
    torch.testing.assert_close(out[:, :3], h)
    torch.testing.assert_close(out[:, 3], expected.expand(5), rtol=1e-12, atol=1e-12)
    same = torch.ones(4, 2, dtype=torch.float64)
    torch.testing.assert_close(impl.minibatch_std(same)[:, 2], torch.full((4,), 1e-4).double())
    assert torch.autograd.gradcheck(impl.minibatch_std, (h.requires_grad_(),))


def _expected_generator(gen: nn.Module, z: torch.Tensor) -> torch.Tensor:
    *hidden, last = _linears(gen)
    h = z
    for layer in hidden:
        h = F.leaky_relu(layer(h), 0.2)
    return torch.tanh(last(h)).view(-1, 1, 28, 28)


def test_generator_is_the_documented_mlp(impl):
    """G(z) = tanh(Linear(LeakyReLU_0.2(Linear ...))) reshaped to (n, 1, 28, 28) in [-1, 1]."""
    torch.manual_seed(0)
    gen = impl.Generator(LATENT, (8, 16))
    assert [(m.in_features, m.out_features) for m in _linears(gen)] == [(4, 8), (8, 16), (16, 784)]
    z = torch.randn(3, LATENT)
    out = gen(z)
    assert out.shape == (3, 1, 28, 28) and out.abs().max() <= 1.0
    torch.testing.assert_close(out, _expected_generator(gen, z), rtol=1e-5, atol=1e-6)


def test_discriminator_is_the_documented_mlp(impl):
    """D(x) = one logit per image from LeakyReLU_0.2 layers (+ the batch std feature if asked)."""
    torch.manual_seed(1)
    x = torch.rand(5, 1, 28, 28) * 2 - 1
    for mbstd in (False, True):
        disc = impl.Discriminator((16, 8), use_minibatch_std=mbstd)
        *hidden, last = _linears(disc)
        assert last.in_features == 8 + mbstd and last.out_features == 1
        h = x.reshape(5, -1)
        for layer in hidden:
            h = F.leaky_relu(layer(h), 0.2)
        if mbstd:
            h = torch.cat([h, torch.sqrt(h.var(0, unbiased=False) + 1e-8).mean().expand(5, 1)], 1)
        out = disc(x)
        assert out.shape == (5,), "one logit per image, shape (n,)"
        torch.testing.assert_close(out, last(h).squeeze(1), rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(disc(x.reshape(5, 784)), out)
        # only the batch-std feature lets one image's logit depend on the others
        other = torch.cat([x[:1], -x[1:]])
        changed = not torch.allclose(disc(other)[0], out[0])
        assert changed == mbstd, f"use_minibatch_std={mbstd}: logit 0 changed = {changed}"


def test_discriminator_step_updates_only_d(impl):
    """D step: clears D's stale grads, detaches G(z) (G gets no grad), SGD moves D by -lr*grad."""
    for real_label in (1.0, 0.9):
        gen, disc = _pair(impl, seed=2)
        real, z = _batch(3)
        g_before, d_before = _params(gen), _params(disc)
        for p in disc.parameters():
            p.grad = torch.full_like(p, 100.0)  # a stale gradient the step must not reuse
        twin = [p.detach().clone().requires_grad_() for p in disc.parameters()]
        fake = gen(z).detach()
        names = [n for n, _ in disc.named_parameters()]
        params = dict(zip(names, twin))
        r_logit = torch.func.functional_call(disc, params, (real,))
        f_logit = torch.func.functional_call(disc, params, (fake,))
        loss = F.binary_cross_entropy_with_logits(r_logit, torch.full_like(r_logit, real_label))
        loss = loss + F.binary_cross_entropy_with_logits(f_logit, torch.zeros_like(f_logit))
        grads = torch.autograd.grad(loss, twin)

        out = impl.discriminator_step(
            gen, disc, torch.optim.SGD(disc.parameters(), lr=0.1), real, z, real_label
        )
        assert out["d_loss"] == pytest.approx(loss.item(), rel=1e-5)
        assert out["d_real"] == pytest.approx(torch.sigmoid(r_logit).mean().item(), rel=1e-5)
        assert out["d_fake"] == pytest.approx(torch.sigmoid(f_logit).mean().item(), rel=1e-5)
        for p, before in zip(gen.parameters(), g_before):
            assert p.grad is None, "G got a gradient in the D step: detach G(z)"
            torch.testing.assert_close(p.detach(), before, rtol=0, atol=0)
        for p, before, grad in zip(disc.parameters(), d_before, grads):
            torch.testing.assert_close(p.detach(), before - 0.1 * grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("loss", ["nonsaturating", "minimax"])
def test_generator_step_updates_only_g(impl, loss):
    """G step: clears G's stale grads, steps only G by -lr * grad of the chosen G loss."""
    gen, disc = _pair(impl, seed=4, mbstd=True)
    _, z = _batch(5)
    g_before, d_before = _params(gen), _params(disc)
    for p in gen.parameters():
        p.grad = torch.full_like(p, 100.0)
    twin = [p.detach().clone().requires_grad_() for p in gen.parameters()]
    names = [n for n, _ in gen.named_parameters()]
    logits = disc(torch.func.functional_call(gen, dict(zip(names, twin)), (z,)))
    target = torch.ones_like(logits) if loss == "nonsaturating" else torch.zeros_like(logits)
    value = F.binary_cross_entropy_with_logits(logits, target)
    value = value if loss == "nonsaturating" else -value
    grads = torch.autograd.grad(value, twin)

    out = impl.generator_step(gen, disc, torch.optim.SGD(gen.parameters(), lr=0.5), z, loss)
    assert out["g_loss"] == pytest.approx(value.item(), rel=1e-5)
    assert out["d_fake_g"] == pytest.approx(torch.sigmoid(logits).mean().item(), rel=1e-5)
    for p, before in zip(disc.parameters(), d_before):
        torch.testing.assert_close(p.detach(), before, rtol=0, atol=0, msg="D moved in the G step")
    for p, before, grad in zip(gen.parameters(), g_before, grads):
        torch.testing.assert_close(p.detach(), before - 0.5 * grad, rtol=1e-5, atol=1e-6)


def test_losses_move_the_right_way_over_a_few_steps(impl):
    """Against a frozen opponent: D's loss falls over D steps; G's loss falls, D(G(z)) rises."""
    gen, disc = _pair(impl, seed=6)
    real, z = _batch(7, n=16)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-3)
    d_losses = [impl.discriminator_step(gen, disc, opt_d, real, z)["d_loss"] for _ in range(15)]
    assert d_losses[-1] < d_losses[0] - 0.1, f"D loss did not fall: {d_losses}"
    opt_g = torch.optim.Adam(gen.parameters(), lr=1e-3)
    g_steps = [impl.generator_step(gen, disc, opt_g, z) for _ in range(15)]
    assert g_steps[-1]["g_loss"] < g_steps[0]["g_loss"] - 0.1, "G loss did not fall"
    assert g_steps[-1]["d_fake_g"] > g_steps[0]["d_fake_g"], "D(G(z)) did not rise"


def test_sample_is_seeded_and_in_unit_range(impl):
    """sample(G, n, seed) = (G(z) + 1) / 2 for the seeded z, in [0, 1]; G's mode is kept."""
    gen, _ = _pair(impl, seed=8)
    gen.train()
    images = impl.sample(gen, 5, seed=3)
    z = torch.randn(5, LATENT, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        expected = (gen(z) + 1) / 2
    assert images.shape == (5, 1, 28, 28) and not images.requires_grad
    torch.testing.assert_close(images, expected)
    assert 0.0 <= images.min() and images.max() <= 1.0
    assert gen.training, "sample() must put G back in training mode"
    assert not torch.equal(impl.sample(gen, 5, seed=4), images)


def test_class_coverage_matches_scipy_entropy(impl):
    """Counts per class, entropy in bits (scipy.stats.entropy base 2), classes with >= 1%."""
    # 1000 labels: digit 4 holds exactly 1% (covered), 5 holds 0.9% (not), 3 and 7 about 1.5%
    counts = np.array([500, 300, 150, 15, 10, 9, 0, 16, 0, 0])
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(10), counts))
    out = impl.class_coverage(torch.from_numpy(labels))
    np.testing.assert_array_equal(np.asarray(out["counts"]), counts)
    assert out["entropy_bits"] == pytest.approx(scipy.stats.entropy(counts, base=2), rel=1e-10)
    assert out["covered"] == 6, "classes with at least 1% of the samples: 0, 1, 2, 3, 4, 7"
    one = impl.class_coverage(torch.tensor([4]))
    assert one["entropy_bits"] == 0.0 and one["covered"] == 1
    assert impl.class_coverage(torch.full((50,), 3))["entropy_bits"] == 0.0
    uniform = impl.class_coverage(torch.arange(100) % 10)
    assert uniform["entropy_bits"] == pytest.approx(math.log2(10)) and uniform["covered"] == 10
    assert impl.class_coverage(torch.tensor([0, 0, 1, 2]), n_classes=3)["covered"] == 3
