"""The knowledge-distillation runner on real fine-food reviews, with bert-sentiment's quick
MiniLM classifier as the teacher (quick config): the cached teacher logits are the teacher's,
both students train the same steps, our KL equals torch's on the real logits, and the size and
latency table is consistent."""

from __future__ import annotations

import pytest
import torch

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext, make_config
from airoad.labs.runners import bert_sentiment_parts as bert_parts
from airoad.labs.runners import knowledge_distillation as runner
from airoad.labs.runners import knowledge_distillation_parts as parts

CONFIG = runner.Config(**runner.QUICK)


@pytest.fixture(scope="module")
def teacher(lab_artifact):
    lab_artifact("bert-sentiment", "classifier")  # made once per session (quick config)
    return parts.load_teacher("quick")


@pytest.fixture(scope="module")
def result(teacher, tmp_path_factory) -> LabResult:
    return runner.run(CONFIG, RunContext(tmp_path_factory.mktemp("kd")))


def test_cached_teacher_logits_are_the_teachers(teacher, result, tmp_path):
    train_df, test_df = bert_parts.reviews(CONFIG.n_train, CONFIG.n_test, CONFIG.seed)
    frames = {"train": train_df, "test": test_df}
    blind = (None, None, teacher[2])  # a teacher that cannot run: the logits must come cached
    cached = parts.teacher_logits(blind, frames, CONFIG, RunContext(tmp_path))
    assert {k: len(v) for k, v in cached.items()} == {"train": len(train_df), "test": len(test_df)}
    max_length = parts.teacher_spec(teacher[2])["max_length"]
    fresh = parts.teacher_predict(teacher[0], teacher[1], max_length)(list(test_df["review"][:8]))
    torch.testing.assert_close(cached["test"][:8], fresh, rtol=1e-4, atol=1e-4)
    y = torch.as_tensor(bert_parts.labels(test_df))
    assert result.metrics["teacher_accuracy"] == pytest.approx(parts.accuracy(cached["test"], y))


def test_students_train_the_same_steps(result):
    m, hist = result.metrics, result.tables["history"]
    assert result.key_metric == "distilled_accuracy" and result.library_metric == "label_accuracy"
    by = {}
    for h in hist:
        by.setdefault(h["student"], []).append(h)
    assert sorted(by) == ["distilled", "labels only"]
    assert all([h["epoch"] for h in v] == list(range(1, CONFIG.epochs + 1)) for v in by.values())
    assert by["distilled"][-1]["accuracy"] == pytest.approx(m["distilled_accuracy"])
    assert by["labels only"][-1]["accuracy"] == pytest.approx(m["label_accuracy"])
    assert m["gain_points"] == pytest.approx(100 * (m["distilled_accuracy"] - m["label_accuracy"]))
    assert 0 <= m["mcnemar_p"] <= 1 and m["n_test"] == CONFIG.n_test
    assert m["ours_kl"] == pytest.approx(m["torch_kl"], rel=1e-9, abs=1e-12)
    assert m["ours_kl"] > 0, "a two-epoch student cannot match the teacher exactly"


def test_size_and_latency_table(result):
    rows = {r["model"]: r for r in result.tables["models"]}
    teacher, dist, label = (
        rows[runner.TEACHER],
        rows["distilled student"],
        rows["label-only student"],
    )
    assert teacher["parameters"] == 22_713_986, "all-MiniLM-L6-v2 with a 2-class head"
    assert dist["parameters"] == label["parameters"] == result.metrics["student_params"]
    assert dist["size_mb"] == pytest.approx(label["size_mb"])
    assert teacher["size_mb"] > 4 * teacher["parameters"] / 1e6  # fp32: >= 4 bytes a weight
    assert result.metrics["param_ratio"] > 100 and result.metrics["size_ratio"] > 100
    for r in rows.values():
        assert 0 <= r["accuracy"] <= 1 and 0 < r["latency_ms_b1"] and 0 < r["latency_ms_b32"]


def test_sweep_and_figures(result):
    sweep = result.tables["temperature_sweep"]
    assert [r["temperature"] for r in sweep] == list(CONFIG.sweep_temperatures)
    main = next(r for r in sweep if r["temperature"] == CONFIG.temperature)
    assert main["accuracy"] == pytest.approx(result.metrics["distilled_accuracy"])
    assert result.metrics["n_students"] == 1 + len(CONFIG.sweep_temperatures)
    assert all(0 <= r["agreement"] <= 1 for r in sweep)
    assert {p.stem for p in result.figures} == {"learning_curves", "temperature_sweep"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert len(result.notes) == len(runner.NOTES)


@pytest.mark.parametrize(
    "key, value",
    [("temperature", 0.0), ("alpha", 1.5), ("epochs", 0), ("teacher", "huge"), ("n_test", 5)],
)
def test_bad_config_is_one_clear_error(key, value):
    with pytest.raises(ConfigError, match=key):
        make_config(runner.Config, runner.QUICK, True, {key: value})
