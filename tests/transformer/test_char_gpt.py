"""Grader for char-gpt's model: causal attention against F.scaled_dot_product_attention, the
attention module and the block against torch's own layers with copied weights (values and
gradients, float64), a gradcheck of a block, causality, weight tying, and generation with a KV
cache whose logits equal those without it."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

REFERENCE = "airoad.transformer.char_gpt"

FAST = settings(max_examples=15, deadline=None)


def _tiny(impl, seed=0, vocab=11, block=16, layers=2, heads=2, embd=8, dropout=0.0):
    """A seeded float64 GPT small enough to check exactly."""
    torch.manual_seed(seed)
    config = impl.GPTConfig(
        vocab_size=vocab,
        block_size=block,
        n_layer=layers,
        n_head=heads,
        n_embd=embd,
        dropout=dropout,
    )
    return impl.GPT(config).double()


def _torch_layer(block, embd, heads) -> nn.TransformerEncoderLayer:
    """nn.TransformerEncoderLayer (pre-LN, GELU) carrying the block's weights."""
    layer = nn.TransformerEncoderLayer(
        embd, heads, 4 * embd, 0.0, "gelu", batch_first=True, norm_first=True
    ).double()
    pairs = {
        "self_attn.in_proj_weight": block.attn.c_attn.weight,
        "self_attn.in_proj_bias": block.attn.c_attn.bias,
        "self_attn.out_proj.weight": block.attn.c_proj.weight,
        "self_attn.out_proj.bias": block.attn.c_proj.bias,
        "linear1.weight": block.mlp.c_fc.weight,
        "linear1.bias": block.mlp.c_fc.bias,
        "linear2.weight": block.mlp.c_proj.weight,
        "linear2.bias": block.mlp.c_proj.bias,
        "norm1.weight": block.ln_1.weight,
        "norm1.bias": block.ln_1.bias,
        "norm2.weight": block.ln_2.weight,
        "norm2.bias": block.ln_2.bias,
    }
    layer.load_state_dict({k: v.detach().clone() for k, v in pairs.items()})
    return layer


@FAST
@given(
    b=st.integers(1, 2),
    h=st.integers(1, 3),
    t=st.integers(1, 7),
    d=st.integers(1, 5),
    seed=st.integers(0, 10_000),
)
def test_causal_attention_matches_torch_values_and_gradients(impl, b, h, t, d, seed):
    """causal_attention(q, k, v) equals F.scaled_dot_product_attention(is_causal=True), gradients too."""
    gen = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(b, h, t, d, generator=gen, dtype=torch.float64) for _ in range(3))
    mine = [z.clone().requires_grad_() for z in (q, k, v)]
    theirs = [z.clone().requires_grad_() for z in (q, k, v)]
    out = impl.causal_attention(*mine)
    ref = F.scaled_dot_product_attention(*theirs, is_causal=True)
    assert out.shape == ref.shape, f"output shape {tuple(out.shape)}, expected {tuple(ref.shape)}"
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10, msg="outputs differ from torch's")
    g = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    out.backward(g)
    ref.backward(g)
    for name, a, r in zip("qkv", mine, theirs):
        torch.testing.assert_close(
            a.grad, r.grad, atol=1e-12, rtol=1e-10, msg=f"d{name} differs from torch's"
        )


@FAST
@given(t=st.integers(1, 5), extra=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_causal_attention_with_cached_keys_sees_the_past(impl, t, extra, seed):
    """With S = T + past keys, the T queries are the last T positions: the last T rows of full attention."""
    gen = torch.Generator().manual_seed(seed)
    s = t + extra
    q, k, v = (torch.randn(2, 2, s, 3, generator=gen, dtype=torch.float64) for _ in range(3))
    full = F.scaled_dot_product_attention(q, k, v, is_causal=True)
    out = impl.causal_attention(q[:, :, -t:], k, v)
    torch.testing.assert_close(
        out,
        full[:, :, -t:],
        atol=1e-12,
        rtol=1e-10,
        msg="queries at the end of a longer key sequence must see every key up to their position",
    )


def test_self_attention_matches_multihead_attention(impl):
    """CausalSelfAttention equals nn.MultiheadAttention with the same weights and a causal mask."""
    torch.manual_seed(0)
    attn = impl.CausalSelfAttention(12, 3).double()
    mha = nn.MultiheadAttention(12, 3, batch_first=True).double()
    mha.load_state_dict(
        {
            "in_proj_weight": attn.c_attn.weight.detach().clone(),
            "in_proj_bias": attn.c_attn.bias.detach().clone(),
            "out_proj.weight": attn.c_proj.weight.detach().clone(),
            "out_proj.bias": attn.c_proj.bias.detach().clone(),
        }
    )
    x = torch.randn(2, 6, 12, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    mask = torch.ones(6, 6, dtype=torch.bool).triu(1)  # True = not allowed
    out = attn(xa)
    ref, _ = mha(xb, xb, xb, attn_mask=mask, need_weights=False)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10, msg="outputs differ from MHA's")
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-12, rtol=1e-10, msg="dx differs")
    torch.testing.assert_close(
        attn.c_attn.weight.grad,
        mha.in_proj_weight.grad,
        atol=1e-12,
        rtol=1e-10,
        msg="the gradient of c_attn.weight differs from MHA's in_proj_weight gradient",
    )


def test_block_matches_transformer_encoder_layer(impl):
    """Block equals a pre-LN GELU nn.TransformerEncoderLayer with copied weights and a causal mask."""
    torch.manual_seed(1)
    block = impl.Block(8, 2).double()
    layer = _torch_layer(block, 8, 2)
    x = torch.randn(3, 5, 8, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    mask = nn.Transformer.generate_square_subsequent_mask(5, dtype=torch.float64)
    out = block(xa)
    ref = layer(xb, src_mask=mask, is_causal=True)
    torch.testing.assert_close(out, ref, atol=1e-12, rtol=1e-10, msg="block output differs")
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, atol=1e-12, rtol=1e-10, msg="dx differs")
    torch.testing.assert_close(
        block.mlp.c_fc.weight.grad,
        layer.linear1.weight.grad,
        atol=1e-12,
        rtol=1e-10,
        msg="the MLP's first weight gets a different gradient than torch's linear1",
    )


def test_block_passes_gradcheck(impl):
    """torch.autograd.gradcheck: a float64 block's gradients w.r.t. input and every weight are right."""
    torch.manual_seed(2)
    block = impl.Block(4, 2).double()
    names = [n for n, _ in block.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for _, p in block.named_parameters())
    x = torch.randn(1, 3, 4, dtype=torch.float64, requires_grad=True)

    def f(x, *weights):
        return torch.func.functional_call(block, dict(zip(names, weights)), (x,))

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5), "gradcheck failed"


@FAST
@given(t=st.integers(0, 8), seed=st.integers(0, 10_000))
def test_logits_never_see_the_future(impl, t, seed):
    """Changing the tokens after position t leaves the logits at positions 0..t unchanged."""
    model = _tiny(impl).eval()
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, 11, (2, 10), generator=gen)
    changed = idx.clone()
    changed[:, t + 1 :] = torch.randint(0, 11, changed[:, t + 1 :].shape, generator=gen)
    a, b = model(idx), model(changed)
    assert a.shape == (2, 10, 11), f"logits shape {tuple(a.shape)}, expected (2, 10, 11)"
    torch.testing.assert_close(
        a[:, : t + 1], b[:, : t + 1], atol=1e-12, rtol=0, msg=f"position <= {t} saw a later token"
    )


def test_first_token_changes_every_later_logit(impl):
    """Every position's logits depend on the first token (attention reaches back, not just local)."""
    model = _tiny(impl).eval()
    idx = torch.randint(0, 11, (1, 8), generator=torch.Generator().manual_seed(3))
    other = idx.clone()
    other[0, 0] = (idx[0, 0] + 1) % 11
    diff = (model(idx) - model(other)).abs().amax(dim=-1)[0]
    assert (diff > 1e-9).all(), (
        f"positions {torch.nonzero(diff <= 1e-9).flatten().tolist()} ignore token 0"
    )


def test_loss_is_cross_entropy_and_starts_near_log_vocab(impl):
    """GPT.loss is the mean next-token cross-entropy; an untrained model scores about ln(V)."""
    model = _tiny(impl, vocab=37, embd=16)
    idx = torch.randint(0, 37, (4, 12), generator=torch.Generator().manual_seed(4))
    x, y = idx[:, :-1], idx[:, 1:]
    expected = F.cross_entropy(model(x).reshape(-1, 37), y.reshape(-1))
    torch.testing.assert_close(model.loss(x, y), expected, msg="loss != F.cross_entropy(logits)")
    assert abs(model.loss(x, y).item() - math.log(37)) < 0.05, (
        f"an untrained model should score about ln(37) = {math.log(37):.3f} (small init weights)"
    )


def test_weight_tying_shares_one_tensor_and_sums_gradients(impl):
    """lm_head.weight is wte.weight; its gradient is the sum of the untied model's two gradients."""
    model = _tiny(impl)
    assert model.lm_head.weight is model.wte.weight, "lm_head.weight must be the wte.weight tensor"
    untied = _tiny(impl)
    untied.lm_head.weight = nn.Parameter(untied.wte.weight.detach().clone())
    idx = torch.randint(0, 11, (2, 9), generator=torch.Generator().manual_seed(5))
    model.loss(idx[:, :-1], idx[:, 1:]).backward()
    untied.loss(idx[:, :-1], idx[:, 1:]).backward()
    torch.testing.assert_close(
        model.wte.weight.grad,
        untied.wte.weight.grad + untied.lm_head.weight.grad,
        atol=1e-12,
        rtol=1e-10,
        msg="the tied weight's gradient is not the sum of both uses",
    )


def test_forward_refuses_positions_past_block_size(impl):
    """A sequence longer than block_size has no position embedding: forward raises ValueError."""
    model = _tiny(impl, block=6)
    with pytest.raises(ValueError):
        model(torch.zeros(1, 7, dtype=torch.long))


def test_kv_cache_appends_along_time(impl):
    """KVCache.update concatenates new keys/values on the time axis; len() counts positions."""
    cache = impl.KVCache(2)
    assert len(cache) == 0, "an empty cache has length 0"
    k1, v1 = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    cache.update(0, k1, v1)
    k2, v2 = torch.randn(1, 2, 1, 4), torch.randn(1, 2, 1, 4)
    k, v = cache.update(0, k2, v2)
    torch.testing.assert_close(k, torch.cat([k1, k2], dim=2), msg="keys not appended in order")
    torch.testing.assert_close(v, torch.cat([v1, v2], dim=2), msg="values not appended in order")
    assert len(cache) == 4, f"len(cache) is {len(cache)} after 3 + 1 positions"


@FAST
@given(prefix=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_cached_logits_equal_full_forward(impl, prefix, seed):
    """Prefill then one token at a time through a KVCache gives the full forward's logits (float64)."""
    model = _tiny(impl, seed=seed % 7).eval()
    idx = torch.randint(0, 11, (2, 12), generator=torch.Generator().manual_seed(seed))
    full = model(idx)
    cache = impl.KVCache(2)
    steps = [model(idx[:, :prefix], cache)]
    steps += [model(idx[:, t : t + 1], cache) for t in range(prefix, 12)]
    torch.testing.assert_close(
        torch.cat(steps, dim=1),
        full,
        atol=1e-12,
        rtol=1e-10,
        msg="cached step-by-step logits differ from one full forward pass",
    )


@pytest.mark.parametrize("temperature,top_k", [(0.0, None), (1.0, None), (0.7, 3)])
def test_generate_with_cache_equals_without(impl, temperature, top_k):
    """Inside block_size, generate(use_cache=True) picks the same tokens as use_cache=False."""
    model = _tiny(impl, seed=6)
    prompt = torch.randint(0, 11, (2, 3), generator=torch.Generator().manual_seed(6))
    outs = []
    for use_cache in (True, False):
        gen = torch.Generator().manual_seed(7)
        outs.append(model.generate(prompt, 13, temperature, top_k, gen, use_cache))
    assert outs[0].shape == (2, 16), f"generate returned {tuple(outs[0].shape)}, expected (2, 16)"
    assert torch.equal(outs[0][:, :3], prompt), "the output must start with the prompt"
    assert torch.equal(outs[0], outs[1]), "cached and uncached generation chose different tokens"


def test_generate_runs_past_block_size_and_restores_mode(impl):
    """generate can produce more tokens than block_size (both ways) and leaves train mode as it was."""
    model = _tiny(impl, block=8, dropout=0.1).train()
    prompt = torch.zeros(1, 2, dtype=torch.long)
    for use_cache in (True, False):
        out = model.generate(prompt, 30, 1.0, None, torch.Generator().manual_seed(0), use_cache)
        assert out.shape == (1, 32), f"expected 32 tokens, got {tuple(out.shape)}"
        assert 0 <= int(out.min()) and int(out.max()) < 11, "token ids out of the vocabulary"
    assert model.training, "generate must restore train mode"


def test_sample_next_greedy_top_k_and_frequencies(impl):
    """sample_next: temperature 0 and top_k=1 give the argmax; otherwise draws follow the softmax."""
    logits = torch.tensor([[0.0, 1.0, 2.0, -1.0], [3.0, 0.5, 0.0, 0.0]])
    assert impl.sample_next(logits, 0.0).flatten().tolist() == [2, 0], "greedy must be argmax"
    gen = torch.Generator().manual_seed(0)
    top1 = impl.sample_next(logits, 1.0, 1, gen).flatten().tolist()
    assert top1 == [2, 0], f"top_k=1 must give the argmax, got {top1}"
    draws = impl.sample_next(logits[:1].expand(20_000, 4), 1.0, None, gen).flatten()
    freq = torch.bincount(draws, minlength=4).double() / 20_000
    torch.testing.assert_close(
        freq,
        torch.softmax(logits[0].double(), 0),
        atol=0.015,
        rtol=0,
        msg="sample frequencies do not follow softmax(logits)",
    )
    top2 = impl.sample_next(logits[:1].expand(2_000, 4), 2.0, 2, gen).flatten()
    assert set(top2.tolist()) == {1, 2}, "top_k=2 must only ever draw the two largest logits"
