"""The svm lab's SVC made fast: the same SMO steps as ``airoad.classic.svm.smo_solve``, taken
for all the one-vs-one problems at once.

A multi-class SVC solves one small dual per pair of classes (45 on digits). Each SMO step is a
dozen NumPy calls on vectors of a few hundred entries, so the reference spends most of its time
in Python and NumPy call overhead, not in arithmetic. Here the P problems are padded to one
size m and stacked: one loop turn takes one step of every problem that has not converged, with
each NumPy call working on a (P, m) array. Every problem still takes exactly its own sequence
of working-set choices and updates (the same float operations as smo_solve), so alphas, rho
and the iteration counts come out as the reference's; a problem that has converged leaves
the stack. Padding entries belong to neither working set (their penalties are -inf).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.exceptions import ConvergenceWarning

from airoad.classic import svm as readable
from airoad.classic.svm import TAU, PegasosSVC, _rho, kernel_matrix, pair_kernel, smo_solve

MIN_PAIRS = 6  # stack the duals from 4 classes (6 pairs) on: fewer do not repay the overhead

__all__ = ["SVC", "PegasosSVC", "kernel_matrix", "smo_solve", "smo_solve_many"]


def _in_sets(alpha: np.ndarray, y: np.ndarray, C: float) -> tuple[np.ndarray, np.ndarray]:
    """Penalties (0 inside, -inf outside) of I_up and I_low for multipliers alpha, labels y."""
    up = np.where(y > 0, alpha < C, alpha > 0) & (y != 0)  # y = 0 marks padding
    low = np.where(y > 0, alpha > 0, alpha < C) & (y != 0)
    return np.where(up, 0.0, -np.inf), np.where(low, 0.0, -np.inf)


def _two_variable_step(ai, aj, yi, yj, gi, gj, quad, C):
    """smo_solve's exact two-variable update with box clipping, for vectors of problems."""
    opp = yi != yj
    # y_i != y_j: a_i - a_j stays fixed
    delta = (-gi - gj) / quad
    diff = ai - aj
    pos = diff > 0
    ni, nj = ai + delta, aj + delta
    hit = np.where(pos, nj < 0, ni < 0)
    ni, nj = (
        np.where(hit, np.where(pos, diff, 0.0), ni),
        np.where(hit, np.where(pos, 0.0, -diff), nj),
    )
    hit = np.where(pos, ni > C, nj > C)
    oi = np.where(hit, np.where(pos, C, C + diff), ni)
    oj = np.where(hit, np.where(pos, C - diff, C), nj)
    # y_i == y_j: a_i + a_j stays fixed
    delta = (gi - gj) / quad
    total = ai + aj
    big = total > C
    ni, nj = ai - delta, aj + delta
    hit = np.where(big, ni > C, nj < 0)
    ni, nj = (
        np.where(hit, np.where(big, C, total), ni),
        np.where(hit, np.where(big, total - C, 0.0), nj),
    )
    hit = np.where(big, nj > C, ni < 0)
    si = np.where(hit, np.where(big, total - C, 0.0), ni)
    sj = np.where(hit, np.where(big, C, total), nj)
    return np.where(opp, oi, si), np.where(opp, oj, sj)


def smo_solve_many(
    Ks: np.ndarray, ys: np.ndarray, C: float, tol: float = 1e-3, max_iter: int = -1
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """smo_solve on P problems at once. Ks: (P, m, m) kernels, zero-padded; ys: (P, m) labels
    in {-1, +1}, 0 on padding. Returns alpha (P, m), G (P, m) (the gradient Q a - 1) and the
    iterations (P,) of every problem."""
    P, m = ys.shape
    rows = Ks.reshape(P * m, m)  # row i of problem p is rows[p * m + i]
    QD = np.diagonal(Ks, axis1=1, axis2=2).copy()
    alpha, myG = np.zeros((P, m)), ys.astype(float)  # myG = -y * G, as in smo_solve
    up_pen, low_pen = _in_sets(alpha, ys, C)
    out_alpha, out_myG, out_it = np.zeros((P, m)), np.zeros((P, m)), np.zeros(P, dtype=np.int64)
    live, y = np.arange(P), ys.astype(float)
    limit = max_iter if max_iter > 0 else 10_000_000
    it = 0
    while live.size:
        v = myG + up_pen
        i = m - 1 - v[:, ::-1].argmax(axis=1)  # libsvm keeps the last index among ties
        r = np.arange(len(live))
        b = v[r, i][:, None] - myG
        b += low_pen
        done = b.max(axis=1) < tol
        stop = done | (it == limit)
        if stop.any():  # finished problems leave the stack
            if not done[stop].all():
                warnings.warn(
                    f"SMO stopped after max_iter={limit} steps before reaching tol={tol}",
                    ConvergenceWarning,
                    stacklevel=2,
                )
            gone, keep = live[stop], ~stop
            out_alpha[gone], out_myG[gone], out_it[gone] = alpha[stop], myG[stop], it
            live, i, b = live[keep], i[keep], b[keep]
            alpha, myG, y, QD = alpha[keep], myG[keep], y[keep], QD[keep]
            up_pen, low_pen = up_pen[keep], low_pen[keep]
            if not live.size:
                break
            r = np.arange(len(live))
        Ki = rows[live * m + i]
        curv = Ki * -2.0
        curv += QD
        curv += QD[r, i][:, None]
        np.maximum(curv, TAU, out=curv)
        np.maximum(b, 0.0, out=b)
        b *= b
        b /= curv
        j = m - 1 - b[:, ::-1].argmax(axis=1)
        it += 1
        ai, aj, yi, yj = alpha[r, i], alpha[r, j], y[r, i], y[r, j]
        gi, gj = -yi * myG[r, i], -yj * myG[r, j]
        quad = np.maximum(QD[r, i] + QD[r, j] - 2.0 * Ki[r, j], TAU)
        ni, nj = _two_variable_step(ai, aj, yi, yj, gi, gj, quad, C)
        myG -= Ki * (yi * (ni - ai))[:, None]
        myG -= rows[live * m + j] * (yj * (nj - aj))[:, None]
        alpha[r, i], alpha[r, j] = ni, nj
        for t in (i, j):  # only these two multipliers changed: refresh their set membership
            up_pen[r, t], low_pen[r, t] = _in_sets(alpha[r, t], y[r, t], C)
    return out_alpha, -ys * out_myG, out_it


class SVC(readable.SVC):
    """The readable SVC, with every one-vs-one dual solved by smo_solve_many."""

    def _solve_pairs(self, K: np.ndarray, edges: np.ndarray, pairs: list) -> list[tuple]:
        """All pairs in one stack of padded problems -> [(alpha, rho, iterations)]. A loop turn
        here makes about 100 NumPy calls against smo_solve's 25, so with few pairs (few
        classes) the readable one-by-one solve is quicker and is used instead."""
        if len(pairs) < MIN_PAIRS:
            return super()._solve_pairs(K, edges, pairs)
        sizes = [edges[a + 1] - edges[a] + edges[b + 1] - edges[b] for a, b in pairs]
        m = max(sizes)
        Ks, ys = np.zeros((len(pairs), m, m)), np.zeros((len(pairs), m))
        for p, (a, b) in enumerate(pairs):
            pair_kernel(K, edges, a, b, out=Ks[p])
            na = edges[a + 1] - edges[a]
            ys[p, :na], ys[p, na : sizes[p]] = 1.0, -1.0
        alpha, G, iters = smo_solve_many(Ks, ys, self.C, self.tol, self.max_iter)
        return [
            (alpha[p, :n], _rho(alpha[p, :n], ys[p, :n], G[p, :n], self.C), int(iters[p]))
            for p, n in enumerate(sizes)
        ]
