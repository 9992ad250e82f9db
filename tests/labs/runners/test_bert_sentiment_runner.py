"""The bert-sentiment runner on real fine-food reviews and the real all-MiniLM-L6-v2 (quick)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from airoad.errors import AiroadError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import bert_sentiment as runner
from airoad.labs.runners import bert_sentiment_parts as parts

MODELS = ["MiniLM fine-tuned", "MiniLM frozen + LR", "TF-IDF + LR", "LSTM (lstm-sentiment)"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("bert-sentiment")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_every_model_is_scored_on_the_same_reviews(result):
    m, rows = result.metrics, result.tables["comparison"]
    assert result.key_metric == "finetuned_accuracy" and result.library_metric == "tfidf_accuracy"
    assert [r["model"] for r in rows] == [*MODELS, "always 'great'"]
    assert m["n_train"] == runner.QUICK["n_train"] and m["n_test"] == runner.QUICK["n_test"]
    _, test_df = parts.reviews(0, runner.QUICK["n_test"], runner.Config.seed)
    assert m["majority_accuracy"] == pytest.approx(parts.labels(test_df).mean())
    assert m["steps"] == runner.QUICK["max_steps"] == len(result.tables["curve"])
    assert m["target_verdict"] == "quick run, not judged"
    n = m["n_test"]
    for r in rows:  # counts behind each accuracy are whole reviews
        assert r["accuracy"] * n == pytest.approx(round(r["accuracy"] * n))


def test_mcnemar_p_values_match_scipy(result):
    for r in result.tables["comparison"]:
        b, c = r["right_where_tfidf_wrong"], r["wrong_where_tfidf_right"]
        want = binomtest(min(b, c), b + c, 0.5).pvalue if b + c else 1.0
        assert r["mcnemar_p_vs_tfidf"] == pytest.approx(want, rel=1e-9), r["model"]
    tfidf = next(r for r in result.tables["comparison"] if r["model"] == "TF-IDF + LR")
    assert tfidf["mcnemar_p_vs_tfidf"] == 1.0


def test_most_wrong_reviews_are_sorted_by_loss(result):
    wrong = result.tables["most_wrong"]
    assert len(wrong) == runner.QUICK["n_wrong"]
    losses = [w["loss"] for w in wrong]
    assert losses == sorted(losses, reverse=True)
    for w in wrong:
        p_true = w["p_great"] if w["label"] == "great" else 1 - w["p_great"]
        assert w["loss"] == pytest.approx(-np.log(p_true))
        assert "<br" not in w["review"]


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == ["confusion_matrix.png", "attention.png", "loss_curve.png"]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"
    assert len(result.tables["attention"]) == runner.QUICK["n_attention"]
    assert all(row["top_tokens"] for row in result.tables["attention"])


def test_classifier_artifact_reloads_with_the_same_predictions(result, run_dir):
    """Called directly with a plain RunContext, the artifact lands in the run folder."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = run_dir / "artifacts" / "classifier"
    spec = json.loads((folder / "lab.json").read_text(encoding="utf-8"))
    assert spec["labels"] == ["other", "great"]
    assert spec["test_accuracy"] == result.metrics["finetuned_accuracy"]
    model = AutoModelForSequenceClassification.from_pretrained(folder, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    assert model.config.id2label == {0: "other", 1: "great"}
    _, test_df = parts.reviews(0, runner.QUICK["n_test"], runner.Config.seed)
    enc = tokenizer(
        parts.clean(test_df["review"]),
        truncation=True,
        max_length=spec["max_length"],
        padding=True,
        return_tensors="pt",
    )
    with torch.no_grad():
        pred = model.eval()(**enc).logits.argmax(-1).numpy()
    accuracy = float((pred == parts.labels(test_df)).mean())
    assert accuracy == pytest.approx(result.metrics["finetuned_accuracy"])


def test_missing_or_damaged_model_is_one_line_naming_the_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "empty"))
    with pytest.raises(AiroadError) as missing:
        parts.load_minilm(0)
    assert "airoad data fetch" in str(missing.value) and "\n" not in str(missing.value)

    from airoad.data import load

    monkeypatch.undo()
    real = load(parts.MINILM)
    copy = tmp_path / "data" / parts.MINILM
    shutil.copytree(real, copy, ignore=shutil.ignore_patterns("model.safetensors"))
    (copy / "model.safetensors").symlink_to(real / "model.safetensors")
    (copy / "config.json").write_text("{ damaged", encoding="utf-8")
    monkeypatch.setenv("AIROAD_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(AiroadError) as damaged:
        parts.load_minilm(0)
    assert "airoad data fetch" in str(damaged.value) and "\n" not in str(damaged.value)
