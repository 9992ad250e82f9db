"""Runner for transfer-learning: pretrain a small CNN on MNIST digits, then learn Fashion-MNIST
from 1% of its training labels three ways — feature extraction (frozen backbone, new head),
fine-tuning (all weights, starting pretrained) and from scratch (all weights, random start) —
beside logistic regression (scikit-learn) on the raw pixels of the same labelled images."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

import numpy as np
import torch

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.neural import transfer_learning as ref

STRATEGIES = ("feature extraction", "fine-tuning", "from scratch")


@dataclass(frozen=True)
class Config:
    pretrain_images: int = 0  # 0 = all 60000 MNIST training digits
    pretrain_epochs: int = 1
    label_fraction: float = 0.01  # of the 60000 Fashion-MNIST training images
    epochs: int = 30
    lr: float = 1e-3
    batch_size: int = 64
    width: int = 16
    curve_images: int = 1000  # test images scored after every epoch for the curves
    test_images: int = 0  # 0 = all 10000 test images (MNIST and Fashion-MNIST)
    seed: int = 0


QUICK = {
    "pretrain_images": 2000,
    "epochs": 3,
    "width": 8,
    "curve_images": 300,
    "test_images": 2000,
    "lr": 3e-3,
}


def _pixels_baseline(
    X_lab: np.ndarray, y_lab: np.ndarray, X_test: np.ndarray, y_test: np.ndarray, seed: int
) -> float:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(max_iter=1000, C=0.1, random_state=seed)
    clf.fit(X_lab.reshape(len(X_lab), -1) / 255.0, y_lab)
    return float(clf.score(X_test.reshape(len(X_test), -1) / 255.0, y_test))


def _effect(gain: float, margin: float = 0.005) -> str:
    return "helps" if gain > margin else "hurts" if gain < -margin else "makes no clear difference"


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mnist, fashion = load("mnist"), load("fashion-mnist")
    gen = torch.Generator().manual_seed(config.seed)

    # 1. pretrain on digits
    n_pre = config.pretrain_images or len(mnist["y_train"])
    pre_idx = torch.randperm(len(mnist["y_train"]), generator=gen)[:n_pre].numpy()
    Xm, ym = (
        ref.images_to_tensor(mnist["X_train"][pre_idx]),
        torch.as_tensor(mnist["y_train"][pre_idx]),
    )
    torch.manual_seed(config.seed)
    pretrained = ref.SmallCNN(10, config.width)
    t0 = time.perf_counter()
    with ctx.step("pretraining on MNIST"):
        ref.train_model(
            pretrained, Xm, ym, config.pretrain_epochs, config.lr, config.batch_size, gen
        )
    pretrain_seconds = time.perf_counter() - t0
    n_test = config.test_images or len(mnist["y_test"])
    mnist_acc = ref.accuracy(
        pretrained,
        ref.images_to_tensor(mnist["X_test"][:n_test]),
        torch.as_tensor(mnist["y_test"][:n_test]),
    )

    # 2. the few labelled Fashion-MNIST images
    lab = ref.stratified_subset(fashion["y_train"], config.label_fraction, seed=config.seed)
    X_lab, y_lab = (
        ref.images_to_tensor(fashion["X_train"][lab]),
        torch.as_tensor(fashion["y_train"][lab]),
    )
    X_test = ref.images_to_tensor(fashion["X_test"][:n_test])
    y_test = torch.as_tensor(fashion["y_test"][:n_test])
    X_curve, y_curve = X_test[: config.curve_images], y_test[: config.curve_images]

    def build(strategy: str) -> ref.SmallCNN:
        if strategy == "from scratch":
            torch.manual_seed(config.seed + 1)
            return ref.SmallCNN(10, config.width)
        model = ref.replace_head(copy.deepcopy(pretrained), 10, seed=config.seed + 1)
        if strategy == "feature extraction":
            ref.freeze(model.backbone)
        return model

    rows, curves = [], {}
    for strategy in ctx.track(STRATEGIES, "training on 1% of Fashion-MNIST"):
        model = build(strategy)
        curve = [ref.accuracy(model, X_curve, y_curve)]
        t0 = time.perf_counter()
        losses = ref.train_model(
            model,
            X_lab,
            y_lab,
            config.epochs,
            config.lr,
            config.batch_size,
            torch.Generator().manual_seed(config.seed + 2),
            on_epoch=lambda e, m: curve.append(ref.accuracy(m, X_curve, y_curve)),  # noqa: B023 (called before the loop moves on)
        )
        seconds = time.perf_counter() - t0
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        curves[strategy] = (curve, losses)
        rows.append(
            {
                "strategy": strategy,
                "test_accuracy": ref.accuracy(model, X_test, y_test),
                "trainable_params": trainable,
                "final_train_loss": losses[-1],
                "seconds": seconds,
            }
        )
    with ctx.step("logistic regression on pixels"):
        lib_acc = _pixels_baseline(
            fashion["X_train"][lab],
            fashion["y_train"][lab],
            fashion["X_test"][:n_test],
            fashion["y_test"][:n_test],
            config.seed,
        )
    rows.append(
        {
            "strategy": "logistic regression on pixels (sklearn)",
            "test_accuracy": lib_acc,
            "trainable_params": 28 * 28 * 10 + 10,
            "final_train_loss": None,
            "seconds": None,
        }
    )

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for strategy, (curve, losses) in curves.items():
        left.plot(range(len(curve)), curve, label=strategy)
        right.plot(range(1, len(losses) + 1), losses, label=strategy)
    left.axhline(lib_acc, color="k", ls="--", label="logistic regression (pixels)")
    left.set(
        xlabel="epoch",
        ylabel=f"accuracy on {len(y_curve)} test images",
        title=f"Fashion-MNIST from {len(lab)} labels",
    )
    right.set(xlabel="epoch", ylabel="training cross-entropy", yscale="log", title="training loss")
    left.legend(fontsize=8)
    right.legend(fontsize=8)
    fig.tight_layout()
    fig_path = ctx.figure_path("curves")
    fig.savefig(fig_path, dpi=110)
    plt.close(fig)

    acc = {r["strategy"]: r["test_accuracy"] for r in rows}
    best = max(STRATEGIES, key=lambda s: acc[s])
    metrics = {
        "n_labels": len(lab),
        "n_test": n_test,
        "pretrain_images": n_pre,
        "mnist_test_accuracy": mnist_acc,
        "pretrain_seconds": pretrain_seconds,
        "feature_extraction_accuracy": acc["feature extraction"],
        "fine_tuning_accuracy": acc["fine-tuning"],
        "scratch_accuracy": acc["from scratch"],
        "logreg_pixels_accuracy": lib_acc,
        "best_strategy": best,
    }
    gain = acc["fine-tuning"] - acc["from scratch"]
    notes = [
        f"Pretrained CNN: {mnist_acc:.3f} on MNIST test after {config.pretrain_epochs} epoch(s) "
        f"on {n_pre} digits.",
        f"With {len(lab)} Fashion-MNIST labels: feature extraction {acc['feature extraction']:.3f}, "
        f"fine-tuning {acc['fine-tuning']:.3f}, from scratch {acc['from scratch']:.3f}, "
        f"logistic regression on pixels {lib_acc:.3f}; best CNN strategy: {best}.",
        f"Starting from digit features {_effect(gain)} here: "
        f"fine-tuning minus scratch = {gain:+.3f}.",
    ]
    return LabResult(
        metrics=metrics,
        key_metric="fine_tuning_accuracy",
        library_metric="logreg_pixels_accuracy",
        tables={"strategies": rows},
        figures=[fig_path],
        notes=notes,
    )
