"""Grader for dpo: the stable log-sigmoid against torch's, summed response log-probs against a
hand loop, the DPO and IPO losses against hand-computed values and gradients (beta's effect,
finite differences), and the whole batch loss, its gradients and its implicit rewards against
trl 1.16's DPOTrainer.compute_loss on a tiny random Llama (built once per test session)."""

from __future__ import annotations

import math
import os

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.alignment.dpo"

FAST = settings(max_examples=25, deadline=None)
D = torch.float64
BETA = 0.3
PAIRS = {  # prompt, chosen, rejected: responses of different lengths, so padding is exercised
    "prompt": ["12+3=", "7+8=", "40+2=", "5+5="],
    "chosen": ["15", "15", "42", "10"],
    "rejected": ["16", "1", "420", "100"],
}


@pytest.fixture(scope="session")
def trainer(tmp_path_factory):
    """A trl DPOTrainer on a tiny random Llama with a different random frozen reference."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    import datasets
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast
    from trl import DPOConfig, DPOTrainer

    vocab = {"<pad>": 0, "<eos>": 1, **{c: i + 2 for i, c in enumerate("0123456789+=")}}
    chars = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    chars.pre_tokenizer = pre_tokenizers.Split("", "isolated")  # one token per character
    tok = PreTrainedTokenizerFast(tokenizer_object=chars, pad_token="<pad>", eos_token="<eos>")
    cfg = LlamaConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, intermediate_size=32,
                      max_position_embeddings=32)  # fmt: skip
    torch.manual_seed(0)
    policy = LlamaForCausalLM(cfg)
    torch.manual_seed(1)
    ref = LlamaForCausalLM(cfg).eval()
    args = DPOConfig(output_dir=str(tmp_path_factory.mktemp("dpo_trl")), report_to=[],
                     use_cpu=True, beta=BETA, loss_type=["sigmoid"], logging_strategy="no",
                     save_strategy="no", per_device_train_batch_size=len(PAIRS["prompt"]))  # fmt: skip
    data = datasets.Dataset.from_dict(PAIRS)
    tr = DPOTrainer(model=policy, ref_model=ref, args=args, train_dataset=data,
                    processing_class=tok)  # fmt: skip
    batch = tr.data_collator([tr.train_dataset[i] for i in range(len(PAIRS["prompt"]))])
    return tr, batch


def _trl_loss(trainer, loss_type: str) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """trl's loss on the fixed batch and the gradient of every policy parameter."""
    tr, batch = trainer
    tr.loss_types, tr.loss_weights = [loss_type], [1.0]
    tr.model.zero_grad()
    loss = tr.compute_loss(tr.model, batch)
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in tr.model.parameters()]


def _our_loss(impl, trainer, loss_type: str):
    tr, batch = trainer
    tr.model.zero_grad()
    mask = batch["attention_mask"]
    loss, chosen, rejected = impl.preference_loss(
        lambda ids: tr.model(ids, attention_mask=mask).logits,
        lambda ids: tr.ref_model(ids, attention_mask=mask).logits,
        batch["input_ids"], batch["completion_mask"], BETA, loss_type,
    )  # fmt: skip
    loss.backward()
    return loss.detach(), [p.grad.clone() for p in tr.model.parameters()], chosen, rejected


@given(st.lists(st.floats(-50, 50), min_size=1, max_size=8))
@FAST
def test_log_sigmoid_matches_torch(impl, xs):
    """log_sigmoid equals torch.nn.functional.logsigmoid in value and gradient."""
    x = torch.tensor(xs, dtype=D, requires_grad=True)
    ours = impl.log_sigmoid(x)
    (g,) = torch.autograd.grad(ours.sum(), x)
    y = torch.tensor(xs, dtype=D, requires_grad=True)
    (g_ref,) = torch.autograd.grad(F.logsigmoid(y).sum(), y)
    torch.testing.assert_close(ours.detach(), F.logsigmoid(y).detach(), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g, g_ref, rtol=1e-12, atol=1e-12)


def test_log_sigmoid_is_stable_at_extremes(impl):
    """log_sigmoid(+-1000) is finite: about 0 and -1000, with gradients 0 and 1 (no exp overflow)."""
    x = torch.tensor([1000.0, -1000.0, 0.0], requires_grad=True)
    out = impl.log_sigmoid(x)
    out.sum().backward()
    assert torch.isfinite(out).all() and torch.isfinite(x.grad).all(), f"not finite: {out}"
    torch.testing.assert_close(out.detach(), torch.tensor([0.0, -1000.0, -math.log(2)]))
    torch.testing.assert_close(x.grad, torch.tensor([0.0, 1.0, 0.5]))


def test_sequence_logprobs_hand_case(impl):
    """sequence_logprobs sums log_softmax(logits[t-1])[ids[t]] over masked positions t only."""
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7, dtype=D, requires_grad=True)
    ids = torch.randint(0, 7, (2, 5))
    mask = torch.tensor([[0, 0, 1, 1, 0], [0, 1, 1, 1, 1]])
    ours = impl.sequence_logprobs(logits, ids, mask)
    logp = torch.log_softmax(logits.detach(), -1)
    hand = [sum(logp[b, t - 1, ids[b, t]] for t in range(1, 5) if mask[b, t]) for b in range(2)]
    torch.testing.assert_close(ours.detach(), torch.stack(hand), rtol=1e-10, atol=1e-10)
    ours.sum().backward()
    assert logits.grad[0, [0, 3, 4]].abs().max() == 0, "positions scoring masked tokens got grad"
    assert logits.grad[0, 1].abs().max() > 0, "the logits scoring a response token got no grad"


def test_dpo_loss_hand_case(impl):
    """dpo_loss = mean -log sigmoid(beta * ((pc - rc) - (pr - rr))), gradient -beta * sigmoid(-z)."""
    pc = torch.tensor([-2.0, -1.0], dtype=D, requires_grad=True)
    pr = torch.tensor([-3.0, -0.5], dtype=D, requires_grad=True)
    rc, rr = torch.tensor([-2.5, -1.0], dtype=D), torch.tensor([-2.0, -1.5], dtype=D)
    loss = impl.dpo_loss(pc, pr, rc, rr, 0.5)
    z = 0.5 * torch.tensor([0.5 - (-1.0), 0.0 - 1.0], dtype=D)  # beta * margin per pair
    torch.testing.assert_close(loss.detach(), torch.log1p(torch.exp(-z)).mean(), rtol=1e-12,
                               atol=1e-12)  # fmt: skip
    loss.backward()
    torch.testing.assert_close(pc.grad, -0.5 * torch.sigmoid(-z) / 2, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pr.grad, 0.5 * torch.sigmoid(-z) / 2, rtol=1e-12, atol=1e-12)


def test_dpo_loss_beta_effect(impl):
    """At zero margin the DPO loss is log 2 for any beta and its gradient grows linearly in beta."""
    for beta in (0.01, 0.1, 1.0, 5.0):
        pc = torch.tensor([-4.0], dtype=D, requires_grad=True)
        loss = impl.dpo_loss(pc, torch.tensor([-3.0], dtype=D), torch.tensor([-4.0], dtype=D),
                             torch.tensor([-3.0], dtype=D), beta)  # fmt: skip
        loss.backward()
        assert loss.item() == pytest.approx(math.log(2), abs=1e-12), f"beta {beta}: not log 2"
        assert pc.grad.item() == pytest.approx(-beta / 2, abs=1e-12), f"beta {beta}: gradient"


def test_dpo_loss_is_stable_for_huge_margins(impl):
    """A margin of -1e4 (beta 1) gives a finite loss of 1e4 and gradient 1, not inf or NaN."""
    pc = torch.tensor([-1e4], requires_grad=True)
    zero = torch.zeros(1)
    loss = impl.dpo_loss(pc, zero, zero, zero, 1.0)
    loss.backward()
    assert loss.item() == pytest.approx(1e4) and pc.grad.item() == pytest.approx(-1.0)


@given(st.integers(0, 10_000), st.floats(0.01, 5.0), st.floats(-20, 20))
@FAST
def test_losses_depend_only_on_log_ratios(impl, seed, beta, shift):
    """Adding the same constant to a response's policy and reference log-prob changes neither loss."""
    g = torch.Generator().manual_seed(seed)
    pc, pr, rc, rr = (-5 * torch.rand(3, generator=g, dtype=D) for _ in range(4))
    n = torch.tensor([1.0, 2.0, 3.0], dtype=D)
    for f, extra in ((impl.dpo_loss, ()), (impl.ipo_loss, (n, n.flip(0)))):
        a = f(pc, pr, rc, rr, *extra, beta)
        b = f(pc + shift, pr - shift, rc + shift, rr - shift, *extra, beta)
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_ipo_loss_hand_case(impl):
    """ipo_loss = mean (chosen/len_c - rejected/len_r - 1/(2 beta))^2; zero at that target margin."""
    pc = torch.tensor([-2.0, -6.0], dtype=D, requires_grad=True)
    rc, pr, rr = (torch.tensor(v, dtype=D) for v in ([-3.0, -6.0], [-1.0, -4.0], [-1.0, -3.0]))
    lc, lr = torch.tensor([2.0, 3.0], dtype=D), torch.tensor([1.0, 0.0], dtype=D)
    loss = impl.ipo_loss(pc, pr, rc, rr, lc, lr, 0.25)
    h = torch.tensor([1.0 / 2 - 0.0, 0.0 / 3 - (-1.0) / 1], dtype=D)  # length 0 counts as 1
    torch.testing.assert_close(loss.detach(), ((h - 2.0) ** 2).mean(), rtol=1e-12, atol=1e-12)
    loss.backward()
    torch.testing.assert_close(pc.grad, (h - 2.0) / lc, rtol=1e-12, atol=1e-12)
    swapped = impl.ipo_loss(pr, pc.detach(), rr, rc, lr, lc, 0.25)  # a chosen length of 0 too
    torch.testing.assert_close(swapped, ((-h - 2.0) ** 2).mean(), rtol=1e-12, atol=1e-12)
    at_target = impl.ipo_loss(torch.tensor([4.0]), torch.zeros(1), torch.zeros(1), torch.zeros(1),
                              torch.tensor([2.0]), torch.ones(1), 0.25)  # fmt: skip
    assert at_target.item() == pytest.approx(0.0), "IPO should be 0 at the margin 1/(2 beta)"


def test_losses_pass_gradcheck(impl):
    """dpo_loss, ipo_loss and sequence_logprobs pass torch.autograd.gradcheck (finite differences)."""
    torch.manual_seed(0)
    xs = [torch.randn(3, dtype=D, requires_grad=True) for _ in range(4)]
    n = torch.tensor([1.0, 2.0, 4.0], dtype=D)
    assert torch.autograd.gradcheck(lambda *a: impl.dpo_loss(*a, 0.7), xs)
    assert torch.autograd.gradcheck(lambda *a: impl.ipo_loss(*a, n, n + 1, 0.7), xs)
    logits = torch.randn(2, 4, 5, dtype=D, requires_grad=True)
    ids, mask = torch.randint(0, 5, (2, 4)), torch.tensor([[0, 1, 1, 0], [0, 0, 1, 1]])
    assert torch.autograd.gradcheck(lambda x: impl.sequence_logprobs(x, ids, mask), (logits,))


def test_rewards_and_accuracy_hand_case(impl):
    """implicit_rewards = beta * (policy - ref); preference_accuracy counts strict wins (ties lose)."""
    r = impl.implicit_rewards(torch.tensor([-1.0, -2.0]), torch.tensor([-3.0, -2.0]), 0.5)
    torch.testing.assert_close(r, torch.tensor([1.0, 0.0]))
    acc = impl.preference_accuracy(torch.tensor([1.0, 0.0, 2.0, -1.0]),
                                   torch.tensor([0.0, 0.0, 3.0, -2.0]))  # fmt: skip
    assert acc == pytest.approx(0.5), f"expected 2 strict wins of 4, got {acc}"


@pytest.mark.parametrize("loss_type", ["sigmoid", "ipo"])
def test_batch_loss_and_grads_match_trl(impl, trainer, loss_type):
    """preference_loss (DPO 'sigmoid' and 'ipo') equals trl's DPOTrainer.compute_loss and its grads."""
    trl_loss, trl_grads = _trl_loss(trainer, loss_type)
    loss, grads, _, _ = _our_loss(impl, trainer, loss_type)
    torch.testing.assert_close(loss, trl_loss, rtol=1e-5, atol=1e-6,
                               msg=f"{loss_type}: loss {loss} vs trl {trl_loss}")  # fmt: skip
    for g, g_ref in zip(grads, trl_grads, strict=True):
        torch.testing.assert_close(g, g_ref, rtol=1e-4, atol=1e-6, msg=f"{loss_type}: gradient")


def test_implicit_rewards_match_trl_metrics(impl, trainer):
    """The batch's mean chosen / rejected implicit rewards and accuracy equal trl's logged metrics."""
    tr, _ = trainer
    _trl_loss(trainer, "sigmoid")
    logged = {k: v[-1] for k, v in tr._metrics["train"].items()}
    _, _, chosen, rejected = _our_loss(impl, trainer, "sigmoid")
    assert chosen.requires_grad is False and chosen.shape == (len(PAIRS["prompt"]),)
    assert chosen.mean().item() == pytest.approx(logged["rewards/chosen"], abs=1e-6)
    assert rejected.mean().item() == pytest.approx(logged["rewards/rejected"], abs=1e-6)
    acc = impl.preference_accuracy(chosen, rejected)
    assert acc == pytest.approx(logged["rewards/accuracies"], abs=1e-6)


def test_preference_loss_rejects_unknown_type(impl):
    """preference_loss raises ValueError for a loss_type other than 'sigmoid' or 'ipo'."""
    ids, mask = torch.zeros(2, 3, dtype=torch.long), torch.ones(2, 3)
    net = lambda x: torch.zeros(*x.shape, 4)  # noqa: E731
    assert impl.preference_loss(net, net, ids, mask, 0.1)[0].item() == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match="loss_type"):
        impl.preference_loss(net, net, ids, mask, 0.1, "hinge")
