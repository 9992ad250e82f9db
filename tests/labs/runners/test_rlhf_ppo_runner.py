"""The rlhf-ppo runner on the quick config (tiny_lm.QUICK policy and reward model): every beta
trains, the first iteration starts exactly at the SFT policy (KL 0), the KL estimators stay in
range, figures are written; the SmolLM2 path runs end to end on a tiny random Llama with
SmolLM2's tokenizer (LoRA starts as a no-op, so its first KL to the reference is 0)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
import torch

from airoad.alignment import tiny_task
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import validate_config
from airoad.labs.runners import rlhf_ppo as runner
from airoad.labs.runners import rlhf_ppo_parts as parts


@pytest.fixture(scope="module")
def result(tmp_path_factory) -> LabResult:
    return runner.run(runner.Config(**runner.QUICK), RunContext(tmp_path_factory.mktemp("ppo")))


def test_every_beta_trains_from_the_sft_policy(result):
    rows, cfg = result.tables["curves"], runner.Config(**runner.QUICK)
    assert [(r["beta"], r["iteration"]) for r in rows] == [
        (b, i + 1) for b in cfg.betas for i in range(cfg.iterations)
    ]
    for r in rows:
        assert all(math.isfinite(v) for v in r.values() if isinstance(v, float)), r
        assert r["kl_k2"] >= 0 and r["kl_k3"] >= 0 and 0 <= r["clipfrac"] <= 1
        assert 1 <= r["length"] <= 5 and 0 <= r["accuracy"] <= 1
        if r["iteration"] == 1:  # the policy IS the SFT policy before its first update
            assert r["kl_k1"] == 0 and r["kl_k3"] == 0, "first iteration must have KL 0"
    firsts = [r for r in rows if r["iteration"] == 1]
    assert len({f["rm_score"] for f in firsts}) == 1, "same seed, same first samples"


def test_metrics_checkpoints_and_figures(result):
    m = result.metrics
    assert m["n_held"] == 200 and 0 <= m["kl_accuracy"] <= 1 and "hacking" in m
    assert m["sft_accuracy"] == pytest.approx(m["sft_cached_accuracy"])
    checks = result.tables["checkpoints"]
    betas = runner.Config(**runner.QUICK).betas
    assert [c["iteration"] for c in checks] == [0, 2, 3] * len(betas)
    assert {p.stem for p in result.figures} == {"reward_and_kl", "reward_hacking"}
    assert all(p.stat().st_size > 10_000 for p in result.figures)
    assert len(result.notes) == 3 and f"beta = {max(betas):g}" in result.notes[1]


def test_real_scale_loop_on_a_tiny_llama():
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from airoad.data import models

    tok = models._pretrained(
        models.SMOLLM2, lambda f: AutoTokenizer.from_pretrained(f, local_files_only=True)
    )
    tok.padding_side = "left"
    torch.manual_seed(0)
    lm = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=16, num_hidden_layers=2,
                                      num_attention_heads=2, intermediate_size=32)).eval()  # fmt: skip
    cfg = replace(runner.Config(), real_iterations=2, real_batch=4, real_max_new=4, minibatch=2,
                  ppo_epochs=1, real_lr=1e-2)  # fmt: skip
    held = tiny_task.problems(4, seed=0, split="test", digits=2)

    def longer_is_better(items, texts):  # a random model is never right: reward length instead
        return torch.tensor([float(len(t)) for t in texts])

    out = parts.train_real(cfg, lm, tok, held, lambda xs, _: xs, longer_is_better)
    assert 0 <= out["before"]["accuracy"] <= 1 and 0 <= out["after"]["accuracy"] <= 1
    assert out["after"]["score"] > out["before"]["score"], "PPO must raise the (length) reward"
    first, second = out["rows"]
    assert first["kl_k1"] == 0 and first["kl_k3"] == 0, "LoRA starts as a no-op: KL must be 0"
    assert second["kl_k3"] > 0, "after an update the adapters must move the policy"
    assert 1 <= first["length"] <= 4 and first["reward"] > 0 and 0 <= first["accuracy"] <= 1


def test_config_out_of_range_is_rejected():
    with pytest.raises(ConfigError, match="clip"):
        validate_config(replace(runner.Config(), clip=1.5))
    with pytest.raises(ConfigError, match="betas"):
        validate_config(replace(runner.Config(), betas=(-1.0,)))
    with pytest.raises(ConfigError, match="betas"):
        runner.Config(betas=())
    with pytest.raises(ConfigError, match="minibatch"):
        runner.Config(batch=8, minibatch=16)
