"""The bpe-tokenizer runner on real Shakespeare, the Python docs and GPT-2's files (quick)."""

from __future__ import annotations

import pytest

from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import bpe_tokenizer as runner
from airoad.labs.runners.bpe_tokenizer_parts import KEYS


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("bpe")))


def test_ours_equals_tokenizers_trainer_and_gpt2_ids(result):
    m = result.metrics
    assert result.key_metric == "ours_bytes_per_token"
    assert result.library_metric == "hf_bpe_bytes_per_token"
    assert m["train_chars"] == runner.QUICK["train_chars"]
    assert m["merges_match_hf"] == "yes"
    assert m["n_merges"] == runner.QUICK["vocab_size"] - 256
    assert m["ours_bytes_per_token"] == m["hf_bpe_bytes_per_token"]  # same merges, same ids
    assert m["gpt2_id_mismatches"] == 0 and m["gpt2_tokens"] > 5_000
    assert m["ours_lossless"] == "yes"
    assert m["ours_train_s"] > 0 and m["train_ratio"] == m["ours_train_s"] / m["hf_train_s"]


def test_compression_table(result):
    rows = result.tables["compression"]
    assert len(rows) == 2 * len(KEYS)
    by = {(r["tokenizer"], r["corpus"]): r for r in rows}
    for corpus in ("shakespeare", "python-docs"):
        ours, gpt2 = by[KEYS["ours"], corpus], by[KEYS["gpt2"], corpus]
        # 512 tokens learned from 100 k characters against GPT-2's 50,257
        assert 1.3 < ours["bytes_per_token"] < gpt2["bytes_per_token"]
        assert gpt2["tokens_per_word"] < ours["tokens_per_word"]
        assert ours["lossless"] and gpt2["lossless"]
    assert result.metrics["most_compact"] in ("ours", "wordpiece", "unigram")
    sizes = {r["tokenizer"]: r["vocab_size"] for r in result.tables["library_training"]}
    assert sizes == {KEYS["wordpiece"]: 512, KEYS["unigram"]: 512}


def test_vocab_sweep_and_first_merges(result):
    sweep = result.tables["vocab_sweep"]
    assert [r["vocab_size"] for r in sweep] == sorted(runner.QUICK["sweep_sizes"])
    assert sweep[0]["bytes_per_token"] < sweep[-1]["bytes_per_token"]  # more tokens, longer
    assert sweep[-1]["bytes_per_token"] == result.metrics["ours_bytes_per_token"]
    merges = result.tables["first_merges"]
    assert len(merges) == runner.Config.show_merges
    assert all(m["token"] == m["left"] + m["right"] for m in merges)


def test_figures_are_written(result):
    names = [p.name for p in result.figures]
    assert names == ["compression.png", "vocab_sweep.png", "token_lengths.png"]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_too_much_training_text_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="train_chars"):
        runner.run(runner.Config(train_chars=10_000_000), RunContext(tmp_path))
