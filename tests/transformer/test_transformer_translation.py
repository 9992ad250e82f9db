"""Grader for transformer-translation's model: label smoothing against F.cross_entropy, the
inverse-square-root schedule in closed form, the decoder layer and the whole encoder-decoder
against nn.Transformer with copied weights (float64 values and gradients), and the masks."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from transformer_testing import randomise

from airoad.transformer.transformer_layers import sinusoidal_positions

REFERENCE = "airoad.transformer.transformer_translation"

F64 = torch.float64
TIGHT = {"atol": 1e-10, "rtol": 1e-9}
FAST = settings(max_examples=12, deadline=None)


# ---------------------------------------------------------------- loss and schedule


@FAST
@given(
    eps=st.floats(0.0, 0.5),
    n_ignored=st.integers(0, 5),
    seed=st.integers(0, 1000),
)
def test_label_smoothing_equals_torch(impl, eps, n_ignored, seed):
    """label_smoothed_cross_entropy equals F.cross_entropy(label_smoothing=eps, ignore_index=pad)."""
    gen = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 6, 9, generator=gen, dtype=F64, requires_grad=True)
    target = torch.randint(1, 9, (2, 6), generator=gen)
    target.view(-1)[:n_ignored] = 0  # padding positions
    ours = impl.label_smoothed_cross_entropy(logits, target, eps, ignore_index=0)
    ref = F.cross_entropy(logits.reshape(-1, 9), target.reshape(-1), ignore_index=0,
                          label_smoothing=eps)  # fmt: skip
    torch.testing.assert_close(ours, ref, **TIGHT, msg="loss differs from F.cross_entropy")
    got, want = (torch.autograd.grad(v, logits)[0] for v in (ours, ref))
    torch.testing.assert_close(got, want, **TIGHT, msg="gradient differs from F.cross_entropy's")


def test_inverse_sqrt_schedule_closed_form(impl):
    """inverse_sqrt_lr is scale * d^-0.5 * min(step^-0.5, step * warmup^-1.5), peaking at warmup."""
    d, warmup, scale = 128, 40, 2.0
    rates = [impl.inverse_sqrt_lr(s, d, warmup, scale) for s in range(1, 401)]
    want = [scale * d**-0.5 * min(s**-0.5, s * warmup**-1.5) for s in range(1, 401)]
    for s, (a, b) in enumerate(zip(rates, want), start=1):
        assert math.isclose(a, b, rel_tol=1e-12), f"step {s}: {a}, expected {b}"
    assert max(range(400), key=rates.__getitem__) + 1 == warmup, "the peak must be at warmup"
    assert math.isclose(max(rates), scale / math.sqrt(d * warmup), rel_tol=1e-12)


# ---------------------------------------------------------------- against nn.Transformer


def _torch_names(named: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our names -> nn.Transformer's (ff.linear1 -> linear1, cross_attn -> multihead_attn, ...);
    the separate q/k/v projections of our cross-attention are stacked into in_proj_*."""
    renames = [("encoder_layers.", "encoder.layers."), ("decoder_layers.", "decoder.layers."),
               ("encoder_norm.", "encoder.norm."), ("decoder_norm.", "decoder.norm."),
               ("ff.linear", "linear"), ("cross_attn.out_proj", "multihead_attn.out_proj")]  # fmt: skip
    out = {}
    for name, value in named.items():
        for old, new in renames:
            name = name.replace(old, new)
        out[name] = value
    for name in [n for n in out if "cross_attn.q_proj." in n]:
        base, kind = name.split("cross_attn.q_proj.")
        parts = [out.pop(f"{base}cross_attn.{p}_proj.{kind}") for p in "qkv"]
        out[f"{base}multihead_attn.in_proj_{kind}"] = torch.cat(parts)
    return out


def _load_ours_into(theirs: nn.Module, ours: nn.Module) -> None:
    state = _torch_names(ours.state_dict())
    state.pop("embedding.weight", None)  # nn.Transformer takes vectors, not ids
    theirs.load_state_dict(state)  # strict: every weight of theirs gets one of ours


def _grads_agree(out, ref, ours: nn.Module, theirs: nn.Module, inputs=()) -> None:
    """Same random probe through both: input gradients and every weight gradient by name."""
    probe = torch.randn_like(ref)
    names = [n for n, _ in ours.named_parameters()]
    got = torch.autograd.grad(out, [*inputs, *ours.parameters()], probe, allow_unused=True)
    want = torch.autograd.grad(ref, [*inputs, *theirs.parameters()], probe)
    for a, b in zip(got[: len(inputs)], want[: len(inputs)]):
        torch.testing.assert_close(a, b, **TIGHT, msg="an input gradient differs from torch's")
    ours_g = _torch_names(dict(zip(names, got[len(inputs) :])))
    theirs_g = dict(zip([n for n, _ in theirs.named_parameters()], want[len(inputs) :]))
    for name, g in theirs_g.items():
        assert ours_g.get(name) is not None, f"no gradient reaches our {name}"
        torch.testing.assert_close(ours_g[name], g, **TIGHT, msg=f"gradient of {name} differs")


SRC = torch.tensor([[5, 6, 7, 8, 9, 4], [4, 9, 3, 0, 0, 0], [7, 0, 0, 0, 0, 0]])
TGT_IN = torch.tensor([[1, 4, 5, 6, 7], [1, 8, 3, 0, 0], [1, 9, 6, 3, 0]])
CAUSAL5 = torch.ones(5, 5, dtype=torch.bool).triu(1)  # torch's convention: True = hidden


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(impl, norm_first):
    """DecoderLayer equals nn.TransformerDecoderLayer (same norm_first): values and all grads."""
    ours = randomise(impl.DecoderLayer(12, 3, 20, 0.0, norm_first).double(), seed=3)
    theirs = nn.TransformerDecoderLayer(12, 3, 20, 0.0, batch_first=True, norm_first=norm_first)
    theirs = theirs.double()
    _load_ours_into(theirs, ours)
    gen = torch.Generator().manual_seed(3)
    y = torch.randn(3, 5, 12, generator=gen, dtype=F64, requires_grad=True)
    memory = torch.randn(3, 6, 12, generator=gen, dtype=F64, requires_grad=True)
    src_mask = SRC != 0
    out, weights = ours(y, memory, src_mask)
    ref = theirs(y, memory, tgt_mask=CAUSAL5, memory_key_padding_mask=~src_mask,
                 tgt_is_causal=True)  # fmt: skip
    torch.testing.assert_close(out, ref, **TIGHT, msg=f"values differ (norm_first={norm_first})")
    assert tuple(weights.shape) == (3, 3, 5, 6), "cross-attention weights are (B, heads, T, S)"
    assert torch.all(weights.masked_select(~src_mask[:, None, None, :]) == 0), "pads get weight"
    _grads_agree(out, ref, ours, theirs, inputs=(y, memory))


def _torch_transformer(d: int, heads: int, d_ff: int, n_layers: int, norm_first: bool):
    """nn.Transformer laid out like ours: the final stack norms only when pre-LN."""
    kw = {"dropout": 0.0, "batch_first": True, "norm_first": norm_first}
    enc = nn.TransformerEncoder(
        nn.TransformerEncoderLayer(d, heads, d_ff, **kw), n_layers,
        norm=nn.LayerNorm(d) if norm_first else None, enable_nested_tensor=False,
    )  # fmt: skip
    dec = nn.TransformerDecoder(
        nn.TransformerDecoderLayer(d, heads, d_ff, **kw), n_layers,
        norm=nn.LayerNorm(d) if norm_first else None,
    )  # fmt: skip
    return nn.Transformer(d, heads, custom_encoder=enc, custom_decoder=dec, **kw).double()


@pytest.mark.parametrize("norm_first", [False, True])
def test_model_matches_nn_transformer(impl, norm_first):
    """TranslationTransformer equals nn.Transformer with copied weights: logits and all grads."""
    model = impl.TranslationTransformer(12, 12, 3, 2, 2, 20, 0.0, 0, 16, norm_first, seed=1)
    model = randomise(model.double(), seed=1, scale=0.2)
    theirs = _torch_transformer(12, 3, 20, 2, norm_first)
    _load_ours_into(theirs, model)
    logits = model(SRC, TGT_IN)
    src_x, tgt_x = model.embed(SRC), model.embed(TGT_IN)
    h = theirs(src_x, tgt_x, tgt_mask=CAUSAL5, src_key_padding_mask=SRC == 0,
               memory_key_padding_mask=SRC == 0, tgt_key_padding_mask=TGT_IN == 0,
               tgt_is_causal=True)  # fmt: skip
    ref = h @ model.embedding.weight.T
    # torch also hides target padding from the padded queries: compare the real positions only
    real = (TGT_IN != 0)[..., None]
    torch.testing.assert_close(logits * real, ref * real, **TIGHT, msg="logits differ")
    _grads_agree(logits * real, ref * real, model, theirs, inputs=(model.embedding.weight,))


def test_embedding_is_scaled_tied_and_positioned(impl):
    """embed = E[ids] * sqrt(D) + sinusoidal positions, and the output layer is E itself."""
    model = impl.TranslationTransformer(10, 8, 2, 1, 1, 16, 0.0, 0, 12, seed=2).double()
    ids = torch.tensor([[3, 4, 5, 0]])
    want = model.embedding.weight[ids] * math.sqrt(8) + sinusoidal_positions(4, 8, dtype=F64)
    torch.testing.assert_close(model.embed(ids), want, **TIGHT, msg="embedding differs")
    assert torch.all(model.embedding.weight[0] == 0), "the PAD row starts at zero"
    n_params = sum(p.numel() for p in model.parameters())
    untied = n_params + 10 * 8
    assert n_params < untied and model.embedding.weight.grad is None
    logits = model(ids, ids)
    logits.sum().backward()
    assert model.embedding.weight.grad is not None, "logits must use the embedding matrix"


# ---------------------------------------------------------------- masks


def test_source_padding_changes_nothing(impl):
    """Adding PAD tokens to the end of a source leaves every logit unchanged."""
    model = impl.TranslationTransformer(12, 12, 3, 2, 2, 20, 0.0, 0, 16, seed=4).double()
    src = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, 0, 0, 0]])
    tgt_in = torch.tensor([[1, 4, 9, 2]])
    torch.testing.assert_close(model(padded, tgt_in), model(src, tgt_in), **TIGHT,
                               msg="source padding leaks into the output")  # fmt: skip


def test_target_is_causal(impl):
    """Changing target token t changes no logits before position t."""
    model = impl.TranslationTransformer(12, 12, 3, 2, 2, 20, 0.0, 0, 16, seed=5).double()
    src = torch.tensor([[5, 6, 7, 8]])
    a = torch.tensor([[1, 4, 9, 3, 6]])
    b = a.clone()
    b[0, 3] = 10
    la, lb = model(src, a), model(src, b)
    torch.testing.assert_close(la[:, :3], lb[:, :3], **TIGHT, msg="a future token leaked")
    assert (la[:, 3:] - lb[:, 3:]).abs().max() > 1e-6, "the changed token must matter later"


def test_cross_attention_weights_are_returned(impl):
    """decode(return_attention=True) gives (B, heads, T, S) weights, rows summing to 1, pads 0."""
    model = impl.TranslationTransformer(12, 12, 3, 1, 2, 20, 0.0, 0, 16, seed=6).double()
    memory, src_mask = model.encode(SRC)
    assert torch.equal(src_mask, SRC != 0), "src_mask is True at real source tokens"
    logits, weights = model.decode(TGT_IN, memory, src_mask, return_attention=True)
    assert tuple(weights.shape) == (3, 3, 5, 6)
    torch.testing.assert_close(weights.sum(-1), torch.ones(3, 3, 5, dtype=F64), **TIGHT)
    assert torch.all(weights[:, :, :, 3:][~src_mask[:, None, None, 3:].expand(3, 3, 5, 3)] == 0)
    torch.testing.assert_close(logits, model(SRC, TGT_IN), **TIGHT)


def test_seed_fixes_weights_and_leaves_the_global_rng(impl):
    """The same seed builds the same weights under any global RNG state and leaves torch's RNG alone."""
    state = torch.get_rng_state()
    a = impl.TranslationTransformer(10, 8, 2, 1, 1, 16, 0.0, 0, 12, seed=3)
    assert torch.equal(torch.get_rng_state(), state), "a seeded model must not move the global RNG"
    with torch.random.fork_rng():
        torch.manual_seed(99)
        b = impl.TranslationTransformer(10, 8, 2, 1, 1, 16, 0.0, 0, 12, seed=3)
    src, tgt = torch.tensor([[3, 4, 5, 2]]), torch.tensor([[1, 6, 7]])
    torch.testing.assert_close(
        a(src, tgt), b(src, tgt), rtol=0, atol=0, msg="the seed must fix every weight"
    )
