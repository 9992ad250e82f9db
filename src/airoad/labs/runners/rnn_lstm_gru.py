"""Runner for rnn-lstm-gru: our cells beside torch's, and the vanishing gradient on real data.

Data: the airline passengers series (144 months), log-transformed and standardised, cut into
sliding windows. For each of RNN, LSTM and GRU we (1) copy one random initialisation into our
Recurrent and into torch.nn.RNN/LSTM/GRU and check outputs and input gradients agree, (2) train
both copies the same way to predict the month after each window, and (3) measure how much of
the last step's loss reaches every earlier step (||dloss/dh_t||), at init and after training."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes, validate_config
from airoad.sequence import rnn_lstm_gru as ref

MODES = ("rnn", "lstm", "gru")
STAGES = ("init", "trained")
N_MONTHS = 144  # the airline series; a window needs the month after it


@dataclass(frozen=True)
class Config:
    # months per window; gradients are measured back over this many steps
    seq_len: int = param(60, ge=2, le=N_MONTHS - 1)
    hidden_size: int = param(32, ge=1, le=1024)
    epochs: int = param(150, ge=1, le=10_000)
    lr: float = param(0.01, gt=0.0, le=1.0)
    # steps back reported in the table; each must be shorter than seq_len
    lags: tuple[int, ...] = param((1, 5, 10, 20, 40, 59), ge=1, le=N_MONTHS - 2)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)  # the declared ranges first, so a bad seq_len is named as such
        if max(self.lags) >= self.seq_len:
            raise ConfigError(
                f"config key 'lags' is {self.lags}; each lag must be < seq_len ({self.seq_len})"
            )


QUICK = {"seq_len": 24, "hidden_size": 16, "epochs": 15, "lags": (1, 5, 10, 23)}

NOTES = (
    "Ours and torch agree: largest output difference at init {max_output_diff_vs_torch:.1e} "
    "(float32), final MSEs rnn {ours_rnn_train_mse:.4f} vs {torch_rnn_train_mse:.4f}, "
    "lstm {ours_lstm_train_mse:.4f} vs {torch_lstm_train_mse:.4f}, "
    "gru {ours_gru_train_mse:.4f} vs {torch_gru_train_mse:.4f} "
    "(float32 rounding grows over the epochs).",
    "At init the gradient {far} steps back is {rnn_init_far:.1e} (RNN), {lstm_init_far:.1e} "
    "(LSTM), {gru_init_far:.1e} (GRU) of its last-step size: every cell forgets geometrically "
    "before training.",
    "After training it is {rnn_trained_far:.1e} (RNN), {lstm_trained_far:.1e} (LSTM), "
    "{gru_trained_far:.1e} (GRU): {who_keeps_more}",
)


def _airline_windows(config: Config):
    """Standardised log passengers as time-major windows (T, N, 1) and the month after each."""
    import torch

    series = load("airline")
    logged = np.log(series.to_numpy())
    scaled = (logged - logged.mean()) / logged.std()
    idx = np.arange(len(scaled) - config.seq_len)[:, None] + np.arange(config.seq_len)
    xw, yw = scaled[idx], scaled[idx[:, -1] + 1]
    x = torch.tensor(xw.T[:, :, None], dtype=torch.float32)
    y = torch.tensor(yw, dtype=torch.float32)
    metrics = {"n_months": len(series), "n_windows": int(xw.shape[0]), "seq_len": config.seq_len}
    return x, y, metrics


class _Forecaster:
    """A recurrent net plus a linear head on the last hidden state: torch or ours, same API."""

    def __init__(self, net, head):
        self.net, self.head = net, head

    def parameters(self):
        return [*self.net.parameters(), *self.head.parameters()]

    def __call__(self, x):
        out, _ = self.net(x)
        return self.head(out[-1]).squeeze(-1)


def _pair(mode: str, config: Config):
    """Our Recurrent and torch's module with identical weights, each with an identical head."""
    import torch
    from torch import nn

    torch.manual_seed(config.seed)
    theirs = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}[mode](1, config.hidden_size)
    ours = ref.copy_weights_from(ref.Recurrent(mode, 1, config.hidden_size), theirs)
    head_t = nn.Linear(config.hidden_size, 1)
    head_o = nn.Linear(config.hidden_size, 1)
    head_o.load_state_dict(head_t.state_dict())
    return _Forecaster(ours, head_o), _Forecaster(theirs, head_t)


def _train(model: _Forecaster, x, y, config: Config) -> list[float]:
    """Full-batch Adam on the MSE; the loss of every epoch."""
    import torch

    opt = torch.optim.Adam(model.parameters(), lr=config.lr)
    losses = []
    for _ in range(config.epochs):
        opt.zero_grad()
        loss = torch.mean((model(x) - y) ** 2)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def _grad_profile(model: _Forecaster, x) -> np.ndarray:
    """||dloss/dh_t|| for t = 0..T-1 of the first layer's cell, normalised so h_T gives 1."""
    h_norms, _ = ref.gradient_norms_over_time(model.net.cells["l0"], x)
    h_norms = h_norms.numpy()
    return h_norms / h_norms[-1]


def _ours_vs_torch(mode: str, x, y, config: Config):
    """One cell type: agreement at init, both copies trained, gradient profiles before/after."""
    import torch

    ours, theirs = _pair(mode, config)
    xo, xt = x.clone().requires_grad_(True), x.clone().requires_grad_(True)
    out_o, out_t = ours(xo), theirs(xt)
    (g_o,), (g_t,) = torch.autograd.grad(out_o.sum(), xo), torch.autograd.grad(out_t.sum(), xt)
    profiles = {"init": _grad_profile(ours, x)}
    loss_o, loss_t = _train(ours, x, y, config), _train(theirs, x, y, config)
    profiles["trained"] = _grad_profile(ours, x)
    row = {
        "model": mode,
        "init_max_abs_output_diff": (out_o - out_t).abs().max().item(),
        "init_max_abs_input_grad_diff": (g_o - g_t).abs().max().item(),
        "ours_final_mse": loss_o[-1],
        "torch_final_mse": loss_t[-1],
    }
    metrics = {f"ours_{mode}_train_mse": loss_o[-1], f"torch_{mode}_train_mse": loss_t[-1]}
    return row, metrics, (loss_o, loss_t), profiles


def _lag_table(mode: str, profiles: dict, lags: tuple[int, ...]):
    """The normalised gradient `lag` steps back, at init and after training."""
    rows, metrics = [], {}
    for stage in STAGES:
        row = {"model": mode, "weights": stage}
        for lag in lags:
            row[f"lag {lag}"] = metrics[f"{mode}_{stage}_grad_lag{lag}"] = float(
                profiles[stage][-1 - lag]
            )
        rows.append(row)
    return rows, metrics


def _furthest_lag(metrics: dict, lags: tuple[int, ...]) -> dict:
    """The gradient at the furthest reported lag for every cell, and which cell keeps more."""
    far = lags[-1]
    out = {f"{m}_{s}_far": metrics[f"{m}_{s}_grad_lag{far}"] for m in MODES for s in STAGES}
    rnn, lstm = out["rnn_trained_far"], out["lstm_trained_far"]
    if lstm > rnn:
        keeps = f"the LSTM keeps {lstm / max(rnn, 1e-300):.1f}x as much as the RNN."
    else:
        keeps = f"the RNN keeps {rnn / max(lstm, 1e-300):.1f}x as much as the LSTM here."
    return {"far": far, **out, "who_keeps_more": keeps}


def _vanishing_figure(profiles: dict, config: Config, ctx: RunContext) -> None:
    steps_back = np.arange(config.seq_len)[::-1]
    with figure(ctx, "vanishing_gradient", 1, 2, figsize=(11, 4), sharey=True) as (fig, axes):
        for ax, stage in zip(axes, STAGES):
            for mode in MODES:
                ax.semilogy(steps_back, profiles[mode][stage], label=mode.upper())
            ax.set(
                xlabel="steps back from the last month",
                title=f"{stage} weights",
                ylabel="||dloss/dh_t|| / ||dloss/dh_T||",
            )
            ax.legend()
        fig.suptitle(f"Vanishing gradient on airline windows of {config.seq_len} months")


def _training_figure(curves: dict, ctx: RunContext) -> None:
    with figure(ctx, "training_curves", figsize=(7, 4)) as (_, ax):
        for mode in MODES:
            ax.semilogy(curves[mode][0], label=f"ours {mode.upper()}")
            ax.semilogy(curves[mode][1], "k:", lw=1)
        ax.plot([], [], "k:", label="torch (same init)")
        ax.set(
            xlabel="epoch (full batch, Adam)",
            ylabel="train MSE (standardised log passengers)",
            title="ours vs torch: the same training run",
        )
        ax.legend()


def run(config: Config, ctx: RunContext) -> LabResult:
    x, y, metrics = _airline_windows(config)
    rows, grad_rows, curves, profiles = [], [], {}, {}
    for mode in ctx.track(MODES, "training RNN, LSTM, GRU (ours and torch)"):
        row, mse, curves[mode], profiles[mode] = _ours_vs_torch(mode, x, y, config)
        lag_rows, lag_metrics = _lag_table(mode, profiles[mode], config.lags)
        rows.append(row)
        grad_rows += lag_rows
        metrics |= mse | lag_metrics
    metrics["max_output_diff_vs_torch"] = max(r["init_max_abs_output_diff"] for r in rows)

    _vanishing_figure(profiles, config, ctx)
    _training_figure(curves, ctx)

    words = _furthest_lag(metrics, config.lags)
    return LabResult(
        metrics=metrics,
        key_metric="ours_lstm_train_mse",
        library_metric="torch_lstm_train_mse",
        tables={"ours_vs_torch": rows, "gradient_norm_by_lag": grad_rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **words}),
    )
