"""Runner for lstm-time-series: tomorrow's NYSE log trading volume from the previous 30 days.

Target: `log_volume`, the series the ISLP book forecasts (already detrended there). Inputs: the
last `window` days of the chosen features (by default all three the book uses). The test period
is the book's: every day the dataset's `train` column marks False (1980-1986). The last
`val_days` targets before it validate (early stopping); standardisation is fitted on the
remaining, earlier training days only. Everything is scored by MAE in log-volume units on the
test period, the LSTM beside naive baselines and linear autoregressions (ours and sklearn's)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from airoad.data import load
from airoad.errors import ConfigError
from airoad.labs.contract import LabResult, RunContext
from airoad.labs.kit import figure, param, render_notes, validate_config
from airoad.sequence import lstm_time_series as ref

TARGET = "log_volume"
FEATURES = ("DJ_return", "log_volume", "log_volatility")  # the numeric columns of nyse
TEST_DAYS = 1770  # days the dataset marks train == False: the test period
LINEAR_ALL = "linear, all features (ours)"


@dataclass(frozen=True)
class Config:
    window: int = param(30, ge=1, le=365)
    features: tuple[str, ...] = param(FEATURES, choices=FEATURES)  # must include log_volume
    val_days: int = param(500, ge=1, le=2000)
    ma_days: int = param(5, ge=1, le=365)  # moving-average baseline length, at most window
    hidden_size: int = param(32, ge=1, le=1024)
    epochs: int = param(40, ge=1, le=1000)
    patience: int = param(8, ge=1, le=1000)
    lr: float = param(1e-3, gt=0.0, le=1.0)
    batch_size: int = param(64, ge=1, le=8192)
    # how many of the last test days the forecast figure shows
    plot_days: int = param(250, ge=1, le=TEST_DAYS)
    seed: int = param(0, ge=0)

    def __post_init__(self) -> None:
        validate_config(self)  # the declared ranges first
        if TARGET not in self.features:
            raise ConfigError(f"config key 'features' is {self.features}; it must include {TARGET}")
        if self.ma_days > self.window:
            raise ConfigError(
                f"config key 'ma_days' is {self.ma_days}; it must be <= window ({self.window})"
            )


QUICK = {"hidden_size": 16, "epochs": 3, "patience": 3, "plot_days": 120}

NOTES = (
    "Target {target}; test period {test_start} .. {test_end} ({n_test} days), the ISLP book's "
    "split.",
    "Lowest test MAE: {best_method} ({best_mae:.4f}).",
    "The LSTM {verdict} the linear model on all features: MAE {lstm_test_mae:.4f} vs "
    "{ours_linear_test_mae:.4f} ({gap_percent:+.2f}%).",
    "Our least squares and sklearn's LinearRegression agree: largest coefficient difference "
    "{max_coef_diff_vs_sklearn:.1e}.",
)


@dataclass
class NyseWindows:
    """Standardised windows of the NYSE series, the chronological split and the scale.

    Public: the time-series-transformer lab uses the same series and split."""

    df: Any  # the nyse frame, indexed by date
    X: np.ndarray  # (N, window, F)
    y: np.ndarray  # (N,) standardised target
    train: np.ndarray
    val: np.ndarray
    test: np.ndarray
    tcol: int
    mean: float  # of the target, to turn standardised values back into log-volume units
    std: float

    def back(self, z: np.ndarray) -> np.ndarray:
        return z * self.std + self.mean

    @property
    def history(self) -> np.ndarray:  # (N, window): the target's own past in each window
        return self.X[:, :, self.tcol]


def nyse_windows(features: tuple[str, ...], window: int, val_days: int) -> NyseWindows:
    """The book's split; the scaler sees only the days the training windows can see."""
    df = load("nyse")
    raw = df[list(features)].to_numpy(dtype=float)
    tcol = list(features).index(TARGET)
    test_days = int((~df["train"]).sum())
    n_samples = len(df) - window
    train, val, test = ref.chronological_split(n_samples, val_days, test_days)
    # Fit the scaler on the days the training windows and targets can see, nothing later.
    mean, std = ref.fit_standardizer(raw[: train[-1] + window + 1])
    scaled = ref.standardize(raw, mean, std)
    X, y = ref.make_windows(scaled, scaled[:, tcol], window)
    return NyseWindows(df, X, y, train, val, test, tcol, mean[tcol], std[tcol])


def _naive_forecasts(d: NyseWindows, config: Config) -> dict[str, np.ndarray]:
    hist = d.history[d.test]
    return {
        "last value": d.back(ref.last_value_forecast(hist)),
        f"moving average ({config.ma_days} days)": d.back(
            ref.moving_average_forecast(hist, config.ma_days)
        ),
        f"window mean ({config.window} days)": d.back(hist.mean(axis=1)),
    }


def _linear_forecasts(d: NyseWindows, config: Config) -> tuple[dict[str, np.ndarray], float]:
    """Least squares on the target's lags and on every feature's, ours beside sklearn's."""
    from sklearn.linear_model import LinearRegression

    fit = np.concatenate([d.train, d.val])  # linear models need no early stopping
    preds, coef_diffs = {}, []
    for label, design in [
        (f"AR({config.window}) on {TARGET}", d.history),
        ("linear, all features", ref.lag_matrix(d.X)),
    ]:
        coef, intercept = ref.fit_linear_ar(design[fit], d.y[fit])
        sk = LinearRegression().fit(design[fit], d.y[fit])
        preds[f"{label} (ours)"] = d.back(ref.predict_linear_ar(design[d.test], coef, intercept))
        preds[f"{label} (sklearn)"] = d.back(sk.predict(design[d.test]))
        coef_diffs.append(float(np.max(np.abs(coef - sk.coef_))))
    return preds, max(coef_diffs)


def _lstm_forecast(d: NyseWindows, config: Config, ctx: RunContext) -> tuple[np.ndarray, dict]:
    """Train the LSTM with early stopping on the validation days; forecast the test period."""
    import torch

    torch.manual_seed(config.seed)
    model = ref.LSTMForecaster(len(config.features), config.hidden_size)
    with ctx.step("training the LSTM"):
        history = ref.train_forecaster(
            model,
            d.X[d.train],
            d.y[d.train],
            d.X[d.val],
            d.y[d.val],
            epochs=config.epochs,
            lr=config.lr,
            batch_size=config.batch_size,
            patience=config.patience,
            seed=config.seed,
        )
    return d.back(ref.predict(model, d.X[d.test])), history


def _r2(y: np.ndarray, y_hat: np.ndarray) -> float:
    return float(1 - np.sum((y - y_hat) ** 2) / np.sum((y - y.mean()) ** 2))


def _score(y_test: np.ndarray, preds: dict[str, np.ndarray]) -> list[dict]:
    return [
        {"method": name, "test_mae": ref.mean_absolute_error(y_test, p), "test_r2": _r2(y_test, p)}
        for name, p in preds.items()
    ]


def _metrics(d: NyseWindows, rows: list[dict], coef_diff: float, history: dict, config: Config):
    mae = {r["method"]: r["test_mae"] for r in rows}
    return {
        "n_days": len(d.df),
        "n_train": len(d.train),
        "n_val": len(d.val),
        "n_test": len(d.test),
        "test_start": str(d.df.index[d.test[0] + config.window].date()),
        "lstm_test_mae": mae["LSTM"],
        "lstm_test_r2": rows[-1]["test_r2"],
        "last_value_test_mae": mae["last value"],
        "moving_average_test_mae": mae[f"moving average ({config.ma_days} days)"],
        "ar_target_only_test_mae": mae[f"AR({config.window}) on {TARGET} (ours)"],
        "ours_linear_test_mae": mae[LINEAR_ALL],
        "sklearn_linear_test_mae": mae["linear, all features (sklearn)"],
        "max_coef_diff_vs_sklearn": coef_diff,
        "lstm_vs_linear_mae_gap": (mae["LSTM"] - mae[LINEAR_ALL]) / mae[LINEAR_ALL],
        "lstm_best_epoch": history["best_epoch"],
        "lstm_epochs_run": len(history["val_loss"]),
    }


def _verdict(d: NyseWindows, rows: list[dict], gap: float) -> dict:
    """The best method, and the LSTM against the linear model: a gap under 1% is a tie
    (seeds move the LSTM by about that much)."""
    best = min(rows, key=lambda r: r["test_mae"])
    if gap < -0.01:
        word = "beats"
    elif gap <= 0.01:
        word = "ties with (within 1%)"
    else:
        word = "does NOT beat"
    return {
        "target": TARGET,
        "test_end": d.df.index[-1].date(),
        "best_method": best["method"],
        "best_mae": best["test_mae"],
        "verdict": word,
        "gap_percent": 100 * gap,
    }


def _forecast_figure(
    d: NyseWindows, preds: dict, rows: list[dict], config: Config, ctx: RunContext
):
    dates = d.df.index[d.test + config.window]
    actual = d.back(d.y[d.test])
    show = slice(len(d.test) - config.plot_days, None)
    with figure(ctx, "forecast", 2, 1, figsize=(11, 7)) as (_, (top, bottom)):
        top.plot(dates[show], actual[show], "k-", lw=1, label="actual")
        top.plot(dates[show], preds["last value"][show], lw=0.8, alpha=0.6, label="last value")
        top.plot(dates[show], preds[LINEAR_ALL][show], lw=1.2, label="linear, all features")
        top.plot(dates[show], preds["LSTM"][show], lw=1.2, label="LSTM")
        top.set(ylabel=TARGET, title=f"next-day forecasts, last {config.plot_days} test days")
        top.legend(fontsize=8, ncol=4)
        names = [r["method"] for r in rows]
        colours = ["C1" if n == "LSTM" else "C0" for n in names]
        bottom.barh(names, [r["test_mae"] for r in rows], color=colours)
        bottom.set(xlabel="test MAE (log volume)", title="held-out final period, lower is better")


def _loss_figure(history: dict, ctx: RunContext) -> None:
    with figure(ctx, "lstm_loss", figsize=(7, 4)) as (_, ax):
        ax.plot(history["train_loss"], label="train")
        ax.plot(history["val_loss"], label="validation")
        ax.axvline(history["best_epoch"], color="k", ls=":", label="kept (best validation)")
        ax.set(xlabel="epoch", ylabel="MSE (standardised)", title="LSTM training")
        ax.legend()


def run(config: Config, ctx: RunContext) -> LabResult:
    data = nyse_windows(config.features, config.window, config.val_days)
    preds = _naive_forecasts(data, config)
    linear, coef_diff = _linear_forecasts(data, config)
    preds |= linear
    preds["LSTM"], history = _lstm_forecast(data, config, ctx)
    rows = _score(data.back(data.y[data.test]), preds)
    metrics = _metrics(data, rows, coef_diff, history, config)

    _forecast_figure(data, preds, rows, config, ctx)
    _loss_figure(history, ctx)

    words = _verdict(data, rows, metrics["lstm_vs_linear_mae_gap"])
    return LabResult(
        metrics=metrics,
        key_metric="lstm_test_mae",
        library_metric="sklearn_linear_test_mae",
        tables={"test_mae": rows},
        figures=ctx.figures,
        notes=render_notes(NOTES, {**asdict(config), **metrics, **words}),
    )
