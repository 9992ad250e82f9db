"""Grader for grpo: group-relative advantages (hand cases, an all-equal group, properties), the
k3 KL estimator (its expectation is torch's exact KL), the clipped surrogate and the two loss
normalisations against hand cases, and the whole loss against trl 1.16's GRPOTrainer on a fixed
batch of a tiny random Llama (values and gradients)."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.alignment.grpo"

FAST = settings(max_examples=25, deadline=None)
D = torch.float64


# ------------------------------------------------------------------ advantages


def test_group_advantages_hand_case(impl):
    """Advantages are (r - group mean) / (sample std + eps), one group per G consecutive rows."""
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 3.0, 0.0, 0.0, 0.0], dtype=D)
    got = impl.group_advantages(r, 4, eps=1e-4)
    s1, s2 = math.sqrt(1 / 3), 1.5  # sample stds of (1, 0, 0, 1) and (3, 0, 0, 0)
    want = [0.5 / (s1 + 1e-4), -0.5 / (s1 + 1e-4), -0.5 / (s1 + 1e-4), 0.5 / (s1 + 1e-4),
            2.25 / (s2 + 1e-4), -0.75 / (s2 + 1e-4), -0.75 / (s2 + 1e-4), -0.75 / (s2 + 1e-4)]  # fmt: skip
    torch.testing.assert_close(got, torch.tensor(want, dtype=D), rtol=1e-12, atol=1e-12)


def test_all_equal_group_gives_zero_advantage(impl):
    """A group whose rewards are all equal gets advantage exactly 0 (no NaN), others unaffected."""
    r = torch.tensor([1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0])
    got = impl.group_advantages(r, 3)
    assert torch.isfinite(got).all(), f"expected finite advantages, got {got}"
    assert torch.equal(got[:6], torch.zeros(6)), f"all-equal groups must give 0, got {got[:6]}"
    assert got[6] > 0 and got[7] < 0, "the right answer in a mixed group must get A > 0"


def test_group_advantages_reject_bad_input(impl):
    """Groups of one, a batch that is not a multiple of G and NaN rewards are ValueErrors."""
    with pytest.raises(ValueError, match="group_size"):
        impl.group_advantages(torch.ones(4), 1)
    with pytest.raises(ValueError, match="multiple"):
        impl.group_advantages(torch.ones(5), 2)
    with pytest.raises(ValueError, match="finite"):
        impl.group_advantages(torch.tensor([1.0, float("nan")]), 2)


@FAST
@given(
    st.lists(st.floats(-5, 5), min_size=12, max_size=12),
    st.sampled_from([2, 3, 4, 6]),
    st.floats(-3, 3),
    st.floats(0.5, 4),
)
def test_group_advantages_properties(impl, values, g, shift, scale):
    """Each group's advantages have mean 0 and do not change when rewards are shifted/scaled."""
    r = torch.tensor(values, dtype=D)
    a = impl.group_advantages(r, g, eps=1e-12)
    groups = a.view(-1, g)
    spread = r.view(-1, g).std(dim=1) > 1e-3
    torch.testing.assert_close(groups.mean(1), torch.zeros(len(groups), dtype=D), atol=1e-9, rtol=0)
    b = impl.group_advantages(shift + scale * r, g, eps=1e-12).view(-1, g)
    torch.testing.assert_close(b[spread], groups[spread], atol=1e-6, rtol=1e-6)


# ------------------------------------------------------------------ the KL estimator


def test_k3_hand_case_and_zero_at_equal(impl):
    """k3 = exp(ref - logp) - (ref - logp) - 1: 0.5 + ln 2 - 1 for p = 1/2, p_ref = 1/4."""
    logp = torch.log(torch.tensor([0.5, 0.3, 0.25], dtype=D))
    ref = torch.log(torch.tensor([0.25, 0.3, 0.5], dtype=D))
    want = torch.tensor([0.5 + math.log(2) - 1, 0.0, 2.0 - math.log(2) - 1], dtype=D)
    torch.testing.assert_close(impl.k3_kl(logp, ref), want, rtol=1e-12, atol=1e-12)


def test_k3_expectation_is_torch_kl(impl):
    """Averaged over tokens drawn from pi, k3 is exactly KL(pi || pi_ref) (torch's kl_div)."""
    g = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(5, 7, generator=g, dtype=D), -1)
    ref = torch.log_softmax(torch.randn(5, 7, generator=g, dtype=D), -1)
    expected_k3 = (logp.exp() * impl.k3_kl(logp, ref)).sum(-1)
    exact = F.kl_div(ref, logp, log_target=True, reduction="none").sum(-1)  # KL(pi || ref)
    torch.testing.assert_close(expected_k3, exact, rtol=1e-10, atol=1e-12)
    assert (impl.k3_kl(logp, ref) >= 0).all(), "k3 must never be negative"


# ------------------------------------------------------------------ surrogate and aggregation


def test_clipped_surrogate_hand_case_and_gradient(impl):
    """-min(ratio A, clip(ratio) A): the clip binds (zero gradient) only where it is pessimistic."""
    ratio = torch.tensor([[1.5, 0.5, 0.5, 1.5, 1.1]], dtype=D)
    adv = torch.tensor([[1.0, 1.0, -1.0, -1.0, 2.0]], dtype=D)
    logp = torch.log(ratio).requires_grad_()
    loss = impl.clipped_surrogate(logp, torch.zeros_like(logp), adv, 0.2)
    torch.testing.assert_close(loss, torch.tensor([[-1.2, -0.5, 0.8, 1.5, -2.2]], dtype=D))
    loss.sum().backward()
    want = torch.tensor([[0.0, -0.5, 0.0, 1.5, -2.2]], dtype=D)  # d(-ratio A)/dlogp = -ratio A
    torch.testing.assert_close(logp.grad, want, rtol=1e-12, atol=1e-12)


def test_clipped_surrogate_asymmetric_clip(impl):
    """epsilon_high widens only the upper clip bound (DAPO's clip-higher); (B,) advantages broadcast."""
    ratio = torch.tensor([[1.25, 0.75], [1.35, 0.7]], dtype=D)
    got = impl.clipped_surrogate(ratio.log(), torch.zeros(2, 2, dtype=D),
                                 torch.tensor([1.0, -1.0], dtype=D), 0.2, 0.28)  # fmt: skip
    # A = +1: 1.25 is inside [0.8, 1.28] (symmetric 0.2 would clip it to 1.2); A = -1: the
    # unclipped 1.35 is the pessimistic side, and 0.7 is held at 0.8.
    want = torch.tensor([[-1.25, -0.75], [1.35, 0.8]], dtype=D)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_clip_fraction_hand_case(impl):
    """clip_fraction counts real tokens where the clip binds: ratio > 1 + eps with A > 0, < 1 - eps with A < 0."""
    ratio = torch.tensor(
        [[1.5, 0.5, 1.19], [0.5, 1.5, 0.81], [0.5, 1.0, 1.05], [1.5, 0.5, 1.0]], dtype=D
    )
    logp, old = ratio.log(), torch.zeros(4, 3, dtype=D)
    adv = torch.tensor([1.0, -1.0, 0.5, 0.0], dtype=D)
    every = torch.ones(4, 3, dtype=torch.bool)  # A = 0 (last row) is never clipped
    assert impl.clip_fraction(logp, old, adv, every, 0.2) == pytest.approx(2 / 12)
    mask = every.clone()
    mask[0, 0] = False
    assert impl.clip_fraction(logp, old, adv, mask, 0.1) == pytest.approx(3 / 11)
    for eps in (0.0, 0.2):  # at the sampling policy (ratio exactly 1) nothing is clipped
        assert impl.clip_fraction(old, old, adv, every, eps) == 0.0


def test_aggregate_grpo_and_dapo_hand_case(impl):
    """'grpo' averages each response over its own tokens then over responses; 'dapo' over all tokens."""
    x = torch.tensor([[1.0, 2.0, 3.0, 99.0], [4.0, -7.0, -7.0, -7.0]], dtype=D, requires_grad=True)
    mask = torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    grpo = impl.aggregate(x, mask, "grpo")
    torch.testing.assert_close(grpo, torch.tensor((2.0 + 4.0) / 2, dtype=D))
    torch.testing.assert_close(impl.aggregate(x, mask, "dapo"), torch.tensor(10.0 / 4, dtype=D))
    grpo.backward()
    want = torch.tensor([[1 / 6, 1 / 6, 1 / 6, 0.0], [0.5, 0.0, 0.0, 0.0]], dtype=D)
    torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="loss_type"):
        impl.aggregate(x, mask, "mean")


def test_grpo_loss_gradcheck(impl):
    """The GRPO loss's gradient in log pi matches finite differences (float64)."""
    g = torch.Generator().manual_seed(1)
    logp = (-torch.rand(3, 4, generator=g, dtype=D) * 2).requires_grad_()
    old = logp.detach() + 0.3 * torch.randn(3, 4, generator=g, dtype=D)
    ref = logp.detach() + 0.5 * torch.randn(3, 4, generator=g, dtype=D)
    adv, mask = torch.tensor([1.0, -0.5, 2.0], dtype=D), torch.rand(3, 4, generator=g) > 0.3
    for loss_type in ("grpo", "dapo"):
        fn = lambda lp, k=loss_type: impl.grpo_loss(lp, old, ref, adv, mask, 0.2, 0.1, k)  # noqa: E731
        assert torch.autograd.gradcheck(fn, (logp,), eps=1e-6, atol=1e-6), loss_type


def test_fixed_point_when_every_group_ties(impl):
    """Equal rewards in every group and pi = pi_old = pi_ref: loss and gradient are exactly zero."""
    logp = torch.log(torch.tensor([[0.9, 0.8], [0.7, 0.95], [0.5, 0.5], [0.6, 0.4]], dtype=D))
    logp.requires_grad_()
    adv = impl.group_advantages(torch.tensor([1.0, 1.0, 0.0, 0.0], dtype=D), 2)
    loss = impl.grpo_loss(logp, logp.detach(), logp.detach(), adv, torch.ones(4, 2), beta=0.1)
    loss.backward()
    assert loss.item() == 0.0 and torch.equal(logp.grad, torch.zeros_like(logp)), (
        f"expected loss 0 and zero gradient, got {loss.item()} and {logp.grad}"
    )


# ------------------------------------------------------------------ against trl's GRPOTrainer

P, T, V = 3, 5, 32


@pytest.fixture(scope="module")
def trl_trainer(tmp_path_factory):
    """trl 1.16's GRPOTrainer on a tiny random Llama (saved to a folder: trl loads its frozen
    reference from the same path), a trivial reward; built once for the module."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from datasets import Dataset
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_llama")
    cfg = LlamaConfig(vocab_size=V, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                      num_key_value_heads=2, intermediate_size=32, pad_token_id=0,
                      bos_token_id=1, eos_token_id=2)  # fmt: skip
    LlamaForCausalLM(cfg).save_pretrained(folder)
    words = Tokenizer(models.WordLevel({f"t{i}": i for i in range(V)}, unk_token="t3"))
    words.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok = PreTrainedTokenizerFast(tokenizer_object=words, pad_token="t0", bos_token="t1",
                                  eos_token="t2", unk_token="t3")  # fmt: skip
    tok.save_pretrained(folder)
    args = GRPOConfig(output_dir=str(folder / "out"), report_to=[], use_cpu=True,
                      per_device_train_batch_size=4, num_generations=2, max_completion_length=T,
                      beta=0.04, epsilon=0.2, epsilon_high=0.28, loss_type="grpo",
                      bf16=False, use_bias_correction_kl=False)  # fmt: skip
    # bf16 would autocast on CPU; use_bias_correction_kl=True (trl's default, DeepSeek-V3.2)
    # multiplies the KL term by the ratio, DeepSeekMath's objective does not.
    trainer = GRPOTrainer(model=str(folder), args=args, processing_class=tok,
                          reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                          train_dataset=Dataset.from_dict({"prompt": ["t4 t5", "t6 t7"]}))  # fmt: skip
    trainer.model.double().eval()  # eval: trl divides by the accumulation steps only in training
    return trainer


def _fixed_batch(model) -> dict:
    """Prompts, right-padded completions, advantages, and old/ref log-probs near the model's own
    (so some ratios fall outside the clip range)."""
    g = torch.Generator().manual_seed(3)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 0]])
    batch = {"prompt_ids": torch.randint(4, V, (4, P), generator=g),
             "prompt_mask": torch.ones(4, P, dtype=torch.long),
             "completion_ids": torch.randint(4, V, (4, T), generator=g), "completion_mask": mask,
             "advantages": torch.tensor([1.2, -0.7, 0.4, -1.5], dtype=D)}  # fmt: skip
    with torch.no_grad():
        now = _logprobs(model, batch)
    batch["old_per_token_logps"] = now + 0.3 * torch.randn(4, T, generator=g, dtype=D)
    batch["ref_per_token_logps"] = now + 0.5 * torch.randn(4, T, generator=g, dtype=D)
    batch["num_items_in_batch"] = mask.sum().to(D)
    return batch


def _logprobs(model, batch: dict) -> torch.Tensor:
    """log pi of each completion token (B, T): the logits one position earlier score it."""
    ids = torch.cat([batch["prompt_ids"], batch["completion_ids"]], 1)
    att = torch.cat([batch["prompt_mask"], batch["completion_mask"]], 1)
    logits = model(input_ids=ids, attention_mask=att).logits[:, P - 1 : -1]
    return logits.log_softmax(-1).gather(-1, batch["completion_ids"].unsqueeze(-1)).squeeze(-1)


def _both(impl, trainer, loss_type: str, beta: float):
    """(ours, trl's) loss and parameter gradients on the fixed batch."""
    model, out = trainer.model, []
    batch = _fixed_batch(model)
    trainer.loss_type, trainer.beta = loss_type, beta
    for which in ("ours", "trl"):
        model.zero_grad()
        if which == "ours":
            loss = impl.grpo_loss(_logprobs(model, batch), batch["old_per_token_logps"],
                                  batch["ref_per_token_logps"], batch["advantages"],
                                  batch["completion_mask"].bool(), 0.2, beta, loss_type, 0.28)  # fmt: skip
        else:
            loss = trainer.compute_loss(model, batch)
        loss.backward()
        out.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    return out


@pytest.mark.parametrize("loss_type", ["grpo", "dapo"])
def test_loss_and_gradients_match_trl(impl, trl_trainer, loss_type):
    """The loss (clip, k3 KL with beta = 0.04, masking, normalisation) and its gradients equal trl's."""
    (ours, g_ours), (theirs, g_trl) = _both(impl, trl_trainer, loss_type, 0.04)
    torch.testing.assert_close(ours, theirs.to(D), rtol=1e-5, atol=1e-7,
                               msg=lambda m: f"{loss_type} loss differs from trl's: {m}")  # fmt: skip
    for a, b in zip(g_ours, g_trl, strict=True):  # trl's fused head scores tokens in float32
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)


def test_loss_without_kl_matches_trl(impl, trl_trainer):
    """With beta = 0 the KL term is gone and the loss still equals trl's."""
    (ours, g_ours), (theirs, g_trl) = _both(impl, trl_trainer, "grpo", 0.0)
    torch.testing.assert_close(ours, theirs.to(D), rtol=1e-5, atol=1e-7)
    for a, b in zip(g_ours, g_trl, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
