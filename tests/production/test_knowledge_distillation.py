"""Grader for knowledge-distillation: the temperature-scaled KL against a hand computation and
against torch.nn.functional.kl_div (both target conventions), values and gradients; the closed-
form gradient T (p_s - p_t) / B; the reduction to plain cross-entropy at alpha = 0; stability
for huge logits; and the training epoch against lstm-sentiment's train_epoch and a hand-made
SGD step. Every model is tiny and random."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from airoad.sequence import lstm_sentiment

REFERENCE = "airoad.production.knowledge_distillation"

FAST = settings(max_examples=25, deadline=None)
TIGHT = {"rtol": 1e-10, "atol": 1e-12}


def _logits(seed: int, rows: int = 5, classes: int = 3, scale: float = 3.0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return scale * torch.randn(rows, classes, generator=g, dtype=torch.float64)


def _torch_kl(s: torch.Tensor, t: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(p_t || p_s), batch mean, as torch computes it (student log-probs are `input`)."""
    log_ps = F.log_softmax(s / temperature, -1)
    log_pt = F.log_softmax(t / temperature, -1)
    return temperature**2 * F.kl_div(log_ps, log_pt, reduction="batchmean", log_target=True)


def test_soft_targets_are_tempered_softmax(impl):
    """soft_targets(z, T) is softmax(z / T) over the last axis; a larger T is flatter."""
    z = _logits(0)
    for t in (0.5, 1.0, 3.0):
        torch.testing.assert_close(impl.soft_targets(z, t), torch.softmax(z / t, -1), **TIGHT)
    cube = _logits(1, 6, 4).reshape(2, 3, 4)  # any leading axes: the classes are the last one
    torch.testing.assert_close(impl.soft_targets(cube, 2.0), torch.softmax(cube / 2, -1), **TIGHT)
    spread = [float(impl.soft_targets(z, t).max(-1).values.mean()) for t in (1.0, 4.0, 16.0)]
    assert spread[0] > spread[1] > spread[2], f"higher T should flatten: max probs {spread}"


def test_kl_matches_hand_computation(impl):
    """With s = [0, 0] and t = [ln 3, 0]: T=1 gives 3/4 ln(3/2) + 1/4 ln(1/2); T=2 is 4 x KL."""
    s = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    t = torch.tensor([[math.log(3.0), 0.0]], dtype=torch.float64)
    hand_t1 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    assert float(impl.distillation_kl(s, t, 1.0)) == pytest.approx(hand_t1, rel=1e-12)
    p = math.sqrt(3.0) / (1.0 + math.sqrt(3.0))  # softmax([ln 3 / 2, 0]) = [sqrt 3, 1] / (..)
    hand_t2 = 4.0 * (p * math.log(p / 0.5) + (1 - p) * math.log((1 - p) / 0.5))
    assert float(impl.distillation_kl(s, t, 2.0)) == pytest.approx(hand_t2, rel=1e-12)
    batch = torch.cat([s, t]), torch.cat([t, t])  # second row matches: the batch mean halves it
    assert float(impl.distillation_kl(*batch, 1.0)) == pytest.approx(hand_t1 / 2, rel=1e-12)


@FAST
@given(st.integers(0, 10_000), st.floats(0.3, 10.0), st.integers(1, 6), st.integers(2, 5))
def test_kl_matches_torch_kl_div_values_and_gradients(impl, seed, temperature, rows, classes):
    """Equals T^2 * F.kl_div(log p_s, log p_t, batchmean, log_target=True), values and grads."""
    s = _logits(seed, rows, classes).requires_grad_()
    t = _logits(seed + 1, rows, classes)
    ours = impl.distillation_kl(s, t, temperature)
    lib = _torch_kl(s, t, temperature)
    torch.testing.assert_close(ours, lib, **TIGHT, msg="KL(p_teacher || p_student) differs")
    probs = F.kl_div(  # the other convention: a probability target with log_target=False
        F.log_softmax(s / temperature, -1), torch.softmax(t / temperature, -1), reduction="sum"
    )
    torch.testing.assert_close(ours, temperature**2 * probs / rows, **TIGHT)
    (g_ours,) = torch.autograd.grad(ours, s)
    (g_lib,) = torch.autograd.grad(_torch_kl(s, t, temperature), s)
    torch.testing.assert_close(g_ours, g_lib, **TIGHT, msg="gradient wrt student logits differs")


def test_kl_direction_is_teacher_first(impl):
    """The KL is KL(teacher || student), not KL(student || teacher): they differ here."""
    s = torch.tensor([[2.0, 0.0, -1.0]], dtype=torch.float64)
    t = torch.tensor([[0.0, 3.0, 0.0]], dtype=torch.float64)
    forward, reverse = _torch_kl(s, t, 1.0), _torch_kl(t, s, 1.0)
    assert abs(float(forward - reverse)) > 0.1
    assert float(impl.distillation_kl(s, t, 1.0)) == pytest.approx(float(forward), rel=1e-12)


@FAST
@given(st.integers(0, 10_000), st.floats(0.3, 10.0), st.integers(1, 6))
def test_closed_form_gradient(impl, seed, temperature, rows):
    """distillation_kl_grad = autograd of distillation_kl = T (softmax(s/T) - softmax(t/T)) / B."""
    s = _logits(seed, rows).requires_grad_()
    t = _logits(seed + 7, rows)
    (auto,) = torch.autograd.grad(impl.distillation_kl(s, t, temperature), s)
    closed = impl.distillation_kl_grad(s.detach(), t, temperature)
    formula = temperature * (
        torch.softmax(s / temperature, -1) - torch.softmax(t / temperature, -1)
    )
    torch.testing.assert_close(closed, formula.detach() / rows, **TIGHT)
    torch.testing.assert_close(auto, closed, **TIGHT, msg="autograd disagrees with T(p_s-p_t)/B")


@FAST
@given(st.integers(0, 10_000), st.floats(0.3, 10.0), st.floats(-50.0, 50.0))
def test_soft_loss_nonnegative_zero_at_teacher_and_shift_invariant(impl, seed, temperature, c):
    """alpha=1: loss >= 0, exactly 0 when student == teacher, unchanged by adding c to a row."""
    s, t = _logits(seed), _logits(seed + 3)
    y = torch.zeros(len(s), dtype=torch.long)
    assert float(impl.distillation_loss(s, t, y, temperature, 1.0)) >= -1e-12
    assert float(impl.distillation_loss(t, t, y, temperature, 1.0)) == pytest.approx(0, abs=1e-12)
    shifted = impl.distillation_kl(s + c, t, temperature)
    torch.testing.assert_close(shifted, impl.distillation_kl(s, t, temperature), **TIGHT)


def test_loss_is_cross_entropy_at_alpha_zero(impl):
    """T=1, alpha=0 (and alpha=0 at any T) is F.cross_entropy: the same value and gradient."""
    y = torch.tensor([0, 2, 1, 1, 0])
    for temperature in (1.0, 5.0):
        s = _logits(4).requires_grad_()
        ours = impl.distillation_loss(s, _logits(5), y, temperature, 0.0)
        lib = F.cross_entropy(s, y)
        torch.testing.assert_close(ours, lib, **TIGHT)
        g = torch.autograd.grad(ours, s)[0]
        torch.testing.assert_close(g, torch.autograd.grad(lib, s)[0], **TIGHT)


@FAST
@given(st.integers(0, 10_000), st.floats(0.3, 10.0), st.floats(0.0, 1.0))
def test_loss_blends_soft_and_hard_terms(impl, seed, temperature, alpha):
    """alpha T^2 KL(p_t || p_s) + (1 - alpha) CE(s, y), values and gradients, against torch."""
    s = _logits(seed).requires_grad_()
    t = _logits(seed + 1)
    y = torch.randint(0, 3, (5,), generator=torch.Generator().manual_seed(seed))
    ours = impl.distillation_loss(s, t, y, temperature, alpha)
    lib = alpha * _torch_kl(s, t, temperature) + (1 - alpha) * F.cross_entropy(s, y)
    torch.testing.assert_close(ours, lib, **TIGHT)
    g = torch.autograd.grad(ours, s)[0]
    torch.testing.assert_close(g, torch.autograd.grad(lib, s)[0], **TIGHT)


def test_loss_gradcheck_in_float64(impl):
    """Finite differences agree with the backward pass of the full loss (gradcheck)."""
    t, y = _logits(1, 3, 4), torch.tensor([3, 0, 1])
    s = _logits(2, 3, 4).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: impl.distillation_loss(x, t, y, 2.5, 0.7), (s,))


def test_huge_logits_stay_finite(impl):
    """Logits of +-1e4 in float32 give a finite loss and gradient equal to the float64 value."""
    s = torch.tensor([[1e4, -1e4, 0.0], [-1e4, 0.0, 1e4]]).requires_grad_()
    t = torch.tensor([[-1e4, 1e4, 0.0], [0.0, 0.0, 1e4]])
    y = torch.tensor([0, 2])
    ours = impl.distillation_loss(s, t, y, 2.0, 0.5)
    assert torch.isfinite(ours), f"loss is {ours}: use log_softmax, not log(softmax)"
    (g,) = torch.autograd.grad(ours, s)
    assert torch.isfinite(g).all()
    s64 = s.detach().double().requires_grad_()
    lib = 0.5 * _torch_kl(s64, t.double(), 2.0) + 0.5 * F.cross_entropy(s64, y)
    torch.testing.assert_close(ours.double(), lib, rtol=1e-5, atol=1e-2)
    torch.testing.assert_close(g.double(), torch.autograd.grad(lib, s64)[0], rtol=1e-5, atol=1e-6)


def test_bad_arguments_raise_value_error(impl):
    """T <= 0, alpha outside [0, 1], mismatched shapes and NaN teacher logits raise ValueError."""
    s, t, y = _logits(0), _logits(1), torch.zeros(5, dtype=torch.long)
    calls = [
        lambda: impl.soft_targets(s, 0.0),
        lambda: impl.distillation_kl(s, t, -1.0),
        lambda: impl.distillation_kl_grad(s, t, 0.0),
        lambda: impl.distillation_loss(s, t, y, 2.0, 1.5),
        lambda: impl.distillation_loss(s, t, y, 2.0, -0.1),
        lambda: impl.distillation_kl(s, t[:, :2], 2.0),
        lambda: impl.distillation_kl(s, torch.full_like(t, float("nan")), 2.0),
    ]
    for call in calls:
        with pytest.raises(ValueError):
            call()


def _tiny_lstm(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return lstm_sentiment.LSTMClassifier(vocab_size=20, embed_dim=4, hidden_size=5, dropout=0.0)


def _tiny_reviews(n: int = 13):
    g = torch.Generator().manual_seed(3)
    lengths = torch.randint(1, 7, (n,), generator=g)
    ids = torch.randint(1, 20, (n, 6), generator=g) * (torch.arange(6) < lengths[:, None])
    return ids, lengths, torch.randint(0, 2, (n,), generator=g), torch.randn(n, 2, generator=g)


def test_epoch_at_alpha_zero_is_lstm_train_epoch(impl):
    """alpha=0 trains exactly like lstm-sentiment's train_epoch: same losses, same weights."""
    ids, lengths, y, teacher = _tiny_reviews()
    ref_model, model = _tiny_lstm(0), _tiny_lstm(0)
    ref_opt = torch.optim.Adam(ref_model.parameters(), lr=0.05)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    g_ref, g = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
    for _ in range(3):
        want = lstm_sentiment.train_epoch(ref_model, ref_opt, ids, lengths, y, 4, g_ref, 0.5)
        got = impl.distill_epoch(model, opt, (ids, lengths), y, teacher, 1.0, 0.0, 4, g, 0.5)
        assert got == pytest.approx(want, rel=1e-6), "epoch loss differs from train_epoch's"
    for (name, a), b in zip(ref_model.state_dict().items(), model.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6, msg=f"{name} differs")


def test_epoch_step_matches_hand_sgd_step(impl):
    """One full batch: the update is w - lr * grad of torch's KL + CE loss; mean loss returned."""
    g = torch.Generator().manual_seed(0)
    x, teacher = torch.randn(8, 3, generator=g), torch.randn(8, 2, generator=g) * 3
    y = torch.randint(0, 2, (8,), generator=g)
    torch.manual_seed(1)
    model, hand = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    hand.load_state_dict(model.state_dict())
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    got = impl.distill_epoch(model, opt, (x,), y, teacher, 3.0, 0.8, 8, g, clip=1e9)
    lib = 0.8 * _torch_kl(hand(x), teacher, 3.0) + 0.2 * F.cross_entropy(hand(x), y)
    grads = torch.autograd.grad(lib, list(hand.parameters()))
    assert got == pytest.approx(float(lib.detach()), rel=1e-6)
    for p, w, grad in zip(model.parameters(), hand.parameters(), grads):
        torch.testing.assert_close(p.detach(), (w - 0.5 * grad).detach(), rtol=1e-6, atol=1e-7)


def test_epoch_mean_weights_batches_by_size_and_clips(impl):
    """The returned loss is the example-weighted mean over batches; the gradient is clipped."""
    g = torch.Generator().manual_seed(2)
    x, teacher = torch.randn(7, 3, generator=g), torch.randn(7, 2, generator=g)
    y = torch.randint(0, 2, (7,), generator=g)
    model = torch.nn.Linear(3, 2)
    before = [p.detach().clone() for p in model.parameters()]
    order = torch.randperm(7, generator=torch.Generator().manual_seed(5))
    got = impl.distill_epoch(
        model, torch.optim.SGD(model.parameters(), lr=0.0), (x,), y, teacher, 2.0, 0.5, 3,
        torch.Generator().manual_seed(5),
    )  # fmt: skip
    with torch.no_grad():
        want = sum(
            len(idx) * float(0.5 * _torch_kl(model(x[idx]), teacher[idx], 2.0)
                             + 0.5 * F.cross_entropy(model(x[idx]), y[idx]))
            for idx in order.split(3)
        ) / 7  # fmt: skip
    assert got == pytest.approx(want, rel=1e-6), "not the size-weighted mean of batch losses"
    clipped = torch.nn.Linear(3, 2)
    clipped.load_state_dict({"weight": before[0], "bias": before[1]})
    impl.distill_epoch(
        clipped, torch.optim.SGD(clipped.parameters(), lr=1.0), (x,), y, teacher * 50, 2.0, 1.0,
        7, torch.Generator(), clip=0.01,
    )  # fmt: skip
    step = torch.cat([(p.detach() - b).flatten() for p, b in zip(clipped.parameters(), before)])
    assert float(step.norm()) == pytest.approx(0.01, rel=1e-4), "gradient norm was not clipped"


def test_epoch_without_teacher(impl):
    """teacher_logits=None trains on labels; no teacher with alpha > 0, or no examples, errs."""
    ids, lengths, y, teacher = _tiny_reviews()
    a, b = _tiny_lstm(2), _tiny_lstm(2)
    la = impl.distill_epoch(a, torch.optim.SGD(a.parameters(), lr=0.1), (ids, lengths), y, None,
                            4.0, 0.0, 5, torch.Generator().manual_seed(1))  # fmt: skip
    lb = impl.distill_epoch(b, torch.optim.SGD(b.parameters(), lr=0.1), (ids, lengths), y,
                            teacher, 4.0, 0.0, 5, torch.Generator().manual_seed(1))  # fmt: skip
    assert la == pytest.approx(lb, rel=1e-6)
    with pytest.raises(ValueError):
        impl.distill_epoch(a, torch.optim.SGD(a.parameters(), lr=0.1), (ids, lengths), y, None,
                           4.0, 0.5, 5)  # fmt: skip
    with pytest.raises(ValueError):
        impl.distill_epoch(a, torch.optim.SGD(a.parameters(), lr=0.1), (ids, lengths), y,
                           teacher[:-1], 4.0, 0.5, 5)  # fmt: skip
    with pytest.raises(ValueError):
        impl.distill_epoch(a, torch.optim.SGD(a.parameters(), lr=0.1), (ids[:0], lengths[:0]),
                           y[:0], None, 1.0, 0.0)  # fmt: skip


def test_distilling_moves_student_toward_teacher(impl):
    """A few alpha=1 epochs lower the KL to the teacher and raise argmax agreement."""
    g = torch.Generator().manual_seed(4)
    x = torch.randn(64, 4, generator=g)
    teacher = x @ torch.randn(4, 3, generator=g) * 2
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    y = teacher.argmax(-1)
    before = float(_torch_kl(model(x), teacher, 2.0).detach())
    agree_before = impl.agreement(model(x), teacher)
    for _ in range(30):
        impl.distill_epoch(model, opt, (x,), y, teacher, 2.0, 1.0, 16, g)
    after = float(_torch_kl(model(x), teacher, 2.0).detach())
    assert after < 0.2 * before, f"KL {before:.3f} -> {after:.3f}"
    assert impl.agreement(model(x), teacher) > max(agree_before, 0.9)


def test_predict_logits_and_agreement(impl):
    """predict_logits equals one eval-mode forward in any batch size; agreement is argmax match."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Dropout(0.9))
    x = torch.randn(7, 3, generator=torch.Generator().manual_seed(6))
    model.eval()
    want = model[0](x).detach()
    model.train()
    torch.testing.assert_close(impl.predict_logits(model, (x,), batch_size=3), want)
    assert not model.training
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 1.0], [0.0, 3.0]])
    b = torch.tensor([[3.0, 0.0], [1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    assert impl.agreement(a, b) == pytest.approx(0.5)
    assert impl.agreement(a, a) == 1.0
    with pytest.raises(ValueError):
        impl.agreement(a[:0], b[:0])
