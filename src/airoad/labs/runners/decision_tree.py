"""Runner for decision-tree: our CART trees beside scikit-learn's on Iris, Wine, breast cancer
and diabetes.

Accuracy is averaged over repeated stratified splits; sklearn breaks tied splits at random
(its random_state), so its accuracy is also averaged over a few seeds. The Iris tree is walked
node by node against sklearn's: every node either has the same split or a different split of
exactly the same quality (a tie)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from airoad.classic import decision_tree as ref
from airoad.classic import tree_render
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = ("iris", "wine", "breast-cancer")
    criteria: tuple[str, ...] = ("gini", "entropy")
    n_splits: int = 50  # repeated stratified train/test splits per dataset
    sklearn_seeds: int = 10  # sklearn random_states averaged per split (they break ties)
    test_size: float = 0.3
    max_depths: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 8, 10)
    regression_depth: int = 4  # depth of the diabetes regression tree
    seed: int = 0


QUICK = {"n_splits": 3, "sklearn_seeds": 2, "max_depths": (1, 2, 4)}


def _xy(name: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    frame = load(name)
    features = [c for c in frame.columns if c != "target"]
    return frame[features].to_numpy(np.float64), frame["target"].to_numpy(), features


def _split_cost(tree, node: int) -> float:
    """Weighted child impurity w_L * imp_L + w_R * imp_R of a node's split, read from the arrays."""
    w, imp = tree.weighted_n_node_samples, tree.impurity
    left, right = tree.children_left[node], tree.children_right[node]
    return float(w[left] * imp[left] + w[right] * imp[right])


def walk_trees(ours, theirs, X: np.ndarray) -> dict[str, int]:
    """Walk two trees fitted on X from the root; count nodes with the same split, with another
    split of equal quality (a tie), and with a split of different quality (should be none).
    After a tie the walk goes on only if both splits send the same rows left."""
    a, b = ours.tree_, theirs.tree_
    out = {"same_split": 0, "tied_other_split": 0, "different_quality": 0, "same_leaf": 0}
    stack = [(0, 0, np.ones(len(X), dtype=bool))]
    while stack:
        i, j, rows = stack.pop()
        if a.children_left[i] == -1 or b.children_left[j] == -1:
            out[
                "same_leaf" if a.children_left[i] == b.children_left[j] else "different_quality"
            ] += 1
            continue
        left_a = rows & (X[:, a.feature[i]] <= a.threshold[i])
        if a.feature[i] == b.feature[j] and np.isclose(a.threshold[i], b.threshold[j], rtol=1e-6):
            out["same_split"] += 1
        elif np.isclose(_split_cost(a, i), _split_cost(b, j), rtol=1e-9, atol=1e-12):
            out["tied_other_split"] += 1  # both trees are right to pick their split
            if not np.array_equal(left_a, rows & (X[:, b.feature[j]] <= b.threshold[j])):
                continue  # the subtrees grow from different rows: stop comparing here
        else:
            out["different_quality"] += 1
            continue
        stack += [
            (a.children_left[i], b.children_left[j], left_a),
            (a.children_right[i], b.children_right[j], rows & ~left_a),
        ]
    return out


def _accuracy(name: str, config: Config, ctx: RunContext) -> list[dict]:
    from sklearn import tree as sk
    from sklearn.model_selection import train_test_split

    X, y, _ = _xy(name)
    rows = []
    for criterion in config.criteria:
        ours, theirs, t_ours, t_sk = [], [], [], []
        for split in ctx.track(range(config.n_splits), f"{name} {criterion}"):
            Xtr, Xte, ytr, yte = train_test_split(
                X, y, test_size=config.test_size, stratify=y, random_state=config.seed + split
            )
            start = time.perf_counter()
            ours.append(
                np.mean(
                    ref.DecisionTreeClassifier(criterion=criterion).fit(Xtr, ytr).predict(Xte)
                    == yte
                )
            )
            t_ours.append(time.perf_counter() - start)
            accs = []
            for s in range(config.sklearn_seeds):
                start = time.perf_counter()
                accs.append(
                    np.mean(
                        sk.DecisionTreeClassifier(criterion=criterion, random_state=s)
                        .fit(Xtr, ytr)
                        .predict(Xte)
                        == yte
                    )
                )
                t_sk.append(time.perf_counter() - start)
            theirs.append(np.mean(accs))
        rows.append(
            {
                "dataset": name,
                "criterion": criterion,
                "ours_acc": float(np.mean(ours)),
                "sklearn_acc": float(np.mean(theirs)),
                "diff_points": 100 * float(np.mean(ours) - np.mean(theirs)),
                "ours_ms": 1000 * float(np.median(t_ours)),
                "sklearn_ms": 1000 * float(np.median(t_sk)),
            }
        )
    return rows


def _depth_curve(config: Config, ctx: RunContext) -> tuple[list[dict], object]:
    import matplotlib.pyplot as plt
    from sklearn import tree as sk
    from sklearn.model_selection import train_test_split

    fig, axes = plt.subplots(
        1, len(config.datasets), figsize=(4.2 * len(config.datasets), 3.6), squeeze=False
    )
    rows = []
    for ax, name in zip(axes[0], config.datasets):
        X, y, _ = _xy(name)
        Xtr, Xte, ytr, yte = train_test_split(
            X, y, test_size=config.test_size, stratify=y, random_state=config.seed
        )
        ours = [
            np.mean(ref.DecisionTreeClassifier(max_depth=d).fit(Xtr, ytr).predict(Xte) == yte)
            for d in config.max_depths
        ]
        theirs = [
            np.mean(
                sk.DecisionTreeClassifier(max_depth=d, random_state=0).fit(Xtr, ytr).predict(Xte)
                == yte
            )
            for d in config.max_depths
        ]
        rows += [
            {"dataset": name, "max_depth": d, "ours_acc": float(a), "sklearn_acc": float(b)}
            for d, a, b in zip(config.max_depths, ours, theirs)
        ]
        ax.plot(config.max_depths, ours, "o-", lw=3, alpha=0.5, label="ours")
        ax.plot(config.max_depths, theirs, "k.--", label="sklearn")
        ax.set(title=name, xlabel="max_depth", ylabel="test accuracy")
        ax.legend()
    return rows, ctx.save_figure(fig, "depth_curve")


def _iris_figures(ctx: RunContext) -> tuple[list, dict, str]:
    import matplotlib.pyplot as plt
    from sklearn import tree as sk

    data = load("iris")
    features = [c for c in data.columns if c != "target"]
    X, y = data[features].to_numpy(np.float64), data["target"].to_numpy()
    classes = ["setosa", "versicolor", "virginica"]
    ours = ref.DecisionTreeClassifier().fit(X, y)
    walk = walk_trees(ours, sk.DecisionTreeClassifier(random_state=0).fit(X, y), X)
    text = tree_render.export_text(ours, feature_names=features, class_names=classes)
    (ctx.out_dir / "iris_tree.txt").write_text(text)

    width = max(8.0, 1.7 * ours.get_n_leaves())
    fig, ax = plt.subplots(figsize=(width, 1.6 * (ours.get_depth() + 1)))
    tree_render.plot_tree(ours, feature_names=features, class_names=classes, ax=ax)
    figures = [ctx.save_figure(fig, "iris_tree")]

    # Two petal features: the regions each tree carves out of the plane.
    cols = [features.index("petal length (cm)"), features.index("petal width (cm)")]
    X2 = X[:, cols]
    xx, yy = np.meshgrid(np.linspace(0.5, 7.2, 300), np.linspace(0.0, 2.7, 300))
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    for ax, (label, model) in zip(
        axes,
        [
            ("ours", ref.DecisionTreeClassifier(max_depth=3)),
            ("sklearn", sk.DecisionTreeClassifier(max_depth=3, random_state=0)),
        ],
    ):
        model.fit(X2, y)
        ax.contourf(
            xx,
            yy,
            model.predict(grid).reshape(xx.shape),
            levels=[-0.5, 0.5, 1.5, 2.5],
            alpha=0.3,
            cmap="tab10",
        )
        ax.scatter(
            X2[:, 0], X2[:, 1], c=y, cmap="tab10", vmin=0, vmax=9, s=14, edgecolor="k", lw=0.3
        )
        ax.set(title=f"{label}: depth-3 tree on two petal features", xlabel="petal length (cm)")
    axes[0].set_ylabel("petal width (cm)")
    figures.append(ctx.save_figure(fig, "iris_regions"))
    return figures, walk, text


def _importances(ctx: RunContext) -> tuple[object, float]:
    import matplotlib.pyplot as plt
    from sklearn import tree as sk

    X, y, features = _xy("breast-cancer")
    ours = ref.DecisionTreeClassifier(max_depth=4).fit(X, y).feature_importances_
    theirs = sk.DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, y).feature_importances_
    top = np.argsort(-(ours + theirs))[:10]
    fig, ax = plt.subplots(figsize=(8, 4))
    pos = np.arange(len(top))
    ax.barh(pos - 0.2, ours[top], height=0.4, label="ours")
    ax.barh(pos + 0.2, theirs[top], height=0.4, label="sklearn")
    ax.set_yticks(pos, [features[i] for i in top], fontsize=8)
    ax.invert_yaxis()
    ax.set(
        xlabel="impurity decrease (normalised)",
        title="breast cancer, depth-4 tree: feature importances",
    )
    ax.legend()
    return ctx.save_figure(fig, "feature_importances"), float(np.abs(ours - theirs).max())


def _regression(config: Config) -> dict:
    from sklearn import tree as sk
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split

    X, y, _ = _xy("diabetes")
    Xtr, Xte, ytr, yte = train_test_split(
        X, y, test_size=config.test_size, random_state=config.seed
    )
    ours = ref.DecisionTreeRegressor(max_depth=config.regression_depth).fit(Xtr, ytr)
    theirs = sk.DecisionTreeRegressor(max_depth=config.regression_depth, random_state=0).fit(
        Xtr, ytr
    )
    same = np.isclose(ours.predict(Xte), theirs.predict(Xte), rtol=1e-9)
    return {
        "ours_r2": float(r2_score(yte, ours.predict(Xte))),
        "sklearn_r2": float(r2_score(yte, theirs.predict(Xte))),
        "same_train_predictions": bool(
            np.allclose(ours.predict(Xtr), theirs.predict(Xtr), rtol=1e-9)
        ),
        "test_points_predicted_alike": float(np.mean(same)),
    }


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    acc_rows = [row for name in config.datasets for row in _accuracy(name, config, ctx)]
    depth_rows, depth_fig = _depth_curve(config, ctx)
    iris_figs, walk, text = _iris_figures(ctx)
    imp_fig, imp_diff = _importances(ctx)
    reg = _regression(config)

    by = {(r["dataset"], r["criterion"]): r for r in acc_rows}
    key = by.get(("breast-cancer", "gini"), acc_rows[0])
    metrics = {
        "ours_acc": key["ours_acc"],
        "sklearn_acc": key["sklearn_acc"],
        "max_abs_diff_points": max(abs(r["diff_points"]) for r in acc_rows),
        "iris_same_split": walk["same_split"],
        "iris_tied_other_split": walk["tied_other_split"],
        "iris_different_quality": walk["different_quality"],
        "importance_max_abs_diff": imp_diff,
        **{f"diabetes_{k}": v for k, v in reg.items()},
    }
    for r in acc_rows:
        metrics[f"{r['dataset']}_{r['criterion']}_ours_acc"] = r["ours_acc"]
        metrics[f"{r['dataset']}_{r['criterion']}_sklearn_acc"] = r["sklearn_acc"]
    within = all(abs(r["diff_points"]) <= 1.0 for r in acc_rows)
    notes = [
        f"{key['dataset']} ({key['criterion']}): ours {key['ours_acc']:.4f} vs sklearn {key['sklearn_acc']:.4f} "
        f"mean test accuracy over {config.n_splits} splits.",
        (
            "Every dataset and criterion is within 1 point of sklearn."
            if within
            else "Some rows differ by more than 1 point: with few splits, tie-breaking noise dominates; raise n_splits."
        ),
        f"Iris, node by node: {walk['same_split']} identical splits, {walk['tied_other_split']} ties resolved "
        f"differently (same impurity), {walk['different_quality']} real differences.",
        f"Diabetes regression tree (depth {config.regression_depth}): R2 ours {reg['ours_r2']:.4f}, "
        f"sklearn {reg['sklearn_r2']:.4f}; same training predictions: {reg['same_train_predictions']}; "
        f"{100 * reg['test_points_predicted_alike']:.1f}% of test points predicted alike (sklearn rounds X "
        "to float32, which moves a point lying right at a threshold).",
        f"The Iris tree as text is in {ctx.out_dir / 'iris_tree.txt'}; its first rule: {text.splitlines()[0].strip()}",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="ours_acc",
        library_metric="sklearn_acc",
        tables={
            "accuracy": acc_rows,
            "depth_curve": depth_rows,
            "diabetes_regression": [reg],
            "iris_walk": [walk],
        },
        figures=[*iris_figs, depth_fig, imp_fig],
        notes=notes,
    )
