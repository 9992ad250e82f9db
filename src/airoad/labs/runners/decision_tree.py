"""Runner for decision-tree: our CART trees beside scikit-learn's on Iris, Wine, breast cancer
and diabetes.

Accuracy is averaged over repeated stratified splits; sklearn breaks tied splits at random
(its random_state), so its accuracy is also averaged over a few seeds. The Iris tree is walked
node by node against sklearn's: every node either has the same split or a different split of
exactly the same quality (a tie)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.classic import decision_tree as ref
from airoad.classic import tree_render
from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, frame_xy, param, render_notes, split, timed

CLASSIFICATION = ("iris", "wine", "breast-cancer")


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = param(CLASSIFICATION, choices=CLASSIFICATION)
    criteria: tuple[str, ...] = param(("gini", "entropy"), choices=("gini", "entropy"))
    n_splits: int = param(50, ge=1, le=1000)  # repeated stratified train/test splits per dataset
    sklearn_seeds: int = param(10, ge=1, le=100)  # sklearn random_states per split (ties)
    test_size: float = param(0.3, ge=0.05, le=0.5)
    max_depths: tuple[int, ...] = param((1, 2, 3, 4, 5, 6, 8, 10), ge=1, le=100)
    regression_depth: int = param(4, ge=1, le=50)  # depth of the diabetes regression tree
    seed: int = param(0, ge=0)


QUICK = {"n_splits": 3, "sklearn_seeds": 2, "max_depths": (1, 2, 4)}

IRIS_CLASSES = ["setosa", "versicolor", "virginica"]
PETALS = ("petal length (cm)", "petal width (cm)")

NOTES = (
    "{key_dataset} ({key_criterion}): ours {ours_acc:.4f} vs sklearn {sklearn_acc:.4f} mean test "
    "accuracy over {n_splits} splits.",
    "{rows_within_one_point} of {accuracy_rows} dataset/criterion rows are within 1 point of "
    "sklearn (largest gap {max_abs_diff_points:.2f} points); with few splits, tie-breaking noise "
    "dominates: raise n_splits.",
    "Iris, node by node: {iris_same_split} identical splits, {iris_tied_other_split} ties resolved "
    "differently (same impurity), {iris_different_quality} real differences.",
    "Diabetes regression tree (depth {regression_depth}): R2 ours {diabetes_ours_r2:.4f}, sklearn "
    "{diabetes_sklearn_r2:.4f}; same training predictions: {diabetes_same_train_predictions}; "
    "{diabetes_test_points_predicted_alike:.1%} of test points predicted alike (sklearn rounds X to float32, "
    "which moves a point lying right at a threshold).",
    "The Iris tree as text is in {run_dir}/iris_tree.txt; its first rule: {iris_first_rule}",
)


def _sk(kind: str = "DecisionTreeClassifier", **params):
    from sklearn import tree

    return getattr(tree, kind)(**params)


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
            same = a.children_left[i] == b.children_left[j]
            out["same_leaf" if same else "different_quality"] += 1
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


def _test_accuracy(model, data: list) -> tuple[float, float]:
    """(test accuracy, fit + predict seconds) of a model on a (Xtr, Xte, ytr, yte) split."""
    Xtr, Xte, ytr, yte = data
    predicted, seconds = timed(lambda: model.fit(Xtr, ytr).predict(Xte))
    return float(np.mean(predicted == yte)), seconds


def _accuracy(name: str, config: Config, ctx: RunContext) -> list[dict]:
    """Mean test accuracy over repeated splits, per criterion; sklearn averaged over seeds."""
    X, y = frame_xy(load(name))
    rows = []
    for criterion in config.criteria:
        ours, theirs, t_ours, t_sk = [], [], [], []
        for k in ctx.track(range(config.n_splits), f"{name} {criterion}"):
            data = split(X, y, config.test_size, config.seed + k)
            acc, seconds = _test_accuracy(ref.DecisionTreeClassifier(criterion=criterion), data)
            ours.append(acc)
            t_ours.append(seconds)
            accs = []
            for s in range(config.sklearn_seeds):
                acc, seconds = _test_accuracy(_sk(criterion=criterion, random_state=s), data)
                accs.append(acc)
                t_sk.append(seconds)
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


def _accuracy_metrics(rows: list[dict]) -> dict:
    """The headline (breast cancer, gini, if run), the largest gap and one pair per row."""
    by = {(r["dataset"], r["criterion"]): r for r in rows}
    key = by.get(("breast-cancer", "gini"), rows[0])
    metrics = {
        "ours_acc": key["ours_acc"],
        "sklearn_acc": key["sklearn_acc"],
        "key_dataset": key["dataset"],
        "key_criterion": key["criterion"],
        "max_abs_diff_points": max(abs(r["diff_points"]) for r in rows),
        "rows_within_one_point": sum(abs(r["diff_points"]) <= 1.0 for r in rows),
        "accuracy_rows": len(rows),
    }
    for r in rows:
        metrics[f"{r['dataset']}_{r['criterion']}_ours_acc"] = r["ours_acc"]
        metrics[f"{r['dataset']}_{r['criterion']}_sklearn_acc"] = r["sklearn_acc"]
    return metrics


def _depth_curve(config: Config) -> list[dict]:
    """Test accuracy against max_depth on one split of each dataset, ours and sklearn's."""
    rows = []
    for name in config.datasets:
        X, y = frame_xy(load(name))
        data = split(X, y, config.test_size, config.seed)
        for d in config.max_depths:
            ours = _test_accuracy(ref.DecisionTreeClassifier(max_depth=d), data)[0]
            theirs = _test_accuracy(_sk(max_depth=d, random_state=0), data)[0]
            rows.append({"dataset": name, "max_depth": d, "ours_acc": ours, "sklearn_acc": theirs})
    return rows


def _iris_tree(ctx: RunContext) -> tuple[dict, dict]:
    """Our full Iris tree walked against sklearn's, written as text and drawn (iris_tree.png)."""
    frame = load("iris")
    X, y = frame_xy(frame)
    features = [c for c in frame.columns if c != "target"]
    ours = ref.DecisionTreeClassifier().fit(X, y)
    walk = walk_trees(ours, _sk(random_state=0).fit(X, y), X)
    text = tree_render.export_text(ours, feature_names=features, class_names=IRIS_CLASSES)
    (ctx.out_dir / "iris_tree.txt").write_text(text)
    size = (max(8.0, 1.7 * ours.get_n_leaves()), 1.6 * (ours.get_depth() + 1))
    with figure(ctx, "iris_tree", figsize=size) as (_, ax):
        tree_render.plot_tree(ours, feature_names=features, class_names=IRIS_CLASSES, ax=ax)
    metrics = {
        f"iris_{k}": walk[k] for k in ("same_split", "tied_other_split", "different_quality")
    }
    return metrics | {"iris_first_rule": text.splitlines()[0].strip()}, walk


def _iris_regions_figure(ctx: RunContext) -> None:
    """Two petal features: the regions a depth-3 tree carves out of the plane, ours and sklearn's."""
    X, y = frame_xy(load("iris"), columns=PETALS)
    xx, yy = np.meshgrid(np.linspace(0.5, 7.2, 300), np.linspace(0.0, 2.7, 300))
    grid = np.column_stack([xx.ravel(), yy.ravel()])
    models = [
        ("ours", ref.DecisionTreeClassifier(max_depth=3)),
        ("sklearn", _sk(max_depth=3, random_state=0)),
    ]
    with figure(ctx, "iris_regions", 1, 2, figsize=(10, 4), sharey=True) as (_, axes):
        for ax, (label, model) in zip(axes, models):
            regions = model.fit(X, y).predict(grid).reshape(xx.shape)
            ax.contourf(xx, yy, regions, levels=[-0.5, 0.5, 1.5, 2.5], alpha=0.3, cmap="tab10")
            ax.scatter(*X.T, c=y, cmap="tab10", vmin=0, vmax=9, s=14, edgecolor="k", lw=0.3)
            ax.set(title=f"{label}: depth-3 tree on two petal features", xlabel=PETALS[0])
        axes[0].set_ylabel(PETALS[1])


def _depth_figure(rows: list[dict], config: Config, ctx: RunContext) -> None:
    n = len(config.datasets)
    with figure(ctx, "depth_curve", 1, n, figsize=(4.2 * n, 3.6), squeeze=False) as (_, axes):
        for ax, name in zip(axes[0], config.datasets):
            sub = [r for r in rows if r["dataset"] == name]
            depths = [r["max_depth"] for r in sub]
            ax.plot(depths, [r["ours_acc"] for r in sub], "o-", lw=3, alpha=0.5, label="ours")
            ax.plot(depths, [r["sklearn_acc"] for r in sub], "k.--", label="sklearn")
            ax.set(title=name, xlabel="max_depth", ylabel="test accuracy")
            ax.legend()


def _importances(ctx: RunContext) -> dict:
    """Feature importances of a depth-4 breast-cancer tree, ours beside sklearn's (a figure)."""
    frame = load("breast-cancer")
    X, y = frame_xy(frame)
    features = [c for c in frame.columns if c != "target"]
    ours = ref.DecisionTreeClassifier(max_depth=4).fit(X, y).feature_importances_
    theirs = _sk(max_depth=4, random_state=0).fit(X, y).feature_importances_
    top = np.argsort(-(ours + theirs))[:10]
    pos = np.arange(len(top))
    with figure(ctx, "feature_importances", figsize=(8, 4)) as (_, ax):
        ax.barh(pos - 0.2, ours[top], height=0.4, label="ours")
        ax.barh(pos + 0.2, theirs[top], height=0.4, label="sklearn")
        ax.set_yticks(pos, [features[i] for i in top], fontsize=8)
        ax.invert_yaxis()
        ax.set(
            xlabel="impurity decrease (normalised)",
            title="breast cancer, depth-4 tree: feature importances",
        )
        ax.legend()
    return {"importance_max_abs_diff": float(np.abs(ours - theirs).max())}


def _regression(config: Config) -> dict:
    """A diabetes regression tree of `regression_depth`, ours beside sklearn's."""
    from sklearn.metrics import r2_score

    X, y = frame_xy(load("diabetes"))
    Xtr, Xte, ytr, yte = split(X, y, config.test_size, config.seed, stratify=False)
    ours = ref.DecisionTreeRegressor(max_depth=config.regression_depth).fit(Xtr, ytr)
    theirs = _sk("DecisionTreeRegressor", max_depth=config.regression_depth, random_state=0)
    theirs.fit(Xtr, ytr)
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
    acc_rows = [row for name in config.datasets for row in _accuracy(name, config, ctx)]
    depth_rows = _depth_curve(config)
    reg = _regression(config)
    metrics = _accuracy_metrics(acc_rows) | {f"diabetes_{k}": v for k, v in reg.items()}

    iris_metrics, walk = _iris_tree(ctx)
    _iris_regions_figure(ctx)
    _depth_figure(depth_rows, config, ctx)
    metrics |= iris_metrics | _importances(ctx)

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
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, "run_dir": ctx.out_dir}),
    )
