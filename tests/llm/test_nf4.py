"""Grader for lora-finetune's NF4 and QLoRA: the code book against bitsandbytes' published table
and scipy's normal quantiles, block-wise quantisation against a direct NumPy computation, the
measured error order int8 < NF4 < int4 on normal weights, the storage of double quantisation in
closed form, and QLoRA layers whose gradient reaches only the LoRA matrices."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from lora_testing import lm_loss, tiny_llama, token_ids
from peft import LoraConfig, get_peft_model
from scipy.stats import norm
from torch import nn

REFERENCE = "airoad.llm.nf4"

# bitsandbytes.functional.get_4bit_type("nf4"): the table its CUDA and CPU kernels use
BNB_NF4 = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
]


def _numpy_roundtrip(w: np.ndarray, code: np.ndarray, block: int) -> np.ndarray:
    """Block-wise absmax quantisation to the nearest code value, done directly in NumPy."""
    flat = np.concatenate([w.ravel(), np.zeros(-w.size % block)]).reshape(-1, block)
    absmax = np.abs(flat).max(axis=1, keepdims=True)
    scaled = flat / np.where(absmax == 0, 1.0, absmax)
    index = np.abs(scaled[..., None] - code).argmin(axis=-1)
    return (code[index] * absmax).ravel()[: w.size].reshape(w.shape)


def _normal(shape, seed=0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


def test_code_book_equals_bitsandbytes_table(impl):
    """nf4_code() gives the 16 values of bitsandbytes' NF4 table, sorted, 0 exact, in [-1, 1]."""
    code = impl.nf4_code()
    assert code.shape == (16,) and code.dtype == torch.float32, "16 float32 values expected"
    np.testing.assert_allclose(code.numpy(), BNB_NF4, atol=2e-7, err_msg="not bitsandbytes' NF4")
    assert code[7] == 0.0 and code[0] == -1.0 and code[15] == 1.0, "need -1, an exact 0 and 1"


def test_code_book_is_scipy_normal_quantiles(impl):
    """For another offset, the code book is still scipy's norm.ppf construction (8 + 7 + zero)."""
    offset = 0.95
    pos = norm.ppf(np.linspace(offset, 0.5, 9)[:-1])
    neg = -norm.ppf(np.linspace(offset, 0.5, 8)[:-1])
    want = np.sort(np.concatenate([neg, [0.0], pos]))
    np.testing.assert_allclose(
        impl.nf4_code(offset).numpy(), want / want.max(), atol=1e-6, err_msg="not the quantiles"
    )


def test_nearest_code_is_argmin(impl):
    """nearest_code returns the index of the nearest code value, as an argmin would."""
    code = impl.nf4_code()
    x = torch.rand(5000, generator=torch.Generator().manual_seed(0)) * 2 - 1
    want = (x[:, None] - code).abs().argmin(dim=1)
    got = impl.nearest_code(x, code)
    assert got.dtype == torch.uint8, f"indices should be uint8, got {got.dtype}"
    assert torch.equal(got.long(), want), "some values were not sent to their nearest code"


@pytest.mark.parametrize("shape,block", [((37, 29), 64), ((5, 64), 32), ((1000,), 128)])
def test_nf4_round_trip_equals_numpy(impl, shape, block):
    """Quantise then dequantise (fp32 absmax) equals a direct NumPy block-wise computation."""
    w = _normal(shape) * 0.05
    back = impl.nf4_dequantize(impl.nf4_quantize(w, block, double_quant=False))
    want = _numpy_roundtrip(w.double().numpy(), np.array(BNB_NF4), block)
    assert back.shape == w.shape, f"shape {tuple(back.shape)}, expected {shape}"
    np.testing.assert_allclose(back.double().numpy(), want, atol=1e-7, err_msg="round trip differs")


def test_absmax_int8_and_int4_equal_numpy(impl):
    """absmax_quantize/dequantize equal round(x / absmax * L) * absmax / L per block in NumPy."""
    w = _normal((50, 30), 1)
    w[0, :] = 0.0  # whole zero blocks must stay 0, not NaN
    for bits in (8, 4):
        levels = 2 ** (bits - 1) - 1
        q, absmax = impl.absmax_quantize(w, bits, 64)
        back = impl.absmax_dequantize(q, absmax, bits, w.shape)
        code = np.arange(-levels, levels + 1) / levels
        want = _numpy_roundtrip(w.double().numpy(), code, 64)
        assert q.dtype == torch.int8 and int(q.abs().max()) <= levels, f"int{bits} codes"
        np.testing.assert_allclose(back.numpy(), want, atol=1e-6, err_msg=f"int{bits} differs")


def test_measured_error_order_int8_nf4_int4_on_normal_weights(impl):
    """On normal weights (block 64), RMS error: int8 < NF4 < int4 absmax; NF4 within its bound."""
    w = _normal((256, 256), 2) * 0.02
    back = impl.nf4_dequantize(impl.nf4_quantize(w, 64, double_quant=False))
    rms = {"nf4": float((back - w).pow(2).mean().sqrt())}
    for bits in (8, 4):
        code = np.arange(-(2 ** (bits - 1) - 1), 2 ** (bits - 1)) / (2 ** (bits - 1) - 1)
        direct = _numpy_roundtrip(w.double().numpy(), code, 64)
        rms[f"int{bits}"] = float(np.sqrt(np.mean((direct - w.double().numpy()) ** 2)))
    assert rms["int8"] < rms["nf4"] < rms["int4"], f"measured RMS errors {rms}"
    gap = float(np.max(np.diff(BNB_NF4))) / 2  # a value is at most half the widest gap away
    absmax = w.reshape(-1, 64).abs().amax(1, keepdim=True)
    assert ((back - w).reshape(-1, 64).abs() <= absmax * gap + 1e-7).all(), "error above bound"


def test_double_quant_storage_is_the_closed_form(impl):
    """Stored bits per weight equal 4 + 32/64, or 4 + 8/64 + 32/(64*256) with double quant."""
    assert impl.bits_per_parameter(64, False) == pytest.approx(4.5)
    assert impl.bits_per_parameter(64, True, 256) == pytest.approx(4 + 8 / 64 + 32 / 16384)
    w = _normal((64 * 256 * 2,), 3)  # whole blocks of constants: no padding
    for dq, want in ((False, 4 + 32 / 64), (True, 4 + 8 / 64 + 32 / 16384)):
        q = impl.nf4_quantize(w, 64, double_quant=dq)
        bits = 8 * q.nbytes() / w.numel()
        extra = 32 / w.numel() if dq else 0.0  # the one fp32 mean
        assert bits == pytest.approx(want + extra, rel=1e-9), f"double_quant={dq}: {bits} bits"


def test_double_quant_constants_are_close(impl):
    """Double-quantised absmax constants are within half an int8 step of the true ones."""
    w = _normal((300, 70), 4) * torch.linspace(0.1, 2.0, 70)
    q = impl.nf4_quantize(w, 64, double_quant=True, dq_block_size=256)
    true = impl.nf4_quantize(w, 64, double_quant=False).absmax
    centred = true - true.mean()
    blocks = F.pad(centred, (0, -centred.numel() % 256)).view(-1, 256)
    step = blocks.abs().amax(1, keepdim=True) / 127  # int8 step of each block of constants
    err = (impl.block_absmax(q) - true).abs()
    bound = step.expand(-1, 256).reshape(-1)[: true.numel()] / 2
    assert (err <= bound + 1e-7).all(), f"worst constant error {float(err.max()):.2e}"


def test_nf4_linear_forward_and_input_gradient(impl):
    """NF4Linear computes F.linear with the dequantised weight; its input gradient matches too."""
    torch.manual_seed(0)
    lin = nn.Linear(70, 30)
    layer = impl.NF4Linear(lin, 64, True)
    w_hat = impl.nf4_dequantize(layer.weight_q)
    x = torch.randn(4, 70, requires_grad=True)
    x2 = x.detach().clone().requires_grad_()
    out, want = layer(x), F.linear(x2, w_hat, lin.bias.detach())
    torch.testing.assert_close(out, want, msg="forward is not x W_hat^T + b")
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(1))
    out.backward(g)
    want.backward(g)
    torch.testing.assert_close(x.grad, x2.grad, msg="input gradient is not g W_hat")
    assert not list(layer.parameters()) or not any(p.requires_grad for p in layer.parameters())


def test_nf4_linear_gradcheck(impl):
    """Finite differences agree with autograd through NF4Linear's input (float64)."""
    torch.manual_seed(1)
    layer = impl.NF4Linear(nn.Linear(6, 4).double(), 32, False)
    x = torch.randn(3, 6, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(layer, (x,), eps=1e-6, atol=1e-6), "gradcheck failed"


def test_qlora_gradients_reach_only_lora_and_match_dequantised_lora(impl):
    """QLoRALinear trains only A and B, with the gradients of LoRA over the dequantised weight."""
    from airoad.llm.lora_finetune import LoRALinear

    torch.manual_seed(2)
    lin = nn.Linear(64, 48)
    layer = impl.QLoRALinear(lin, r=4, alpha=8.0, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        layer.lora_B.normal_()
    plain = nn.Linear(64, 48)
    with torch.no_grad():
        plain.weight.copy_(impl.nf4_dequantize(layer.base.weight_q))
        plain.bias.copy_(lin.bias)
    twin = LoRALinear(plain, r=4, alpha=8.0)
    twin.load_state_dict({"lora_A": layer.lora_A, "lora_B": layer.lora_B}, strict=False)
    x = torch.randn(5, 64)
    layer(x).pow(2).sum().backward()
    twin(x).pow(2).sum().backward()
    trainable = [n for n, p in layer.named_parameters() if p.requires_grad]
    assert sorted(trainable) == ["lora_A", "lora_B"], f"trainable: {trainable}"
    for name in ("lora_A", "lora_B"):
        torch.testing.assert_close(
            getattr(layer, name).grad, getattr(twin, name).grad, msg=f"{name} gradient differs"
        )


def test_add_qlora_counts_start_and_training(impl):
    """add_qlora: peft's trainable count, logits of the NF4-rounded model at start, loss falls."""
    base = tiny_llama(5)
    model = copy.deepcopy(base).float()
    names = impl.add_qlora(model, ("q_proj", "v_proj"), r=4, alpha=8.0, block_size=16)
    peft = get_peft_model(
        copy.deepcopy(base), LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"])
    )
    assert len(names) == 4, f"wrapped {names}"
    assert (
        sum(p.numel() for p in model.parameters() if p.requires_grad)
        == (peft.get_nb_trainable_parameters()[0])
    ), "trainable count differs from peft's LoRA on the same targets"
    rounded = copy.deepcopy(base).float()  # every block linear replaced by its NF4 round trip
    with torch.no_grad():
        for name, m in rounded.named_modules():
            if isinstance(m, nn.Linear) and ".layers." in name:
                m.weight.copy_(impl.nf4_dequantize(impl.nf4_quantize(m.weight, 16)))
    ids = token_ids(4)
    torch.testing.assert_close(
        model(input_ids=ids).logits,
        rounded(input_ids=ids).logits,
        atol=1e-5,
        rtol=1e-5,
        msg="at the start (B = 0) the model must be the NF4-rounded base",
    )
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    for _ in range(15):
        loss = lm_loss(model, ids)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0] - 0.1, f"QLoRA training did not lower the loss: {losses}"
