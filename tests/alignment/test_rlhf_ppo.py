"""Grader for rlhf-ppo. trl 1.16 has no PPO, so every piece is checked against hand-computed
cases and the published formulas: the clipped surrogate of Schulman et al. 2017 (eq. 7), the
PPO2 clipped value loss, the KL estimators against torch's exact KL, the KL-shaped reward of
Ouyang et al. 2022, GAE against a direct sum over each response, and the value head against
the char-gpt policy it sits on."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from airoad.alignment import tiny_lm
from airoad.transformer.char_gpt import GPT, GPTConfig

REFERENCE = "airoad.alignment.rlhf_ppo"

FAST = settings(max_examples=25, deadline=None)
D = torch.float64


def batch(seed: int, b: int = 3, r: int = 5):
    """Random per-token tensors (B, R) and a mask whose rows are 1..R real tokens then padding."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, r + 1, (b,), generator=g)
    mask = torch.arange(r)[None] < lengths[:, None]
    x = [torch.randn(b, r, generator=g, dtype=D) for _ in range(4)]
    return mask, *x


def direct_gae(rew, val, length, gamma, lam):
    """A_t = sum_l (gamma lam)^l delta_{t+l} over one response; V after its end is 0."""
    v = np.append(val[:length], 0.0)
    delta = rew[:length] + gamma * v[1:] - v[:-1]
    return np.array([sum((gamma * lam) ** (k - t) * delta[k] for k in range(t, length))
                     for t in range(length)])  # fmt: skip


def test_masked_mean_and_whiten_match_numpy(impl):
    """masked_mean/masked_whiten use only the masked entries (unbiased variance), 0 elsewhere."""
    mask, x, *_ = batch(0, 4, 6)
    sel = x[mask].numpy()
    assert impl.masked_mean(x, mask).item() == pytest.approx(sel.mean(), abs=1e-12)
    w = impl.masked_whiten(x, mask)
    expected = (sel - sel.mean()) / np.sqrt(sel.var(ddof=1) + 1e-8)
    np.testing.assert_allclose(w[mask].numpy(), expected, atol=1e-10, err_msg="whitened values")
    assert (w[~mask] == 0).all(), "whitened values must be 0 off the mask"
    scaled = impl.masked_whiten(x, mask, shift_mean=False)
    np.testing.assert_allclose(scaled[mask].numpy(), expected + sel.mean(), atol=1e-10)
    two = impl.masked_whiten(
        torch.tensor([[1.0, 3.0]], dtype=D), torch.ones(1, 2, dtype=torch.bool)
    )
    np.testing.assert_allclose(two.numpy(), [[-(0.5**0.5), 0.5**0.5]], atol=1e-6, err_msg="n = 2")
    flat = impl.masked_whiten(torch.full((2, 3), 4.0, dtype=D), mask[:2, :3] | True)
    assert torch.isfinite(flat).all() and (flat == 0).all(), (
        "a constant batch whitens to 0, not NaN"
    )
    with pytest.raises(ValueError):
        impl.masked_whiten(torch.ones(1, 3, dtype=D), torch.tensor([[True, False, False]]))


def test_kl_estimators_hand_case(impl):
    """With logp - ref_logp = log 2: k1 = log 2, k2 = (log 2)^2 / 2, k3 = 1/2 - 1 + log 2."""
    logp, ref = (
        torch.log(torch.tensor([0.5, 0.25], dtype=D)),
        torch.log(torch.tensor([0.25, 0.5], dtype=D)),
    )
    k = impl.kl_estimators(logp, ref)
    ln2 = math.log(2.0)
    np.testing.assert_allclose(k["k1"].numpy(), [ln2, -ln2], atol=1e-12, err_msg="k1")
    np.testing.assert_allclose(k["k2"].numpy(), [ln2**2 / 2] * 2, atol=1e-12, err_msg="k2")
    np.testing.assert_allclose(
        k["k3"].numpy(), [0.5 - 1 + ln2, 2 - 1 - ln2], atol=1e-12, err_msg="k3"
    )


@FAST
@given(st.integers(0, 10_000), st.integers(2, 8))
def test_k1_and_k3_average_to_torch_kl(impl, seed, v):
    """Averaged under pi, k1 and k3 equal torch's exact KL(pi || pi_ref); k2 and k3 are >= 0."""
    g = torch.Generator().manual_seed(seed)
    logp = F.log_softmax(torch.randn(v, generator=g, dtype=D), -1)
    ref = F.log_softmax(torch.randn(v, generator=g, dtype=D), -1)
    exact = F.kl_div(ref, logp, reduction="sum", log_target=True)  # sum pi (log pi - log ref)
    k = impl.kl_estimators(logp, ref)
    for name in ("k1", "k3"):
        got = (logp.exp() * k[name]).sum()
        torch.testing.assert_close(got, exact, atol=1e-10, rtol=0, msg=f"E_pi[{name}] != KL")
    assert (k["k2"] >= 0).all() and (k["k3"] >= -1e-15).all(), "k2 and k3 must be non-negative"


def test_shaped_rewards_hand_case(impl):
    """Each token gets -beta * (logp - ref_logp); the last real token also gets the RM score."""
    mask = torch.tensor([[True, True, False], [True, True, True]])
    logp = torch.tensor([[-1.0, -2.0, -9.0], [-1.0, -1.0, -1.0]], dtype=D)
    ref = torch.tensor([[-2.0, -1.0, -9.0], [-1.5, -1.0, -0.5]], dtype=D)
    r = impl.shaped_rewards(torch.tensor([3.0, -1.0], dtype=D), logp, ref, mask, beta=0.1)
    expected = torch.tensor([[-0.1, 0.1 + 3.0, 0.0], [-0.05, 0.0, 0.05 - 1.0]], dtype=D)
    torch.testing.assert_close(r, expected, atol=1e-12, rtol=0, msg="KL-shaped rewards")
    with pytest.raises(ValueError):  # a response with no real token has no last token
        impl.shaped_rewards(torch.zeros(1), logp[:1, :2], ref[:1, :2], ~mask[:1, :2], 0.1)


@FAST
@given(st.integers(0, 10_000), st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_advantages_match_direct_gae(impl, seed, gamma, lam):
    """GAE per response equals the direct sum of discounted TD errors; returns = A + V; 0 on pad."""
    mask, rew, val, *_ = batch(seed)
    adv, ret = impl.advantages_and_returns(rew, val, mask, gamma, lam)
    for i, n in enumerate(mask.sum(1).tolist()):
        want = direct_gae(rew[i].numpy(), val[i].numpy(), n, gamma, lam)
        np.testing.assert_allclose(adv[i, :n].numpy(), want, atol=1e-9, err_msg=f"row {i}")
    np.testing.assert_allclose(ret[mask].numpy(), (adv + val)[mask].numpy(), atol=1e-12)
    assert (adv[~mask] == 0).all() and (ret[~mask] == 0).all(), "padding must stay 0"


def test_advantages_gamma_lam_one_is_reward_to_go_minus_value(impl):
    """gamma = lam = 1: A_t = (sum of rewards from t to the end) - V_t."""
    mask = torch.tensor([[True, True, True, False]])
    rew = torch.tensor([[0.0, -0.1, 1.0, 5.0]], dtype=D)
    val = torch.tensor([[0.2, 0.4, 0.5, 7.0]], dtype=D)
    adv, _ = impl.advantages_and_returns(rew, val, mask, 1.0, 1.0)
    torch.testing.assert_close(
        adv, torch.tensor([[0.7, 0.5, 0.5, 0.0]], dtype=D), atol=1e-12, rtol=0
    )


def test_policy_loss_hand_cases_and_gradients(impl):
    """Clipped loss: A=+1,rho=1.5 -> -1.2 (no grad); A=-1,rho=0.5 -> 0.8 (no grad); else -rho A."""
    old = torch.zeros(1, 4, dtype=D)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5, 0.5]], dtype=D)).requires_grad_()
    adv = torch.tensor([[1.0, -1.0, -1.0, 1.0]], dtype=D)
    mask = torch.ones(1, 4, dtype=torch.bool)
    loss, clipfrac = impl.policy_loss(logp, old, adv, mask, clip=0.2)
    assert loss.item() == pytest.approx((-1.2 + 0.8 + 1.5 - 0.5) / 4, abs=1e-12)
    assert clipfrac.item() == pytest.approx(0.5), "two of four tokens are clipped"
    with pytest.raises(ValueError):
        impl.policy_loss(logp, old, adv, mask, clip=0.0)
    loss.backward()
    # d(-rho A)/d logp = -rho A where the unclipped term counts, 0 where the clipped one does
    np.testing.assert_allclose(logp.grad.numpy(), [[0.0, 0.0, 1.5 / 4, -0.5 / 4]], atol=1e-12)


def test_first_epoch_ratio_one_gives_policy_gradient(impl):
    """With logp == old_logp the ratio is 1: loss = -mean(A) and grad = -A / n (REINFORCE)."""
    mask, logp0, adv, *_ = batch(3, 3, 4)
    logp = logp0.clone().requires_grad_()
    loss, clipfrac = impl.policy_loss(logp, logp0, adv, mask, clip=0.2)
    assert loss.item() == pytest.approx(-adv[mask].mean().item(), abs=1e-12)
    assert clipfrac.item() == 0.0
    loss.backward()
    torch.testing.assert_close(logp.grad, -adv * mask / mask.sum(), atol=1e-12, rtol=0)


@FAST
@given(st.integers(0, 10_000), st.floats(0.05, 0.5))
def test_policy_loss_is_the_published_objective(impl, seed, eps):
    """loss = -mean over real tokens of min(rho A, clip(rho, 1-eps, 1+eps) A) (Schulman 2017)."""
    mask, logp, old, adv, _ = batch(seed)
    rho = torch.exp(logp - old)
    want = -torch.minimum(rho * adv, rho.clamp(1 - eps, 1 + eps) * adv)[mask].mean()
    loss, _ = impl.policy_loss(logp, old, adv, mask, clip=eps)
    torch.testing.assert_close(loss, want, atol=1e-10, rtol=0, msg="clipped surrogate")


def test_value_loss_clipped_and_unclipped(impl):
    """Value loss: 0.5 mean (V-R)^2; clipped keeps the larger of it and (old + clamp(V-old) - R)^2."""
    v = torch.tensor([[1.0, 0.1, -0.5]], dtype=D, requires_grad=True)
    old = torch.zeros(1, 3, dtype=D)
    ret = torch.tensor([[1.0, 0.0, 0.5]], dtype=D)
    mask = torch.tensor([[True, True, False]])
    plain = impl.value_loss(v, old, ret, mask, clip=None)
    assert plain.item() == pytest.approx(0.5 * (0.0 + 0.01) / 2, abs=1e-12)
    clipped = impl.value_loss(v, old, ret, mask, clip=0.2)
    # token 0: V_clip = 0.2, (0.2 - 1)^2 = 0.64 beats 0; token 1: both 0.01
    assert clipped.item() == pytest.approx(0.5 * (0.64 + 0.01) / 2, abs=1e-12)
    clipped.backward()
    np.testing.assert_allclose(v.grad.numpy(), [[0.0, 0.05, 0.0]], atol=1e-12)


def test_ppo_losses_combine_the_terms(impl):
    """loss = policy + vf_coef * value; approx_kl is 0 when the policy has not moved."""
    mask, logp, val, adv, ret = batch(5)
    out = impl.ppo_losses(logp, val + 0.3, logp, val, adv, ret, mask, 0.2, 0.2, vf_coef=0.5)
    pol, _ = impl.policy_loss(logp, logp, adv, mask, 0.2)
    vl = impl.value_loss(val + 0.3, val, ret, mask, 0.2)
    torch.testing.assert_close(out["loss"], pol + 0.5 * vl, atol=1e-12, rtol=0)
    assert out["approx_kl"].abs().item() < 1e-12 and out["clipfrac"].item() == 0.0
    moved = impl.ppo_losses(logp + 0.3 * adv, val, logp, val, adv, ret, mask)
    assert moved["approx_kl"].item() > 0, "a moved policy must show a positive approx_kl"


@pytest.fixture(scope="module")
def gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(tiny_lm.TOKENIZER.vocab_size, 16, 2, 2, 16)).eval()


def test_value_head_shares_the_policy_trunk(impl, gpt):
    """PolicyWithValue gives the GPT's own logits and a Linear value head on ln_f's output."""
    model = impl.PolicyWithValue(gpt)
    with torch.no_grad():
        model.value_head.weight.normal_()
        model.value_head.bias.fill_(0.3)
    ids = torch.randint(
        0, tiny_lm.TOKENIZER.vocab_size, (2, 9), generator=torch.Generator().manual_seed(1)
    )
    logits, values = model(ids)
    torch.testing.assert_close(
        logits, gpt(ids), atol=1e-6, rtol=0, msg="logits differ from the GPT's"
    )
    h = impl.gpt_hidden_states(gpt, ids)
    torch.testing.assert_close(gpt.lm_head(h), gpt(ids), atol=1e-6, rtol=0)
    torch.testing.assert_close(values, model.value_head(h).squeeze(-1), atol=1e-6, rtol=0)
    values.sum().backward()
    assert gpt.blocks[0].attn.c_attn.weight.grad.abs().sum() > 0, (
        "the value loss must reach the trunk"
    )
    gpt.zero_grad()


def test_response_logprobs_values_line_up_with_tiny_lm(impl, gpt):
    """Response log-probs equal tiny_lm.response_logprobs; values come from the same positions."""
    model = impl.PolicyWithValue(gpt)
    with torch.no_grad():
        model.value_head.weight.normal_()
    problems = tiny_lm.tiny_task.problems(4, seed=0, digits=2)
    roll = tiny_lm.sample(
        gpt, tiny_lm.tiny_task.prompt_batch(problems), 1.0, torch.Generator().manual_seed(0)
    )
    logp, values = impl.response_logprobs_values(model, roll.prompts, roll.responses, roll.mask)
    with torch.no_grad():
        torch.testing.assert_close(logp, tiny_lm.response_logprobs(gpt, roll), atol=1e-5, rtol=0)
        p = roll.prompts.shape[1]
        full = model(roll.ids)[1][:, p - 1 : -1] * roll.mask
    torch.testing.assert_close(values, full, atol=1e-5, rtol=0, msg="values at the wrong positions")


def test_ppo_updates_raise_the_rewarded_token(impl, gpt):
    """A few PPO steps with a score for starting with '7' raise that token's probability."""
    torch.manual_seed(0)
    model = impl.PolicyWithValue(GPT(gpt.config).eval())
    ref = GPT(gpt.config).eval()
    ref.load_state_dict(model.policy.state_dict())
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    prompts = tiny_lm.tiny_task.prompt_batch(tiny_lm.tiny_task.problems(64, seed=1, digits=2))
    seven, gen = tiny_lm.TOKENIZER.stoi["7"], torch.Generator().manual_seed(0)

    def p_seven() -> float:
        with torch.no_grad():
            return F.softmax(model.policy(prompts)[:, -1], -1)[:, seven].mean().item()

    before = p_seven()
    for _ in range(6):
        roll = tiny_lm.sample(model.policy, prompts, 1.0, gen, max_new=3)
        with torch.no_grad():
            old_logp, old_v = impl.response_logprobs_values(
                model, roll.prompts, roll.responses, roll.mask
            )
            ref_logp = tiny_lm.response_logprobs(ref, roll)
        score = (roll.responses[:, 0] == seven).float()
        rew = impl.shaped_rewards(score, old_logp, ref_logp, roll.mask, beta=0.01)
        adv, ret = impl.advantages_and_returns(rew, old_v, roll.mask, 1.0, 0.95)
        adv = impl.masked_whiten(adv, roll.mask)
        for _ in range(2):
            logp, v = impl.response_logprobs_values(model, roll.prompts, roll.responses, roll.mask)
            out = impl.ppo_losses(logp, v, old_logp, old_v, adv, ret, roll.mask)
            opt.zero_grad()
            out["loss"].backward()
            opt.step()
    assert p_seven() > before + 0.05, f"P('7' first) went {before:.3f} -> {p_seven():.3f}"
