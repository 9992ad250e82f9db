"""The shared yardstick of the generative labs: a Fréchet distance on a small classifier's features.

This is the idea of FID (Heusel et al., 2017) with our own network instead of Inception-v3: a
small CNN trained once per dataset (MNIST, Fashion-MNIST) maps every 28x28 image to the 64
activations of its penultimate layer. Fit a Gaussian to the features of the generated images and
one to the features of held-out real test images; the Fréchet (2-Wasserstein) distance between
the two Gaussians is the score. Lower is better; numbers are comparable only under the same
classifier, dataset and sample count, so they are NOT FID values from papers.

The distance is biased upward by a finite sample (estimated covariances are noisy), and the bias
shrinks as the sample grows, so every score uses the same ``n`` (1,000 by default) and refuses
fewer images. Each score comes with two anchors: ``floor()`` (held-out real images against
another real sample: the best a model can hope for at this ``n``) and ``baseline()`` (per-pixel
Gaussian noise with the data's per-pixel mean and variance: any model should beat it).

Images: float in [0, 1], shape (n, 28, 28) or (n, 1, 28, 28), NumPy or torch.
"""

from __future__ import annotations

import dataclasses
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from airoad.errors import AiroadError
from airoad.labs import artifacts
from airoad.neural.cnn import FashionCNN

ARTIFACT_ID = "generative-yardstick"
ARTIFACT_NAME = "classifier"
DATASETS = ("mnist", "fashion-mnist")
N_SAMPLES = 1000


# ---------------------------------------------------------------- the Fréchet distance


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    """Symmetric square root of a symmetric PSD matrix via eigh (rounding negatives clipped to 0)."""
    vals, vecs = np.linalg.eigh(cov)
    return (vecs * np.sqrt(np.clip(vals, 0.0, None))) @ vecs.T


def frechet_distance(mu1, cov1, mu2, cov2) -> float:
    """Fréchet distance between N(mu1, cov1) and N(mu2, cov2).

    ``|mu1 - mu2|^2 + tr(cov1) + tr(cov2) - 2 tr((cov1 cov2)^(1/2))``, in float64.

    The trace term uses the symmetric form ``tr((S cov2 S)^(1/2))`` with ``S = cov1^(1/2)``:
    ``cov1 cov2`` is not symmetric, but ``S cov2 S`` is symmetric PSD with the same eigenvalues,
    so its trace-square-root is the sum of the square roots of ``eigvalsh`` (tiny negative
    eigenvalues from rounding are clipped to 0). Unlike ``scipy.linalg.sqrtm`` on ``cov1 cov2``
    this never produces an imaginary part and needs no ridge for singular covariances. The
    result is clipped at 0 (identical inputs can round to -1e-12).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.asarray(cov1, np.float64), np.asarray(cov2, np.float64)
    d = mu1.shape[0]
    if mu2.shape != (d,) or cov1.shape != (d, d) or cov2.shape != (d, d):
        raise AiroadError(
            f"frechet_distance needs means of shape (d,) and covariances (d, d); got "
            f"{mu1.shape}, {cov1.shape}, {mu2.shape}, {cov2.shape}"
        )
    s = _psd_sqrt((cov1 + cov1.T) / 2)
    middle = s @ cov2 @ s
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = mu1 - mu2
    value = diff @ diff + np.trace(cov1) + np.trace(cov2) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def frechet_from_features(a, b) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets a (n, d) and b (m, d).

    Means and unbiased covariances (``np.cov``, ddof=1) of each set, then `frechet_distance`.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) < 2:
        raise AiroadError(
            f"frechet_from_features needs two (n, d) arrays with the same d and n >= 2; "
            f"got {a.shape} and {b.shape}"
        )
    return frechet_distance(a.mean(0), np.cov(a, rowvar=False), b.mean(0), np.cov(b, rowvar=False))


# ---------------------------------------------------------------- the feature network


@dataclass(frozen=True)
class YardstickConfig:
    """How the feature classifier of one dataset is trained (its hash keys the artifact cache)."""

    dataset: str = "mnist"
    channels: tuple[int, int] = (16, 32)
    feature_dim: int = 64
    epochs: int = 1
    batch_size: int = 128
    lr: float = 2e-3
    train_images: int = 60000  # the first k training images; a test may use a tiny config
    seed: int = 0


def check_images(images, name: str = "images") -> torch.Tensor:
    """Validate and return images as float32 (n, 1, 28, 28): finite floats in [0, 1]."""
    x = torch.as_tensor(np.asarray(images) if not torch.is_tensor(images) else images)
    x = x.detach().cpu()
    if not x.is_floating_point():
        raise AiroadError(
            f"{name} have dtype {x.dtype}: the yardstick takes float images in [0, 1] "
            "(divide uint8 pixels by 255)"
        )
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or tuple(x.shape[1:]) != (1, 28, 28):
        raise AiroadError(
            f"{name} have shape {tuple(x.shape)}: the yardstick takes (n, 28, 28) or (n, 1, 28, 28)"
        )
    if not torch.isfinite(x).all():
        raise AiroadError(f"{name} contain NaN or infinite pixels: check the generator's output")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1e-6 or hi > 1 + 1e-6:
        raise AiroadError(
            f"{name} have pixels in [{lo:.3g}, {hi:.3g}]: the yardstick takes [0, 1] "
            "(map tanh outputs with (x + 1) / 2, then clip)"
        )
    return x.float().clamp(0.0, 1.0)


def _network(config: YardstickConfig) -> FashionCNN:
    return FashionCNN(channels=config.channels, hidden=config.feature_dim, dropout=0.3)


def _train(config: YardstickConfig, data: dict, note: Callable[[str], None]) -> FashionCNN:
    """Seeded Adam training on the first ``train_images`` training images. The global RNG (init
    and dropout draw from it) is forked, so the caller's random state is left as it was."""
    x = torch.from_numpy(data["X_train"][: config.train_images]).float().div(255)[:, None]
    y = torch.from_numpy(data["y_train"][: config.train_images])
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        model = _network(config)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
        model.train()
        for epoch in range(config.epochs):
            order = torch.randperm(len(x))
            for start in range(0, len(x), config.batch_size):
                idx = order[start : start + config.batch_size]
                loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            note(f"  epoch {epoch + 1}/{config.epochs}: last batch loss {loss.item():.3f}")
    return model.eval()


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_classifier(
    config: YardstickConfig, data: dict, note: Callable[[str], None] = _stderr
) -> tuple[FashionCNN, dict]:
    """The cached classifier for ``config`` and its info (test accuracy, training CPU seconds),
    training and saving it on a miss."""
    folder = artifacts.lookup(ARTIFACT_ID, config, ARTIFACT_NAME)
    if folder is None:
        note(f"training the {config.dataset} yardstick classifier once (about a minute on CPU) ...")
        start = time.process_time()
        model = _train(config, data, note)
        x_test = torch.from_numpy(data["X_test"]).float().div(255)[:, None]
        acc = float((_predict(model, x_test) == torch.from_numpy(data["y_test"])).float().mean())
        info = {"test_accuracy": acc, "train_cpu_seconds": time.process_time() - start}

        def writer(out: Path) -> None:
            torch.save(model.state_dict(), out / "model.pt")
            (out / "info.json").write_text(json.dumps(info), "utf-8")

        folder = artifacts.save(ARTIFACT_ID, config, ARTIFACT_NAME, writer)
        note(f"saved it to {folder} (test accuracy {acc:.4f})")
    model = _network(config)
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))
    return model.eval(), json.loads((folder / "info.json").read_text("utf-8"))


def is_cached(config: YardstickConfig) -> bool:
    """True when the classifier of ``config`` is in the artifact cache (no training needed)."""
    return artifacts.lookup(ARTIFACT_ID, config, ARTIFACT_NAME) is not None


@torch.no_grad()
def _predict(model: FashionCNN, x: torch.Tensor, batch: int = 1000) -> torch.Tensor:
    return torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])


@torch.no_grad()
def _features(model: FashionCNN, x: torch.Tensor, batch: int = 1000) -> np.ndarray:
    """Penultimate activations: everything in the head but its last Linear layer."""
    body = model.head[:-1]
    parts = [body(model.features(x[i : i + batch])[-1]) for i in range(0, len(x), batch)]
    return torch.cat(parts).double().numpy()


def _pixel_stats(images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel mean and standard deviation (28, 28) of uint8 images, in [0, 1] units.

    Summed in blocks so the 60,000 images never exist as one float64 array (376 MB)."""
    total, squares = np.zeros(images.shape[1:]), np.zeros(images.shape[1:])
    for block in np.array_split(images, max(1, len(images) // 10000)):
        x = block.astype(np.float64) / 255
        total += x.sum(0)
        squares += (x * x).sum(0)
    mean = total / len(images)
    return mean, np.sqrt(np.clip(squares / len(images) - mean * mean, 0.0, None))


# ---------------------------------------------------------------- the yardstick


class Yardstick:
    """Scores generated images of one dataset against its held-out test images.

    ``Yardstick("mnist")`` loads (or trains once and caches) the feature classifier. Scores with
    different ``n`` are not comparable: keep the default 1,000 unless a lab says otherwise.
    """

    def __init__(
        self,
        dataset: str = "mnist",
        config: YardstickConfig | None = None,
        note: Callable[[str], None] = _stderr,
    ):
        if dataset not in DATASETS:
            raise AiroadError(f"no yardstick for '{dataset}': choose one of {', '.join(DATASETS)}")
        from airoad.data import load  # raises DatasetMissing naming `airoad data fetch <name>`

        self.config = config or YardstickConfig(dataset=dataset)
        if self.config.dataset != dataset:
            raise AiroadError(f"config is for '{self.config.dataset}', not '{dataset}'")
        self.dataset = dataset
        data = load(dataset)
        self.model, self.info = load_classifier(self.config, data, note)
        self.test_accuracy = float(self.info["test_accuracy"])
        self._test_x = torch.from_numpy(data["X_test"]).float().div(255)[:, None]
        self._pixel_mean, self._pixel_std = _pixel_stats(data["X_train"])
        self._reference: dict[tuple[int, int], np.ndarray] = {}

    def features(self, images) -> np.ndarray:
        """Penultimate-layer features (n, feature_dim) of images (float in [0, 1])."""
        return _features(self.model, check_images(images))

    def _real(self, n: int, seed: int, which: int) -> torch.Tensor:
        """Block ``which`` (0 = the reference, 1 = the floor's other sample) of n test images."""
        if (which + 1) * n > len(self._test_x):
            raise AiroadError(f"n = {n} is too large: the test set has {len(self._test_x)} images")
        order = np.random.default_rng(seed).permutation(len(self._test_x))
        return self._test_x[order[which * n : (which + 1) * n]]

    def score(self, images, n: int = N_SAMPLES, seed: int = 0) -> float:
        """Fréchet distance between n of the images (a seeded subset) and n held-out test images.

        Fewer than n images is an error: the distance grows as the sample shrinks, so scores
        from different sample counts cannot be compared.
        """
        x = check_images(images)
        if len(x) < n:
            raise AiroadError(
                f"the yardstick needs {n} images and got {len(x)}: the Fréchet distance is "
                "biased by sample count, so generate at least n (scores use exactly n)"
            )
        if len(x) > n:
            x = x[torch.from_numpy(np.random.default_rng(seed).permutation(len(x))[:n])]
        if (n, seed) not in self._reference:  # the same n test images for every score
            self._reference[n, seed] = _features(self.model, self._real(n, seed, 0))
        return frechet_from_features(_features(self.model, x), self._reference[n, seed])

    def floor(self, n: int = N_SAMPLES, seed: int = 0) -> float:
        """The score of n other held-out real images: what a perfect generator gets at this n."""
        return self.score(self._real(n, seed, 1), n=n, seed=seed)

    def baseline_images(self, n: int = N_SAMPLES, seed: int = 0) -> np.ndarray:
        """n images of per-pixel Gaussian noise with the training data's per-pixel mean and
        standard deviation, clipped to [0, 1]: the trivial generator, shape (n, 28, 28)."""
        noise = np.random.default_rng(seed).standard_normal((n, 28, 28))
        return np.clip(self._pixel_mean + self._pixel_std * noise, 0.0, 1.0).astype(np.float32)

    def baseline(self, n: int = N_SAMPLES, seed: int = 0) -> float:
        """The score of the trivial generator (`baseline_images`); a model should reach far below."""
        return self.score(self.baseline_images(n, seed), n=n, seed=seed)

    def class_accuracy(self, images, labels) -> np.ndarray:
        """Per-class accuracy (10,) of the classifier on conditional samples: entry c is the
        fraction of images generated for class c that it labels c (NaN if none asked for c)."""
        x = check_images(images)
        labels = np.asarray(labels).reshape(-1).astype(np.int64)
        if len(labels) != len(x) or labels.min(initial=0) < 0 or labels.max(initial=0) > 9:
            raise AiroadError(
                f"class_accuracy needs one label in 0..9 per image; got {len(labels)} labels "
                f"for {len(x)} images"
            )
        hit = _predict(self.model, x).numpy() == labels
        counts = np.bincount(labels, minlength=10)
        hits = np.bincount(labels, weights=hit, minlength=10)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(counts > 0, hits / counts, np.nan)

    def describe(self) -> dict:
        """The classifier's config, test accuracy and training CPU seconds, for notes or tables."""
        return {**dataclasses.asdict(self.config), **self.info}
