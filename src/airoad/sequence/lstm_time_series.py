"""Next-day forecasting from a window of past days: baselines, a linear autoregression and an LSTM.

The pieces, in the order a forecast needs them:

- ``make_windows``: (T, F) daily features -> (N, window, F) inputs and the target the day after;
- ``chronological_split``: train / validation / test in time order (never shuffled across time);
- ``fit_standardizer`` / ``standardize``: statistics taken from the training period only;
- baselines: ``last_value_forecast``, ``moving_average_forecast``;
- ``lag_matrix`` + ``fit_linear_ar`` / ``predict_linear_ar``: ordinary least squares on the
  flattened window (an AR(p) model when the window holds only the target);
- ``LSTMForecaster`` (an ``nn.Module``), ``train_forecaster`` (Adam, early stopping on the
  validation loss) and ``predict``;
- ``mean_absolute_error``.
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn


def make_windows(
    features: np.ndarray, target: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray]:
    """Slide a window over time: X[i] = features[i : i + window], y[i] = target[i + window].

    features: (T, F) (a 1-D series is treated as F = 1); target: (T,).
    Returns X: (T - window, window, F) and y: (T - window,). Sample i predicts day i + window
    from the `window` days just before it, so nothing from the target day leaks into X[i].
    """
    features = np.asarray(features, dtype=float)
    if features.ndim == 1:
        features = features[:, None]
    target = np.asarray(target, dtype=float)
    if len(features) != len(target):
        raise ValueError(f"features has {len(features)} rows but target has {len(target)}")
    if not 1 <= window < len(target):
        raise ValueError(f"window must be in [1, {len(target) - 1}], got {window}")
    idx = np.arange(len(target) - window)[:, None] + np.arange(window)
    return features[idx], target[window:]


def chronological_split(
    n_samples: int, val_size: int, test_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Index arrays (train, val, test): the first n - val - test samples, then val, then test.

    Time order is kept: every training sample comes before every validation sample, which
    comes before every test sample. Raises ValueError if fewer than one training sample is left.
    """
    n_train = n_samples - val_size - test_size
    if n_train < 1 or val_size < 0 or test_size < 0:
        raise ValueError(
            f"cannot split {n_samples} samples into val {val_size} + test {test_size}"
            " and leave a training set"
        )
    idx = np.arange(n_samples)
    return idx[:n_train], idx[n_train : n_train + val_size], idx[n_train + val_size :]


def fit_standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column mean and standard deviation (ddof=0) of x: (T, F); a constant column gets std 1.

    Fit this on the training period only: using later days would leak the future.
    """
    x = np.asarray(x, dtype=float)
    mean, std = x.mean(axis=0), x.std(axis=0)
    return mean, np.where(std > 0, std, 1.0)


def standardize(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(x - mean) / std, broadcasting over the last axis (works for (T, F) and (N, W, F))."""
    return (np.asarray(x, dtype=float) - mean) / std


def last_value_forecast(history: np.ndarray) -> np.ndarray:
    """Persistence: tomorrow = today. history: (N, window) of the target -> (N,)."""
    return np.asarray(history, dtype=float)[:, -1]


def moving_average_forecast(history: np.ndarray, k: int) -> np.ndarray:
    """Mean of the last k values of each window. history: (N, window), 1 <= k <= window -> (N,)."""
    history = np.asarray(history, dtype=float)
    if not 1 <= k <= history.shape[1]:
        raise ValueError(f"k must be in [1, {history.shape[1]}], got {k}")
    return history[:, -k:].mean(axis=1)


def lag_matrix(X: np.ndarray) -> np.ndarray:
    """Flatten windows (N, window, F) into the regression design (N, window * F), day-major."""
    X = np.asarray(X, dtype=float)
    return X.reshape(X.shape[0], -1)


def fit_linear_ar(L: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Least squares y ~ L @ coef + intercept. L: (N, p), y: (N,) -> (coef (p,), intercept).

    Solved with np.linalg.lstsq on [L, 1] (an SVD, no explicit inverse of L^T L).
    """
    L, y = np.asarray(L, dtype=float), np.asarray(y, dtype=float)
    design = np.hstack([L, np.ones((L.shape[0], 1))])
    beta, *_ = np.linalg.lstsq(design, y, rcond=None)
    return beta[:-1], float(beta[-1])


def predict_linear_ar(L: np.ndarray, coef: np.ndarray, intercept: float) -> np.ndarray:
    """L @ coef + intercept: (N, p) -> (N,)."""
    return np.asarray(L, dtype=float) @ coef + intercept


def mean_absolute_error(y: np.ndarray, y_hat: np.ndarray) -> float:
    """mean |y - y_hat| over all samples."""
    y, y_hat = np.asarray(y, dtype=float), np.asarray(y_hat, dtype=float)
    if y.shape != y_hat.shape:
        raise ValueError(f"shapes differ: y {y.shape}, y_hat {y_hat.shape}")
    return float(np.mean(np.abs(y - y_hat)))


class LSTMForecaster(nn.Module):
    """An LSTM reads the window; a linear layer maps its last hidden state to tomorrow's value."""

    def __init__(
        self, n_features: int, hidden_size: int = 32, num_layers: int = 1, dropout: float = 0.0
    ):
        super().__init__()
        self.lstm = nn.LSTM(
            n_features,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.head = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: (B, window, n_features) -> forecasts (B,)."""
        out, _ = self.lstm(x)
        return self.head(out[:, -1]).squeeze(-1)


def predict(model: nn.Module, X: np.ndarray, batch_size: int = 1024) -> np.ndarray:
    """Forecasts of `model` in eval mode, no gradients. X: (N, window, F) -> (N,) float64."""
    model.eval()
    with torch.no_grad():
        xs = torch.as_tensor(np.asarray(X), dtype=torch.float32)
        return (
            torch.cat([model(xs[i : i + batch_size]) for i in range(0, len(xs), batch_size)])
            .double()
            .numpy()
        )


def train_forecaster(
    model: nn.Module,
    X_train: np.ndarray,
    y_train: np.ndarray,
    X_val: np.ndarray,
    y_val: np.ndarray,
    epochs: int = 30,
    lr: float = 1e-3,
    batch_size: int = 64,
    patience: int = 5,
    seed: int = 0,
) -> dict:
    """Train with Adam on the MSE; keep the weights of the epoch with the lowest validation MSE.

    Mini-batches are drawn by shuffling the training WINDOWS (each is a self-contained sample
    from the past) with a generator seeded by `seed`; validation data is never trained on.
    Stops after `patience` epochs without improvement. Returns {"train_loss": [...],
    "val_loss": [...], "best_epoch": int} and leaves `model` holding the best weights.
    """
    gen = torch.Generator().manual_seed(seed)
    xt = torch.as_tensor(np.asarray(X_train), dtype=torch.float32)
    yt = torch.as_tensor(np.asarray(y_train), dtype=torch.float32)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    history: dict = {"train_loss": [], "val_loss": [], "best_epoch": -1}
    best, best_state = np.inf, copy.deepcopy(model.state_dict())
    for epoch in range(epochs):
        model.train()
        order, total = torch.randperm(len(xt), generator=gen), 0.0
        for start in range(0, len(xt), batch_size):
            batch = order[start : start + batch_size]
            opt.zero_grad()
            loss = torch.mean((model(xt[batch]) - yt[batch]) ** 2)
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        history["train_loss"].append(total / len(xt))
        val = float(np.mean((predict(model, X_val) - np.asarray(y_val)) ** 2))
        history["val_loss"].append(val)
        if val < best:
            best, best_state, history["best_epoch"] = val, copy.deepcopy(model.state_dict()), epoch
        elif epoch - history["best_epoch"] >= patience:
            break
    model.load_state_dict(best_state)
    return history
