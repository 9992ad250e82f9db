"""Grader for policy-gradient: discounted returns and GAE against hand-computed cases and a
direct forward sum (episode ends and bootstrapping included), the actor-critic's distribution
against a hand softmax of its own layers, the three loss terms and their gradients against
hand formulas, seeded sampling, and the evaluation loop on a tiny MDP whose optimum is known."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.alignment.policy_gradient"

FAST = settings(max_examples=30, deadline=None)
D = torch.float64


def direct_returns(r: np.ndarray, d: np.ndarray, gamma: float, last: np.ndarray) -> np.ndarray:
    """G_t summed forward from t until the episode ends (or bootstrapped with `last`)."""
    out = np.zeros_like(r)
    for t in range(r.shape[0]):
        for n in range(r.shape[1]):
            total, k = 0.0, t
            while True:
                total += gamma ** (k - t) * r[k, n]
                if d[k, n]:
                    break
                k += 1
                if k == r.shape[0]:
                    total += gamma ** (k - t) * last[n]
                    break
            out[t, n] = total
    return out


def direct_gae(r, v, d, last, gamma, lam):
    """A_t = sum_l (gamma lam)^l delta_{t+l}, stopping after the step that ends the episode."""
    nxt = np.concatenate([v[1:], last[None]])
    delta = r + gamma * (1 - d) * nxt - v
    out = np.zeros_like(r)
    for t in range(r.shape[0]):
        for n in range(r.shape[1]):
            for k in range(t, r.shape[0]):
                out[t, n] += (gamma * lam) ** (k - t) * delta[k, n]
                if d[k, n]:
                    break
    return out


ROLLOUT = st.tuples(st.integers(1, 7), st.integers(1, 3), st.integers(0, 10_000)).map(
    lambda a: (
        lambda g: (
            g.normal(size=a[:2]),
            g.random(a[:2]) < 0.3,
            g.normal(size=a[1]),
            g.normal(size=a[:2]),
        )
    )(np.random.default_rng(a[2]))  # fmt: skip
)


def test_returns_hand_cases(impl):
    """G_t = r_t + gamma (1 - done_t) G_{t+1}; the value after the last step is bootstrapped."""
    r = torch.tensor([1.0, 1.0, 1.0], dtype=D)
    no = torch.zeros(3, dtype=torch.bool)
    torch.testing.assert_close(
        impl.discounted_returns(r, no, 0.5), torch.tensor([1.75, 1.5, 1.0], dtype=D)
    )
    torch.testing.assert_close(
        impl.discounted_returns(r, no, 0.5, 8.0), torch.tensor([2.75, 3.5, 5.0], dtype=D),
        msg="the bootstrap value V(s_T) must be discounted into every step",
    )  # fmt: skip
    torch.testing.assert_close(impl.discounted_returns(r * 3, no, 0.0, 8.0), r * 3, msg="gamma=0")
    torch.testing.assert_close(
        impl.discounted_returns(r, no, 1.0), torch.tensor([3.0, 2.0, 1.0], dtype=D), msg="gamma=1"
    )
    r4 = torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=D)
    d4 = torch.tensor([False, True, False, False])
    torch.testing.assert_close(
        impl.discounted_returns(r4, d4, 0.9, 10.0), torch.tensor([2.8, 2.0, 14.7, 13.0], dtype=D),
        msg="nothing after a done step may flow back into it",
    )  # fmt: skip


@FAST
@given(ROLLOUT, st.floats(0.0, 1.0))
def test_returns_match_direct_sum(impl, rollout, gamma):
    """Returns over (T, N) rollouts with random dones equal the forward sum per step."""
    r, d, last, _ = rollout
    got = impl.discounted_returns(torch.tensor(r), torch.tensor(d), gamma, torch.tensor(last))
    np.testing.assert_allclose(got.numpy(), direct_returns(r, d, gamma, last), atol=1e-10)


def test_gae_hand_cases(impl):
    """delta_t = r_t + gamma (1 - done_t) V_{t+1} - V_t; A_t = delta_t + gamma lam (1 - done_t) A_{t+1}."""
    r, v = torch.tensor([1.0, 1.0], dtype=D), torch.tensor([0.5, 0.2], dtype=D)
    got = impl.gae(r, v, torch.tensor([False, False]), 1.0, 0.9, 0.8)
    torch.testing.assert_close(got, torch.tensor([1.904, 1.7], dtype=D))
    got = impl.gae(r, v, torch.tensor([True, False]), 1.0, 0.9, 0.8)
    torch.testing.assert_close(got, torch.tensor([0.5, 1.7], dtype=D), msg="done at step 0")


@FAST
@given(ROLLOUT, st.floats(0.0, 1.0), st.floats(0.0, 1.0))
def test_gae_matches_direct_sum_and_limits(impl, rollout, gamma, lam):
    """GAE equals the (gamma lam)-weighted TD-error sum; lam=1 gives G - V, lam=0 the TD error."""
    r, d, last, v = rollout
    tr, tv, td, tl = (torch.tensor(x) for x in (r, v, d, last))
    np.testing.assert_allclose(impl.gae(tr, tv, td, tl, gamma, lam).numpy(),
                               direct_gae(r, v, d, last, gamma, lam), atol=1e-10)  # fmt: skip
    np.testing.assert_allclose(impl.gae(tr, tv, td, tl, gamma, 1.0).numpy(),
                               direct_returns(r, d, gamma, last) - v, atol=1e-10)  # fmt: skip
    np.testing.assert_allclose(impl.gae(tr, tv, td, tl, gamma, 0.0).numpy(),
                               direct_gae(r, v, d, last, gamma, 0.0), atol=1e-10)  # fmt: skip


def test_gamma_out_of_range_is_rejected(impl):
    """gamma (and lam) outside [0, 1] raise ValueError naming them."""
    r = torch.ones(3)
    with pytest.raises(ValueError, match="gamma"):
        impl.discounted_returns(r, torch.zeros(3, dtype=torch.bool), 1.5)
    with pytest.raises(ValueError, match="lam"):
        impl.gae(r, r, torch.zeros(3, dtype=torch.bool), 0.0, 0.9, -0.1)


def test_actor_critic_distribution_and_values(impl):
    """forward gives Categorical(softmax(actor(obs))) over the batch and critic(obs) as (B,)."""
    torch.manual_seed(0)
    model = impl.ActorCritic(4, 3, hidden=8).double()
    obs = torch.randn(5, 4, dtype=D)
    dist, values = model(obs)
    assert isinstance(dist, torch.distributions.Categorical)
    assert dist.batch_shape == (5,) and values.shape == (5,), "one distribution and value per row"
    a1, _, a2 = model.actor
    c1, _, c2 = model.critic
    probs = torch.softmax(a2(torch.tanh(a1(obs))), -1)
    torch.testing.assert_close(dist.probs, probs)
    torch.testing.assert_close(values, c2(torch.tanh(c1(obs))).squeeze(-1))
    actions = torch.tensor([0, 1, 2, 1, 0])
    torch.testing.assert_close(dist.log_prob(actions), probs.log()[torch.arange(5), actions])


def test_loss_terms_hand_case(impl):
    """policy = -mean(log pi(a|s) A), value = 0.5 mean((V - R)^2), entropy = mean(-sum p log p)."""
    logits = torch.tensor([[0.0, 0.0], [np.log(3.0), 0.0]], dtype=D, requires_grad=True)
    dist = torch.distributions.Categorical(logits=logits)
    adv = torch.tensor([2.0, -1.0], dtype=D, requires_grad=True)
    values = torch.tensor([1.0, 3.0], dtype=D, requires_grad=True)
    returns = torch.tensor([2.0, 0.0], dtype=D, requires_grad=True)
    out = impl.pg_losses(dist, torch.tensor([0, 1]), adv, values, returns)
    pol = -(2.0 * np.log(0.5) - 1.0 * np.log(0.25)) / 2
    ent = (np.log(2) - (0.75 * np.log(0.75) + 0.25 * np.log(0.25))) / 2
    np.testing.assert_allclose(out["policy"].item(), pol, rtol=1e-12, err_msg="policy loss")
    np.testing.assert_allclose(out["value"].item(), 0.5 * (1 + 9) / 2, rtol=1e-12)
    np.testing.assert_allclose(out["entropy"].item(), ent, rtol=1e-12, err_msg="entropy")


def test_loss_gradients(impl):
    """d policy / d logits = -(onehot(a) - p) A / B; advantages and returns get no gradient."""
    logits = torch.randn(4, 3, dtype=D, requires_grad=True)
    adv = torch.randn(4, dtype=D, requires_grad=True)
    values = torch.randn(4, dtype=D, requires_grad=True)
    returns = torch.randn(4, dtype=D, requires_grad=True)
    actions = torch.tensor([2, 0, 1, 2])
    out = impl.pg_losses(
        torch.distributions.Categorical(logits=logits), actions, adv, values, returns
    )
    (out["policy"] + out["value"]).backward()
    p = torch.softmax(logits.detach(), -1)
    want = -(torch.nn.functional.one_hot(actions, 3) - p) * adv.detach()[:, None] / 4
    torch.testing.assert_close(logits.grad, want, msg="score-function gradient")
    torch.testing.assert_close(values.grad, (values - returns).detach() / 4)
    assert adv.grad is None and returns.grad is None, "detach the advantages and the returns"


def test_sample_actions_is_seeded_and_follows_probs(impl):
    """The same generator seed gives the same actions; frequencies follow the probabilities."""
    dist = torch.distributions.Categorical(
        probs=torch.tensor([[0.2, 0.8], [1.0, 0.0]]).repeat(2000, 1)
    )
    a = impl.sample_actions(dist, torch.Generator().manual_seed(3))
    b = impl.sample_actions(dist, torch.Generator().manual_seed(3))
    assert a.shape == (4000,) and torch.equal(a, b), "one seeded action per row"
    assert (a[1::2] == 0).all(), "an action with probability 0 is never drawn"
    assert abs(a[::2].double().mean().item() - 0.8) < 0.04


class Corridor(gym.Env):
    """Start at 0; action 1 steps right, 0 stays. -2 per step, the episode ends at `length`;
    truncated after `limit` steps. The optimal return is -2 length (discounted: a geometric sum)."""

    observation_space = gym.spaces.Discrete(100)
    action_space = gym.spaces.Discrete(2)

    def __init__(self, length: int = 6, limit: int = 20) -> None:
        self.length, self.limit, self.seeds = length, limit, []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.seeds.append(seed)
        self.pos, self.t = 0, 0
        return self.pos, {}

    def step(self, action):
        self.pos, self.t = self.pos + int(action), self.t + 1
        return self.pos, -2.0, self.pos == self.length, self.t >= self.limit, {}


def test_evaluate_optimal_policy_gets_known_return(impl):
    """Playing the optimal policy returns exactly -2 length; a stuck one is cut off at the limit."""
    env = Corridor(6, 20)
    np.testing.assert_array_equal(impl.evaluate(env, lambda s: 1, 3, seed=5), [-12.0] * 3)
    assert env.seeds == [5, 6, 7], "episode i starts from env.reset(seed=seed + i)"
    np.testing.assert_allclose(impl.evaluate(env, lambda s: 1, 1, 0, gamma=0.9),
                               [-2 * (1 - 0.9**6) / (1 - 0.9)], rtol=1e-12)  # fmt: skip
    np.testing.assert_array_equal(impl.evaluate(env, lambda s: 0, 2, 0), [-40.0, -40.0])
    with pytest.raises(ValueError, match="episodes"):
        impl.evaluate(env, lambda s: 1, 0, 0)


def test_evaluate_cartpole_matches_manual_loop(impl):
    """On CartPole-v1 a fixed policy scores what a hand-written seeded episode loop scores."""
    env, act = gym.make("CartPole-v1"), lambda s: int(s[2] > 0)  # push toward the lean
    want = []
    for i in range(3):
        obs, _ = env.reset(seed=11 + i)
        total, done = 0.0, False
        while not done:
            obs, r, term, trunc, _ = env.step(act(obs))
            total, done = total + r, term or trunc
        want.append(total)
    np.testing.assert_array_equal(impl.evaluate(env, act, 3, seed=11), want)
