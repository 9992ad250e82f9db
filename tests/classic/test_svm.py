"""Grader for the svm lab: SMO kernel SVM vs scikit-learn's SVC (libsvm) and Pegasos vs LinearSVC."""

from __future__ import annotations

import numpy as np
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import svm as sk_svm
from sklearn.datasets import load_breast_cancer, load_digits, load_iris, make_blobs
from sklearn.metrics.pairwise import linear_kernel, polynomial_kernel, rbf_kernel
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler
from sklearn.utils.multiclass import _ovr_decision_function

REFERENCE = "airoad.classic.svm"

KERNELS = [
    dict(kernel="rbf"),
    dict(kernel="linear", C=0.1),
    dict(kernel="poly", degree=2, coef0=1.0, C=0.5),
    dict(kernel="rbf", C=100.0, gamma=0.01),
]


@pytest.fixture(scope="module")
def cancer():
    X, y = load_breast_cancer(return_X_y=True)
    return StandardScaler().fit_transform(X)[:300], y[:300]


@pytest.fixture(scope="module")
def digits_small():
    X, y = load_digits(return_X_y=True)
    return X[:500], y[:500]


def _svc_pair(impl, X, y, **kw):
    ours = impl.SVC(decision_function_shape="ovo", **kw).fit(X, y)
    theirs = sk_svm.SVC(decision_function_shape="ovo", **kw).fit(X, y)
    return ours, theirs


def _sv_sets_close(ours, theirs) -> None:
    a, b = set(ours.support_.tolist()), set(theirs.support_.tolist())
    assert len(a ^ b) <= max(2, 0.02 * len(b)), (
        f"support vectors differ from SVC's: {len(a - b)} extra, {len(b - a)} missing of {len(b)}"
    )


def _dense_coef(model, n: int) -> np.ndarray:
    """dual_coef_ spread over all n training samples (0 for non-support vectors)."""
    out = np.zeros((model.dual_coef_.shape[0], n))
    out[:, model.support_] = model.dual_coef_
    return out


def test_kernel_matrix_matches_sklearn(impl):
    """kernel_matrix(A, B, kernel, gamma, degree, coef0) equals sklearn's linear/poly/rbf kernels."""
    rng = np.random.default_rng(0)
    A, B = rng.normal(size=(7, 4)), rng.normal(size=(5, 4))
    for name, ref in [
        ("linear", linear_kernel(A, B)),
        ("poly", polynomial_kernel(A, B, degree=3, gamma=0.3, coef0=1.5)),
        ("rbf", rbf_kernel(A, B, gamma=0.3)),
    ]:
        K = impl.kernel_matrix(A, B, name, gamma=0.3, degree=3, coef0=1.5)
        assert K.shape == (7, 5), f"kernel_matrix returned {K.shape}, expected (len(A), len(B))"
        np.testing.assert_allclose(K, ref, rtol=1e-10, atol=1e-12, err_msg=f"{name} kernel differs")


@pytest.mark.parametrize("degree", [0, 1, 2.5])
def test_poly_kernel_of_any_degree_matches_sklearn(impl, degree):
    """The poly kernel is (gamma A B^T + coef0)^degree for degree 0, 1 and 2.5 (closed form)."""
    rng = np.random.default_rng(1)
    A, B = rng.uniform(size=(6, 3)), rng.uniform(size=(4, 3))  # positive base for degree 2.5
    K = impl.kernel_matrix(A, B, "poly", gamma=0.5, degree=degree, coef0=1.0)
    ref = (0.5 * A @ B.T + 1.0) ** degree  # closed form: sklearn refuses degree < 1
    np.testing.assert_allclose(
        K, ref, rtol=1e-12, err_msg=f"poly kernel of degree {degree} differs"
    )


def test_smo_binary_solution_matches_libsvm(impl, cancer):
    """smo_solve on a binary problem gives SVC's support vectors, dual coefficients and offset."""
    X, y = cancer
    sign = np.where(y == 0, 1.0, -1.0)  # SVC's internal labels: first class is +1
    gamma = 1.0 / (X.shape[1] * X.var())
    K = impl.kernel_matrix(X, X, "rbf", gamma=gamma)
    alpha, rho, n_iter = impl.smo_solve(K, sign, C=1.0, tol=1e-3)
    assert alpha.shape == (len(X),), f"alpha has shape {alpha.shape}, expected (n_samples,)"
    assert np.all(alpha >= 0) and np.all(alpha <= 1.0), "every alpha must stay in the box [0, C]"
    assert abs(alpha @ sign) < 1e-8, "the constraint sum_i y_i alpha_i = 0 is broken"
    ref = sk_svm.SVC(kernel="rbf", gamma=gamma).fit(X, y)
    assert set(np.flatnonzero(alpha > 0)) == set(ref.support_), "support vectors differ from SVC's"
    np.testing.assert_allclose(
        -(alpha * sign)[ref.support_],
        ref.dual_coef_[0],
        atol=1e-3,
        err_msg="y_i alpha_i differ from SVC's dual_coef_",
    )
    assert rho == pytest.approx(ref.intercept_[0], abs=1e-3), (
        "rho differs from SVC's (binary sign flip)"
    )
    assert n_iter > 0


@pytest.mark.parametrize("kw", KERNELS, ids=lambda kw: kw["kernel"] + f"-C{kw.get('C', 1.0)}")
def test_binary_svc_matches_sklearn(impl, cancer, kw):
    """Binary SVC: decision_function within a few tol of SVC's, same support vectors and sign."""
    X, y = cancer
    ours, theirs = _svc_pair(impl, X, y, **kw)
    dec = ours.decision_function(X)
    assert dec.shape == (len(X),), f"binary decision_function returned {dec.shape}, expected (n,)"
    np.testing.assert_allclose(
        dec,
        theirs.decision_function(X),
        atol=5e-3,
        err_msg="decision values differ from SVC's by more than 5 * tol",
    )
    _sv_sets_close(ours, theirs)
    np.testing.assert_array_equal(ours.predict(X), theirs.predict(X))


@pytest.mark.parametrize("kw", KERNELS[:3], ids=lambda kw: kw["kernel"])
def test_multiclass_one_vs_one_matches_sklearn(impl, digits_small, kw):
    """Multi-class one-vs-one: n_support_, support_, dual_coef_, intercept_ and ovo scores as SVC."""
    X, y = digits_small
    ours, theirs = _svc_pair(impl, X, y, **kw)
    _sv_sets_close(ours, theirs)
    assert np.abs(ours.n_support_ - theirs.n_support_).max() <= 1, (
        f"n_support_ {ours.n_support_} vs SVC's {theirs.n_support_}"
    )
    assert ours.dual_coef_.shape == (9, len(ours.support_)), (
        f"dual_coef_ is {ours.dual_coef_.shape}, expected (n_classes - 1, n_SV)"
    )
    np.testing.assert_allclose(
        _dense_coef(ours, len(X)),
        _dense_coef(theirs, len(X)),
        atol=0.02 * kw.get("C", 1.0),
        err_msg="dual_coef_ layout or values differ from SVC's",
    )
    np.testing.assert_allclose(ours.intercept_, theirs.intercept_, atol=5e-3)
    dec = ours.decision_function(X[:100])
    assert dec.shape == (100, 45), f"ovo decision_function returned {dec.shape}, expected (n, 45)"
    np.testing.assert_allclose(dec, theirs.decision_function(X[:100]), atol=5e-3)


def test_ovr_decision_shape_and_gamma_scale(impl, digits_small):
    """gamma='scale' is 1 / (n_features * X.var()); the default ovr scores rank classes like SVC's."""
    X, y = digits_small
    ours = impl.SVC().fit(X, y)
    assert ours.gamma_ == pytest.approx(1.0 / (X.shape[1] * X.var()), rel=1e-12)
    dec = ours.decision_function(X[:50])
    assert dec.shape == (50, 10), (
        f"ovr decision_function returned {dec.shape}, expected (n, n_classes)"
    )
    ovo = ours.set_params(decision_function_shape="ovo").decision_function(X[:50])
    np.testing.assert_allclose(
        dec,
        _ovr_decision_function(ovo < 0, -ovo, 10),
        atol=1e-12,
        err_msg="ovr scores must be votes + sum of confidences / (3 (|sum| + 1))",
    )
    theirs = sk_svm.SVC().fit(X, y).decision_function(X[:50])
    np.testing.assert_array_equal(dec.argmax(axis=1), theirs.argmax(axis=1))


def test_accuracy_equals_svc_on_digits(impl):
    """Held-out accuracy on the full digits split equals SVC's (RBF, default C and gamma)."""
    X, y = load_digits(return_X_y=True)
    Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    ours = impl.SVC().fit(Xtr, ytr).score(Xte, yte)
    theirs = sk_svm.SVC().fit(Xtr, ytr).score(Xte, yte)
    assert ours == pytest.approx(theirs, abs=1e-12), f"accuracy {ours:.4f} vs SVC's {theirs:.4f}"
    assert ours > 0.98


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), C=st.sampled_from([0.1, 1.0, 10.0]))
def test_dual_objective_no_worse_than_libsvm(impl, seed, C):
    """On random 2-D blobs the SMO dual objective is within tol of libsvm's and the KKT box holds."""
    X, y = make_blobs(n_samples=60, centers=2, cluster_std=2.5, random_state=seed)
    sign = np.where(y == 0, 1.0, -1.0)
    K = impl.kernel_matrix(X, X, "linear")
    alpha, _, _ = impl.smo_solve(K, sign, C=C, tol=1e-4)
    assert np.all((alpha >= 0) & (alpha <= C)) and abs(alpha @ sign) < 1e-8

    def dual(a):
        v = a * sign
        return 0.5 * v @ K @ v - a.sum()

    ref = sk_svm.SVC(kernel="linear", C=C, tol=1e-4).fit(X, y)
    a_ref = np.zeros(len(X))
    a_ref[ref.support_] = np.abs(ref.dual_coef_[0])
    assert dual(alpha) <= dual(a_ref) + 1e-3 * max(1.0, abs(dual(a_ref))), (
        "SMO stopped short of the optimum"
    )


def test_pegasos_accuracy_close_to_linear_svc(impl, cancer):
    """Pegasos reaches LinearSVC(hinge)'s accuracy (within 2 points) and nearly its primal objective."""
    X, y = cancer
    lam = 1e-2
    ours = impl.PegasosSVC(lam=lam, random_state=0).fit(X, y)
    theirs = sk_svm.LinearSVC(C=1.0 / (lam * len(X)), loss="hinge", max_iter=50_000).fit(X, y)
    assert ours.coef_.shape == (1, X.shape[1]), (
        f"coef_ is {ours.coef_.shape}, expected (1, n_features)"
    )
    assert abs(ours.score(X, y) - theirs.score(X, y)) <= 0.02

    def objective(w, b):  # both regularise the bias as the weight of a constant feature
        margins = np.where(y == 1, 1.0, -1.0) * (X @ w + b)
        return lam / 2 * (w @ w + b * b) + np.maximum(0, 1 - margins).mean()

    ours_obj = objective(ours.coef_[0], ours.intercept_[0])
    assert ours_obj <= 1.05 * objective(theirs.coef_[0], theirs.intercept_[0]), (
        "Pegasos is far from the optimum"
    )


def test_pegasos_multiclass_and_seed(impl, digits_small):
    """One-vs-rest Pegasos on digits is within 3 points of LinearSVC; same seed -> same weights."""
    X, y = digits_small
    X = StandardScaler().fit_transform(X)
    a = impl.PegasosSVC(lam=1e-3, random_state=3).fit(X, y)
    assert a.coef_.shape == (10, 64) and a.decision_function(X).shape == (len(X), 10)
    np.testing.assert_array_equal(
        a.coef_, impl.PegasosSVC(lam=1e-3, random_state=3).fit(X, y).coef_
    )
    assert not np.allclose(a.coef_, impl.PegasosSVC(lam=1e-3, random_state=4).fit(X, y).coef_)
    Xte, yte = load_digits(return_X_y=True)
    scaler = StandardScaler().fit(load_digits().data[:500])
    Xte, yte = scaler.transform(Xte[500:]), yte[500:]
    ref = sk_svm.LinearSVC(C=1.0 / (1e-3 * len(X)), loss="hinge", max_iter=50_000).fit(X, y)
    assert a.score(Xte, yte) >= ref.score(Xte, yte) - 0.03


def test_estimator_api(impl):
    """SVC and PegasosSVC follow the scikit-learn estimator API (clone, Pipeline, GridSearchCV, NaN)."""
    X, y = load_iris(return_X_y=True)
    check_estimator_api(impl.SVC(), X, y, {"C": [0.5, 2.0]})
    check_estimator_api(impl.PegasosSVC(n_epochs=5), X, y, {"lam": [1e-3, 1e-2]})
    with pytest.raises(ValueError):
        impl.SVC().fit(X, np.zeros(len(X)))  # one class only
