"""Runner for lstm-time-series: tomorrow's NYSE log trading volume from the previous 30 days.

Target: `log_volume`, the series the ISLP book forecasts (already detrended there). Inputs: the
last `window` days of the chosen features (by default all three the book uses). The test period
is the book's: every day the dataset's `train` column marks False (1980-1986). The last
`val_days` targets before it validate (early stopping); standardisation is fitted on the
remaining, earlier training days only. Everything is scored by MAE in log-volume units on the
test period, the LSTM beside naive baselines and linear autoregressions (ours and sklearn's)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from airoad.data import load
from airoad.labs.contract import LabResult, RunContext
from airoad.sequence import lstm_time_series as ref

TARGET = "log_volume"


@dataclass(frozen=True)
class Config:
    window: int = 30
    features: tuple[str, ...] = ("DJ_return", "log_volume", "log_volatility")
    val_days: int = 500
    ma_days: int = 5  # moving-average baseline length
    hidden_size: int = 32
    epochs: int = 40
    patience: int = 8
    lr: float = 1e-3
    batch_size: int = 64
    plot_days: int = 250  # how many of the last test days the forecast figure shows
    seed: int = 0


QUICK = {"hidden_size": 16, "epochs": 3, "patience": 3, "plot_days": 120}


def _r2(y: np.ndarray, y_hat: np.ndarray) -> float:
    return float(1 - np.sum((y - y_hat) ** 2) / np.sum((y - y.mean()) ** 2))


def _verdict(lstm: float, linear: float) -> str:
    """Call a gap under 1% of the MAE a tie: seeds move the LSTM by about that much."""
    gap = (lstm - linear) / linear
    if gap < -0.01:
        word = "beats"
    elif gap <= 0.01:
        word = "ties with (within 1%)"
    else:
        word = "does NOT beat"
    return (
        f"The LSTM {word} the linear model on all features: MAE {lstm:.4f} vs {linear:.4f} "
        f"({100 * gap:+.2f}%)."
    )


def run(config: Config, ctx: RunContext) -> LabResult:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch
    from sklearn.linear_model import LinearRegression

    df = load("nyse")
    missing = [f for f in config.features if f not in df.columns]
    if missing or TARGET not in config.features:
        raise ValueError(f"features must be columns of nyse and include {TARGET}; bad: {missing}")
    raw = df[list(config.features)].to_numpy(dtype=float)
    tcol = list(config.features).index(TARGET)
    test_days = int((~df["train"]).sum())
    n_samples = len(df) - config.window
    train_idx, val_idx, test_idx = ref.chronological_split(n_samples, config.val_days, test_days)
    # Fit the scaler on the days the training windows and targets can see, nothing later.
    mean, std = ref.fit_standardizer(raw[: train_idx[-1] + config.window + 1])
    scaled = ref.standardize(raw, mean, std)
    X, y = ref.make_windows(scaled, scaled[:, tcol], config.window)

    def back(z: np.ndarray) -> np.ndarray:  # standardised target -> log_volume units
        return z * std[tcol] + mean[tcol]

    y_test = back(y[test_idx])
    hist_target = X[:, :, tcol]
    preds: dict[str, np.ndarray] = {
        "last value": back(ref.last_value_forecast(hist_target[test_idx])),
        f"moving average ({config.ma_days} days)": back(
            ref.moving_average_forecast(hist_target[test_idx], config.ma_days)
        ),
        f"window mean ({config.window} days)": back(hist_target[test_idx].mean(axis=1)),
    }
    fit_idx = np.concatenate([train_idx, val_idx])  # linear models need no early stopping
    coef_diffs = {}
    for label, design in [
        (f"AR({config.window}) on {TARGET}", hist_target),
        ("linear, all features", ref.lag_matrix(X)),
    ]:
        coef, intercept = ref.fit_linear_ar(design[fit_idx], y[fit_idx])
        sk = LinearRegression().fit(design[fit_idx], y[fit_idx])
        preds[f"{label} (ours)"] = back(ref.predict_linear_ar(design[test_idx], coef, intercept))
        preds[f"{label} (sklearn)"] = back(sk.predict(design[test_idx]))
        coef_diffs[label] = float(np.max(np.abs(coef - sk.coef_)))

    torch.manual_seed(config.seed)
    model = ref.LSTMForecaster(len(config.features), config.hidden_size)
    with ctx.step("training the LSTM"):
        history = ref.train_forecaster(
            model,
            X[train_idx],
            y[train_idx],
            X[val_idx],
            y[val_idx],
            epochs=config.epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            patience=config.patience,
            seed=config.seed,
        )
    preds["LSTM"] = back(ref.predict(model, X[test_idx]))

    rows = [
        {"method": name, "test_mae": ref.mean_absolute_error(y_test, p), "test_r2": _r2(y_test, p)}
        for name, p in preds.items()
    ]
    mae = {r["method"]: r["test_mae"] for r in rows}
    ar_ours = "linear, all features (ours)"
    metrics = {
        "n_days": len(df),
        "n_train": len(train_idx),
        "n_val": len(val_idx),
        "n_test": len(test_idx),
        "test_start": str(df.index[test_idx[0] + config.window].date()),
        "lstm_test_mae": mae["LSTM"],
        "lstm_test_r2": rows[-1]["test_r2"],
        "last_value_test_mae": mae["last value"],
        "moving_average_test_mae": mae[f"moving average ({config.ma_days} days)"],
        "ar_target_only_test_mae": mae[f"AR({config.window}) on {TARGET} (ours)"],
        "ours_linear_test_mae": mae[ar_ours],
        "sklearn_linear_test_mae": mae["linear, all features (sklearn)"],
        "max_coef_diff_vs_sklearn": max(coef_diffs.values()),
        "lstm_vs_linear_mae_gap": (mae["LSTM"] - mae[ar_ours]) / mae[ar_ours],
        "lstm_best_epoch": history["best_epoch"],
        "lstm_epochs_run": len(history["val_loss"]),
    }
    best_name = min(mae, key=mae.get)
    notes = [
        f"Target {TARGET}; test period {metrics['test_start']} .. {df.index[-1].date()} "
        f"({len(test_idx)} days), the ISLP book's split.",
        f"Lowest test MAE: {best_name} ({mae[best_name]:.4f}).",
        _verdict(mae["LSTM"], mae[ar_ours]),
        f"Our least squares and sklearn's LinearRegression agree: largest coefficient "
        f"difference {metrics['max_coef_diff_vs_sklearn']:.1e}.",
    ]

    figures = []
    dates = df.index[test_idx + config.window]
    show = slice(len(test_idx) - config.plot_days, None)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(11, 7))
    top.plot(dates[show], y_test[show], "k-", lw=1, label="actual")
    top.plot(dates[show], preds["last value"][show], lw=0.8, alpha=0.6, label="last value")
    top.plot(dates[show], preds[ar_ours][show], lw=1.2, label="linear, all features")
    top.plot(dates[show], preds["LSTM"][show], lw=1.2, label="LSTM")
    top.set(ylabel=TARGET, title=f"next-day forecasts, last {config.plot_days} test days")
    top.legend(fontsize=8, ncol=4)
    names = [r["method"] for r in rows]
    bottom.barh(
        names, [r["test_mae"] for r in rows], color=["C1" if n == "LSTM" else "C0" for n in names]
    )
    bottom.set(xlabel="test MAE (log volume)", title="held-out final period, lower is better")
    figures.append(ctx.save_figure(fig, "forecast"))

    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(history["train_loss"], label="train")
    ax.plot(history["val_loss"], label="validation")
    ax.axvline(history["best_epoch"], color="k", ls=":", label="kept (best validation)")
    ax.set(xlabel="epoch", ylabel="MSE (standardised)", title="LSTM training")
    ax.legend()
    figures.append(ctx.save_figure(fig, "lstm_loss"))
    return LabResult(
        metrics=metrics,
        key_metric="lstm_test_mae",
        library_metric="sklearn_linear_test_mae",
        tables={"test_mae": rows},
        figures=figures,
        notes=notes,
    )
