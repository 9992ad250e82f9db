"""Runner for transfer-learning: pretrain a small CNN on MNIST digits, then learn Fashion-MNIST
from 1% of its training labels three ways — feature extraction (frozen backbone, new head),
fine-tuning (all weights, starting pretrained) and from scratch (all weights, random start) —
beside logistic regression (scikit-learn) on the raw pixels of the same labelled images."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes, timed
from airoad.neural import transfer_learning as ref

STRATEGIES = ("feature extraction", "fine-tuning", "from scratch")


@dataclass(frozen=True)
class Config:
    pretrain_images: int = param(0, ge=0, le=60_000)  # 0 = all 60000 MNIST training digits
    pretrain_epochs: int = param(1, ge=1, le=50)
    label_fraction: float = param(0.01, gt=0.0, le=1.0)  # of the 60000 Fashion-MNIST images
    epochs: int = param(30, ge=1, le=500)
    lr: float = param(1e-3, gt=0.0, le=1.0)
    batch_size: int = param(64, ge=1, le=60_000)
    width: int = param(16, ge=1, le=256)
    curve_images: int = param(1000, ge=1, le=10_000)  # test images scored after every epoch
    test_images: int = param(0, ge=0, le=10_000)  # 0 = all 10000 (MNIST and Fashion-MNIST)
    seed: int = param(0, ge=0)


QUICK = {
    "pretrain_images": 2000,
    "epochs": 3,
    "width": 8,
    "curve_images": 300,
    "test_images": 2000,
    "lr": 3e-3,
}

NOTES = (
    "Pretrained CNN: {mnist_test_accuracy:.3f} on MNIST test after {pretrain_epochs} epoch(s) on "
    "{pretrain_images} digits.",
    "With {n_labels} Fashion-MNIST labels: feature extraction {feature_extraction_accuracy:.3f}, "
    "fine-tuning {fine_tuning_accuracy:.3f}, from scratch {scratch_accuracy:.3f}, logistic "
    "regression on pixels {logreg_pixels_accuracy:.3f}; best CNN strategy: {best_strategy}.",
    "Starting from digit features {pretraining_effect} here: fine-tuning minus scratch = "
    "{fine_tuning_gain:+.3f}.",
)


def _pretrain_on_digits(config: Config, ctx: RunContext) -> tuple[ref.SmallCNN, dict]:
    """A SmallCNN trained on (a seeded subset of) the MNIST training digits, scored on its test set."""
    mnist = load("mnist")
    gen = torch.Generator().manual_seed(config.seed)
    n_pre = config.pretrain_images or len(mnist["y_train"])
    idx = torch.randperm(len(mnist["y_train"]), generator=gen)[:n_pre].numpy()
    X, y = ref.images_to_tensor(mnist["X_train"][idx]), torch.as_tensor(mnist["y_train"][idx])
    torch.manual_seed(config.seed)
    model = ref.SmallCNN(10, config.width)
    with ctx.step("pretraining on MNIST"):
        _, seconds = timed(
            ref.train_model, model, X, y, config.pretrain_epochs, config.lr, config.batch_size, gen
        )
    n_test = config.test_images or len(mnist["y_test"])
    acc = ref.accuracy(
        model,
        ref.images_to_tensor(mnist["X_test"][:n_test]),
        torch.as_tensor(mnist["y_test"][:n_test]),
    )
    return model, {
        "pretrain_images": n_pre,
        "mnist_test_accuracy": acc,
        "pretrain_seconds": seconds,
    }


def _few_labels(config: Config) -> dict:
    """The stratified labelled subset of Fashion-MNIST, the test set and its curve slice."""
    fashion = load("fashion-mnist")
    lab = ref.stratified_subset(fashion["y_train"], config.label_fraction, seed=config.seed)
    n_test = config.test_images or len(fashion["y_test"])
    X_test = ref.images_to_tensor(fashion["X_test"][:n_test])
    y_test = torch.as_tensor(fashion["y_test"][:n_test])
    return {
        "raw": (fashion["X_train"][lab], fashion["y_train"][lab]),
        "raw_test": (fashion["X_test"][:n_test], fashion["y_test"][:n_test]),
        "X": ref.images_to_tensor(fashion["X_train"][lab]),
        "y": torch.as_tensor(fashion["y_train"][lab]),
        "X_test": X_test,
        "y_test": y_test,
        "curve": (X_test[: config.curve_images], y_test[: config.curve_images]),
    }


def _build(strategy: str, pretrained: ref.SmallCNN, config: Config) -> ref.SmallCNN:
    """Which weights start where (pretrained or random) and which may move (frozen backbone)."""
    if strategy == "from scratch":
        torch.manual_seed(config.seed + 1)
        return ref.SmallCNN(10, config.width)
    model = ref.replace_head(copy.deepcopy(pretrained), 10, seed=config.seed + 1)
    if strategy == "feature extraction":
        ref.freeze(model.backbone)
    return model


def _train_strategy(strategy: str, pretrained, config: Config, data: dict) -> tuple[dict, tuple]:
    """One strategy on the few labels: its table row and its (accuracy, loss) curves."""
    model = _build(strategy, pretrained, config)
    X_curve, y_curve = data["curve"]
    curve = [ref.accuracy(model, X_curve, y_curve)]
    losses, seconds = timed(
        ref.train_model,
        model,
        data["X"],
        data["y"],
        config.epochs,
        config.lr,
        config.batch_size,
        torch.Generator().manual_seed(config.seed + 2),
        on_epoch=lambda e, m: curve.append(ref.accuracy(m, X_curve, y_curve)),
    )
    row = {
        "strategy": strategy,
        "test_accuracy": ref.accuracy(model, data["X_test"], data["y_test"]),
        "trainable_params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "final_train_loss": losses[-1],
        "seconds": seconds,
    }
    return row, (curve, losses)


def _strategies(config: Config, pretrained, data: dict, ctx: RunContext) -> tuple[list, dict]:
    rows, curves = [], {}
    for strategy in ctx.track(STRATEGIES, "training on 1% of Fashion-MNIST"):
        row, curves[strategy] = _train_strategy(strategy, pretrained, config, data)
        rows.append(row)
    return rows, curves


def _pixels_baseline(config: Config, data: dict, ctx: RunContext) -> dict:
    """scikit-learn's logistic regression on the raw pixels of the same labelled images."""
    from sklearn.linear_model import LogisticRegression

    (X_lab, y_lab), (X_test, y_test) = data["raw"], data["raw_test"]
    clf = LogisticRegression(max_iter=1000, C=0.1, random_state=config.seed)
    with ctx.step("logistic regression on pixels"):
        clf.fit(X_lab.reshape(len(X_lab), -1) / 255.0, y_lab)
        acc = float(clf.score(X_test.reshape(len(X_test), -1) / 255.0, y_test))
    return {
        "strategy": "logistic regression on pixels (sklearn)",
        "test_accuracy": acc,
        "trainable_params": 28 * 28 * 10 + 10,
        "final_train_loss": None,
        "seconds": None,
    }


def _summary(pretrain: dict, data: dict, rows: list[dict]) -> dict:
    acc = {r["strategy"]: r["test_accuracy"] for r in rows}
    return {
        "n_labels": len(data["y"]),
        "n_test": len(data["y_test"]),
        "pretrain_images": pretrain["pretrain_images"],
        "mnist_test_accuracy": pretrain["mnist_test_accuracy"],
        "pretrain_seconds": pretrain["pretrain_seconds"],
        "feature_extraction_accuracy": acc["feature extraction"],
        "fine_tuning_accuracy": acc["fine-tuning"],
        "scratch_accuracy": acc["from scratch"],
        "logreg_pixels_accuracy": rows[-1]["test_accuracy"],
        "best_strategy": max(STRATEGIES, key=lambda s: acc[s]),
    }


def _effect(gain: float, margin: float = 0.005) -> str:
    return "helps" if gain > margin else "hurts" if gain < -margin else "makes no clear difference"


def _curves_figure(curves: dict, lib_acc: float, data: dict, ctx: RunContext) -> None:
    with figure(ctx, "curves", 1, 2, figsize=(11, 4)) as (_, (left, right)):
        for strategy, (curve, losses) in curves.items():
            left.plot(range(len(curve)), curve, label=strategy)
            right.plot(range(1, len(losses) + 1), losses, label=strategy)
        left.axhline(lib_acc, color="k", ls="--", label="logistic regression (pixels)")
        left.set(
            xlabel="epoch",
            ylabel=f"accuracy on {len(data['curve'][1])} test images",
            title=f"Fashion-MNIST from {len(data['y'])} labels",
        )
        right.set(
            xlabel="epoch", ylabel="training cross-entropy", yscale="log", title="training loss"
        )
        left.legend(fontsize=8)
        right.legend(fontsize=8)


def run(config: Config, ctx: RunContext) -> LabResult:
    pretrained, pretrain = _pretrain_on_digits(config, ctx)
    data = _few_labels(config)
    rows, curves = _strategies(config, pretrained, data, ctx)
    rows.append(_pixels_baseline(config, data, ctx))
    metrics = _summary(pretrain, data, rows)

    _curves_figure(curves, metrics["logreg_pixels_accuracy"], data, ctx)

    gain = metrics["fine_tuning_accuracy"] - metrics["scratch_accuracy"]
    said = {"fine_tuning_gain": gain, "pretraining_effect": _effect(gain)}
    return LabResult(
        metrics=metrics,
        key_metric="fine_tuning_accuracy",
        library_metric="logreg_pixels_accuracy",
        tables={"strategies": rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **said}),
    )
