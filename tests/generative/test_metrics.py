"""The generative yardstick: the Fréchet distance against closed forms and scipy, and the cached
classifier's score growing with noise on real MNIST images. Shared infrastructure, not a lab."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import scipy.linalg

from airoad.data import load
from airoad.errors import AiroadError
from airoad.generative import metrics

N = 500  # images per side in these tests (the labs use metrics.N_SAMPLES)


def _random_cov(rng, d: int, rank: int | None = None) -> np.ndarray:
    a = rng.normal(size=(d, rank or d))
    return a @ a.T / d


def test_diagonal_gaussians_match_closed_form():
    """Diagonal covariances: |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2."""
    rng = np.random.default_rng(0)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    a, b = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(a), mu2, np.diag(b))
    np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_full_2x2_gaussians_match_closed_form():
    """2x2 full covariances: tr sqrt(C1 C2) = sqrt(tr(C1 C2) + 2 sqrt(det C1 det C2))."""
    c1, c2 = np.array([[2.0, 1.0], [1.0, 2.0]]), np.array([[1.0, -0.5], [-0.5, 4.0]])
    mu1, mu2 = np.zeros(2), np.array([1.0, 2.0])
    tr_sqrt = np.sqrt(np.trace(c1 @ c2) + 2 * np.sqrt(np.linalg.det(c1) * np.linalg.det(c2)))
    expected = 5.0 + np.trace(c1) + np.trace(c2) - 2 * tr_sqrt
    got = metrics.frechet_distance(mu1, c1, mu2, c2)
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert expected > 5.0  # the covariance term is not zero here, so it is really tested


@pytest.mark.parametrize("rank", [None, 20])
def test_matches_scipy_sqrtm_in_64_dims(rank):
    """64-d full (and rank-20) covariances: the same value as scipy.linalg.sqrtm of cov1 cov2."""
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.normal(size=64), rng.normal(size=64)
    c1, c2 = _random_cov(rng, 64, rank), _random_cov(rng, 64)
    root = scipy.linalg.sqrtm(c1 @ c2).real
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(c1) + np.trace(c2) - 2 * np.trace(root)
    got = metrics.frechet_distance(mu1, c1, mu2, c2)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_zero_for_identical_sets_and_symmetric():
    """Identical feature sets score 0; swapping the two sets leaves the distance unchanged."""
    rng = np.random.default_rng(2)
    a = np.maximum(rng.normal(size=(300, 64)), 0)  # ReLU-like features with many zeros
    b = np.maximum(rng.normal(0.2, 1.3, size=(400, 64)), 0)
    assert metrics.frechet_from_features(a, a) < 1e-9
    ab, ba = metrics.frechet_from_features(a, b), metrics.frechet_from_features(b, a)
    np.testing.assert_allclose(ab, ba, rtol=1e-10)
    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    np.testing.assert_allclose(ab, metrics.frechet_distance(mu_a, cov_a, mu_b, cov_b), rtol=1e-12)
    assert ab > 1.0


@pytest.fixture(scope="session")
def yard():
    """The real cached MNIST yardstick; on a cache miss a tiny config trains in a few seconds."""
    config = metrics.YardstickConfig("mnist")
    if not metrics.is_cached(config):
        config = dataclasses.replace(config, train_images=4000, batch_size=32)
    return metrics.Yardstick("mnist", config=config, note=lambda _: None)


@pytest.fixture(scope="session")
def real_train():
    data = load("mnist")
    return data["X_train"][-N:].astype(np.float32) / 255, data["y_train"][-N:]


def test_score_grows_with_noise_on_real_images(yard, real_train):
    """Real training digits plus widely spaced noise levels score further and further away."""
    x, _ = real_train
    rng = np.random.default_rng(3)
    noise = rng.normal(size=x.shape).astype(np.float32)
    scores = [yard.score(np.clip(x + s * noise, 0, 1), n=N) for s in (0.0, 0.15, 0.4, 1.0)]
    assert all(a < b for a, b in zip(scores, scores[1:])), f"not increasing: {scores}"
    floor, base = yard.floor(n=N), yard.baseline(n=N)
    assert floor < scores[1] and scores[0] < 3 * floor, (floor, scores)
    assert base > 2 * scores[1], (base, scores)


def test_class_accuracy_of_real_digits(yard, real_train):
    """Real digits with their labels score high per class; a class with no samples is NaN."""
    x, y = real_train
    acc = yard.class_accuracy(x, y)
    assert acc.shape == (10,) and np.all(acc > 0.8), acc
    keep = y != 3
    part = yard.class_accuracy(x[keep], y[keep])
    assert np.isnan(part[3]) and np.allclose(np.delete(part, 3), np.delete(acc, 3))
    wrong = yard.class_accuracy(x, (y + 1) % 10)
    assert np.nanmean(wrong) < 0.2, wrong


@pytest.mark.parametrize(
    "images, message",
    [
        (np.full((N, 28, 28), np.nan, np.float32), "NaN"),
        (np.zeros((N, 28, 28), np.uint8), "divide uint8"),
        (np.full((N, 28, 28), 1.5, np.float32), "[0, 1]"),
        (np.zeros((N, 3, 28, 28), np.float32), "shape"),
        (np.zeros((N - 1, 28, 28), np.float32), "biased by sample count"),
    ],
)
def test_bad_input_is_refused(yard, images, message):
    """NaN, uint8, out-of-range, wrongly shaped or too few images stop with a clear error."""
    with pytest.raises(AiroadError, match=message.replace("[", r"\[").replace("]", r"\]")):
        yard.score(images, n=N)


def test_features_are_64_dimensional_and_cached(yard, real_train):
    """Features are (n, 64); a second Yardstick loads the cached classifier without training."""
    said = []
    again = metrics.Yardstick("mnist", config=yard.config, note=said.append)
    x, _ = real_train
    f1, f2 = yard.features(x[:50]), again.features(x[:50])
    assert f1.shape == (50, 64) and said == []
    np.testing.assert_array_equal(f1, f2)


def test_missing_dataset_names_the_fetch_command(tmp_path, monkeypatch):
    """Without the dataset in the cache, Yardstick stops with the `airoad data fetch` command."""
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path))
    with pytest.raises(AiroadError, match="airoad data fetch fashion-mnist"):
        metrics.Yardstick("fashion-mnist")
    with pytest.raises(AiroadError, match="choose one of mnist, fashion-mnist"):
        metrics.Yardstick("cifar-10")
