"""Runner for experiment-tracking: the learner's own MLflow code on wine and diabetes.

For each dataset two small sweeps are logged as nested runs (gradient-boosted trees over
``depths``, an SGD linear model over L2 strengths ``alphas``), with a validation metric per
step, a learning-curve figure and the model file as artifacts. After each sweep its best child,
found by a ``search_runs`` query, is registered as a new version, made ``challenger``, and
promoted to ``champion`` only if it beats the current champion by the margin. Finally one run
is trained again with the same seed and its logged curve compared with the original.

Everything goes to the experiment ``experiment-tracking`` in the SQLite store under
``$AIROAD_HOME`` through an explicit ``MlflowClient``; airoad's own ``airoad`` experiment, where
every run is logged after it finishes, is untouched.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, param, render_notes
from airoad.labs.runners import experiment_tracking_parts as parts
from airoad.production import experiment_tracking as ref
from airoad.production import model_registry as registry


@dataclass(frozen=True)
class Config:
    datasets: tuple[str, ...] = param(("wine", "diabetes"), choices=tuple(parts.TASKS))
    depths: tuple[int, ...] = param((1, 2, 3), ge=1, le=8)  # gbm sweep: tree depth
    alphas: tuple[float, ...] = param((1e-4, 1e-3, 1e-2, 1e-1), gt=0.0, le=10.0)  # sgd sweep
    n_estimators: int = param(200, ge=1, le=2_000)  # boosting stages = logged steps
    learning_rate: float = param(0.05, gt=0.0, le=1.0)  # boosting shrinkage
    epochs: int = param(50, ge=1, le=1_000)  # SGD passes = logged steps
    val_size: float = param(0.25, ge=0.1, le=0.5)
    accuracy_margin: float = param(0.01, ge=0.0, le=1.0)  # wine: promote if accuracy gains more
    rmse_margin: float = param(1.0, ge=0.0, le=100.0)  # diabetes: promote if RMSE drops more
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        unique = len(set(self.datasets)) == len(self.datasets)
        config_check(unique, "datasets", "must name each dataset once")


QUICK = {"depths": (1, 2), "alphas": (1e-3, 1e-1), "n_estimators": 30, "epochs": 10}

NOTES = (
    "Logged {n_runs} child runs in {n_sweeps} sweeps ({n_points} metric points, one per step) "
    "to the experiment '{experiment}' of {store}.",
    "Registry: {promotions} of {n_versions} new versions were promoted to champion; champions "
    "now: {champions}.",
    "Reproducibility: the best {rerun_dataset} SGD run, trained again with seed {seed}, logged a "
    "curve {reproduced} the original (largest difference {rerun_max_diff:.3g}).",
)


def run(config: Config, ctx: RunContext) -> LabResult:
    store = parts.open_store()
    session = {"airoad.session": uuid.uuid4().hex}  # scopes this run's queries in a shared store
    decisions, data = [], {}
    for name in ctx.track(config.datasets, "sweeps per dataset"):
        data[name] = parts.load(name, config.val_size, config.seed)
        for family in parts.FAMILIES:
            trials = parts.trials(family, name, data[name], config)
            parent, _ = ref.log_sweep(store.client, store.experiment_id, f"{name}-{family}",
                                      trials, seed=config.seed, tags=session)  # fmt: skip
            decisions.append(parts.registry_round(store, name, family, parent, config))
    rows = parts.run_table(store, session["airoad.session"])
    first = config.datasets[0]
    metrics = _summary(store, rows, decisions, config)
    metrics |= parts.reproduce(store, first, data[first], rows, config) | {"rerun_dataset": first}
    parts.curves_figure(store, rows, config.datasets, ctx)
    parts.registry_figure(decisions, ctx)
    return LabResult(
        metrics=metrics,
        key_metric=f"{first}_champion_metric",
        tables={"runs": rows, "registry": decisions},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )


def _summary(store: parts.Store, rows: list, decisions: list, config: Config) -> dict:
    """Counts of what was logged and each dataset's champion after the last round."""
    out = {
        "n_runs": len(rows),
        "n_sweeps": len(decisions),
        "n_points": sum(2 * r["steps"] for r in rows),  # two metrics per step
        "n_versions": len(decisions),
        "promotions": sum(d["promoted"] for d in decisions),
        "experiment": parts.EXPERIMENT,
        "store": store.client.tracking_uri,
    }
    champions = []
    for name in config.datasets:
        model = f"{parts.EXPERIMENT}-{name}"
        version = registry.alias_version(store.client, model, "champion")
        metric = parts.TASKS[name].metric
        out[f"{name}_champion_version"] = int(version.version)
        out[f"{name}_champion_metric"] = registry.version_metric(store.client, version, metric)
        champions.append(f"{model}@champion = v{version.version} ({metric} "
                         f"{out[f'{name}_champion_metric']:.3f})")  # fmt: skip
    out["champions"] = "; ".join(champions)
    return out
