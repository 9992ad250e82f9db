"""A mixture-of-experts feed-forward layer for char-gpt: a router sends each token to its top-k
experts, each expert is char-gpt's MLP, and a capacity limit caps how many tokens one expert takes.

Shapes: the layer sees the N = B * T tokens of a batch as rows of x (N, C); there are E experts
and each token picks k of them. One forward pass::

    logits = x @ W_r^T                     (N, E)   the router: one linear map, no bias
    probs = softmax(logits)                (N, E)
    gates, experts = top-k of probs        (N, k)   renormalised to sum to 1 when k > 1
    keep = position in expert queue < capacity      overflow assignments are dropped
    y[n] = sum over kept j of gates[n, j] * expert_{experts[n, j]}(x[n])

A dropped token gets nothing from that expert, so inside a block (x + mlp(ln(x))) it simply
passes through on the residual stream. Only k experts run per token, so the layer holds E expert
MLPs but spends the compute of k: total and active parameters part ways.

Left alone, a router sends most tokens to the few experts that happen to win early. The Switch
Transformer's load-balancing loss, E * sum_i f_i P_i (f_i: share of assignments to expert i,
P_i: mean router probability of i), is smallest when both are uniform; it is added to the
language-model loss with a small coefficient while training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from airoad.transformer.char_gpt import GPT, MLP, GPTConfig


def top_k_routing(logits: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Router logits (N, E) -> (probs (N, E), gates (N, k), experts (N, k) int64).

    probs = softmax(logits); experts are each row's k most probable experts, best first; gates
    are their probabilities, divided by their sum when k > 1 (so a token's gates add to 1). With
    k = 1 the gate is the raw probability (Switch), which keeps a gradient path from the
    language-model loss to the router.
    """
    probs = torch.softmax(logits, dim=-1)
    gates, experts = torch.topk(probs, k, dim=-1)
    if k > 1:
        gates = gates / gates.sum(dim=-1, keepdim=True)
    return probs, gates, experts


def expert_capacity(n_tokens: int, n_experts: int, k: int, capacity_factor: float) -> int:
    """Slots per expert: ceil(capacity_factor * n_tokens * k / n_experts).

    A factor of 1 gives every expert exactly its fair share of the n_tokens * k assignments; a
    factor >= n_experts means no assignment can ever be dropped.
    """
    return math.ceil(capacity_factor * n_tokens * k / n_experts)


def capacity_mask(experts: torch.Tensor, n_experts: int, capacity: int) -> torch.Tensor:
    """Which assignments fit: experts (N, k) -> keep (N, k) bool.

    Each expert serves its assignments in priority order: every token's first choice, in token
    order, then every token's second choice, and so on (GShard's rule: a token's top choice
    outranks anyone's second). The first ``capacity`` assignments to an expert are kept, the
    rest dropped. Vectorised: a running count (cumsum) of one-hot assignments gives each one its
    place in its expert's queue.
    """
    n, k = experts.shape
    onehot = F.one_hot(experts.T.reshape(-1), n_experts)  # (k * N, E), rank-major order
    place = (onehot.cumsum(dim=0) * onehot).sum(dim=-1) - 1  # 0-based place in its queue
    return (place < capacity).view(k, n).T


def load_balancing_loss(probs: torch.Tensor, experts: torch.Tensor) -> torch.Tensor:
    """Switch Transformer auxiliary loss: E * sum_i f_i * P_i, a scalar.

    probs (N, E): router probabilities; experts (N, k): the chosen experts (before any capacity
    drop). f_i = (assignments to expert i) / (N * k), a count with no gradient; P_i = mean over
    tokens of probs[:, i], which carries the gradient to the router. It is 1 when the router is
    uniform (P_i = 1/E), and grows as load and probability pile onto the same experts.
    For k = 1 this equals ``transformers``' switch_transformers ``load_balancing_loss_func``.
    """
    n_experts = probs.shape[-1]
    counts = torch.bincount(experts.reshape(-1), minlength=n_experts)
    f = counts.to(probs.dtype) / experts.numel()
    return n_experts * (f * probs.mean(dim=0)).sum()


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE's router z-loss: mean over tokens of logsumexp(logits)^2, for logits (N, E).

    It keeps the router's logits small, so the softmax stays away from float overflow.
    """
    return (torch.logsumexp(logits, dim=-1) ** 2).mean()


class MoE(nn.Module):
    """A drop-in replacement for char-gpt's MLP: x (..., C) -> (..., C) through routed experts.

    ``router`` is Linear(C, E, bias=False); ``experts`` are E char-gpt ``MLP``s of width
    ``hidden`` (default 4C). The capacity is computed over all tokens of one call. In training
    mode Gaussian noise of std ``noise_std`` is added to the router logits (0: off). After every
    forward pass ``aux`` holds the tensors ``balance_loss`` and ``z_loss`` (with gradients) and
    ``stats`` holds, without gradients, ``tokens`` (E,): the kept assignments per expert, and
    ``dropped``: the number of dropped assignments (0-d tensors).
    """

    def __init__(
        self,
        n_embd: int,
        n_experts: int = 4,
        k: int = 1,
        capacity_factor: float = 1.25,
        hidden: int | None = None,
        dropout: float = 0.0,
        noise_std: float = 0.0,
    ):
        super().__init__()
        if not 1 <= k <= n_experts:
            raise ValueError(f"k={k} must lie between 1 and n_experts={n_experts}")
        self.n_experts, self.k = n_experts, k
        self.capacity_factor, self.noise_std = capacity_factor, noise_std
        self.router = nn.Linear(n_embd, n_experts, bias=False)
        self.experts = nn.ModuleList(MLP(n_embd, dropout, hidden) for _ in range(n_experts))
        self.aux: dict[str, torch.Tensor] = {}
        self.stats: dict[str, torch.Tensor] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Route, drop the overflow, run each expert on its tokens and add the gated outputs.

        The router runs in at least float32, even under bfloat16 autocast (its softmax decides
        routing).
        The only Python loop is over the experts; tokens are gathered and scattered with index
        operations (``index_add_``), never one by one.
        """
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        logits = self.router(x)
        logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
        if self.training and self.noise_std > 0:
            logits = logits + self.noise_std * torch.randn_like(logits)
        probs, gates, experts = top_k_routing(logits, self.k)
        capacity = expert_capacity(len(x), self.n_experts, self.k, self.capacity_factor)
        keep = capacity_mask(experts, self.n_experts, capacity)
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):
            token, slot = torch.nonzero((experts == e) & keep, as_tuple=True)
            if len(token):
                y = gates[token, slot, None] * expert(x[token])
                out.index_add_(0, token, y.to(out.dtype))
        self.aux = {
            "balance_loss": load_balancing_loss(probs, experts),
            "z_loss": router_z_loss(logits),
        }
        kept = experts[keep]
        self.stats = {
            "tokens": torch.bincount(kept, minlength=self.n_experts).detach(),
            "dropped": (~keep).sum().detach(),
        }
        return out.view(shape)


@dataclass(frozen=True)
class MoEConfig:
    """The experts of every block: how many, top-k, capacity, width and the auxiliary losses.

    ``hidden`` None means 4C per expert (char-gpt's MLP). ``balance_coef`` and ``z_coef`` weigh
    the load-balancing and z losses (averaged over layers) in the training loss.
    """

    n_experts: int = 4
    k: int = 1
    capacity_factor: float = 1.25
    hidden: int | None = None
    balance_coef: float = 0.01
    z_coef: float = 0.0
    noise_std: float = 0.0


class MoEGPT(GPT):
    """char-gpt's GPT with every block's MLP replaced by an ``MoE`` layer.

    Everything else (attention, embeddings, weight tying, initialisation, generation) is
    inherited. ``loss`` in training mode adds the auxiliary losses; in eval mode it is the plain
    next-token cross-entropy, comparable with a dense GPT's.
    """

    def __init__(self, config: GPTConfig, moe: MoEConfig):
        self.moe = moe
        super().__init__(
            config,
            mlp=lambda layer: MoE(
                config.n_embd,
                moe.n_experts,
                moe.k,
                moe.capacity_factor,
                moe.hidden,
                config.dropout,
                moe.noise_std,
            ),
        )

    def moe_layers(self) -> list[MoE]:
        """The MoE layer of each block, first block first."""
        return [block.mlp for block in self.blocks]

    def aux_loss(self) -> torch.Tensor:
        """balance_coef * mean balance loss + z_coef * mean z loss over the layers, from the last
        forward pass (a 0-d tensor with gradients)."""
        layers = self.moe_layers()
        balance = sum(m.aux["balance_loss"] for m in layers) / len(layers)
        z = sum(m.aux["z_loss"] for m in layers) / len(layers)
        return self.moe.balance_coef * balance + self.moe.z_coef * z

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of idx, targets (B, T); plus ``aux_loss()`` when in training mode."""
        ce = super().loss(idx, targets)
        return ce + self.aux_loss() if self.training else ce


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """{"total": every parameter (a tied one once), "active": those one token uses}.

    In each MoE layer a token runs k of the E experts, so (E - k) experts' parameters are
    inactive for it; the router counts as active. A dense model has active == total.
    """
    total = sum(p.numel() for p in model.parameters())
    idle = 0
    for module in model.modules():
        if isinstance(module, MoE):
            per_expert = sum(p.numel() for p in module.experts[0].parameters())
            idle += (module.n_experts - module.k) * per_expert
    return {"total": total, "active": total - idle}
