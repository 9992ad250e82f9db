"""Grader for the naive-bayes lab: Gaussian NB on wine and iris, multinomial NB on fine-food
review counts, fitted attributes and probabilities checked against scikit-learn's."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse, special
from sklearn import naive_bayes
from sklearn.datasets import load_iris, load_wine
from sklearn.feature_extraction.text import CountVectorizer

from airoad.data import load

REFERENCE = "airoad.classic.naive_bayes"
FAST = settings(max_examples=15, deadline=None)


@pytest.fixture(scope="module")
def reviews():
    """Word counts of 1500 training and 500 test reviews (sparse), labels 'great'/'other'."""
    train, test = load("fine-food")
    train, test = train.iloc[:1500], test.iloc[:500]
    vec = CountVectorizer(min_df=2)
    return (
        vec.fit_transform(train["review"]),
        vec.transform(test["review"]),
        train["score"].to_numpy(),
        test["score"].to_numpy(),
    )


# ---------------------------------------------------------------- shared helpers


@FAST
@given(seed=st.integers(0, 10_000), offset=st.sampled_from([0.0, -800.0, -5000.0]))
def test_log_normalize_is_a_stable_log_softmax(impl, seed, offset):
    """log_normalize(jll) equals scipy's log_softmax, even when every jll is near -5000."""
    jll = np.random.default_rng(seed).normal(0, 20, size=(5, 3)) + offset
    got = np.asarray(impl.log_normalize(jll))
    assert got.shape == jll.shape, f"log_normalize returned {got.shape}, expected {jll.shape}"
    np.testing.assert_allclose(
        got,
        special.log_softmax(jll, axis=1),
        rtol=1e-10,
        atol=1e-10,
        err_msg="subtract the row max before exponentiating (logsumexp)",
    )


def test_one_hot(impl):
    """one_hot([2, 0, 2], 3) is the 3x3 indicator matrix."""
    np.testing.assert_array_equal(
        impl.one_hot(np.array([2, 0, 2]), 3), [[0, 0, 1], [1, 0, 0], [0, 0, 1]]
    )


# ---------------------------------------------------------------- Gaussian


@pytest.mark.parametrize("loader", [load_wine, load_iris], ids=["wine", "iris"])
def test_gaussian_parameters_match_sklearn(impl, loader):
    """theta_, var_ (with epsilon_), class_count_ and class_prior_ equal GaussianNB's."""
    X, y = loader(return_X_y=True)
    ours, theirs = impl.GaussianNB().fit(X, y), naive_bayes.GaussianNB().fit(X, y)
    assert np.shape(ours.theta_) == theirs.theta_.shape, (
        f"theta_ is {np.shape(ours.theta_)}, expected (K, d)"
    )
    for name in ("theta_", "var_", "class_count_", "class_prior_", "epsilon_"):
        np.testing.assert_allclose(
            getattr(ours, name),
            getattr(theirs, name),
            rtol=1e-10,
            err_msg=f"{name} differs from sklearn's",
        )


@pytest.mark.parametrize("loader", [load_wine, load_iris], ids=["wine", "iris"])
def test_gaussian_probabilities_match_sklearn(impl, loader):
    """predict_joint_log_proba, predict_proba and predict equal GaussianNB's."""
    X, y = loader(return_X_y=True)
    ours, theirs = (
        impl.GaussianNB().fit(X[::2], y[::2]),
        naive_bayes.GaussianNB().fit(X[::2], y[::2]),
    )
    Q = X[1::2]
    jll = np.asarray(ours.predict_joint_log_proba(Q))
    assert jll.shape == (len(Q), 3), f"joint log-likelihood is {jll.shape}, expected (n, n_classes)"
    np.testing.assert_allclose(jll, theirs.predict_joint_log_proba(Q), rtol=1e-10, atol=1e-8)
    np.testing.assert_allclose(ours.predict_proba(Q), theirs.predict_proba(Q), atol=1e-12)
    np.testing.assert_allclose(
        ours.predict_log_proba(Q), theirs.predict_log_proba(Q), rtol=1e-9, atol=1e-9
    )
    np.testing.assert_array_equal(ours.predict(Q), theirs.predict(Q))


def test_var_smoothing_handles_a_constant_feature(impl):
    """A feature constant within a class gives finite probabilities, as in sklearn."""
    X, y = load_iris(return_X_y=True)
    X = np.column_stack([X, np.where(y == 0, 1.0, np.arange(len(y)) % 7)])  # constant in class 0
    for smoothing in (1e-9, 1e-2):
        ours = impl.GaussianNB(var_smoothing=smoothing).fit(X, y)
        theirs = naive_bayes.GaussianNB(var_smoothing=smoothing).fit(X, y)
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            P = np.asarray(ours.predict_proba(X))
        assert np.all(np.isfinite(P)), (
            "probabilities must stay finite: add epsilon_ to every variance"
        )
        np.testing.assert_allclose(P, theirs.predict_proba(X), atol=1e-9)


def test_gaussian_priors(impl):
    """Given priors replace the class frequencies and shift the posterior like sklearn's."""
    X, y = load_wine(return_X_y=True)
    priors = [0.6, 0.3, 0.1]
    ours = impl.GaussianNB(priors=priors).fit(X, y)
    np.testing.assert_allclose(ours.class_prior_, priors)
    theirs = naive_bayes.GaussianNB(priors=priors).fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-12)
    with pytest.raises(ValueError):
        impl.GaussianNB(priors=[0.5, 0.6, 0.1]).fit(X, y)


@FAST
@given(seed=st.integers(0, 10_000), n_classes=st.integers(2, 4))
def test_gaussian_random_data_matches_sklearn(impl, seed, n_classes):
    """On random data with shifted class means, probabilities equal GaussianNB's."""
    rng = np.random.default_rng(seed)
    y = np.repeat(np.arange(n_classes), 15)
    X = rng.normal(size=(len(y), 4)) * rng.uniform(0.1, 10, 4) + y[:, None]
    ours, theirs = impl.GaussianNB().fit(X, y), naive_bayes.GaussianNB().fit(X, y)
    np.testing.assert_allclose(ours.predict_proba(X), theirs.predict_proba(X), atol=1e-10)


# ---------------------------------------------------------------- multinomial


def test_multinomial_parameters_match_sklearn(impl, reviews):
    """On review word counts: feature_count_, feature_log_prob_, class_log_prior_ equal MultinomialNB's."""
    Xtr, _, ytr, _ = reviews
    ours, theirs = impl.MultinomialNB().fit(Xtr, ytr), naive_bayes.MultinomialNB().fit(Xtr, ytr)
    assert list(ours.classes_) == ["great", "other"], f"classes_ = {ours.classes_}"
    assert np.shape(ours.feature_log_prob_) == theirs.feature_log_prob_.shape, (
        f"feature_log_prob_ is {np.shape(ours.feature_log_prob_)}, expected (K, n_words)"
    )
    for name in ("class_count_", "feature_count_", "feature_log_prob_", "class_log_prior_"):
        np.testing.assert_allclose(
            getattr(ours, name),
            getattr(theirs, name),
            rtol=1e-12,
            err_msg=f"{name} differs from sklearn's",
        )


def test_multinomial_accepts_alpha_zero_and_sparse_counts_like_sklearn(impl):
    """alpha=0 is allowed (no smoothing) and a sparse count matrix fits like sklearn's MultinomialNB."""
    X = np.random.default_rng(0).integers(1, 5, size=(30, 6)).astype(float)  # no zero counts
    y = np.arange(30) % 3
    ours = impl.MultinomialNB(alpha=0.0).fit(sparse.csr_matrix(X), y)
    theirs = naive_bayes.MultinomialNB(alpha=0.0, force_alpha=True).fit(X, y)
    np.testing.assert_allclose(ours.feature_log_prob_, theirs.feature_log_prob_, rtol=1e-12)
    tags, sk_tags = ours.__sklearn_tags__(), theirs.__sklearn_tags__()
    assert tags.input_tags.sparse == sk_tags.input_tags.sparse, "tag: accepts sparse input"
    assert tags.input_tags.positive_only == sk_tags.input_tags.positive_only, "tag: counts >= 0"


@pytest.mark.parametrize("alpha", [1.0, 0.1])
def test_multinomial_probabilities_match_sklearn(impl, reviews, alpha):
    """predict_proba and predict on test reviews equal MultinomialNB's (alpha = 1 and 0.1)."""
    Xtr, Xte, ytr, yte = reviews
    ours = impl.MultinomialNB(alpha=alpha).fit(Xtr, ytr)
    theirs = naive_bayes.MultinomialNB(alpha=alpha).fit(Xtr, ytr)
    P = np.asarray(ours.predict_proba(Xte))
    assert P.shape == (Xte.shape[0], 2), f"predict_proba returned {P.shape}, expected (n, 2)"
    np.testing.assert_allclose(P, theirs.predict_proba(Xte), atol=1e-10)
    np.testing.assert_allclose(
        ours.predict_joint_log_proba(Xte), theirs.predict_joint_log_proba(Xte), rtol=1e-10
    )
    np.testing.assert_array_equal(ours.predict(Xte), theirs.predict(Xte))
    assert np.mean(ours.predict(Xte) == yte) > 0.75


def test_multinomial_dense_equals_sparse(impl, reviews):
    """A dense count matrix gives the same model and probabilities as the sparse one."""
    Xtr, Xte, ytr, _ = reviews
    sp = impl.MultinomialNB().fit(Xtr[:300], ytr[:300])
    dense = impl.MultinomialNB().fit(Xtr[:300].toarray(), ytr[:300])
    np.testing.assert_allclose(dense.feature_log_prob_, sp.feature_log_prob_, rtol=1e-12)
    np.testing.assert_allclose(
        dense.predict_proba(Xte[:50].toarray()), sp.predict_proba(Xte[:50]), atol=1e-12
    )


def test_long_documents_stay_finite(impl, reviews):
    """Counts x 1000 push the joint log-likelihood near -1e6; probabilities stay finite and sum to 1."""
    Xtr, Xte, ytr, _ = reviews
    model = impl.MultinomialNB().fit(Xtr, ytr)
    big = sparse.csr_matrix(Xte[:20] * 1000)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        P = np.asarray(model.predict_proba(big))
    assert np.all(np.isfinite(P)) and np.allclose(P.sum(1), 1.0), (
        "normalise with logsumexp, in log space"
    )
    np.testing.assert_allclose(
        P, naive_bayes.MultinomialNB().fit(Xtr, ytr).predict_proba(big), atol=1e-10
    )


def test_multinomial_priors(impl, reviews):
    """fit_prior=False means uniform priors; class_prior fixes them; both match sklearn."""
    Xtr, Xte, ytr, _ = reviews
    for kw in (dict(fit_prior=False), dict(class_prior=[0.2, 0.8])):
        ours = impl.MultinomialNB(**kw).fit(Xtr, ytr)
        theirs = naive_bayes.MultinomialNB(**kw).fit(Xtr, ytr)
        np.testing.assert_allclose(
            ours.class_log_prior_, theirs.class_log_prior_, rtol=1e-12, err_msg=str(kw)
        )
        np.testing.assert_allclose(ours.predict_proba(Xte), theirs.predict_proba(Xte), atol=1e-10)


def test_multinomial_rejects_negative_counts(impl):
    """Negative values are not counts: fit raises ValueError."""
    with pytest.raises(ValueError):
        impl.MultinomialNB().fit(np.array([[1.0, -1.0], [0.0, 2.0]]), np.array([0, 1]))


# ---------------------------------------------------------------- scikit-learn API


def test_gaussian_nb_follows_the_sklearn_api(impl):
    """GaussianNB works with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = load_wine(return_X_y=True)
    check_estimator_api(impl.GaussianNB(), X, y, grid={"var_smoothing": [1e-9, 1e-3]})


def test_multinomial_nb_follows_the_sklearn_api(impl, reviews):
    """MultinomialNB works with clone, a scaling Pipeline, cross_val_score and GridSearchCV."""
    from sklearn.preprocessing import MaxAbsScaler

    Xtr, _, ytr, _ = reviews
    X = Xtr[:400, :200].toarray()  # counts: a StandardScaler would make them negative
    check_estimator_api(
        impl.MultinomialNB(), X, ytr[:400], grid={"alpha": [0.5, 1.0]}, scaler=MaxAbsScaler()
    )
