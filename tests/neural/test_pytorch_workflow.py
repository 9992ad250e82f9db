"""Grader for pytorch-workflow: the Dataset, the training loop, evaluation, checkpoints that
resume the same loss curve, and a TorchScript export that computes what the model computes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from airoad.data import load

REFERENCE = "airoad.neural.pytorch_workflow"


@pytest.fixture(scope="module")
def fashion():
    data = load("fashion-mnist")
    return data["X_train"][:384], np.asarray(data["y_train"][:384], dtype=np.int64)


def _fresh(impl, dataset, seed=0):
    """Model, optimizer and shuffling loader built from scratch with fixed seeds."""
    torch.manual_seed(seed)
    model = impl.SmallNet(hidden=32, dropout=0.3)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    return model, optimizer, impl.make_loader(dataset, batch_size=64, shuffle=True, seed=seed)


def test_dataset_items_are_standardised_tensors(impl, fashion):
    """ImageDataset has len n and item i = ((pixels/255 - mean)/std as float32 (1, 28, 28), int64 label)."""
    X, y = fashion
    ds = impl.ImageDataset(X, y, mean=0.5, std=0.25)
    assert len(ds) == 384, f"len(dataset) = {len(ds)}, expected 384"
    x, label = ds[7]
    assert tuple(x.shape) == (1, 28, 28), (
        f"item image has shape {tuple(x.shape)}, expected (1, 28, 28)"
    )
    assert x.dtype == torch.float32 and label.dtype == torch.int64, (
        "expected float32 image, int64 label"
    )
    np.testing.assert_allclose(
        x[0].numpy(),
        (X[7] / 255.0 - 0.5) / 0.25,
        atol=1e-6,
        err_msg="image is not (pixel / 255 - mean) / std",
    )
    assert int(label) == y[7], "wrong label"


def test_loader_batches_and_reproducible_shuffle(impl, fashion):
    """make_loader yields (64, 1, 28, 28) batches, shuffled the same way for the same seed."""
    ds = impl.ImageDataset(*fashion)
    first = [y for _, y in impl.make_loader(ds, 64, shuffle=True, seed=3)]
    again = [y for _, y in impl.make_loader(ds, 64, shuffle=True, seed=3)]
    x, _ = next(iter(impl.make_loader(ds, 64, shuffle=False)))
    assert tuple(x.shape) == (64, 1, 28, 28), (
        f"batch shape {tuple(x.shape)}, expected (64, 1, 28, 28)"
    )
    assert len(first) == 6 and all(torch.equal(a, b) for a, b in zip(first, again)), (
        "the same seed must give the same shuffle"
    )
    assert not torch.equal(torch.cat(first), torch.as_tensor(fashion[1])), (
        "shuffle=True did not shuffle"
    )


def test_model_output_shape(impl):
    """SmallNet maps (n, 1, 28, 28) images to (n, 10) logits."""
    torch.manual_seed(0)
    out = impl.SmallNet(hidden=32).eval()(torch.randn(5, 1, 28, 28))
    assert tuple(out.shape) == (5, 10), f"logits shape {tuple(out.shape)}, expected (5, 10)"


def test_train_epoch_equals_a_hand_written_loop(impl, fashion):
    """train_epoch zeroes grads, backpropagates cross-entropy and steps once per batch, in train mode."""
    ds = impl.ImageDataset(*fashion)
    model, optimizer, loader = _fresh(impl, ds)
    model.eval()  # train_epoch must switch dropout back on
    losses = impl.train_epoch(model, loader, optimizer)
    twin, twin_opt, twin_loader = _fresh(impl, ds)
    twin.train()
    want = []
    for x, y in twin_loader:
        twin_opt.zero_grad()
        loss = F.cross_entropy(twin(x), y)
        loss.backward()
        twin_opt.step()
        want.append(loss.item())
    assert len(losses) == len(want), f"{len(losses)} losses, expected one per batch ({len(want)})"
    np.testing.assert_allclose(
        losses, want, rtol=1e-5, err_msg="batch losses differ from the hand loop"
    )
    for p, q in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(p, q, msg="parameters after one epoch differ from the hand loop")


def test_evaluate_returns_mean_loss_and_accuracy(impl, fashion):
    """evaluate gives the mean per-example cross-entropy and accuracy, in eval mode, without grads."""
    ds = impl.ImageDataset(*fashion)
    torch.manual_seed(1)
    model = impl.SmallNet(hidden=32, dropout=0.5)
    loss, acc = impl.evaluate(model, impl.make_loader(ds, 100, shuffle=False))
    model.eval()
    with torch.no_grad():
        logits = model(torch.stack([ds[i][0] for i in range(len(ds))]))
    labels = torch.as_tensor(fashion[1])
    assert abs(loss - F.cross_entropy(logits, labels).item()) < 1e-5, (
        "loss is not the per-example mean"
    )
    assert abs(acc - (logits.argmax(1) == labels).double().mean().item()) < 1e-12, "wrong accuracy"


def test_resumed_run_continues_the_same_loss_curve(impl, fashion, tmp_path):
    """2 epochs in one go == 1 epoch, save_checkpoint, load_checkpoint into fresh objects, 1 more epoch."""
    ds = impl.ImageDataset(*fashion)
    whole, whole_opt, whole_loader = _fresh(impl, ds)
    straight = [
        *impl.train_epoch(whole, whole_loader, whole_opt),
        *impl.train_epoch(whole, whole_loader, whole_opt),
    ]

    model, optimizer, loader = _fresh(impl, ds)
    first = impl.train_epoch(model, loader, optimizer)
    path = tmp_path / "ckpt.pt"
    impl.save_checkpoint(path, model, optimizer, 1, loader.generator, first)
    torch.manual_seed(12345)  # scramble the global RNG: the checkpoint must restore it
    model2, optimizer2, loader2 = _fresh(impl, ds, seed=99)
    epoch, history = impl.load_checkpoint(path, model2, optimizer2, loader2.generator)
    assert epoch == 1, f"load_checkpoint returned epoch {epoch}, expected 1"
    np.testing.assert_allclose(history, first, err_msg="the loss history was not restored")
    resumed = history + impl.train_epoch(model2, loader2, optimizer2)
    np.testing.assert_allclose(
        resumed,
        straight,
        rtol=1e-6,
        err_msg="the resumed loss curve differs from the uninterrupted one "
        "(save optimizer state and both RNG states)",
    )
    for p, q in zip(whole.parameters(), model2.parameters()):
        torch.testing.assert_close(p, q, msg="final weights differ after resuming")


def test_torchscript_export_gives_the_same_outputs(impl, fashion, tmp_path):
    """export_torchscript saves and returns a module that runs to the model's eval-mode logits."""
    torch.manual_seed(2)
    model = impl.SmallNet(hidden=32, dropout=0.5)
    path = tmp_path / "model.pt"
    scripted = impl.export_torchscript(model, path)
    assert path.exists(), "export_torchscript did not write the file"
    loaded = torch.jit.load(str(path))
    x = torch.stack([impl.ImageDataset(*fashion)[i][0] for i in range(16)])
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(x), model(x), msg="TorchScript outputs differ from the model's"
        )
        torch.testing.assert_close(
            loaded(x), loaded(x), msg="the exported module must be in eval mode"
        )
        torch.testing.assert_close(
            scripted(x), model(x), msg="export_torchscript must return the compiled module"
        )


def test_default_standardisation_uses_the_training_set_statistics(impl):
    """With default mean/std, ImageDataset standardises by the pixel mean and std of all of X_train."""
    X = load("fashion-mnist")["X_train"]
    pixels = X / 255.0
    mean, std = pixels.mean(), pixels.std()
    ds = impl.ImageDataset(X[:50], np.zeros(50, dtype=np.int64))
    for i in (0, 17, 49):
        np.testing.assert_allclose(
            ds[i][0][0].numpy(),
            (pixels[i] - mean) / std,
            atol=1e-3,
            err_msg="default standardisation is not (pixel/255 - mean of X_train) / its std",
        )


class _RunsCode:
    """A pickled object that would call a function when unpickled without weights_only."""

    def __reduce__(self):
        return (print, ("arbitrary code ran while loading a checkpoint",))


def test_load_checkpoint_refuses_pickled_code(impl, tmp_path):
    """load_checkpoint loads plain tensors only (torch.load weights_only=True): pickled code is refused."""
    torch.manual_seed(0)
    model = impl.SmallNet(hidden=8, dropout=0.0)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    path = tmp_path / "ckpt.pt"
    impl.save_checkpoint(path, model, optimizer, 1, torch.Generator().manual_seed(0), [1.0])
    state = torch.load(path, weights_only=True)
    state["history"] = [_RunsCode()]
    torch.save(state, path)
    with pytest.raises(pickle.UnpicklingError):
        impl.load_checkpoint(path, model, optimizer, torch.Generator())
