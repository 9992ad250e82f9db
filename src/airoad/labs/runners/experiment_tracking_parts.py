"""Parts of the experiment-tracking runner: the store, the two model families trained step by
step (boosting stages, SGD epochs), the registry round after each sweep, and the figures.

Every MLflow call goes through the lab's own ``MlflowClient`` (explicit URI, experiment
``experiment-tracking``); airoad's own logging of the whole run, which happens after ``run()``
returns, is left alone. Writes that must not interleave with another process on the shared
store (creating the schema and the experiment; registering and moving aliases) hold the same
file lock as ``airoad.labs.tracking``.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from airoad.home import file_lock, home, writable_dir
from airoad.labs import tracking
from airoad.labs.contract import RunContext
from airoad.labs.kit import figure, frame_xy, split
from airoad.production import experiment_tracking as ref
from airoad.production import model_registry as registry

EXPERIMENT = "experiment-tracking"
FAMILIES = ("gbm", "sgd")  # boosted trees first; a linear model then challenges them


@dataclass(frozen=True)
class Task:
    kind: str  # classification | regression
    metric: str  # the promotion metric, logged per step
    other: str  # a second metric logged beside it
    higher_is_better: bool


TASKS = {
    "wine": Task("classification", "val_accuracy", "val_log_loss", True),
    "diabetes": Task("regression", "val_rmse", "val_r2", False),
}


@dataclass
class Store:
    client: Any
    experiment_id: str


@contextmanager
def store_lock():
    """The lock airoad's own MLflow logging holds: one writer of schema and aliases at a time."""
    with file_lock(home() / "mlflow.db.lock"):
        yield


def open_store() -> Store:
    """The lab's client on the platform's SQLite store and its experiment (made if missing)."""
    writable_dir(home(), "AIROAD_HOME")
    # MlflowClient opens its tracking store in __init__, and a fresh store migrates its schema
    # there: two processes migrating one SQLite file at once collide (alembic CommandError)
    with store_lock():
        client = ref.make_client(tracking.tracking_uri())
        exp = ref.ensure_experiment(client, EXPERIMENT, tracking.artifact_root() / EXPERIMENT)
    return Store(client, exp)


def load(name: str, val_size: float, seed: int) -> tuple:
    """The registry frame split into scaled-free train / validation arrays (seeded)."""
    from airoad.data import load as load_frame

    X, y = frame_xy(load_frame(name))
    return split(X, y, val_size, seed, stratify=TASKS[name].kind == "classification")


def _scores(task: Task, model: Any, X: np.ndarray, y: np.ndarray, staged: bool) -> dict:
    """The two validation metrics after every step (boosting stage) or for the current model."""
    from sklearn.metrics import accuracy_score, log_loss, r2_score, root_mean_squared_error

    if task.kind == "classification":
        probs = list(model.staged_predict_proba(X)) if staged else [model.predict_proba(X)]
        acc = [accuracy_score(y, model.classes_[p.argmax(1)]) for p in probs]
        return {
            task.metric: acc,
            task.other: [log_loss(y, p, labels=model.classes_) for p in probs],
        }
    preds = list(model.staged_predict(X)) if staged else [model.predict(X)]
    return {task.metric: [root_mean_squared_error(y, p) for p in preds],
            task.other: [r2_score(y, p) for p in preds]}  # fmt: skip


def train(family: str, value: float, task: Task, data: tuple, config: Any) -> tuple[Any, dict]:
    """One trial: the fitted model and its per-step validation history."""
    from sklearn import ensemble, linear_model
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    Xtr, Xva, ytr, yva = data
    if family == "gbm":
        cls = ensemble.GradientBoostingClassifier if task.kind == "classification" else (
            ensemble.GradientBoostingRegressor)  # fmt: skip
        model = cls(max_depth=int(value), n_estimators=config.n_estimators, subsample=0.8,
                    learning_rate=config.learning_rate, random_state=config.seed)  # fmt: skip
        return model.fit(Xtr, ytr), _scores(task, model, Xva, yva, staged=True)
    scaler = StandardScaler().fit(Xtr)
    A, B = scaler.transform(Xtr), scaler.transform(Xva)
    if task.kind == "classification":
        sgd, extra = linear_model.SGDClassifier(loss="log_loss", alpha=value,
                                                random_state=config.seed), {"classes": np.unique(ytr)}  # fmt: skip
    else:
        sgd, extra = linear_model.SGDRegressor(alpha=value, random_state=config.seed), {}
    history: dict[str, list] = {task.metric: [], task.other: []}
    for _ in range(config.epochs):  # one partial_fit = one pass over the training rows
        sgd.partial_fit(A, ytr, **extra)
        for key, vals in _scores(task, sgd, B, yva, staged=False).items():
            history[key] += vals
    return make_pipeline(scaler, sgd), history


def trials(family: str, name: str, data: tuple, config: Any) -> list[ref.Trial]:
    """The sweep of one family: a trial per depth (gbm) or per L2 strength alpha (sgd)."""
    key, values = ("max_depth", config.depths) if family == "gbm" else ("alpha", config.alphas)
    task, out = TASKS[name], []
    for value in values:
        model, history = train(family, value, task, data, config)
        params = {"model": family, key: value, "dataset": name, "val_size": config.val_size}
        params |= {"n_estimators": config.n_estimators, "learning_rate": config.learning_rate} if (
            family == "gbm") else {"epochs": config.epochs}  # fmt: skip
        out.append(ref.Trial(params, history, model, _curve(history[task.metric], task.metric)))
    return out


def _curve(values: list, metric: str) -> Any:
    """A small learning-curve figure for the run's artifacts (no pyplot state to close)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 3))
    ax = fig.add_subplot()
    ax.plot(values)
    ax.set(xlabel="step", ylabel=metric)
    fig.tight_layout()
    return fig


def registry_round(store: Store, name: str, family: str, parent: str, config: Any) -> dict:
    """Register the sweep's best child (found by a query) as the challenger, then apply the rule."""
    task, client = TASKS[name], store.client
    best = ref.best_runs(client, [store.experiment_id], task.metric, max_results=1,
                         higher_is_better=task.higher_is_better,
                         filter_string=f"tags.`{ref.PARENT_TAG}` = '{parent}'")[0]  # fmt: skip
    model_name = f"{EXPERIMENT}-{name}"
    margin = config.accuracy_margin if task.higher_is_better else config.rmse_margin
    with store_lock():  # no other run may move this model's aliases in between
        version = registry.register(client, model_name, best.info.run_id,
                               tags={"val_seed": str(config.seed), "family": family})  # fmt: skip
        registry.set_alias(client, model_name, "challenger", version)
        decision = registry.promote(client, model_name, task.metric, margin=margin,
                               higher_is_better=task.higher_is_better)  # fmt: skip
    decision.pop("challenger")  # the version just registered
    setting = best.data.params.get("max_depth") or best.data.params.get("alpha")
    return {"dataset": name, "family": family, "setting": setting, "version": version,
            **decision, "margin": margin}  # fmt: skip


def run_table(store: Store, session: str) -> list[dict]:
    """Every child run of this session, queried back from the store, best first per dataset."""
    rows = []
    for name, task in TASKS.items():
        query = f"tags.`airoad.session` = '{session}' and params.dataset = '{name}'"
        for r in ref.best_runs(client := store.client, [store.experiment_id], task.metric,
                               higher_is_better=task.higher_is_better, filter_string=query,
                               max_results=1000):  # fmt: skip
            p = r.data.params
            rows.append({"dataset": name, "model": p["model"],
                         "setting": p.get("max_depth") or p.get("alpha"),
                         "metric": task.metric, "value": r.data.metrics[task.metric],
                         "steps": len(client.get_metric_history(r.info.run_id, task.metric)),
                         "run_id": r.info.run_id})  # fmt: skip
    return rows


def reproduce(store: Store, name: str, data: tuple, rows: list[dict], config: Any) -> dict:
    """Train the best sgd run of ``name`` again with the same seed; compare the logged curves."""
    task, client = TASKS[name], store.client
    first = next(r for r in rows if r["dataset"] == name and r["model"] == "sgd")
    _, history = train("sgd", float(first["setting"]), task, data, config)
    rerun = ref.start_run(client, store.experiment_id, f"{name}-rerun",
                          {"model": "sgd", "alpha": first["setting"], "dataset": name},
                          seed=config.seed, tags={"reproduces": first["run_id"]})  # fmt: skip
    ref.log_history(client, rerun, history)
    client.set_terminated(rerun)
    a, b = (np.array([m.value for m in sorted(client.get_metric_history(i, task.metric),
                                                key=lambda m: m.step)])
            for i in (first["run_id"], rerun))  # fmt: skip
    diff = float(np.max(np.abs(a - b))) if a.shape == b.shape else float("inf")
    return {"rerun_max_diff": diff, "reproduced": "identical to" if diff == 0 else "different from"}


def curves_figure(store: Store, rows: list[dict], datasets: tuple, ctx: RunContext) -> None:
    """Per dataset and family, the promotion metric per step of each child, read from MLflow."""
    with figure(ctx, "sweep_curves", len(datasets), 2, figsize=(10, 3.3 * len(datasets)),
                squeeze=False) as (_, axes):  # fmt: skip
        for i, name in enumerate(datasets):
            for j, family in enumerate(FAMILIES):
                ax = axes[i, j]
                for r in (r for r in rows if r["dataset"] == name and r["model"] == family):
                    hist = sorted(store.client.get_metric_history(r["run_id"], r["metric"]),
                                  key=lambda m: m.step)  # fmt: skip
                    ax.plot([m.step for m in hist], [m.value for m in hist],
                            label=f"{'depth' if family == 'gbm' else 'alpha'} {r['setting']}")  # fmt: skip
                step = "boosting stage" if family == "gbm" else "epoch"
                ax.set(title=f"{name}: {family}", xlabel=step, ylabel=TASKS[name].metric)
                ax.legend(fontsize=7)


def registry_figure(decisions: list[dict], ctx: RunContext) -> None:
    """Each registered version's metric beside the champion it faced, and the verdict."""
    with figure(ctx, "registry", 1, len({d["dataset"] for d in decisions}), figsize=(9, 3.3),
                squeeze=False) as (_, axes):  # fmt: skip
        for ax, name in zip(axes[0], dict.fromkeys(d["dataset"] for d in decisions), strict=True):
            rows = [d for d in decisions if d["dataset"] == name]
            labels = [f"v{d['version']} {d['family']}" for d in rows]
            colors = ["tab:green" if d["promoted"] else "tab:gray" for d in rows]
            values = [d["challenger_metric"] for d in rows]
            bars = ax.bar(labels, values, color=colors)
            ax.bar_label(bars, fmt="%.3f", fontsize=8)
            faced = [d["champion_metric"] for d in rows if d["champion_metric"] is not None]
            for k, d in enumerate(rows):
                if d["champion_metric"] is not None:
                    ax.hlines(d["champion_metric"], k - 0.4, k + 0.4, colors="k", linestyles="--")
            low, high = min(values + faced), max(values + faced)
            pad = 0.5 * (high - low) + 0.02 * abs(high) + 1e-9  # zoom in: the gaps are small
            ax.set_ylim(low - pad, high + pad)
            ax.set(title=f"{name}: green = promoted, dashed = champion faced",
                   ylabel=TASKS[name].metric)  # fmt: skip
            ax.title.set_fontsize(9)
