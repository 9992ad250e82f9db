"""Graders for the stylegan lab: pixel norm, the mapping network, AdaIN against F.instance_norm,
modulated convolutions against a per-sample loop of F.conv2d (values and gradients) and their
unit output variance, noise inputs, style mixing, and the generator wired from these parts."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

REFERENCE = "airoad.generative.stylegan"

TOL = {"rtol": 1e-10, "atol": 1e-10}


def _randn(*shape: int, seed: int, scale: float = 1.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (scale * torch.randn(*shape, generator=g, dtype=torch.float64)).requires_grad_()


def _grads(out: torch.Tensor, inputs: tuple[torch.Tensor, ...], seed: int = 99):
    """Gradients of a fixed random projection of out (so every output element matters)."""
    proj = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad((out * proj).sum(), inputs, retain_graph=True)


def _assert_same(ours, theirs, inputs, what: str, tol: float = 1e-10) -> None:
    torch.testing.assert_close(ours, theirs, rtol=tol, atol=tol, msg=f"{what}: values differ")
    for a, b in zip(_grads(ours, inputs), _grads(theirs, inputs)):
        torch.testing.assert_close(a, b, rtol=tol, atol=tol, msg=f"{what}: gradients differ")


def _loop_modconv(x, weight, style, demodulate, padding):
    """The definition: each sample convolved with its own scaled (and demodulated) weight."""
    out = []
    for i in range(len(x)):
        wi = weight * style[i][None, :, None, None]
        if demodulate:
            wi = wi / torch.sqrt(wi.pow(2).sum(dim=(1, 2, 3), keepdim=True) + 1e-8)
        out.append(F.conv2d(x[i : i + 1], wi, padding=padding))
    return torch.cat(out)


def _generator(impl, style_op: str = "modconv", seed: int = 0):
    torch.manual_seed(seed)
    gen = impl.Generator(latent_dim=5, w_dim=6, channels=(4, 3, 2), mapping_layers=2,
                         style_op=style_op).double()  # fmt: skip
    with torch.no_grad():  # non-zero noise strengths, so the noise inputs matter
        for conv in gen.convs:
            conv.noise.strength.copy_(torch.linspace(0.3, 0.9, len(conv.noise.strength)))
    return gen


def _noise(gen, n: int, seed: int) -> list[torch.Tensor]:
    return [m.double() for m in gen.make_noise(n, torch.Generator().manual_seed(seed))]


def test_pixel_norm_matches_normalize(impl):
    """pixel_norm(z) = z / sqrt(mean(z^2 over dim 1) + eps) = F.normalize(z) * sqrt(d)."""
    z = _randn(5, 7, seed=0, scale=3.0)
    ours = impl.pixel_norm(z, eps=0.0)
    _assert_same(ours, F.normalize(z, dim=1) * math.sqrt(7), (z,), "pixel_norm")
    torch.testing.assert_close(ours.pow(2).mean(1), torch.ones(5, dtype=torch.float64))


def test_mapping_network_is_pixel_norm_then_mlp(impl):
    """MappingNetwork = pixel_norm, then Linear -> LeakyReLU(0.2) per layer (values and grads)."""
    torch.manual_seed(1)
    net = impl.MappingNetwork(latent_dim=5, w_dim=6, n_layers=3).double()
    linears = [m for m in net.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(5, 6), (6, 6), (6, 6)]
    z = _randn(4, 5, seed=2, scale=2.0)
    h = F.normalize(z, dim=1) * math.sqrt(5)
    for m in linears:
        h = F.leaky_relu(m(h), 0.2)
    _assert_same(net(z), h, (z,), "mapping network", tol=1e-7)  # eps 1e-8 in the norm


@settings(max_examples=10, deadline=None)
@given(st.floats(0.1, 100.0))
def test_mapping_ignores_the_length_of_z(impl, scale):
    """w = mapping(z) does not change when z is multiplied by a positive number (pixel norm)."""
    torch.manual_seed(3)
    net = impl.MappingNetwork(4, 4, 2).double()
    z = _randn(3, 4, seed=4).detach()
    torch.testing.assert_close(net(scale * z), net(z), rtol=1e-5, atol=1e-6)


def test_adain_matches_instance_norm_then_affine(impl):
    """adain = F.instance_norm(x, eps=1e-5) * scale[:, :, None, None] + bias (values and grads)."""
    x, scale = _randn(3, 4, 5, 6, seed=5, scale=2.0), _randn(3, 4, seed=6)
    bias = _randn(3, 4, seed=7)
    ours = impl.adain(x, scale, bias)
    theirs = F.instance_norm(x, eps=1e-5) * scale[:, :, None, None] + bias[:, :, None, None]
    _assert_same(ours, theirs, (x, scale, bias), "adain")


@pytest.mark.parametrize("demodulate", [True, False])
def test_modulated_conv_matches_per_sample_loop(impl, demodulate):
    """modulated_conv2d = F.conv2d per sample with weight * style[i] (demodulated): values, grads."""
    x, weight = _randn(3, 4, 6, 5, seed=8), _randn(2, 4, 3, 3, seed=9)
    style = _randn(3, 4, seed=10, scale=2.0)
    ours = impl.modulated_conv2d(x, weight, style, demodulate=demodulate, padding=1)
    theirs = _loop_modconv(x, weight, style, demodulate, padding=1)
    _assert_same(ours, theirs, (x, weight, style), f"modulated conv (demodulate={demodulate})")


def test_demodulated_outputs_have_unit_variance(impl):
    """Unit-variance inputs give unit-variance outputs per sample and channel after demodulation."""
    g = torch.Generator().manual_seed(11)
    x = torch.randn(3, 6, 70, 70, generator=g, dtype=torch.float64)
    weight = torch.randn(4, 6, 3, 3, generator=g, dtype=torch.float64)
    style = torch.tensor([[0.1] * 6, [5.0] * 6, [0.5, 1, 2, 3, 4, 8]], dtype=torch.float64)
    out = impl.modulated_conv2d(x, weight, style, demodulate=True)
    var = out.var(dim=(2, 3))
    torch.testing.assert_close(var, torch.ones_like(var), rtol=0, atol=0.12,
                               msg="demodulated outputs should have variance about 1")  # fmt: skip
    raw = impl.modulated_conv2d(x, weight, style, demodulate=False).var(dim=(2, 3))
    expected = style.pow(2) @ weight.pow(2).sum(dim=(2, 3)).T  # sum of squared scaled weights
    torch.testing.assert_close(raw / expected, torch.ones_like(raw), rtol=0, atol=0.12,
                               msg="without demodulation the variance is sum (w * s)^2")  # fmt: skip


def test_noise_injection_strength(impl):
    """Noise adds strength[c] * noise; zero strength (the initial value) or no noise changes nothing."""
    layer = impl.NoiseInjection(3).double()
    x, noise = _randn(2, 3, 4, 4, seed=12), _randn(2, 1, 4, 4, seed=13)
    torch.testing.assert_close(layer(x, noise), x, rtol=0, atol=0, msg="zero strength: no effect")
    with torch.no_grad():
        layer.strength.copy_(torch.tensor([0.0, 0.5, -2.0]))
    torch.testing.assert_close(layer(x, None), x, rtol=0, atol=0, msg="noise=None: no effect")
    out = layer(x, noise)
    _assert_same(out, x + layer.strength[None, :, None, None] * noise, (x, noise), "noise")
    (g,) = torch.autograd.grad(out.sum(), layer.strength)
    torch.testing.assert_close(g, noise.sum().expand(3), **TOL, msg="d out / d strength")


def test_make_noise_is_seeded_per_layer(impl):
    """make_noise draws one (n, 1, r, r) map per styled conv from the generator: same seed, same maps."""
    gen = _generator(impl)
    a, b = _noise(gen, 3, seed=1), _noise(gen, 3, seed=1)
    assert [tuple(m.shape) for m in a] == [(3, 1, r, r) for r in (7, 14, 14, 28, 28)]
    for m, n in zip(a, b):
        torch.testing.assert_close(m, n, rtol=0, atol=0, msg="the same seed gave other noise")
    assert not torch.equal(a[0], _noise(gen, 3, seed=2)[0]), "another seed gave the same noise"
    z = _randn(3, 5, seed=14).detach()
    torch.testing.assert_close(gen(z, a), gen(z, b), rtol=0, atol=0)
    assert not torch.allclose(gen(z, a), gen(z, _noise(gen, 3, seed=2))), "noise has no effect"


@pytest.mark.parametrize("crossover", range(7))
def test_mix_styles_selects_w_by_layer(impl, crossover):
    """mix_styles gives layers i < crossover w1 and the others w2, shape (n, num_ws, w_dim)."""
    w1, w2 = _randn(2, 3, seed=15).detach(), _randn(2, 3, seed=16).detach()
    ws = impl.mix_styles(w1, w2, 6, crossover)
    assert ws.shape == (2, 6, 3)
    for i in range(6):
        want = w1 if i < crossover else w2
        torch.testing.assert_close(ws[:, i], want, rtol=0, atol=0,
                                   msg=f"layer {i} should see {'w1' if i < crossover else 'w2'}")  # fmt: skip


def test_mix_styles_rejects_bad_crossover(impl):
    """A crossover outside 0..num_ws is a ValueError."""
    w = torch.zeros(1, 3)
    with pytest.raises(ValueError):
        impl.mix_styles(w, w, 6, 7)
    with pytest.raises(ValueError):
        impl.mix_styles(w, w, 6, -1)


@pytest.mark.parametrize("style_op", ["modconv", "adain"])
def test_styled_conv_matches_its_definition(impl, style_op):
    """StyledConv: upsample, conv styled by affine(w), + strength * noise + bias, sqrt(2) LeakyReLU."""
    torch.manual_seed(17)
    layer = impl.StyledConv(3, 2, 4, upsample=True, style_op=style_op).double()
    with torch.no_grad():
        layer.noise.strength.copy_(torch.tensor([0.7, -0.4]))
        layer.bias.copy_(torch.tensor([0.1, -0.2]))
    x, w, noise = _randn(2, 3, 5, 5, seed=18), _randn(2, 4, seed=19), _randn(2, 1, 10, 10, seed=20)
    up = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
    style = layer.affine(w)
    if style_op == "modconv":
        h = _loop_modconv(up, layer.weight, style, True, padding=1)
    else:
        h = F.conv2d(up, layer.weight / math.sqrt(27), padding=1)
    h = h + layer.noise.strength[None, :, None, None] * noise + layer.bias[None, :, None, None]
    h = F.leaky_relu(h, 0.2) * math.sqrt(2)
    if style_op == "adain":
        h = F.instance_norm(h, eps=1e-5) * style[:, :2, None, None] + style[:, 2:, None, None]
    _assert_same(layer(x, w, noise), h, (x, w, noise), f"StyledConv ({style_op})")


def test_to_gray_is_an_undemodulated_1x1_modconv(impl):
    """ToGray = 1x1 conv with weight * affine(w)[i] per sample (no demodulation) + bias."""
    torch.manual_seed(21)
    layer = impl.ToGray(3, 4).double()
    with torch.no_grad():
        layer.bias.fill_(0.25)
    x, w = _randn(2, 3, 5, 5, seed=22), _randn(2, 4, seed=23)
    theirs = _loop_modconv(x, layer.weight, layer.affine(w), False, padding=0) + 0.25
    _assert_same(layer(x, w), theirs, (x, w), "ToGray")


def test_generator_forward_is_synthesis_of_mapped_w(impl):
    """G(z, noise) = synthesis(mapping(z) copied to every layer, noise), shape (n, 1, 28, 28)."""
    gen = _generator(impl)
    z, noise = _randn(3, 5, seed=24), _noise(gen, 3, seed=3)
    out = gen(z, noise)
    assert out.shape == (3, 1, 28, 28)
    ws = gen.mapping(z)[:, None, :].expand(-1, 6, -1)
    _assert_same(out, gen.synthesis(ws, noise), (z,), "forward vs synthesis")


def test_generator_mixing_uses_the_crossover(impl):
    """G(z, noise, z_mix, k) = synthesis(mix_styles(mapping(z), mapping(z_mix), 6, k), noise)."""
    gen = _generator(impl, seed=1)
    z, z_mix, noise = _randn(2, 5, seed=25), _randn(2, 5, seed=26), _noise(gen, 2, seed=4)
    w, w_mix = gen.mapping(z), gen.mapping(z_mix)
    for k in (1, 3, 5):
        ws = torch.stack([w if i < k else w_mix for i in range(6)], dim=1)
        _assert_same(gen(z, noise, z_mix, k), gen.synthesis(ws, noise), (z, z_mix), f"mix k={k}")
    torch.testing.assert_close(gen(z, noise, z_mix, 6), gen(z, noise), **TOL)


def test_every_layer_reads_its_own_w(impl):
    """synthesis uses ws[:, i] in layer i: the output depends on each of the six rows of ws."""
    for style_op in ("modconv", "adain"):
        gen = _generator(impl, style_op, seed=2)
        ws = _randn(2, 6, 6, seed=27)
        (g,) = _grads(gen.synthesis(ws, _noise(gen, 2, seed=5)), (ws,))
        norms = g.norm(dim=(0, 2))
        assert (norms > 1e-6).all(), f"{style_op}: layers {norms.tolist()} ignore their w"


def test_sample_is_seeded_and_in_unit_range(impl):
    """sample: z then noise from one seeded generator, clip((G + 1) / 2, 0, 1); same seed, same images."""
    gen = _generator(impl, seed=3).float()
    gen.train()
    a, b = impl.sample(gen, 4, seed=5), impl.sample(gen, 4, seed=5)
    assert a.shape == (4, 1, 28, 28) and gen.training, "shape or training mode not kept"
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    rng = torch.Generator().manual_seed(5)
    z = torch.randn(4, 5, generator=rng)
    with torch.no_grad():
        want = ((gen(z, gen.make_noise(4, rng)) + 1) / 2).clamp(0, 1)
    torch.testing.assert_close(a, want, rtol=1e-6, atol=1e-6)
    assert float(a.min()) >= 0.0 and float(a.max()) <= 1.0
