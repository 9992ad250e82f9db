"""Graders for unet: the sinusoidal time embedding against its formula, a residual block against
the same computation written with torch.nn.functional (values and gradients, float64), the U-Net
against its documented wiring (28 -> 14 -> 7 and back, skips joined after the upsampled path),
GroupNorm keeping images independent of their batch, a finite-difference gradient check, and
the time input actually changing the prediction."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.nn import functional as F

REFERENCE = "airoad.generative.unet"

F64 = torch.float64


def _close(got, expected, what, atol=1e-10, rtol=1e-8):
    torch.testing.assert_close(got, expected, atol=atol, rtol=rtol, msg=lambda m: f"{what}: {m}")


def _tiny(impl, seed=0, channels=(4, 8), time_dim=8, groups=2):
    """A small float64 U-Net whose output conv is not zero, so every path matters."""
    torch.manual_seed(seed)
    net = impl.UNet(1, channels, time_dim, groups).double()
    with torch.no_grad():
        net.conv_out.weight.normal_(0, 0.3)
        net.conv_out.bias.normal_(0, 0.1)
    return net


def _x(shape=(3, 1, 8, 8), seed=1):
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=F64)


def test_sinusoidal_embedding_matches_the_formula(impl):
    """emb[i, k] = sin(t_i * 10000^(-k/h)) for k < h, cos(t_i * 10000^(-(k-h)/h)) after; h = dim/2."""
    t, dim = torch.tensor([0, 1, 7, 250, 999]), 10
    got = impl.sinusoidal_embedding(t, dim)
    assert got.shape == (5, dim) and got.dtype == torch.float32, "expected float32 (5, 10)"
    h = dim // 2
    expected = [
        [math.sin(ti * 10000 ** (-k / h)) for k in range(h)]
        + [math.cos(ti * 10000 ** (-k / h)) for k in range(h)]
        for ti in t.tolist()
    ]
    _close(got.double(), torch.tensor(expected, dtype=F64), "embedding", atol=2e-4, rtol=1e-4)
    wide = impl.sinusoidal_embedding(torch.tensor([3]), 8, max_period=100.0)
    _close(wide[0, 1].double(), torch.tensor(math.sin(3 * 100 ** (-1 / 4)), dtype=F64),
           "max_period sets the slowest frequency", atol=1e-6, rtol=1e-6)  # fmt: skip
    with pytest.raises(ValueError):
        impl.sinusoidal_embedding(t, 7)


def _res_block_functional(block, x, temb):
    """The documented residual block, written with torch.nn.functional and the block's weights."""
    h = F.group_norm(x, block.norm1.num_groups, block.norm1.weight, block.norm1.bias, 1e-5)
    h = F.conv2d(F.silu(h), block.conv1.weight, block.conv1.bias, padding=1)
    h = h + F.linear(temb, block.time_proj.weight, block.time_proj.bias)[:, :, None, None]
    h2 = F.group_norm(h, block.norm2.num_groups, block.norm2.weight, block.norm2.bias, 1e-5)
    h2 = F.conv2d(F.silu(h2), block.conv2.weight, block.conv2.bias, padding=1)
    skip = (
        x
        if isinstance(block.skip, nn.Identity)
        else F.conv2d(x, block.skip.weight, block.skip.bias)
    )
    return h2 + skip


@pytest.mark.parametrize("c_in, c_out", [(4, 4), (4, 6)])
def test_res_block_matches_functional_ops(impl, c_in, c_out):
    """ResBlock = conv(silu(gn(x))) + time_proj(temb), then conv(silu(gn(.))) + skip: values, grads."""
    torch.manual_seed(0)
    block = impl.ResBlock(c_in, c_out, time_dim=5, groups=2).double()
    assert isinstance(block.norm1, nn.GroupNorm) and block.norm1.num_groups == 2, "GroupNorm(2)"
    x = _x((2, c_in, 6, 6)).requires_grad_()
    temb = _x((2, 5), seed=2).requires_grad_()
    got, expected = block(x, temb), _res_block_functional(block, x, temb)
    assert got.shape == (2, c_out, 6, 6), f"expected (2, {c_out}, 6, 6), got {tuple(got.shape)}"
    _close(got, expected, "block output")
    w = torch.linspace(-1, 1, got.numel(), dtype=F64).reshape(got.shape)
    params = [x, temb, block.conv1.weight, block.time_proj.weight, block.norm2.weight]
    g_got = torch.autograd.grad((got * w).sum(), params)
    g_exp = torch.autograd.grad((expected * w).sum(), params)
    for name, a, b in zip(("x", "temb", "conv1", "time_proj", "norm2"), g_got, g_exp):
        _close(a, b, f"gradient wrt {name}")


def test_unet_follows_the_documented_wiring(impl):
    """UNet: res1 at 28, res2 at 14, mid at 7, then up2+cat(s2), up1+cat(s1), norm/silu/conv_out."""
    net, x, t = _tiny(impl), _x((2, 1, 28, 28)), torch.tensor([3, 600])
    temb = net.time_mlp(impl.sinusoidal_embedding(t, net.time_dim).double())
    s1 = net.res1(net.conv_in(x), temb)
    s2 = net.res2(net.down1(s1), temb)
    m = net.mid(net.down2(s2), temb)
    assert s1.shape[-1] == 28 and s2.shape[-1] == 14 and m.shape[-1] == 7, "28 -> 14 -> 7"
    u2 = net.res_up2(torch.cat([net.up2(m), s2], 1), temb)
    u1 = net.res_up1(torch.cat([net.up1(u2), s1], 1), temb)
    expected = net.conv_out(F.silu(net.norm_out(u1)))
    got = net(x, t)
    assert got.shape == x.shape, f"the prediction must have the input's shape {tuple(x.shape)}"
    _close(got, expected, "U-Net output")
    assert [type(m) for m in net.modules() if "Norm" in type(m).__name__] == [nn.GroupNorm] * 11, (
        "every normalisation should be a GroupNorm (two per residual block and one at the end)"
    )


def test_untrained_unet_predicts_zero_noise(impl):
    """conv_out starts at zero, so a fresh U-Net predicts exactly zero noise."""
    torch.manual_seed(0)
    net = impl.UNet()
    out = net(torch.randn(2, 1, 28, 28), torch.tensor([0, 999]))
    assert out.shape == (2, 1, 28, 28) and torch.count_nonzero(out) == 0, "expected all zeros"


def test_images_do_not_see_their_batch(impl):
    """With GroupNorm each image's prediction is the same alone or in a batch."""
    net, x, t = _tiny(impl), _x((3, 1, 8, 8)), torch.tensor([5, 50, 500])
    together = net(x, t)
    alone = torch.cat([net(x[i : i + 1], t[i : i + 1]) for i in range(3)])
    _close(together, alone, "batch vs one at a time")


def test_timestep_changes_the_prediction_and_broadcasts(impl):
    """The prediction depends on t; one t of shape (1,) applies to every image."""
    net, x = _tiny(impl), _x((2, 1, 8, 8))
    a, b = net(x, torch.tensor([10, 10])), net(x, torch.tensor([900, 900]))
    assert (a - b).abs().max() > 1e-3, "t = 10 and t = 900 gave the same prediction"
    _close(net(x, torch.tensor([10])), a, "t of shape (1,) vs (n,)")


def test_unet_gradients_pass_a_finite_difference_check(impl):
    """torch.autograd.gradcheck of the U-Net with respect to its input (float64)."""
    net = _tiny(impl, channels=(2, 4), time_dim=4, groups=1)
    x = _x((1, 1, 4, 4)).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: net(v, torch.tensor([7])), (x,), eps=1e-6, atol=1e-6)


def test_default_unet_is_small(impl):
    """The default U-Net (channels (16, 32), time_dim 32) has about 100k parameters."""
    net = impl.UNet()
    n = sum(p.numel() for p in net.parameters())
    assert 80_000 < n < 150_000, f"expected about 100k parameters, got {n}"
    out = net(torch.randn(1, 1, 28, 28), torch.tensor([1]))
    assert out.shape == (1, 1, 28, 28), "a (1, 1, 28, 28) image gives a (1, 1, 28, 28) prediction"
