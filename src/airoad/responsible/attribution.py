"""Global and gradient attributions from scratch: permutation importance, partial dependence
(with ICE curves) and integrated gradients.

- Permutation importance of feature j = score on the data - score after shuffling column j
  (the link between that feature and the target is broken, the feature's marginal kept).
  Repeated shuffles give a spread. To match scikit-learn number for number we use its random
  stream: one seed drawn from ``RandomState(random_state)``, then for every column a fresh
  ``RandomState(seed)`` whose ``shuffle`` of an index vector is applied repeatedly (each repeat
  permutes the already permuted column).
- Partial dependence of feature j at value t = mean over rows of ``f(row with x_j := t)``;
  the per-row curves are the ICE curves, their mean the PDP. The grid is the column's unique
  values when there are few, else ``resolution`` points between two percentiles (the
  percentiles as ``scipy.stats.mstats.mquantiles`` computes them, alphap = betap = 0.4).
- Integrated gradients (Sundararajan et al. 2017):
  ``IG_i = (x_i - x'_i) * integral_0^1 dF(x' + a (x - x')) / dx_i da`` for a baseline x'.
  A quadrature rule with nodes a_k and weights w_k turns the integral into one batched
  backward pass; completeness says ``sum_i IG_i = F(x) - F(x')`` up to the rule's error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

Score = Callable[[np.ndarray, np.ndarray], float]
RULES = ("riemann_left", "riemann_right", "riemann_middle", "riemann_trapezoid", "gausslegendre")


def permutation_importance(
    score: Score, X: np.ndarray, y: np.ndarray, n_repeats: int = 5, random_state: int = 0
) -> np.ndarray:
    """Drop in ``score(X, y)`` when each column is shuffled: array (M, n_repeats).

    Uses scikit-learn's random stream (see the module docstring), so with the same
    ``random_state`` the result equals ``sklearn.inspection.permutation_importance``'s
    ``importances``. ``X`` is not modified; ``n_repeats < 1`` is a ValueError.
    """
    if n_repeats < 1:
        raise ValueError(f"n_repeats = {n_repeats}: need at least one shuffle")
    seed = np.random.RandomState(random_state).randint(np.iinfo(np.int32).max + 1)
    base = score(X, y)
    out = np.empty((X.shape[1], n_repeats))
    for j in range(X.shape[1]):
        rs, Xp = np.random.RandomState(seed), X.copy()
        order = np.arange(len(X))
        for r in range(n_repeats):
            rs.shuffle(order)
            Xp[:, j] = Xp[order, j]
            out[j, r] = base - score(Xp, y)
    return out


def quantiles(column: np.ndarray, probs: tuple[float, float]) -> np.ndarray:
    """``mquantiles(column, probs)`` with alphap = betap = 0.4 (Hyndman & Fan's type 8-ish).

    For sorted values x_1..x_n: position ``h = n p + 0.4 + 0.2 p`` clipped to [1, n-1],
    k = floor(h), and the quantile ``(1 - g) x_k + g x_{k+1}`` with g = h - k clipped to [0, 1].
    """
    x, p = np.sort(np.asarray(column, dtype=np.float64)), np.asarray(probs, dtype=np.float64)
    n = len(x)
    h = n * p + 0.4 + p * (1 - 0.4 - 0.4)
    k = np.floor(np.clip(h, 1, n - 1)).astype(int)
    g = np.clip(h - k, 0, 1)
    return (1 - g) * x[k - 1] + g * x[k]


def pd_grid(
    column: np.ndarray, resolution: int = 100, percentiles: tuple[float, float] = (0.05, 0.95)
) -> np.ndarray:
    """The values partial dependence is evaluated at (as scikit-learn chooses them).

    The sorted unique values if there are fewer than ``resolution``, else ``resolution``
    evenly spaced points between the two ``quantiles`` of the column. ValueError if
    ``resolution < 2``.
    """
    if resolution < 2:
        raise ValueError(f"resolution = {resolution}: a grid needs at least 2 points")
    uniques = np.unique(column)
    if len(uniques) < resolution:
        return uniques
    lo, hi = quantiles(column, percentiles)
    return np.linspace(lo, hi, resolution)


def partial_dependence(
    f: Callable[[np.ndarray], np.ndarray], X: np.ndarray, feature: int, grid: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(PDP (n_grid,), ICE (n_rows, n_grid)) of ``f`` for column ``feature`` over ``grid``.

    ICE[i, g] = f(X[i] with column ``feature`` set to grid[g]); PDP = ICE.mean(axis=0).
    ``f`` is called once on the (n_grid * n_rows, M) stack.
    """
    stacked = np.repeat(X[None], len(grid), axis=0)  # (n_grid, n_rows, M)
    stacked[:, :, feature] = np.asarray(grid)[:, None]
    ice = np.asarray(f(stacked.reshape(-1, X.shape[1]))).reshape(len(grid), len(X)).T
    return ice.mean(axis=0), ice


def integration_rule(n_steps: int, method: str = "gausslegendre") -> tuple[np.ndarray, ...]:
    """Nodes a_k in [0, 1] and weights w_k of ``method`` with ``n_steps`` points.

    Riemann rules use the left ends, right ends or midpoints of n equal steps (weight 1/n);
    the trapezoid rule puts n points on [0, 1] with end weights halved (captum's convention:
    1/(2n) at the ends, 1/n inside); Gauss-Legendre maps numpy's nodes and weights from
    [-1, 1] to [0, 1]. An unknown ``method`` (see ``RULES``) or ``n_steps < 2`` is a ValueError.
    """
    if method not in RULES:
        raise ValueError(f"unknown integration rule {method!r}; choose one of {RULES}")
    if n_steps < 2:
        raise ValueError(f"n_steps = {n_steps}: an integration rule needs at least 2 points")
    n = n_steps
    if method == "gausslegendre":
        nodes, weights = np.polynomial.legendre.leggauss(n)
        return 0.5 * (nodes + 1), 0.5 * weights
    weights = np.full(n, 1 / n)
    if method == "riemann_trapezoid":
        weights[[0, -1]] /= 2
        return np.linspace(0, 1, n), weights
    start = {"riemann_left": 0.0, "riemann_right": 1.0, "riemann_middle": 0.5}[method]
    return (np.arange(n) + start) / n, weights


def integrated_gradients(
    model: torch.nn.Module,
    x: torch.Tensor,
    baseline: torch.Tensor,
    target: int = 0,
    n_steps: int = 50,
    method: str = "gausslegendre",
) -> torch.Tensor:
    """Integrated gradients of output ``target`` for a batch ``x`` (B, M): tensor (B, M).

    ``baseline`` has x's shape (or broadcasts to it). The path points for all nodes go through
    the model as one (n_steps * B, M) batch; ``model`` returns (N, n_outputs).
    """
    alphas, weights = integration_rule(n_steps, method)
    a = torch.as_tensor(alphas, dtype=x.dtype)[:, None, None]
    w = torch.as_tensor(weights, dtype=x.dtype)[:, None, None]
    baseline = baseline.expand_as(x)
    path = (baseline + a * (x - baseline)).reshape(-1, x.shape[-1]).detach().requires_grad_()
    out = model(path)[:, target]
    (grad,) = torch.autograd.grad(out.sum(), path)
    return (x - baseline) * (w * grad.reshape(n_steps, *x.shape)).sum(dim=0)
