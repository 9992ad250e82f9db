"""Grader for time-series-transformer: sinusoidal positions and the causal mask, multi-head
self-attention and the pre-LN encoder layer against torch's modules with copied weights (values
and gradients in float64), the whole forecaster against a torch-built twin, a gradcheck of a tiny
float64 model, and the properties a forecaster needs: shapes, causality, order, seeds, capacity."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.func import functional_call

REFERENCE = "airoad.transformer.time_series_transformer"

FAST = settings(max_examples=12, deadline=None)
F64 = torch.float64
TIGHT = {"atol": 1e-10, "rtol": 1e-9}


def _randomise(module: nn.Module, seed: int = 0, scale: float = 0.3) -> nn.Module:
    """Move every parameter off its initial value (LayerNorm's ones and zeros hide mistakes)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))
    return module


def _torch_layer(ours: nn.Module, d_model: int, n_heads: int, d_ff: int, activation: str):
    """nn.TransformerEncoderLayer (pre-LN, batch first, no dropout) holding our layer's weights."""
    layer = nn.TransformerEncoderLayer(
        d_model, n_heads, d_ff, dropout=0.0, activation=activation, batch_first=True,
        norm_first=True, dtype=F64,
    )  # fmt: skip
    with torch.no_grad():
        layer.self_attn.in_proj_weight.copy_(ours.in_proj.weight)
        layer.self_attn.in_proj_bias.copy_(ours.in_proj.bias)
        layer.self_attn.out_proj.weight.copy_(ours.out_proj.weight)
        layer.self_attn.out_proj.bias.copy_(ours.out_proj.bias)
        for name in ("linear1", "linear2", "norm1", "norm2"):
            getattr(layer, name).load_state_dict(getattr(ours, name).state_dict())
    return layer


def _torch_grads(layer: nn.Module) -> dict[str, torch.Tensor]:
    """torch layer's gradients under our parameter names."""
    g = {n: p.grad for n, p in layer.named_parameters()}
    out = {
        "in_proj.weight": g["self_attn.in_proj_weight"],
        "in_proj.bias": g["self_attn.in_proj_bias"],
        "out_proj.weight": g["self_attn.out_proj.weight"],
        "out_proj.bias": g["self_attn.out_proj.bias"],
    }
    return out | {n: v for n, v in g.items() if not n.startswith("self_attn")}


def _tiny(impl, **kw):
    args = {"n_features": 2, "d_model": 8, "n_heads": 2, "n_layers": 2, "d_ff": 16, "dropout": 0.0}
    return impl.TimeSeriesTransformer(**(args | kw)).to(F64)


def _formula_table(length: int, d: int) -> torch.Tensor:
    table = torch.zeros(length, d, dtype=F64)
    for p in range(length):
        for j in range(d):
            w = 10000.0 ** (-(j - j % 2) / d)
            table[p, j] = math.sin(p * w) if j % 2 == 0 else math.cos(p * w)
    return table


# ---------------------------------------------------------------- positions and masks


@pytest.mark.parametrize("d_model", [6, 7, 16])
def test_sinusoidal_positions_match_the_formula(impl, d_model):
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(same); shape (length, d_model)."""
    table = impl.sinusoidal_positions(40, d_model, dtype=F64)
    assert tuple(table.shape) == (40, d_model), f"shape {tuple(table.shape)}, want (40, {d_model})"
    assert table.dtype == F64, f"dtype {table.dtype}: the dtype argument is ignored"
    expected = _formula_table(40, d_model)
    torch.testing.assert_close(table, expected, **TIGHT, msg="table differs from sin/cos formula")


@FAST
@given(p=st.integers(0, 200), q=st.integers(0, 200), k=st.integers(0, 60))
def test_sinusoidal_dot_product_depends_only_on_offset(impl, p, q, k):
    """PE[p] . PE[p + k] equals PE[q] . PE[q + k]: the table encodes offsets, not just places."""
    table = impl.sinusoidal_positions(261, 16, dtype=F64)
    a, b = table[p] @ table[p + k], table[q] @ table[q + k]
    assert torch.isclose(a, b, atol=1e-9), f"offset {k}: dot {a:.6f} at {p} but {b:.6f} at {q}"


@pytest.mark.parametrize("length", [1, 2, 7])
def test_causal_mask_matches_torch(impl, length):
    """causal_mask(T) equals nn.Transformer.generate_square_subsequent_mask(T): 0 on/below, -inf above."""
    ours = impl.causal_mask(length)
    expected = nn.Transformer.generate_square_subsequent_mask(length)
    assert ours.dtype == expected.dtype, f"dtype {ours.dtype}, expected {expected.dtype}"
    torch.testing.assert_close(ours, expected, msg="mask differs from torch's causal mask")


# ---------------------------------------------------------------- attention and the layer


@FAST
@given(
    b=st.integers(1, 3),
    t=st.integers(1, 6),
    heads=st.sampled_from([1, 2, 4]),
    dh=st.integers(1, 4),
    causal=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_attention_matches_torch_multihead(impl, b, t, heads, dh, causal, seed):
    """EncoderLayer.attention equals nn.MultiheadAttention with the same weights: outputs, weights, grads."""
    d = heads * dh
    torch.manual_seed(seed)
    ours = _randomise(impl.EncoderLayer(d, heads, 2 * d).to(F64), seed)
    mha = nn.MultiheadAttention(d, heads, batch_first=True, dtype=F64)
    with torch.no_grad():
        mha.in_proj_weight.copy_(ours.in_proj.weight)
        mha.in_proj_bias.copy_(ours.in_proj.bias)
        mha.out_proj.load_state_dict(ours.out_proj.state_dict())
    x = torch.randn(b, t, d, dtype=F64, generator=torch.Generator().manual_seed(seed))
    mask = nn.Transformer.generate_square_subsequent_mask(t, dtype=F64) if causal else None
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, w = ours.attention(x1, mask)
    ref, ref_w = mha(x2, x2, x2, attn_mask=mask, need_weights=True, average_attn_weights=False)
    assert tuple(w.shape) == (b, heads, t, t), f"weights shape {tuple(w.shape)}, want (B, H, T, T)"
    torch.testing.assert_close(out, ref, **TIGHT, msg="attention output differs from torch's")
    torch.testing.assert_close(w, ref_w, **TIGHT, msg="attention weights differ from torch's")
    g = torch.randn(b, t, d, dtype=F64)
    (out * g).sum().backward()
    (ref * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, **TIGHT, msg="input gradient differs")
    torch.testing.assert_close(
        ours.in_proj.weight.grad, mha.in_proj_weight.grad, **TIGHT, msg="W_qkv gradient differs"
    )


def test_causal_weights_are_a_lower_triangular_distribution(impl):
    """With the causal mask each row of weights sums to 1 and is exactly 0 above the diagonal."""
    layer = _randomise(impl.EncoderLayer(8, 2, 16).to(F64))
    x = torch.randn(3, 6, 8, dtype=F64, generator=torch.Generator().manual_seed(1)) * 30
    _, w = layer.attention(x, nn.Transformer.generate_square_subsequent_mask(6, dtype=F64))
    assert torch.isfinite(w).all(), "attention weights contain NaN or inf on large inputs"
    torch.testing.assert_close(w.sum(-1), torch.ones(3, 2, 6, dtype=F64), msg="rows must sum to 1")
    above = torch.ones(6, 6, dtype=torch.bool).triu(1)
    assert (w[..., above] == 0).all(), "a query attends to a later day: mask not applied"


@pytest.mark.parametrize("activation", ["gelu", "relu"])
@pytest.mark.parametrize("causal", [False, True])
def test_encoder_layer_matches_torch_values_and_gradients(impl, activation, causal):
    """EncoderLayer equals nn.TransformerEncoderLayer(norm_first=True) with copied weights, grads too."""
    d, heads, d_ff, t = 8, 2, 12, 5
    ours = _randomise(impl.EncoderLayer(d, heads, d_ff, activation=activation).to(F64), 3)
    ref = _torch_layer(ours, d, heads, d_ff, activation)
    x = torch.randn(4, t, d, dtype=F64, generator=torch.Generator().manual_seed(2))
    mask = nn.Transformer.generate_square_subsequent_mask(t, dtype=F64) if causal else None
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = ours(x1, mask), ref(x2, src_mask=mask)
    torch.testing.assert_close(out, expected, **TIGHT, msg="layer output differs from torch's")
    g = torch.randn(4, t, d, dtype=F64)
    (out * g).sum().backward()
    (expected * g).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, **TIGHT, msg="input gradient differs")
    ref_grads = _torch_grads(ref)
    for name, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, ref_grads[name], **TIGHT, msg=f"grad of {name} differs")


# ---------------------------------------------------------------- the forecaster


@pytest.mark.parametrize(
    ("positions", "pool", "causal"),
    [("sinusoidal", "last", False), ("learned", "mean", True), ("none", "last", True)],
)
def test_forecaster_matches_a_torch_built_twin(impl, positions, pool, causal):
    """Forecasts and input gradients equal input_proj + positions -> torch layers -> norm -> head."""
    model = _randomise(_tiny(impl, positions=positions, pool=pool, causal=causal, max_len=9), 4)
    model.eval()
    twin = [_torch_layer(layer, 8, 2, 16, "gelu") for layer in model.layers]
    x = torch.randn(3, 6, 2, dtype=F64, generator=torch.Generator().manual_seed(5))
    x1, x2 = x.clone().requires_grad_(), x.clone().requires_grad_()
    h = model.input_proj(x2)
    if positions == "sinusoidal":
        h = h + _formula_table(6, 8)
    elif positions == "learned":
        h = h + model.pos_embedding[:6]
    mask = nn.Transformer.generate_square_subsequent_mask(6, dtype=F64) if causal else None
    for layer in twin:
        h = layer(h, src_mask=mask)
    z = model.norm(h)
    expected = model.head(z[:, -1] if pool == "last" else z.mean(1)).squeeze(-1)
    out = model(x1)
    assert tuple(out.shape) == (3,), f"forecast shape {tuple(out.shape)}, expected (B,) = (3,)"
    torch.testing.assert_close(out, expected, **TIGHT, msg="forecast differs from the torch twin")
    out.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, **TIGHT, msg="gradient w.r.t. the window differs")


def test_gradcheck_tiny_float64_model(impl):
    """torch.autograd.gradcheck passes for the window and every parameter of a tiny float64 model."""
    model = _tiny(impl, d_model=4, d_ff=6, positions="learned", causal=True, max_len=4)
    model = _randomise(model, 6)
    x = torch.randn(2, 4, 2, dtype=F64, generator=torch.Generator().manual_seed(7))
    assert torch.autograd.gradcheck(model, (x.requires_grad_(),)), "gradcheck on x failed"
    names = [n for n, _ in model.named_parameters()]
    params = tuple(p.detach().clone().requires_grad_() for p in model.parameters())

    def f(*ps):
        return functional_call(model, dict(zip(names, ps)), (x.detach(),))

    assert torch.autograd.gradcheck(f, params), "gradcheck on the parameters failed"


def test_shapes_encode_and_pooling(impl):
    """encode gives (B, W, D); forward is head(encode[:, -1]) for 'last' and head(mean) for 'mean'."""
    x = torch.randn(5, 7, 2, dtype=F64, generator=torch.Generator().manual_seed(8))
    for pool in ("last", "mean"):
        model = _randomise(_tiny(impl, pool=pool), 9).eval()
        z = model.encode(x)
        assert tuple(z.shape) == (5, 7, 8), f"encode shape {tuple(z.shape)}, expected (5, 7, 8)"
        pooled = z[:, -1] if pool == "last" else z.mean(1)
        torch.testing.assert_close(
            model(x), model.head(pooled).squeeze(-1), **TIGHT, msg=f"pool={pool!r} reads wrong"
        )


def test_causal_model_never_reads_later_days(impl):
    """With causal=True, changing days after t leaves tokens 0..t unchanged; without it they move."""
    x = torch.randn(2, 8, 2, dtype=F64, generator=torch.Generator().manual_seed(10))
    later = x.clone()
    later[:, 5:] += 1.0
    causal = _randomise(_tiny(impl, causal=True), 11).eval()
    torch.testing.assert_close(
        causal.encode(later)[:, :5], causal.encode(x)[:, :5], **TIGHT, msg="the future leaked in"
    )
    full = _randomise(_tiny(impl, causal=False), 11).eval()
    assert not torch.allclose(full.encode(later)[:, :5], full.encode(x)[:, :5]), (
        "without the mask, early tokens should see later days"
    )


def test_positions_are_what_make_order_matter(impl):
    """Without positions a mean-pooled model ignores the order of days; sinusoidal positions fix it."""
    x = torch.randn(3, 6, 2, dtype=F64, generator=torch.Generator().manual_seed(12))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    blind = _randomise(_tiny(impl, positions="none", pool="mean"), 13).eval()
    torch.testing.assert_close(
        blind(x[:, perm]), blind(x), **TIGHT, msg="with no positions, order should not matter"
    )
    aware = _randomise(_tiny(impl, positions="sinusoidal", pool="mean"), 13).eval()
    assert not torch.allclose(aware(x[:, perm]), aware(x)), "positions should make order matter"


def test_same_seed_same_model_and_global_rng_untouched(impl):
    """seed fixes the initial forecasts (seed 1 differs) and leaves torch's global RNG alone."""
    state = torch.get_rng_state()
    models = [impl.TimeSeriesTransformer(3, seed=s).eval() for s in (0, 0, 1)]
    assert torch.equal(state, torch.get_rng_state()), "building a model moved the global RNG"
    x = torch.randn(4, 10, 3, generator=torch.Generator().manual_seed(14))
    a, b, c = (m(x) for m in models)
    assert torch.equal(a, b), "two models with seed 0 forecast differently"
    assert not torch.equal(a, c), "seeds 0 and 1 built the same model"


def test_attention_maps_follow_the_forward_path(impl):
    """attention_maps: one (B, H, W, W) per layer, rows sum to 1, equal to each layer's attention."""
    model = _randomise(_tiny(impl, causal=True, dropout=0.3), 15)
    model.train()
    x = torch.randn(2, 5, 2, dtype=F64, generator=torch.Generator().manual_seed(16))
    maps = model.attention_maps(x)
    assert model.training, "attention_maps must restore training mode"
    assert len(maps) == 2, f"{len(maps)} maps for 2 layers"
    model.eval()
    h, mask = model.embed(x), impl.causal_mask(5, dtype=F64)
    for k, layer in enumerate(model.layers):
        expected = layer.attention(layer.norm1(h), mask)[1]
        torch.testing.assert_close(maps[k], expected, **TIGHT, msg=f"layer {k} map is wrong")
        h = layer(h, mask)


def test_window_longer_than_max_len_raises(impl):
    """embed raises ValueError when the window has more days than max_len."""
    model = _tiny(impl, positions="learned", max_len=4)
    with pytest.raises(ValueError):
        model(torch.zeros(1, 5, 2, dtype=F64))


def test_overfits_a_tiny_series(impl):
    """Adam drives the training MSE on 24 windows of a noisy sine to almost zero."""
    gen = torch.Generator().manual_seed(17)
    series = torch.sin(torch.arange(40.0) * 0.7) + 0.3 * torch.randn(40, generator=gen)
    X = torch.stack([series[i : i + 12] for i in range(24)])[:, :, None]
    y = series[12:36]
    model = impl.TimeSeriesTransformer(1, d_model=16, n_heads=2, d_ff=32, dropout=0.0, seed=0)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(200):
        opt.zero_grad()
        loss = torch.mean((model(X) - y) ** 2)
        loss.backward()
        opt.step()
    assert loss.item() < 0.01 * y.var().item(), f"training MSE {loss.item():.4f}: cannot overfit"
