"""Grader for cnn: NumPy im2col conv2d and pooling checked against torch.nn.functional (values
and autograd gradients in float64, plus finite differences), then the PyTorch CNN pieces."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.neural.cnn"

FAST = settings(max_examples=20, deadline=None)


def _torch_conv(x, w, b, stride, padding, g):
    xt, wt, bt = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    out = F.conv2d(xt, wt, bt, stride=stride, padding=padding)
    out.backward(torch.from_numpy(g))
    return out.detach().numpy(), xt.grad.numpy(), wt.grad.numpy(), bt.grad.numpy()


def test_im2col_shape_and_content(impl):
    """im2col returns (N, C*kh*kw, OH*OW) whose columns are the flattened receptive fields."""
    x = np.arange(2 * 3 * 5 * 4, dtype=float).reshape(2, 3, 5, 4)
    cols = np.asarray(impl.im2col(x, 3, 2, stride=2, padding=1))
    assert cols.shape == (2, 3 * 3 * 2, 3 * 3), f"im2col returned {cols.shape}, expected (2, 18, 9)"
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    np.testing.assert_array_equal(
        cols[1, :, 4],
        xp[1, :, 2:5, 2:4].ravel(),
        err_msg="column 4 (output row 1, col 1) is not the patch at (2, 2)",
    )


def test_col2im_is_the_adjoint_of_im2col(impl):
    """<im2col(x), c> == <x, col2im(c)> for random x and c (col2im sums overlapping patches)."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 7, 6))
    cols = np.asarray(impl.im2col(x, 3, 3, 2, 1))
    c = rng.normal(size=cols.shape)
    back = np.asarray(impl.col2im(c, x.shape, 3, 3, 2, 1))
    assert back.shape == x.shape, f"col2im returned {back.shape}, expected {x.shape}"
    assert np.sum(cols * c) == pytest.approx(np.sum(x * back), rel=1e-10), (
        "col2im is not im2col's adjoint"
    )


@FAST
@given(
    n=st.integers(1, 3),
    c=st.integers(1, 3),
    f=st.integers(1, 4),
    h=st.integers(4, 9),
    w=st.integers(4, 9),
    kh=st.integers(1, 3),
    kw=st.integers(1, 3),
    stride=st.integers(1, 3),
    padding=st.integers(0, 2),
    seed=st.integers(0, 10_000),
)
def test_conv2d_matches_torch_values_and_gradients(
    impl, n, c, f, h, w, kh, kw, stride, padding, seed
):
    """conv2d_forward/backward equal F.conv2d and its autograd gradients for any stride/padding."""
    rng = np.random.default_rng(seed)
    x, wt, b = rng.normal(size=(n, c, h, w)), rng.normal(size=(f, c, kh, kw)), rng.normal(size=f)
    out, cache = impl.conv2d_forward(x, wt, b, stride=stride, padding=padding)
    g = rng.normal(size=np.shape(out))
    ref_out, dx_t, dw_t, db_t = _torch_conv(x, wt, b, stride, padding, g)
    assert np.shape(out) == ref_out.shape, (
        f"conv2d_forward returned {np.shape(out)}, torch {ref_out.shape}"
    )
    np.testing.assert_allclose(
        out, ref_out, atol=1e-10, err_msg="conv2d_forward differs from F.conv2d"
    )
    dx, dw, db = impl.conv2d_backward(g, cache)
    np.testing.assert_allclose(dx, dx_t, atol=1e-10, err_msg="dx differs from torch autograd")
    np.testing.assert_allclose(dw, dw_t, atol=1e-10, err_msg="dw differs from torch autograd")
    np.testing.assert_allclose(db, db_t, atol=1e-10, err_msg="db differs from torch autograd")


def test_conv2d_without_bias(impl):
    """conv2d_forward accepts b=None and then equals F.conv2d with no bias."""
    rng = np.random.default_rng(1)
    x, w = rng.normal(size=(2, 2, 6, 6)), rng.normal(size=(3, 2, 3, 3))
    out, _ = impl.conv2d_forward(x, w, None, stride=1, padding=1)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1).numpy()
    np.testing.assert_allclose(
        out, expected, atol=1e-10, err_msg="conv2d_forward with b=None is wrong"
    )


def test_conv2d_backward_matches_finite_differences(impl):
    """dL/dx and dL/dw of L = sum(out * g) agree with central finite differences."""
    rng = np.random.default_rng(2)
    x, w, b = rng.normal(size=(1, 2, 5, 5)), rng.normal(size=(2, 2, 3, 3)), rng.normal(size=2)
    out, cache = impl.conv2d_forward(x, w, b, 2, 1)
    g = rng.normal(size=np.shape(out))
    dx, dw, _ = impl.conv2d_backward(g, cache)
    eps = 1e-6
    for arr, grad, name in [(x, dx, "dx"), (w, dw, "dw")]:
        for idx in (
            [(0, 0, 1, 1), (0, 1, 2, 0), (1, 1, 0, 2)]
            if name == "dw"
            else [(0, 0, 0, 0), (0, 1, 2, 3), (0, 0, 4, 4)]
        ):
            old = arr[idx]
            arr[idx] = old + eps
            up = np.sum(impl.conv2d_forward(x, w, b, 2, 1)[0] * g)
            arr[idx] = old - eps
            down = np.sum(impl.conv2d_forward(x, w, b, 2, 1)[0] * g)
            arr[idx] = old
            assert (up - down) / (2 * eps) == pytest.approx(grad[idx], abs=1e-6), (
                f"{name}{idx} fails the finite-difference check"
            )


@FAST
@given(
    n=st.integers(1, 2),
    c=st.integers(1, 3),
    h=st.integers(4, 9),
    w=st.integers(4, 9),
    kernel=st.integers(1, 3),
    stride=st.one_of(st.none(), st.integers(1, 3)),
    seed=st.integers(0, 10_000),
)
def test_pooling_matches_torch(impl, n, c, h, w, kernel, stride, seed):
    """max and average pooling (forward and backward) equal F.max_pool2d / F.avg_pool2d."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, h, w))
    for name, fwd, bwd, lib in [
        ("maxpool2d", impl.maxpool2d_forward, impl.maxpool2d_backward, F.max_pool2d),
        ("avgpool2d", impl.avgpool2d_forward, impl.avgpool2d_backward, F.avg_pool2d),
    ]:
        out, cache = fwd(x, kernel, stride)
        xt = torch.tensor(x, requires_grad=True)
        ot = lib(xt, kernel, stride)
        g = rng.normal(size=tuple(ot.shape))
        ot.backward(torch.from_numpy(g))
        assert np.shape(out) == tuple(ot.shape), (
            f"{name} forward returned {np.shape(out)}, torch {tuple(ot.shape)}"
        )
        np.testing.assert_allclose(
            out, ot.detach().numpy(), atol=1e-12, err_msg=f"{name} forward differs"
        )
        np.testing.assert_allclose(
            bwd(g, cache),
            xt.grad.numpy(),
            atol=1e-12,
            err_msg=f"{name} backward differs from torch autograd",
        )


def test_augment_crops_and_flips_per_image(impl):
    """augment keeps the shape, is seeded, and crops a shifted (maybe mirrored) padded window."""
    x = torch.arange(6 * 1 * 5 * 5, dtype=torch.float32).reshape(6, 1, 5, 5) + 1
    a = impl.augment(x, 2, torch.Generator().manual_seed(3), flip=True)
    b = impl.augment(x, 2, torch.Generator().manual_seed(3), flip=True)
    assert tuple(a.shape) == (6, 1, 5, 5), (
        f"augment returned {tuple(a.shape)}, expected (6, 1, 5, 5)"
    )
    assert torch.equal(a, b), "augment is not reproducible with the same Generator seed"
    xp = F.pad(x, (2, 2, 2, 2))
    windows = xp.unfold(2, 5, 1).unfold(3, 5, 1)  # (N, 1, 5, 5, 5, 5): every 5x5 window
    for i in range(6):
        cands = windows[i, 0].reshape(-1, 5, 5)
        ok = any(
            torch.equal(a[i, 0], cand) or torch.equal(a[i, 0], cand.flip(-1)) for cand in cands
        )
        assert ok, f"image {i} is not a (mirrored) crop of the padded original"
    plain = impl.augment(x, 0, torch.Generator().manual_seed(0), flip=False)
    assert torch.equal(plain, x), (
        "augment with padding 0 and no flip must return the images unchanged"
    )
    same = x[:1].expand(64, 1, 5, 5)
    flipped = impl.augment(same, 0, torch.Generator().manual_seed(1), flip=True)
    mirrored = [torch.equal(f[0], x[0, 0].flip(-1)) for f in flipped]
    assert all(m or torch.equal(f, x[0]) for m, f in zip(mirrored, flipped)), (
        "with padding 0 every image must be the original or its left-right mirror"
    )
    assert 10 < sum(mirrored) < 54, f"{sum(mirrored)} of 64 images mirrored, expected about half"


def test_residual_block_is_identity_plus_branch(impl):
    """ResidualBlock returns relu(x + branch(x)): with the last batch-norm scale at 0 it is relu(x)."""
    torch.manual_seed(0)
    block = impl.ResidualBlock(4).eval()
    with torch.no_grad():
        block.bn2.weight.zero_()
        block.bn2.bias.zero_()
    x = torch.randn(2, 4, 6, 6)
    out = block(x)
    assert tuple(out.shape) == (2, 4, 6, 6), f"ResidualBlock returned {tuple(out.shape)}"
    torch.testing.assert_close(
        out, torch.relu(x), msg="the shortcut must add x before the final relu"
    )


def test_residual_block_matches_functional_torch_in_eval_mode(impl):
    """In eval mode ResidualBlock is relu(x + bn2(conv2(relu(bn1(conv1(x)))))), bias-free 3x3 convs."""
    torch.manual_seed(1)
    block = impl.ResidualBlock(3).eval()
    bns = [block.bn1, block.bn2]
    with torch.no_grad():
        for bn in bns:  # non-trivial statistics so that every term shows
            bn.running_mean.normal_()
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.normal_()
            bn.bias.normal_()
    x = torch.randn(2, 3, 5, 5)

    def bn(h, m):
        return F.batch_norm(h, m.running_mean, m.running_var, m.weight, m.bias, eps=m.eps)

    with torch.no_grad():
        h = torch.relu(bn(F.conv2d(x, block.conv1.weight, padding=1), block.bn1))
        ref = torch.relu(x + bn(F.conv2d(h, block.conv2.weight, padding=1), block.bn2))
        torch.testing.assert_close(block(x), ref, msg="ResidualBlock differs from the formula")


def test_fashion_cnn_shapes_and_gradients(impl):
    """FashionCNN maps (N,1,28,28) to (N,10), features() gives 14x14 and 7x7 maps, all get grads."""
    torch.manual_seed(0)
    model = impl.FashionCNN((4, 8), hidden=16)
    x = torch.randn(3, 1, 28, 28)
    logits = model(x)
    assert tuple(logits.shape) == (3, 10), (
        f"forward returned {tuple(logits.shape)}, expected (3, 10)"
    )
    shapes = [tuple(f.shape) for f in model.features(x)]
    assert shapes == [(3, 4, 14, 14), (3, 8, 7, 7), (3, 8, 7, 7)], f"features() shapes {shapes}"
    logits.sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert not missing, f"parameters without gradient: {missing}"


def test_conv_output_size(impl):
    """conv_output_size follows (size + 2 padding - kernel) // stride + 1."""
    assert impl.conv_output_size(28, 3, 1, 1) == 28
    assert impl.conv_output_size(28, 2, 2, 0) == 14
    assert impl.conv_output_size(7, 3, 2, 1) == 4
