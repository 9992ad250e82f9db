"""Transfer learning: reuse a CNN trained on one task (MNIST digits) for another with few labels
(Fashion-MNIST clothes, 1% of the labels).

The pieces:

- ``SmallCNN``: a ``backbone`` (two conv blocks -> a 64-d feature vector) and a linear ``head``;
- ``freeze`` / ``unfreeze``: switch ``requires_grad`` off / on for every parameter of a module;
- ``replace_head``: a fresh, randomly initialised head for a new number of classes;
- ``stratified_subset``: a seeded sample of a fraction of the labels, the same fraction per class;
- ``images_to_tensor``, ``train_model`` (Adam on the parameters that still require grad) and
  ``accuracy``.

Three strategies then differ only in which parameters train: feature extraction (frozen backbone,
new head), fine-tuning (everything, starting from the pretrained weights) and from scratch
(everything, starting from random weights).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class SmallCNN(nn.Module):
    """backbone: [conv3x3(1->w) ReLU maxpool2] [conv3x3(w->2w) ReLU maxpool2] flatten
    Linear(2w*7*7 -> feature_dim) ReLU;  head: Linear(feature_dim -> n_classes).
    Input (n, 1, 28, 28) floats; output logits (n, n_classes)."""

    def __init__(self, n_classes: int = 10, width: int = 16, feature_dim: int = 64):
        super().__init__()
        self.backbone = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(2 * width * 7 * 7, feature_dim),
            nn.ReLU(),
        )
        self.head = nn.Linear(feature_dim, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 1, 28, 28) -> logits (n, n_classes): head(backbone(x))."""
        return self.head(self.backbone(x))


def freeze(module: nn.Module) -> nn.Module:
    """Set requires_grad = False on every parameter of `module` (so no gradient is computed or
    stored for them and an optimizer over trainable parameters skips them). Returns `module`."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module


def unfreeze(module: nn.Module) -> nn.Module:
    """Set requires_grad = True on every parameter of `module`. Returns `module`."""
    for p in module.parameters():
        p.requires_grad_(True)
    return module


def replace_head(model: SmallCNN, n_classes: int, seed: int = 0) -> SmallCNN:
    """Give `model` a new head nn.Linear(old in_features, n_classes) whose weight and then bias
    are drawn uniform in +-1/sqrt(in_features) (nn.Linear's default range) from
    `torch.Generator().manual_seed(seed)`, so the head is reproducible without global seeding.
    The backbone is untouched. Returns `model`."""
    fan_in = model.head.in_features
    head = nn.Linear(fan_in, n_classes)
    gen = torch.Generator().manual_seed(seed)
    bound = 1.0 / fan_in**0.5
    with torch.no_grad():
        head.weight.copy_(torch.rand(head.weight.shape, generator=gen) * 2 * bound - bound)
        head.bias.copy_(torch.rand(head.bias.shape, generator=gen) * 2 * bound - bound)
    model.head = head
    return model


def stratified_subset(y: np.ndarray, fraction: float, seed: int = 0) -> np.ndarray:
    """Indices of a seeded sample holding round(fraction * n_c) examples of every class c (at
    least 1 per class), without replacement, returned sorted ascending. The same (y, fraction,
    seed) always gives the same indices."""
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    picked = []
    for c in np.unique(y):  # loop over classes, not samples
        members = np.flatnonzero(y == c)
        k = max(1, int(round(fraction * len(members))))
        picked.append(rng.choice(members, size=k, replace=False))
    return np.sort(np.concatenate(picked))


def images_to_tensor(X: np.ndarray) -> torch.Tensor:
    """uint8 images (n, 28, 28) -> float32 tensor (n, 1, 28, 28) scaled to [0, 1]."""
    return torch.as_tensor(np.asarray(X), dtype=torch.float32).unsqueeze(1) / 255.0


def train_model(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 64,
    generator: torch.Generator | None = None,
    on_epoch=None,
) -> list[float]:
    """Adam (learning rate `lr`) on the parameters with requires_grad only, cross-entropy,
    shuffled mini-batches drawn with `generator`. After each epoch calls on_epoch(epoch, model)
    if given. Returns the mean training loss of each epoch."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    losses = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(y), generator=generator)
        total = 0.0
        for s in range(0, len(y), batch_size):
            idx = order[s : s + batch_size]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        losses.append(total / len(y))
        if on_epoch is not None:
            on_epoch(epoch, model)
    return losses


@torch.no_grad()
def accuracy(model: nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    """Fraction of X whose argmax logit equals y, computed in eval mode batch by batch."""
    model.eval()
    correct = sum(
        int((model(X[s : s + batch_size]).argmax(1) == y[s : s + batch_size]).sum())
        for s in range(0, len(y), batch_size)
    )
    return correct / len(y)
