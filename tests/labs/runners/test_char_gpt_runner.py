"""The char-gpt runner on real Shakespeare (quick config)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.runners import char_gpt as runner
from airoad.transformer.bpe_tokenizer import ByteBPE
from airoad.transformer.char_gpt import GPT, GPTConfig
from airoad.transformer.gpt_training import CharVocab, evaluate


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("char-gpt")


@pytest.fixture(scope="module")
def result(run_dir) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(run_dir))


def test_quick_training_learns_and_torch_layers_agree(result):
    m = result.metrics
    assert result.key_metric == "val_loss" and result.library_metric == "torch_layers_val_loss"
    assert m["val_chars"] == runner.QUICK["val_chars"]
    assert m["steps"] == runner.QUICK["steps"]
    # uniform is ln(V) = 4.32; 150 small steps reach about 2.6 (bigram counts: 2.44)
    assert m["val_loss"] < m["uniform_loss"] - 1.2
    assert math.isclose(m["val_bits"], m["val_loss"] / math.log(2))
    assert abs(m["torch_layers_val_loss"] - m["val_loss"]) < 1e-4
    assert m["attention_max_abs_diff"] < 1e-5
    curve = result.tables["curve"]
    assert curve[0]["step"] == 0 and curve[-1]["step"] == runner.QUICK["steps"]
    assert curve[-1]["curve_val_loss"] < curve[0]["curve_val_loss"] - 1.0


def test_training_resumed_from_its_checkpoint(result, run_dir):
    assert result.metrics["resume_step"] == runner.QUICK["steps"] // 2
    assert result.metrics["resume_step"] in [c["step"] for c in result.tables["curve"]]
    saved = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert saved["step"] == result.metrics["resume_step"]
    assert {"model", "optimizer", "generator", "torch_rng"} <= set(saved)


def test_kv_cache_matches_and_is_timed(result):
    m = result.metrics
    assert m["cache_max_abs_logit_diff"] < 1e-10  # float64, a real held-out window
    rows = result.tables["kv_cache"]
    assert [r["tokens"] for r in rows] == list(runner.QUICK["cache_lengths"])
    # greedy tokens agree while prompt + new tokens fit in block_size
    fits = [
        r for r in rows if len(runner.Config.prompt) + r["tokens"] <= runner.QUICK["block_size"]
    ]
    assert fits and all(r["same_tokens"] for r in fits)
    assert m["cache_seconds"] > 0 and m["nocache_seconds"] > 0
    assert m["cache_speedup"] == pytest.approx(m["nocache_seconds"] / m["cache_seconds"])


def test_samples_continue_the_prompt(result):
    samples = result.tables["samples"]
    assert [s["temperature"] for s in samples] == [runner.Config.temperature, 0.0]
    for s in samples:
        assert s["text"].startswith(runner.Config.prompt)
        assert len(s["text"]) == len(runner.Config.prompt) + runner.QUICK["sample_chars"]


def test_figures_are_written(result):
    assert [p.name for p in result.figures] == ["loss_curve.png", "kv_cache.png"]
    for path in result.figures:
        assert path.stat().st_size > 5_000, f"{path.name} looks empty"


def test_model_artifact_rebuilds_the_same_model(result, run_dir):
    """Called directly with a plain RunContext, the artifact lands in the run folder."""
    folder = run_dir / "artifacts" / "model"
    spec = json.loads((folder / "model.json").read_text(encoding="utf-8"))
    assert spec["dataset"] == "shakespeare" and spec["val_loss"] == result.metrics["val_loss"]
    model = GPT(GPTConfig(**spec["config"]))
    model.load_state_dict(torch.load(folder / "model.pt", weights_only=True))  # strict
    assert model.lm_head.weight is model.wte.weight  # tying survives the reload
    assert sum(p.numel() for p in model.parameters()) == result.metrics["n_parameters"]
    vocab = CharVocab("".join(spec["vocab"]))
    assert vocab.chars == spec["vocab"] and len(vocab.chars) == result.metrics["vocab_size"]
    text = "ROMEO.\nWhat light through yonder window breaks?\n" * 3
    loss = evaluate(model, vocab.encode(text), spec["config"]["block_size"])
    assert loss < result.metrics["uniform_loss"]


@pytest.fixture(scope="module")
def bpe_result(tmp_path_factory) -> tuple[LabResult, object]:
    folder = tmp_path_factory.mktemp("char-gpt-bpe")
    # a shorter run than QUICK: learning the merges and encoding take a few seconds of their own
    quick = {**runner.QUICK, "text_chars": 250_000, "steps": 100}
    config = runner.Config(**{**quick, "tokens": "bpe", "bpe_vocab": 512})
    return runner.run(config, RunContext(folder)), folder


def test_characters_are_their_own_tokens(result):
    m = result.metrics
    assert m["chars_per_token"] == 1.0 and m["val_loss"] == m["val_loss_per_token"]


def test_bpe_variant_is_scored_per_character(bpe_result):
    """The BPE run trains on token ids but reports nats per character, like the char run."""
    result, folder = bpe_result
    m = result.metrics
    assert m["vocab_size"] == 512 and 1.8 < m["chars_per_token"] < 3.0
    assert m["val_loss"] == pytest.approx(m["val_loss_per_token"] / m["chars_per_token"])
    assert abs(m["torch_layers_val_loss"] - m["val_loss"]) < 1e-4
    # per character: uniform over 512 ids is about 3.26 nats, 100 small steps reach about 2.46
    assert m["val_loss"] < m["uniform_loss"] - 0.5
    spec = json.loads((folder / "artifacts" / "model" / "model.json").read_text("utf-8"))
    assert spec["tokens"] == "bpe" and "vocab" not in spec
    bpe = ByteBPE(spec["bpe"]["vocab"], [tuple(pair) for pair in spec["bpe"]["merges"]])
    text = "ROMEO.\nWhat light through yonder window breaks?\n"
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text and len(ids) < len(text) / 1.5
    sample = result.tables["samples"][0]["text"]
    assert sample.startswith(runner.Config.prompt) and len(sample) > runner.QUICK["sample_chars"]
