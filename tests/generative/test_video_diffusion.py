"""Graders for the video-diffusion lab: moving-digit clips (downscaling against adaptive average
pooling, the bounce against a frame-by-frame simulation, pasting against slicing, seeds, mass,
motion), the centre-of-mass measures, the per-frame convolution against F.conv3d, the temporal
attention against nn.MultiheadAttention (values, gradients, time permutations) and the
space-time denoiser."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from airoad.generative import diffusion

REFERENCE = "airoad.generative.video_diffusion"


def _digits(n: int, seed: int = 0) -> np.ndarray:
    """Fake 28x28 uint8 'digits': a random blob of ink in the middle of a black square."""
    rng = np.random.default_rng(seed)
    out = np.zeros((n, 28, 28), np.uint8)
    out[:, 6:22, 8:20] = rng.integers(0, 256, (n, 16, 12))
    return out


def _features(shape, seed: int = 0, dtype=torch.float64) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _mha_like(attn: nn.Module, channels: int, heads: int) -> nn.MultiheadAttention:
    mha = nn.MultiheadAttention(channels, heads, batch_first=True).double()
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.in_proj.weight)
        mha.in_proj_bias.copy_(attn.in_proj.bias)
        mha.out_proj.weight.copy_(attn.out_proj.weight)
        mha.out_proj.bias.copy_(attn.out_proj.bias)
    return mha


def _as_sequences(x: torch.Tensor) -> torch.Tensor:
    """(n, C, T, H, W) -> (n * H * W, T, C), pixel-major."""
    n, c, t, h, w = x.shape
    return x.permute(0, 3, 4, 2, 1).reshape(n * h * w, t, c)


def test_downscale_matches_adaptive_avg_pool(impl):
    """downscale_digits = F.adaptive_avg_pool2d of the images / 255 (uint8) or as is (float)."""
    images = _digits(3)
    want = F.adaptive_avg_pool2d(torch.from_numpy(images).float()[:, None] / 255, 10)[:, 0]
    got = impl.downscale_digits(images, 10)
    assert got.shape == (3, 10, 10) and got.dtype == torch.float32
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0, msg="uint8 digits: wrong pooling")
    floats = torch.from_numpy(images).float() / 255
    torch.testing.assert_close(impl.downscale_digits(floats, 7), F.adaptive_avg_pool2d(floats[:, None], 7)[:, 0],
                               atol=1e-6, rtol=0, msg="float digits must not be divided again")  # fmt: skip


@settings(max_examples=25, deadline=None)
@given(
    span=st.integers(1, 9), frames=st.integers(2, 20), seed=st.integers(0, 10_000)
)  # fmt: skip
def test_bounce_path_matches_stepwise_simulation(impl, span, frames, seed):
    """bounce_path equals moving one frame at a time and mirroring the overshoot at each wall."""
    rng = np.random.default_rng(seed)
    start = rng.integers(0, span + 1, (4, 2))
    velocity = rng.integers(-span, span + 1, (4, 2))
    want = np.zeros((4, frames, 2), np.int64)
    pos, vel = start.copy(), velocity.copy()
    for t in range(frames):
        want[:, t] = pos
        pos = pos + vel
        low, high = pos < 0, pos > span
        pos = np.where(low, -pos, np.where(high, 2 * span - pos, pos))
        vel = np.where(low | high, -vel, vel)
    got = impl.bounce_path(torch.from_numpy(start), torch.from_numpy(velocity), frames, span)
    np.testing.assert_array_equal(got.numpy(), want, err_msg=f"path differs (span {span})")


def test_render_places_digit_like_slicing(impl):
    """render_clips pastes each digit with its top-left corner at the path's (row, col)."""
    g = torch.Generator().manual_seed(0)
    digits = torch.rand(3, 5, 5, generator=g)
    positions = torch.randint(0, 8, (3, 4, 2), generator=g)
    want = torch.zeros(3, 4, 12, 12)
    for i in range(3):
        for t in range(4):
            r, c = positions[i, t].tolist()
            want[i, t, r : r + 5, c : c + 5] = digits[i]
    torch.testing.assert_close(impl.render_clips(digits, positions, 12), want, atol=0, rtol=0)


def test_clips_are_deterministic_by_seed(impl):
    """The same seed gives the same clips and paths; another seed gives other motions."""
    a, path_a = impl.moving_digit_clips(_digits(6), seed=3)
    b, path_b = impl.moving_digit_clips(_digits(6), seed=3)
    c, path_c = impl.moving_digit_clips(_digits(6), seed=4)
    assert a.shape == (6, 8, 16, 16) and path_a.shape == (6, 8, 2)
    torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert torch.equal(path_a, path_b) and not torch.equal(path_a, path_c), "seed ignored"


def test_clips_conserve_mass_move_and_stay_in_frame(impl):
    """Every frame holds the whole downscaled digit (same ink), inside the frame, and it moves."""
    images = _digits(40, seed=1)
    clips, path = impl.moving_digit_clips(
        images, n_frames=9, size=16, digit_size=10, max_speed=2, seed=0
    )
    ink = impl.downscale_digits(images, 10).sum((-2, -1))  # fmt: skip
    torch.testing.assert_close(clips.sum((-2, -1)), ink[:, None].expand(40, 9), rtol=1e-5, atol=1e-4,
                               msg="a frame lost or gained ink: the digit left the frame?")  # fmt: skip
    assert path.min() >= 0 and path.max() <= 6, "the digit's corner must stay in 0..size-digit_size"
    steps = (path[:, 1:] - path[:, :-1]).abs()
    assert (steps.sum(-1) > 0).all(), "every clip must move on every frame"
    assert steps.max() <= 2 * 2, "a bounce moves at most twice max_speed"
    starts = path[:, 0]
    assert len(torch.unique(starts, dim=0)) > 5, "starts should be spread by the seed"


def test_clips_reject_impossible_sizes(impl):
    """A digit as big as the frame, or a speed beyond the free span, is a ValueError."""
    with pytest.raises(ValueError):
        impl.moving_digit_clips(_digits(2), size=10, digit_size=10)
    with pytest.raises(ValueError):
        impl.moving_digit_clips(_digits(2), size=16, digit_size=10, max_speed=7)


def test_centre_of_mass_matches_weighted_average(impl):
    """centre_of_mass is np.average of the pixel coordinates weighted by intensity."""
    clips = torch.rand(2, 3, 5, 7, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    got = impl.centre_of_mass(clips)
    rows, cols = np.meshgrid(np.arange(5), np.arange(7), indexing="ij")
    for i in range(2):
        for t in range(3):
            w = clips[i, t].numpy()
            want = [np.average(rows, weights=w), np.average(cols, weights=w)]
            np.testing.assert_allclose(got[i, t].numpy(), want, rtol=1e-6)


def test_motion_stats_of_straight_and_shuffled_paths(impl):
    """A dot moving (1, 2) per frame: step sqrt(5), jerk 0, constant ink; reversed time agrees."""
    clips = torch.zeros(1, 5, 12, 12)
    for t in range(5):
        clips[0, t, 1 + t, 2 + 2 * t] = 1.0
    stats = impl.motion_stats(clips)
    assert stats["step"] == pytest.approx(5**0.5, rel=1e-5)
    assert stats["jerk"] == pytest.approx(0.0, abs=1e-5) and stats["mass_cv"] == pytest.approx(
        0.0, abs=1e-6
    )
    assert stats["frame_diff"] == pytest.approx(2 / 144, rel=1e-5)  # fmt: skip
    clips[0, [1, 3]] = clips[0, [3, 1]].clone()  # swap two frames: the path zig-zags
    # path (1,2) (4,8) (3,6) (2,4) (5,10): second differences of length sqrt(80), 0, sqrt(80)
    zigzag = impl.motion_stats(clips)["jerk"]
    assert zigzag == pytest.approx(2 * 80**0.5 / 3, rel=1e-5), (
        "jerk: mean length of c[t+1]-2c[t]+c[t-1]"
    )


def test_frame_conv_matches_conv3d(impl):
    """FrameConv equals F.conv3d with a one-frame-deep kernel (values and gradients)."""
    torch.manual_seed(0)
    conv = impl.FrameConv(3, 4).double()
    x = _features((2, 3, 5, 6, 6)).requires_grad_()
    ours = conv(x)
    weight = conv.conv.weight
    theirs = F.conv3d(x, weight[:, :, None], conv.conv.bias, padding=(0, 1, 1))
    torch.testing.assert_close(ours, theirs, atol=1e-10, rtol=0)
    g = _features(ours.shape, seed=1)
    grads = torch.autograd.grad((ours * g).sum(), (x, weight))
    want = torch.autograd.grad((theirs * g).sum(), (x, weight))
    for a, b in zip(grads, want):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=0, msg="gradients differ from conv3d's")


@pytest.mark.parametrize("frame_embedding", [False, True])
def test_temporal_attention_matches_multihead_attention(impl, frame_embedding):
    """TemporalAttention = nn.MultiheadAttention on the (n*H*W, T, C) sequences (+ frame embedding)."""
    torch.manual_seed(0)
    attn = impl.TemporalAttention(8, n_heads=2, n_frames=5 if frame_embedding else None).double()
    if frame_embedding:
        with torch.no_grad():
            attn.frame_embedding.normal_()
    mha = _mha_like(attn, 8, 2)
    x = _features((2, 8, 5, 3, 4)).requires_grad_()
    ours = attn(x)
    seq = _as_sequences(x) + (attn.frame_embedding if frame_embedding else 0)
    theirs = mha(seq, seq, seq, need_weights=False)[0]
    assert ours.shape == x.shape
    torch.testing.assert_close(_as_sequences(ours), theirs, atol=1e-10, rtol=0)
    g = _features(ours.shape, seed=2)
    ours_grads = torch.autograd.grad((ours * g).sum(), (x, attn.in_proj.weight, attn.out_proj.bias))
    their_loss = (theirs * _as_sequences(g)).sum()
    want = torch.autograd.grad(their_loss, (x, mha.in_proj_weight, mha.out_proj.bias))
    for a, b in zip(ours_grads, want):
        torch.testing.assert_close(a, b, atol=1e-9, rtol=0, msg="gradients differ from torch's")


def test_temporal_attention_passes_gradcheck(impl):
    """Finite differences agree with autograd for the temporal attention (float64)."""
    torch.manual_seed(1)
    attn = impl.TemporalAttention(4, n_heads=2, n_frames=3).double()
    x = _features((1, 4, 3, 2, 1)).requires_grad_()
    assert torch.autograd.gradcheck(attn, (x,), eps=1e-6, atol=1e-6)


def test_attention_is_time_equivariant_only_without_frame_embedding(impl):
    """Without a frame embedding, permuting the frames permutes the output; with one, it does not."""
    torch.manual_seed(0)
    x = _features((1, 8, 6, 2, 2))
    perm = torch.tensor([3, 0, 5, 1, 4, 2])
    blind = impl.TemporalAttention(8, n_heads=2).double()
    torch.testing.assert_close(blind(x[:, :, perm]), blind(x)[:, :, perm], atol=1e-10, rtol=0)
    seeing = impl.TemporalAttention(8, n_heads=2, n_frames=6).double()
    assert 0 < seeing.frame_embedding.std() < 0.1, "the frame embedding starts small (std 0.02)"
    with torch.no_grad():
        seeing.frame_embedding.normal_()
    gap = (seeing(x[:, :, perm]) - seeing(x)[:, :, perm]).abs().max()
    assert gap > 1e-3, "the frame embedding must make the output depend on frame order"


def test_space_time_block_is_resblock_per_frame_then_attention(impl):
    """SpaceTimeBlock = ResBlock on each frame alone (same step embedding), + attn(norm(.))."""
    torch.manual_seed(0)
    block = impl.SpaceTimeBlock(8, 16, 12, n_heads=4, n_frames=3).double()
    x, emb = _features((2, 8, 3, 4, 4)), _features((2, 12), seed=1)
    frames = [block.res(x[:, :, t], emb) for t in range(3)]
    spatial = torch.stack(frames, dim=2)
    want = spatial + block.attn(block.norm(spatial))
    torch.testing.assert_close(block(x, emb), want, atol=1e-10, rtol=0)
    plain = impl.SpaceTimeBlock(8, 8, 12, attend=False).double()
    frames = [plain.res(x[:, :, t], emb) for t in range(3)]
    torch.testing.assert_close(plain(x, emb), torch.stack(frames, dim=2), atol=1e-10, rtol=0)


def test_denoiser_sees_frame_order_only_with_embedding(impl):
    """The whole denoiser is time-equivariant without frame embeddings and not with them."""
    x, t = _features((2, 1, 4, 8, 8), dtype=torch.float32), torch.tensor([3, 700])
    perm = torch.tensor([2, 0, 3, 1])
    for flag in (False, True):
        torch.manual_seed(0)
        net = impl.VideoDenoiser((8, 16), n_heads=2, n_frames=4, frame_embedding=flag)
        assert torch.count_nonzero(net(x, t)) == 0, "the output convolution must start at zero"
        with torch.no_grad():
            for p in net.out.parameters():
                p.normal_(0, 0.1)
            if flag:
                for m in net.modules():
                    if isinstance(m, impl.TemporalAttention):
                        m.frame_embedding.normal_()
        out = net(x, t)
        assert out.shape == x.shape
        gap = (net(x[:, :, perm], t) - out[:, :, perm]).abs().max()
        assert (gap > 1e-3) if flag else (gap < 1e-5), f"frame_embedding={flag}: gap {gap:.2e}"


def test_denoiser_learns_the_noise_prediction_loss(impl):
    """Ten Adam steps on one batch of clips lower diffusion.noise_prediction_loss."""
    torch.manual_seed(0)
    net = impl.VideoDenoiser((8, 8), n_heads=2, n_frames=4)
    clips, _ = impl.moving_digit_clips(_digits(4), n_frames=4, size=8, digit_size=5, max_speed=1)
    x0 = clips[:, None] * 2 - 1
    sched = diffusion.cosine_schedule(100)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        return diffusion.noise_prediction_loss(net, x0, sched, torch.Generator().manual_seed(0))

    first = loss().item()
    for _ in range(10):
        opt.zero_grad()
        value = loss()
        value.backward()
        opt.step()
    assert loss().item() < 0.8 * first, f"loss {first:.3f} -> {loss().item():.3f}: not learning"
