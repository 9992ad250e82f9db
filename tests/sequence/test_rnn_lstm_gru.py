"""Grader for rnn-lstm-gru: our RNN, LSTM and GRU cells and the unrolled, stacked, bidirectional
Recurrent against torch.nn with copied weights, in float64: outputs, final states and gradients
with respect to the inputs, the initial state and every parameter."""

from __future__ import annotations

import pytest
import torch
from torch import nn

REFERENCE = "airoad.sequence.rnn_lstm_gru"

TOL = {"rtol": 1e-10, "atol": 1e-12}
T, B, IN, H = 7, 3, 4, 5

TORCH_CELLS = {"rnn": nn.RNNCell, "lstm": nn.LSTMCell, "gru": nn.GRUCell}
TORCH_NETS = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}


def _ours_cell(impl, mode: str, **kw):
    return {"rnn": impl.RNNCell, "lstm": impl.LSTMCell, "gru": impl.GRUCell}[mode](IN, H, **kw)


def _close(ours, theirs, what: str):
    assert ours.shape == theirs.shape, (
        f"{what}: shape {tuple(ours.shape)}, expected {tuple(theirs.shape)}"
    )
    torch.testing.assert_close(ours, theirs, **TOL, msg=lambda m: f"{what} differs from torch: {m}")


def _flat(out) -> torch.Tensor:
    """A scalar that touches every output, with unequal weights so gradients are not symmetric."""
    parts = out if isinstance(out, tuple) else (out,)
    return sum(
        (
            (p * torch.linspace(0.5, 1.5, p.numel(), dtype=p.dtype).reshape(p.shape)).sum()
            for p in parts
        ),
        torch.zeros((), dtype=torch.float64),
    )


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_cell_parameters_have_torch_names_and_shapes(impl, mode):
    """Each cell owns weight_ih (G*H, in), weight_hh (G*H, H), bias_ih, bias_hh (G*H,) like torch."""
    ours = dict(_ours_cell(impl, mode).named_parameters())
    theirs = dict(TORCH_CELLS[mode](IN, H).named_parameters())
    assert set(ours) == set(theirs), (
        f"{mode} cell parameters {sorted(ours)}, expected {sorted(theirs)}"
    )
    for name, p in theirs.items():
        assert ours[name].shape == p.shape, (
            f"{mode}.{name} has shape {tuple(ours[name].shape)}, expected {tuple(p.shape)}"
        )
    no_bias = dict(_ours_cell(impl, mode, bias=False).named_parameters())
    assert set(no_bias) == {"weight_ih", "weight_hh"}, (
        "bias=False must leave out bias_ih and bias_hh"
    )


@pytest.mark.parametrize(
    "mode,kw", [("rnn", {}), ("rnn", {"nonlinearity": "relu"}), ("lstm", {}), ("gru", {})]
)
def test_cell_step_values_and_gradients_match_torch(impl, mode, kw):
    """One cell step equals torch's cell (copied weights), and so do all gradients."""
    torch.manual_seed(0)
    theirs = TORCH_CELLS[mode](IN, H, **kw).double()
    ours = impl.copy_weights_from(_ours_cell(impl, mode, **kw).double(), theirs)
    x = torch.randn(B, IN, dtype=torch.float64)
    state = torch.randn(B, H, dtype=torch.float64)
    if mode == "lstm":
        state = (state, torch.randn(B, H, dtype=torch.float64))
    results = []
    for model in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        si = (
            tuple(s.clone().requires_grad_(True) for s in state)
            if mode == "lstm"
            else state.clone().requires_grad_(True)
        )
        out = model(xi, si)
        inputs = [xi, *(si if mode == "lstm" else (si,)), *model.parameters()]
        results.append((out, torch.autograd.grad(_flat(out), inputs)))
    (o_out, o_grads), (t_out, t_grads) = results
    for a, b in zip(o_out if mode == "lstm" else (o_out,), t_out if mode == "lstm" else (t_out,)):
        _close(a, b, f"{mode} cell output")
    names = [
        "x",
        *(["h", "c"] if mode == "lstm" else ["h"]),
        *(n for n, _ in theirs.named_parameters()),
    ]
    for name, a, b in zip(names, o_grads, t_grads):
        _close(a, b, f"{mode} cell gradient w.r.t. {name}")


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_cell_starts_from_zeros_and_passes_gradcheck(impl, mode):
    """state=None means a zero state; the cell passes torch.autograd.gradcheck (finite differences)."""
    torch.manual_seed(1)
    cell = _ours_cell(impl, mode).double()
    x = torch.randn(2, IN, dtype=torch.float64, requires_grad=True)
    zeros = torch.zeros(2, H, dtype=torch.float64)
    explicit = cell(x, (zeros, zeros) if mode == "lstm" else zeros)
    implicit = cell(x)
    for a, b in zip(
        implicit if mode == "lstm" else (implicit,), explicit if mode == "lstm" else (explicit,)
    ):
        _close(a, b, f"{mode} cell with state=None vs explicit zeros")
    assert torch.autograd.gradcheck(lambda inp: cell(inp), (x,)), f"{mode} cell fails gradcheck"


def test_run_sequence_matches_torch_rnn_forward_and_reverse(impl):
    """run_sequence unrolls a cell in time order; reverse=True reads T-1..0 and keeps positions."""
    torch.manual_seed(2)
    theirs = nn.GRU(IN, H, bidirectional=True).double()
    fwd = impl.copy_weights_from(impl.GRUCell(IN, H).double(), _cell_view(theirs, ""))
    bwd = impl.copy_weights_from(impl.GRUCell(IN, H).double(), _cell_view(theirs, "_reverse"))
    x = torch.randn(T, B, IN, dtype=torch.float64)
    expected, h_n = theirs(x)
    out_f, last_f = impl.run_sequence(fwd, x)
    out_b, last_b = impl.run_sequence(bwd, x, reverse=True)
    assert out_f.shape == (T, B, H), (
        f"run_sequence returned {tuple(out_f.shape)}, expected (T, B, H)"
    )
    _close(out_f, expected[..., :H], "forward outputs")
    _close(out_b, expected[..., H:], "reverse outputs (position t = state after reading x[t])")
    _close(last_f, h_n[0], "forward final state")
    _close(last_b, h_n[1], "reverse final state (after reading x[0])")


def _cell_view(net: nn.Module, suffix: str, layer: int = 0) -> nn.Module:
    """An object with weight_ih, ... attributes taken from one layer/direction of a torch net."""
    view = nn.Module()
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(view, name, getattr(net, f"{name}_l{layer}{suffix}"))
    return view


CASES = [
    ("rnn", 1, False, False),
    ("rnn", 2, True, True),
    ("lstm", 1, False, True),
    ("lstm", 2, True, False),
    ("gru", 1, True, False),
    ("gru", 2, False, True),
]


@pytest.mark.parametrize("mode,layers,bidirectional,batch_first", CASES)
def test_recurrent_matches_torch_with_gradients(impl, mode, layers, bidirectional, batch_first):
    """Recurrent equals torch.nn.RNN/LSTM/GRU: outputs, final states, grads w.r.t. x, h0 and weights."""
    torch.manual_seed(3)
    kw = {"num_layers": layers, "bidirectional": bidirectional, "batch_first": batch_first}
    theirs = TORCH_NETS[mode](IN, H, **kw).double()
    ours = impl.copy_weights_from(impl.Recurrent(mode, IN, H, **kw).double(), theirs)
    d = 2 if bidirectional else 1
    x = torch.randn(*((B, T) if batch_first else (T, B)), IN, dtype=torch.float64)
    h0 = torch.randn(layers * d, B, H, dtype=torch.float64)
    state = (h0, torch.randn_like(h0)) if mode == "lstm" else h0
    results = []
    for model in (ours, theirs):
        xi = x.clone().requires_grad_(True)
        si = (
            tuple(s.clone().requires_grad_(True) for s in state)
            if mode == "lstm"
            else state.clone().requires_grad_(True)
        )
        out, final = model(xi, si)
        params = dict(model.named_parameters())
        results.append((out, final, xi, si, params))
    o_out, o_fin, o_x, o_s, o_params = results[0]
    t_out, t_fin, t_x, t_s, t_params = results[1]
    _close(o_out, t_out, f"{mode} output")
    for a, b, name in zip(
        o_fin if mode == "lstm" else (o_fin,), t_fin if mode == "lstm" else (t_fin,), ("h_n", "c_n")
    ):
        _close(a, b, f"{mode} final {name}")
    ours_by_torch_name = {}
    for key, cell in ours.cells.items():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            ours_by_torch_name[f"{name}_{key}"] = getattr(cell, name)
    assert set(ours_by_torch_name) == set(t_params), (
        f"cells {sorted(ours.cells)} do not cover torch's parameters {sorted(t_params)}"
    )
    inputs_o = [o_x, *(o_s if mode == "lstm" else (o_s,))] + [
        ours_by_torch_name[n] for n in t_params
    ]
    inputs_t = [t_x, *(t_s if mode == "lstm" else (t_s,))] + list(t_params.values())
    g_o = torch.autograd.grad(_flat(o_out) + _flat(o_fin), inputs_o)
    g_t = torch.autograd.grad(_flat(t_out) + _flat(t_fin), inputs_t)
    names = ["x", *(["h0", "c0"] if mode == "lstm" else ["h0"]), *t_params]
    for name, a, b in zip(names, g_o, g_t):
        _close(a, b, f"{mode} gradient w.r.t. {name}")


def test_recurrent_defaults_to_zero_state(impl):
    """Recurrent(x) with no state equals torch's run from zeros."""
    torch.manual_seed(4)
    theirs = nn.LSTM(IN, H, bidirectional=True).double()
    ours = impl.copy_weights_from(
        impl.Recurrent("lstm", IN, H, bidirectional=True).double(), theirs
    )
    x = torch.randn(T, B, IN, dtype=torch.float64)
    (o_out, (o_h, o_c)), (t_out, (t_h, t_c)) = ours(x), theirs(x)
    _close(o_out, t_out, "bidirectional LSTM output from zero state")
    _close(o_h, t_h, "h_n")
    _close(o_c, t_c, "c_n")


def test_copy_weights_rejects_wrong_shapes(impl):
    """copy_weights_from raises ValueError when torch's weights have another shape."""
    with pytest.raises(ValueError):
        impl.copy_weights_from(impl.LSTMCell(IN, H), nn.LSTMCell(IN, H + 1))


@pytest.mark.parametrize("mode", ["rnn", "lstm"])
def test_gradient_norms_match_torch_input_gradients(impl, mode):
    """gradient_norms_over_time: dloss/dx_t norms equal torch's (loss = sum of h_T); dloss/dh_T is ones."""
    torch.manual_seed(5)
    theirs = TORCH_NETS[mode](IN, H).double()
    cell = impl.copy_weights_from(_ours_cell(impl, mode).double(), _cell_view(theirs, ""))
    x = torch.randn(T, B, IN, dtype=torch.float64)
    h_norms, x_norms = impl.gradient_norms_over_time(cell, x)
    assert h_norms.shape == (T,) and x_norms.shape == (T,), (
        f"got shapes {tuple(h_norms.shape)}, {tuple(x_norms.shape)}, expected (T,) each"
    )
    xt = x.clone().requires_grad_(True)
    out, _ = theirs(xt)
    (gx,) = torch.autograd.grad(out[-1].sum(), xt)
    _close(x_norms, gx.norm(dim=2).mean(dim=1), "input-gradient norms")
    _close(h_norms[-1], torch.tensor(H, dtype=torch.float64).sqrt(), "norm of dloss/dh_T")


def test_gradient_vanishes_in_rnn_with_small_recurrent_weights(impl):
    """With a contracting W_hh, a tanh RNN's dloss/dh_t shrinks geometrically going back in time."""
    torch.manual_seed(6)
    cell = impl.RNNCell(1, 8).double()
    with torch.no_grad():
        cell.weight_hh.copy_(0.5 * torch.eye(8, dtype=torch.float64))
    x = torch.randn(30, 4, 1, dtype=torch.float64)
    h_norms, _ = impl.gradient_norms_over_time(cell, x)
    ratio = h_norms[:-1] / h_norms[1:]
    assert torch.all(ratio <= 0.5 + 1e-12), (
        "each step back must multiply the gradient by <= 0.5 here"
    )
    assert h_norms[0] < 1e-8 * h_norms[-1], (
        "after 29 steps the gradient should have all but vanished"
    )


@pytest.mark.parametrize("mode", ["rnn", "lstm", "gru"])
def test_fresh_cells_are_initialised_like_torch(impl, mode):
    """A fresh cell draws every parameter from U(+-1/sqrt(H)) like torch's, so its first step spreads alike."""
    torch.manual_seed(0)
    n_in, hidden = 30, 40
    ours = {"rnn": impl.RNNCell, "lstm": impl.LSTMCell, "gru": impl.GRUCell}[mode](n_in, hidden)
    theirs = TORCH_CELLS[mode](n_in, hidden)
    for name, _ in theirs.named_parameters():
        q = getattr(ours, name).detach()
        assert q.abs().max() <= hidden**-0.5, f"{mode}.{name} leaves +-1/sqrt(hidden_size)"
    pooled = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in (ours, theirs)]
    torch.testing.assert_close(pooled[0].std(), pooled[1].std(), rtol=0.1, atol=0, msg="spread")
    x = torch.randn(200, n_in)
    with torch.no_grad():
        first, ref = ours(x), theirs(x)
    first, ref = (first[0], ref[0]) if mode == "lstm" else (first, ref)
    torch.testing.assert_close(first.std(), ref.std(), rtol=0.2, atol=0, msg="first-step spread")
