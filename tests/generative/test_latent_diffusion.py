"""Graders for the latent-diffusion lab: the denoiser against the same network written with
torch.nn.functional (values and gradients), label dropout at its rate with a seeded generator,
classifier-free guidance (w = 0 and w = 1 are the two plain predictions, linear in w), the loss
and one Adam step against the documented recipe, guided DDIM against a hand-written loop, the
traced generator, and a tiny model that learns class codes."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from airoad.generative import diffusion

REFERENCE = "airoad.generative.latent_diffusion"

SHAPE = (2, 3, 3)  # a tiny code: 18 numbers
N_CLASSES = 3


def _model(impl, seed: int = 0, dtype=torch.float64):
    """A tiny denoiser whose residual branches are switched on (fc2 is zero at init)."""
    torch.manual_seed(seed)
    model = impl.LatentDenoiser(SHAPE, N_CLASSES, hidden=16, n_blocks=2, emb_dim=8)
    for block in model.blocks:
        nn.init.normal_(block.fc2.weight, std=0.3)
        nn.init.normal_(block.fc2.bias, std=0.1)
    return model.to(dtype)


def _inputs(n: int = 5, seed: int = 1, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, *SHAPE, generator=g, dtype=dtype)
    t = torch.randint(0, 50, (n,), generator=g)
    labels = torch.randint(0, N_CLASSES, (n,), generator=g)
    return z, t, labels


def _functional(model, z, t, labels):
    """The denoiser's forward written out with F.* and the module's own parameters."""
    half = model.emb_dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float64) / half)
    ang = t.double()[:, None] * freqs
    sincos = torch.cat([ang.sin(), ang.cos()], 1).to(z.dtype)
    lin = lambda layer, x: F.linear(x, layer.weight, layer.bias)  # noqa: E731
    emb = lin(model.time_mlp[2], F.silu(lin(model.time_mlp[0], sincos)))
    emb = emb + F.embedding(labels, model.label_emb.weight)
    h = lin(model.inp, z.flatten(1))
    for b in model.blocks:
        normed = F.layer_norm(h, (h.shape[1],), b.norm.weight, b.norm.bias, b.norm.eps)
        h = h + lin(b.fc2, F.silu(lin(b.fc1, F.silu(normed)) + lin(b.proj, F.silu(emb))))
    normed = F.layer_norm(h, (h.shape[1],), model.out_norm.weight, model.out_norm.bias)
    return lin(model.out, F.silu(normed)).reshape(z.shape)


def test_denoiser_matches_the_functional_form(impl):
    """LatentDenoiser.forward equals its docstring written with F.linear etc. (values and grads)."""
    model = _model(impl)
    z, t, labels = _inputs()
    labels[0] = model.null_label  # the extra "no label" row is a valid input
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    ours, theirs = model(z1, t, labels), _functional(model, z2, t, labels)
    assert ours.shape == z.shape, f"expected the code's shape {tuple(z.shape)}"
    # the sinusoid is float32 (the reference computes it so), hence 1e-6 and not 1e-10
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6)
    weights = torch.randn_like(ours)
    (ours * weights).sum().backward()
    (theirs * weights).sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-6, atol=1e-6, msg="input gradient")
    assert model.label_emb.num_embeddings == N_CLASSES + 1 and model.null_label == N_CLASSES


def test_fresh_residual_block_is_the_identity_and_trains(impl):
    """A fresh ResidualBlock returns h unchanged (fc2 starts at zero) but fc2 gets a gradient."""
    torch.manual_seed(0)
    block = impl.ResidualBlock(6, 4).double()
    h = torch.randn(3, 6, dtype=torch.float64)
    out = block(h, torch.randn(3, 4, dtype=torch.float64))
    torch.testing.assert_close(out, h, rtol=0, atol=0, msg="a fresh block must be the identity")
    out.pow(2).sum().backward()
    assert block.fc2.weight.grad.abs().sum() > 0, "fc2 must receive a gradient"


def test_drop_labels_rate_and_seed(impl):
    """drop_labels swaps a label for the null label where torch.rand(...) < p_uncond (seeded)."""
    labels = torch.arange(20_000) % 10
    got = impl.drop_labels(labels, 0.1, 10, torch.Generator().manual_seed(3))
    u = torch.rand(labels.shape, generator=torch.Generator().manual_seed(3))
    expected = torch.where(u < 0.1, torch.full_like(labels, 10), labels)
    torch.testing.assert_close(got, expected, msg="not the documented draw u < p_uncond")
    rate = float((got == 10).float().mean())
    sd = math.sqrt(0.1 * 0.9 / len(labels))
    assert abs(rate - 0.1) < 5 * sd, f"null rate {rate:.4f}, expected 0.1"
    kept = got != 10
    assert torch.equal(got[kept], labels[kept]), "kept labels must not change"
    assert torch.equal(impl.drop_labels(labels, 0.0, 10), labels), "p = 0 keeps every label"
    assert bool((impl.drop_labels(labels, 1.0, 10) == 10).all()), "p = 1 drops every label"
    with pytest.raises(ValueError):
        impl.drop_labels(labels, 1.5, 10)


def test_guidance_endpoints_are_the_plain_predictions(impl):
    """guided_eps with w = 0 is model(z, t, null); with w = 1 it is model(z, t, labels)."""
    model = _model(impl)
    z, t, labels = _inputs()
    null = torch.full_like(labels, model.null_label)
    with torch.no_grad():
        uncond, cond = model(z, t, null), model(z, t, labels)
        torch.testing.assert_close(impl.guided_eps(model, z, t, labels, 0.0), uncond)
        torch.testing.assert_close(impl.guided_eps(model, z, t, labels, 1.0), cond)
    assert (cond - uncond).abs().max() > 1e-3, "the label must change the prediction"


@settings(max_examples=8, deadline=None)
@given(w=st.floats(-2.0, 10.0, allow_nan=False))
def test_guidance_is_linear_in_w(impl, w):
    """guided_eps(w) = (1 - w) eps_uncond + w eps_cond, values and gradients for any w."""
    model = _model(impl)
    z, t, labels = _inputs(4, seed=2)
    z1, z2 = z.clone().requires_grad_(), z.clone().requires_grad_()
    ours = impl.guided_eps(model, z1, t, labels, w)
    null = torch.full_like(labels, model.null_label)
    direct = (1 - w) * model(z2, t, null) + w * model(z2, t, labels)
    torch.testing.assert_close(ours, direct, rtol=1e-9, atol=1e-9)
    ours.sum().backward()
    direct.sum().backward()
    torch.testing.assert_close(z1.grad, z2.grad, rtol=1e-9, atol=1e-9, msg="gradient wrt z_t")


@pytest.mark.parametrize("p_uncond", [0.0, 0.5, 1.0])
def test_cfg_loss_follows_the_recipe(impl, p_uncond):
    """cfg_loss = MSE(model(q_sample(z0, t, eps), t, dropped), eps), drawn in the given order."""
    model = _model(impl)
    z0, _, labels = _inputs(6, seed=4)
    sched = diffusion.linear_schedule(50)
    ours = impl.cfg_loss(model, z0, labels, sched, p_uncond, torch.Generator().manual_seed(5))
    g = torch.Generator().manual_seed(5)
    u = torch.rand(labels.shape, generator=g)
    kept = torch.where(u < p_uncond, torch.full_like(labels, N_CLASSES), labels)
    t = torch.randint(0, 50, (6,), generator=g)
    eps = torch.randn(z0.shape, generator=g, dtype=z0.dtype)
    ab = sched.alpha_bars[t].reshape(-1, 1, 1, 1)
    direct = (model(ab.sqrt() * z0 + (1 - ab).sqrt() * eps, t, kept) - eps).pow(2).mean()
    torch.testing.assert_close(ours, direct, rtol=1e-10, atol=1e-12)
    params = list(model.parameters())
    for a, b in zip(torch.autograd.grad(ours, params), torch.autograd.grad(direct, params)):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10, msg="parameter gradient")


def test_train_step_is_one_adam_step_on_the_loss(impl):
    """train_step returns cfg_loss before the update and moves the weights as one Adam step."""
    ours, twin = _model(impl), _model(impl)
    z0, _, labels = _inputs(8, seed=6)
    sched = diffusion.linear_schedule(40)
    opt = torch.optim.Adam(ours.parameters(), lr=1e-2)
    got = impl.train_step(ours, opt, z0, labels, sched, 0.2, torch.Generator().manual_seed(7))
    assert isinstance(got, float), "train_step returns the loss as a Python float"
    loss = impl.cfg_loss(twin, z0, labels, sched, 0.2, torch.Generator().manual_seed(7))
    twin_opt = torch.optim.Adam(twin.parameters(), lr=1e-2)
    twin_opt.zero_grad()
    loss.backward()
    twin_opt.step()
    assert got == pytest.approx(loss.item(), rel=1e-10)
    for a, b in zip(ours.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12, msg="weights after one step")


def _ddim_by_hand(eps_fn, z, sched, n_steps, clip=None):
    steps = torch.linspace(sched.T - 1, 0, n_steps, dtype=torch.float64).round().long().tolist()
    for step, prev in zip(steps, steps[1:] + [-1]):
        ab = sched.alpha_bars[step].item()
        ab_prev = sched.alpha_bars[prev].item() if prev >= 0 else 1.0
        eps = eps_fn(z, torch.full((len(z),), step))
        x0 = (z - math.sqrt(1 - ab) * eps) / math.sqrt(ab)
        if clip is not None:
            x0 = x0.clamp(-clip, clip)
            eps = (z - math.sqrt(ab) * x0) / math.sqrt(1 - ab)
        z = math.sqrt(ab_prev) * x0 + math.sqrt(1 - ab_prev) * eps
    return z


@pytest.mark.parametrize("clip", [None, 0.5])
def test_sample_latents_is_guided_ddim(impl, clip):
    """sample_latents = DDIM (eta 0) driven by guided_eps, x0 clamped to [-clip, clip] if given."""
    model = _model(impl, dtype=torch.float32)
    labels = torch.tensor([0, 1, 2, 1])
    sched = diffusion.linear_schedule(60)
    z_T = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(8))
    null = torch.full_like(labels, N_CLASSES)

    def eps_fn(z, t):
        u, c = model(z, t, null), model(z, t, labels)
        return u + 2.5 * (c - u)

    with torch.no_grad():
        got = impl.sample_latents(model, labels, sched, 6, 2.5, z_T=z_T, clip=clip)
        expected = _ddim_by_hand(eps_fn, z_T, sched, 6, clip)
        unclipped = _ddim_by_hand(eps_fn, z_T, sched, 6)
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)
        seeded = [
            impl.sample_latents(
                model, labels, sched, 6, 2.5, generator=torch.Generator().manual_seed(9)
            )
            for _ in range(2)
        ]
    if clip is not None:
        assert (expected - unclipped).abs().max() > 1e-2, "this clip should change the samples"
    assert seeded[0].shape == (4, *SHAPE) and torch.equal(*seeded), "same seed, same codes"


def test_generator_decodes_guided_samples_and_traces(impl):
    """LatentDiffusionGenerator = decoder(sample_latents(...)); it traces for any batch size."""
    model = _model(impl, dtype=torch.float32).eval()
    size = math.prod(SHAPE)
    torch.manual_seed(1)
    decoder = nn.Sequential(
        nn.Flatten(), nn.Linear(size, 784), nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28))
    )
    sched = diffusion.linear_schedule(30)
    gen = impl.LatentDiffusionGenerator(model, decoder, sched, 4, 3.0, clip=1.0).eval()
    noise, labels = torch.randn(5, size), torch.tensor([0, 1, 2, 0, 1])
    with torch.no_grad():
        out = gen(noise, labels)
        expected = decoder(
            impl.sample_latents(model, labels, sched, 4, 3.0, noise.reshape(5, *SHAPE), clip=1.0)
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(gen, (noise[:2], labels[:2]), check_trace=False)
        again = traced(noise, labels)
    assert out.shape == (5, 1, 28, 28), f"expected (5, 1, 28, 28), got {tuple(out.shape)}"
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(again, out, msg="the traced generator must handle any batch size")


def test_tiny_model_learns_class_codes_and_guidance_finds_them(impl):
    """Trained on three class codes, guided samples land nearest their own class's code."""
    torch.manual_seed(0)
    model = impl.LatentDenoiser(SHAPE, N_CLASSES, hidden=32, n_blocks=2, emb_dim=16)
    centres = 1.5 * torch.randn(N_CLASSES, *SHAPE, generator=torch.Generator().manual_seed(1))
    sched = diffusion.linear_schedule(100, 1e-3, 0.1)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(2)
    losses = []
    for _ in range(300):
        labels = torch.randint(0, N_CLASSES, (64,), generator=g)
        z0 = centres[labels] + 0.1 * torch.randn(64, *SHAPE, generator=g)
        losses.append(impl.train_step(model, opt, z0, labels, sched, 0.2, g))
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    assert last < 0.6 * first, f"loss {first:.3f} -> {last:.3f}: it did not learn"
    labels = torch.arange(30) % N_CLASSES
    with torch.no_grad():
        z = impl.sample_latents(
            model, labels, sched, 20, 3.0, generator=torch.Generator().manual_seed(3)
        )
    nearest = torch.cdist(z.flatten(1), centres.flatten(1)).argmin(1)
    hit = float((nearest == labels).float().mean())
    assert hit >= 0.9, f"only {hit:.2f} of guided samples land nearest their class code"
