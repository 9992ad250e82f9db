"""Recurrent cells written with tensor ops: a plain RNN, an LSTM and a GRU.

Each cell owns exactly the parameters torch's cells own, with the same names, shapes and gate
order, so weights can be copied across and every output and gradient compared:

- ``weight_ih``: (G * H, input_size), ``weight_hh``: (G * H, H), ``bias_ih``, ``bias_hh``: (G * H,)
- G = 1 for the RNN, 4 for the LSTM (gates i, f, g, o), 3 for the GRU (gates r, z, n).

``Recurrent`` unrolls a cell over time (time-major by default, ``batch_first`` optional), stacks
layers and runs a second, reversed cell per layer when ``bidirectional``; its parameters map
one to one onto ``torch.nn.RNN/LSTM/GRU``'s ``weight_ih_l0``, ``weight_hh_l0_reverse``, ...

``gradient_norms_over_time`` measures how much of the loss at the last step reaches each
earlier step: the vanishing-gradient picture of a plain RNN against an LSTM.
"""

from __future__ import annotations

import math

import torch
from torch import nn

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class _Cell(nn.Module):
    """Shared parameter layout: G stacked gate blocks, initialised U(-1/sqrt(H), 1/sqrt(H))."""

    n_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        rows, k = self.n_gates * hidden_size, 1.0 / math.sqrt(hidden_size)
        # torch draws every parameter from the same uniform; we do too (values differ, law equal)
        self.weight_ih = nn.Parameter(torch.empty(rows, input_size).uniform_(-k, k))
        self.weight_hh = nn.Parameter(torch.empty(rows, hidden_size).uniform_(-k, k))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(rows).uniform_(-k, k))
            self.bias_hh = nn.Parameter(torch.empty(rows).uniform_(-k, k))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)


def _affine(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x @ weight.T + bias: (B, in) -> (B, G*H)."""
    out = x @ weight.T
    return out if bias is None else out + bias


class RNNCell(_Cell):
    """Elman cell: h' = act(W_ih x + b_ih + W_hh h + b_hh), act = tanh or relu."""

    n_gates = 1

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh"
    ):
        super().__init__(input_size, hidden_size, bias)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, input_size), state h: (B, H) or None (zeros) -> new h (B, H)."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if state is None else state
        pre = _affine(x, self.weight_ih, self.bias_ih) + _affine(h, self.weight_hh, self.bias_hh)
        return torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)


class LSTMCell(_Cell):
    """LSTM cell, gates in torch's order i, f, g, o.

    i, f, o = sigmoid(.), g = tanh(.) of (W_ih x + b_ih + W_hh h + b_hh) split in four;
    c' = f * c + i * g;  h' = o * tanh(c').  The additive c path is what keeps gradients alive.
    """

    n_gates = 4

    def forward(
        self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x: (B, input_size), state (h, c) each (B, H) or None -> (h', c') each (B, H)."""
        if state is None:
            zeros = x.new_zeros(x.shape[0], self.hidden_size)
            state = (zeros, zeros)
        h, c = state
        gates = _affine(x, self.weight_ih, self.bias_ih) + _affine(h, self.weight_hh, self.bias_hh)
        i, f, g, o = gates.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(c_new), c_new


class GRUCell(_Cell):
    """GRU cell, gates in torch's order r, z, n.

    r = sigmoid(W_ir x + b_ir + W_hr h + b_hr),  z = sigmoid(W_iz x + b_iz + W_hz h + b_hz),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)),  h' = (1 - z) * n + z * h.
    Note r multiplies (W_hn h + b_hn), bias included, exactly as torch does.
    """

    n_gates = 3

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """x: (B, input_size), state h: (B, H) or None (zeros) -> new h (B, H)."""
        h = x.new_zeros(x.shape[0], self.hidden_size) if state is None else state
        xr, xz, xn = _affine(x, self.weight_ih, self.bias_ih).chunk(3, dim=1)
        hr, hz, hn = _affine(h, self.weight_hh, self.bias_hh).chunk(3, dim=1)
        r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        return (1 - z) * n + z * h


def run_sequence(
    cell: nn.Module, x: torch.Tensor, state: State | None = None, reverse: bool = False
) -> tuple[torch.Tensor, State]:
    """Unroll `cell` over time.

    x: (T, B, input_size), time-major. With reverse=True the cell reads t = T-1 down to 0, and
    the output at position t is still the state after reading x[t].
    Returns (outputs (T, B, H) — the h of every step — , final state: h, or (h, c) for an LSTM).
    """
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outputs: list[torch.Tensor | None] = [None] * x.shape[0]
    for t in steps:
        state = cell(x[t], state)
        outputs[t] = state[0] if isinstance(state, tuple) else state
    return torch.stack(outputs), state


CELLS = {"rnn": RNNCell, "lstm": LSTMCell, "gru": GRUCell}


class Recurrent(nn.Module):
    """A multi-layer, optionally bidirectional recurrent net, a drop-in for torch.nn.RNN/LSTM/GRU.

    Cells live in ``self.cells`` under torch's suffixes: "l0", "l0_reverse", "l1", ... Layer
    l > 0 reads the concatenated [forward, backward] outputs of layer l - 1 (width D * H).
    """

    def __init__(
        self,
        mode: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        bidirectional: bool = False,
        batch_first: bool = False,
        bias: bool = True,
        nonlinearity: str = "tanh",
    ):
        super().__init__()
        if mode not in CELLS:
            raise ValueError(f"mode must be one of {sorted(CELLS)}, got {mode!r}")
        self.mode, self.hidden_size, self.num_layers = mode, hidden_size, num_layers
        self.bidirectional, self.batch_first = bidirectional, batch_first
        self.suffixes = ("", "_reverse") if bidirectional else ("",)
        extra = {"nonlinearity": nonlinearity} if mode == "rnn" else {}
        self.cells = nn.ModuleDict()
        for layer in range(num_layers):
            width = input_size if layer == 0 else hidden_size * len(self.suffixes)
            for suffix in self.suffixes:
                self.cells[f"l{layer}{suffix}"] = CELLS[mode](width, hidden_size, bias, **extra)

    def forward(self, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """Same contract as torch.nn.RNN/GRU/LSTM.

        x: (T, B, input_size), or (B, T, input_size) when batch_first.
        state: h0 of shape (num_layers * D, B, H) (LSTM: a tuple (h0, c0)), or None for zeros;
        D = 2 when bidirectional, else 1. Index layer * D + direction, as torch orders it.
        Returns output (T, B, D * H) (batch first if batch_first) and the final state in the
        same layout as `state`: h_n, or (h_n, c_n) for an LSTM.
        """
        if self.batch_first:
            x = x.transpose(0, 1)
        finals: list[State] = []
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for d, suffix in enumerate(self.suffixes):
                k = layer * len(self.suffixes) + d
                start = None
                if state is not None:
                    start = (state[0][k], state[1][k]) if self.mode == "lstm" else state[k]
                out, final = run_sequence(
                    self.cells[f"l{layer}{suffix}"], layer_input, start, reverse=d == 1
                )
                outs.append(out)
                finals.append(final)
            layer_input = torch.cat(outs, dim=-1)
        output = layer_input.transpose(0, 1) if self.batch_first else layer_input
        if self.mode == "lstm":
            return output, (
                torch.stack([f[0] for f in finals]),
                torch.stack([f[1] for f in finals]),
            )
        return output, torch.stack(finals)


PARAMETER_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


@torch.no_grad()
def copy_weights_from(module: nn.Module, torch_module: nn.Module) -> nn.Module:
    """Copy torch's weights into ours, in place; returns `module`.

    A cell (RNNCell/LSTMCell/GRUCell) copies from torch.nn.RNNCell/LSTMCell/GRUCell (names
    weight_ih, ...); a Recurrent copies from torch.nn.RNN/LSTM/GRU (names weight_ih_l0,
    weight_ih_l0_reverse, ...). Shapes must agree; the gate order is already torch's.
    """
    if isinstance(module, Recurrent):
        pairs = [(cell, f"_{key}") for key, cell in module.cells.items()]
    else:
        pairs = [(module, "")]
    for cell, suffix in pairs:
        for name in PARAMETER_NAMES:
            ours = getattr(cell, name)
            if ours is None:
                continue
            theirs = getattr(torch_module, name + suffix)
            if ours.shape != theirs.shape:
                raise ValueError(
                    f"{name + suffix}: shape {tuple(theirs.shape)} does not match "
                    f"ours {tuple(ours.shape)}"
                )
            ours.copy_(theirs)
    return module


def gradient_norms_over_time(
    cell: nn.Module, x: torch.Tensor, state: State | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """How strongly the loss at the LAST step depends on each earlier step.

    Unrolls `cell` over x: (T, B, input_size), takes loss = sum of the final hidden state h_T
    (an upstream gradient of ones), and returns two (T,) tensors: the L2 norm of dloss/dh_t and
    of dloss/dx_t at every step t, each averaged over the batch. For a plain RNN these shrink
    roughly geometrically as t moves away from T (the vanishing gradient).
    """
    x = x.detach().requires_grad_(True)
    hidden: list[torch.Tensor] = []
    for t in range(x.shape[0]):
        state = cell(x[t], state)
        hidden.append(state[0] if isinstance(state, tuple) else state)
    loss = hidden[-1].sum()
    grads = torch.autograd.grad(loss, hidden + [x])
    h_norms = torch.stack([g.norm(dim=1).mean() for g in grads[:-1]])
    x_norms = grads[-1].norm(dim=2).mean(dim=1)
    return h_norms.detach(), x_norms.detach()
