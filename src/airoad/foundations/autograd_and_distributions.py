"""PyTorch autograd and probability distributions, from the ground up.

Four small pieces, all functions on float64 tensors:

1. derivatives: autograd (`torch.autograd.grad`) next to central finite differences;
2. sampling: Normal (Box-Muller), Bernoulli and Categorical (inverse CDF) from uniform numbers,
   and their log-densities written out by hand;
3. linear regression trained by gradient descent where autograd supplies the gradient;
4. REINFORCE: a softmax policy over the arms of a simulated Bernoulli bandit, trained with the
   score-function estimator  grad J = E[ r * grad log pi(a) ].

Randomness always comes from an explicit `torch.Generator`, never from the global seed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn
from torch.distributions import Categorical

Fn = Callable[[torch.Tensor], torch.Tensor]


# ---------------------------------------------------------------- derivatives


def derivative(f: Fn, x: torch.Tensor) -> torch.Tensor:
    """f'(x) by autograd for an ELEMENTWISE f; x and the result have the same shape.

    Because f acts elementwise, d(sum_j f(x_j)) / dx_i = f'(x_i): one backward pass gives all.
    """
    x = x.detach().clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(f(x).sum(), x)
    return grad


def central_difference(f: Fn, x: torch.Tensor, h: float = 1e-5) -> torch.Tensor:
    """(f(x + h) - f(x - h)) / (2 h): error O(h^2), against O(h) for the one-sided difference."""
    return (f(x + h) - f(x - h)) / (2 * h)


def gradient_field(
    f: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(df/dx, df/dy) of a scalar field f(x, y) at every grid point; x, y and both outputs share a shape.

    f must be elementwise over the grid (e.g. x**2 + torch.sin(y)), so one backward pass of
    f(x, y).sum() gives the partial derivatives at every point.
    """
    x = x.detach().clone().requires_grad_(True)
    y = y.detach().clone().requires_grad_(True)
    gx, gy = torch.autograd.grad(f(x, y).sum(), (x, y))
    return gx, gy


# ---------------------------------------------------------------- sampling and log-densities


def sample_normal(mu: float, sigma: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws from Normal(mu, sigma^2), shape (n,), float64, by the Box-Muller transform.

    With u1, u2 uniform on (0, 1]: z = sqrt(-2 ln u1) * cos(2 pi u2) is a standard normal.
    """
    u = torch.rand(2, n, generator=generator, dtype=torch.float64)
    u1, u2 = 1.0 - u[0], u[1]  # torch.rand is [0, 1); 1 - u avoids log(0)
    z = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * math.pi * u2)
    return mu + sigma * z


def sample_bernoulli(p: float, n: int, generator: torch.Generator) -> torch.Tensor:
    """n draws from Bernoulli(p) as float64 zeros and ones, shape (n,): 1 where uniform < p."""
    return (torch.rand(n, generator=generator, dtype=torch.float64) < p).to(torch.float64)


def sample_categorical(probs: torch.Tensor, n: int, generator: torch.Generator) -> torch.Tensor:
    """n category indices (int64, shape (n,)) drawn with probabilities `probs` (shape (K,)).

    Inverse CDF: the index is the number of cumulative probabilities <= a uniform draw.
    """
    cdf = torch.cumsum(probs.to(torch.float64) / probs.sum(), dim=0)
    u = torch.rand(n, generator=generator, dtype=torch.float64)
    # Rounding can leave cdf[-1] a hair below 1; clamp so a u above it still maps to the last class.
    return torch.searchsorted(cdf, u, right=True).clamp(max=len(cdf) - 1)


def normal_log_prob(x: torch.Tensor, mu: float, sigma: float) -> torch.Tensor:
    """log N(x; mu, sigma^2) = -((x - mu) / sigma)^2 / 2 - log(sigma) - log(2 pi) / 2, elementwise."""
    z = (x - mu) / sigma
    return -0.5 * z * z - math.log(sigma) - 0.5 * math.log(2 * math.pi)


def bernoulli_log_prob(x: torch.Tensor, p: float) -> torch.Tensor:
    """log P(x) = x log p + (1 - x) log(1 - p) for x in {0, 1}, elementwise; finite at p = 0 or 1."""
    p_t = torch.as_tensor(p, dtype=torch.float64)
    # xlogy(0, 0) = 0, so a certain event has log-probability 0 instead of nan; log1p(-p) keeps
    # precision when p is tiny.
    return torch.xlogy(x, p_t) + torch.special.xlog1py(1 - x, -p_t)


def categorical_log_prob(k: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[k] for every index in k (int64, shape (n,)); logits shape (K,)."""
    return torch.log_softmax(logits, dim=-1)[k]


# ---------------------------------------------------------------- linear regression with autograd


class LinearRegression(nn.Module):
    """y_hat = X w + b as an nn.Module, float64, weights starting at zero (the loss is convex)."""

    def __init__(self, n_features: int):
        super().__init__()
        self.linear = nn.Linear(n_features, 1, dtype=torch.float64)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """Predictions for X of shape (n, n_features): shape (n,)."""
        return self.linear(X).squeeze(-1)


def fit_linear_regression(
    X: torch.Tensor, y: torch.Tensor, lr: float = 0.1, epochs: int = 1000
) -> tuple[LinearRegression, torch.Tensor]:
    """Full-batch gradient descent on the MSE, gradients from loss.backward(); no torch.optim.

    Returns the trained model and the loss before each update (shape (epochs,)).
    Each update: p <- p - lr * p.grad for every parameter, then clear the gradients.
    """
    model = LinearRegression(X.shape[1])
    losses = torch.empty(epochs, dtype=torch.float64)
    for epoch in range(epochs):
        loss = torch.mean((model(X) - y) ** 2)
        loss.backward()
        with torch.no_grad():  # the update itself must not be recorded in the graph
            for p in model.parameters():
                p -= lr * p.grad
                p.grad = None
        losses[epoch] = loss.detach()
    return model, losses


# ---------------------------------------------------------------- REINFORCE on a bandit


class BernoulliBandit:
    """A simulated k-armed bandit: pulling arm i pays 1 with probability means[i], else 0."""

    def __init__(self, means: Sequence[float] | torch.Tensor):
        self.means = torch.as_tensor(means, dtype=torch.float64)

    def pull(self, arms: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Rewards (float64 zeros and ones, shape of `arms`) for pulling each arm in `arms` (int64)."""
        u = torch.rand(arms.shape, generator=generator, dtype=torch.float64)
        return (u < self.means[arms]).to(torch.float64)


class SoftmaxPolicy(nn.Module):
    """pi(a) = softmax(logits)[a]; logits start at zero, so the first policy is uniform."""

    def __init__(self, n_arms: int):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(n_arms, dtype=torch.float64))

    def forward(self) -> Categorical:
        """The current policy as a torch.distributions.Categorical over the arms."""
        return Categorical(logits=self.logits)


def reinforce_loss(
    log_probs: torch.Tensor, rewards: torch.Tensor, baseline: float = 0.0
) -> torch.Tensor:
    """Scalar surrogate -mean((r - baseline) * log pi(a)); its gradient is minus the REINFORCE estimate.

    log_probs and rewards have shape (n,); minimising this ascends the expected reward.
    """
    return -torch.mean((rewards - baseline) * log_probs)


def reinforce_gradient(
    logits: torch.Tensor, means: Sequence[float] | torch.Tensor, n_samples: int, seed: int
) -> torch.Tensor:
    """Monte-Carlo REINFORCE estimate of grad_logits J, J = sum_a pi(a) means[a]; shape (K,).

    Draw n_samples arms from pi (torch.multinomial with a Generator seeded by `seed`), pull them
    on BernoulliBandit(means) with the same generator, and differentiate -reinforce_loss (no
    baseline) with autograd.
    """
    g = torch.Generator().manual_seed(seed)
    logits = logits.detach().to(torch.float64).clone().requires_grad_(True)
    dist = Categorical(logits=logits)
    arms = torch.multinomial(dist.probs.detach(), n_samples, replacement=True, generator=g)
    rewards = BernoulliBandit(means).pull(arms, g)
    (grad,) = torch.autograd.grad(-reinforce_loss(dist.log_prob(arms), rewards), logits)
    return grad


def policy_gradient(logits: torch.Tensor, means: Sequence[float] | torch.Tensor) -> torch.Tensor:
    """Exact grad_logits of J = sum_a pi(a) means[a] for a softmax policy: pi * (means - J), shape (K,)."""
    pi = torch.softmax(logits.to(torch.float64), dim=-1)
    mu = torch.as_tensor(means, dtype=torch.float64)
    return pi * (mu - pi @ mu)


def train_reinforce(
    means: Sequence[float] | torch.Tensor,
    episodes: int,
    batch_size: int = 32,
    lr: float = 0.5,
    seed: int = 0,
    baseline: bool = True,
) -> tuple[SoftmaxPolicy, torch.Tensor]:
    """Train a SoftmaxPolicy on BernoulliBandit(means) with REINFORCE; one episode is one pull.

    Each of the episodes // batch_size updates samples batch_size arms from the policy
    (torch.multinomial with a Generator seeded by `seed`), pulls them, and takes one
    torch.optim.SGD(lr) step on reinforce_loss. With `baseline`, the baseline is the mean reward
    of all EARLIER batches (0 before the first), which keeps the estimate unbiased.
    Returns the policy and its arm probabilities after every update, shape (n_updates, K).
    """
    g = torch.Generator().manual_seed(seed)
    bandit = BernoulliBandit(means)
    policy = SoftmaxPolicy(len(bandit.means))
    opt = torch.optim.SGD(policy.parameters(), lr=lr)
    n_updates = episodes // batch_size
    history = torch.empty(n_updates, len(bandit.means), dtype=torch.float64)
    reward_sum = 0.0
    for t in range(n_updates):
        dist = policy()
        arms = torch.multinomial(dist.probs.detach(), batch_size, replacement=True, generator=g)
        rewards = bandit.pull(arms, g)
        b = reward_sum / (t * batch_size) if (baseline and t > 0) else 0.0
        opt.zero_grad()
        reinforce_loss(dist.log_prob(arms), rewards, b).backward()
        opt.step()
        reward_sum += float(rewards.sum())
        history[t] = torch.softmax(policy.logits.detach(), dim=-1)
    return policy, history
