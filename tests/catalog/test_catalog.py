"""The catalog (`labs.toml`): the real file loads and is complete; malformed files fail clearly."""

from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path

import pytest

from airoad.catalog import ROADMAPS, Catalog, LabEntry, load_catalog
from airoad.errors import AiroadError

REPO = Path(__file__).resolve().parents[2]

BUILT = {
    "numpy-pandas-basics": ("airoad.foundations.numpy_pandas_basics", {"penguins", "titanic"}),
    "pca": ("airoad.foundations.pca", {"iris", "mnist-5k"}),
    "hypothesis-testing": ("airoad.foundations.hypothesis_testing", {"titanic"}),
    "gradient-descent": ("airoad.foundations.gradient_descent", {"diabetes"}),
    "linear-regression": ("airoad.foundations.linear_regression", {"boston", "diabetes"}),
    "autograd-and-distributions": ("airoad.foundations.autograd_and_distributions", {"diabetes"}),
}

PROMISED = {
    "classical-ml": [
        "logistic-regression",
        "knn",
        "decision-tree",
        "ensembles",
        "svm",
        "naive-bayes",
        "clustering",
        "customer-segmentation",
        "dimensionality-reduction",
        "model-evaluation",
        "feature-engineering",
        "titanic-survival",
        "hyperparameter-tuning",
        "bias-variance",
    ],
    "deep-learning": [
        "autograd-engine",
        "mlp-from-scratch",
        "activations-and-losses",
        "pytorch-workflow",
        "cnn",
        "regularization",
        "transfer-learning",
        "rnn-lstm-gru",
        "lstm-time-series",
        "lstm-text-generation",
        "lstm-sentiment",
        "text-preprocessing",
        "word2vec",
    ],
}


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


# --------------------------------------------------------------------------- the real catalog


def test_real_catalog_loads_and_is_cached(catalog):
    """The packaged labs.toml loads, validates, and is cached for the default path."""
    assert isinstance(catalog, Catalog)
    assert load_catalog() is catalog


def test_entry_count(catalog):
    """The catalog lists roughly 60-90 labs."""
    assert 60 <= len(catalog.labs) <= 90, f"{len(catalog.labs)} labs"


def test_foundations_is_phase_one(catalog):
    """Phases come in order and foundations is first."""
    orders = [p.order for p in catalog.phases]
    assert orders == sorted(orders)
    assert catalog.phases[0].id == "foundations"


def test_every_roadmap_is_referenced(catalog):
    """Each of the five roadmap files is asked for by at least one lab."""
    used = {name for lab in catalog.labs for name in lab.roadmaps}
    assert used == set(ROADMAPS)
    folder = REPO.parent / "shared" / "roadmaps"
    if folder.is_dir():
        assert {p.name for p in folder.glob("*.txt")} == set(ROADMAPS)


def test_every_phase_has_labs(catalog):
    """No phase is empty."""
    for phase, labs in catalog.by_phase():
        assert labs, f"phase {phase.id} has no labs"


def test_foundations_labs_are_built(catalog):
    """The six foundations labs are built with the agreed modules and (at least) datasets."""
    built = {lab.id: lab for lab in catalog.built()}
    assert set(BUILT) <= set(built)
    for lab_id, (module, datasets) in BUILT.items():
        lab = built[lab_id]
        assert lab.phase == "foundations"
        assert lab.reference == (module,)
        assert lab.tests == (f"tests/foundations/test_{module.rsplit('.', 1)[1]}.py",)
        assert datasets <= set(lab.datasets)
        assert 1 <= lab.cpu_minutes <= 3


def test_promised_planned_ids_exist(catalog):
    """Lab ids promised by open issues exist, in their phase."""
    for phase, ids in PROMISED.items():
        for lab_id in ids:
            assert catalog.get(lab_id).phase == phase, lab_id


def test_planned_labs_name_module_and_tests(catalog):
    """Every lab names where its reference and grader tests go, and a positive CPU budget."""
    for lab in catalog.labs:
        assert lab.reference and lab.tests, lab.id
        assert lab.cpu_minutes > 0, lab.id
        assert lab.summary.endswith("."), lab.id


def test_prerequisites_come_earlier_in_phase_order(catalog):
    """A lab never depends on a lab from a later phase."""
    order = {p.id: p.order for p in catalog.phases}
    for lab in catalog.labs:
        for pre in lab.prerequisites:
            assert order[catalog.get(pre).phase] <= order[lab.phase], f"{lab.id} needs {pre}"


@pytest.mark.parametrize("lab_id", sorted(BUILT))
def test_built_reference_module_imports(catalog, lab_id):
    """A built lab's reference module imports."""
    for module in catalog.get(lab_id).reference:
        importlib.import_module(module)


@pytest.mark.parametrize("lab_id", sorted(BUILT))
def test_built_test_file_exists(catalog, lab_id):
    """A built lab's grader test file exists and names its reference."""
    lab = catalog.get(lab_id)
    for test in lab.tests:
        path = REPO / test
        assert path.is_file(), f"{test} missing"
        assert "REFERENCE" in path.read_text(encoding="utf-8"), f"{test} defines no REFERENCE"


@pytest.mark.parametrize("lab_id", sorted(BUILT))
def test_built_lesson_exists(catalog, lab_id):
    """A built lab has its lesson markdown."""
    path = catalog.get(lab_id).lesson_path
    assert path.is_file(), f"{path} missing"


@pytest.mark.parametrize("lab_id", sorted(BUILT))
def test_built_runner_has_contract(catalog, lab_id):
    """A built lab's runner module defines Config (frozen dataclass), QUICK and run."""
    runner = importlib.import_module(catalog.get(lab_id).runner_module)
    assert dataclasses.is_dataclass(runner.Config)
    assert isinstance(runner.QUICK, dict)
    assert callable(runner.run)
    field_names = {f.name for f in dataclasses.fields(runner.Config)}
    assert set(runner.QUICK) <= field_names, "QUICK overrides unknown Config fields"


# --------------------------------------------------------------------------- API


def test_get_unknown_suggests(catalog):
    """An unknown id names the closest lab and the command that lists them."""
    with pytest.raises(AiroadError) as err:
        catalog.get("pcaa")
    msg = str(err.value)
    assert "unknown lab 'pcaa'" in msg and "did you mean 'pca'?" in msg and "airoad labs" in msg


def test_entry_properties(catalog):
    """runner_module and lesson_path follow the lab id."""
    lab = catalog.get("autograd-and-distributions")
    assert lab.built
    assert lab.runner_module == "airoad.labs.runners.autograd_and_distributions"
    assert lab.lesson_path.name == "autograd-and-distributions.md"
    assert lab.lesson_path.parent.name == "lessons"
    assert not next(lab for lab in catalog.labs if lab.status == "planned").built
    assert isinstance(lab, LabEntry) and isinstance(lab.roadmaps, tuple)


def test_by_phase_covers_every_lab(catalog):
    """by_phase groups all labs, phases in order."""
    grouped = catalog.by_phase()
    assert [p for p, _ in grouped] == list(catalog.phases)
    assert sum(len(labs) for _, labs in grouped) == len(catalog.labs)


# --------------------------------------------------------------------------- malformed files

R0, R1 = ROADMAPS[0], ROADMAPS[1]


def _lab(lab_id: str, **over) -> dict:
    lab = {
        "id": lab_id,
        "title": f"Lab {lab_id}",
        "phase": "foundations",
        "layer": "must",
        "status": "planned",
        "roadmaps": [R0],
        "prerequisites": [],
        "reference": ["airoad.foundations.x"],
        "tests": ["tests/foundations/test_x.py"],
        "datasets": ["iris"],
        "cpu_minutes": 1,
        "summary": "A lab.",
    }
    lab.update(over)
    return {k: v for k, v in lab.items() if v is not None}


def _write(tmp_path: Path, labs: list[dict]) -> Path:
    lines = ["[[phase]]", 'id = "foundations"', 'title = "F"', "order = 1", 'summary = "S."', ""]
    for lab in labs:
        lines.append("[[lab]]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in lab.items()]
        lines.append("")
    path = tmp_path / "labs.toml"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path


def _error(tmp_path: Path, labs: list[dict]) -> str:
    with pytest.raises(AiroadError) as err:
        load_catalog(_write(tmp_path, labs))
    return str(err.value)


def test_minimal_file_loads(tmp_path):
    """A small well-formed file loads with the given path (not the cached default)."""
    cat = load_catalog(_write(tmp_path, [_lab("a"), _lab("b", prerequisites=["a"])]))
    assert [lab.id for lab in cat.labs] == ["a", "b"]
    assert cat.get("b").prerequisites == ("a",)


@pytest.mark.parametrize(
    "labs, entry, key",
    [
        ([_lab("a", phase="nowhere")], "lab 'a'", "'phase'"),
        ([_lab("a", layer="maybe")], "lab 'a'", "'layer'"),
        ([_lab("a"), _lab("a")], "lab 'a'", "'id'"),
        ([_lab("a", summary=None)], "lab 'a'", "'summary'"),
        (
            [_lab("a", prerequisites=["b"]), _lab("b", prerequisites=["a"])],
            "lab '",
            "'prerequisites'",
        ),
        ([_lab("a", prerequisites=["ghost"])], "lab 'a'", "'prerequisites'"),
        ([_lab("a", status="done")], "lab 'a'", "'status'"),
        ([_lab("a", roadmaps=["999_x.txt"])], "lab 'a'", "'roadmaps'"),
        ([_lab("a", datasets=["imagenet"])], "lab 'a'", "'datasets'"),
        ([_lab("Not_Kebab")], "lab 'Not_Kebab'", "'id'"),
        ([_lab("a", cpu_minutes="two")], "lab 'a'", "'cpu_minutes'"),
        ([_lab("a", roadmaps=R1)], "lab 'a'", "'roadmaps'"),
        ([_lab("a", extra=1)], "lab 'a'", "'extra'"),
        ([_lab("a", status="built", reference=[])], "lab 'a'", "'reference'"),
        ([_lab("a", id=None)], "lab #1", "'id'"),
    ],
    ids=[
        "unknown-phase",
        "bad-layer",
        "duplicate-id",
        "missing-key",
        "cycle",
        "unknown-prereq",
        "bad-status",
        "unknown-roadmap",
        "unknown-dataset",
        "not-kebab",
        "cpu-not-number",
        "roadmaps-not-list",
        "unknown-key",
        "built-without-reference",
        "missing-id",
    ],
)
def test_malformed_entry_names_entry_and_key(tmp_path, labs, entry, key):
    """Each malformed entry raises AiroadError naming the entry and the key."""
    msg = _error(tmp_path, labs)
    assert entry in msg and key in msg, msg
    assert "\n" not in msg


def test_cycle_message_shows_the_loop(tmp_path):
    """A prerequisite cycle is spelled out."""
    msg = _error(
        tmp_path,
        [
            _lab("a", prerequisites=["c"]),
            _lab("b", prerequisites=["a"]),
            _lab("c", prerequisites=["b"]),
        ],
    )
    assert "cycle" in msg and "->" in msg


def test_invalid_toml_and_missing_file(tmp_path):
    """Broken TOML syntax and a missing file each give one clear sentence."""
    bad = tmp_path / "labs.toml"
    bad.write_text("[[lab]]\nid = \n", encoding="utf-8")
    with pytest.raises(AiroadError, match="not valid TOML"):
        load_catalog(bad)
    with pytest.raises(AiroadError, match="does not exist"):
        load_catalog(tmp_path / "nope.toml")


def test_phase_problems(tmp_path):
    """A phase missing a key, or two phases with one order, are rejected by name."""
    path = tmp_path / "labs.toml"
    path.write_text(
        '[[phase]]\nid = "p"\ntitle = "P"\norder = 1\n\n'
        '[[phase]]\nid = "q"\ntitle = "Q"\norder = 1\nsummary = "S."\n',
        encoding="utf-8",
    )
    with pytest.raises(AiroadError, match=r"phase 'p' is missing key 'summary'"):
        load_catalog(path)
    path.write_text(
        '[[phase]]\nid = "p"\ntitle = "P"\norder = 1\nsummary = "S."\n\n'
        '[[phase]]\nid = "q"\ntitle = "Q"\norder = 1\nsummary = "S."\n\n'
        + "[[lab]]\n"
        + "\n".join(f"{k} = {json.dumps(v)}" for k, v in _lab("a", phase="p").items()),
        encoding="utf-8",
    )
    with pytest.raises(AiroadError, match=r"phase 'q': key 'order'"):
        load_catalog(path)
