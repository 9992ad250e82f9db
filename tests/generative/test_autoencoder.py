"""Grader for the autoencoder lab: losses, corruption, the transposed convolution, the two models,
one training step, interpolation and the Gaussian latent sampler, each against PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

REFERENCE = "airoad.generative.autoencoder"

TOL = {"atol": 1e-10, "rtol": 1e-10}


def _logits_and_targets(seed: int = 0, n: int = 3, scale: float = 4.0):
    g = torch.Generator().manual_seed(seed)
    logits = (scale * torch.randn(n, 1, 28, 28, generator=g, dtype=torch.float64)).requires_grad_()
    return logits, torch.rand(n, 1, 28, 28, generator=g, dtype=torch.float64)


def test_bce_matches_torch_values_and_gradients(impl):
    """bce_with_logits = F.binary_cross_entropy_with_logits summed per image, averaged over images."""
    logits, target = _logits_and_targets()
    ours = impl.bce_with_logits(logits, target)
    (g_ours,) = torch.autograd.grad(ours, logits)
    lib = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / len(logits)
    (g_lib,) = torch.autograd.grad(lib, logits)
    torch.testing.assert_close(
        ours, lib, **TOL, msg="loss differs from torch's (sum/pixels, mean/images)"
    )
    torch.testing.assert_close(g_ours, g_lib, **TOL, msg="gradient differs from torch's")
    probs = torch.sigmoid(logits.detach())
    plain = F.binary_cross_entropy(probs, target, reduction="sum") / len(logits)
    torch.testing.assert_close(ours.detach(), plain, atol=1e-6, rtol=1e-9)


def test_bce_is_finite_for_huge_logits(impl):
    """Logits of +-1000 give torch's finite loss and gradient (no log(0), no exp overflow)."""
    logits = torch.tensor([[1000.0, -1000.0, 1000.0, -1000.0]], dtype=torch.float64).reshape(
        1, 1, 2, 2
    )
    logits.requires_grad_()
    target = torch.tensor([1.0, 0.0, 0.0, 1.0], dtype=torch.float64).reshape(1, 1, 2, 2)
    ours = impl.bce_with_logits(logits, target)
    (grad,) = torch.autograd.grad(ours, logits)
    lib = F.binary_cross_entropy_with_logits(logits.detach(), target, reduction="sum")
    assert torch.isfinite(ours) and torch.isfinite(grad).all(), f"loss {ours}, grad {grad}"
    torch.testing.assert_close(ours.detach(), lib, atol=1e-9, rtol=1e-12)
    torch.testing.assert_close(
        grad.flatten(), torch.tensor([0.0, 0.0, 1.0, -1.0], dtype=torch.float64)
    )


def test_reconstruction_loss_kinds_match_torch(impl):
    """reconstruction_loss: "mse" = F.mse_loss(sigmoid(logits)) summed per image; "bce" as above."""
    logits, target = _logits_and_targets(seed=1, n=2, scale=2.0)
    ours = impl.reconstruction_loss(logits, target, "mse")
    (g_ours,) = torch.autograd.grad(ours, logits)
    lib = F.mse_loss(torch.sigmoid(logits), target, reduction="sum") / 2
    (g_lib,) = torch.autograd.grad(lib, logits)
    torch.testing.assert_close(ours, lib, **TOL, msg="mse loss differs from torch's")
    torch.testing.assert_close(g_ours, g_lib, **TOL)
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="sum") / 2
    torch.testing.assert_close(impl.reconstruction_loss(logits, target, "bce"), bce, **TOL)
    with pytest.raises(ValueError, match="unknown"):
        impl.reconstruction_loss(logits, target, "l1")


def test_gaussian_corruption_statistics(impl):
    """ "gaussian" adds N(0, level^2) noise, clips to [0, 1], is seeded and leaves x untouched."""
    x = torch.full((40, 1, 28, 28), 0.5)
    before = x.clone()
    out = impl.corrupt(x, "gaussian", 0.1, torch.Generator().manual_seed(0))
    noise = (out - x).double()
    n = noise.numel()
    assert abs(noise.mean()) < 4 * 0.1 / n**0.5, f"noise mean {noise.mean():.5f}, expected 0"
    assert abs(noise.std() - 0.1) < 0.003, f"noise std {noise.std():.4f}, expected 0.1"
    torch.testing.assert_close(x, before, msg="corrupt changed its input in place")
    again = impl.corrupt(x, "gaussian", 0.1, torch.Generator().manual_seed(0))
    other = impl.corrupt(x, "gaussian", 0.1, torch.Generator().manual_seed(1))
    torch.testing.assert_close(out, again, msg="the same seed gave different noise")
    assert not torch.equal(out, other), "different seeds gave the same noise"
    wild = impl.corrupt(x, "gaussian", 3.0, torch.Generator().manual_seed(2))
    assert wild.min() == 0.0 and wild.max() == 1.0, "large noise must be clipped to [0, 1]"
    assert ((wild == 0) | (wild == 1)).float().mean() > 0.8, "level-3 noise should mostly clip"


def test_mask_corruption_statistics(impl):
    """ "mask" zeroes each pixel with probability level and keeps the others exactly."""
    x = torch.rand(50, 1, 28, 28, generator=torch.Generator().manual_seed(3)) * 0.9 + 0.1
    out = impl.corrupt(x, "mask", 0.3, torch.Generator().manual_seed(4))
    dropped = out == 0
    rate = dropped.double().mean()
    assert abs(rate - 0.3) < 4 * (0.3 * 0.7 / x.numel()) ** 0.5, (
        f"drop rate {rate:.4f}, expected 0.3"
    )
    torch.testing.assert_close(out[~dropped], x[~dropped], msg="kept pixels must be unchanged")
    torch.testing.assert_close(impl.corrupt(x, "mask", 0.0, torch.Generator().manual_seed(4)), x)
    assert torch.count_nonzero(impl.corrupt(x, "mask", 1.0)) == 0, "level 1 drops every pixel"
    with pytest.raises(ValueError, match="probability"):
        impl.corrupt(x, "mask", 1.5)
    with pytest.raises(ValueError, match="unknown"):
        impl.corrupt(x, "salt", 0.1)


@settings(max_examples=12, deadline=None)
@given(
    k=st.integers(1, 4), stride=st.integers(1, 3), padding=st.integers(0, 2),
    extra=st.integers(0, 2), h=st.integers(1, 5), bias=st.booleans(),
)  # fmt: skip
def test_conv_transpose2d_matches_torch(impl, k, stride, padding, extra, h, bias):
    """conv_transpose2d equals F.conv_transpose2d (values and gradients) for any stride/padding."""
    padding = min(padding, k - 1)  # torch needs the output to stay positive
    output_padding = min(extra, stride - 1)
    g = torch.Generator().manual_seed(k * 100 + stride * 10 + h)
    x = torch.randn(2, 3, h, h + 1, generator=g, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 2, k, k, generator=g, dtype=torch.float64, requires_grad=True)
    b = torch.randn(2, generator=g, dtype=torch.float64, requires_grad=True) if bias else None
    args = (stride, padding, output_padding)
    if (h - 1) * stride - 2 * padding + k + output_padding <= 0:
        return
    ours = impl.conv_transpose2d(x, w, b, *args)
    lib = F.conv_transpose2d(x, w, b, *args)
    torch.testing.assert_close(
        ours, lib, **TOL, msg=f"output differs (k={k}, stride/pad/out_pad={args})"
    )
    up = torch.randn(lib.shape, generator=g, dtype=torch.float64)
    leaves = [t for t in (x, w, b) if t is not None]
    for a, c in zip(torch.autograd.grad(ours, leaves, up), torch.autograd.grad(lib, leaves, up)):
        torch.testing.assert_close(a, c, **TOL, msg="gradient differs from torch's")


def test_conv_transpose_layer_matches_nn(impl):
    """ConvTranspose2d: nn.ConvTranspose2d's init (same seed), output and gradients."""
    torch.manual_seed(0)
    lib = nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1).double()
    torch.manual_seed(0)
    ours = impl.ConvTranspose2d(4, 3, 4, stride=2, padding=1).double()
    for name, value in lib.state_dict().items():
        torch.testing.assert_close(ours.state_dict()[name], value, msg=f"{name} init differs")
    x = torch.randn(2, 4, 7, 7, dtype=torch.float64)
    out_ours, out_lib = ours(x), lib(x)
    assert out_ours.shape == (2, 3, 14, 14), f"expected (2, 3, 14, 14), got {tuple(out_ours.shape)}"
    torch.testing.assert_close(out_ours, out_lib, **TOL)
    out_ours.square().sum().backward()
    out_lib.square().sum().backward()
    torch.testing.assert_close(ours.weight.grad, lib.weight.grad, **TOL)
    torch.testing.assert_close(ours.bias.grad, lib.bias.grad, **TOL)


def _linear_chain(layers, x):
    for layer in layers:
        x = F.relu(x) if layer is None else F.linear(x, layer.weight, layer.bias)
    return x


def test_dense_autoencoder_is_the_documented_stack(impl):
    """DenseAutoencoder: Linear-ReLU-Linear down to the code and back, logits (n, 1, 28, 28)."""
    torch.manual_seed(1)
    model = impl.DenseAutoencoder(latent_dim=3, hidden=10).double()
    x = torch.rand(4, 1, 28, 28, dtype=torch.float64)
    lin = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [tuple(m.weight.shape) for m in lin] == [(10, 784), (3, 10), (10, 3), (784, 10)]
    z = model.encode(x)
    torch.testing.assert_close(z, _linear_chain([lin[0], None, lin[1]], x.flatten(1)), **TOL)
    logits = model.decode(z)
    expected = _linear_chain([lin[2], None, lin[3]], z).reshape(4, 1, 28, 28)
    torch.testing.assert_close(logits, expected, **TOL, msg="decode is not Linear-ReLU-Linear")
    torch.testing.assert_close(model(x), logits, **TOL, msg="forward must be decode(encode(x))")
    model(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


def test_conv_autoencoder_shapes_and_torch_twin(impl):
    """ConvAutoencoder: (n, C, 7, 7) codes, 28x28 logits, equal to a twin using nn.ConvTranspose2d."""
    torch.manual_seed(2)
    model = impl.ConvAutoencoder(latent_channels=3, channels=(4, 6)).double()
    twin = impl.ConvAutoencoder(3, (4, 6), upsample=nn.ConvTranspose2d).double()
    twin.load_state_dict(model.state_dict())
    x = torch.rand(2, 1, 28, 28, dtype=torch.float64, requires_grad=True)
    z = model.encode(x)
    assert z.shape == (2, 3, 7, 7), f"code shape {tuple(z.shape)}, expected (2, 3, 7, 7)"
    assert model.decode(z).shape == (2, 1, 28, 28)
    ours, lib = model(x), twin(x)
    torch.testing.assert_close(ours, lib, **TOL, msg="our transposed conv differs inside the model")
    torch.testing.assert_close(ours, model.decode(model.encode(x)), **TOL)
    (g1,) = torch.autograd.grad(ours.sum(), x)
    (g2,) = torch.autograd.grad(lib.sum(), x)
    torch.testing.assert_close(g1, g2, **TOL)


@pytest.mark.parametrize("loss, corruption", [("bce", None), ("mse", None), ("bce", "gaussian")])
def test_train_step_is_one_sgd_step_on_the_clean_target(impl, loss, corruption):
    """train_step: corrupt the input, score against the CLEAN batch, backward, step; returns loss."""
    torch.manual_seed(3)
    model = impl.DenseAutoencoder(latent_dim=2, hidden=6).double()
    manual = impl.DenseAutoencoder(latent_dim=2, hidden=6).double()
    manual.load_state_dict(model.state_dict())
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    inputs = (
        x
        if corruption is None
        else impl.corrupt(x, corruption, 0.3, torch.Generator().manual_seed(7))
    )
    logits = manual(inputs)
    if loss == "bce":
        expected = F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / 5
    else:
        expected = F.mse_loss(torch.sigmoid(logits), x, reduction="sum") / 5
    grads = torch.autograd.grad(expected, list(manual.parameters()))
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    got = impl.train_step(model, opt, x, loss, corruption, 0.3, torch.Generator().manual_seed(7))
    assert isinstance(got, float), "train_step returns the loss as a Python float"
    np.testing.assert_allclose(
        got, float(expected.detach()), rtol=1e-10, err_msg="returned loss is wrong"
    )
    for p, q, g in zip(model.parameters(), manual.parameters(), grads):
        torch.testing.assert_close(p.detach(), q.detach() - 0.01 * g, **TOL, msg="not one SGD step")


def test_interpolate_matches_lerp(impl):
    """interpolate(a, b, steps) = torch.lerp(a, b, t) for t evenly spaced from 0 to 1."""
    a, b = torch.randn(3, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    path = impl.interpolate(a, b, 6)
    assert path.shape == (6, 3, 4), f"expected (6, 3, 4), got {tuple(path.shape)}"
    expected = torch.stack([torch.lerp(a, b, t) for t in np.linspace(0, 1, 6)])
    torch.testing.assert_close(path, expected, **TOL)
    assert torch.equal(path[0], a) and torch.allclose(path[-1], b, atol=1e-15)
    with pytest.raises(ValueError, match="at least"):
        impl.interpolate(a, b, 1)


def test_fit_gaussian_matches_numpy_and_torch(impl):
    """fit_gaussian: numpy's mean and unbiased covariance, torch's Cholesky factor, plus the ridge."""
    g = torch.Generator().manual_seed(5)
    z = torch.randn(300, 4, generator=g, dtype=torch.float64) @ torch.randn(
        4, 4, generator=g, dtype=torch.float64
    )
    mean, tril = impl.fit_gaussian(z, ridge=0.0)
    cov = np.cov(z.numpy(), rowvar=False)
    np.testing.assert_allclose(mean.numpy(), z.numpy().mean(0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose((tril @ tril.T).numpy(), cov, rtol=1e-10, atol=1e-12)
    mvn = torch.distributions.MultivariateNormal(mean, covariance_matrix=torch.from_numpy(cov))
    torch.testing.assert_close(tril, mvn.scale_tril, **TOL, msg="not the lower Cholesky factor")
    flat = torch.cat([z[:, :2], torch.ones(300, 1, dtype=torch.float64)], 1)  # one constant code
    _, tril = impl.fit_gaussian(flat, ridge=1e-3)
    np.testing.assert_allclose((tril @ tril.T)[2, 2].item(), 1e-3, rtol=1e-9)
    for bad in (z[:1], z[:, 0]):  # one code, or codes without a feature axis
        with pytest.raises(ValueError, match="shape"):
            impl.fit_gaussian(bad)


def test_latent_sampler_decodes_the_fitted_gaussian(impl):
    """LatentSampler(eps) = sigmoid(decoder(mean + eps L^T)), so its codes follow N(mean, L L^T)."""
    mean = torch.tensor([0.5, -1.0, 0.0, 2.0], dtype=torch.float64)
    tril = torch.tensor([[1.0, 0, 0, 0], [0.5, 0.8, 0, 0], [0, -0.3, 0.6, 0], [0.2, 0, 0.1, 0.4]],
                        dtype=torch.float64)  # fmt: skip
    sampler = impl.LatentSampler(nn.Identity(), mean, tril, (1, 2, 2))
    eps = torch.randn(20000, 4, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    out = sampler(eps)
    assert out.shape == (20000, 1, 2, 2), f"expected (n, 1, 2, 2), got {tuple(out.shape)}"
    torch.testing.assert_close(
        out[:3], torch.sigmoid((mean + eps[:3] @ tril.T).reshape(3, 1, 2, 2))
    )
    z = torch.logit(out.reshape(-1, 4))
    np.testing.assert_allclose(z.mean(0).numpy(), mean.numpy(), atol=0.05)
    np.testing.assert_allclose(np.cov(z.numpy(), rowvar=False), (tril @ tril.T).numpy(), atol=0.05)
