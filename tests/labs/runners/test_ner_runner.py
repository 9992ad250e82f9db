"""The ner runner on real Austen and Shakespeare sentences, spaCy en_core_web_md and the real
all-MiniLM-L6-v2 (quick config), and the hand-labelled gold set that ships with the package."""

from __future__ import annotations

import numpy as np
import pytest
from seqeval.metrics import f1_score

from airoad.errors import AiroadError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import ner as runner
from airoad.labs.runners import ner_parts as parts
from airoad.llm import ner as ref


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("ner")))


def test_gold_set_parses_with_valid_bio_and_matching_lengths():
    gold = parts.load_gold()
    assert 150 <= len(gold) <= 200
    texts = [g["text"] for g in gold]
    assert len(set(texts)) == len(texts), "a gold sentence appears twice"
    with_entities = 0
    for g in gold:
        assert g["words"] == parts.words(g["text"]), g["text"]
        assert len(g["tags"]) == len(g["words"]), g["text"]
        assert set(g["tags"]) <= set(ref.LABELS), g["tags"]
        for prev, tag in zip(["O", *g["tags"]], g["tags"]):  # I-X only after B-X or I-X
            assert not tag.startswith("I-") or prev[2:] == tag[2:], (g["text"], g["tags"])
        assert g["source"].split(":")[0] in ("austen", "shakespeare")
        with_entities += bool(ref.entities(g["tags"]))
    assert 0.3 * len(gold) < with_entities < 0.9 * len(gold), "a mix with and without entities"
    sources = {g["source"].split(":")[0] for g in gold}
    assert sources == {"austen", "shakespeare"}


def test_gold_sentences_come_from_the_texts_and_are_held_out_of_training():
    gold = parts.load_gold()
    pool = parts.sentences()
    pool_texts = {s for _, s in pool}
    assert all(g["text"] in pool_texts for g in gold), "every gold sentence is a corpus sentence"
    picked = parts.training_pool(pool, {g["text"] for g in gold}, 3000, seed=0)
    assert not {s for _, s in picked} & {g["text"] for g in gold}
    assert sum(src.startswith("austen") for src, _ in picked) == 1500


def test_scores_are_seqevals_and_intervals_bracket_them(result):
    m, rows = result.metrics, result.tables["gold_scores"]
    assert result.key_metric == "ours_f1" and result.library_metric == "spacy_f1"
    assert m["n_gold"] == runner.QUICK["n_gold"] and m["n_train"] == runner.QUICK["n_train"]
    assert [r["system"] for r in rows] == [
        "MiniLM (ours)", "spaCy en_core_web_md", "spaCy, lower-cased text"
    ]  # fmt: skip
    for r in rows:
        assert r["f1_lo"] <= r["f1"] + 1e-9 and r["f1"] <= r["f1_hi"] + 1e-9, r
    gold = parts.load_gold()[: runner.QUICK["n_gold"]]
    truth = [g["tags"] for g in gold]
    spacy = parts.spacy_tags(parts.load_spacy(), [g["words"] for g in gold])
    assert m["spacy_f1"] == pytest.approx(f1_score(truth, spacy, zero_division=0))
    assert m["spacy_f1"] == pytest.approx(ref.entity_scores(truth, spacy)["f1"])
    assert m["steps"] == len(result.tables["curve"]) == runner.QUICK["n_train"] // 16
    assert m["diff_lo"] <= m["diff_f1"] + 1e-9 and m["diff_f1"] <= m["diff_hi"] + 1e-9


def test_bootstrap_f1_of_all_sentences_is_the_point_estimate():
    truth = [["B-PER", "O", "B-LOC"], ["O"], ["B-ORG", "I-ORG"]]
    pred = [["B-PER", "O", "O"], ["B-PER"], ["B-ORG", "I-ORG"]]
    boot = parts.bootstrap_f1(truth, {"x": pred}, 500, seed=1)["x"]
    assert boot.shape == (500,) and 0 <= boot.min() <= boot.max() <= 1
    counts = parts._counts(truth, pred).sum(0)
    assert 2 * counts[0] / (counts[1] + counts[2]) == pytest.approx(f1_score(truth, pred))
    assert np.median(boot) == pytest.approx(f1_score(truth, pred), abs=0.2)


def test_tables_and_figures(result):
    names = [p.name for p in result.figures]
    assert names == ["f1_by_type.png", "type_confusion.png", "loss_curve.png"]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
    for row in result.tables["disagreements"]:
        assert row["ours"] != row["spacy"]
    assert len(result.tables["disagreements"]) <= runner.QUICK["n_table"]


def test_missing_model_is_one_line_naming_the_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(AiroadError) as missing:
        parts.load_tagger(0)
    assert "airoad data fetch" in str(missing.value) and "\n" not in str(missing.value)
