"""Reverse-mode automatic differentiation on NumPy arrays (``Tensor``), plus a small MLP
trained with it. The scalar version that shows the idea is ``airoad.neural.scalar_autograd``;
this module reuses its ``topological_order``.

Every operation builds a new node that remembers its inputs and a closure ``_backward`` that
turns the node's gradient into its inputs' gradients (one step of the chain rule).
``backward()`` sorts the graph topologically and runs those closures from the output back, so a
node's gradient is complete before it is passed on. Gradients ACCUMULATE (``+=``): a value used
twice receives the sum of both contributions.
"""

from __future__ import annotations

import numpy as np

from airoad.neural.scalar_autograd import topological_order


def _unbroadcast(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Sum `grad` down to `shape`: undo NumPy broadcasting in the backward pass.

    Broadcasting copies an input along new leading axes and along its size-1 axes; each copy
    used the same number, so its gradient is the SUM over those axes.
    """
    while grad.ndim > len(shape):
        grad = grad.sum(axis=0)
    for axis, size in enumerate(shape):
        if size == 1 and grad.shape[axis] != 1:
            grad = grad.sum(axis=axis, keepdims=True)
    return grad


def _as_tensor(x) -> Tensor:
    return x if isinstance(x, Tensor) else Tensor(x)


class Tensor:
    """A float64 NumPy array in a computation graph; ``grad`` has the shape of ``data``."""

    def __init__(self, data, _prev: tuple = (), _op: str = ""):
        self.data = np.asarray(data, dtype=np.float64)
        self.grad = np.zeros_like(self.data)
        self._prev = _prev
        self._op = _op
        self._backward = lambda: None

    @property
    def shape(self) -> tuple[int, ...]:
        return self.data.shape

    def __add__(self, other) -> Tensor:
        """Broadcasting ``self + other``; each input gets the output grad summed to its shape."""
        other = _as_tensor(other)
        out = Tensor(self.data + other.data, (self, other), "+")

        def _backward():
            self.grad += _unbroadcast(out.grad, self.shape)
            other.grad += _unbroadcast(out.grad, other.shape)

        out._backward = _backward
        return out

    def __mul__(self, other) -> Tensor:
        """Broadcasting elementwise ``self * other``; d/dself = other (then unbroadcast)."""
        other = _as_tensor(other)
        out = Tensor(self.data * other.data, (self, other), "*")

        def _backward():
            self.grad += _unbroadcast(other.data * out.grad, self.shape)
            other.grad += _unbroadcast(self.data * out.grad, other.shape)

        out._backward = _backward
        return out

    def __pow__(self, exponent: float) -> Tensor:
        """Elementwise ``self ** exponent`` for a constant exponent."""
        out = Tensor(self.data**exponent, (self,), f"**{exponent}")

        def _backward():
            self.grad += exponent * self.data ** (exponent - 1) * out.grad

        out._backward = _backward
        return out

    def __matmul__(self, other) -> Tensor:
        """Matrix product of (..., n, k) and (..., k, m) -> (..., m); both at least 2-D.

        For C = A @ B: dA = dC @ B^T and dB = A^T @ dC (batch axes unbroadcast).
        """
        other = _as_tensor(other)
        out = Tensor(self.data @ other.data, (self, other), "@")

        def _backward():
            self.grad += _unbroadcast(out.grad @ np.swapaxes(other.data, -1, -2), self.shape)
            other.grad += _unbroadcast(np.swapaxes(self.data, -1, -2) @ out.grad, other.shape)

        out._backward = _backward
        return out

    def sum(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Sum over `axis` (all axes if None); every summed element gets the output grad."""
        out = Tensor(self.data.sum(axis=axis, keepdims=keepdims), (self,), "sum")

        def _backward():
            grad = out.grad
            if axis is not None and not keepdims:  # put back the removed axes, then broadcast
                grad = np.expand_dims(grad, axis)
            self.grad += np.broadcast_to(grad, self.shape)

        out._backward = _backward
        return out

    def mean(self, axis: int | tuple[int, ...] | None = None, keepdims: bool = False) -> Tensor:
        """Mean over `axis` (all axes if None): the sum divided by the number of summed elements."""
        count = self.data.size / max(np.asarray(self.data.sum(axis=axis)).size, 1)
        return self.sum(axis=axis, keepdims=keepdims) * (1.0 / count)

    def exp(self) -> Tensor:
        """Elementwise ``e**x``; its derivative is itself."""
        out = Tensor(np.exp(self.data), (self,), "exp")

        def _backward():
            self.grad += out.data * out.grad

        out._backward = _backward
        return out

    def log(self) -> Tensor:
        """Elementwise natural log (x > 0); derivative 1 / x."""
        out = Tensor(np.log(self.data), (self,), "log")

        def _backward():
            self.grad += out.grad / self.data

        out._backward = _backward
        return out

    def relu(self) -> Tensor:
        """Elementwise ``max(x, 0)``; derivative 1 where x > 0 (0 at x = 0, as torch)."""
        out = Tensor(np.maximum(self.data, 0.0), (self,), "relu")

        def _backward():
            self.grad += (self.data > 0) * out.grad

        out._backward = _backward
        return out

    def tanh(self) -> Tensor:
        """Elementwise tanh; derivative 1 - tanh**2."""
        out = Tensor(np.tanh(self.data), (self,), "tanh")

        def _backward():
            self.grad += (1.0 - out.data**2) * out.grad

        out._backward = _backward
        return out

    def sigmoid(self) -> Tensor:
        """Elementwise ``1 / (1 + e**-x)`` (written via tanh: no overflow); derivative s (1 - s)."""
        out = Tensor(0.5 * (1.0 + np.tanh(0.5 * self.data)), (self,), "sigmoid")

        def _backward():
            self.grad += out.data * (1.0 - out.data) * out.grad

        out._backward = _backward
        return out

    def log_softmax(self, axis: int = -1) -> Tensor:
        """``x - logsumexp(x)`` along `axis`, shifted by the max so exp never overflows.

        Backward: with s = softmax(x) = exp(out), dx = g - s * sum(g) along `axis`.
        """
        shifted = self.data - self.data.max(axis=axis, keepdims=True)
        out_data = shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))
        out = Tensor(out_data, (self,), "log_softmax")

        def _backward():
            softmax = np.exp(out.data)
            self.grad += out.grad - softmax * out.grad.sum(axis=axis, keepdims=True)

        out._backward = _backward
        return out

    def reshape(self, *shape) -> Tensor:
        """Same numbers, new shape (``t.reshape(2, 3)`` or ``t.reshape((2, 3))``)."""
        out = Tensor(self.data.reshape(*shape), (self,), "reshape")

        def _backward():
            self.grad += out.grad.reshape(self.shape)

        out._backward = _backward
        return out

    def __getitem__(self, index) -> Tensor:
        """NumPy indexing (ints, slices, integer arrays); the grad flows back to the picked entries.

        ``np.add.at`` accumulates, so an entry picked twice receives both gradients.
        """
        out = Tensor(self.data[index], (self,), "getitem")

        def _backward():
            np.add.at(self.grad, index, out.grad)

        out._backward = _backward
        return out

    def backward(self, grad: np.ndarray | None = None) -> None:
        """Backpropagate from this tensor; `grad` defaults to ones (d self / d self)."""
        self.grad = np.ones_like(self.data) if grad is None else np.asarray(grad, dtype=np.float64)
        for node in reversed(topological_order(self)):
            node._backward()

    # Composite operations: built from the ones above, so they need no backward of their own.
    def __neg__(self) -> Tensor:
        return self * -1.0

    def __sub__(self, other) -> Tensor:
        return self + (-_as_tensor(other))

    def __truediv__(self, other) -> Tensor:
        return self * _as_tensor(other) ** -1.0

    __radd__ = __add__  # a + b == b + a, so the reflected forms are the same functions
    __rmul__ = __mul__

    def __rsub__(self, other) -> Tensor:
        return _as_tensor(other) - self

    def __rtruediv__(self, other) -> Tensor:
        return _as_tensor(other) / self


# ---------------------------------------------------------------- a small MLP on the engine


def cross_entropy(logits: Tensor, labels: np.ndarray) -> Tensor:
    """Mean negative log-likelihood of integer `labels` (n,) under softmax(`logits` (n, k))."""
    labels = np.asarray(labels)
    picked = logits.log_softmax(axis=1)[np.arange(len(labels)), labels]
    return -picked.mean()


class MLP:
    """A fully connected network: tanh hidden layers, a linear output layer (logits).

    sizes: e.g. (4, 16, 3). Weights start uniform in +-1/sqrt(fan_in) (torch's Linear default
    scale), biases at 0; ``layers`` holds (W (fan_in, fan_out), b (fan_out,)) Tensors.
    """

    def __init__(self, sizes: tuple[int, ...], seed: int = 0):
        rng = np.random.default_rng(seed)
        self.layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            bound = 1.0 / np.sqrt(fan_in)
            self.layers.append(
                (Tensor(rng.uniform(-bound, bound, (fan_in, fan_out))), Tensor(np.zeros(fan_out)))
            )

    def parameters(self) -> list[Tensor]:
        """Every weight and bias Tensor, layer by layer: [W1, b1, W2, b2, ...]."""
        return [p for layer in self.layers for p in layer]

    def __call__(self, X) -> Tensor:
        """Logits (n, k) for inputs X (n, d): ``h = tanh(h @ W + b)`` then a linear last layer."""
        h = _as_tensor(X)
        for i, (W, b) in enumerate(self.layers):
            h = h @ W + b
            if i < len(self.layers) - 1:
                h = h.tanh()
        return h


def train_mlp(
    model: MLP, X: np.ndarray, y: np.ndarray, lr: float = 0.1, epochs: int = 100
) -> list[float]:
    """Full-batch gradient descent on `cross_entropy`; returns the loss BEFORE each update.

    Each epoch: zero the grads, forward, backward, then ``p -= lr * p.grad`` for every parameter.
    """
    losses = []
    for _ in range(epochs):
        for p in model.parameters():
            p.grad = np.zeros_like(p.data)
        loss = cross_entropy(model(X), y)
        loss.backward()
        for p in model.parameters():
            p.data -= lr * p.grad
        losses.append(float(loss.data))
    return losses
