"""The PyTorch workflow end to end: Dataset -> DataLoader -> nn.Module -> training loop ->
evaluation -> checkpoint (save, load, resume) -> TorchScript export.

The point of the checkpoint is that training can stop and restart without changing anything:
a run of 2 epochs and a run of 1 epoch + save + load into fresh objects + 1 epoch produce the
same loss curve. That needs more than the weights: the optimizer's state (momentum, Adam's
moment estimates), the epoch counter, and the state of every random number generator
(the DataLoader's shuffling generator and torch's global one, which dropout uses).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

FASHION_MEAN, FASHION_STD = 0.2860, 0.3530  # Fashion-MNIST pixel mean and std on [0, 1]


class ImageDataset(Dataset):
    """Grey-scale images uint8 (n, 28, 28) and integer labels (n,) as a torch Dataset.

    Item i is ``(x, y)``: x float32 (1, 28, 28) = (pixel / 255 - mean) / std, y int64 scalar.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        mean: float = FASHION_MEAN,
        std: float = FASHION_STD,
    ):
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = torch.as_tensor(np.asarray(images, dtype=np.uint8))
        self.labels = torch.as_tensor(np.asarray(labels, dtype=np.int64))
        self.mean, self.std = float(mean), float(std)

    def __len__(self) -> int:
        """Number of (image, label) pairs."""
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The standardised image i as float32 (1, 28, 28) and its label as an int64 scalar."""
        x = (self.images[i].to(torch.float32) / 255.0 - self.mean) / self.std
        return x.unsqueeze(0), self.labels[i]


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    """A DataLoader whose shuffling comes from its own ``torch.Generator`` seeded with `seed`
    (reachable as ``loader.generator``, so a checkpoint can save and restore it)."""
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, generator=generator)


class SmallNet(nn.Module):
    """784 -> hidden -> hidden // 2 -> 10 with ReLU and dropout; input (n, 1, 28, 28),
    output logits (n, 10)."""

    def __init__(self, hidden: int = 256, dropout: float = 0.2):
        super().__init__()
        self.body = nn.Sequential(
            nn.Flatten(),
            nn.Linear(784, hidden),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, hidden // 2),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.head = nn.Linear(hidden // 2, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (n, 10) for images x (n, 1, 28, 28)."""
        return self.head(self.body(x))


def train_epoch(
    model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer
) -> list[float]:
    """One pass over `loader` in training mode (dropout on): for each batch zero the gradients,
    compute the cross-entropy of the logits, backpropagate, step. Returns every batch's loss."""
    model.train()
    losses = []
    for x, y in loader:
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@torch.no_grad()
def evaluate(model: nn.Module, loader: DataLoader) -> tuple[float, float]:
    """(mean cross-entropy per example, accuracy) over `loader`, in eval mode (dropout off)
    and without building a graph."""
    model.eval()
    total_loss, correct, n = 0.0, 0, 0
    for x, y in loader:
        logits = model(x)
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(dim=1) == y).sum())
        n += len(y)
    return total_loss / n, correct / n


def save_checkpoint(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    epoch: int,
    generator: torch.Generator,
    history: list[float] | None = None,
) -> None:
    """Write everything needed to resume exactly to `path` with ``torch.save``: model and
    optimizer state dicts, the number of finished epochs, the loader's generator state, torch's
    global RNG state and the loss history so far."""
    torch.save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "epoch": int(epoch),
            "generator": generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "history": list(history or []),
        },
        path,
    )


def load_checkpoint(
    path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer, generator: torch.Generator
) -> tuple[int, list[float]]:
    """Restore a ``save_checkpoint`` file into existing (fresh) objects, RNG states included;
    returns (finished epochs, loss history)."""
    state = torch.load(path, weights_only=True)  # plain tensors and numbers: no pickle needed
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    generator.set_state(state["generator"])
    torch.set_rng_state(state["torch_rng"])
    return int(state["epoch"]), list(state["history"])


def export_torchscript(model: nn.Module, path: str | Path) -> torch.jit.ScriptModule:
    """Compile the model in eval mode with ``torch.jit.script``, save it to `path` and return
    the compiled module (loadable later with ``torch.jit.load`` without this Python class)."""
    model.eval()
    with warnings.catch_warnings():  # torch 2.x marks TorchScript deprecated; it still works
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(model)
        scripted.save(str(path))
    return scripted
