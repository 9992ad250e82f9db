"""A multi-layer perceptron in plain NumPy: forward, backward and the weight update by hand.

Layer l computes ``Z_l = A_{l-1} @ W_l + b_l`` and ``A_l = relu(Z_l)``; the last layer's
``Z_L`` are the logits, turned into a loss by softmax cross-entropy. Backpropagation runs the
chain rule from the loss back to every ``W_l`` and ``b_l``; SGD with momentum then steps
downhill. Shapes: X (n, d_in), W_l (d_{l-1}, d_l), b_l (d_l,), logits (n, n_classes).
"""

from __future__ import annotations

import numpy as np


def relu(z: np.ndarray) -> np.ndarray:
    """max(z, 0) element-wise, same shape and dtype as z."""
    return np.maximum(z, 0)


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log softmax, (n, k) -> (n, k): z - logsumexp(z), with the row max subtracted
    first so exp never overflows."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax_cross_entropy(logits: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of integer labels y (n,) under softmax(logits) (n, k), and its
    gradient with respect to the logits: (softmax(logits) - onehot(y)) / n, shape (n, k)."""
    n = logits.shape[0]
    logp = log_softmax(logits)
    rows = np.arange(n)
    loss = -float(logp[rows, y].mean())
    grad = np.exp(logp)
    grad[rows, y] -= 1.0
    grad /= n
    return loss, grad.astype(logits.dtype, copy=False)


class MLP:
    """Fully connected ReLU network ending in linear logits.

    layer_sizes: (d_in, hidden_1, ..., n_classes). Weights get He initialisation,
    N(0, 2 / fan_in), which keeps the variance of ReLU activations steady from layer to layer;
    biases start at 0. ``weights[l]`` has shape (layer_sizes[l], layer_sizes[l + 1]).
    """

    def __init__(self, layer_sizes: tuple[int, ...], seed: int = 0, dtype=np.float32):
        rng = np.random.default_rng(seed)
        self.layer_sizes = tuple(int(s) for s in layer_sizes)
        self.dtype = np.dtype(dtype)
        self.weights = [
            (rng.standard_normal((a, b)) * np.sqrt(2.0 / a)).astype(self.dtype)
            for a, b in zip(self.layer_sizes[:-1], self.layer_sizes[1:])
        ]
        self.biases = [np.zeros(b, dtype=self.dtype) for b in self.layer_sizes[1:]]
        # Momentum buffers, one per parameter, and what forward/backward leave behind.
        self.velocity_w = [np.zeros_like(w) for w in self.weights]
        self.velocity_b = [np.zeros_like(b) for b in self.biases]
        self.activations: list[np.ndarray] = []
        self.grads_w: list[np.ndarray] = []
        self.grads_b: list[np.ndarray] = []

    def forward(self, X: np.ndarray) -> np.ndarray:
        """Logits (n, n_classes) for inputs X (n, d_in).

        Stores the input of every layer in ``self.activations`` (X first, then each hidden
        ReLU output) because backward needs them."""
        a = np.asarray(X, dtype=self.dtype)
        self.activations = [a]
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            z = a @ w
            z += b
            if i == last:
                return z
            a = np.maximum(z, 0, out=z)  # in place: the pre-activation is not needed again
            self.activations.append(a)
        raise ValueError("the network has no layers")

    def backward(self, grad_logits: np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Gradients of the loss w.r.t. every weight and bias, given dLoss/dlogits (n, k) for
        the inputs of the last ``forward`` call. Returns and stores ``(grads_w, grads_b)``,
        shaped like ``weights`` and ``biases``.

        For layer l: dW_l = A_{l-1}^T dZ_l, db_l = sum_rows dZ_l, and the gradient passed down
        is dZ_{l-1} = (dZ_l W_l^T) * [A_{l-1} > 0] (the ReLU lets gradient through where it
        was active)."""
        dz = np.asarray(grad_logits, dtype=self.dtype)
        grads_w: list[np.ndarray] = [None] * len(self.weights)  # type: ignore[list-item]
        grads_b: list[np.ndarray] = [None] * len(self.weights)  # type: ignore[list-item]
        for i in range(len(self.weights) - 1, -1, -1):
            a_prev = self.activations[i]
            grads_w[i] = a_prev.T @ dz
            grads_b[i] = dz.sum(axis=0)
            if i > 0:  # nobody needs the gradient of the input images
                dz = dz @ self.weights[i].T
                dz *= a_prev > 0
        self.grads_w, self.grads_b = grads_w, grads_b
        return grads_w, grads_b

    def update_weights(self, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        """One SGD-with-momentum step from the stored gradients, the same rule as
        ``torch.optim.SGD``: g = grad + weight_decay * W (weights only), v = momentum * v + g,
        W -= lr * v."""
        for w, b, vw, vb, gw, gb in zip(
            self.weights, self.biases, self.velocity_w, self.velocity_b, self.grads_w, self.grads_b
        ):
            vw *= momentum
            vw += gw
            if weight_decay:
                vw += weight_decay * w
            vb *= momentum
            vb += gb
            w -= lr * vw
            b -= lr * vb

    def predict(self, X: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Predicted class (n,) int64: argmax of the logits, computed in batches."""
        out = [
            self.forward(X[i : i + batch_size]).argmax(axis=1) for i in range(0, len(X), batch_size)
        ]
        return np.concatenate(out).astype(np.int64)


def train_epoch(
    model: MLP,
    X: np.ndarray,
    y: np.ndarray,
    lr: float,
    batch_size: int = 128,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
    rng: np.random.Generator | None = None,
) -> list[float]:
    """One pass over (X, y) in shuffled mini-batches (no shuffle when rng is None):
    forward, softmax cross-entropy, backward, update. Returns the loss of every batch."""
    order = rng.permutation(len(X)) if rng is not None else np.arange(len(X))
    losses = []
    for start in range(0, len(X), batch_size):
        idx = order[start : start + batch_size]
        loss, grad = softmax_cross_entropy(model.forward(X[idx]), y[idx])
        model.backward(grad)
        model.update_weights(lr, momentum, weight_decay)
        losses.append(loss)
    return losses


def gradient_check(
    model: MLP, X: np.ndarray, y: np.ndarray, n_checks: int = 20, eps: float = 1e-6, seed: int = 0
) -> float:
    """Largest relative error between backward's gradient and the central difference
    (L(w + eps) - L(w - eps)) / (2 eps) over ``n_checks`` random entries of every weight
    matrix and bias. Use a float64 model: in float32 the differences drown in rounding.
    The relative error is |a - n| / max(|a| + |n|, 1e-12)."""
    rng = np.random.default_rng(seed)

    def loss() -> float:
        return softmax_cross_entropy(model.forward(X), y)[0]

    _, grad = softmax_cross_entropy(model.forward(X), y)
    grads_w, grads_b = model.backward(grad)
    worst = 0.0
    for params, grads in ((model.weights, grads_w), (model.biases, grads_b)):
        for p, g in zip(params, grads):
            flat_p, flat_g = p.reshape(-1), g.reshape(-1)  # views: edits reach the model
            for j in rng.integers(0, flat_p.size, size=n_checks):
                old = flat_p[j]
                flat_p[j] = old + eps
                up = loss()
                flat_p[j] = old - eps
                down = loss()
                flat_p[j] = old
                numeric = (up - down) / (2 * eps)
                err = abs(flat_g[j] - numeric) / max(abs(flat_g[j]) + abs(numeric), 1e-12)
                worst = max(worst, float(err))
    return worst
