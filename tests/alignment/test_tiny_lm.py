"""The shared tiny policy's rollout pieces and its cache (the QUICK config, a few seconds)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from airoad.alignment import tiny_lm, tiny_task
from airoad.alignment.tiny_task import TOKENIZER

END, PAD = TOKENIZER.end_id, TOKENIZER.pad_id


@pytest.fixture(scope="module")
def policy():
    return tiny_lm.load_sft(tiny_lm.QUICK, note=lambda m: None)


def test_response_mask_keeps_tokens_up_to_the_first_end():
    d = TOKENIZER.encode("5")[0]
    responses = torch.tensor([[d, END, d, END], [d, d, d, d], [END, d, d, d]])
    expected = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    assert torch.equal(tiny_lm.response_mask(responses), expected)


def test_sample_pads_after_end_and_greedy_is_deterministic(policy):
    model, _ = policy
    prompts = tiny_task.prompt_batch(tiny_task.problems(16, seed=3))
    gen = torch.Generator().manual_seed(0)
    r = tiny_lm.sample(model, prompts, temperature=1.0, generator=gen)
    assert r.responses.shape == (16, tiny_lm.MAX_NEW) and torch.equal(r.prompts, prompts)
    assert torch.all(r.responses[~r.mask] == PAD)
    assert torch.equal(r.mask, tiny_lm.response_mask(r.responses.masked_fill(~r.mask, END)))
    a, b = tiny_lm.sample(model, prompts, 0.0), tiny_lm.sample(model, prompts, 0.0)
    assert torch.equal(a.responses, b.responses)


def test_response_logprobs_equal_a_per_position_computation(policy):
    model, _ = policy
    prompts = tiny_task.prompt_batch(tiny_task.problems(6, seed=4))
    r = tiny_lm.sample(model, prompts, 1.0, torch.Generator().manual_seed(1))
    got = tiny_lm.response_logprobs(model, r)
    p = prompts.shape[1]
    for i in range(len(prompts)):
        for t in range(r.responses.shape[1]):
            if not r.mask[i, t]:
                assert got[i, t] == 0.0
                continue
            context = r.ids[i : i + 1, : p + t]
            logp = F.log_softmax(model(context)[0, -1], dim=-1)[r.responses[i, t]]
            torch.testing.assert_close(got[i, t], logp, atol=1e-5, rtol=1e-5)


def test_rewards_and_pairs_follow_the_checker(policy):
    model, _ = policy
    items = tiny_task.problems(40, seed=5)
    r = tiny_lm.sample(model, tiny_task.prompt_batch(items), 1.0, torch.Generator().manual_seed(2))
    texts = tiny_lm.decode(r)
    assert tiny_lm.rewards(items, r).tolist() == [
        float(t == p.answer) for p, t in zip(items, texts)
    ]
    pairs = tiny_lm.preference_pairs(model, items, k=3, seed=0)
    assert pairs, "a barely trained policy must give some wrong samples"
    for pair in pairs:
        assert tiny_task.check(pair.problem, pair.chosen)
        assert not tiny_task.check(pair.problem, pair.rejected)


def test_cached_models_load_identically_and_report_training(policy):
    model, info = policy
    again, info2 = tiny_lm.load_sft(tiny_lm.QUICK, note=lambda m: None)
    for (name, a), b in zip(model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(a, b), name
    assert info == info2 and len(info["sft_losses"]) == tiny_lm.QUICK.sft_steps
    assert info["sft_losses"][-1] < info["sft_losses"][0], "SFT loss must go down"
    _, base_info = tiny_lm.load_base(tiny_lm.QUICK, note=lambda m: None)
    assert len(base_info["pretrain_losses"]) == tiny_lm.QUICK.pretrain_steps
    assert 0.0 <= info["accuracy"] <= 1.0


def test_sft_stops_early_once_the_validation_target_is_met(monkeypatch):
    import dataclasses

    base, _ = tiny_lm.load_base(tiny_lm.QUICK, note=lambda m: None)
    seen = []

    def fake_accuracy(model, items, batch=500):
        seen.append(len(items))
        return 0.5 if len(seen) == 3 else 0.1  # the target is met at the third check

    monkeypatch.setattr(tiny_lm, "accuracy", fake_accuracy)
    _, info = tiny_lm._finetune(base, tiny_lm.QUICK, lambda m: None)
    assert len(info["sft_losses"]) == 3 * tiny_lm.EVAL_EVERY and info["sft_val_accuracy"] == 0.5
    assert seen == [tiny_lm.QUICK.n_val] * 3
    never = dataclasses.replace(tiny_lm.QUICK, sft_stop_at=0.0)
    seen.clear()
    _, info = tiny_lm._finetune(base, never, lambda m: None)
    assert len(info["sft_losses"]) == never.sft_steps, "sft_stop_at=0 trains every step"
