"""Grader for the vision transformer: patchify against F.unfold, the patch embedding as a linear
map, as a convolution and as nn.Conv2d with copied weights, the attention and the block against
nn.MultiheadAttention / nn.TransformerEncoderLayer (values, weights and gradients, float64), the
whole model against the same network assembled from torch's layers, a gradcheck, and attention
rollout against a direct NumPy computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

REFERENCE = "airoad.transformer.vision_transformer"

FAST = settings(max_examples=10, deadline=None)
TOL = {"atol": 1e-12, "rtol": 1e-10}


def _images(b=2, c=1, side=8, seed=0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, side, side, generator=gen, dtype=torch.float64)


def _torch_layer(block) -> nn.TransformerEncoderLayer:
    """nn.TransformerEncoderLayer (pre-LN, GELU, batch_first) carrying a ViTBlock's weights."""
    d, heads = block.norm1.weight.shape[0], block.self_attn.n_heads
    layer = nn.TransformerEncoderLayer(
        d, heads, block.ff.linear1.out_features, 0.0, "gelu", batch_first=True, norm_first=True
    ).double()
    ours = {k.removeprefix("ff."): v.detach().clone() for k, v in block.state_dict().items()}
    layer.load_state_dict(ours)
    return layer


def _tiny_vit(impl, seed=0, channels=1, layers=2):
    """A float64 ViT on 8x8 images, 4x4 patches (4 patches + the class token)."""
    return impl.VisionTransformer(
        image_size=8,
        patch_size=4,
        in_channels=channels,
        n_classes=3,
        d_model=8,
        n_heads=2,
        n_layers=layers,
        d_ff=12,
        seed=seed,
    ).double()


@FAST
@given(p=st.sampled_from([1, 2, 3]), g=st.integers(1, 3), c=st.integers(1, 3))
def test_patchify_matches_unfold(impl, p, g, c):
    """patchify(x, p) equals F.unfold(x, p, stride=p) transposed: (B, N, C*p*p), row-major patches."""
    x = _images(2, c, p * g, seed=p * 10 + g)
    out = impl.patchify(x, p)
    ref = F.unfold(x, p, stride=p).transpose(1, 2)
    assert out.shape == ref.shape, f"shape {tuple(out.shape)}, expected {tuple(ref.shape)}"
    torch.testing.assert_close(out, ref, atol=0, rtol=0, msg="patch order or pixel order differs")


def test_patchify_rejects_a_side_that_is_no_multiple(impl):
    """patchify raises ValueError when the image side is not a multiple of the patch size."""
    with pytest.raises(ValueError):
        impl.patchify(_images(1, 1, 7), 2)


def test_patch_embedding_linear_conv_and_nn_conv2d_agree(impl):
    """PatchEmbedding.forward, .forward_conv and nn.Conv2d(kernel=stride=p) with copied weights agree, gradients too."""
    torch.manual_seed(0)
    emb = impl.PatchEmbedding(patch_size=3, in_channels=2, d_model=5).double()
    conv = nn.Conv2d(2, 5, 3, stride=3).double()
    conv.weight.data = emb.proj.weight.detach().view(5, 2, 3, 3).clone()
    conv.bias.data = emb.proj.bias.detach().clone()
    x = _images(2, 2, 9, seed=1)
    xs = [x.clone().requires_grad_() for _ in range(3)]
    outs = [emb(xs[0]), emb.forward_conv(xs[1]), conv(xs[2]).flatten(2).transpose(1, 2)]
    assert outs[0].shape == (2, 9, 5), f"shape {tuple(outs[0].shape)}, expected (2, 9, 5)"
    torch.testing.assert_close(outs[0], outs[2], **TOL, msg="linear form differs from nn.Conv2d")
    torch.testing.assert_close(outs[1], outs[2], **TOL, msg="conv form differs from nn.Conv2d")
    g = torch.randn_like(outs[2])
    emb.zero_grad()
    outs[0].backward(g)
    linear_grad = emb.proj.weight.grad.clone()
    outs[1].backward(g)
    outs[2].backward(g)
    for name, xi in (("linear", xs[0]), ("conv", xs[1])):
        torch.testing.assert_close(xi.grad, xs[2].grad, **TOL, msg=f"{name} form: dx differs")
    torch.testing.assert_close(
        linear_grad.view(5, 2, 3, 3), conv.weight.grad, **TOL, msg="dW differs from nn.Conv2d's"
    )


def test_attention_returns_multihead_attention_weights(impl):
    """AttentionWithWeights equals nn.MultiheadAttention: output, per-head weights and gradients."""
    torch.manual_seed(2)
    attn = impl.AttentionWithWeights(12, 3).double()
    mha = nn.MultiheadAttention(12, 3, batch_first=True).double()
    mha.load_state_dict({k: v.detach().clone() for k, v in attn.state_dict().items()})
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, weights = attn(xa)
    ref, ref_w = mha(xb, xb, xb, need_weights=True, average_attn_weights=False)
    assert weights.shape == (2, 3, 5, 5), f"weights shape {tuple(weights.shape)}, want (2,3,5,5)"
    torch.testing.assert_close(weights, ref_w, **TOL, msg="attention weights differ from MHA's")
    torch.testing.assert_close(out, ref, **TOL, msg="outputs differ from MHA's")
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, **TOL, msg="dx differs from MHA's")
    torch.testing.assert_close(
        attn.in_proj_weight.grad, mha.in_proj_weight.grad, **TOL, msg="d in_proj_weight differs"
    )


@FAST
@given(t=st.integers(1, 6), heads=st.sampled_from([1, 2, 4]), seed=st.integers(0, 10_000))
def test_block_matches_transformer_encoder_layer(impl, t, heads, seed):
    """ViTBlock equals nn.TransformerEncoderLayer(norm_first, gelu) with copied weights: values and gradients."""
    torch.manual_seed(seed)
    block = impl.ViTBlock(8, heads, 16).double()
    layer = _torch_layer(block)
    x = torch.randn(2, t, 8, dtype=torch.float64)
    xa, xb = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, weights = block(xa)
    ref = layer(xb)
    torch.testing.assert_close(out, ref, **TOL, msg="block output differs from torch's layer")
    torch.testing.assert_close(
        weights.sum(-1), torch.ones(2, heads, t, dtype=torch.float64), **TOL, msg="rows != 1"
    )
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(xa.grad, xb.grad, **TOL, msg="dx differs from torch's layer")
    theirs = dict(layer.named_parameters())
    for name, p in block.named_parameters():
        torch.testing.assert_close(
            p.grad, theirs[name.removeprefix("ff.")].grad, **TOL, msg=f"d{name} differs"
        )


def test_model_matches_the_same_network_from_torch_layers(impl):
    """The ViT equals nn.Conv2d + [cls; patches] + positions + nn.TransformerEncoderLayer stack + nn.LayerNorm + head."""
    vit = _tiny_vit(impl, seed=3, channels=2)
    conv = nn.Conv2d(2, 8, 4, stride=4).double()
    conv.weight.data = vit.patch_embed.proj.weight.detach().view(8, 2, 4, 4).clone()
    conv.bias.data = vit.patch_embed.proj.bias.detach().clone()
    layers = [_torch_layer(block) for block in vit.blocks]
    norm = nn.LayerNorm(8).double()
    norm.load_state_dict({k: v.detach().clone() for k, v in vit.norm.state_dict().items()})
    x = _images(3, 2, 8, seed=4)
    logits, attentions = vit.forward_with_attention(x)
    h = conv(x).flatten(2).transpose(1, 2)
    h = torch.cat([vit.cls_token.expand(3, -1, -1), h], 1) + vit.pos_emb.weight[:5]
    for k, layer in enumerate(layers):
        a = layer.norm1(h)
        _, w = layer.self_attn(a, a, a, need_weights=True, average_attn_weights=False)
        torch.testing.assert_close(attentions[k], w, **TOL, msg=f"block {k}'s weights differ")
        h = layer(h)
    ref = vit.head(norm(h[:, 0]))
    assert logits.shape == (3, 3), f"logits shape {tuple(logits.shape)}, expected (3, 3)"
    torch.testing.assert_close(logits, ref, **TOL, msg="logits differ (class token first?)")
    torch.testing.assert_close(
        vit(x), ref, **TOL, msg="forward differs from forward_with_attention"
    )
    g = torch.randn_like(ref)
    logits.backward(g, retain_graph=True)
    mine = vit.cls_token.grad.clone()
    vit.zero_grad()
    ref.backward(g)
    torch.testing.assert_close(mine, vit.cls_token.grad, **TOL, msg="d cls_token differs")


def test_model_passes_gradcheck(impl):
    """torch.autograd.gradcheck: a float64 ViT's gradient w.r.t. the input images is right."""
    vit = _tiny_vit(impl, seed=5, layers=1)
    x = _images(1, 1, 8, seed=6).requires_grad_()
    assert torch.autograd.gradcheck(vit, (x,), eps=1e-6, atol=1e-6), "gradcheck failed"


def test_seed_fixes_the_weights_and_leaves_global_rng_alone(impl):
    """Two models with the same seed give the same logits; torch's global generator is untouched."""
    state = torch.random.get_rng_state()
    a, b, c = _tiny_vit(impl, seed=7), _tiny_vit(impl, seed=7), _tiny_vit(impl, seed=8)
    assert torch.equal(torch.random.get_rng_state(), state), "the seed changed torch's global RNG"
    x = _images(2, 1, 8, seed=9)
    torch.testing.assert_close(a(x), b(x), atol=0, rtol=0, msg="same seed, different model")
    assert not torch.allclose(a(x), c(x)), "different seeds gave the same model"


def test_class_token_and_positions_start_as_small_gaussians(impl):
    """The class token and the position table start as N(0, 0.02^2): the class slot's std is 0.02 * sqrt(2)."""
    vit = impl.VisionTransformer(4, 2, 1, 3, d_model=4096, n_heads=2, n_layers=1, d_ff=8, seed=0)
    with torch.no_grad():
        first = vit.tokens(torch.zeros(1, 1, 4, 4))[0, 0]  # class token + position 0
    assert float(first.std()) == pytest.approx(0.02 * 2**0.5, rel=0.1), "init std is not 0.02"
    assert float(vit.cls_token.std()) == pytest.approx(0.02, rel=0.1), "class token std not 0.02"


def _random_attentions(layers, b, h, t, seed) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    scores = torch.randn(layers, b, h, t, t, generator=gen, dtype=torch.float64)
    return list(torch.softmax(scores, -1))


def _numpy_rollout(attentions: list[torch.Tensor]) -> np.ndarray:
    """Abnar & Zuidema written out per image with plain loops and NumPy."""
    mats = [w.numpy() for w in attentions]
    b, h, t, _ = mats[0].shape
    out = np.zeros((b, t, t))
    for i in range(b):
        r = np.eye(t)
        for w in mats:
            a = sum(w[i, k] for k in range(h)) / h + np.eye(t)
            a = a / a.sum(axis=1, keepdims=True)
            r = a @ r
        out[i] = r
    return out


def test_rollout_matches_numpy(impl):
    """attention_rollout equals head-mean, + identity, row-normalise, multiply through layers (NumPy)."""
    attentions = _random_attentions(3, 2, 2, 5, seed=10)
    out = impl.attention_rollout(attentions)
    assert out.shape == (2, 5, 5), f"rollout shape {tuple(out.shape)}, expected (2, 5, 5)"
    np.testing.assert_allclose(
        out.numpy(), _numpy_rollout(attentions), atol=1e-12, err_msg="rollout differs from NumPy"
    )


@FAST
@given(layers=st.integers(1, 4), t=st.integers(1, 6), seed=st.integers(0, 10_000))
def test_rollout_rows_sum_to_one(impl, layers, t, seed):
    """Every row of the rollout is a distribution: non-negative and summing to 1."""
    out = impl.attention_rollout(_random_attentions(layers, 2, 3, t, seed))
    assert (out >= 0).all(), "rollout has negative entries"
    torch.testing.assert_close(
        out.sum(-1), torch.ones(2, t, dtype=torch.float64), **TOL, msg="rows do not sum to 1"
    )


def test_one_layer_rollout_is_half_attention_plus_identity(impl):
    """For one layer the rollout is (mean over heads of A + I) / 2, the rows already summing to 2."""
    (weights,) = attentions = _random_attentions(1, 3, 4, 6, seed=11)
    want = (weights.mean(1) + torch.eye(6, dtype=torch.float64)) / 2
    torch.testing.assert_close(impl.attention_rollout(attentions), want, **TOL, msg="1 layer")


def test_model_rollout_and_class_token_map(impl):
    """class_token_map takes the class token's row over the patches, laid out as the patch grid."""
    vit = _tiny_vit(impl, seed=12).eval()
    with torch.no_grad():
        _, attentions = vit.forward_with_attention(_images(2, 1, 8, seed=13))
        rollout = impl.attention_rollout(attentions)
        maps = impl.class_token_map(rollout, vit.grid)
    np.testing.assert_allclose(
        rollout.numpy(), _numpy_rollout(attentions), atol=1e-12, err_msg="model rollout differs"
    )
    assert maps.shape == (2, 2, 2), f"map shape {tuple(maps.shape)}, expected (2, 2, 2)"
    # patch (r, c) of the 2x2 grid is token 1 + 2r + c (row-major, class token at 0)
    for r in range(2):
        for c in range(2):
            torch.testing.assert_close(maps[:, r, c], rollout[:, 0, 1 + 2 * r + c], **TOL)
