"""The catalog (`labs.toml`): the real file loads and is complete; malformed files fail clearly."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from airoad.catalog import ROADMAPS, Catalog, LabEntry, load_catalog
from airoad.errors import AiroadError

REPO = Path(__file__).resolve().parents[2]

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


def test_built_labs_are_checked_by_the_anatomy_gate(catalog):
    """Built labs are checked one by one in test_anatomy.py; here: foundations is all built."""
    foundations = [lab for lab in catalog.labs if lab.phase == "foundations"]
    built = {lab.id for lab in foundations if lab.built}
    assert {"numpy-pandas-basics", "pca", "gradient-descent", "linear-regression"} <= built


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
