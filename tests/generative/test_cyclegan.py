"""Graders for the cyclegan lab: the 8x8 -> 28x28 upsampler against F.interpolate, the LSGAN,
cycle and identity losses against F.mse_loss / F.l1_loss and hand values (values and
gradients), which generator each loss term trains, the two networks' contracts (per-image
outputs, the PatchGAN receptive field), and one training step against an SGD update by hand."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

REFERENCE = "airoad.generative.cyclegan"

SMALL = (2, 4)  # tiny widths: every test runs in well under a second


def _images(n: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64) * 2 - 1).clamp(-1, 1)


def _model(impl, seed: int = 0):
    torch.manual_seed(seed)
    return impl.CycleGAN(SMALL, 1, SMALL).double()


def _grads(value: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor | None]:
    return list(torch.autograd.grad(value, params, retain_graph=True, allow_unused=True))


def _reaches(grads: list[torch.Tensor | None]) -> bool:
    return any(g is not None and float(g.abs().sum()) > 0 for g in grads)


# ---------------------------------------------------------------- the upsampler


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 10), st.integers(1, 30))
def test_bilinear_matrix_matches_interpolate(impl, n_in, n_out):
    """A X A^T equals F.interpolate(bilinear, align_corners=False); every row sums to 1."""
    a = impl.bilinear_matrix(n_in, n_out)
    assert tuple(a.shape) == (n_out, n_in), f"expected shape ({n_out}, {n_in})"
    x = torch.randn(
        3, 1, n_in, n_in, dtype=torch.float64, generator=torch.Generator().manual_seed(n_in)
    )
    expected = F.interpolate(x, size=(n_out, n_out), mode="bilinear", align_corners=False)
    torch.testing.assert_close(a.double() @ x @ a.double().T, expected, rtol=0, atol=1e-12)
    torch.testing.assert_close(a.double().sum(1), torch.ones(n_out, dtype=torch.float64))


def test_upsample_digits_matches_interpolate_then_pad(impl):
    """Real 8x8 digits / 16, bilinear to 20x20, zero-padded by 4: (n, 1, 28, 28) in [0, 1]."""
    digits = torch.from_numpy(load_digits().data[:50]).double()  # (50, 64), values 0..16
    up = impl.upsample_digits(digits)
    assert tuple(up.shape) == (50, 1, 28, 28) and up.dtype == torch.float64
    box = F.interpolate((digits / 16).reshape(-1, 1, 8, 8), size=(20, 20), mode="bilinear")
    torch.testing.assert_close(up, F.pad(box, (4, 4, 4, 4)), rtol=0, atol=1e-12)
    assert float(up.min()) >= 0.0 and float(up.max()) <= 1.0, "pixels must stay in [0, 1]"
    assert float(up.max()) == pytest.approx(1.0), "a full-ink block (16) is a white pixel"
    torch.testing.assert_close(impl.upsample_digits(digits.reshape(-1, 8, 8)), up)
    ints = impl.upsample_digits(torch.from_numpy(load_digits().data[:3].astype(np.int64)))
    assert ints.is_floating_point() and torch.allclose(ints.double(), up[:3], atol=1e-6)


def test_upsample_digits_other_boxes_and_bad_pixels(impl):
    """An odd margin puts the extra zero row/column bottom/right; NaN or 17 is a ValueError."""
    x = torch.full((2, 8, 8), 16.0, dtype=torch.float64)
    up = impl.upsample_digits(x, box=13, size=20)
    assert tuple(up.shape) == (2, 1, 20, 20)
    inside = torch.zeros(20, 20, dtype=torch.float64)
    inside[3:16, 3:16] = 1.0  # margin 7: 3 before, 4 after
    torch.testing.assert_close(up[0, 0], inside)
    for bad in (float("nan"), 17.0, -1.0):
        y = x.clone()
        y[0, 0, 0] = bad
        with pytest.raises(ValueError, match="0..16"):
            impl.upsample_digits(y)
    assert tuple(impl.upsample_digits(torch.zeros(0, 64)).shape) == (0, 1, 28, 28)


# ---------------------------------------------------------------- the losses


def test_lsgan_losses_match_mse_loss(impl):
    """D loss = 0.5 (MSE(real, 1) + MSE(fake, 0)); G loss = MSE(fake, 1): values and grads."""
    g = torch.Generator().manual_seed(0)
    real = torch.randn(3, 1, 7, 7, dtype=torch.float64, generator=g).requires_grad_()
    fake = torch.randn(5, 1, 7, 7, dtype=torch.float64, generator=g).requires_grad_()
    ours = impl.lsgan_discriminator_loss(real, fake)
    theirs = 0.5 * (
        F.mse_loss(real, torch.ones_like(real)) + F.mse_loss(fake, torch.zeros_like(fake))
    )
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    for a, b in zip(_grads(ours, [real, fake]), _grads(theirs, [real, fake])):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12, msg="D loss gradient")
    ours_g = impl.lsgan_generator_loss(fake)
    theirs_g = F.mse_loss(fake, torch.ones_like(fake))
    torch.testing.assert_close(ours_g, theirs_g, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(_grads(ours_g, [fake])[0], _grads(theirs_g, [fake])[0])


def test_lsgan_losses_equal_hand_values(impl):
    """A perfect D scores 0; D saying 0.5 everywhere scores 0.25; G's loss is 1 at D(fake) = 0."""
    ones, zeros, half = torch.ones(4), torch.zeros(6), torch.full((3,), 0.5)
    cases = [
        (impl.lsgan_discriminator_loss(ones, zeros), 0.0),
        (impl.lsgan_discriminator_loss(half, half), 0.25),
        (impl.lsgan_discriminator_loss(zeros, ones), 1.0),
        (impl.lsgan_generator_loss(zeros), 1.0),
        (impl.lsgan_generator_loss(ones), 0.0),
        (impl.lsgan_generator_loss(torch.tensor([3.0, -1.0])), (4.0 + 4.0) / 2),
    ]
    for got, expected in cases:
        assert float(got) == pytest.approx(expected, abs=1e-7), f"expected {expected}"


def test_cycle_and_identity_losses_match_l1_loss(impl):
    """Cycle and identity losses are mean |a - b| (F.l1_loss): values, grads, a hand value."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 1, 28, 28, dtype=torch.float64, generator=g)
    y = torch.randn(2, 1, 28, 28, dtype=torch.float64, generator=g).requires_grad_()
    for fn in (impl.cycle_loss, impl.identity_loss):
        ours, theirs = fn(x, y), F.l1_loss(y, x)
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(_grads(ours, [y])[0], _grads(theirs, [y])[0])
        hand = fn(torch.zeros(1, 1, 1, 4), torch.tensor([[[[1.0, -3.0, 0.0, 2.0]]]]))
        assert float(hand) == pytest.approx(1.5), "mean(|1|, |-3|, 0, |2|) = 1.5"


# ---------------------------------------------------------------- the networks


def test_generator_shape_range_and_per_image(impl):
    """G maps (n, 1, 28, 28) to (n, 1, 28, 28) in (-1, 1), each image independently of the batch."""
    torch.manual_seed(0)
    g = impl.Generator((3, 5), n_res=2).double()
    c1, c2 = 3, 5
    n_params = (
        (10 * c1 + 2 * c1) + (16 * c1 * c2 + c2 + 2 * c2) + 2 * (2 * (9 * c2 * c2 + c2 + 2 * c2))
    )
    n_params += (16 * c2 * c1 + c1 + 2 * c1) + (9 * c1 + 1)
    assert sum(p.numel() for p in g.parameters()) == n_params, "layers differ from the docstring"
    x = _images(3, 2)
    with torch.no_grad():
        out = g(x)
    assert tuple(out.shape) == (3, 1, 28, 28)
    assert float(out.abs().max()) < 1.0, "tanh output must be inside (-1, 1)"
    with torch.no_grad():
        alone = torch.cat([g(x[i : i + 1]) for i in range(3)])
        torch.testing.assert_close(out, alone, msg="an image's output depends on the batch")
        g.eval()
        torch.testing.assert_close(g(x), out, msg="train and eval mode must compute the same")


def test_residual_block_adds_its_body_to_the_input(impl):
    """ResidualBlock returns x + body(x): with zero conv weights and every bias 0.5 that is x + 0.5."""
    block = impl.ResidualBlock(3).double()
    with torch.no_grad():
        for p in block.parameters():  # conv kernels -> 0; conv biases, norm scales/shifts -> 0.5
            p.fill_(0.0 if p.ndim > 1 else 0.5)
        x = torch.randn(2, 3, 5, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
        torch.testing.assert_close(block(x), x + 0.5, msg="expected x + body(x) with body = 0.5")


def test_discriminator_patches_see_only_their_receptive_field(impl):
    """D gives (n, 1, 7, 7) scores; score (0, 0) depends only on input rows/cols 0..10."""
    torch.manual_seed(0)
    d = impl.Discriminator(SMALL).double()
    x = _images(2, 3).requires_grad_()
    scores = d(x)
    assert tuple(scores.shape) == (2, 1, 7, 7)
    (grad,) = torch.autograd.grad(scores[0, 0, 0, 0], x)
    assert float(grad[0, 0, :11, :11].abs().sum()) > 0, "score (0, 0) must see the corner"
    outside = grad[0, 0].clone()
    outside[:11, :11] = 0
    assert float(outside.abs().max()) == 0.0, "score (0, 0) sees pixels outside rows/cols 0..10"
    assert float(grad[1].abs().max()) == 0.0, "one image's score must not depend on another's"
    (grad_c,) = torch.autograd.grad(d(x)[0, 0, 6, 6], x)
    assert (
        float(grad_c[0, 0, 17:, 17:].abs().sum()) > 0 and float(grad_c[0, 0, :17].abs().max()) == 0
    )


def test_cyclegan_parameter_groups(impl):
    """generator_parameters is g's then f's; discriminator_parameters d_mnist's then d_digits'."""
    m = _model(impl)
    want_g = [*m.g.parameters(), *m.f.parameters()]
    want_d = [*m.d_mnist.parameters(), *m.d_digits.parameters()]
    assert [id(p) for p in m.generator_parameters()] == [id(p) for p in want_g]
    assert [id(p) for p in m.discriminator_parameters()] == [id(p) for p in want_d]


# ---------------------------------------------------------------- the objective and a step


def _torch_d_loss(d, real, fake):
    r, f = d(real), d(fake)
    return 0.5 * (F.mse_loss(r, torch.ones_like(r)) + F.mse_loss(f, torch.zeros_like(f)))


def _expected_terms(m, xd, xm, lc, li):
    fake_m, fake_d = m.g(xd), m.f(xm)
    t = {
        "adv_g": F.mse_loss(m.d_mnist(fake_m), torch.ones_like(m.d_mnist(fake_m))),
        "adv_f": F.mse_loss(m.d_digits(fake_d), torch.ones_like(m.d_digits(fake_d))),
        "cycle_digits": F.l1_loss(m.f(fake_m), xd),
        "cycle_mnist": F.l1_loss(m.g(fake_d), xm),
        "identity_g": F.l1_loss(m.g(xm), xm) if li > 0 else torch.zeros((), dtype=xm.dtype),
        "identity_f": F.l1_loss(m.f(xd), xd) if li > 0 else torch.zeros((), dtype=xm.dtype),
    }
    cyc, idt = t["cycle_digits"] + t["cycle_mnist"], t["identity_g"] + t["identity_f"]
    t["total"] = t["adv_g"] + t["adv_f"] + lc * cyc + li * idt
    return t, fake_m, fake_d


def test_generator_objective_is_the_weighted_sum(impl):
    """Each term equals its F.mse_loss / F.l1_loss form; total = adv + l_cyc cycle + l_id identity."""
    m = _model(impl)
    xd, xm = _images(3, 4), _images(3, 5)
    for lc, li in ((10.0, 5.0), (2.0, 0.0), (0.0, 1.5)):
        terms, fake_m, fake_d = impl.generator_objective(m, xd, xm, lc, li)
        want, want_m, want_d = _expected_terms(m, xd, xm, lc, li)
        torch.testing.assert_close(fake_m, want_m, msg="fake_mnist must be g(x_digits)")
        torch.testing.assert_close(fake_d, want_d, msg="fake_digits must be f(x_mnist)")
        for key, value in want.items():
            torch.testing.assert_close(
                terms[key], value, rtol=1e-10, atol=1e-12, msg=f"{key} (lambdas {lc}, {li})"
            )
        g_total = _grads(terms["total"], m.generator_parameters())
        for a, b in zip(g_total, _grads(want["total"], m.generator_parameters())):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12, msg="gradient of total")


def test_each_loss_term_trains_the_right_generators(impl):
    """adv_g and identity_g reach only G, adv_f and identity_f only F, both cycles reach both."""
    m = _model(impl)
    terms, _, _ = impl.generator_objective(m, _images(2, 6), _images(2, 7), 10.0, 5.0)
    g_params, f_params = list(m.g.parameters()), list(m.f.parameters())
    expected = {
        "adv_g": (True, False),
        "adv_f": (False, True),
        "cycle_digits": (True, True),
        "cycle_mnist": (True, True),
        "identity_g": (True, False),
        "identity_f": (False, True),
    }
    for key, (to_g, to_f) in expected.items():
        got = (_reaches(_grads(terms[key], g_params)), _reaches(_grads(terms[key], f_params)))
        assert got == (to_g, to_f), (
            f"{key}: gradient reaches (G, F) = {got}, expected {(to_g, to_f)}"
        )


def test_discriminator_objective_detaches_the_fakes(impl):
    """D's loss is the LSGAN loss on D(real) and D(fake) and sends no gradient to the generator."""
    m = _model(impl)
    xd, xm = _images(2, 8), _images(2, 9)
    fake = m.g(xd)
    loss = impl.discriminator_objective(m.d_mnist, xm, fake)
    want = _torch_d_loss(m.d_mnist, xm, fake)
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=1e-12)
    assert not _reaches(_grads(loss, list(m.g.parameters()))), "D's loss must not train G"
    assert _reaches(_grads(loss, list(m.d_mnist.parameters())))


def test_train_step_equals_hand_sgd_update(impl):
    """With SGD, G and F move by -lr grad(total); both Ds by -lr grad(D losses on the old fakes)."""
    lr, lc, li = 0.05, 3.0, 1.0
    m = _model(impl, seed=1)
    before = copy.deepcopy(m)
    xd, xm = _images(2, 10), _images(2, 11)
    opt_g = torch.optim.SGD(m.generator_parameters(), lr=lr)
    opt_d = torch.optim.SGD(m.discriminator_parameters(), lr=lr)
    out = impl.train_step(m, opt_g, opt_d, xd, xm, lc, li)

    want, fake_m, fake_d = _expected_terms(before, xd, xm, lc, li)
    gen_params = [*before.g.parameters(), *before.f.parameters()]
    gen_grads = torch.autograd.grad(want["total"], gen_params)
    d_loss_m = _torch_d_loss(before.d_mnist, xm, fake_m.detach())
    d_loss_d = _torch_d_loss(before.d_digits, xd, fake_d.detach())
    d_params = [*before.d_mnist.parameters(), *before.d_digits.parameters()]
    d_grads = torch.autograd.grad(d_loss_m + d_loss_d, d_params)

    now_g = [*m.g.parameters(), *m.f.parameters()]
    for p_now, p_old, grad in zip(now_g, gen_params, gen_grads):
        torch.testing.assert_close(
            p_now, p_old - lr * grad, rtol=1e-9, atol=1e-12, msg="G/F update"
        )
    now_d = [*m.d_mnist.parameters(), *m.d_digits.parameters()]
    for p_now, p_old, grad in zip(now_d, d_params, d_grads):
        torch.testing.assert_close(
            p_now,
            p_old - lr * grad,
            rtol=1e-9,
            atol=1e-12,
            msg="D update (fakes from before G's step)",
        )
    for key in (
        "adv_g",
        "adv_f",
        "cycle_digits",
        "cycle_mnist",
        "identity_g",
        "identity_f",
        "total",
    ):
        assert out[key] == pytest.approx(float(want[key].detach()), rel=1e-9), f"returned {key}"
    assert out["d_mnist"] == pytest.approx(float(d_loss_m.detach()), rel=1e-9)
    assert out["d_digits"] == pytest.approx(float(d_loss_d.detach()), rel=1e-9)


def test_translate_works_in_unit_range(impl):
    """translate = (G(2x - 1) + 1) / 2 in batches, in eval mode, and puts the mode back."""
    torch.manual_seed(0)
    g = impl.Generator(SMALL, 1).double()
    x = (_images(5, 12) + 1) / 2
    with torch.no_grad():
        want = (g(2 * x - 1) + 1) / 2
    got = impl.translate(g, x, batch_size=2)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    assert g.training, "translate must put the generator back in training mode"
    assert not got.requires_grad and float(got.min()) >= 0 and float(got.max()) <= 1
    assert tuple(impl.translate(g, x[:0]).shape) == (0, 1, 28, 28)
