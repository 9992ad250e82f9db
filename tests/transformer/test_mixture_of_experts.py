"""Grader for the mixture-of-experts layer: one expert with k = 1 equals char-gpt's dense MLP and
GPT (values and gradients), top-1 routing with a capacity equals transformers' Switch MLP, top-k
gates equal Mixtral's router, dispatch equals a per-token loop, capacity drops exactly the
overflow, the Switch load-balancing and z losses in closed form and against transformers, and a
float64 gradcheck of the whole layer."""

from __future__ import annotations

import inspect
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from transformers import MixtralConfig, SwitchTransformersConfig
from transformers.models.mixtral.modeling_mixtral import MixtralTopKRouter
from transformers.models.switch_transformers.modeling_switch_transformers import (
    SwitchTransformersSparseMLP,
    load_balancing_loss_func,
    router_z_loss_func,
)

from airoad.transformer.char_gpt import GPT, MLP, GPTConfig

REFERENCE = "airoad.transformer.mixture_of_experts"

FAST = settings(max_examples=12, deadline=None)
TIGHT = {"atol": 1e-12, "rtol": 1e-10}


def _layer(impl, seed=0, embd=6, experts=3, k=1, cf=1.25, hidden=10):
    """A seeded float64 MoE layer whose router is not tiny, so routing is decided clearly."""
    torch.manual_seed(seed)
    layer = impl.MoE(embd, experts, k, cf, hidden).double()
    with torch.no_grad():
        layer.router.weight.normal_(0.0, 1.0)
    return layer


def _x(n, c, seed=0, grad=False):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(n, c, generator=gen, dtype=torch.float64).requires_grad_(grad)


def test_one_expert_top1_equals_the_dense_mlp(impl):
    """With one expert, k = 1 and no drops the layer is exactly char-gpt's MLP, gradients too."""
    layer = _layer(impl, experts=1, k=1, cf=1.0, hidden=24)  # hidden 4C: the dense shape
    dense = MLP(6).double()
    dense.load_state_dict(layer.experts[0].state_dict())
    x1 = _x(10, 6, 1).view(2, 5, 6).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    out, ref = layer(x1), dense(x2)
    assert out.shape == ref.shape, f"output shape {tuple(out.shape)}, expected {tuple(ref.shape)}"
    torch.testing.assert_close(out, ref, **TIGHT, msg="one-expert output differs from the MLP")
    g = torch.randn(ref.shape, dtype=torch.float64)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x1.grad, x2.grad, **TIGHT, msg="input gradients differ")
    for (name, p), q in zip(layer.experts[0].named_parameters(), dense.parameters()):
        torch.testing.assert_close(p.grad, q.grad, **TIGHT, msg=f"gradient of {name} differs")
    assert layer.stats["dropped"].item() == 0, "nothing may be dropped when capacity = N"


def test_one_expert_moegpt_equals_the_dense_gpt(impl):
    """MoEGPT with one expert and k = 1 gives char-gpt's GPT logits, loss and gradients."""
    cfg = GPTConfig(vocab_size=13, block_size=8, n_layer=2, n_head=2, n_embd=8)
    torch.manual_seed(1)
    moe = impl.MoEGPT(cfg, impl.MoEConfig(n_experts=1, k=1, capacity_factor=1.0)).double()
    dense = GPT(cfg).double()
    mapped = {k.replace("mlp.experts.0.", "mlp."): v for k, v in moe.state_dict().items()}
    dense.load_state_dict({k: v for k, v in mapped.items() if "router" not in k})
    idx = torch.randint(13, (3, 8), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(moe(idx), dense(idx), **TIGHT, msg="logits differ from the GPT")
    moe.eval()
    dense.eval()
    moe.loss(idx, idx).backward()
    dense.loss(idx, idx).backward()
    grads = dict(dense.named_parameters())
    for name, p in moe.named_parameters():
        if "router" not in name:
            q = grads[name.replace("mlp.experts.0.", "mlp.")]
            torch.testing.assert_close(p.grad, q.grad, **TIGHT, msg=f"gradient of {name} differs")


@FAST
@given(
    n=st.integers(2, 12),
    experts=st.integers(2, 4),
    capacity=st.integers(1, 6),
    seed=st.integers(0, 10_000),
)
def test_top1_with_capacity_matches_transformers_switch_mlp(impl, n, experts, capacity, seed):
    """k = 1 with a capacity equals transformers' SwitchTransformersSparseMLP, gradients too."""
    c, h = 6, 10
    layer = _layer(impl, seed, c, experts, 1, capacity * experts / n, h)
    assert impl.expert_capacity(n, experts, 1, capacity * experts / n) == capacity
    with torch.no_grad():  # HF's experts have no biases
        for e in layer.experts:
            e.c_fc.bias.zero_()
            e.c_proj.bias.zero_()
    cfg = SwitchTransformersConfig(
        d_model=c, d_ff=h, num_experts=experts, expert_capacity=capacity,
        dense_act_fn="gelu", dropout_rate=0.0, router_jitter_noise=0.0,
    )  # fmt: skip
    hf = SwitchTransformersSparseMLP(cfg).double()
    hf.router.dtype = torch.float64
    with torch.no_grad():
        hf.router.classifier.weight.copy_(layer.router.weight)
        for i, e in enumerate(layer.experts):
            hf.experts[f"expert_{i}"].wi.weight.copy_(e.c_fc.weight)
            hf.experts[f"expert_{i}"].wo.weight.copy_(e.c_proj.weight)
    x1 = _x(n, c, seed, grad=True)
    x2 = x1.detach().clone().requires_grad_()
    out, ref = layer(x1[None]), hf(x2[None])  # one sequence: HF's capacity group = all tokens
    torch.testing.assert_close(out, ref, **TIGHT, msg="outputs differ from transformers'")
    out.sum().backward()
    ref.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, **TIGHT, msg="input gradients differ")
    torch.testing.assert_close(
        layer.router.weight.grad, hf.router.classifier.weight.grad, **TIGHT,
        msg="router gradients differ from transformers'",
    )  # fmt: skip


@FAST
@given(
    n=st.integers(1, 9),
    experts=st.integers(2, 5),
    k=st.integers(1, 3),
    seed=st.integers(0, 10_000),
)
def test_top_k_routing_matches_mixtral_router(impl, n, experts, k, seed):
    """probs are the softmax, experts the top k, and gates sum to 1 when k > 1 (Mixtral's router)."""
    k = min(k, experts)
    logits = _x(n, experts, seed) * 2
    probs, gates, chosen = impl.top_k_routing(logits, k)
    torch.testing.assert_close(probs, torch.softmax(logits, -1), **TIGHT, msg="probs != softmax")
    assert gates.shape == (n, k) and chosen.shape == (n, k), "gates and experts must be (N, k)"
    torch.testing.assert_close(
        torch.gather(probs, 1, chosen), torch.topk(probs, k, -1).values, **TIGHT,
        msg="the chosen experts are not the k most probable, best first",
    )  # fmt: skip
    if k == 1:
        torch.testing.assert_close(gates[:, 0], probs.max(-1).values, **TIGHT, msg="k=1 gate")
        return
    torch.testing.assert_close(gates.sum(-1), torch.ones(n, dtype=gates.dtype), **TIGHT)
    cfg = MixtralConfig(hidden_size=experts, num_local_experts=experts, num_experts_per_tok=k)
    router = MixtralTopKRouter(cfg)
    with torch.no_grad():
        router.weight.copy_(torch.eye(experts))  # the router's logits are the inputs themselves
    _, scores, indices = router(logits.float())
    assert torch.equal(indices, chosen), "experts differ from Mixtral's router"
    torch.testing.assert_close(gates.float(), scores, atol=1e-6, rtol=1e-5, msg="gates differ")


def _loop_reference(layer, x):
    """One token at a time: rank-major queues, a counter per expert, gated outputs summed."""
    probs = torch.softmax(x @ layer.router.weight.T, dim=-1)
    n, k = len(x), layer.k
    capacity = math.ceil(layer.capacity_factor * n * k / layer.n_experts)
    top = [sorted(range(layer.n_experts), key=lambda e: -probs[t, e].item())[:k] for t in range(n)]
    used, out = [0] * layer.n_experts, [torch.zeros_like(x[0]) for _ in range(n)]
    for rank in range(k):
        for t in range(n):
            e = top[t][rank]
            if used[e] < capacity:
                used[e] += 1
                p = torch.stack([probs[t, j] for j in top[t]])
                gate = p[rank] / p.sum() if k > 1 else p[rank]
                out[t] = out[t] + gate * layer.experts[e](x[t])
    return torch.stack(out), used


@FAST
@given(
    n=st.integers(1, 10),
    experts=st.integers(2, 4),
    k=st.integers(1, 2),
    cf=st.sampled_from([0.5, 1.0, 1.25, 4.0]),
    seed=st.integers(0, 10_000),
)
def test_dispatch_matches_a_per_token_loop(impl, n, experts, k, cf, seed):
    """The vectorised dispatch equals routing each token by hand, one at a time."""
    layer = _layer(impl, seed, 5, experts, k, cf, 7)
    x = _x(n, 5, seed)
    ref, used = _loop_reference(layer, x)
    out = layer(x)
    torch.testing.assert_close(out, ref, **TIGHT, msg="dispatch differs from the token loop")
    assert layer.stats["tokens"].tolist() == used, "stats['tokens'] != kept assignments"
    assert layer.stats["dropped"].item() == n * k - sum(used), "stats['dropped'] is wrong"


def test_capacity_drops_exactly_the_overflow_in_token_order(impl):
    """Each expert keeps its first `capacity` assignments: first choices in token order, then second."""
    top1 = torch.tensor([[0], [0], [1], [0], [0], [1]])
    keep = impl.capacity_mask(top1, 2, 2)
    assert keep.tolist() == [[True], [True], [True], [False], [False], [True]], "top-1 drops"
    top2 = torch.tensor([[0, 1], [1, 0], [0, 1]])
    keep = impl.capacity_mask(top2, 2, 2)
    assert keep.tolist() == [[True, True], [True, False], [True, False]], "second choices wait"
    assert impl.expert_capacity(10, 4, 2, 1.25) == math.ceil(1.25 * 10 * 2 / 4) == 7
    layer = _layer(impl, 0, 4, 2, 1, cf=0.6)  # capacity ceil(0.6 * 6 / 2) = 2
    with torch.no_grad():
        layer.router.weight.copy_(torch.tensor([[9.0, 0, 0, 0], [0, 0, 0, 0]]))
    x = torch.cat([torch.ones(6, 1), _x(6, 3)], 1).double()  # every token prefers expert 0
    out = layer(x)
    expected = layer.experts[0](x[:2]) * torch.softmax(x[:2] @ layer.router.weight.T, -1)[:, :1]
    torch.testing.assert_close(out[:2], expected, **TIGHT, msg="the first two tokens are served")
    assert torch.all(out[2:] == 0), "tokens past the capacity must get exactly zero"
    assert layer.stats["dropped"].item() == 4 and layer.stats["tokens"].tolist() == [2, 0]


def test_load_balancing_loss_closed_form_and_transformers(impl):
    """E * sum f_i P_i: a hand example, 1 for a uniform router, and transformers' Switch loss."""
    probs = torch.tensor([[0.7, 0.3], [0.4, 0.6], [0.9, 0.1]], dtype=torch.float64)
    chosen = torch.tensor([[0], [1], [0]])
    # f = (2/3, 1/3), P = (2/3, 1/3): 2 * (4/9 + 1/9) = 10/9
    loss = impl.load_balancing_loss(probs, chosen)
    assert abs(loss.item() - 10 / 9) < 1e-12, f"hand example gave {loss.item()}, expected 10/9"
    uniform = torch.full((7, 4), 0.25, dtype=torch.float64)
    for k in (1, 2):
        picks = torch.randint(4, (7, k), generator=torch.Generator().manual_seed(k))
        got = impl.load_balancing_loss(uniform, picks).item()
        assert abs(got - 1.0) < 1e-12, f"uniform router, k={k}: {got}"
    probs = torch.softmax(_x(9, 5, 3), -1)
    for k in (1, 2):
        picks = torch.topk(probs, k, -1).indices
        hf = load_balancing_loss_func(probs[None].float(), picks[None]).double() / k
        got = impl.load_balancing_loss(probs, picks)
        assert abs(got.item() - hf.item()) < 1e-6, f"k={k}: {got.item()} vs transformers/k {hf}"


def test_load_balancing_gradient_reaches_the_router(impl):
    """d loss / d P_i = E f_i / N; gradcheck through the softmax; the layer's router gets it."""
    probs = torch.softmax(_x(6, 3, 4), -1).requires_grad_()
    chosen = torch.tensor([[0], [0], [1], [0], [2], [0]])
    impl.load_balancing_loss(probs, chosen).backward()
    f = torch.tensor([4, 1, 1], dtype=torch.float64) / 6
    expected = (3 * f / 6).expand(6, 3)
    torch.testing.assert_close(probs.grad, expected, **TIGHT, msg="gradient is not E f_i / N")
    logits = _x(6, 3, 5, grad=True)
    assert torch.autograd.gradcheck(
        lambda z: impl.load_balancing_loss(torch.softmax(z, -1), chosen), (logits,)
    )
    layer = _layer(impl, 2, 5, 3, 2)
    layer(_x(8, 5, 6))
    layer.aux["balance_loss"].backward()
    assert layer.router.weight.grad is not None and layer.router.weight.grad.abs().sum() > 0


def test_router_z_loss_matches_transformers(impl):
    """mean logsumexp(logits)^2 equals transformers' router_z_loss_func."""
    logits = _x(10, 4, 7) * 3
    got = impl.router_z_loss(logits)
    ref = router_z_loss_func(logits[None])
    torch.testing.assert_close(got, ref, **TIGHT, msg="z-loss differs from transformers'")


@pytest.mark.parametrize("k", [1, 2])
def test_layer_gradcheck_float64(impl, k):
    """Finite differences agree with autograd for the input and the router (drops included)."""
    layer = _layer(impl, 3, 4, 3, k, cf=0.7, hidden=5)
    x = _x(6, 4, 8, grad=True)
    w = layer.router.weight.detach().clone().requires_grad_()
    fn = lambda x, w: torch.func.functional_call(layer, {"router.weight": w}, (x,))  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x, w)), "gradcheck failed"
    assert layer.stats["dropped"].item() > 0, "the check should include dropped tokens"


def test_moegpt_loss_adds_aux_in_training_and_counts_active_params(impl):
    """Training loss = CE + balance_coef * mean balance loss; active params match a dense GPT."""
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=8)
    torch.manual_seed(0)
    moe = impl.MoEConfig(n_experts=4, k=2, hidden=16, balance_coef=0.5, z_coef=0.25)
    model = impl.MoEGPT(cfg, moe).double()
    idx = torch.randint(11, (2, 8), generator=torch.Generator().manual_seed(3))
    train_loss = model.loss(idx, idx)
    layers = model.moe_layers()
    balance = sum(m.aux["balance_loss"] for m in layers) / 2
    z = sum(m.aux["z_loss"] for m in layers) / 2
    model.eval()
    ce = model.loss(idx, idx)
    torch.testing.assert_close(ce, GPT.loss(model, idx, idx), **TIGHT, msg="eval loss = CE")
    torch.testing.assert_close(train_loss, ce + 0.5 * balance + 0.25 * z, **TIGHT)
    counts = impl.parameter_counts(model)
    dense = sum(p.numel() for p in GPT(cfg).parameters())
    # per layer: a router (E x C) and k - 1 extra output biases (C) beyond the dense MLP
    assert counts["active"] == dense + 2 * (4 * 8 + 1 * 8), f"active params {counts}"
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert impl.parameter_counts(GPT(cfg)) == {"total": dense, "active": dense}


def test_router_noise_only_in_training_and_k_is_checked(impl):
    """Training adds noise_std * randn_like(logits) to the router logits; eval and noise_std=0 draw none; k outside 1..E is a ValueError."""
    torch.manual_seed(2)
    layer = impl.MoE(6, 3, 1, 1.25, 10, noise_std=0.5).double()
    x = _x(8, 6, 4)
    clean = layer.router(x).detach()

    def z_of(logits):  # router_z_loss's closed form: mean logsumexp^2
        return (torch.logsumexp(logits, -1) ** 2).mean()

    torch.manual_seed(11)
    layer(x)
    torch.manual_seed(11)
    noisy = clean + 0.5 * torch.randn_like(clean)
    torch.testing.assert_close(layer.aux["z_loss"], z_of(noisy), **TIGHT, msg="noise differs")
    for training, std in [(False, 0.5), (True, 0.0)]:
        layer.train(training)
        layer.noise_std = std
        state = torch.get_rng_state()
        layer(x)
        assert torch.equal(torch.get_rng_state(), state), "noise drawn where it is off"
        torch.testing.assert_close(layer.aux["z_loss"], z_of(clean), **TIGHT, msg="noise added")
    for k in (0, 4):
        with pytest.raises(ValueError):
            impl.MoE(6, 3, k)


def test_moe_config_defaults_are_switch_style(impl):
    """MoEConfig() gives MoE's default capacity factor 1.25 and a training loss with no z-loss term."""
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    torch.manual_seed(0)
    model = impl.MoEGPT(cfg, impl.MoEConfig()).double()
    layer = model.moe_layers()[0]
    default = inspect.signature(impl.MoE).parameters["capacity_factor"].default
    assert layer.capacity_factor == default == 1.25, "capacity factor is not 1.25"
    idx = torch.randint(11, (2, 8), generator=torch.Generator().manual_seed(3))
    train_loss = model.loss(idx, idx)
    balance = layer.aux["balance_loss"]
    model.eval()
    want = model.loss(idx, idx) + 0.01 * balance
    torch.testing.assert_close(train_loss, want, **TIGHT, msg="default aux is 0.01 * balance")


def test_one_expert_model_has_no_idle_parameters(impl):
    """With a single expert (so k = 1) every parameter is active: parameter_counts gives active == total."""
    cfg = GPTConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=8)
    model = impl.MoEGPT(cfg, impl.MoEConfig(n_experts=1))
    total = sum(p.numel() for p in model.parameters())
    assert impl.parameter_counts(model) == {"total": total, "active": total}
