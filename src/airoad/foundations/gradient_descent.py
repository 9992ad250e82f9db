"""Gradient descent from scratch: optimizers, learning-rate schedules and a line fit, in NumPy.

The running example is the line y = m x + b fitted by mean squared error,

    L(m, b) = mean((m x_i + b - y_i)^2),   dL/dm = 2 mean(r_i x_i),   dL/db = 2 mean(r_i),

with residuals r_i = m x_i + b - y_i. Parameters live in one array ``theta = [m, b]``.

Every optimizer has the same interface as a pocket ``torch.optim``: build it with its
hyper-parameters, then call ``params = opt.step(params, grads)`` once per update. The update rules
follow PyTorch's documented algorithms exactly (same defaults, same placement of ``eps``, same
bias correction), so the same gradients give the same trajectory as ``torch.optim``.

Schedules are plain functions ``lr = schedule(step, base_lr, ...)`` of the update index
(0 for the first update), matching ``torch.optim.lr_scheduler`` when the scheduler is stepped
once after every optimizer step.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

Schedule = Callable[[int], float]


# ---------------------------------------------------------------- optimizers


class SGD:
    """Stochastic gradient descent with optional momentum, Nesterov momentum and L2 weight decay.

    One update, with g the gradient (PyTorch's rule, dampening 0):
        g <- g + weight_decay * p
        v <- g on the first step, else momentum * v + g        (only when momentum > 0)
        d <- g + momentum * v if nesterov else v               (d = g when momentum == 0)
        p <- p - lr * d
    """

    def __init__(
        self,
        lr: float = 1e-3,
        momentum: float = 0.0,
        nesterov: bool = False,
        weight_decay: float = 0.0,
    ):
        self.lr = lr
        self.momentum = momentum
        self.nesterov = nesterov
        self.weight_decay = weight_decay
        self.velocity: np.ndarray | None = None  # torch calls it momentum_buffer

    def step(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """Return the updated parameters (a new array, same shape as `params`); update `velocity`."""
        g = grads + self.weight_decay * params if self.weight_decay else grads
        if self.momentum:
            # The first buffer is the raw gradient, not zero: torch's choice, so no warm-up bias.
            self.velocity = g.copy() if self.velocity is None else self.momentum * self.velocity + g
            g = g + self.momentum * self.velocity if self.nesterov else self.velocity
        return params - self.lr * g


class RMSprop:
    """RMSProp: divide each gradient by a running root-mean-square of its recent values.

    One update (PyTorch's rule, not centred):
        g <- g + weight_decay * p
        s <- alpha * s + (1 - alpha) * g^2            (s starts at 0)
        u <- g / (sqrt(s) + eps)                      (eps added OUTSIDE the square root)
        b <- momentum * b + u, u <- b                 (only when momentum > 0; b starts at 0)
        p <- p - lr * u
    """

    def __init__(
        self,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
    ):
        self.lr = lr
        self.alpha = alpha
        self.eps = eps
        self.weight_decay = weight_decay
        self.momentum = momentum
        self.square_avg: np.ndarray | None = None
        self.momentum_buffer: np.ndarray | None = None

    def step(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """Return the updated parameters (a new array); update `square_avg` (and the momentum buffer)."""
        g = grads + self.weight_decay * params if self.weight_decay else grads
        if self.square_avg is None:
            self.square_avg = np.zeros_like(params, dtype=float)
        self.square_avg = self.alpha * self.square_avg + (1 - self.alpha) * g * g
        update = g / (np.sqrt(self.square_avg) + self.eps)
        if self.momentum:
            if self.momentum_buffer is None:
                self.momentum_buffer = np.zeros_like(params, dtype=float)
            self.momentum_buffer = self.momentum * self.momentum_buffer + update
            update = self.momentum_buffer
        return params - self.lr * update


class Adam:
    """Adam: momentum on the gradient plus RMSProp scaling, both bias-corrected.

    Update t = 1, 2, ... (PyTorch's rule; weight decay is L2 added to the gradient, not AdamW):
        g <- g + weight_decay * p
        m <- beta1 * m + (1 - beta1) * g,     v <- beta2 * v + (1 - beta2) * g^2     (m, v start at 0)
        p <- p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
    """

    def __init__(
        self,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
    ):
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0  # number of updates taken so far
        self.m: np.ndarray | None = None
        self.v: np.ndarray | None = None

    def step(self, params: np.ndarray, grads: np.ndarray) -> np.ndarray:
        """Return the updated parameters (a new array); advance `t` and update `m` and `v`."""
        beta1, beta2 = self.betas
        g = grads + self.weight_decay * params if self.weight_decay else grads
        if self.m is None or self.v is None:
            self.m = np.zeros_like(params, dtype=float)
            self.v = np.zeros_like(params, dtype=float)
        self.t += 1
        self.m = beta1 * self.m + (1 - beta1) * g
        self.v = beta2 * self.v + (1 - beta2) * g * g
        # Zero-initialised averages are biased towards 0 early on; dividing by 1 - beta^t fixes it.
        step_size = self.lr / (1 - beta1**self.t)
        denom = np.sqrt(self.v) / math.sqrt(1 - beta2**self.t) + self.eps
        return params - step_size * self.m / denom


# ---------------------------------------------------------------- schedules


def step_decay(step: int, base_lr: float, step_size: int, gamma: float = 0.1) -> float:
    """Learning rate for update `step` (0-based): base_lr * gamma ** (step // step_size).

    Same values as torch's StepLR(step_size, gamma) stepped once per update.
    """
    return base_lr * gamma ** (step // step_size)


def cosine_annealing(step: int, base_lr: float, t_max: int, eta_min: float = 0.0) -> float:
    """eta_min + (base_lr - eta_min) * (1 + cos(pi * step / t_max)) / 2, as torch's CosineAnnealingLR.

    Past `t_max` the cosine keeps going (back up again), exactly as torch's scheduler does.
    """
    return eta_min + (base_lr - eta_min) * (1 + math.cos(math.pi * step / t_max)) / 2


def linear_warmup(
    step: int, base_lr: float, warmup_steps: int, start_factor: float = 1 / 3
) -> float:
    """Ramp linearly from start_factor * base_lr (step 0) to base_lr (step >= warmup_steps).

    Same values as torch's LinearLR(start_factor, end_factor=1.0, total_iters=warmup_steps).
    """
    frac = min(step, warmup_steps) / warmup_steps
    return base_lr * (start_factor + (1 - start_factor) * frac)


def warmup_cosine(
    step: int,
    base_lr: float,
    warmup_steps: int,
    total_steps: int,
    start_factor: float = 0.1,
    eta_min: float = 0.0,
) -> float:
    """Linear warm-up for `warmup_steps` updates, then cosine annealing over the rest.

    Same values as torch's SequentialLR([LinearLR(start_factor, total_iters=warmup_steps),
    CosineAnnealingLR(T_max=total_steps - warmup_steps, eta_min)], milestones=[warmup_steps]).
    """
    if step < warmup_steps:
        return linear_warmup(step, base_lr, warmup_steps, start_factor)
    return cosine_annealing(step - warmup_steps, base_lr, total_steps - warmup_steps, eta_min)


# ---------------------------------------------------------------- the line fit


def mse_loss(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    """Mean squared error of the line theta = [m, b] on points x, y (both shape (n,))."""
    r = theta[0] * x + theta[1] - y
    return float(np.mean(r * r))


def mse_grad(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Gradient [dL/dm, dL/db] of `mse_loss` at theta, shape (2,)."""
    r = theta[0] * x + theta[1] - y
    return np.array([2 * np.mean(r * x), 2 * np.mean(r)])


def batch_indices(n: int, batch_size: int, epochs: int, seed: int) -> list[np.ndarray]:
    """The index batches of a training run, in order: a list of int arrays.

    Each epoch draws a fresh permutation of range(n) from np.random.default_rng(seed) (one
    generator for the whole run) and cuts it into consecutive chunks of `batch_size`; the last
    chunk of an epoch may be shorter. So there are epochs * ceil(n / batch_size) batches.
    """
    rng = np.random.default_rng(seed)
    batches: list[np.ndarray] = []
    for _ in range(epochs):
        order = rng.permutation(n)
        batches += [order[i : i + batch_size] for i in range(0, n, batch_size)]
    return batches


def fit_line(
    x: np.ndarray,
    y: np.ndarray,
    optimizer: SGD | RMSprop | Adam,
    batch_size: int | None = None,
    epochs: int = 100,
    seed: int = 0,
    schedule: Schedule | None = None,
    theta0: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Fit y = m x + b by gradient descent; return (theta = [m, b], loss history).

    batch_size None (or >= n) is batch GD, 1 is stochastic GD, anything between is mini-batch.
    Batches come from `batch_indices(n, batch_size, epochs, seed)`; each update uses the mean
    gradient of its batch. When `schedule` is given, `optimizer.lr = schedule(t)` is set before
    update t = 0, 1, .... theta starts at `theta0` (default [0, 0]).
    The history holds the FULL-data MSE before any update and after each one, so it has
    len(batches) + 1 entries and curves for different batch sizes are comparable.
    """
    n = len(x)
    theta = np.zeros(2) if theta0 is None else np.asarray(theta0, dtype=float).copy()
    batches = batch_indices(n, n if batch_size is None else min(batch_size, n), epochs, seed)
    losses = np.empty(len(batches) + 1)
    losses[0] = mse_loss(theta, x, y)
    for t, idx in enumerate(batches):
        if schedule is not None:
            optimizer.lr = schedule(t)
        theta = optimizer.step(theta, mse_grad(theta, x[idx], y[idx]))
        losses[t + 1] = mse_loss(theta, x, y)
    return theta, losses
