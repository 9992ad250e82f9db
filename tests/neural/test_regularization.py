"""Grader for regularization: dropout, batch norm vs nn.BatchNorm1d/2d (train and eval: outputs,
running stats, gradients), L1/L2 penalties, early stopping, warm-up + cosine vs torch schedulers,
and gradient accumulation (4 x 16 == 64)."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

REFERENCE = "airoad.neural.regularization"

FAST = settings(max_examples=15, deadline=None)


# ---------------------------------------------------------------- dropout


def test_dropout_is_inverted_and_seeded(impl):
    """dropout zeroes about p of the entries, scales the rest by 1/(1-p), and repeats with the same seed."""
    x = torch.ones(200, 100, dtype=torch.float64)
    a = impl.dropout(x, 0.3, True, torch.Generator().manual_seed(0))
    b = impl.dropout(x, 0.3, True, torch.Generator().manual_seed(0))
    assert tuple(a.shape) == (200, 100), f"dropout returned {tuple(a.shape)}"
    assert torch.equal(a, b), "same Generator seed must give the same mask"
    kept = a != 0
    assert abs(1 - kept.double().mean().item() - 0.3) < 0.02, (
        "about 30% of entries should be dropped"
    )
    torch.testing.assert_close(
        a[kept], torch.full_like(a[kept], 1 / 0.7), msg="survivors must be scaled by 1/(1-p)"
    )
    assert abs(a.mean().item() - 1.0) < 0.03, "inverted dropout keeps the expected value"


def test_dropout_eval_edges_and_gradient(impl):
    """Eval mode and p=0 return x; p=1 returns zeros; the gradient is mask / (1 - p)."""
    x = torch.randn(50, 20, dtype=torch.float64, requires_grad=True)
    assert torch.equal(impl.dropout(x, 0.5, False), x), "dropout must be the identity in eval mode"
    assert torch.equal(impl.dropout(x, 0.0, True), x), "p=0 must be the identity"
    assert torch.count_nonzero(impl.dropout(x, 1.0, True)) == 0, "p=1 must drop everything"
    out = impl.dropout(x, 0.4, True, torch.Generator().manual_seed(1))
    out.sum().backward()
    expected = (out.detach() != 0).double() / 0.6
    torch.testing.assert_close(x.grad, expected, msg="d dropout / dx must be mask / (1 - p)")


def test_dropout_module_follows_train_eval(impl):
    """Dropout module drops in train() mode and is the identity in eval() mode."""
    layer = impl.Dropout(0.5, seed=0)
    x = torch.ones(1000)
    assert torch.count_nonzero(layer(x)) < 700, "Dropout(0.5) in train mode should drop about half"
    layer.eval()
    assert torch.equal(layer(x), x), "Dropout in eval mode must return x"


# ---------------------------------------------------------------- batch norm


def _paired(impl, shape, seed):
    torch.manual_seed(seed)
    c = shape[1]
    theirs = (nn.BatchNorm1d(c) if len(shape) == 2 else nn.BatchNorm2d(c)).double()
    ours = impl.BatchNorm(c).double()
    with torch.no_grad():
        theirs.weight.copy_(torch.randn(c))
        theirs.bias.copy_(torch.randn(c))
        ours.weight.copy_(theirs.weight)
        ours.bias.copy_(theirs.bias)
    return ours, theirs


@FAST
@given(
    shape=st.sampled_from([(8, 5), (32, 3), (4, 3, 5, 5), (2, 6, 3, 4)]), seed=st.integers(0, 1000)
)
def test_batchnorm_train_mode_matches_torch(impl, shape, seed):
    """BatchNorm in train mode equals nn.BatchNorm1d/2d: outputs, running stats, and gradients."""
    ours, theirs = _paired(impl, shape, seed)
    for step in range(3):  # several steps so the running averages compound
        x = (torch.randn(shape, dtype=torch.float64) * 2 + step).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        a, b = ours(x), theirs(x2)
        assert a.shape == b.shape, f"BatchNorm returned {tuple(a.shape)}, expected {tuple(b.shape)}"
        torch.testing.assert_close(a, b, msg="train-mode output differs from torch")
        g = torch.randn(shape, dtype=torch.float64)
        a.backward(g)
        b.backward(g)
        torch.testing.assert_close(x.grad, x2.grad, msg="dL/dx differs from torch")
    torch.testing.assert_close(
        ours.running_mean, theirs.running_mean, msg="running_mean differs (momentum 0.1)"
    )
    torch.testing.assert_close(
        ours.running_var,
        theirs.running_var,
        msg="running_var differs (update it with the UNBIASED batch variance)",
    )
    torch.testing.assert_close(ours.weight.grad, theirs.weight.grad, msg="dL/dgamma differs")
    torch.testing.assert_close(ours.bias.grad, theirs.bias.grad, msg="dL/dbeta differs")


def test_batchnorm_eval_mode_uses_running_stats(impl):
    """After a few training batches, eval-mode BatchNorm equals torch's (running stats, no update)."""
    for shape in [(16, 4), (6, 4, 5, 5)]:
        ours, theirs = _paired(impl, shape, 0)
        for _ in range(4):
            x = torch.randn(shape, dtype=torch.float64) * 3 + 1
            ours(x), theirs(x)
        ours.eval(), theirs.eval()
        before = ours.running_mean.clone()
        x = torch.randn(shape, dtype=torch.float64)
        torch.testing.assert_close(
            ours(x), theirs(x), msg=f"eval-mode output differs for shape {shape}"
        )
        assert torch.equal(ours.running_mean, before), "eval mode must not update the running stats"


def test_batchnorm_functional_gradcheck(impl):
    """batch_norm passes torch.autograd.gradcheck in train mode (x, gamma and beta)."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 2, 2, dtype=torch.float64, requires_grad=True)
    gamma = torch.randn(3, dtype=torch.float64, requires_grad=True)
    beta = torch.randn(3, dtype=torch.float64, requires_grad=True)

    def f(x, gamma, beta):
        return impl.batch_norm(
            x,
            gamma,
            beta,
            torch.zeros(3, dtype=torch.float64),
            torch.ones(3, dtype=torch.float64),
            True,
        )

    assert torch.autograd.gradcheck(f, (x, gamma, beta)), "batch_norm gradients fail gradcheck"


# ---------------------------------------------------------------- penalties, early stopping, lr


def test_l2_penalty_equals_sgd_weight_decay(impl):
    """An SGD step on loss + l2_penalty(lam) equals an SGD step with weight_decay=lam."""
    torch.manual_seed(0)
    x, y = torch.randn(32, 5), torch.randn(32, 1)
    a, b = nn.Linear(5, 1), nn.Linear(5, 1)
    b.load_state_dict(a.state_dict())
    opt_a, opt_b = (
        torch.optim.SGD(a.parameters(), lr=0.1),
        torch.optim.SGD(b.parameters(), lr=0.1, weight_decay=0.05),
    )
    loss = nn.functional.mse_loss(a(x), y) + impl.l2_penalty(a.parameters(), 0.05)
    loss.backward()
    opt_a.step()
    nn.functional.mse_loss(b(x), y).backward()
    opt_b.step()
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, msg="l2_penalty must be (lam / 2) * sum w^2")


def test_l1_penalty_value_and_gradient(impl):
    """l1_penalty = lam * sum |w| with gradient lam * sign(w)."""
    w = [
        torch.tensor([1.5, -2.0, 0.5], requires_grad=True),
        torch.tensor([[-1.0, 3.0]], requires_grad=True),
    ]
    pen = impl.l1_penalty(w, 0.1)
    assert pen.item() == pytest.approx(0.1 * 8.0), "l1_penalty value is wrong"
    pen.backward()
    torch.testing.assert_close(
        w[0].grad, 0.1 * torch.sign(w[0].detach()), msg="l1 gradient must be lam * sign(w)"
    )


def test_early_stopping(impl):
    """EarlyStopping stops after `patience` epochs without improvement and remembers the best."""
    stopper = impl.EarlyStopping(patience=2, min_delta=0.01)
    decisions = [stopper.step(v) for v in [1.0, 0.8, 0.795, 0.9, 0.7, 0.71, 0.705]]
    assert decisions == [False, False, False, True, False, False, True], (
        f"stop decisions {decisions}"
    )
    assert stopper.best == pytest.approx(0.7) and stopper.best_epoch == 4, "best value/epoch wrong"
    up = impl.EarlyStopping(patience=1, mode="max")
    assert [up.step(v) for v in [0.5, 0.6, 0.6]] == [False, False, True], (
        "mode='max' should track increases"
    )


@pytest.mark.parametrize(
    "warmup, total, min_lr, start", [(5, 20, 0.01, 0.1), (3, 10, 0.0, 0.25), (1, 8, 0.001, 0.5)]
)
def test_warmup_cosine_matches_torch_schedulers(impl, warmup, total, min_lr, start):
    """warmup_cosine_lr equals SequentialLR(LinearLR, CosineAnnealingLR) at every step."""
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.5)
    sched = torch.optim.lr_scheduler.SequentialLR(
        opt,
        [
            torch.optim.lr_scheduler.LinearLR(opt, start_factor=start, total_iters=warmup),
            torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total - warmup, eta_min=min_lr),
        ],
        milestones=[warmup],
    )
    for step in range(total):
        got = impl.warmup_cosine_lr(step, 0.5, warmup, total, min_lr, start)
        assert got == pytest.approx(opt.param_groups[0]["lr"], abs=1e-12), f"lr at step {step}"
        opt.step()
        sched.step()


# ---------------------------------------------------------------- gradient accumulation


def test_accumulation_4x16_equals_batch_64(impl):
    """accumulate_gradients with 4 micro-batches of 16 gives the same .grad as one batch of 64."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(10, 32), nn.Tanh(), nn.Linear(32, 3)).double()
    x, y = torch.randn(64, 10, dtype=torch.float64), torch.randint(0, 3, (64,))
    loss_fn = nn.functional.cross_entropy
    model.zero_grad()
    full = loss_fn(model(x), y)
    full.backward()
    expected = [p.grad.clone() for p in model.parameters()]
    for p in model.parameters():
        p.grad.fill_(123.0)  # stale gradients must be cleared by accumulate_gradients
    loss = impl.accumulate_gradients(model, loss_fn, x, y, 16)
    assert loss == pytest.approx(full.item(), rel=1e-12), (
        "returned loss should be the full-batch mean"
    )
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(
            p.grad, e, msg="accumulated gradient differs from the batch-64 gradient"
        )


def test_accumulation_with_uneven_chunks(impl):
    """A batch of 50 in chunks of 16 (16+16+16+2) still gives the full-batch gradient."""
    torch.manual_seed(1)
    model = nn.Linear(4, 2).double()
    x, y = torch.randn(50, 4, dtype=torch.float64), torch.randn(50, 2, dtype=torch.float64)
    model.zero_grad()
    nn.functional.mse_loss(model(x), y).backward()
    expected = model.weight.grad.clone()
    impl.accumulate_gradients(model, nn.functional.mse_loss, x, y, 16)
    torch.testing.assert_close(
        model.weight.grad, expected, msg="weight each chunk by len(chunk) / len(x)"
    )
