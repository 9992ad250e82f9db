"""Grader for efficient-attention: tiled attention with an online softmax against
F.scaled_dot_product_attention (values, log-sum-exp and gradients in float64), its recomputing
backward pass, sliding-window attention against SDPA with an explicit band mask, and linear
attention against a direct quadratic computation of the same formula."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

REFERENCE = "airoad.transformer.efficient_attention"

FAST = settings(max_examples=15, deadline=None)
TOL = {"atol": 1e-10, "rtol": 1e-10}  # float64


def _qkv(seed, lead=(2, 3), lq=9, lk=None, d=4, dv=None, grad=False, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lk, dv = lq if lk is None else lk, d if dv is None else dv
    shapes = [(*lead, lq, d), (*lead, lk, d), (*lead, lk, dv)]
    return [torch.randn(s, generator=g, dtype=dtype).requires_grad_(grad) for s in shapes]


def _grads(out, inputs, seed=0):
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(seed), dtype=out.dtype)
    return torch.autograd.grad(out, inputs, g)


def _masked_scores(q, k, causal):
    s = (q @ k.transpose(-2, -1)) / math.sqrt(q.shape[-1])
    if causal:
        s = s.masked_fill(torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool).triu(1), -math.inf)
    return s


def _quadratic_linear(q, k, v, causal, phi, eps):
    a = phi(q) @ phi(k).transpose(-2, -1)
    if causal:
        a = a.tril()
    return (a @ v) / (a.sum(dim=-1, keepdim=True) + eps)


def test_attention_matrix_bytes_counts_one_score_matrix(impl):
    """attention_matrix_bytes is batch_heads * q_len * k_len * bytes per element of dtype."""
    for dtype in (torch.float32, torch.float64, torch.bfloat16):
        expected = torch.empty(6, 100, 37, dtype=dtype).nbytes
        got = impl.attention_matrix_bytes(6, 100, 37, dtype)
        assert got == expected, f"{dtype}: {got} bytes, expected {expected}"
    assert impl.attention_matrix_bytes(2, 8192, 8192) == 512 * 2**20, "float32 is the default"


@pytest.mark.parametrize("causal", [False, True])
def test_naive_attention_matches_sdpa(impl, causal):
    """naive_attention equals F.scaled_dot_product_attention, with and without is_causal."""
    q, k, v = _qkv(0, lq=7, lk=11, dv=5)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(
        impl.naive_attention(q, k, v, causal=causal), expected, **TOL, msg="differs from SDPA"
    )


@FAST
@given(
    n=st.integers(1, 20),
    cuts=st.lists(st.integers(1, 19), max_size=4),
    masked=st.integers(0, 3),
    seed=st.integers(0, 10_000),
)
def test_online_softmax_step_rebuilds_softmax_block_by_block(impl, n, cuts, masked, seed):
    """Folding score blocks one by one gives softmax(scores) @ v and m + log(l) = logsumexp."""
    g = torch.Generator().manual_seed(seed)
    scores = 5 * torch.randn(3, n, generator=g, dtype=torch.float64)
    scores[:, : min(masked, n - 1)] = -math.inf  # a few masked keys, never the whole row
    v = torch.randn(n, 2, generator=g, dtype=torch.float64)
    m = torch.full((3, 1), -math.inf, dtype=torch.float64)
    row_sum, acc = torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 2, dtype=torch.float64)
    bounds = sorted({0, n, *[c for c in cuts if c < n]})
    for a, b in zip(bounds[:-1], bounds[1:]):
        m, row_sum, acc = impl.online_softmax_step(m, row_sum, acc, scores[:, a:b], v[a:b])
    torch.testing.assert_close(
        acc / row_sum, torch.softmax(scores, -1) @ v, **TOL, msg="acc / l is not softmax @ v"
    )
    torch.testing.assert_close(
        (m + torch.log(row_sum)).squeeze(-1),
        torch.logsumexp(scores, -1),
        **TOL,
        msg="m + log(l) is not the row's logsumexp",
    )


def test_online_softmax_step_survives_an_all_masked_first_block(impl):
    """A block of only -inf leaves l = acc = 0 without NaN, and the next block still works."""
    scores = torch.tensor([[1.0, -2.0, 0.5]], dtype=torch.float64)
    v = torch.tensor([[1.0], [2.0], [3.0]], dtype=torch.float64)
    m = torch.full((1, 1), -math.inf, dtype=torch.float64)
    row_sum, acc = torch.zeros(1, 1, dtype=torch.float64), torch.zeros(1, 1, dtype=torch.float64)
    masked = torch.full((1, 2), -math.inf, dtype=torch.float64)
    m, row_sum, acc = impl.online_softmax_step(m, row_sum, acc, masked, v[:2])
    assert not torch.isnan(row_sum).any() and not torch.isnan(acc).any(), "NaN after a -inf block"
    assert float(row_sum) == 0.0 and float(acc) == 0.0, "an all-masked block must add nothing"
    m, row_sum, acc = impl.online_softmax_step(m, row_sum, acc, scores, v)
    torch.testing.assert_close(acc / row_sum, torch.softmax(scores, -1) @ v, **TOL)


@FAST
@given(
    lq=st.integers(1, 23),
    lk=st.integers(1, 23),
    d=st.integers(1, 6),
    dv=st.integers(1, 5),
    block_q=st.integers(1, 9),
    block_k=st.integers(1, 9),
    causal=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_tiled_attention_matches_sdpa(impl, lq, lk, d, dv, block_q, block_k, causal, seed):
    """tiled_attention equals SDPA (and its lse the rows' logsumexp) for any lengths and blocks."""
    q, k, v = _qkv(seed, lq=lq, lk=lk, d=d, dv=dv)
    out, lse = impl.tiled_attention(q, k, v, causal=causal, block_q=block_q, block_k=block_k)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    assert out.shape == expected.shape, f"output {tuple(out.shape)}, SDPA {tuple(expected.shape)}"
    torch.testing.assert_close(out, expected, **TOL, msg="tiled output differs from SDPA")
    torch.testing.assert_close(
        lse,
        torch.logsumexp(_masked_scores(q, k, causal), -1),
        **TOL,
        msg="lse is not logsumexp of the scaled (masked) scores, shape (..., Lq)",
    )


def test_tiled_attention_honours_scale_and_float32(impl):
    """A given scale replaces 1/sqrt(d), and float32 inputs agree with SDPA to float32 precision."""
    q, k, v = _qkv(1, lq=33, lk=33, d=8, dtype=torch.float32)
    out, _ = impl.tiled_attention(q, k, v, causal=True, scale=0.3, block_q=8, block_k=16)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True, scale=0.3)
    torch.testing.assert_close(out, expected, atol=2e-6, rtol=1e-5, msg="scale=0.3 in float32")


@pytest.mark.parametrize("causal", [False, True])
def test_tiled_attention_gradients_match_sdpa(impl, causal):
    """Autograd through tiled_attention gives SDPA's gradients for q, k and v."""
    q, k, v = _qkv(2, lq=13, lk=13, d=4, dv=3, grad=True)
    out, _ = impl.tiled_attention(q, k, v, causal=causal, block_q=4, block_k=5)
    ours = _grads(out, (q, k, v))
    theirs = _grads(F.scaled_dot_product_attention(q, k, v, is_causal=causal), (q, k, v))
    for name, a, b in zip("qkv", ours, theirs):
        torch.testing.assert_close(a, b, **TOL, msg=f"d{name} differs from SDPA's")


@FAST
@given(
    lq=st.integers(1, 17),
    lk=st.integers(1, 17),
    block_q=st.integers(1, 8),
    block_k=st.integers(1, 8),
    causal=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_tiled_attention_backward_matches_sdpa_gradients(
    impl, lq, lk, block_q, block_k, causal, seed
):
    """tiled_attention_backward, from SDPA's own output and lse, returns SDPA's (dq, dk, dv)."""
    q, k, v = _qkv(seed, lq=lq, lk=lk, d=3, dv=2, grad=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    grad_out = torch.randn(ref.shape, generator=torch.Generator().manual_seed(seed), dtype=q.dtype)
    expected = torch.autograd.grad(ref, (q, k, v), grad_out)
    lse = torch.logsumexp(_masked_scores(q, k, causal), -1).detach()
    got = impl.tiled_attention_backward(
        q.detach(),
        k.detach(),
        v.detach(),
        ref.detach(),
        lse,
        grad_out,
        causal,
        None,
        block_q,
        block_k,
    )
    for name, a, b in zip("qkv", got, expected):
        torch.testing.assert_close(a, b, **TOL, msg=f"d{name} from the tiled backward is wrong")


@pytest.mark.parametrize("causal", [False, True])
def test_flash_attention_values_and_gradients_match_sdpa(impl, causal):
    """flash_attention (tiled forward + tiled backward) equals SDPA in values and gradients."""
    q, k, v = _qkv(3, lq=19, lk=19, d=5, dv=4, grad=True)
    out = impl.flash_attention(q, k, v, causal=causal, block_q=6, block_k=4)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    torch.testing.assert_close(out, ref, **TOL, msg="flash_attention output differs from SDPA")
    for name, a, b in zip("qkv", _grads(out, (q, k, v)), _grads(ref, (q, k, v))):
        torch.testing.assert_close(a, b, **TOL, msg=f"flash_attention d{name} differs from SDPA's")


def test_flash_attention_passes_gradcheck(impl):
    """torch.autograd.gradcheck (finite differences) accepts flash_attention's backward."""
    q, k, v = _qkv(4, lead=(1,), lq=6, lk=6, d=3, dv=2, grad=True)
    assert torch.autograd.gradcheck(
        lambda a, b, c: impl.flash_attention(a, b, c, causal=True, block_q=4, block_k=3),
        (q, k, v),
        eps=1e-6,
        atol=1e-7,
    ), "finite differences disagree with the backward pass"


def test_flash_attention_saves_no_quadratic_tensor(impl):
    """flash_attention saves fewer than L x L numbers in all for backward (q, k, v, out, lse)."""
    q, k, v = _qkv(5, lead=(1, 1), lq=64, lk=64, d=2, dv=2, grad=True)
    sizes: list[int] = []

    def pack(t):
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = impl.flash_attention(q, k, v, causal=True, block_q=8, block_k=8)
    out.sum().backward()
    assert sizes, "nothing was saved for backward: is flash_attention differentiable?"
    assert sum(sizes) < 64 * 64, (
        f"{sum(sizes)} numbers saved for backward; an L x L matrix has {64 * 64}: recompute tiles"
    )
    assert q.grad is not None and k.grad is not None and v.grad is not None, "missing gradients"


@pytest.mark.parametrize("causal", [True, False])
def test_sliding_window_mask_is_the_band(impl, causal):
    """sliding_window_mask[i, j] is 0 <= i - j < window (causal) or |i - j| < window."""
    length, window = 9, 3
    mask = impl.sliding_window_mask(length, window, causal=causal)
    expected = torch.tensor(
        [
            [(0 <= i - j < window) if causal else abs(i - j) < window for j in range(length)]
            for i in range(length)
        ]
    )
    assert mask.dtype == torch.bool, f"mask dtype {mask.dtype}, expected torch.bool"
    assert torch.equal(mask, expected), f"causal={causal}: wrong band\n{mask.int()}"


@FAST
@given(
    length=st.integers(1, 30),
    window=st.integers(1, 35),
    block=st.integers(1, 9),
    causal=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_sliding_window_attention_matches_sdpa_with_band_mask(
    impl, length, window, block, causal, seed
):
    """sliding_window_attention equals SDPA given the band as attn_mask, values and gradients."""
    q, k, v = _qkv(seed, lq=length, d=3, dv=2, grad=True)
    out = impl.sliding_window_attention(q, k, v, window, causal=causal, block=block)
    band = torch.tensor(
        [
            [(0 <= i - j < window) if causal else abs(i - j) < window for j in range(length)]
            for i in range(length)
        ]
    )
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=band)
    torch.testing.assert_close(out, ref, **TOL, msg="differs from SDPA with the band mask")
    for name, a, b in zip("qkv", _grads(out, (q, k, v), seed), _grads(ref, (q, k, v), seed)):
        torch.testing.assert_close(a, b, **TOL, msg=f"d{name} differs from SDPA's")


def test_sliding_window_limits(impl):
    """window >= L is full causal attention; window = 1 lets each query see only itself (out = v)."""
    q, k, v = _qkv(6, lq=21, d=4)
    full = impl.sliding_window_attention(q, k, v, window=21, causal=True, block=5)
    torch.testing.assert_close(
        full, F.scaled_dot_product_attention(q, k, v, is_causal=True), **TOL, msg="window = L"
    )
    own = impl.sliding_window_attention(q, k, v, window=1, causal=False, block=4)
    torch.testing.assert_close(own, v, **TOL, msg="window = 1 must return v")


def test_elu_feature_map_is_elu_plus_one(impl):
    """elu_feature_map(x) = elu(x) + 1, strictly positive everywhere."""
    x = torch.linspace(-30, 5, 101, dtype=torch.float64)
    phi = impl.elu_feature_map(x)
    torch.testing.assert_close(phi, F.elu(x) + 1, **TOL, msg="phi(x) is not elu(x) + 1")
    assert bool((phi > 0).all()), "the feature map must be positive"


def test_linear_attention_matches_the_quadratic_formula(impl):
    """Non-causal linear attention equals phi(Q) phi(K)^T V / rowsum, also with Lq != Lk."""
    q, k, v = _qkv(7, lq=6, lk=10, d=4, dv=3, grad=True)
    out = impl.linear_attention(q, k, v, causal=False, eps=1e-6)
    ref = _quadratic_linear(q, k, v, False, lambda x: F.elu(x) + 1, 1e-6)
    torch.testing.assert_close(out, ref, **TOL, msg="differs from the quadratic computation")
    for name, a, b in zip("qkv", _grads(out, (q, k, v)), _grads(ref, (q, k, v))):
        torch.testing.assert_close(a, b, **TOL, msg=f"d{name} differs from the quadratic form's")


@FAST
@given(
    length=st.integers(1, 30),
    chunk=st.integers(1, 12),
    seed=st.integers(0, 10_000),
)
def test_causal_linear_attention_matches_the_quadratic_prefix(impl, length, chunk, seed):
    """Causal linear attention (any chunk) equals the quadratic form with a lower-triangular mask."""
    q, k, v = _qkv(seed, lq=length, d=3, dv=2, grad=True)
    out = impl.linear_attention(q, k, v, causal=True, chunk=chunk, eps=1e-6)
    ref = _quadratic_linear(q, k, v, True, lambda x: F.elu(x) + 1, 1e-6)
    torch.testing.assert_close(out, ref, **TOL, msg=f"chunk={chunk}: differs from the tril form")
    for name, a, b in zip("qkv", _grads(out, (q, k, v), seed), _grads(ref, (q, k, v), seed)):
        torch.testing.assert_close(a, b, **TOL, msg=f"d{name} differs from the quadratic form's")


@pytest.mark.parametrize("causal", [False, True])
def test_linear_attention_uses_the_given_feature_map(impl, causal):
    """linear_attention applies feature_map (here exp) to q and k instead of elu + 1."""
    q, k, v = _qkv(8, lq=8, d=3, dv=2)
    out = impl.linear_attention(q, k, v, causal=causal, feature_map=torch.exp, chunk=3, eps=0.0)
    ref = _quadratic_linear(q, k, v, causal, torch.exp, 0.0)
    torch.testing.assert_close(out, ref, **TOL, msg="feature_map=torch.exp was not used")


def test_early_outputs_ignore_later_tokens(impl):
    """Changing the last token leaves every earlier output of the causal variants unchanged."""
    q, k, v = _qkv(9, lq=12, d=4)
    q2, k2, v2 = q.clone(), k.clone(), v.clone()
    for t in (q2, k2, v2):
        t[..., -1, :] += 10.0
    variants = {
        "tiled": lambda a, b, c: impl.tiled_attention(a, b, c, causal=True, block_q=5, block_k=5)[
            0
        ],
        "window": lambda a, b, c: impl.sliding_window_attention(a, b, c, 4, causal=True, block=5),
        "linear": lambda a, b, c: impl.linear_attention(a, b, c, causal=True, chunk=5),
    }
    for name, fn in variants.items():
        before, after = fn(q, k, v), fn(q2, k2, v2)
        torch.testing.assert_close(
            before[..., :-1, :], after[..., :-1, :], **TOL, msg=f"{name}: the future leaked"
        )
        assert not torch.allclose(before[..., -1, :], after[..., -1, :]), f"{name}: last row fixed"


@pytest.mark.parametrize("causal", [False, True])
def test_inputs_without_a_head_dimension(impl, causal):
    """(B, L, d) inputs: naive and flash attention match SDPA (values, gradients), linear the quadratic form."""
    q, k, v = _qkv(10, lead=(2,), lq=9, d=3, dv=2, grad=True)
    ref = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
    naive = impl.naive_attention(q, k, v, causal=causal)
    torch.testing.assert_close(naive, ref, **TOL, msg="naive_attention differs on (B, L, d)")
    out = impl.flash_attention(q, k, v, causal=causal, block_q=4, block_k=4)
    torch.testing.assert_close(out, ref, **TOL, msg="flash_attention differs on (B, L, d)")
    for name, a, b in zip("qkv", _grads(out, (q, k, v)), _grads(ref, (q, k, v))):
        torch.testing.assert_close(a, b, **TOL, msg=f"flash_attention d{name} on (B, L, d)")
    lin = impl.linear_attention(q, k, v, causal=causal, chunk=4, eps=1e-6)
    want = _quadratic_linear(q, k, v, causal, lambda x: F.elu(x) + 1, 1e-6)
    torch.testing.assert_close(lin, want, **TOL, msg="linear_attention differs on (B, L, d)")
