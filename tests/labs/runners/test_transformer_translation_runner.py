"""The transformer-translation runner on the real Ding sentence pairs (quick config)."""

from __future__ import annotations

import math

import pytest
import torch

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import transformer_translation as runner
from airoad.labs.runners import transformer_translation_parts as parts
from airoad.transformer.attention import Seq2Seq


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    ctx = RunContext(tmp_path_factory.mktemp("transformer-translation"))
    return runner.run(runner.Config(**runner.QUICK), ctx)


def test_split_has_no_english_leak_and_keeps_groups():
    frame = load("trans-de-en")
    train, test = parts.split_by_english(frame, 1000, 0, seed=0)
    en_train = set(train["en"].map(parts.normalise_english))
    en_test = set(test["en"].map(parts.normalise_english))
    assert en_train.isdisjoint(en_test), "an English sentence is on both sides"
    assert len(train) + len(test) == len(frame)
    assert 1000 <= len(test) < 1010  # whole groups until at least 1000 pairs
    again, _ = parts.split_by_english(frame, 1000, 0, seed=0)
    assert again.equals(train), "the split must be fixed by the seed"
    sources, refs = parts.test_groups(test)
    assert len(sources) == len(en_test) and sum(map(len, refs)) == len(test)
    assert max(map(len, refs)) >= 2, "some sentences have several German references"


def test_quick_run_scores_both_models(result):
    m = result.metrics
    assert result.key_metric == "transformer_beam_bleu"
    assert result.library_metric == "gru_beam_bleu"
    assert m["leaked_sentences"] == 0
    assert m["train_pairs_used"] == runner.QUICK["train_pairs"]
    assert m["test_pairs_used"] >= runner.QUICK["test_pairs"]
    assert m["vocab"] <= runner.QUICK["vocab_size"]
    for name in ("transformer", "gru"):
        for mode in ("greedy", "beam"):
            assert 0.0 <= m[f"{name}_{mode}_bleu"] <= 100.0
        # a few dozen steps still leave the uniform guess (ln V) well behind
        assert m[f"{name}_held_out_loss"] < math.log(m["vocab"])
    rows = result.tables["bleu"]
    assert [(r["model"], r["decoding"]) for r in rows] == [
        ("transformer", "greedy"), ("transformer", "beam 2"), ("gru", "greedy"), ("gru", "beam 2")
    ]  # fmt: skip
    assert rows[1]["bleu_all_refs"] == m["transformer_beam_bleu"]


def test_curves_examples_and_figures(result):
    curve = result.tables["transformer_curve"]
    assert [c["step"] for c in curve] == [0, 20, 40]
    assert curve[-1]["held_out_loss"] < curve[0]["held_out_loss"] - 1.0
    examples = result.tables["examples"]
    assert len(examples) == runner.QUICK["n_examples"]
    assert set(examples[0]) == {"english", "reference", "transformer", "gru"}
    assert [p.name for p in result.figures] == ["loss_curves.png", "cross_attention.png"]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_bad_config_is_one_line():
    with pytest.raises(ConfigError, match="d_model"):
        runner.Config(d_model=30, n_heads=4)


def test_gru_next_logprobs_matches_teacher_forcing():
    torch.manual_seed(0)
    model = Seq2Seq(30, 8, 16, attention=False).eval()
    src = torch.randint(4, 30, (3, 5))
    src[1, 3:] = parts.PAD
    prefix = torch.tensor([[1, 5, 6, 7], [1, 8, 9, 4], [1, 4, 4, 4]])
    got = parts.gru_next_logprobs(model, src)(prefix, torch.arange(3))
    with torch.no_grad():
        want = torch.log_softmax(model(src, src != parts.PAD, prefix)[0][:, -1], dim=-1)
    torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
