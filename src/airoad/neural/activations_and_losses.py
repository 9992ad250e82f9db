"""Activation and loss functions in NumPy, each with its hand-written backward.

A ``*_backward`` function returns the gradient of the final scalar loss with respect to the
function's input, given ``grad_out`` = the gradient with respect to its output (the chain
rule's upstream factor). For a loss (a scalar) the upstream factor is 1, so its backward takes
the same arguments as the loss itself.

The exact GELU needs the error function; we take ``erf`` from ``scipy.special`` (the lesson is
the activation, not how erf is evaluated). The tests compare with ``torch.nn.functional``.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erf

_SQRT_2_OVER_PI = np.sqrt(2.0 / np.pi)
_GELU_CUBIC = 0.044715  # the constant of the tanh approximation of GELU


# ---------------------------------------------------------------- activations


def sigmoid(x: np.ndarray) -> np.ndarray:
    """``1 / (1 + exp(-x))``, elementwise; any shape -> same shape, values in (0, 1).

    Written as ``(1 + tanh(x / 2)) / 2`` (the same function) so exp never overflows.
    """
    x = np.asarray(x)
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def sigmoid_backward(x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """d/dx: ``grad_out * s * (1 - s)`` with ``s = sigmoid(x)``; at most 1/4, which is why deep
    sigmoid networks learn slowly (the gradient shrinks at every layer)."""
    s = sigmoid(x)
    return grad_out * s * (1.0 - s)


def tanh(x: np.ndarray) -> np.ndarray:
    """Hyperbolic tangent ``(e^x - e^-x) / (e^x + e^-x)``, elementwise, values in (-1, 1)."""
    return np.tanh(x)


def tanh_backward(x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """d/dx: ``grad_out * (1 - tanh(x)**2)``."""
    t = np.tanh(x)
    return grad_out * (1.0 - t * t)


def relu(x: np.ndarray) -> np.ndarray:
    """``max(x, 0)``, elementwise."""
    return np.maximum(x, 0.0)


def relu_backward(x: np.ndarray, grad_out: np.ndarray) -> np.ndarray:
    """d/dx: ``grad_out`` where x > 0, else 0 (at exactly 0 we take 0, as torch does)."""
    return np.where(np.asarray(x) > 0, grad_out, 0.0)


def gelu(x: np.ndarray, approximate: str = "none") -> np.ndarray:
    """GELU ``x * Phi(x)`` with Phi the standard normal CDF, elementwise.

    approximate="none": exact, ``Phi(x) = (1 + erf(x / sqrt 2)) / 2``.
    approximate="tanh": ``x/2 * (1 + tanh(sqrt(2/pi) * (x + 0.044715 x^3)))``, the fast form
    used by GPT-2 and BERT.
    """
    x = np.asarray(x)
    if approximate == "tanh":
        return 0.5 * x * (1.0 + np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3)))
    if approximate != "none":
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def gelu_backward(x: np.ndarray, grad_out: np.ndarray, approximate: str = "none") -> np.ndarray:
    """d/dx of `gelu`. Exact: ``Phi(x) + x * phi(x)`` with phi the normal density.

    Tanh form, with ``u = sqrt(2/pi) (x + 0.044715 x^3)`` and ``t = tanh(u)``:
    ``(1 + t) / 2 + x/2 * (1 - t^2) * sqrt(2/pi) * (1 + 3 * 0.044715 x^2)``.
    """
    x = np.asarray(x)
    if approximate == "tanh":
        t = np.tanh(_SQRT_2_OVER_PI * (x + _GELU_CUBIC * x**3))
        du = _SQRT_2_OVER_PI * (1.0 + 3.0 * _GELU_CUBIC * x * x)
        return grad_out * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * du)
    if approximate != "none":
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    cdf = 0.5 * (1.0 + erf(x / np.sqrt(2.0)))
    pdf = np.exp(-0.5 * x * x) / np.sqrt(2.0 * np.pi)
    return grad_out * (cdf + x * pdf)


def log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``x - logsumexp(x)`` along `axis` (same shape as x), shifted by the max: no overflow."""
    x = np.asarray(x)
    shifted = x - x.max(axis=axis, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))


def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """``exp(x_i) / sum_j exp(x_j)`` along `axis`; same shape as x, each slice sums to 1."""
    return np.exp(log_softmax(x, axis=axis))


def softmax_backward(x: np.ndarray, grad_out: np.ndarray, axis: int = -1) -> np.ndarray:
    """d/dx of softmax: its Jacobian is ``diag(s) - s s^T``, so the product with grad_out is
    ``s * (grad_out - sum(grad_out * s))`` along `axis` (no Jacobian is ever built)."""
    s = softmax(x, axis=axis)
    return s * (grad_out - (grad_out * s).sum(axis=axis, keepdims=True))


# ---------------------------------------------------------------- losses


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error ``mean((pred - target)**2)`` over every element."""
    diff = np.asarray(pred) - np.asarray(target)
    return float(np.mean(diff * diff))


def mse_backward(pred: np.ndarray, target: np.ndarray) -> np.ndarray:
    """d mse / d pred = ``2 (pred - target) / N`` with N the number of elements."""
    diff = np.asarray(pred) - np.asarray(target)
    return 2.0 * diff / diff.size


def cross_entropy(logits: np.ndarray, labels: np.ndarray) -> float:
    """Mean ``-log softmax(logits)[i, labels[i]]``; logits (n, k) raw scores, labels (n,) ints.

    Going through log_softmax (log-sum-exp) keeps it finite for logits in the thousands.
    """
    labels = np.asarray(labels)
    logp = log_softmax(logits, axis=1)
    return float(-logp[np.arange(len(labels)), labels].mean())


def cross_entropy_backward(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """d cross_entropy / d logits = ``(softmax(logits) - one_hot(labels)) / n``, shape (n, k)."""
    labels = np.asarray(labels)
    grad = softmax(logits, axis=1)
    grad[np.arange(len(labels)), labels] -= 1.0
    return grad / len(labels)


def _hinge_margins(scores: np.ndarray, labels: np.ndarray, margin: float) -> np.ndarray:
    """``max(0, margin - s_y + s_j)`` for every wrong class j, 0 in the true-class column."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    rows = np.arange(len(labels))
    m = np.maximum(0.0, margin - scores[rows, labels][:, None] + scores)
    m[rows, labels] = 0.0
    return m


def hinge(scores: np.ndarray, labels: np.ndarray, margin: float = 1.0) -> float:
    """Multi-class hinge loss (as ``F.multi_margin_loss``): scores (n, k), labels (n,) ints.

    ``mean_i sum_{j != y_i} max(0, margin - s_{i, y_i} + s_{i, j}) / k``: a wrong class costs
    something only while it scores within `margin` of the true class.
    """
    return float(_hinge_margins(scores, labels, margin).sum(axis=1).mean() / np.shape(scores)[1])


def hinge_backward(scores: np.ndarray, labels: np.ndarray, margin: float = 1.0) -> np.ndarray:
    """d hinge / d scores, shape (n, k): every active margin adds ``1/(n k)`` to its wrong class
    and subtracts it from the true class."""
    scores, labels = np.asarray(scores), np.asarray(labels)
    n, k = scores.shape
    active = (_hinge_margins(scores, labels, margin) > 0).astype(float)
    grad = active
    grad[np.arange(n), labels] = -active.sum(axis=1)
    return grad / (n * k)


def _distance(a: np.ndarray, b: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ``||a - b + eps||_2`` (torch's pairwise_distance adds eps) and the difference."""
    diff = np.asarray(a) - np.asarray(b) + eps
    return np.sqrt((diff * diff).sum(axis=1)), diff


def triplet(
    anchor: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    margin: float = 1.0,
    eps: float = 1e-6,
) -> float:
    """Triplet margin loss (as ``F.triplet_margin_loss``); all three inputs (n, d).

    ``mean(max(0, d(a, p) - d(a, n) + margin))`` with Euclidean d: pull each anchor closer to
    its positive than to its negative by at least `margin`.
    """
    d_pos, _ = _distance(anchor, positive, eps)
    d_neg, _ = _distance(anchor, negative, eps)
    return float(np.maximum(0.0, d_pos - d_neg + margin).mean())


def triplet_backward(
    anchor: np.ndarray,
    positive: np.ndarray,
    negative: np.ndarray,
    margin: float = 1.0,
    eps: float = 1e-6,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients (d anchor, d positive, d negative), each (n, d).

    ``d ||u|| / d u = u / ||u||``; only triplets with a positive loss contribute, each 1/n.
    """
    d_pos, diff_pos = _distance(anchor, positive, eps)
    d_neg, diff_neg = _distance(anchor, negative, eps)
    active = ((d_pos - d_neg + margin) > 0) / len(d_pos)
    g_pos = (active / d_pos)[:, None] * diff_pos  # d loss / d anchor through d(a, p)
    g_neg = (active / d_neg)[:, None] * diff_neg  # d loss / d anchor through d(a, n), with a minus
    return g_pos - g_neg, -g_pos, g_neg
