"""Local explanations from scratch: exact Shapley values, KernelSHAP and LIME on tabular data.

A model ``f`` maps rows (n, M) to one number per row (a probability, a log-odds). To explain
``f(x)`` for one row ``x`` we ask what each of the M features contributes.

- A coalition ``S`` is a subset of the features; a row of a 0/1 mask matrix (2^M, M) says which
  features come from ``x``. The others come from a background row ``b`` and the value of the
  coalition is averaged over the background (the "interventional" value function):
  ``v(S) = mean_b f(x_S, b_notS)``. So ``v(empty) = E f(background)`` and ``v(all) = f(x)``.
- Shapley values: ``phi_i = sum_{S not containing i} |S|! (M-|S|-1)! / M! (v(S + i) - v(S))``,
  the only attribution that is efficient (``sum phi = f(x) - v(empty)``), symmetric, gives 0
  to a feature that never changes ``v``, and is additive in ``f``.
- KernelSHAP (Lundberg & Lee 2017) gets the same numbers from a weighted least-squares fit of
  ``v(S) ~ phi_0 + sum_{i in S} phi_i`` over coalitions with the Shapley kernel
  ``pi(S) = (M-1) / (C(M,|S|) |S| (M-|S|))``. The empty and full coalitions have infinite
  weight: they become the constraints ``phi_0 = v(empty)`` and ``sum phi = v(all) - v(empty)``,
  which we impose by eliminating the last feature. With every coalition enumerated the fit is
  exact; sampling coalitions (what ``shap`` does for large M) only approximates it.
- LIME (Ribeiro et al. 2016) perturbs ``x``, weights each perturbed row by an exponential
  kernel on its distance to ``x`` and fits a weighted ridge regression; its coefficients are
  the explanation. Our sampler draws the same numbers as ``lime.lime_tabular`` with
  ``discretize_continuous=False`` so the two can be compared number for number.
"""

from __future__ import annotations

from collections.abc import Callable
from math import comb, factorial

import numpy as np

Model = Callable[[np.ndarray], np.ndarray]


def coalitions(m: int) -> np.ndarray:
    """Every subset of ``m`` features as a 0/1 float matrix (2^m, m).

    Row ``k`` holds the bits of ``k``: feature ``j`` is in coalition ``k`` iff ``(k >> j) & 1``.
    So row 0 is the empty coalition and row 2^m - 1 the full one. ValueError unless 1 <= m <= 20.
    """
    if not 1 <= m <= 20:
        raise ValueError(f"m = {m}: enumerating 2^m coalitions needs 1 <= m <= 20")
    k = np.arange(2**m)[:, None]
    return ((k >> np.arange(m)) & 1).astype(np.float64)


def shapley_kernel(sizes: np.ndarray, m: int) -> np.ndarray:
    """The Shapley kernel weight ``(m-1) / (C(m,s) s (m-s))`` of a coalition of size ``s``.

    ``sizes`` is an int array; sizes 0 and ``m`` get ``inf`` (they are constraints, not data).
    """
    sizes = np.asarray(sizes)
    out = np.full(sizes.shape, np.inf)
    inner = (sizes > 0) & (sizes < m)
    s = sizes[inner]
    binom = np.array([comb(m, int(k)) for k in s], dtype=np.float64)
    out[inner] = (m - 1) / (binom * s * (m - s))
    return out


def coalition_values(f: Model, x: np.ndarray, background: np.ndarray, masks: np.ndarray):
    """``v(S) = mean_b f(where(S, x, b))`` for each mask row: shape (n_masks,).

    ``x`` is (M,), ``background`` (n_bg, M), ``masks`` (n_masks, M) of 0/1. ``f`` is called once
    on the (n_masks * n_bg, M) stack of hybrid rows.
    """
    x, background = np.asarray(x, dtype=np.float64), np.asarray(background, dtype=np.float64)
    on = masks.astype(bool)[:, None, :]
    rows = np.where(on, x[None, None, :], background[None, :, :])  # (n_masks, n_bg, M)
    out = np.asarray(f(rows.reshape(-1, x.shape[0])), dtype=np.float64)
    return out.reshape(len(masks), len(background)).mean(axis=1)


def exact_shapley(f: Model, x: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
    """Shapley values of ``f`` at ``x`` by enumerating all 2^M coalitions: (phi (M,), phi_0).

    ``phi_0 = v(empty)`` is the mean prediction on the background; ``phi_0 + phi.sum() = f(x)``.
    """
    m = len(x)
    masks = coalitions(m)
    v = coalition_values(f, x, background, masks)
    sizes = masks.sum(axis=1).astype(int)
    w = np.array([factorial(s) * factorial(m - s - 1) / factorial(m) if s < m else 0.0
                  for s in sizes])  # fmt: skip
    phi = np.empty(m)
    for i in range(m):
        without = masks[:, i] == 0  # coalitions S that do not contain i ...
        idx = np.flatnonzero(without)
        phi[i] = np.sum(w[idx] * (v[idx + 2**i] - v[idx]))  # ... and S + i sets bit i
    return phi, float(v[0])


def kernel_shap(f: Model, x: np.ndarray, background: np.ndarray) -> tuple[np.ndarray, float]:
    """KernelSHAP with every coalition: (phi (M,), phi_0) from the constrained weighted fit.

    Fit ``v(S) - phi_0 ~ z @ phi`` over the 2^M - 2 proper coalitions ``z`` with weights
    ``shapley_kernel``, subject to ``sum phi = f(x) - phi_0``: substitute
    ``phi_M = delta - sum_{i<M} phi_i`` and solve the (M-1)-dim normal equations. M < 2 is a
    ValueError (one feature simply gets ``f(x) - phi_0``).
    """
    m = len(x)
    if m < 2:
        raise ValueError("KernelSHAP needs at least 2 features (one feature gets f(x) - phi_0)")
    masks = coalitions(m)
    v = coalition_values(f, x, background, masks)
    phi0, delta = float(v[0]), float(v[-1] - v[0])
    z, y = masks[1:-1], v[1:-1] - phi0
    w = shapley_kernel(z.sum(axis=1).astype(int), m)
    a = z[:, :-1] - z[:, -1:]  # columns phi_1..phi_{M-1} after eliminating phi_M
    r = y - z[:, -1] * delta
    aw = a * w[:, None]
    head = np.linalg.solve(aw.T @ a, aw.T @ r)
    return np.append(head, delta - head.sum()), phi0


def lime_samples(
    x: np.ndarray, mean: np.ndarray, scale: np.ndarray, n_samples: int, seed: int
) -> np.ndarray:
    """LIME's neighbourhood of ``x``: (n_samples, M) rows ``N(0, 1) * scale + mean``, row 0 = x.

    Draws exactly what ``lime`` draws: ``np.random.RandomState(seed).normal(0, 1, n * M)``
    reshaped row by row (``mean`` and ``scale`` are the training data's column mean and
    population std, with std 0 replaced by 1). ValueError if ``n_samples < 2``.
    """
    if n_samples < 2:
        raise ValueError(f"n_samples = {n_samples}: LIME needs x and at least one perturbation")
    m = len(x)
    noise = np.random.RandomState(seed).normal(0, 1, n_samples * m).reshape(n_samples, m)
    data = noise * scale + mean
    data[0] = x
    return data


def lime_kernel(distances: np.ndarray, width: float) -> np.ndarray:
    """LIME's exponential kernel ``sqrt(exp(-d^2 / width^2))`` on Euclidean distances."""
    return np.sqrt(np.exp(-(np.asarray(distances) ** 2) / width**2))


def weighted_ridge(
    X: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float
) -> tuple[np.ndarray, float]:
    """Minimise ``sum_i w_i (y_i - b0 - X_i b)^2 + alpha |b|^2``: (b (M,), b0).

    The intercept is not penalised: centre X and y on their weighted means, solve
    ``(Xc' W Xc + alpha I) b = Xc' W yc``, then ``b0 = ybar - xbar @ b``.
    """
    xbar, ybar = np.average(X, axis=0, weights=w), np.average(y, weights=w)
    xc, yc = X - xbar, y - ybar
    xw = xc * w[:, None]
    b = np.linalg.solve(xw.T @ xc + alpha * np.eye(X.shape[1]), xw.T @ yc)
    return b, float(ybar - xbar @ b)


def lime_explain(
    f: Model,
    x: np.ndarray,
    mean: np.ndarray,
    scale: np.ndarray,
    n_samples: int = 5000,
    seed: int = 0,
    kernel_width: float | None = None,
    alpha: float = 1.0,
) -> tuple[np.ndarray, float, float]:
    """LIME for one row: (coefficients (M,), intercept, local prediction at x).

    Samples with ``lime_samples``, standardises them ``(row - mean) / scale`` (the surrogate
    lives in standard units, so coefficients are per standard deviation), weights rows by
    ``lime_kernel`` of their distance to x with ``kernel_width`` (default ``0.75 sqrt(M)``) and
    fits ``weighted_ridge`` to ``f`` of the unscaled rows.
    """
    width = 0.75 * np.sqrt(len(x)) if kernel_width is None else kernel_width
    data = lime_samples(x, mean, scale, n_samples, seed)
    z = (data - mean) / scale
    weights = lime_kernel(np.linalg.norm(z - z[0], axis=1), width)
    coef, intercept = weighted_ridge(z, np.asarray(f(data), dtype=np.float64), weights, alpha)
    return coef, intercept, float(intercept + z[0] @ coef)
