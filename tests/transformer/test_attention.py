"""Grader for attention: masks, scaled dot-product attention and multi-head self-/cross-attention
against F.scaled_dot_product_attention and nn.MultiheadAttention with copied weights (values and
gradients in float64), additive attention against its formula and finite differences, and the
GRU encoder-decoder's contracts (padding ignored, causal teacher forcing, greedy decoding)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from transformer_testing import (
    F64,
    TOL64,
    gen,
    grads,
    mha_pair,
    randn64,
    random_mask,
    their_proj_grads,
)

REFERENCE = "airoad.transformer.attention"

FAST = settings(max_examples=15, deadline=None)


def test_causal_mask_is_lower_triangular(impl):
    """causal_mask(Lq, Lk) is True where key j <= query i, like torch.ones(Lq, Lk).tril()."""
    for lq, lk in [(4, 4), (3, 5), (5, 2)]:
        got = impl.causal_mask(lq, lk)
        assert got.dtype == torch.bool, f"causal_mask dtype is {got.dtype}, expected torch.bool"
        expected = torch.ones(lq, lk, dtype=torch.bool).tril()
        assert torch.equal(got, expected), f"causal_mask({lq}, {lk}) is not ones(..).tril()"
    assert torch.equal(impl.causal_mask(3), torch.ones(3, 3, dtype=torch.bool).tril()), (
        "causal_mask(L) should be square (k_len defaults to q_len)"
    )


def test_padding_mask_marks_real_tokens(impl):
    """padding_mask(lengths, max_len) is True at the first lengths[n] positions of row n."""
    got = impl.padding_mask(torch.tensor([3, 1, 5]), 6)
    expected = torch.tensor(
        [[1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0], [1, 1, 1, 1, 1, 0]], dtype=torch.bool
    )
    assert torch.equal(got, expected), f"padding_mask gave\n{got}\nexpected\n{expected}"
    assert impl.padding_mask(torch.tensor([2, 4])).shape == (2, 4), (
        "max_len should default to the longest length"
    )


@FAST
@given(rows=st.integers(1, 5), cols=st.integers(1, 7), seed=st.integers(0, 10_000))
def test_masked_softmax_matches_torch_softmax(impl, rows, cols, seed):
    """masked_softmax equals torch.softmax of scores with masked entries set to -inf (values, grads)."""
    g = gen(seed)
    scores, mask = randn64(g, 2, rows, cols), random_mask(g, 2, rows, cols)
    g_out = torch.randn(2, rows, cols, generator=g, dtype=F64)
    ours = impl.masked_softmax(scores, mask)
    theirs = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    torch.testing.assert_close(ours, theirs, **TOL64, msg="masked_softmax values differ")
    (d_ours,), (d_theirs,) = grads(ours, g_out, [scores]), grads(theirs, g_out, [scores])
    torch.testing.assert_close(d_ours, d_theirs, **TOL64, msg="masked_softmax gradients differ")
    plain = impl.masked_softmax(scores, None)
    torch.testing.assert_close(plain, torch.softmax(scores, -1), **TOL64, msg="mask=None is wrong")


def test_masked_softmax_is_stable_and_zero_on_fully_masked_rows(impl):
    """Huge scores do not overflow, and a fully masked row gives zeros with finite gradients."""
    scores = torch.tensor([[1000.0, 1001.0, 999.0], [5.0, 6.0, 7.0]], dtype=F64, requires_grad=True)
    mask = torch.tensor([[True, True, True], [False, False, False]])
    out = impl.masked_softmax(scores, mask)
    assert torch.isfinite(out).all(), f"masked_softmax gave non-finite values: {out}"
    torch.testing.assert_close(
        out[0], torch.softmax(scores[0], -1), **TOL64, msg="large scores: use max subtraction"
    )
    assert torch.equal(out[1], torch.zeros(3, dtype=F64)), f"fully masked row is {out[1]}, not 0"
    (grad,) = torch.autograd.grad(out.sum() + (out[0] * torch.arange(3.0)).sum(), [scores])
    assert torch.isfinite(grad).all(), f"gradient through a fully masked row is {grad}"


@FAST
@given(
    lq=st.integers(1, 6),
    lk=st.integers(1, 6),
    d=st.integers(1, 5),
    dv=st.integers(1, 4),
    causal=st.booleans(),
    use_mask=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_sdpa_matches_torch_values_and_gradients(impl, lq, lk, d, dv, causal, use_mask, seed):
    """scaled_dot_product_attention equals F.scaled_dot_product_attention (values and q/k/v grads)."""
    g = gen(seed)
    q, k, v = randn64(g, 2, 3, lq, d), randn64(g, 2, 3, lk, d), randn64(g, 2, 3, lk, dv)
    # Rows may be fully masked here: torch returns zeros for them, and so must we.
    mask = random_mask(g, 2, 1, lq, lk, keep_one=False) if use_mask else None
    out, weights = impl.scaled_dot_product_attention(q, k, v, mask=mask, causal=causal)
    ref_mask = mask
    if causal:
        tri = torch.ones(lq, lk, dtype=torch.bool).tril()
        ref_mask = tri if mask is None else mask & tri
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=ref_mask)
    torch.testing.assert_close(out, ref, **TOL64, msg="attention output differs from torch's")
    assert weights.shape == (2, 3, lq, lk), f"weights shape {weights.shape}, expected (2,3,Lq,Lk)"
    g_out = torch.randn(ref.shape, generator=g, dtype=F64)
    for name, a, b in zip("qkv", grads(out, g_out, [q, k, v]), grads(ref, g_out, [q, k, v])):
        torch.testing.assert_close(a, b, **TOL64, msg=f"d{name} differs from torch autograd")


def test_sdpa_custom_scale_and_weights(impl):
    """The scale argument replaces 1/sqrt(d); weights rows sum to 1 and are zero above the diagonal."""
    g = gen(3)
    q, k, v = randn64(g, 2, 4, 3), randn64(g, 2, 4, 3), randn64(g, 2, 4, 2)
    out, _ = impl.scaled_dot_product_attention(q, k, v, scale=0.7)
    ref = F.scaled_dot_product_attention(q, k, v, scale=0.7)
    torch.testing.assert_close(out, ref, **TOL64, msg="scale=0.7 does not match torch")
    _, w = impl.scaled_dot_product_attention(q, k, v, causal=True)
    torch.testing.assert_close(w.sum(-1), torch.ones(2, 4, dtype=F64), **TOL64, msg="rows sum to 1")
    assert torch.all(w.triu(1) == 0), "causal weights above the diagonal must be exactly 0"


def test_sdpa_gradcheck_with_masks(impl):
    """Gradients of masked, causal attention pass torch.autograd.gradcheck (finite differences)."""
    g = gen(4)
    q, k, v = randn64(g, 2, 3, 2), randn64(g, 2, 4, 2), randn64(g, 2, 4, 3)
    mask = torch.tensor([[True, True, False, True], [True, False, True, True]])[:, None, :]

    def f(q, k, v):
        return impl.scaled_dot_product_attention(q, k, v, mask=mask, causal=True)[0]

    assert torch.autograd.gradcheck(f, (q, k, v), eps=1e-6, atol=1e-7), "gradcheck failed"


def test_split_and_merge_heads(impl):
    """split_heads gives head h the features h*dh..(h+1)*dh-1; merge_heads undoes it."""
    x = torch.arange(2 * 3 * 8, dtype=F64).reshape(2, 3, 8)
    heads = impl.split_heads(x, 4)
    assert heads.shape == (2, 4, 3, 2), f"split_heads shape {heads.shape}, expected (2, 4, 3, 2)"
    assert torch.equal(heads[1, 2, 0], x[1, 0, 4:6]), "head 2 of token 0 should be features 4:6"
    assert torch.equal(impl.merge_heads(heads), x), "merge_heads(split_heads(x)) != x"


def test_copy_from_torch_unpacks_the_projections(impl):
    """copy_from_torch puts the row blocks of in_proj_weight/in_proj_bias into q/k/v_proj."""
    for kdim, vdim in [(None, None), (5, 3)]:
        ours, theirs = mha_pair(impl, 6, 2, kdim, vdim)
        if kdim is None:
            w_q, w_k, w_v = theirs.in_proj_weight.split(6)
        else:
            w_q, w_k, w_v = theirs.q_proj_weight, theirs.k_proj_weight, theirs.v_proj_weight
        b_q, b_k, b_v = theirs.in_proj_bias.split(6)
        for name, proj, w, b in [("q", ours.q_proj, w_q, b_q), ("k", ours.k_proj, w_k, b_k)] + [
            ("v", ours.v_proj, w_v, b_v)
        ]:
            assert torch.equal(proj.weight, w), f"{name}_proj.weight is not torch's W_{name}"
            assert torch.equal(proj.bias, b), f"{name}_proj.bias is not torch's b_{name}"
        assert torch.equal(ours.out_proj.weight, theirs.out_proj.weight), "out_proj not copied"
        assert torch.equal(ours.out_proj.bias, theirs.out_proj.bias), "out_proj.bias not copied"


@FAST
@given(
    heads=st.sampled_from([1, 2, 4]),
    length=st.integers(1, 6),
    causal=st.booleans(),
    padded=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_self_attention_matches_nn_multiheadattention(impl, heads, length, causal, padded, seed):
    """MultiHeadAttention(x) equals nn.MultiheadAttention(x, x, x): output, per-head weights, grads."""
    ours, theirs = mha_pair(impl, 8, heads, seed=seed)
    g = gen(seed)
    x = randn64(g, 3, length, 8)
    key_mask = random_mask(g, 3, length) if padded else None
    out, w = ours(x, key_mask=key_mask, causal=causal)
    ref, ref_w = theirs(
        x,
        x,
        x,
        key_padding_mask=None if key_mask is None else ~key_mask,
        attn_mask=~torch.ones(length, length, dtype=torch.bool).tril() if causal else None,
        need_weights=True,
        average_attn_weights=False,
    )
    torch.testing.assert_close(out, ref, **TOL64, msg="self-attention output differs from torch")
    torch.testing.assert_close(w, ref_w, **TOL64, msg="per-head attention weights differ")
    g_out = torch.randn(ref.shape, generator=g, dtype=F64)
    (dx,), (dx_ref,) = grads(out, g_out, [x]), grads(ref, g_out, [x])
    torch.testing.assert_close(dx, dx_ref, **TOL64, msg="input gradient differs from torch")


def test_cross_attention_matches_torch_with_other_widths(impl):
    """Cross-attention (queries from one sequence, padded memory of another width) equals torch's."""
    ours, theirs = mha_pair(impl, 8, 2, kdim=5, vdim=3, seed=1)
    g = gen(1)
    query, key, value = randn64(g, 2, 3, 8), randn64(g, 2, 6, 5), randn64(g, 2, 6, 3)
    key_mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    out, w = ours(query, key, value, key_mask=key_mask)
    ref, ref_w = theirs(query, key, value, key_padding_mask=~key_mask, average_attn_weights=False)
    torch.testing.assert_close(out, ref, **TOL64, msg="cross-attention output differs from torch")
    torch.testing.assert_close(w, ref_w, **TOL64, msg="cross-attention weights differ from torch")
    assert torch.all(w[1, :, :, 4:] == 0), "padded memory positions must get weight 0"
    g_out = torch.randn(ref.shape, generator=g, dtype=F64)
    inputs = [query, key, value]
    for name, a, b in zip(
        ("query", "key", "value"), grads(out, g_out, inputs), grads(ref, g_out, inputs)
    ):
        torch.testing.assert_close(a, b, **TOL64, msg=f"d{name} differs from torch")


def test_cross_attention_parameter_gradients_match_torch(impl):
    """Cross-attention gradients of W_q, W_k, W_v, their biases and W_o equal torch's."""
    ours, theirs = mha_pair(impl, 8, 2, kdim=5, vdim=3, seed=2)
    g = gen(2)
    query, key, value = (randn64(g, 2, n, w, grad=False) for n, w in [(3, 8), (6, 5), (6, 3)])
    key_mask = torch.tensor([[True] * 6, [True] * 2 + [False] * 4])
    ours(query, key, value, key_mask=key_mask)[0].pow(2).sum().backward()
    theirs(query, key, value, key_padding_mask=~key_mask)[0].pow(2).sum().backward()
    projections = (ours.q_proj, ours.k_proj, ours.v_proj)
    for name, proj, theirs_grad in zip("qkv", projections, their_proj_grads(theirs)):
        torch.testing.assert_close(
            proj.weight.grad, theirs_grad, **TOL64, msg=f"W_{name} gradient differs from torch"
        )
    torch.testing.assert_close(
        torch.cat([p.bias.grad for p in projections]),
        theirs.in_proj_bias.grad,
        **TOL64,
        msg="projection bias gradients differ from torch's in_proj_bias.grad",
    )
    torch.testing.assert_close(
        ours.out_proj.weight.grad, theirs.out_proj.weight.grad, **TOL64, msg="W_o grad differs"
    )


def test_self_attention_parameter_gradients_match_torch(impl):
    """Gradients of the packed in_proj_weight equal the stacked grads of our q/k/v projections."""
    ours, theirs = mha_pair(impl, 6, 3, seed=2)
    x = randn64(gen(2), 2, 5, 6, grad=False)
    causal = ~torch.ones(5, 5, dtype=torch.bool).tril()
    ours(x, causal=True)[0].pow(2).sum().backward()
    theirs(x, x, x, attn_mask=causal)[0].pow(2).sum().backward()
    grads = torch.cat([ours.q_proj.weight.grad, ours.k_proj.weight.grad, ours.v_proj.weight.grad])
    torch.testing.assert_close(grads, theirs.in_proj_weight.grad, **TOL64, msg="in_proj grad")
    torch.testing.assert_close(
        ours.out_proj.bias.grad, theirs.out_proj.bias.grad, **TOL64, msg="out_proj.bias grad"
    )


def _additive_by_hand(att, query, keys, mask):
    """score_j = v . tanh(W_q s + W_k h_j + b), one key at a time; softmax over real keys."""
    n, s, _ = keys.shape
    scores = torch.empty(n, s, dtype=keys.dtype)
    for i in range(n):
        for j in range(s):
            hidden = att.w_q.weight @ query[i] + att.w_k.weight @ keys[i, j] + att.w_k.bias
            scores[i, j] = att.v.weight[0] @ torch.tanh(hidden)
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.einsum("ns,nsd->nd", weights, keys), weights


def test_additive_attention_matches_its_formula(impl):
    """AdditiveAttention equals v.tanh(W_q s + W_k h_j) softmaxed over the real keys."""
    torch.manual_seed(0)
    att = impl.AdditiveAttention(4, 6, 5).double()
    g = gen(5)
    query, keys = randn64(g, 3, 4, grad=False), randn64(g, 3, 7, 6, grad=False)
    mask = torch.tensor([[True] * 7, [True] * 3 + [False] * 4, [True] + [False] * 6])
    context, weights = att(query, keys, mask)
    ref_context, ref_weights = _additive_by_hand(att, query, keys, mask)
    torch.testing.assert_close(weights, ref_weights, **TOL64, msg="additive weights are wrong")
    torch.testing.assert_close(context, ref_context, **TOL64, msg="context != sum_j a_j h_j")
    torch.testing.assert_close(context[2], keys[2, 0], **TOL64, msg="one real key: context = it")
    again, _ = att(query, keys, mask, projected_keys=att.project_keys(keys))
    torch.testing.assert_close(again, context, **TOL64, msg="projected_keys changes the result")


def test_additive_attention_gradcheck(impl):
    """Gradients of the additive-attention context pass gradcheck (finite differences)."""
    torch.manual_seed(1)
    att = impl.AdditiveAttention(3, 4, 5).double()
    g = gen(6)
    query, keys = randn64(g, 2, 3), randn64(g, 2, 5, 4)
    mask = torch.tensor([[True] * 5, [True, True, False, False, False]])

    def f(query, keys):
        return att(query, keys, mask)[0]

    assert torch.autograd.gradcheck(f, (query, keys), eps=1e-6, atol=1e-7), "gradcheck failed"


# ---------------------------------------------------------------- the encoder-decoder

V, PAD, BOS = 9, 0, 1


def _model(impl, attention: bool, seed: int = 0):
    torch.manual_seed(seed)
    return impl.Seq2Seq(V, emb_dim=6, hidden=8, attention=attention, pad_id=PAD).double()


def _batch(seed: int = 0):
    g = gen(seed)
    src = torch.randint(3, V, (3, 5), generator=g)
    mask = torch.tensor([[1] * 5, [1] * 3 + [0] * 2, [1] * 2 + [0] * 3], dtype=torch.bool)
    tgt_in = torch.randint(3, V, (3, 4), generator=g)
    tgt_in[:, 0] = BOS
    return src.masked_fill(~mask, PAD), mask, tgt_in


def test_seq2seq_shapes_and_attention_weights(impl):
    """forward gives logits (N, T, V) and, with attention, weights (N, T, S) zero on padding."""
    src, mask, tgt_in = _batch()
    logits, weights = _model(impl, True)(src, mask, tgt_in)
    assert logits.shape == (3, 4, V), f"logits shape {logits.shape}, expected (3, 4, {V})"
    assert weights.shape == (3, 4, 5), f"weights shape {weights.shape}, expected (3, 4, 5)"
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(3, 4, dtype=F64), **TOL64, msg="sum to 1"
    )
    assert torch.all(weights[2, :, 2:] == 0), "padding positions must get zero attention"
    logits, weights = _model(impl, False)(src, mask, tgt_in)
    assert logits.shape == (3, 4, V) and weights is None, "attention=False returns (logits, None)"


@pytest.mark.parametrize("attention", [True, False])
def test_seq2seq_ignores_padding(impl, attention):
    """Extra PAD tokens after a source (masked out) leave every logit unchanged."""
    model = _model(impl, attention)
    src, mask, tgt_in = _batch(1)
    longer = torch.cat([src, torch.full((3, 3), PAD)], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(3, 3, dtype=torch.bool)], dim=1)
    a, _ = model(src, mask, tgt_in)
    b, _ = model(longer, longer_mask, tgt_in)
    torch.testing.assert_close(a, b, **TOL64, msg="padding leaks into the encoder or attention")


def test_seq2seq_teacher_forcing_is_causal(impl):
    """Logits at step t depend only on target tokens up to t (changing later ones changes nothing)."""
    model = _model(impl, True)
    src, mask, tgt_in = _batch(2)
    a, _ = model(src, mask, tgt_in)
    changed = tgt_in.clone()
    changed[:, 2:] = (changed[:, 2:] + 1 - 3) % (V - 3) + 3
    b, _ = model(src, mask, changed)
    torch.testing.assert_close(a[:, :2], b[:, :2], **TOL64, msg="step t sees future targets")
    assert not torch.allclose(a[:, 2:], b[:, 2:]), "later steps should depend on their inputs"


@pytest.mark.parametrize("attention", [True, False])
def test_greedy_decode_feeds_back_its_argmax(impl, attention):
    """greedy_decode's tokens equal the argmax of forward() fed BOS + its own previous tokens."""
    model = _model(impl, attention, seed=3)
    src, mask, _ = _batch(3)
    tokens, weights = model.greedy_decode(src, mask, max_len=6, bos_id=BOS)
    assert tokens.shape == (3, 6), f"tokens shape {tokens.shape}, expected (3, 6)"
    tgt_in = torch.cat([torch.full((3, 1), BOS), tokens[:, :-1]], dim=1)
    logits, forced = model(src, mask, tgt_in)
    assert torch.equal(logits.argmax(-1), tokens), "greedy tokens are not forward()'s argmax"
    if attention:
        torch.testing.assert_close(weights, forced, **TOL64, msg="greedy weights != forward's")
    else:
        assert weights is None, "attention=False: greedy_decode returns (tokens, None)"


def test_seq2seq_with_attention_learns_to_reverse(impl):
    """A tiny attention model trained 150 Adam steps reverses 4-digit strings far better than chance."""
    torch.manual_seed(0)
    model = impl.Seq2Seq(6, emb_dim=8, hidden=16, attention=True, pad_id=0)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    g = gen(7)
    mask = torch.ones(32, 4, dtype=torch.bool)
    losses = []
    for _ in range(150):
        src = torch.randint(2, 6, (32, 4), generator=g)
        tgt = src.flip(1)
        tgt_in = torch.cat([torch.ones(32, 1, dtype=torch.long), tgt[:, :-1]], dim=1)
        logits, _ = model(src, mask, tgt_in)
        loss = F.cross_entropy(logits.reshape(-1, 6), tgt.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    src = torch.randint(2, 6, (200, 4), generator=g)
    tokens, _ = model.greedy_decode(src, torch.ones(200, 4, dtype=torch.bool), 4, bos_id=1)
    acc = (tokens == src.flip(1)).double().mean().item()
    assert losses[-1] < 0.5 * losses[0], f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}"
    assert acc > 0.8, f"token accuracy {acc:.2f} after training, expected > 0.8 (chance 0.25)"
