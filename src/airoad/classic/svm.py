"""Support vector machines from scratch: a linear SVM trained by Pegasos (stochastic
sub-gradient descent on the hinge loss) and a kernel SVM trained by SMO on the dual.

Soft-margin primal:  min_w,b  1/2 ||w||^2 + C sum_i max(0, 1 - y_i (w.x_i + b)),  y_i in {-1, +1}.
Its dual:            min_a  1/2 a^T Q a - sum_i a_i,   Q_ij = y_i y_j K(x_i, x_j),
                     subject to 0 <= a_i <= C and sum_i y_i a_i = 0.
The decision function is f(x) = sum_i a_i y_i K(x_i, x) - rho; the points with a_i > 0 are the
support vectors. SMO moves two multipliers at a time, picked like libsvm does (second-order
working-set selection), so our solution matches scikit-learn's SVC (which wraps libsvm) to
within the stopping tolerance. Multi-class is one-vs-one, exactly like SVC. A faster twin that
steps all the one-vs-one problems together is ``airoad.classic.svm_fast``.
"""

from __future__ import annotations

import warnings
from itertools import combinations

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data

TAU = 1e-12  # libsvm's floor for a non-positive curvature K_ii + K_jj - 2 K_ij


def kernel_matrix(
    A: np.ndarray,
    B: np.ndarray,
    kernel: str = "rbf",
    gamma: float = 1.0,
    degree: int = 3,
    coef0: float = 0.0,
) -> np.ndarray:
    """Gram matrix K[i, j] = k(A[i], B[j]) for A (n, d) and B (m, d) -> (n, m).

    linear: a.b;  poly: (gamma a.b + coef0)^degree;  rbf: exp(-gamma ||a - b||^2), with
    ||a - b||^2 = ||a||^2 + ||b||^2 - 2 a.b (one matrix product; clipped at 0 against round-off).
    """
    K = A @ B.T
    if kernel == "linear":
        return K
    if kernel == "poly":
        K *= gamma
        K += coef0
        if float(degree).is_integer() and degree >= 1:  # repeated products beat a float pow
            base = K.copy()
            for _ in range(int(degree) - 1):
                K *= base
            return K
        return K**degree
    if kernel == "rbf":  # in place: these matrices are large, temporaries cost more than math
        K *= -2.0
        K += (A * A).sum(axis=1)[:, None]
        K += (B * B).sum(axis=1)[None, :]
        np.maximum(K, 0.0, out=K)
        K *= -gamma
        return np.exp(K, out=K)
    raise ValueError(f"kernel must be 'linear', 'poly' or 'rbf', got {kernel!r}")


def smo_solve(
    K: np.ndarray, y: np.ndarray, C: float, tol: float = 1e-3, max_iter: int = -1
) -> tuple[np.ndarray, float, int]:
    """Solve the binary soft-margin dual by SMO with libsvm's second-order working set.

    K: (n, n) kernel matrix, y: (n,) in {-1, +1}. Keeps the gradient G = Q a - 1. Each step:
      i = argmax_{t in I_up} -y_t G_t   (I_up: a_t can still move so that y_t a_t grows)
      j = argmin_{t in I_low, b_t > 0} -b_t^2 / a_t,  b_t = -y_i G_i + y_t G_t,
          a_t = K_ii + K_tt - 2 K_it  (the largest guaranteed decrease of the objective),
    then solves the two-variable problem exactly, clips to the box [0, C], updates G with two
    columns of Q. Stops when max_{I_up} -yG - min_{I_low} -yG < tol (the KKT gap).
    Returns (alpha (n,), rho, iterations); f(x) = sum a_i y_i K(x_i, x) - rho.
    """
    n = len(y)
    y = y.astype(float)
    QD = np.diag(K).copy()
    minus_2K = -2.0 * K  # so the curvature row a_t = K_ii + K_tt - 2 K_it costs two adds
    alpha = np.zeros(n)
    myG = y.copy()  # -y * G, with G = -1 at a = 0; Q_it = y_i y_t K_it lets us skip Q itself
    up, low = y > 0, y < 0  # at a = 0 only y=+1 can go up and only y=-1 can go down
    up_pen = np.where(up, 0.0, -np.inf)  # 0 inside the set, -inf outside: masks with one add
    low_pen = np.where(low, 0.0, -np.inf)
    limit = max_iter if max_iter > 0 else 10_000_000
    it = 0
    while it < limit:
        v = myG + up_pen
        i = n - 1 - int(v[::-1].argmax())  # libsvm keeps the last index among ties
        b = v[i] - myG + low_pen  # b_t over I_low, -inf elsewhere
        if b.max() < tol:  # the KKT gap m(a) - M(a); also stops when no b_t > 0 is left
            break
        curv = minus_2K[i] + QD
        curv += QD[i]
        np.maximum(curv, TAU, out=curv)
        np.maximum(b, 0.0, out=b)
        b *= b
        b /= curv  # b_t^2 / a_t: the decrease of the objective if we step along (i, t)
        j = n - 1 - int(b[::-1].argmax())
        it += 1
        ai, aj, yi, yj = alpha[i], alpha[j], y[i], y[j]
        gi, gj = -yi * myG[i], -yj * myG[j]
        quad = max(QD[i] + QD[j] - 2.0 * K[i, j], TAU)
        if yi != yj:  # a_i - a_j stays fixed
            delta = (-gi - gj) / quad
            diff = ai - aj
            ni, nj = ai + delta, aj + delta
            if diff > 0 and nj < 0:
                ni, nj = diff, 0.0
            elif diff <= 0 and ni < 0:
                ni, nj = 0.0, -diff
            if diff > 0 and ni > C:
                ni, nj = C, C - diff
            elif diff <= 0 and nj > C:
                ni, nj = C + diff, C
        else:  # a_i + a_j stays fixed
            delta = (gi - gj) / quad
            total = ai + aj
            ni, nj = ai - delta, aj + delta
            if total > C and ni > C:
                ni, nj = C, total - C
            elif total <= C and nj < 0:
                ni, nj = total, 0.0
            if total > C and nj > C:
                ni, nj = total - C, C
            elif total <= C and ni < 0:
                ni, nj = 0.0, total
        # G += Q_i (ni - ai) + Q_j (nj - aj), written for -y * G
        myG -= K[i] * (yi * (ni - ai))
        myG -= K[j] * (yj * (nj - aj))
        alpha[i], alpha[j] = ni, nj
        for t in (i, j):  # only these two multipliers changed: refresh their set membership
            yt, at = y[t], alpha[t]
            up_pen[t] = 0.0 if (at < C if yt > 0 else at > 0) else -np.inf
            low_pen[t] = 0.0 if (at > 0 if yt > 0 else at < C) else -np.inf
    else:
        warnings.warn(
            f"SMO stopped after max_iter={limit} steps before reaching tol={tol}",
            ConvergenceWarning,
            stacklevel=2,
        )
    return alpha, _rho(alpha, y, -y * myG, C), it


def pair_kernel(
    K: np.ndarray, edges: np.ndarray, a: int, b: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Kernel block of classes a and b from the class-sorted K (class c owns rows
    edges[c]:edges[c + 1]): a's samples first, then b's -> (n_a + n_b, n_a + n_b), written
    into the top-left corner of out when given. Four contiguous copies, no fancy indexing."""
    sa, sb = slice(edges[a], edges[a + 1]), slice(edges[b], edges[b + 1])
    na = sa.stop - sa.start
    n = na + sb.stop - sb.start
    Kab = np.empty((n, n)) if out is None else out[:n, :n]
    Kab[:na, :na], Kab[:na, na:] = K[sa, sa], K[sa, sb]
    Kab[na:, :na], Kab[na:, na:] = K[sb, sa], K[sb, sb]
    return Kab


def _rho(alpha: np.ndarray, y: np.ndarray, G: np.ndarray, C: float) -> float:
    """Offset rho from the KKT conditions: the mean of y_i G_i over free multipliers
    (0 < a_i < C); with none free, the midpoint of the interval the bounded ones allow."""
    yG = y * G
    free = (alpha > 0) & (alpha < C)
    if free.any():
        return float(yG[free].mean())
    at_c, at_0 = alpha >= C, alpha <= 0
    upper = (at_c & (y < 0)) | (at_0 & (y > 0))  # these bound rho from above
    ub = yG[upper].min() if upper.any() else np.inf
    lb = yG[~upper].max() if (~upper).any() else -np.inf
    return float((ub + lb) / 2)


class SVC(ClassifierMixin, BaseEstimator):
    """Kernel SVM classifier solved by SMO; one-vs-one for more than two classes (like SVC).

    gamma: float, or "scale" = 1 / (n_features * X.var()), or "auto" = 1 / n_features.
    Fitted: classes_, support_ (indices, grouped by class), support_vectors_ (n_SV, d),
    n_support_ (per class), dual_coef_ (n_classes - 1, n_SV) holding y_i a_i in libsvm's
    one-vs-one layout, intercept_ (one -rho per pair), n_iter_ (per pair), gamma_.
    """

    def __init__(
        self,
        C: float = 1.0,
        kernel: str = "rbf",
        degree: int = 3,
        gamma: float | str = "scale",
        coef0: float = 0.0,
        tol: float = 1e-3,
        max_iter: int = -1,
        decision_function_shape: str = "ovr",
    ):
        self.C = C
        self.kernel = kernel
        self.degree = degree
        self.gamma = gamma
        self.coef0 = coef0
        self.tol = tol
        self.max_iter = max_iter
        self.decision_function_shape = decision_function_shape

    def _kernel(self, A: np.ndarray, B: np.ndarray) -> np.ndarray:
        """k(A, B) with this model's kernel and hyper-parameters -> (len(A), len(B))."""
        return kernel_matrix(A, B, self.kernel, self.gamma_, self.degree, self.coef0)

    def fit(self, X, y) -> SVC:
        """Solve one dual per pair of classes (class a as +1, class b as -1) on one shared
        kernel matrix, then gather every sample that is a support vector in any pair."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if self.C <= 0:
            raise ValueError(f"C must be positive, got {self.C}")
        self.classes_, yi = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        if k < 2:
            raise ValueError("SVC needs samples of at least two classes; got one class")
        if self.gamma == "scale":
            var = X.var()
            self.gamma_ = 1.0 / (X.shape[1] * var) if var > 0 else 1.0
        elif self.gamma == "auto":
            self.gamma_ = 1.0 / X.shape[1]
        else:
            self.gamma_ = float(self.gamma)
        # Sort by class once: every pair's kernel is then four contiguous blocks of one matrix.
        order = np.argsort(yi, kind="stable")
        K = self._kernel(X[order], X[order])
        edges = np.searchsorted(yi[order], np.arange(k + 1))
        coef = np.zeros((k - 1, len(X)))  # row layout of libsvm's dual_coef_
        is_sv = np.zeros(len(X), dtype=bool)
        pairs = list(combinations(range(k), 2))
        solved = self._solve_pairs(K, edges, pairs)
        for (a, b), (alpha, _, _) in zip(pairs, solved):
            na = edges[a + 1] - edges[a]
            idx = np.r_[order[edges[a] : edges[a + 1]], order[edges[b] : edges[b + 1]]]
            coef[b - 1, idx[:na]] = alpha[:na]  # a's coefficients sit in row b - 1
            coef[a, idx[na:]] = -alpha[na:]  # b's coefficients sit in row a
            is_sv[idx[alpha > 0]] = True
        rho = [r for _, r, _ in solved]
        iters = [n_it for _, _, n_it in solved]
        members = [np.sort(order[edges[c] : edges[c + 1]]) for c in range(k)]
        self.support_ = np.concatenate([m[is_sv[m]] for m in members])
        self.n_support_ = np.array([is_sv[m].sum() for m in members], dtype=np.int32)
        self.support_vectors_ = X[self.support_]
        self._dual_coef = coef[:, self.support_]
        self._intercept = -np.asarray(rho)
        self.n_iter_ = np.asarray(iters)
        # sklearn flips the binary problem so that positive scores mean classes_[1].
        flip = -1.0 if k == 2 else 1.0
        self.dual_coef_, self.intercept_ = flip * self._dual_coef, flip * self._intercept
        return self

    def _solve_pairs(self, K: np.ndarray, edges: np.ndarray, pairs: list) -> list[tuple]:
        """smo_solve on every pair (a, b) -> [(alpha, rho, iterations)], in the order of pairs.

        K is sorted by class (class c owns rows edges[c]:edges[c + 1]); pair (a, b) solves on
        the block of classes a and b, class a as +1 and class b as -1 (libsvm's convention).
        """
        out = []
        for a, b in pairs:
            Kab = pair_kernel(K, edges, a, b)
            sign = np.r_[np.ones(edges[a + 1] - edges[a]), -np.ones(edges[b + 1] - edges[b])]
            out.append(smo_solve(Kab, sign, self.C, self.tol, self.max_iter))
        return out

    def _ovo_scores(self, X: np.ndarray) -> np.ndarray:
        """(n, n_pairs) scores of each one-vs-one machine; positive votes for the first class."""
        Kx = self._kernel(X, self.support_vectors_)
        bounds = np.concatenate([[0], np.cumsum(self.n_support_)])
        k = len(self.classes_)
        cols = []
        for p, (a, b) in enumerate(combinations(range(k), 2)):
            sa, sb = slice(bounds[a], bounds[a + 1]), slice(bounds[b], bounds[b + 1])
            cols.append(
                Kx[:, sa] @ self._dual_coef[b - 1, sa]
                + Kx[:, sb] @ self._dual_coef[a, sb]
                + self._intercept[p]
            )
        return np.column_stack(cols)

    def decision_function(self, X) -> np.ndarray:
        """Binary: (n,) scores, positive for classes_[1]. Multi-class: (n, n_pairs) for
        "ovo", or (n, n_classes) votes plus a squashed confidence for "ovr" (as SVC)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        dec = self._ovo_scores(X)
        k = len(self.classes_)
        if k == 2:
            return -dec[:, 0]
        if self.decision_function_shape == "ovo":
            return dec
        votes, conf = np.zeros((len(X), k)), np.zeros((len(X), k))
        for p, (a, b) in enumerate(combinations(range(k), 2)):
            votes[:, a] += dec[:, p] > 0
            votes[:, b] += dec[:, p] <= 0
            conf[:, a] += dec[:, p]
            conf[:, b] -= dec[:, p]
        return votes + conf / (3 * (np.abs(conf) + 1))  # confidence never overturns a vote

    def predict(self, X) -> np.ndarray:
        """Majority vote of the one-vs-one machines; ties go to the lower class index."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        dec = self._ovo_scores(X)
        votes = np.zeros((len(X), len(self.classes_)), dtype=int)
        for p, (a, b) in enumerate(combinations(range(len(self.classes_)), 2)):
            votes[:, a] += dec[:, p] > 0
            votes[:, b] += dec[:, p] <= 0
        return self.classes_[np.argmax(votes, axis=1)]


class PegasosSVC(ClassifierMixin, BaseEstimator):
    """Linear SVM trained by mini-batch Pegasos on lambda/2 ||w||^2 + mean hinge loss.

    One-vs-rest: every class gets its own column of W, all updated on the same mini-batch.
    Step t uses eta_t = 1 / (lambda t) and the sub-gradient of the hinge on the samples with
    margin y (x.w + b) < 1; w is then projected onto the ball ||w|| <= 1/sqrt(lambda) (where
    the optimum lies). The bias is the weight of a constant feature 1, so it is regularised
    too: an unregularised bias with Pegasos's huge early steps 1/(lambda t) never settles. With average=True the returned weights are
    the mean of the iterates over the second half of training, which removes most SGD noise.
    Fitted: classes_, coef_ (n_classes or 1, d), intercept_, n_iter_ (steps).
    """

    def __init__(
        self,
        lam: float = 1e-3,
        n_epochs: int = 30,
        batch_size: int = 32,
        fit_intercept: bool = True,
        average: bool = True,
        random_state: int | None = 0,
    ):
        self.lam = lam
        self.n_epochs = n_epochs
        self.batch_size = batch_size
        self.fit_intercept = fit_intercept
        self.average = average
        self.random_state = random_state

    def fit(self, X, y) -> PegasosSVC:
        """Shuffle each epoch (seeded), take Pegasos steps on mini-batches, average the tail."""
        X, y = validate_data(self, X, y, dtype=np.float64)
        check_classification_targets(y)
        if self.lam <= 0:
            raise ValueError(f"lam must be positive, got {self.lam}")
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError("PegasosSVC needs samples of at least two classes; got one class")
        n, d = X.shape
        # +1/-1 targets: one column for binary (classes_[1] positive), else one per class.
        onehot = np.eye(len(self.classes_))[yi]
        Y = 2.0 * (onehot[:, 1:] if len(self.classes_) == 2 else onehot) - 1.0
        W, b = np.zeros((d, Y.shape[1])), np.zeros(Y.shape[1])
        W_avg, b_avg, n_avg = np.zeros_like(W), np.zeros_like(b), 0
        rng = np.random.default_rng(self.random_state)
        steps_per_epoch = -(-n // self.batch_size)
        total, t = self.n_epochs * steps_per_epoch, 0
        radius = 1.0 / np.sqrt(self.lam)
        for _ in range(self.n_epochs):
            order = rng.permutation(n)
            for start in range(0, n, self.batch_size):
                t += 1
                batch = order[start : start + self.batch_size]
                Xb, Yb = X[batch], Y[batch]
                violated = (Yb * (Xb @ W + b) < 1.0) * Yb  # y_i where the margin is broken
                eta = 1.0 / (self.lam * t)
                shrink, step = 1.0 - eta * self.lam, eta / len(batch)
                W = shrink * W + step * (Xb.T @ violated)
                if self.fit_intercept:  # b is the weight of a constant feature 1, shrunk alike
                    b = shrink * b + step * violated.sum(axis=0)
                scale = np.minimum(
                    1.0, radius / np.maximum(np.sqrt((W * W).sum(0) + b * b), 1e-300)
                )
                W, b = W * scale, b * scale
                if self.average and t > total // 2:
                    n_avg += 1
                    W_avg += (W - W_avg) / n_avg  # running mean of the iterates
                    b_avg += (b - b_avg) / n_avg
        if self.average and n_avg:
            W, b = W_avg, b_avg
        self.coef_, self.intercept_, self.n_iter_ = W.T.copy(), b.copy(), t
        return self

    def decision_function(self, X) -> np.ndarray:
        """x.w + b: (n,) for two classes (positive means classes_[1]), else (n, n_classes)."""
        check_is_fitted(self)
        X = validate_data(self, X, dtype=np.float64, reset=False)
        scores = X @ self.coef_.T + self.intercept_
        return scores[:, 0] if scores.shape[1] == 1 else scores

    def predict(self, X) -> np.ndarray:
        """The sign for two classes, else the class with the largest one-vs-rest score."""
        scores = self.decision_function(X)
        if scores.ndim == 1:
            return self.classes_[(scores > 0).astype(int)]
        return self.classes_[np.argmax(scores, axis=1)]
