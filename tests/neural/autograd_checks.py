"""Helpers shared by the two autograd graders (scalar and array engines)."""

from __future__ import annotations

import numpy as np

TOL = dict(rtol=1e-9, atol=1e-11)


def grad_of(t) -> np.ndarray:
    return np.asarray(t.grad, dtype=float)


def finite_difference(f, arrays: list[np.ndarray], eps: float = 1e-6) -> list[np.ndarray]:
    """Central differences of the scalar f(*arrays) with respect to every entry."""
    grads = []
    for a in arrays:
        g = np.zeros_like(a)
        for idx in np.ndindex(a.shape):
            old = a[idx]
            a[idx] = old + eps
            up = f(*arrays)
            a[idx] = old - eps
            down = f(*arrays)
            a[idx] = old
            g[idx] = (up - down) / (2 * eps)
        grads.append(g)
    return grads
