"""Grader for transfer-learning: the backbone + head CNN, freezing, head replacement, the seeded
stratified 1% sampler, and the training/accuracy helpers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

REFERENCE = "airoad.neural.transfer_learning"


def _batch(n=24, classes=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g), torch.randint(0, classes, (n,), generator=g)


def _model(impl, n_classes=10):
    torch.manual_seed(0)
    return impl.SmallCNN(n_classes=n_classes, width=4, feature_dim=16)


def test_cnn_output_shape(impl):
    """SmallCNN maps (n, 1, 28, 28) to logits (n, n_classes) via head(backbone(x))."""
    model = _model(impl)
    X, _ = _batch()
    out = model(X)
    assert out.shape == (24, 10), f"logits shape {tuple(out.shape)}, expected (24, 10)"
    torch.testing.assert_close(out, model.head(model.backbone(X)))


def test_freeze_keeps_backbone_fixed_during_training(impl):
    """After freeze(backbone) a training step leaves the backbone unchanged with grad None."""
    model = _model(impl)
    assert impl.freeze(model.backbone) is model.backbone, "freeze should return the module"
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    head_before = model.head.weight.clone()
    X, y = _batch()
    impl.train_model(
        model, X, y, epochs=1, lr=1e-2, batch_size=8, generator=torch.Generator().manual_seed(0)
    )
    for name, p in model.backbone.named_parameters():
        assert not p.requires_grad, f"backbone parameter {name} still requires grad"
        assert p.grad is None, f"backbone parameter {name} got a gradient"
        assert torch.equal(p, before[name]), f"backbone parameter {name} changed"
    assert not torch.equal(model.head.weight, head_before), "the head should still train"
    assert impl.unfreeze(model.backbone) is model.backbone, "unfreeze should return the module"
    assert all(p.requires_grad for p in model.backbone.parameters()), "unfreeze must restore grads"


def test_replace_head_shape_and_keeps_backbone(impl):
    """replace_head gives a fresh Linear(feature_dim, n_classes) head, seeded, same backbone."""
    model = _model(impl)
    backbone_ids = [id(p) for p in model.backbone.parameters()]
    old = model.head
    out = impl.replace_head(model, 5, seed=3)
    assert out is model, "replace_head should return the model"
    assert isinstance(model.head, torch.nn.Linear) and model.head is not old
    assert tuple(model.head.weight.shape) == (5, 16), (
        f"head weight {tuple(model.head.weight.shape)}, expected (5, feature_dim=16)"
    )
    assert model(_batch()[0]).shape == (24, 5)
    assert [id(p) for p in model.backbone.parameters()] == backbone_ids, "backbone was replaced"
    bound = 1 / 16**0.5
    assert float(model.head.weight.detach().abs().max()) <= bound, (
        "init should be uniform in +-1/sqrt(fan_in)"
    )
    gen = torch.Generator().manual_seed(3)
    weight = torch.rand(5, 16, generator=gen) * 2 * bound - bound
    bias = torch.rand(5, generator=gen) * 2 * bound - bound
    torch.testing.assert_close(
        model.head.weight.detach(), weight, msg="weight: U(+-bound) from gen"
    )
    torch.testing.assert_close(model.head.bias.detach(), bias, msg="bias: drawn after the weight")
    twin = impl.replace_head(_model(impl), 5, seed=3)
    torch.testing.assert_close(twin.head.weight, model.head.weight, msg="same seed, same head")


def test_stratified_subset_keeps_class_proportions(impl):
    """stratified_subset takes round(fraction * n_c) of every class, unique sorted indices."""
    rng = np.random.default_rng(0)
    y = rng.choice(10, size=6000, p=np.linspace(1, 2, 10) / np.linspace(1, 2, 10).sum())
    idx = np.asarray(impl.stratified_subset(y, 0.01, seed=0))
    assert np.array_equal(idx, np.unique(idx)), "indices must be unique and sorted"
    assert idx.min() >= 0 and idx.max() < len(y)
    for c in range(10):
        want = max(1, round(0.01 * int((y == c).sum())))
        assert int((y[idx] == c).sum()) == want, (
            f"class {c}: {int((y[idx] == c).sum())} picked, want {want}"
        )
    tiny = np.asarray(impl.stratified_subset(np.array([0] * 50 + [1] * 3), 0.01, seed=0))
    assert sorted(set(np.array([0] * 50 + [1] * 3)[tiny])) == [0, 1], (
        "every class needs >= 1 example"
    )


def test_stratified_subset_is_seeded(impl):
    """The same seed gives the same subset, a different seed another; fractions outside (0, 1] raise."""
    y = np.repeat(np.arange(10), 500)
    a = np.asarray(impl.stratified_subset(y, 0.02, seed=1))
    b = np.asarray(impl.stratified_subset(y, 0.02, seed=1))
    c = np.asarray(impl.stratified_subset(y, 0.02, seed=2))
    assert np.array_equal(a, b), "same seed must give the same indices"
    assert not np.array_equal(a, c), "a different seed should give different indices"
    for bad in (0.0, 1.2):  # one example per class: 1.2 would not overflow a class
        with pytest.raises(ValueError):
            impl.stratified_subset(np.arange(10), bad)


def test_images_to_tensor(impl):
    """images_to_tensor turns uint8 (n, 28, 28) into float32 (n, 1, 28, 28) in [0, 1]."""
    X = np.full((3, 28, 28), 255, dtype=np.uint8)
    X[0] = 0
    t = impl.images_to_tensor(X)
    assert t.shape == (3, 1, 28, 28) and t.dtype == torch.float32, (
        f"got {tuple(t.shape)}, {t.dtype}"
    )
    assert float(t[0].max()) == 0.0 and float(t[1].min()) == 1.0


def test_training_lowers_loss_and_accuracy_is_argmax(impl):
    """train_model returns per-epoch losses that fall on a tiny batch; accuracy is argmax agreement."""
    model = _model(impl, 3)
    X, y = _batch(12, 3)
    seen = []
    losses = impl.train_model(
        model,
        X,
        y,
        epochs=40,
        lr=1e-2,
        batch_size=12,
        generator=torch.Generator().manual_seed(0),
        on_epoch=lambda e, m: seen.append(e),
    )
    assert len(losses) == 40 and seen == list(range(40)), "one loss and one callback per epoch"
    assert losses[-1] < 0.5 * losses[0], f"loss did not fall: {losses[0]:.3f} -> {losses[-1]:.3f}"
    with torch.no_grad():
        expected = float((model(X).argmax(1) == y).float().mean())
    assert impl.accuracy(model, X, y, batch_size=5) == pytest.approx(expected)


def test_train_model_equals_a_hand_written_adam_loop(impl):
    """train_model's epoch losses equal a plain torch Adam loop over randperm batches (size-weighted mean)."""
    X, y = _batch(20, 3, seed=4)
    model, twin = _model(impl, 3), _model(impl, 3)
    impl.freeze(model.backbone)
    ours = impl.train_model(
        model, X, y, epochs=2, lr=1e-2, batch_size=8, generator=torch.Generator().manual_seed(5)
    )
    twin.backbone.requires_grad_(False)
    opt = torch.optim.Adam(twin.head.parameters(), lr=1e-2)
    gen, theirs = torch.Generator().manual_seed(5), []
    for _ in range(2):
        order, total = torch.randperm(20, generator=gen), 0.0
        for s in range(0, 20, 8):
            idx = order[s : s + 8]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(twin(X[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        theirs.append(total / 20)
    np.testing.assert_allclose(ours, theirs, rtol=1e-6, err_msg="per-epoch mean losses")
    torch.testing.assert_close(model.head.weight, twin.head.weight, msg="head after training")
