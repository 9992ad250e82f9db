"""Grader for reward-model: the Bradley-Terry loss against hand-computed values and gradients,
huge margins, and trl's RewardTrainer.compute_loss on a fixed batch of a tiny random Llama
reward model; the last-real-token read-out against transformers' sequence-classification
pooling; the reward model's hidden states against the GPT's own logits; pair encoding,
format-broken answers, calibration bins against scikit-learn, and a short training run."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import torch
from sklearn.calibration import calibration_curve

from airoad.alignment import tiny_task
from airoad.alignment.tiny_task import TOKENIZER, Problem
from airoad.transformer.char_gpt import GPT, GPTConfig

REFERENCE = "airoad.alignment.reward_model"

D = torch.float64


def tiny_gpt(seed: int = 0, n_layer: int = 1, n_embd: int = 16) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(TOKENIZER.vocab_size, 32, n_layer, 2, n_embd))


@pytest.fixture(scope="module")
def trl_trainer(tmp_path_factory):
    """trl's RewardTrainer on a seeded tiny random Llama sequence classifier (built once)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForSequenceClassification, PreTrainedTokenizerFast
    from trl import RewardConfig, RewardTrainer

    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("0123456789+=")}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(vocab), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64, num_labels=1,
        pad_token_id=0,
    )  # fmt: skip
    pairs = {"chosen": ["12+30=42", "7+8=15", "99+1=100"], "rejected": ["12+30=43", "7+8=1", "99+1=10"]}  # fmt: skip
    args = RewardConfig(
        output_dir=str(tmp_path_factory.mktemp("trl-rm")), report_to=[], use_cpu=True,
        per_device_train_batch_size=3,
    )  # fmt: skip
    trainer = RewardTrainer(
        model=LlamaForSequenceClassification(config), args=args,
        train_dataset=Dataset.from_dict(pairs), processing_class=fast,
    )  # fmt: skip
    batch = dict(next(iter(trainer.get_train_dataloader())))
    return trainer, batch


def _grads(model: torch.nn.Module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in model.parameters() if p.grad is not None]


def test_loss_hand_values(impl):
    """bradley_terry_loss is the mean of -log sigmoid(r_c - r_r - margin) (log(1 + e^-d))."""
    r_c = torch.tensor([2.0, 0.0, -1.0], dtype=D)
    r_r = torch.tensor([0.0, 0.0, 1.0], dtype=D)
    want = (math.log1p(math.exp(-2)) + math.log(2) + math.log1p(math.exp(2))) / 3
    torch.testing.assert_close(impl.bradley_terry_loss(r_c, r_r), torch.tensor(want, dtype=D))
    margin = torch.tensor([1.0, -1.0, 0.5], dtype=D)
    want_m = (math.log1p(math.exp(-1)) + math.log1p(math.exp(-1)) + math.log1p(math.exp(2.5))) / 3  # fmt: skip
    got = impl.bradley_terry_loss(r_c, r_r, margin)
    torch.testing.assert_close(got, torch.tensor(want_m, dtype=D), msg="margin is subtracted")


def test_loss_hand_gradients(impl):
    """d loss / d r_c = -sigmoid(r_r - r_c) / N and d loss / d r_r is its negative."""
    r_c = torch.tensor([1.5, -0.3, 0.2, 4.0], dtype=D, requires_grad=True)
    r_r = torch.tensor([0.5, 0.7, 0.2, -1.0], dtype=D, requires_grad=True)
    impl.bradley_terry_loss(r_c, r_r).backward()
    want = -torch.sigmoid(r_r - r_c).detach() / 4
    torch.testing.assert_close(r_c.grad, want, msg="gradient w.r.t. the chosen rewards")
    torch.testing.assert_close(r_r.grad, -want, msg="gradient w.r.t. the rejected rewards")
    assert torch.autograd.gradcheck(impl.bradley_terry_loss, (r_c, r_r), eps=1e-6, atol=1e-8)


def test_loss_is_stable_for_huge_margins(impl):
    """Margins of +-1e4 in float32 give losses 0 and 1e4 with finite gradients (use logsigmoid)."""
    r_c = torch.tensor([1e4, -1e4], requires_grad=True)
    r_r = torch.zeros(2, requires_grad=True)
    loss = impl.bradley_terry_loss(r_c, r_r)
    assert torch.isfinite(loss), f"loss {loss} is not finite"
    torch.testing.assert_close(loss, torch.tensor(5e3), msg="mean of 0 and 1e4")
    loss.backward()
    torch.testing.assert_close(r_c.grad, torch.tensor([0.0, -0.5]))
    assert torch.isfinite(r_r.grad).all()


def test_loss_equals_trl_reward_trainer(impl, trl_trainer):
    """On trl's own batch and model, our loss and its gradients equal RewardTrainer.compute_loss."""
    trainer, batch = trl_trainer
    model = trainer.model
    for margin in (None, torch.tensor([0.5, -1.0, 2.0])):
        inputs = dict(batch) | ({} if margin is None else {"margin": margin})
        model.zero_grad()
        want = trainer.compute_loss(model, inputs)
        want.backward()
        want_grads = _grads(model)
        model.zero_grad()
        rewards = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        r_c, r_r = rewards.logits.squeeze(-1).chunk(2)
        got = impl.bradley_terry_loss(r_c, r_r, 0.0 if margin is None else margin)
        got.backward()
        torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-7, msg="loss differs from trl's")
        for g, w in zip(_grads(model), want_grads, strict=True):
            torch.testing.assert_close(
                g, w, rtol=1e-5, atol=1e-7, msg="gradient differs from trl's"
            )


def test_probability_and_accuracy(impl):
    """P(chosen > rejected) = sigmoid(r_c - r_r); accuracy counts r_c > r_r, ties as one half."""
    r_c = torch.tensor([1.0, 0.0, 2.0, -3.0])
    r_r = torch.tensor([0.0, 0.0, 3.0, -4.0])
    torch.testing.assert_close(impl.preference_probability(r_c, r_r), torch.sigmoid(r_c - r_r))
    assert impl.pairwise_accuracy(r_c, r_r) == pytest.approx((1 + 0.5 + 0 + 1) / 4)
    with pytest.raises(ValueError):
        impl.pairwise_accuracy(torch.zeros(0), torch.zeros(0))


def test_calibration_matches_sklearn(impl):
    """calibration bins both orders of every pair like sklearn's calibration_curve (uniform)."""
    gen = torch.Generator().manual_seed(0)
    p = torch.rand(400, generator=gen, dtype=D) * 0.98 + 0.01
    mean_pred, observed, count = impl.calibration(p, n_bins=8)
    pred = np.concatenate([p.numpy(), 1 - p.numpy()])
    y = np.concatenate([np.ones(400), np.zeros(400)])
    prob_true, prob_pred = calibration_curve(y, pred, n_bins=8, strategy="uniform")
    full = count > 0
    np.testing.assert_allclose(mean_pred[full], prob_pred, atol=1e-12, err_msg="mean predicted")
    np.testing.assert_allclose(observed[full], prob_true, atol=1e-12, err_msg="observed frequency")
    assert count.sum() == 800 and np.allclose(observed + observed[::-1], 1.0)


def test_expected_calibration_error(impl):
    """ECE is the count-weighted mean gap |observed - predicted| over the bins."""
    p = torch.tensor([0.9, 0.9, 0.9, 0.9], dtype=D)  # observed 1 in the 0.9 bin, 0 in the 0.1 bin
    assert impl.expected_calibration_error(p, n_bins=10) == pytest.approx(0.1)
    half = torch.full((6,), 0.5, dtype=D)  # both orders land in one bin: observed 1/2
    assert impl.expected_calibration_error(half, n_bins=10) == pytest.approx(0.0)
    for bad in (torch.zeros(0), torch.tensor([0.5, float("nan")])):
        with pytest.raises(ValueError):
            impl.calibration(bad)


def test_last_token_index_matches_transformers_pooling(impl):
    """last_token_index picks the same position as LlamaForSequenceClassification (last non-pad)."""
    ids = torch.tensor(
        [[5, 6, 7, 0, 0, 0], [5, 6, 7, 8, 9, 4], [5, 0, 0, 0, 0, 0], [0, 0, 5, 6, 0, 0]]
    )
    non_pad = (ids != 0).int()
    want = (torch.arange(6, dtype=torch.int32) * non_pad).argmax(-1)  # transformers 5.x
    assert impl.last_token_index(ids != 0).tolist() == want.tolist()
    with pytest.raises(ValueError):
        impl.last_token_index(torch.tensor([[True, False], [False, False]]))


def test_hidden_states_give_the_gpt_logits(impl):
    """RewardModel.hidden(ids) @ wte.T equals the GPT's logits (the backbone is the GPT's)."""
    gpt = tiny_gpt(n_layer=2).double()
    model = impl.RewardModel(gpt).double().eval()
    ids = torch.randint(0, TOKENIZER.vocab_size, (3, 11), generator=torch.Generator().manual_seed(1))  # fmt: skip
    torch.testing.assert_close(model.hidden(ids) @ gpt.wte.weight.T, gpt(ids))


def test_reward_reads_the_last_real_token(impl):
    """The reward is head(hidden at the last True of mask): padding after it changes nothing."""
    model = impl.RewardModel(tiny_gpt(seed=2)).double().eval()
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(5, TOKENIZER.vocab_size, (4, 9), generator=gen)
    lengths = torch.tensor([9, 4, 6, 1])
    mask = torch.arange(9)[None, :] < lengths[:, None]
    r = model(ids, mask)
    assert r.shape == (4,)
    h = model.hidden(ids)[torch.arange(4), lengths - 1]
    torch.testing.assert_close(r, model.head(h).squeeze(-1))
    noisy = torch.where(mask, ids, torch.randint(0, 5, ids.shape, generator=gen))
    torch.testing.assert_close(model(noisy, mask), r, msg="tokens after the last real one leaked in")  # fmt: skip
    changed = ids.clone()
    changed[1, 3] = 5 if ids[1, 3] != 5 else 6
    assert model(changed, mask)[1] != r[1], "the last real token must change the reward"


def test_response_tokens_and_encode(impl):
    """A response ends with <end> unless it fills MAX_NEW; rows are right-padded with a mask."""
    from airoad.alignment.tiny_lm import MAX_NEW

    assert impl.response_tokens("52") == [*TOKENIZER.encode("52"), TOKENIZER.end_id]
    assert impl.response_tokens("1" * MAX_NEW) == TOKENIZER.encode("1" * MAX_NEW)
    items = [Problem(42, 57), Problem(1, 2)]
    ids, mask = impl.encode(items, ["99", "3"])
    p = tiny_task.chat_prompt(items[0].prompt)
    assert ids[0].tolist() == [*p, *TOKENIZER.encode("99"), TOKENIZER.end_id]
    assert ids[1].tolist() == [*tiny_task.chat_example("01+02", "3"), TOKENIZER.pad_id]
    assert mask.sum(1).tolist() == [len(p) + 3, len(p) + 2] and mask.dtype == torch.bool


def test_format_broken_answers_are_wrong_but_keep_the_digits(impl):
    """Both format-broken kinds contain the right digits yet fail the task's checker."""
    from airoad.alignment.tiny_lm import MAX_NEW

    for problem in (Problem(1, 2), Problem(42, 31), Problem(99, 99), Problem(0, 0)):
        zeros, run_on = impl.format_broken(problem, 0), impl.format_broken(problem, 1)
        assert zeros.lstrip("0") == problem.answer.lstrip("0") and zeros.startswith("0")
        assert run_on == problem.answer + problem.answer[-1] * (MAX_NEW - len(problem.answer))
        assert not tiny_task.check(problem, zeros) and not tiny_task.check(problem, run_on)


def test_pairs_are_judged_by_the_checker(impl):
    """build_pairs: every chosen passes the checker, every rejected fails; tensors line up."""
    items = tiny_task.problems(40, seed=5)
    pairs = impl.build_pairs(tiny_gpt(seed=4), items, k=2, format_fraction=0.5, seed=0)
    assert len(pairs) >= 40, "a random policy is wrong on every problem, plus format pairs"
    assert all(tiny_task.check(p.problem, p.chosen) for p in pairs)
    assert not any(tiny_task.check(p.problem, p.rejected) for p in pairs)
    ids_c, mask_c, ids_r, mask_r = impl.pair_tensors(pairs)
    assert ids_c.shape == ids_r.shape == mask_c.shape == mask_r.shape
    row = impl.encode([pairs[0].problem], [pairs[0].rejected])[0][0]
    assert ids_r[0, : len(row)].tolist() == row.tolist()


def test_training_separates_a_learnable_preference(impl):
    """train_reward_model drives the loss down and ranks the pairs right; same seed, same run."""
    items = tiny_task.problems(64, seed=6)
    good = impl.encode(items, [p.answer for p in items])
    bad = impl.encode(items, [impl.format_broken(p, 1) for p in items])
    width = max(good[0].shape[1], bad[0].shape[1])
    pad = lambda t, v: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
    tensors = (pad(good[0], 0), pad(good[1], False), pad(bad[0], 0), pad(bad[1], False))
    runs = []
    for _ in range(2):
        model = impl.RewardModel(tiny_gpt(seed=7))
        losses = impl.train_reward_model(model, tensors, steps=40, batch=16, lr=3e-3, seed=1)
        runs.append(losses)
    assert len(runs[0]) == 40 and runs[0] == runs[1], "the seed must fix the run"
    assert np.mean(runs[0][-5:]) < 0.5 * np.mean(runs[0][:5]), f"loss did not fall: {runs[0]}"
    model.eval()
    r_c, r_r = impl.rewards_of(model, tensors[0], tensors[1]), impl.rewards_of(model, tensors[2], tensors[3])  # fmt: skip
    assert impl.pairwise_accuracy(r_c, r_r) > 0.9


def test_real_head_equals_llama_sequence_classifier(impl):
    """RealRewardModel on a Llama decoder equals LlamaForSequenceClassification (values, grads)."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32, num_labels=1,
        pad_token_id=0,
    )  # fmt: skip
    hf = LlamaForSequenceClassification(config).eval()
    ours = impl.RealRewardModel(hf.model, 16).eval()
    with torch.no_grad():
        ours.head.weight.copy_(hf.score.weight)
        ours.head.bias.zero_()
    ids = torch.randint(1, 20, (3, 7), generator=torch.Generator().manual_seed(0))
    ids[0, 5:], ids[2, 2:] = 0, 0  # right padding
    mask = ids != 0
    want = hf(input_ids=ids, attention_mask=mask.long()).logits.squeeze(-1)
    want.sum().backward()
    want_grads = _grads(hf.model)
    hf.zero_grad()
    got = ours(ids, mask)
    torch.testing.assert_close(got, want, msg="reward differs from the sequence classifier's")
    got.sum().backward()
    for g, w in zip(_grads(hf.model), want_grads, strict=True):
        torch.testing.assert_close(g, w, msg="decoder gradient differs")


def test_near_miss_is_a_close_wrong_answer(impl):
    """near_miss is off by 1, 2, 10 or 11, never negative, and fails the checker."""
    rng, gaps = np.random.default_rng(0), set()
    for problem in tiny_task.problems(200, seed=1) + [Problem(0, 0), Problem(0, 1)]:
        wrong = impl.near_miss(problem, rng)
        gaps.add(int(wrong) - (problem.a + problem.b))
        assert int(wrong) >= 0 and not tiny_task.check_text(problem, wrong), f"{problem}: {wrong}"
    assert gaps == {-11, -10, -2, -1, 1, 2, 10, 11}, f"gaps seen: {sorted(gaps)}"


def test_real_pairs_are_chats_of_the_right_sum_and_a_near_miss(impl):
    """real_pair_tensors: chat-templated rows, right-padded, chosen = the sum, rejected = wrong."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = "0123456789+?WhatisRplywhnumbroly. |<>_"
    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate(dict.fromkeys(chars))}}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<eos>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", "isolated")
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>")
    fast.chat_template = "{% for m in messages %}{{ m['role'][0] }}|{{ m['content'] }}|{% endfor %}"
    items = [Problem(3, 4), Problem(75, 25)]
    ids_c, mask_c, ids_r, mask_r = impl.real_pair_tensors(fast, items, seed=0)
    assert ids_c.shape == ids_r.shape == mask_c.shape == mask_r.shape and ids_c.shape[0] == 2
    for row, m, problem in zip(ids_c, mask_c, items):
        text = fast.decode(row[m]).replace(" ", "")
        assert text.endswith(f"a|{problem.answer}|"), text
        assert bool(m[: int(m.sum())].all()) and not bool(m[int(m.sum()) :].any()), "right padding"
    for row, m, problem in zip(ids_r, mask_r, items):
        reply = fast.decode(row[m]).replace(" ", "").rsplit("a|", 1)[1].rstrip("|")
        assert not tiny_task.check_text(problem, reply) and abs(int(reply) - problem.a - problem.b) <= 11  # fmt: skip


def test_held_out_pairs_use_the_test_split(impl):
    """held_out_pairs builds its pairs on test-split problems only (never trained on)."""
    rm = impl.RMConfig(n_eval_problems=30, k=2, format_fraction=0.3, seed=3)
    pairs = impl.held_out_pairs(tiny_gpt(seed=8), rm)
    a, b = (np.array([getattr(p.problem, f) for p in pairs]) for f in "ab")
    assert len(pairs) >= 30 and tiny_task._is_test(a, b).all(), "a pair from the train split"
    r_c, r_r = impl.score_pairs(impl.RewardModel(tiny_gpt(seed=9)).eval(), impl.pair_tensors(pairs))
    assert r_c.shape == r_r.shape == (len(pairs),) and not r_c.requires_grad
