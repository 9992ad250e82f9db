"""Grader for decision-tree: CART classifier and regressor checked node by node against
scikit-learn's trees, plus accuracy, sample weights, stopping rules and the estimator API."""

from __future__ import annotations

import numpy as np
import pytest
from classic_api_checks import check_estimator_api
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn import tree as sktree
from sklearn.datasets import load_breast_cancer, load_diabetes, load_iris, load_wine
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import train_test_split
from tree_testing import compare_node_by_node

REFERENCE = "airoad.classic.decision_tree"

FAST = settings(max_examples=15, deadline=None)


@pytest.fixture(scope="module")
def iris():
    return load_iris(return_X_y=True)


@pytest.mark.parametrize("criterion", ["gini", "entropy"])
def test_iris_tree_matches_sklearn_node_by_node(impl, iris, criterion):
    """On Iris every untied split (feature, threshold), node size, value and impurity equals sklearn's."""
    X, y = iris
    ours = impl.DecisionTreeClassifier(criterion=criterion).fit(X, y)
    theirs = sktree.DecisionTreeClassifier(criterion=criterion, random_state=0).fit(X, y)
    report = compare_node_by_node(ours, theirs, X, y, criterion)
    assert report["compared"] >= 5, f"too few untied nodes compared: {report}"
    assert len(ours.tree_.feature) == theirs.tree_.node_count, (
        "the Iris tree has a different number of nodes"
    )


@pytest.mark.parametrize(
    "loader, params",
    [
        (load_wine, dict(criterion="gini", max_depth=3)),
        (load_wine, dict(criterion="entropy", min_samples_leaf=4)),
        (load_breast_cancer, dict(criterion="gini", min_samples_split=20)),
        (load_breast_cancer, dict(criterion="entropy", max_depth=4, min_samples_leaf=3)),
    ],
)
def test_limited_trees_match_sklearn_node_by_node(impl, loader, params):
    """max_depth, min_samples_split and min_samples_leaf stop the same nodes as in sklearn's tree."""
    X, y = loader(return_X_y=True)
    ours = impl.DecisionTreeClassifier(**params).fit(X, y)
    theirs = sktree.DecisionTreeClassifier(**params, random_state=0).fit(X, y)
    report = compare_node_by_node(
        ours, theirs, X, y, params["criterion"], params.get("min_samples_leaf", 1)
    )
    assert report["compared"] >= 3, f"too few untied nodes compared: {report}"


def test_flat_arrays_are_consistent(impl, iris):
    """tree_ holds flat arrays: leaves have children -1 and feature -2, children split their parent's samples."""
    X, y = iris
    t = impl.DecisionTreeClassifier(max_depth=3).fit(X, y).tree_
    n = len(t.children_left)
    for name in (
        "children_left",
        "children_right",
        "feature",
        "threshold",
        "impurity",
        "n_node_samples",
    ):
        assert np.shape(getattr(t, name)) == (n,), (
            f"tree_.{name} must have shape (n_nodes,) = ({n},)"
        )
    assert np.shape(t.value) == (n, 3), (
        f"tree_.value has shape {np.shape(t.value)}, expected (n_nodes, n_classes)"
    )
    leaf = t.children_left == -1
    assert np.all(t.children_right[leaf] == -1) and np.all(t.feature[leaf] == -2), (
        "leaves: children -1, feature -2"
    )
    inner = np.flatnonzero(~leaf)
    np.testing.assert_array_equal(
        t.n_node_samples[t.children_left[inner]] + t.n_node_samples[t.children_right[inner]],
        t.n_node_samples[inner],
        err_msg="children must share out their parent's samples",
    )
    np.testing.assert_allclose(
        t.value.sum(axis=1), 1.0, err_msg="classifier values are class proportions"
    )
    assert t.n_node_samples[0] == len(y), "node 0 is the root and holds every sample"


@pytest.mark.parametrize("loader", [load_breast_cancer, load_wine])
def test_accuracy_within_one_point_of_sklearn(impl, loader):
    """Mean test accuracy over 10 random splits is within 1 point of sklearn's (averaged over its seeds)."""
    X, y = loader(return_X_y=True)
    ours, theirs = [], []
    for split in range(10):
        Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=split, stratify=y)
        ours.append(np.mean(impl.DecisionTreeClassifier().fit(Xtr, ytr).predict(Xte) == yte))
        # sklearn's ties are broken by random_state: average a few seeds for its expected accuracy
        theirs.append(
            np.mean(
                [
                    np.mean(
                        sktree.DecisionTreeClassifier(random_state=s).fit(Xtr, ytr).predict(Xte)
                        == yte
                    )
                    for s in range(5)
                ]
            )
        )
    assert abs(np.mean(ours) - np.mean(theirs)) <= 0.01, (
        f"mean accuracy {np.mean(ours):.4f} vs sklearn {np.mean(theirs):.4f}"
    )


@pytest.mark.parametrize("loader, split", [(load_breast_cancer, 3), (load_wine, 2)])
def test_predict_proba_equals_sklearn_on_untied_tree(impl, loader, split):
    """When no split is tied, predict_proba and predict on new data equal sklearn's."""
    X, y = loader(return_X_y=True)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.3, random_state=split, stratify=y)
    ours = impl.DecisionTreeClassifier(max_depth=2).fit(Xtr, ytr)
    theirs = sktree.DecisionTreeClassifier(max_depth=2, random_state=0).fit(Xtr, ytr)
    report = compare_node_by_node(ours, theirs, Xtr, ytr, "gini")
    assert report["tied"] == 0, f"this tree was chosen because it has no ties: {report}"
    proba = ours.predict_proba(Xte)
    k = len(np.unique(y))
    assert proba.shape == (len(Xte), k), (
        f"predict_proba returned {proba.shape}, expected (n_samples, n_classes)"
    )
    np.testing.assert_allclose(
        proba, theirs.predict_proba(Xte), atol=1e-12, err_msg="predict_proba differs"
    )
    np.testing.assert_array_equal(ours.predict(Xte), theirs.predict(Xte), err_msg="predict differs")


def test_string_labels_and_classes(impl, iris):
    """classes_ holds the sorted labels and predict returns labels, not codes."""
    X, y = iris
    names = np.array(["setosa", "versicolor", "virginica"])[y]
    model = impl.DecisionTreeClassifier(max_depth=2).fit(X, names)
    np.testing.assert_array_equal(model.classes_, ["setosa", "versicolor", "virginica"])
    assert set(model.predict(X)) <= set(names), "predict must return the original labels"


def test_integer_weights_equal_repeated_rows(impl):
    """sample_weight=2 on a row grows the same tree as that row written twice."""
    X, y = load_wine(return_X_y=True)
    w = np.random.default_rng(0).integers(1, 4, len(y))
    weighted = impl.DecisionTreeClassifier(max_depth=3).fit(X, y, sample_weight=w)
    repeated = impl.DecisionTreeClassifier(max_depth=3).fit(
        np.repeat(X, w, axis=0), np.repeat(y, w)
    )
    np.testing.assert_allclose(
        weighted.predict_proba(X),
        repeated.predict_proba(X),
        atol=1e-12,
        err_msg="weights must act like repeated rows",
    )
    theirs = sktree.DecisionTreeClassifier(max_depth=1, random_state=0).fit(X, y, sample_weight=w)
    stump = impl.DecisionTreeClassifier(max_depth=1).fit(X, y, sample_weight=w)
    np.testing.assert_allclose(
        stump.predict_proba(X),
        theirs.predict_proba(X),
        atol=1e-12,
        err_msg="a weighted stump differs from sklearn's",
    )


def test_regressor_matches_sklearn(impl):
    """DecisionTreeRegressor gives sklearn's predictions, depth, leaves and feature importances on diabetes."""
    X, y = load_diabetes(return_X_y=True)
    # sklearn stores X as float32: round it the same way so a test point cannot fall between
    # a float32 threshold and a float64 one.
    X = X.astype(np.float32).astype(np.float64)
    Xtr, Xte, ytr, _ = train_test_split(X, y, test_size=0.3, random_state=0)
    for params in (
        dict(max_depth=4),
        dict(min_samples_leaf=10),
        dict(max_depth=6, min_samples_split=30),
    ):
        ours = impl.DecisionTreeRegressor(**params).fit(Xtr, ytr)
        theirs = sktree.DecisionTreeRegressor(**params, random_state=0).fit(Xtr, ytr)
        pred = ours.predict(Xte)
        assert pred.shape == (len(Xte),), f"predict returned {pred.shape}, expected (n_samples,)"
        np.testing.assert_allclose(
            pred, theirs.predict(Xte), rtol=1e-9, err_msg=f"predictions differ for {params}"
        )
        np.testing.assert_allclose(
            ours.tree_.impurity[0],
            theirs.tree_.impurity[0],
            rtol=1e-9,
            err_msg="root impurity (variance of y) differs",
        )
        assert (
            ours.get_depth() == theirs.get_depth() and ours.get_n_leaves() == theirs.get_n_leaves()
        ), f"depth/leaves differ for {params}"
        np.testing.assert_allclose(
            ours.feature_importances_,
            theirs.feature_importances_,
            atol=1e-9,
            err_msg=f"feature_importances_ differ for {params}",
        )


@FAST
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(10, 80),
    d=st.integers(1, 5),
    max_depth=st.sampled_from([None, 1, 2, 4]),
    min_leaf=st.integers(1, 6),
)
def test_random_regression_trees_match_sklearn(impl, seed, n, d, max_depth, min_leaf):
    """On random data (no ties) the regressor fits exactly sklearn's tree for any depth / leaf size."""
    rng = np.random.default_rng(seed)
    X, y = rng.normal(size=(n, d)), rng.normal(size=n)
    ours = impl.DecisionTreeRegressor(max_depth=max_depth, min_samples_leaf=min_leaf).fit(X, y)
    theirs = sktree.DecisionTreeRegressor(
        max_depth=max_depth, min_samples_leaf=min_leaf, random_state=0
    ).fit(X, y)
    np.testing.assert_allclose(ours.predict(X), theirs.predict(X), rtol=1e-9, atol=1e-12)
    assert len(ours.tree_.feature) == theirs.tree_.node_count, "node count differs"
    leaves = ours.tree_.children_left == -1
    assert ours.tree_.n_node_samples[leaves].min() >= min_leaf, (
        "a leaf is smaller than min_samples_leaf"
    )


def test_apply_returns_leaves(impl, iris):
    """apply maps every row to the id of a leaf, and predict_proba is that leaf's value."""
    X, y = iris
    model = impl.DecisionTreeClassifier(max_depth=3).fit(X, y)
    leaves = model.apply(X)
    assert leaves.shape == (len(X),), f"apply returned {leaves.shape}, expected (n_samples,)"
    assert np.all(model.tree_.children_left[leaves] == -1), "apply must return leaf ids"
    np.testing.assert_allclose(model.predict_proba(X), model.tree_.value[leaves])
    np.testing.assert_array_equal(
        np.bincount(leaves, minlength=len(model.tree_.feature))[leaves],
        model.tree_.n_node_samples[leaves],
        err_msg="leaf sizes disagree with apply",
    )


def test_errors_are_clear(impl, iris):
    """Bad hyper-parameters, unfitted models and wrong feature counts raise clear errors."""
    X, y = iris
    with pytest.raises(ValueError):
        impl.DecisionTreeClassifier(criterion="mse").fit(X, y)
    with pytest.raises(ValueError):
        impl.DecisionTreeClassifier(max_depth=0).fit(X, y)
    with pytest.raises(NotFittedError):
        impl.DecisionTreeClassifier().predict(X)
    model = impl.DecisionTreeClassifier(max_depth=2).fit(X, y)
    with pytest.raises(ValueError):
        model.predict(X[:, :3])


def test_classifier_follows_sklearn_api(impl, iris):
    """DecisionTreeClassifier works with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = iris
    check_estimator_api(impl.DecisionTreeClassifier(max_depth=3), X, y, {"max_depth": [2, 3]})


def test_regressor_follows_sklearn_api(impl):
    """DecisionTreeRegressor works with clone, Pipeline, cross_val_score and GridSearchCV."""
    X, y = load_diabetes(return_X_y=True)
    check_estimator_api(
        impl.DecisionTreeRegressor(max_depth=3), X[:200], y[:200], {"min_samples_leaf": [1, 5]}
    )


def test_max_features_draws_per_node(impl):
    """max_features='sqrt' with a seed is reproducible and still learns (random forests rely on it)."""
    X, y = load_breast_cancer(return_X_y=True)
    a = impl.DecisionTreeClassifier(max_features="sqrt", random_state=3).fit(X, y)
    b = impl.DecisionTreeClassifier(max_features="sqrt", random_state=3).fit(X, y)
    np.testing.assert_array_equal(
        a.tree_.feature, b.tree_.feature, err_msg="same seed, different tree"
    )
    assert np.mean(a.predict(X) == y) == 1.0, "a fully grown tree must fit its training data"
    c = impl.DecisionTreeClassifier(max_features=1, random_state=4).fit(X, y)
    assert not np.array_equal(a.tree_.feature, c.tree_.feature), (
        "max_features must change the splits"
    )


@pytest.mark.parametrize("max_features", [None, "sqrt", "log2", 3, 7, 0.5, 0.01, 1.0])
def test_resolve_max_features_like_sklearn(impl, max_features):
    """resolve_max_features(v, 10) equals the max_features_ sklearn's tree resolves v to."""
    X, y = load_wine(return_X_y=True)
    X = X[:, :10]
    theirs = sktree.DecisionTreeClassifier(max_features=max_features, random_state=0).fit(X, y)
    got = impl.resolve_max_features(max_features, 10)
    assert got == theirs.max_features_, f"{max_features!r} -> {got}, sklearn {theirs.max_features_}"


@pytest.mark.parametrize("bad", [0, -1, 0.0, 1.5, "half"])
def test_resolve_max_features_rejects_what_sklearn_rejects(impl, bad):
    """resolve_max_features raises ValueError for values sklearn's tree refuses (0, 1.5, ...)."""
    X, y = load_iris(return_X_y=True)
    with pytest.raises(ValueError):
        sktree.DecisionTreeClassifier(max_features=bad).fit(X, y)
    with pytest.raises(ValueError):
        impl.resolve_max_features(bad, 4)


def test_sqrt_features_on_iris_tries_two_per_node(impl):
    """max_features='sqrt' on iris tries 2 of its 4 features per node: some seeds change the tree."""
    X, y = load_iris(return_X_y=True)
    full = impl.DecisionTreeClassifier(random_state=0).fit(X, y).tree_.feature
    trees = [
        impl.DecisionTreeClassifier(max_features="sqrt", random_state=s).fit(X, y).tree_.feature
        for s in range(6)
    ]
    assert any(not np.array_equal(t, full) for t in trees), (
        "with 2 features per node, no seed changed the tree: are all 4 features tried?"
    )
