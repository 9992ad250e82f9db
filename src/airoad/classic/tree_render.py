"""Render a fitted decision tree as text (the layout of sklearn's ``export_text``) or as a figure.

Both functions only read the flat arrays of ``model.tree_`` (children_left, children_right,
feature, threshold, value, impurity, n_node_samples), so they draw our trees and
scikit-learn's alike. ``value`` may be (n_nodes, n_values) (ours) or (n_nodes, 1, n_values)
(sklearn's); a node is a leaf when its ``children_left`` is -1.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def _values(model: Any) -> np.ndarray:
    """Node values as (n_nodes, n_values): class proportions, or the mean for a regressor."""
    tree = model.tree_
    return np.asarray(tree.value).reshape(len(tree.children_left), -1)


def export_text(
    model: Any,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    decimals: int = 2,
) -> str:
    """The tree's rules, one line per branch, indented by depth, e.g. for Iris::

        |--- petal width (cm) <= 0.80
        |   |--- class: 0
        |--- petal width (cm) >  0.80
        ...

    A classifier's leaf shows ``class: <name>`` (its majority class, named from class_names or
    model.classes_); a regressor's leaf shows ``value: [<mean>]``. Thresholds use `decimals`.
    """
    tree = model.tree_
    values = _values(model)
    is_classifier = hasattr(model, "classes_")
    if is_classifier and class_names is None:
        class_names = list(model.classes_)
    names = (
        feature_names
        if feature_names is not None
        else [f"feature_{i}" for i in range(model.n_features_in_)]
    )
    lines: list[str] = []

    def visit(node: int, depth: int) -> None:
        indent = "|   " * (depth - 1) + "|---"
        if tree.children_left[node] == -1:
            if is_classifier:
                lines.append(f"{indent} class: {class_names[int(np.argmax(values[node]))]}")
            else:
                lines.append(f"{indent} value: [{values[node][0]:.{decimals}f}]")
            return
        name, thr = names[tree.feature[node]], f"{tree.threshold[node]:.{decimals}f}"
        lines.append(f"{indent} {name} <= {thr}")
        visit(tree.children_left[node], depth + 1)
        lines.append(f"{indent} {name} >  {thr}")
        visit(tree.children_right[node], depth + 1)

    visit(0, 1)
    return "\n".join(lines) + "\n"


def node_positions(model: Any) -> tuple[np.ndarray, np.ndarray]:
    """(x, depth) of every node for drawing: leaves sit at x = 0, 1, 2, ... from left to right and
    a parent sits midway between its two children. Returns two (n_nodes,) float arrays."""
    tree = model.tree_
    n = len(tree.children_left)
    x, depth = np.zeros(n), np.zeros(n)
    next_leaf = [0.0]

    def place(node: int, level: int) -> None:
        depth[node] = level
        left, right = tree.children_left[node], tree.children_right[node]
        if left == -1:
            x[node] = next_leaf[0]
            next_leaf[0] += 1.0
            return
        place(left, level + 1)
        place(right, level + 1)
        x[node] = (x[left] + x[right]) / 2.0

    place(0, 0)
    return x, depth


def node_label(
    model: Any,
    node: int,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    decimals: int = 2,
) -> str:
    """The text in a node's box: its rule (if any), impurity, samples, value, majority class."""
    tree = model.tree_
    values = _values(model)
    lines = []
    if tree.children_left[node] != -1:
        f = tree.feature[node]
        name = feature_names[f] if feature_names is not None else f"x[{f}]"
        lines.append(f"{name} <= {tree.threshold[node]:.{decimals}f}")
    lines.append(f"impurity = {tree.impurity[node]:.3f}")
    lines.append(f"samples = {int(tree.n_node_samples[node])}")
    value = ", ".join(f"{v:.{decimals}f}" for v in values[node])
    lines.append(f"value = [{value}]")
    if hasattr(model, "classes_"):
        names = class_names if class_names is not None else list(model.classes_)
        lines.append(f"class = {names[int(np.argmax(values[node]))]}")
    return "\n".join(lines)


def plot_tree(
    model: Any,
    feature_names: Sequence[str] | None = None,
    class_names: Sequence[str] | None = None,
    ax: Any = None,
    fontsize: int = 7,
) -> list:
    """Draw the tree on a matplotlib Axes: one box per node (node_label), an arrow per edge,
    leaves coloured by their majority class. Returns the list of box annotations, one per node,
    in node-id order."""
    import matplotlib.pyplot as plt

    ax = plt.gca() if ax is None else ax
    tree = model.tree_
    x, depth = node_positions(model)
    values = _values(model)
    colours = plt.get_cmap("tab10")
    boxes = []
    for node in range(len(x)):
        leaf = tree.children_left[node] == -1
        face = (1.0, 1.0, 1.0)
        if leaf and hasattr(model, "classes_"):  # a pale (but opaque) tint of the class colour
            face = tuple(
                1.0 - 0.35 * (1.0 - c) for c in colours(int(np.argmax(values[node])) % 10)[:3]
            )
        label = node_label(model, node, feature_names, class_names)
        boxes.append(
            ax.annotate(
                label,
                (x[node], -depth[node]),
                ha="center",
                va="center",
                fontsize=fontsize,
                zorder=3,
                bbox=dict(boxstyle="round", fc=face),
            )
        )
        if not leaf:
            for child in (tree.children_left[node], tree.children_right[node]):
                ax.annotate(
                    "",
                    (x[child], -depth[child]),
                    (x[node], -depth[node]),
                    zorder=1,
                    arrowprops=dict(arrowstyle="-|>", color="grey", lw=0.8),
                )
    ax.set_xlim(x.min() - 0.6, x.max() + 0.6)
    ax.set_ylim(-depth.max() - 0.6, 0.6)
    ax.set_axis_off()
    return boxes
