"""Grader for model-compression: int4 packing, group-wise quantisation and its Linear, and
magnitude / structured pruning masks against torch.nn.utils.prune."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import prune

REFERENCE = "airoad.production.model_compression"


def _group_scales(q, in_features: int) -> torch.Tensor:
    """Each weight's own scale, (out, in)."""
    return q.scales.repeat_interleave(q.group_size, dim=1)[:, :in_features]


def test_pack_is_low_nibble_first_and_exact(impl):
    """pack_int4 puts the even column in the low nibble, the odd one in the high nibble."""
    codes = torch.tensor([[1, 2, 15, 0], [0, 15, 7, 8]])
    packed = impl.pack_int4(codes)
    assert packed.dtype == torch.uint8, "packed codes must be uint8 bytes"
    assert packed.tolist() == [[0x21, 0x0F], [0xF0, 0x87]], "wrong nibble order"
    gen = torch.Generator().manual_seed(0)
    many = torch.randint(0, 16, (5, 3, 64), generator=gen, dtype=torch.uint8)
    back = impl.unpack_int4(impl.pack_int4(many))
    assert back.shape == many.shape and torch.equal(back.to(torch.uint8), many), "not lossless"


def test_symmetric_hand_computed(impl):
    """Symmetric: s = max|w| / 7, code = round(w / s) + 8; w = [-.7, 0, .3, .14] gives s = .1."""
    w = torch.tensor([[-0.7, 0.0, 0.3, 0.14]])
    q = impl.quantize_int4(w, group_size=4, symmetric=True)
    torch.testing.assert_close(q.scales, torch.tensor([[0.1]]), rtol=1e-6, atol=0)
    assert q.zeros is None, "symmetric quantisation stores no zero point"
    assert q.packed.tolist() == [[0x81, 0x9B]], "codes should be [1, 8, 11, 9]"
    want = torch.tensor([[-0.7, 0.0, 0.3, 0.1]])
    torch.testing.assert_close(impl.dequantize_int4(q), want, rtol=0, atol=1e-6)
    assert q.nbytes() == 2 + 4, "2 bytes of codes + one fp32 scale"


def test_asymmetric_hand_computed(impl):
    """Asymmetric: s = (hi - lo) / 15, z = round(-lo / s), range holding 0: [-.5, 1, 0, .3] -> z 5."""
    w = torch.tensor([[-0.5, 1.0, 0.0, 0.3], [1.5, 1.5, 1.5, 1.5]])
    q = impl.quantize_int4(w, group_size=4, symmetric=False)
    torch.testing.assert_close(q.scales[0], torch.tensor([0.1]), rtol=1e-6, atol=0)
    assert q.zeros[0].tolist() == [5], "zero point should be round(0.5 / 0.1) = 5"
    assert q.packed[0].tolist() == [0xF0, 0x85], "codes should be [0, 15, 5, 8]"
    assert q.zeros[1].tolist() == [0] and q.packed[1].tolist() == [0xFF, 0xFF], "0 <= 1.5 = 15 s"
    want = torch.tensor([[-0.5, 1.0, 0.0, 0.3], [1.5, 1.5, 1.5, 1.5]])
    torch.testing.assert_close(impl.dequantize_int4(q), want, rtol=0, atol=1e-6)


@settings(max_examples=25, deadline=None)
@given(
    out_features=st.integers(1, 6),
    in_features=st.integers(1, 150),
    group_size=st.sampled_from([2, 8, 32, 64, 128]),
    symmetric=st.booleans(),
    seed=st.integers(0, 10_000),
    spread=st.floats(1e-3, 1e3),
)
def test_round_trip_error_at_most_half_a_scale(
    impl, out_features, in_features, group_size, symmetric, seed, spread
):
    """Every dequantised weight is within s/2 of the original, s being its group's scale."""
    gen = torch.Generator().manual_seed(seed)
    w = torch.randn(out_features, in_features, generator=gen) * spread
    w[0, 0] += spread * 3  # one outlier: only its own group's scale should grow
    q = impl.quantize_int4(w, group_size=group_size, symmetric=symmetric)
    n_groups = -(-in_features // group_size)
    assert q.scales.shape == (out_features, n_groups), "one scale per row and group"
    assert q.packed.shape == (out_features, n_groups * group_size // 2), "two codes per byte"
    back = impl.dequantize_int4(q)
    assert back.shape == w.shape
    bound = _group_scales(q, in_features) / 2 * (1 + 1e-5) + 1e-6 * spread
    assert torch.all((back - w).abs() <= bound), "a weight moved more than half its scale"
    top = w.abs().amax() if symmetric else w.amax().clamp(min=0) - w.amin().clamp(max=0)
    assert q.scales.amax() <= top / (7 if symmetric else 15) * (1 + 1e-5), "scale too large"


@pytest.mark.parametrize("symmetric", [True, False])
def test_all_zero_groups_stay_exact(impl, symmetric):
    """A group of zeros (a pruned block) comes back as exact zeros, never NaN."""
    w = torch.zeros(3, 8)
    w[1, 4:] = torch.tensor([0.5, -0.25, 1.0, 0.0])
    q = impl.quantize_int4(w, group_size=4, symmetric=symmetric)
    back = impl.dequantize_int4(q)
    assert torch.isfinite(back).all(), "an all-zero group gave NaN or inf"
    assert torch.equal(back[w == 0], torch.zeros(int((w == 0).sum()))), "zeros must stay 0"
    assert torch.all(q.scales > 0), "every stored scale should be positive"


def test_int4_linear_equals_dequantized_matmul(impl):
    """Int4Linear computes x @ dequantize(W)^T + b, with gradients to x and to the bias."""
    torch.manual_seed(0)
    linear = nn.Linear(100, 7)
    layer = impl.Int4Linear.from_linear(linear, group_size=32, symmetric=False)
    assert (layer.in_features, layer.out_features) == (100, 7), "nn.Linear's attributes"
    assert "weight" not in dict(layer.named_parameters()), "no fp32 weight should be kept"
    assert layer.packed.dtype == torch.uint8 and layer.packed.shape == (7, 64)
    x = torch.randn(4, 3, 100, requires_grad=True)
    y = layer(x)
    w_hat = impl.dequantize_int4(impl.quantize_int4(linear.weight, 32, symmetric=False))
    x2 = x.detach().clone().requires_grad_(True)
    b2 = linear.bias.detach().clone().requires_grad_(True)
    want = F.linear(x2, w_hat, b2)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-5)
    y.square().sum().backward()
    want.square().sum().backward()
    torch.testing.assert_close(x.grad, x2.grad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(layer.bias.grad, b2.grad, rtol=1e-5, atol=1e-5)
    # and it stays near the original layer: |dy| <= sum_i |x_i| s_i / 2
    q = impl.quantize_int4(linear.weight, 32, symmetric=False)
    slack = x.detach().abs() @ (_group_scales(q, 100) / 2).T
    assert torch.all((y - linear(x)).abs() <= slack + 1e-5), "output drifts beyond the bound"


def test_quantize_linears_int4_on_a_tiny_bert(impl):
    """Swapping a tiny BERT's Linear layers for Int4Linear keeps its logits close."""
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(
        vocab_size=40,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    torch.manual_seed(1)
    model = BertForSequenceClassification(cfg).eval()
    ids = torch.randint(5, 40, (3, 9))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
        encoder = [n for n in names if ".encoder." in f".{n}"]
        impl.quantize_linears_int4(model, group_size=16, symmetric=True, names=encoder)
        after = model(input_ids=ids).logits
    kinds = {n: type(m).__name__ for n, m in model.named_modules() if n in names}
    assert all(kinds[n] == "Int4Linear" for n in encoder), "every encoder Linear is replaced"
    assert kinds["classifier"] == "Linear", "layers outside `names` stay as they were"
    assert not torch.equal(before, after), "quantisation should change the logits a little"
    torch.testing.assert_close(after, before, rtol=0, atol=0.05)


@settings(max_examples=20, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    amount=st.floats(0.0, 1.0),
    seed=st.integers(0, 10_000),
)
def test_l1_unstructured_mask_equals_torch(impl, rows, cols, amount, seed):
    """The magnitude mask equals prune.l1_unstructured's mask for any fraction."""
    w = torch.randn(rows, cols, generator=torch.Generator().manual_seed(seed))
    layer = nn.Linear(cols, rows)
    with torch.no_grad():
        layer.weight.copy_(w)
    prune.l1_unstructured(layer, "weight", amount=amount)
    got = impl.l1_unstructured_mask(w, amount)
    assert torch.equal(got, layer.weight_mask), f"mask differs from torch at amount {amount}"


def test_l1_unstructured_mask_with_a_count(impl):
    """An int amount prunes exactly that many weights, the smallest in magnitude."""
    w = torch.tensor([[0.5, -0.1, 2.0], [-3.0, 0.05, -0.2]])
    got = impl.l1_unstructured_mask(w, 3)
    assert got.tolist() == [[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    assert impl.l1_unstructured_mask(w, 6).sum() == 0, "6 of 6 prunes everything"
    assert impl.l1_unstructured_mask(w, 1.0).sum() == 0, "amount 1.0 prunes everything"
    assert impl.ln_structured_mask(w, 2, dim=0).sum() == 0, "2 of 2 rows prunes both"
    assert torch.equal(impl.l1_unstructured_mask(w, 0.0), torch.ones_like(w))


@pytest.mark.parametrize(("n", "dim"), [(2, 0), (1, 0), (2, 1), (float("inf"), 1)])
@pytest.mark.parametrize("amount", [0.0, 0.25, 0.5, 3, 0.9])
def test_ln_structured_mask_equals_torch(impl, n, dim, amount):
    """Structured masks equal prune.ln_structured's for rows or columns and several norms."""
    w = torch.randn(8, 6, generator=torch.Generator().manual_seed(7))
    layer = nn.Linear(6, 8)
    with torch.no_grad():
        layer.weight.copy_(w)
    prune.ln_structured(layer, "weight", amount=amount, n=n, dim=dim)
    got = impl.ln_structured_mask(w, amount, n=n, dim=dim)
    assert torch.equal(got, layer.weight_mask), f"mask differs at n={n}, dim={dim}, {amount}"


@pytest.mark.parametrize("structured", [False, True])
def test_prune_linears_equals_torch_prune(impl, structured):
    """prune_linears leaves each Linear's weight as torch's pruning would, layer by layer."""
    torch.manual_seed(3)
    ours = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 5))
    theirs = nn.Sequential(nn.Linear(10, 12), nn.ReLU(), nn.Linear(12, 5))
    theirs.load_state_dict(ours.state_dict())
    masks = impl.prune_linears(ours, 0.4, structured=structured)
    assert set(masks) == {"0", "2"}, "one mask per Linear, keyed by module name"
    for i in (0, 2):
        if structured:
            prune.ln_structured(theirs[i], "weight", amount=0.4, n=2, dim=0)
        else:
            prune.l1_unstructured(theirs[i], "weight", amount=0.4)
        torch.testing.assert_close(ours[i].weight, theirs[i].weight, rtol=0, atol=0)
        assert torch.equal(masks[str(i)], theirs[i].weight_mask)


def test_bad_pruning_amount_is_rejected(impl):
    """Pruning more than everything (1.5, 1.2, or 7 of 6) is a ValueError, as in torch."""
    w = torch.randn(2, 3)
    with pytest.raises(ValueError):
        impl.l1_unstructured_mask(w, 1.5)
    with pytest.raises(ValueError):  # 1.2 of 2 rounds to 2, but a fraction above 1 is wrong
        impl.l1_unstructured_mask(torch.randn(1, 2), 1.2)
    with pytest.raises(ValueError):
        impl.ln_structured_mask(w, 7, dim=1)
