"""Grader for decision-tree (rendering): export_text and plot_tree, checked on trees fitted by
scikit-learn so this part can be done before (or without) the tree itself."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
from sklearn import tree as sktree
from sklearn.datasets import load_diabetes, load_iris, load_wine

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

REFERENCE = "airoad.classic.tree_render"


@pytest.fixture(scope="module")
def iris_tree():
    data = load_iris()
    return sktree.DecisionTreeClassifier(random_state=0).fit(data.data, data.target), data


def test_export_text_matches_sklearn_on_iris(impl, iris_tree):
    """export_text prints sklearn's export_text layout, line for line, with feature names."""
    model, data = iris_tree
    ours = impl.export_text(model, feature_names=list(data.feature_names))
    theirs = sktree.export_text(model, feature_names=list(data.feature_names))
    assert ours == theirs, (
        f"export_text differs from sklearn's; ours:\n{ours}\nsklearn's:\n{theirs}"
    )


def test_export_text_class_names_and_defaults(impl):
    """Without feature names it uses feature_<i>; class_names replace the class labels at leaves."""
    data = load_wine()
    model = sktree.DecisionTreeClassifier(max_depth=3, random_state=0).fit(data.data, data.target)
    names = list(data.target_names)
    assert impl.export_text(model, class_names=names) == sktree.export_text(
        model, class_names=names
    )
    assert impl.export_text(model, decimals=4) == sktree.export_text(model, decimals=4), (
        "decimals is ignored"
    )


def test_export_text_regressor(impl):
    """A regressor's leaves print `value: [mean]`, as sklearn's export_text does."""
    X, y = load_diabetes(return_X_y=True)
    model = sktree.DecisionTreeRegressor(max_depth=3, random_state=0).fit(X, y)
    assert impl.export_text(model) == sktree.export_text(model)


def test_node_positions_place_leaves_left_to_right(impl, iris_tree):
    """Leaves get x = 0, 1, 2, ... in left-to-right order; a parent sits midway between its children."""
    model, _ = iris_tree
    t = model.tree_
    x, depth = impl.node_positions(model)
    assert np.shape(x) == np.shape(depth) == (t.node_count,), (
        "node_positions returns two (n_nodes,) arrays"
    )
    leaves = np.flatnonzero(t.children_left == -1)
    np.testing.assert_allclose(
        np.sort(x[leaves]), np.arange(len(leaves)), err_msg="leaves must sit at 0, 1, 2, ..."
    )
    inner = np.flatnonzero(t.children_left != -1)
    np.testing.assert_allclose(
        x[inner],
        (x[t.children_left[inner]] + x[t.children_right[inner]]) / 2,
        err_msg="a parent must sit midway between its children",
    )
    assert np.all(x[t.children_left[inner]] < x[t.children_right[inner]]), (
        "left child must be drawn left"
    )
    np.testing.assert_array_equal(
        depth[t.children_left[inner]], depth[inner] + 1, err_msg="depth of a child"
    )
    assert depth[0] == 0 and depth.max() == model.get_depth(), (
        "depth must count edges from the root"
    )


def test_node_label_shows_rule_and_counts(impl, iris_tree):
    """A node's label shows its rule with the feature name, its sample count and its class."""
    model, data = iris_tree
    t = model.tree_
    root = impl.node_label(
        model, 0, feature_names=list(data.feature_names), class_names=list(data.target_names)
    )
    assert f"{data.feature_names[t.feature[0]]} <= {t.threshold[0]:.2f}" in root, (
        f"root label lacks its rule: {root!r}"
    )
    assert "samples = 150" in root, f"root label lacks 'samples = 150': {root!r}"
    leaf = int(np.flatnonzero(t.children_left == -1)[0])
    text = impl.node_label(model, leaf, class_names=list(data.target_names))
    assert "<=" not in text, "a leaf has no rule"
    assert f"class = {data.target_names[np.argmax(t.value[leaf])]}" in text, (
        f"leaf label lacks its class: {text!r}"
    )


def test_plot_tree_draws_one_box_per_node(impl, iris_tree, tmp_path):
    """plot_tree returns one annotation per node (root first) and the figure saves to PNG."""
    model, data = iris_tree
    fig, ax = plt.subplots(figsize=(12, 7))
    boxes = impl.plot_tree(model, feature_names=list(data.feature_names), ax=ax)
    assert len(boxes) == model.tree_.node_count, (
        f"{len(boxes)} boxes for {model.tree_.node_count} nodes"
    )
    assert data.feature_names[model.tree_.feature[0]] in boxes[0].get_text(), (
        "first box must be the root's"
    )
    path = tmp_path / "tree.png"
    fig.savefig(path)
    plt.close(fig)
    assert path.stat().st_size > 5_000, "the saved figure looks empty"


def test_plot_tree_tints_leaves_by_majority_class_and_fits_the_axes(impl, iris_tree):
    """Leaves get one pale colour per majority class, split nodes stay white, all boxes in view."""
    model, _ = iris_tree
    fig, ax = plt.subplots()
    boxes = impl.plot_tree(model, ax=ax)
    t = model.tree_
    leaf = t.children_left == -1
    faces = [tuple(np.round(b.get_bbox_patch().get_facecolor()[:3], 6)) for b in boxes]
    assert all(faces[i] == (1.0, 1.0, 1.0) for i in np.flatnonzero(~leaf)), "split nodes: white"
    majority = t.value[:, 0, :].argmax(axis=1)
    colour_of = {}
    for i in np.flatnonzero(leaf):
        assert faces[i] != (1.0, 1.0, 1.0), f"leaf {i} is not tinted"
        assert min(faces[i]) >= 0.6, f"leaf {i} colour {faces[i]} is not a pale tint"
        assert colour_of.setdefault(majority[i], faces[i]) == faces[i], "one colour per class"
    assert len(set(colour_of.values())) == len(colour_of), "classes need different colours"
    assert all(0.0 <= c <= 1.0 for f in faces for c in f), f"colours outside [0, 1]: {faces}"
    spots = {tuple(b.xy) for b in boxes}
    arrows = [a for a in ax.texts if a not in boxes]
    assert len(arrows) == t.node_count - 1, f"{len(arrows)} arrows for {t.node_count - 1} edges"
    assert all(tuple(a.xy) in spots and tuple(a.xyann) in spots for a in arrows), (
        "every arrow must join two boxes"
    )
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    for b in boxes:
        bx, by = b.xy
        assert x0 < bx < x1 and y0 < by < y1, f"box at {(bx, by)} outside the axes"
    plt.close(fig)
