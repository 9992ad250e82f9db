"""Grader for transformer-block's blocks: the attention mask, self-attention and the pre-/post-LN
block against PyTorch's own modules with copied weights (values and gradients in float64), plus
the causal language model. The layers they use are graded in test_transformer_layers.py."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import settings
from torch import nn
from transformer_testing import complex_rope, randomise

REFERENCE = "airoad.transformer.transformer_block"

FAST = settings(max_examples=15, deadline=None)
F64 = torch.float64
TIGHT = {"atol": 1e-10, "rtol": 1e-9}


def _grads(module: nn.Module, names: list[str] | None = None) -> dict[str, torch.Tensor]:
    return {n: p.grad for n, p in module.named_parameters() if names is None or n in names}


def _torch_layer_state(block: nn.Module) -> dict[str, torch.Tensor]:
    """Our block's state dict under nn.TransformerEncoderLayer's names (ff.linear1 -> linear1)."""
    return {k.removeprefix("ff."): v for k, v in block.state_dict().items()}


def _torch_name(name: str) -> str:
    return name.removeprefix("ff.")


def _causal(t: int) -> torch.Tensor:
    return torch.ones(t, t, dtype=torch.bool).triu(1)


# ---------------------------------------------------------------- attention


def test_attention_bias_blocks_the_future_and_padding(impl):
    """attention_bias is 0 where allowed and finfo.min (not -inf) where blocked; None if nothing is."""
    assert impl.attention_bias(4, None, False) is None, "nothing to block must give None"
    pad = torch.tensor([[False, False, True], [False, False, False]])
    bias = impl.attention_bias(3, pad, causal=True, dtype=F64)
    assert tuple(bias.shape) == (2, 1, 3, 3), f"shape {tuple(bias.shape)}, expected (2, 1, 3, 3)"
    blocked = _causal(3)[None, None] | pad[:, None, None, :]
    low = torch.finfo(F64).min
    assert torch.all(bias[blocked] == low), "blocked entries must be finfo(dtype).min"
    assert torch.all(bias[~blocked] == 0), "allowed entries must be 0"
    only_causal = impl.attention_bias(3, None, causal=True, dtype=F64)
    assert torch.equal(only_causal[0, 0] == low, _causal(3)), "causal blocks keys after the query"


@pytest.mark.parametrize(
    "padded,causal", [(False, False), (True, False), (False, True), (True, True)]
)
def test_self_attention_matches_nn_multihead_attention(impl, padded, causal):
    """MultiHeadSelfAttention equals nn.MultiheadAttention with the same weights, masks included."""
    torch.manual_seed(4)
    ours = randomise(impl.MultiHeadSelfAttention(12, 3).double(), seed=4, scale=0.1)
    theirs = nn.MultiheadAttention(12, 3, batch_first=True).double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 5, 12, dtype=F64, requires_grad=True)
    pad = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 1, 1, 1, 1]], dtype=torch.bool)
    pad = pad if padded else None
    out = ours(x, key_padding_mask=pad, causal=causal)
    ref, _ = theirs(
        x, x, x, key_padding_mask=pad, attn_mask=_causal(5) if causal else None, need_weights=False
    )
    torch.testing.assert_close(
        out, ref, **TIGHT, msg=f"values differ (padded={padded}, causal={causal})"
    )
    g = torch.randn_like(ref)
    got = torch.autograd.grad(out, [x, *ours.parameters()], g)
    want = torch.autograd.grad(ref, [x, *theirs.parameters()], g)
    for a, b in zip(got, want):
        torch.testing.assert_close(
            a, b, **TIGHT, msg="a gradient differs from nn.MultiheadAttention's"
        )


def test_fully_padded_sequence_stays_finite(impl):
    """A sequence whose keys are all padding gives finite outputs and gradients, never NaN."""
    torch.manual_seed(5)
    attn = impl.MultiHeadSelfAttention(8, 2).double()
    x = torch.randn(2, 3, 8, dtype=F64, requires_grad=True)
    pad = torch.tensor([[True, True, True], [False, False, True]])
    out = attn(x, key_padding_mask=pad, causal=True)
    out.sum().backward()
    assert torch.isfinite(out).all(), "fully masked rows must not give NaN"
    assert torch.isfinite(x.grad).all(), "fully masked rows must not give NaN gradients"


def test_rope_attention_ignores_absolute_position(impl):
    """With rope=True, shifting every position by the same amount leaves the output unchanged."""
    torch.manual_seed(6)
    attn = impl.MultiHeadSelfAttention(16, 2, rope=True).double()
    x = torch.randn(2, 6, 16, dtype=F64)
    base = attn(x, causal=True)
    shifted = attn(x, causal=True, positions=torch.arange(6) + 123)
    torch.testing.assert_close(shifted, base, **TIGHT, msg="RoPE attention depends on the start")
    attn.rope = False
    plain = attn(x, causal=True)
    assert (plain - base).abs().max() > 1e-3, "rope=True must rotate queries and keys"


# ---------------------------------------------------------------- the block


@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("norm_first", [False, True])
def test_block_matches_torch_encoder_layer(impl, norm_first, activation):
    """TransformerBlock equals nn.TransformerEncoderLayer (same norm_first): values and all grads."""
    torch.manual_seed(7)
    ours = randomise(
        impl.TransformerBlock(12, 3, 20, activation=activation, norm_first=norm_first).double(),
        seed=7,
        scale=0.1,
    )
    theirs = nn.TransformerEncoderLayer(
        12, 3, 20, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).double()
    theirs.load_state_dict(_torch_layer_state(ours))
    x = torch.randn(3, 5, 12, dtype=F64, requires_grad=True)
    pad = torch.tensor([[0, 0, 0, 0, 0], [0, 0, 0, 1, 1], [0, 1, 1, 1, 1]], dtype=torch.bool)
    out, ref = ours(x, key_padding_mask=pad), theirs(x, src_key_padding_mask=pad)
    torch.testing.assert_close(out, ref, **TIGHT, msg=f"values differ (norm_first={norm_first})")
    g = torch.randn_like(ref)
    names = [n for n, _ in ours.named_parameters()]
    got = torch.autograd.grad(out, [x, *ours.parameters()], g)
    theirs_params = dict(theirs.named_parameters())
    want = torch.autograd.grad(ref, [x, *(theirs_params[_torch_name(n)] for n in names)], g)
    for name, a, b in zip(["x", *names], got, want):
        torch.testing.assert_close(
            a, b, **TIGHT, msg=f"gradient of {name} differs (norm_first={norm_first})"
        )


@pytest.mark.parametrize("norm_first", [False, True])
def test_causal_block_matches_torch_encoder_layer(impl, norm_first):
    """With causal=True the block equals torch's layer given a causal src_mask, in eval mode."""
    torch.manual_seed(8)
    ours = randomise(
        impl.TransformerBlock(
            8, 2, 16, dropout=0.2, activation="gelu", norm_first=norm_first
        ).double(),
        8,
        0.1,
    )
    theirs = nn.TransformerEncoderLayer(
        8, 2, 16, 0.2, "gelu", batch_first=True, norm_first=norm_first
    ).double()
    theirs.load_state_dict(_torch_layer_state(ours))
    ours.eval(), theirs.eval()
    x = torch.randn(2, 6, 8, dtype=F64)
    out = ours(x, causal=True)
    ref = theirs(x, src_mask=_causal(6), is_causal=True)
    torch.testing.assert_close(
        out, ref, **TIGHT, msg="causal block differs (dropout must be off in eval)"
    )
    ours.train()
    assert not torch.equal(ours(x, causal=True), ours(x, causal=True)), "dropout is on in training"


def test_pre_ln_keeps_an_identity_path(impl):
    """With both branches' output layers zeroed, pre-LN returns x itself; post-LN normalises it."""
    torch.manual_seed(9)
    x = 5 * torch.randn(2, 4, 8, dtype=F64) + 2
    for norm_first in (True, False):
        block = impl.TransformerBlock(8, 2, 16, norm_first=norm_first).double()
        with torch.no_grad():
            for layer in (block.self_attn.out_proj, block.ff.linear2):
                layer.weight.zero_()
                layer.bias.zero_()
        out = block(x)
        if norm_first:
            torch.testing.assert_close(out, x, **TIGHT, msg="pre-LN: x must pass through unchanged")
        else:
            twice = F.layer_norm(F.layer_norm(x, (8,)), (8,))
            torch.testing.assert_close(
                out, twice, **TIGHT, msg="post-LN: output is norm2(norm1(x))"
            )


def test_llama_style_block_matches_a_composition(impl):
    """activation='swiglu', norm='rms', rope=True: x + attn(rope, rms(x)), then + swiglu(rms(x))."""
    torch.manual_seed(10)
    block = impl.TransformerBlock(
        8, 2, 12, activation="swiglu", norm_first=True, norm="rms", eps=1e-6, bias=False, rope=True
    )
    block = randomise(block.double(), 10, 0.2)
    x = torch.randn(2, 5, 8, dtype=F64, requires_grad=True)
    out = block(x, causal=True)

    def rms(h, norm):
        return F.rms_norm(h, (8,), norm.weight, 1e-6)

    h = rms(x, block.norm1)
    q, k, v = F.linear(h, block.self_attn.in_proj_weight).view(2, 5, 3, 2, 4).permute(2, 0, 3, 1, 4)
    pos = torch.arange(5)
    a = F.scaled_dot_product_attention(
        complex_rope(q, pos), complex_rope(k, pos), v, is_causal=True
    )
    h1 = x + F.linear(a.transpose(1, 2).reshape(2, 5, 8), block.self_attn.out_proj.weight)
    ff = block.ff
    h2 = rms(h1, block.norm2)
    ref = h1 + F.linear(
        F.silu(F.linear(h2, ff.w1.weight)) * F.linear(h2, ff.w3.weight), ff.w2.weight
    )
    torch.testing.assert_close(
        out, ref, **TIGHT, msg="LLaMA-style block differs from the composition"
    )
    g = torch.randn_like(ref)
    (gx,), (gx_ref,) = torch.autograd.grad(out, [x], g), torch.autograd.grad(ref, [x], g)
    torch.testing.assert_close(gx, gx_ref, **TIGHT, msg="input gradient differs")


# ---------------------------------------------------------------- the language model


@pytest.mark.parametrize("position", ["sinusoidal", "learned", "rope", "none"])
def test_language_model_is_causal(impl, position):
    """TransformerLM gives (B, T, vocab) logits, and changing token t never changes logits before t."""
    model = impl.TransformerLM(11, 8, 2, 2, 16, max_len=10, position=position, seed=0).double()
    idx = torch.randint(0, 11, (2, 7), generator=torch.Generator().manual_seed(1))
    logits = model(idx)
    assert tuple(logits.shape) == (2, 7, 11), f"logits {tuple(logits.shape)}, expected (2, 7, 11)"
    changed = idx.clone()
    changed[:, 4:] = (changed[:, 4:] + 1) % 11
    after = model(changed)
    torch.testing.assert_close(
        after[:, :4], logits[:, :4], **TIGHT, msg="the future leaked into the past"
    )
    assert (after[:, 4] - logits[:, 4]).abs().max() > 1e-6, "logits at t must depend on token t"


@pytest.mark.parametrize(
    "position,norm_first", [("learned", True), ("sinusoidal", False), ("none", True)]
)
def test_language_model_matches_torch_encoder_layers(impl, position, norm_first):
    """TransformerLM equals embedding + positions -> nn.TransformerEncoderLayer stack -> head."""
    d, vocab, t = 8, 13, 6
    model = impl.TransformerLM(
        vocab, d, 2, 3, 16, max_len=8, position=position, norm_first=norm_first, seed=3
    ).double()
    randomise(model, 3, 0.05)
    layers = []
    for block in model.blocks:
        layer = nn.TransformerEncoderLayer(
            d, 2, 16, 0.0, "gelu", batch_first=True, norm_first=norm_first
        )
        layer.double().load_state_dict(_torch_layer_state(block))
        layers.append(layer)
    emb = model.tok_emb.weight.detach().clone().requires_grad_()
    idx = torch.randint(0, vocab, (3, t), generator=torch.Generator().manual_seed(2))
    h = F.embedding(idx, emb)
    if position == "learned":
        h = h + model.pos_emb.weight[:t].detach()
    elif position == "sinusoidal":
        angle = torch.arange(t, dtype=F64)[:, None] / 10000 ** (
            torch.arange(0, d, 2, dtype=F64) / d
        )
        h = h + torch.stack((angle.sin(), angle.cos()), dim=-1).flatten(-2)
    for layer in layers:
        h = layer(h, src_mask=_causal(t), is_causal=True)
    if norm_first:
        h = F.layer_norm(h, (d,), model.norm_f.weight.detach(), model.norm_f.bias.detach())
    ref = F.linear(h, model.head.weight.detach(), model.head.bias.detach())
    out = model(idx)
    torch.testing.assert_close(
        out, ref, **TIGHT, msg=f"logits differ ({position}, norm_first={norm_first})"
    )
    g = torch.randn_like(ref)
    out.backward(g)
    ref.backward(g)
    torch.testing.assert_close(
        model.tok_emb.weight.grad, emb.grad, **TIGHT, msg="embedding gradient differs"
    )


def test_language_model_seed_fixes_weights_only(impl):
    """Two models with the same seed give the same logits, and building them leaves torch's RNG alone."""
    state = torch.get_rng_state()
    a = impl.TransformerLM(9, 8, 2, 2, 16, max_len=8, position="rope", seed=4)
    b = impl.TransformerLM(9, 8, 2, 2, 16, max_len=8, position="rope", seed=4)
    assert torch.equal(torch.get_rng_state(), state), "a seeded model must not move the global RNG"
    with torch.random.fork_rng():  # another global state: the seed alone must fix the weights
        torch.manual_seed(99)
        c = impl.TransformerLM(9, 8, 2, 2, 16, max_len=8, position="rope", seed=4)
    idx = torch.arange(8)[None] % 9
    torch.testing.assert_close(
        a(idx), c(idx), rtol=0, atol=0, msg="the seed did not fix the weights"
    )
    torch.testing.assert_close(
        a(idx), b(idx), rtol=0, atol=0, msg="the same seed gave different models"
    )


def test_lm_loss_is_next_token_cross_entropy(impl):
    """lm_loss is the mean cross-entropy of model(x) against y, and log(vocab) for zero logits."""
    model = nn.Embedding(7, 7).double()  # any module mapping ids (B, T) to logits (B, T, V)
    gen = torch.Generator().manual_seed(6)
    x, y = torch.randint(0, 7, (2, 5), generator=gen), torch.randint(0, 7, (2, 5), generator=gen)
    logp = model(x).log_softmax(-1)
    want = -logp.gather(-1, y[..., None]).mean()
    assert impl.lm_loss(model, x, y).item() == pytest.approx(want.item(), rel=1e-12), "not mean CE"
    with torch.no_grad():
        model.weight.zero_()
    assert impl.lm_loss(model, x, y).item() == pytest.approx(math.log(7), rel=1e-12), (
        "zero logits must give log(vocab)"
    )


def test_n_parameters_counts_trainable_scalars(impl):
    """n_parameters counts the scalars of the parameters that require grad, frozen ones left out."""
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 2))
    model[1].weight.requires_grad_(False)
    assert impl.n_parameters(model) == 3 * 4 + 4 + 2, "count weight and bias scalars, skip frozen"
