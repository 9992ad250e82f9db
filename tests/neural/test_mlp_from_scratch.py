"""Grader for mlp-from-scratch: the NumPy network's forward pass, backward pass and SGD step
against the same network in torch (copied weights), plus a finite-difference gradient check."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from airoad.data import load

REFERENCE = "airoad.neural.mlp_from_scratch"

SIZES = (12, 9, 7, 4)


def _torch_params(model) -> list[torch.Tensor]:
    """The model's weights and biases as leaf tensors: W1, b1, W2, b2, ..."""
    out = []
    for w, b in zip(model.weights, model.biases):
        out += [torch.tensor(w, requires_grad=True), torch.tensor(b, requires_grad=True)]
    return out


def _torch_forward(params: list[torch.Tensor], X: torch.Tensor) -> torch.Tensor:
    a = X
    for i in range(0, len(params), 2):
        a = F.linear(a, params[i].T, params[i + 1])
        if i < len(params) - 2:
            a = torch.relu(a)
    return a


def _data(n=16, d=12, k=4, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, d)).astype(dtype), rng.integers(0, k, n)


def test_log_softmax_matches_torch_and_is_stable(impl):
    """log_softmax equals torch.log_softmax row-wise, also for logits in the thousands."""
    z = np.random.default_rng(0).standard_normal((5, 7)) * 3
    z[0] += 1000.0
    z[1, 2] = -1000.0
    got = np.asarray(impl.log_softmax(z))
    assert got.shape == z.shape, f"log_softmax returned {got.shape}, expected {z.shape}"
    assert np.isfinite(got).all(), "log_softmax overflowed: subtract the row max first"
    np.testing.assert_allclose(
        got,
        torch.log_softmax(torch.tensor(z), 1).numpy(),
        atol=1e-12,
        err_msg="log_softmax differs from torch.log_softmax",
    )
    np.testing.assert_array_equal(impl.relu(np.array([-2.0, 0.0, 3.0])), [0.0, 0.0, 3.0])


def test_softmax_cross_entropy_value_and_gradient(impl):
    """softmax_cross_entropy returns torch's mean cross-entropy and its gradient w.r.t. the logits."""
    rng = np.random.default_rng(1)
    logits, y = rng.standard_normal((10, 6)) * 4, rng.integers(0, 6, 10)
    loss, grad = impl.softmax_cross_entropy(logits, y)
    t = torch.tensor(logits, requires_grad=True)
    ref = F.cross_entropy(t, torch.tensor(y))
    ref.backward()
    assert np.shape(grad) == logits.shape, (
        f"gradient shape {np.shape(grad)}, expected {logits.shape}"
    )
    assert abs(float(loss) - ref.item()) < 1e-12, f"loss {loss} != torch's {ref.item()}"
    np.testing.assert_allclose(
        grad, t.grad.numpy(), atol=1e-12, err_msg="dloss/dlogits differs from torch autograd"
    )


def test_forward_matches_torch(impl):
    """forward gives the same logits as torch's Linear/ReLU stack with the same weights."""
    model = impl.MLP(SIZES, seed=3, dtype=np.float64)
    X, _ = _data()
    got = model.forward(X)
    assert got.shape == (16, 4), f"forward returned {got.shape}, expected (n_samples, n_classes)"
    want = _torch_forward(_torch_params(model), torch.tensor(X)).detach().numpy()
    np.testing.assert_allclose(
        got, want, rtol=1e-12, atol=1e-12, err_msg="logits differ from torch"
    )


@pytest.mark.parametrize("dtype, tol", [(np.float64, 1e-11), (np.float32, 1e-4)])
def test_backward_matches_torch_autograd(impl, dtype, tol):
    """backward returns the same weight and bias gradients as torch autograd (float64 and float32)."""
    model = impl.MLP(SIZES, seed=4, dtype=dtype)
    X, y = _data(dtype=dtype)
    upstream = np.random.default_rng(5).standard_normal((16, 4)).astype(dtype)
    model.forward(X)
    grads_w, grads_b = model.backward(upstream)
    params = _torch_params(model)
    (_torch_forward(params, torch.tensor(X)) * torch.tensor(upstream)).sum().backward()
    assert len(grads_w) == len(grads_b) == 3, "expected one weight and one bias gradient per layer"
    for i in range(3):
        assert grads_w[i].shape == model.weights[i].shape, (
            f"grads_w[{i}] has shape {grads_w[i].shape}"
        )
        np.testing.assert_allclose(
            grads_w[i],
            params[2 * i].grad.numpy(),
            rtol=tol,
            atol=tol,
            err_msg=f"gradient of weights[{i}] differs from torch",
        )
        np.testing.assert_allclose(
            grads_b[i],
            params[2 * i + 1].grad.numpy(),
            rtol=tol,
            atol=tol,
            err_msg=f"gradient of biases[{i}] differs from torch",
        )
    assert model.grads_w[0] is grads_w[0], (
        "backward must also store the gradients in grads_w/grads_b"
    )


def test_backward_agrees_with_finite_differences(impl):
    """Gradients of the cross-entropy loss agree with central finite differences (float64)."""
    model = impl.MLP((6, 5, 3), seed=7, dtype=np.float64)
    X, y = _data(n=8, d=6, k=3, seed=8)
    _, grad = impl.softmax_cross_entropy(model.forward(X), y)
    grads_w, grads_b = model.backward(grad)
    eps = 1e-6
    for params, grads in ((model.weights, grads_w), (model.biases, grads_b)):
        for p, g in zip(params, grads):
            numeric = np.zeros_like(p)
            for j in np.ndindex(p.shape):
                old = p[j]
                p[j] = old + eps
                up = impl.softmax_cross_entropy(model.forward(X), y)[0]
                p[j] = old - eps
                down = impl.softmax_cross_entropy(model.forward(X), y)[0]
                p[j] = old
                numeric[j] = (up - down) / (2 * eps)
            np.testing.assert_allclose(
                g, numeric, atol=1e-8, err_msg="backward disagrees with finite differences"
            )


def test_gradient_check_reports_small_error_and_catches_a_bug(impl):
    """gradient_check is tiny for a correct backward and large when backward is wrong."""
    model = impl.MLP((6, 5, 3), seed=2, dtype=np.float64)
    X, y = _data(n=8, d=6, k=3, seed=9)
    good = impl.gradient_check(model, X, y, n_checks=5)
    assert good < 1e-6, f"gradient_check says {good:.2e} for a correct network"
    real_backward = model.backward

    def broken(grad_logits):
        gw, gb = real_backward(grad_logits)
        return [2 * g for g in gw], gb

    model.backward = broken
    bad = impl.gradient_check(model, X, y, n_checks=5)
    assert bad > 0.1, f"gradient_check says {bad:.2e} for weight gradients that are doubled"


def test_update_weights_matches_torch_sgd(impl):
    """Three update_weights steps equal torch.optim.SGD with momentum and weight decay."""
    model = impl.MLP(SIZES, seed=5, dtype=np.float64)
    params = _torch_params(model)
    opt = torch.optim.SGD(
        [
            {"params": params[0::2], "weight_decay": 1e-2},  # weights decay,
            {"params": params[1::2], "weight_decay": 0.0},
        ],  # biases do not
        lr=0.1,
        momentum=0.9,
    )
    X, y = _data(seed=6)
    for _ in range(3):
        _, grad = impl.softmax_cross_entropy(model.forward(X), y)
        model.backward(grad)
        model.update_weights(0.1, momentum=0.9, weight_decay=1e-2)
        opt.zero_grad()
        F.cross_entropy(_torch_forward(params, torch.tensor(X)), torch.tensor(y)).backward()
        opt.step()
    for i in range(3):
        np.testing.assert_allclose(
            model.weights[i],
            params[2 * i].detach().numpy(),
            atol=1e-10,
            err_msg=f"weights[{i}] after 3 steps differ from torch.optim.SGD",
        )
        np.testing.assert_allclose(
            model.biases[i],
            params[2 * i + 1].detach().numpy(),
            atol=1e-10,
            err_msg=f"biases[{i}] after 3 steps differ from torch.optim.SGD",
        )


def test_training_lowers_the_loss_on_real_digits(impl):
    """train_epoch on 256 MNIST digits drives the loss down and predict learns them."""
    X, y = load("mnist-5k")
    X = X[:256].astype(np.float32) / 255.0
    y = y[:256].astype(np.int64)
    model = impl.MLP((784, 64, 10), seed=0)
    first = impl.train_epoch(model, X, y, lr=0.05, batch_size=64, rng=np.random.default_rng(0))
    assert len(first) == 4, f"train_epoch returned {len(first)} losses, expected one per batch (4)"
    for _ in range(15):
        last = impl.train_epoch(model, X, y, lr=0.05, batch_size=64, rng=np.random.default_rng(1))
    assert np.mean(last) < 0.2 * first[0], f"loss went from {first[0]:.3f} to {np.mean(last):.3f}"
    pred = model.predict(X, batch_size=100)
    assert pred.shape == (256,) and pred.dtype == np.int64, "predict returns (n,) int64 labels"
    assert (pred == y).mean() > 0.95, "the network should fit 256 training digits"
    assert model.weights[0].dtype == np.float32, "a float32 model must stay float32 while training"


def test_init_and_forward_scale_match_torch_kaiming_normal(impl):
    """A fresh MLP has the weight and logit spread of torch's kaiming_normal_ (He, relu) init; biases 0."""
    sizes = (200, 100, 50)
    model = impl.MLP(sizes, seed=0, dtype=np.float64)
    torch.manual_seed(0)
    ref = torch.nn.Sequential(torch.nn.Linear(200, 100), torch.nn.ReLU(), torch.nn.Linear(100, 50))
    for layer in ref[0::2]:
        torch.nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
        torch.nn.init.zeros_(layer.bias)
    for w, b, layer in zip(model.weights, model.biases, ref[0::2]):
        np.testing.assert_allclose(
            w.std(), layer.weight.std().item(), rtol=0.1, err_msg=f"std of a {w.shape} weight"
        )
        np.testing.assert_array_equal(b, 0.0, err_msg="biases start at 0")
    X = np.random.default_rng(1).standard_normal((400, 200))
    ours = model.forward(X).std()
    theirs = ref(torch.tensor(X, dtype=torch.float32)).std().item()
    np.testing.assert_allclose(ours, theirs, rtol=0.25, err_msg="spread of the initial logits")


@pytest.mark.parametrize("seed", [None, 3])
def test_train_epoch_matches_torch_minibatch_sgd(impl, seed):
    """train_epoch equals torch SGD over the batches of rng.permutation(n) (np.arange(n) when rng is None)."""
    model = impl.MLP(SIZES, seed=2, dtype=np.float64)
    params = _torch_params(model)
    opt = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    X, y = _data(n=22, seed=7)
    rng = None if seed is None else np.random.default_rng(seed)
    losses = impl.train_epoch(model, X, y, lr=0.1, batch_size=8, rng=rng)
    order = np.arange(22) if seed is None else np.random.default_rng(seed).permutation(22)
    theirs = []
    for start in range(0, 22, 8):
        idx = torch.tensor(order[start : start + 8])
        opt.zero_grad()
        loss = F.cross_entropy(_torch_forward(params, torch.tensor(X)[idx]), torch.tensor(y)[idx])
        loss.backward()
        opt.step()
        theirs.append(loss.item())
    np.testing.assert_allclose(losses, theirs, rtol=1e-9, err_msg="per-batch losses")
    for i, w in enumerate(model.weights):
        np.testing.assert_allclose(
            w, params[2 * i].detach().numpy(), atol=1e-10, err_msg=f"weights[{i}] after the epoch"
        )
