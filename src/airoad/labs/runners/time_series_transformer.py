"""Runner for time-series-transformer: a small encoder-only transformer forecasts tomorrow's NYSE
log volume, scored against the `lstm-time-series` lab's LSTM and linear autoregression.

Same series and split as that lab, built with its reference functions: the last `window` days of
DJ_return, log_volume and log_volatility; the test period is the ISLP book's (every day the
dataset marks train == False, 1980-1986); the `val_days` targets before it stop training early;
the scaler is fitted on the earlier training days only. The LSTM and the transformer go through
the same training loop (`train_forecaster`: Adam on the MSE, the same batches, early stopping on
the validation MSE) for each seed; the linear model is least squares on the flattened window.
All three are scored by test MAE in log-volume units. Our encoder layers are then checked
against torch's `nn.TransformerEncoderLayer` holding the trained weights."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import config_check, cpu_timed, figure, param, race, render_notes
from airoad.labs.runners import lstm_time_series as lstm_lab
from airoad.sequence import lstm_time_series as seq
from airoad.transformer import time_series_transformer as ref

LSTM = lstm_lab.Config()  # the LSTM lab's full run: its split and its LSTM are our baseline
TARGET, FEATURES = lstm_lab.TARGET, lstm_lab.FEATURES
RECENT = 5  # "recent" days for the attention summary


@dataclass(frozen=True)
class Config:
    window: int = param(LSTM.window, ge=2, le=365)
    val_days: int = param(LSTM.val_days, ge=1, le=2000)
    d_model: int = param(32, ge=2, le=512)
    n_heads: int = param(4, ge=1, le=64)
    n_layers: int = param(2, ge=1, le=16)
    d_ff: int = param(64, ge=1, le=4096)
    dropout: float = param(0.0, ge=0.0, lt=1.0)
    positions: str = param("sinusoidal", choices=ref.POSITIONS)
    pool: str = param("last", choices=ref.POOLING)
    causal: bool = param(False)
    lr: float = param(LSTM.lr, gt=0.0, le=1.0)  # the transformer's; the LSTM keeps its lab's
    lstm_hidden: int = param(LSTM.hidden_size, ge=1, le=1024)
    epochs: int = param(LSTM.epochs, ge=1, le=1000)  # both models, early stopping on validation
    patience: int = param(LSTM.patience, ge=1, le=1000)
    batch_size: int = param(LSTM.batch_size, ge=1, le=8192)
    seeds: tuple[int, ...] = param((0, 1, 2), ge=0)  # every seed trains both networks
    plot_days: int = param(250, ge=1, le=lstm_lab.TEST_DAYS)

    def __post_init__(self) -> None:
        config_check(self.d_model % self.n_heads == 0, "d_model", "must be divisible by n_heads")
        config_check(len(set(self.seeds)) == len(self.seeds), "seeds", "must not repeat")


QUICK = {"d_model": 16, "d_ff": 32, "lstm_hidden": 16, "epochs": 2, "seeds": (0,), "plot_days": 120}

NOTES = (
    "Same series and split as lstm-time-series: {n_train} training and {n_val} validation "
    "windows, test {test_start} .. {test_end} ({n_test} days).",
    "Test MAE over {n_seeds} seed(s): transformer {transformer_test_mae:.4f} "
    "(seeds {transformer_test_mae_min:.4f}-{transformer_test_mae_max:.4f}), LSTM "
    "{lstm_test_mae:.4f} (seeds {lstm_test_mae_min:.4f}-{lstm_test_mae_max:.4f}), linear "
    "{linear_test_mae:.4f}, last value {last_value_test_mae:.4f}.",
    "The transformer {verdict_linear} the linear model ({gap_linear_percent:+.2f}%) and "
    "{verdict_lstm} the LSTM ({gap_lstm_percent:+.2f}%); {seed_spread}; lowest mean test MAE: "
    "{best_method}.",
    "Our encoder layers vs torch's nn.TransformerEncoderLayer with the trained weights: largest "
    "forecast difference {torch_max_abs_diff:.1e}, forward time ours/torch {time_ratio:.2f}.",
    "The pooled token puts {recent_attention_share:.0%} of its attention on the last {recent} "
    "days (uniform would be {uniform_share:.0%}).",
)


def _linear_forecasts(d: lstm_lab.NyseWindows) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Persistence and the LSTM lab's linear model (least squares on every feature's lags)."""
    fit = np.concatenate([d.train, d.val])  # a linear model needs no early stopping
    design = seq.lag_matrix(d.X)
    coef, intercept = seq.fit_linear_ar(design[fit], d.y[fit])
    tcol = FEATURES.index(TARGET)
    preds = {
        "last value": d.back(seq.last_value_forecast(d.X[d.test, :, tcol])),
        "linear": d.back(seq.predict_linear_ar(design[d.test], coef, intercept)),
    }
    return preds, coef.reshape(d.X.shape[1], -1)[:, tcol]  # weights on the target's own lags


def _build(kind: str, config: Config, seed: int):
    if kind == "LSTM":
        return seq.LSTMForecaster(len(FEATURES), config.lstm_hidden)
    return ref.TimeSeriesTransformer(
        len(FEATURES),
        d_model=config.d_model,
        n_heads=config.n_heads,
        n_layers=config.n_layers,
        d_ff=config.d_ff,
        dropout=config.dropout,
        positions=config.positions,
        pool=config.pool,
        causal=config.causal,
        max_len=config.window,
        seed=seed,
    )


def _train_seeds(kind: str, d: lstm_lab.NyseWindows, config: Config, ctx: RunContext) -> list[dict]:
    """One network per seed through the LSTM lab's training loop; test forecasts per seed."""
    import torch

    runs = []
    for seed in ctx.track(config.seeds, f"training the {kind} (one per seed)"):
        torch.manual_seed(seed)  # the LSTM's initial weights and any dropout, as in its lab
        model = _build(kind, config, seed)
        lr = config.lr if kind == "transformer" else LSTM.lr
        history, cpu, wall = cpu_timed(
            lambda m=model, s=seed, lr=lr: seq.train_forecaster(
                m, d.X[d.train], d.y[d.train], d.X[d.val], d.y[d.val], epochs=config.epochs,
                lr=lr, batch_size=config.batch_size, patience=config.patience, seed=s,
            )
        )  # fmt: skip
        val_pred, test_pred = (d.back(seq.predict(model, d.X[i])) for i in (d.val, d.test))
        runs.append({"seed": seed, "model": model, "history": history, "test": test_pred,
                     "val_mae": seq.mean_absolute_error(d.back(d.y[d.val]), val_pred),
                     "cpu": cpu, "wall": wall})  # fmt: skip
    return runs


def _torch_twin(model, config: Config):
    """The same forecaster with torch's nn.TransformerEncoderLayer holding our trained weights."""
    import torch
    from torch import nn

    layers = []
    for ours in model.layers:
        layer = nn.TransformerEncoderLayer(
            config.d_model, config.n_heads, config.d_ff, dropout=0.0, activation="gelu",
            batch_first=True, norm_first=True,
        )  # fmt: skip
        with torch.no_grad():
            layer.self_attn.in_proj_weight.copy_(ours.in_proj.weight)
            layer.self_attn.in_proj_bias.copy_(ours.in_proj.bias)
            layer.self_attn.out_proj.load_state_dict(ours.out_proj.state_dict())
            for name in ("linear1", "linear2", "norm1", "norm2"):
                getattr(layer, name).load_state_dict(getattr(ours, name).state_dict())
        layers.append(layer.eval())

    def forecast(x: torch.Tensor) -> torch.Tensor:
        h = model.embed(x)
        mask = model.mask(x.shape[1])
        for layer in layers:
            h = layer(h, src_mask=mask)
        z = model.norm(h)
        return model.head(z[:, -1] if model.pool == "last" else z.mean(1)).squeeze(-1)

    return forecast


def _torch_check(runs: list[dict], d: lstm_lab.NyseWindows, config: Config) -> dict:
    """Forecast the test period with torch's layers for every seed; time one forward pass each."""
    import torch

    x = torch.as_tensor(d.X[d.test], dtype=torch.float32)
    diffs, maes, ratios = [], [], []
    for r in runs:
        model = r["model"].eval()
        twin = _torch_twin(model, config)
        with torch.no_grad():
            timing = race(lambda m=model: m(x), lambda t=twin: t(x))
        theirs = d.back(timing["library"].double().numpy())
        diffs.append(float(np.max(np.abs(theirs - r["test"]))))
        maes.append(seq.mean_absolute_error(d.back(d.y[d.test]), theirs))
        ratios.append(timing["ours_seconds"] / timing["library_seconds"])
    return {
        "torch_layers_test_mae": float(np.mean(maes)),
        "torch_max_abs_diff": max(diffs),
        "time_ratio": float(np.median(ratios)),
    }


def _pooled_attention(model, X: np.ndarray, config: Config) -> np.ndarray:
    """Attention the pooled token reads, averaged over windows: (layers * heads, window)."""
    import torch

    maps = model.attention_maps(torch.as_tensor(X, dtype=torch.float32))
    rows = [m[:, :, -1] if config.pool == "last" else m.mean(2) for m in maps]  # (B, H, W) each
    return torch.cat([r.mean(0) for r in rows]).numpy()


def _scores(
    d: lstm_lab.NyseWindows, preds: dict, tf: list[dict], lstm: list[dict], att: np.ndarray
) -> dict:
    y = d.back(d.y[d.test])
    tf_mae = [seq.mean_absolute_error(y, r["test"]) for r in tf]
    lstm_mae = [seq.mean_absolute_error(y, r["test"]) for r in lstm]
    window = att.shape[1]
    return {
        "n_train": len(d.train),
        "n_val": len(d.val),
        "n_test": len(d.test),
        "n_seeds": len(tf),
        "test_start": str(d.df.index[d.test[0] + window].date()),
        "test_end": str(d.df.index[-1].date()),
        "transformer_test_mae": float(np.mean(tf_mae)),
        "transformer_test_mae_std": float(np.std(tf_mae)),
        "transformer_test_mae_min": min(tf_mae),
        "transformer_test_mae_max": max(tf_mae),
        "transformer_val_mae": float(np.mean([r["val_mae"] for r in tf])),
        "lstm_test_mae": float(np.mean(lstm_mae)),
        "lstm_test_mae_std": float(np.std(lstm_mae)),
        "lstm_test_mae_min": min(lstm_mae),
        "lstm_test_mae_max": max(lstm_mae),
        "lstm_val_mae": float(np.mean([r["val_mae"] for r in lstm])),
        "linear_test_mae": seq.mean_absolute_error(y, preds["linear"]),
        "last_value_test_mae": seq.mean_absolute_error(y, preds["last value"]),
        "transformer_params": sum(p.numel() for p in tf[0]["model"].parameters()),
        "lstm_params": sum(p.numel() for p in lstm[0]["model"].parameters()),
        "transformer_epochs_mean": float(np.mean([len(r["history"]["val_loss"]) for r in tf])),
        "lstm_epochs_mean": float(np.mean([len(r["history"]["val_loss"]) for r in lstm])),
        "transformer_cpu_seconds": float(np.mean([r["cpu"] for r in tf])),
        "lstm_cpu_seconds": float(np.mean([r["cpu"] for r in lstm])),
        "recent_attention_share": float(att[:, -RECENT:].sum(1).mean()),
        "uniform_share": min(RECENT, window) / window,
        "recent": RECENT,
    }


def _verdicts(m: dict) -> dict:
    """Transformer vs each rival: a mean gap under 1% of the MAE is a tie (about a seed's spread)."""

    def word(gap: float) -> str:
        return "beats" if gap < -0.01 else "ties with (within 1%)" if gap <= 0.01 else "loses to"

    out = {}
    for rival in ("linear", "lstm"):
        gap = m["transformer_test_mae"] / m[f"{rival}_test_mae"] - 1
        out |= {f"gap_{rival}_percent": 100 * gap, f"verdict_{rival}": word(gap)}
    if m["n_seeds"] == 1:
        out["seed_spread"] = "one seed each, so no spread to judge the gap by"
    elif m["transformer_test_mae_max"] < m["lstm_test_mae_min"]:
        out["seed_spread"] = "every transformer seed beats every LSTM seed"
    elif m["transformer_test_mae_min"] > m["lstm_test_mae_max"]:
        out["seed_spread"] = "every LSTM seed beats every transformer seed"
    else:
        out["seed_spread"] = "the two networks' seed ranges overlap"
    means = {"transformer": m["transformer_test_mae"], "LSTM": m["lstm_test_mae"]}
    means |= {"linear": m["linear_test_mae"], "last value": m["last_value_test_mae"]}
    out["best_method"] = min(means, key=means.get)
    return out


def _table(m: dict, tf: list[dict], lstm: list[dict]) -> list[dict]:
    rows = [
        {"method": "last value", "test_mae": m["last_value_test_mae"]},
        {"method": "linear (least squares, all lags)", "test_mae": m["linear_test_mae"]},
    ]
    for name, runs, key in (("LSTM", lstm, "lstm"), ("transformer", tf, "transformer")):
        rows.append({
            "method": f"{name} (mean of {len(runs)} seed(s))", "test_mae": m[f"{key}_test_mae"],
            "test_mae_std": m[f"{key}_test_mae_std"], "val_mae": m[f"{key}_val_mae"],
            "parameters": m[f"{key}_params"], "cpu_seconds_per_seed": m[f"{key}_cpu_seconds"],
        })  # fmt: skip
    return rows


def _training_rows(tf: list[dict], lstm: list[dict]) -> list[dict]:
    """One row per network and seed: epochs run, the kept epoch, first and last MSEs, cost."""
    rows = []
    for name, runs in (("LSTM", lstm), ("transformer", tf)):
        for r in runs:
            h = r["history"]
            rows.append({
                "model": name, "seed": r["seed"], "epochs_run": len(h["val_loss"]),
                "best_epoch": h["best_epoch"], "first_train_mse": h["train_loss"][0],
                "last_train_mse": h["train_loss"][-1], "best_val_mse": min(h["val_loss"]),
                "val_mae": r["val_mae"], "cpu_seconds": r["cpu"],
            })  # fmt: skip
    return rows


def _forecast_figure(
    d: lstm_lab.NyseWindows, preds: dict, tf, lstm, m: dict, config: Config, ctx: RunContext
):
    dates = d.df.index[d.test + config.window]
    show = slice(len(d.test) - config.plot_days, None)
    y = d.back(d.y[d.test])
    with figure(ctx, "forecast", 2, 1, figsize=(11, 7)) as (_, (top, bottom)):
        top.plot(dates[show], y[show], "k-", lw=1, label="actual")
        top.plot(dates[show], preds["linear"][show], lw=1.2, label="linear")
        top.plot(dates[show], lstm[0]["test"][show], lw=1.2, label=f"LSTM (seed {lstm[0]['seed']})")
        top.plot(
            dates[show], tf[0]["test"][show], lw=1.2, label=f"transformer (seed {tf[0]['seed']})"
        )
        top.set(ylabel=TARGET, title=f"next-day forecasts, last {config.plot_days} test days")
        top.legend(fontsize=8, ncol=4)
        per_seed = {
            "last value": [m["last_value_test_mae"]],
            "linear": [m["linear_test_mae"]],
            "LSTM": [seq.mean_absolute_error(y, r["test"]) for r in lstm],
            "transformer": [seq.mean_absolute_error(y, r["test"]) for r in tf],
        }
        for k, maes in enumerate(per_seed.values()):
            colour = ("C7", "C0", "C1", "C2")[k]
            bottom.plot(maes, [k] * len(maes), "o", color=colour, alpha=0.6, ms=6)
            bottom.plot([np.mean(maes)], [k], "|", color=colour, ms=22, mew=2.5)
            bottom.text(np.max(maes), k + 0.25, f"mean {np.mean(maes):.4f}", fontsize=8)
        bottom.set_yticks(range(len(per_seed)), list(per_seed))
        bottom.set(ylim=(-0.6, len(per_seed) - 0.3), xlabel="test MAE (log volume)")
        bottom.set_title(f"1980-1986 test period: one dot per seed ({m['n_seeds']}), bar = mean")
        bottom.grid(axis="x", alpha=0.3)
        bottom.margins(x=0.08)


def _attention_figure(att: np.ndarray, ar_coef: np.ndarray, config: Config, ctx: RunContext):
    lags = np.arange(config.window, 0, -1)  # the first day of the window is `window` days back
    labels = [f"L{i + 1} H{h + 1}" for i in range(config.n_layers) for h in range(config.n_heads)]
    with figure(ctx, "attention", 1, 2, figsize=(12, 4.2)) as (_, (left, right)):
        im = left.imshow(
            att, aspect="auto", cmap="viridis", extent=(lags[0] + 0.5, 0.5, len(att), 0)
        )
        left.set_yticks(np.arange(len(att)) + 0.5, labels, fontsize=7)
        left.set(xlabel="days before the forecast day", title="attention of the pooled token")
        left.figure.colorbar(im, ax=left, fraction=0.04)
        right.plot(lags, att.mean(0), "o-", ms=3, label="transformer: mean attention weight")
        right.plot(lags, np.abs(ar_coef) / np.abs(ar_coef).sum(), "s-", ms=3,
                   label=f"linear: |weight| on {TARGET} lags (normalised)")  # fmt: skip
        right.axhline(1 / config.window, color="k", ls=":", lw=0.8, label="uniform")
        right.invert_xaxis()
        right.set(xlabel="days before the forecast day", ylabel="share", title="which days matter")
        right.legend(fontsize=8)


def _training_figure(tf: list[dict], lstm: list[dict], ctx: RunContext) -> None:
    with figure(ctx, "training", 1, 2, figsize=(11, 4), sharey=True) as (_, axes):
        for ax, runs, name in ((axes[0], lstm, "LSTM"), (axes[1], tf, "transformer")):
            for k, r in enumerate(runs):
                h = r["history"]
                ax.plot(h["train_loss"], color=f"C{k}", ls="--", lw=1)
                ax.plot(h["val_loss"], color=f"C{k}", label=f"seed {r['seed']} (validation)")
                ax.plot(h["best_epoch"], h["val_loss"][h["best_epoch"]], "k*", ms=9)
            ax.set(xlabel="epoch", title=f"{name}: train (dashed) and validation MSE; * kept")
            ax.legend(fontsize=8)
        axes[0].set_ylabel("MSE (standardised)")


def run(config: Config, ctx: RunContext) -> LabResult:
    data = lstm_lab.nyse_windows(FEATURES, config.window, config.val_days)
    preds, ar_coef = _linear_forecasts(data)
    lstm = _train_seeds("LSTM", data, config, ctx)
    tf = _train_seeds("transformer", data, config, ctx)
    att = _pooled_attention(tf[0]["model"], data.X[data.test], config)
    metrics = _scores(data, preds, tf, lstm, att) | _torch_check(tf, data, config)

    _forecast_figure(data, preds, tf, lstm, metrics, config, ctx)
    _attention_figure(att, ar_coef, config, ctx)
    _training_figure(tf, lstm, ctx)

    metrics |= _verdicts(metrics)
    return LabResult(
        metrics=metrics,
        key_metric="transformer_test_mae",
        library_metric="torch_layers_test_mae",
        tables={"test_mae": _table(metrics, tf, lstm), "training": _training_rows(tf, lstm)},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics}),
    )
