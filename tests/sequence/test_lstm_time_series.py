"""Grader for lstm-time-series: windows, chronological split, train-only standardisation, naive
baselines, least-squares autoregression against scikit-learn, and the LSTM forecaster."""

from __future__ import annotations

import copy

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_absolute_error as sk_mae
from sklearn.preprocessing import StandardScaler

from airoad.data import load

REFERENCE = "airoad.sequence.lstm_time_series"

FAST = settings(max_examples=20, deadline=None)


@pytest.fixture(scope="module")
def nyse() -> pd.DataFrame:
    return load("nyse").iloc[:800]


@given(T=st.integers(3, 40), F=st.integers(1, 3), data=st.data())
@FAST
def test_make_windows_matches_a_loop(impl, T, F, data):
    """make_windows: X[i] = features[i:i+window], y[i] = target[i+window], shapes (T-w, w, F), (T-w,)."""
    window = data.draw(st.integers(1, T - 1))
    feats = np.arange(T * F, dtype=float).reshape(T, F)
    target = np.arange(T, dtype=float) * 10
    X, y = impl.make_windows(feats, target, window)
    assert X.shape == (T - window, window, F), (
        f"X has shape {X.shape}, expected {(T - window, window, F)}"
    )
    assert y.shape == (T - window,), f"y has shape {y.shape}, expected {(T - window,)}"
    for i in range(T - window):
        np.testing.assert_array_equal(X[i], feats[i : i + window], err_msg=f"window {i} is wrong")
        assert y[i] == target[i + window], f"y[{i}] should be the day right after window {i}"


def test_make_windows_accepts_1d_and_rejects_bad_window(impl):
    """A 1-D series becomes one feature; a window of 0 or >= the series length raises ValueError."""
    X, y = impl.make_windows(np.arange(10.0), np.arange(10.0), 3)
    assert X.shape == (7, 3, 1), f"1-D input gave X shape {X.shape}, expected (7, 3, 1)"
    for bad in (5, 0):
        with pytest.raises(ValueError):
            impl.make_windows(np.arange(5.0), np.arange(5.0), bad)


def test_chronological_split_keeps_time_order(impl):
    """chronological_split returns consecutive train, val, test indices in time order (>= 1 train)."""
    train, val, test = impl.chronological_split(100, 15, 20)
    np.testing.assert_array_equal(train, np.arange(65), err_msg="train should be the first 65")
    np.testing.assert_array_equal(val, np.arange(65, 80), err_msg="val should be 65..79")
    np.testing.assert_array_equal(test, np.arange(80, 100), err_msg="test should be the last 20")
    with pytest.raises(ValueError):
        impl.chronological_split(10, 5, 5)
    edge = impl.chronological_split(10, 0, 9)  # one training sample is enough; val may be empty
    assert [len(part) for part in edge] == [1, 0, 9], "split (10, 0, 9) should give 1, 0, 9"


def test_standardizer_matches_sklearn_and_uses_train_only(impl, nyse):
    """fit_standardizer + standardize equal StandardScaler fitted on the training rows."""
    raw = nyse[["DJ_return", "log_volume", "log_volatility"]].to_numpy()
    mean, std = impl.fit_standardizer(raw[:500])
    scaler = StandardScaler().fit(raw[:500])
    np.testing.assert_allclose(mean, scaler.mean_, rtol=1e-12, err_msg="mean differs from sklearn")
    np.testing.assert_allclose(std, scaler.scale_, rtol=1e-12, err_msg="std differs (use ddof=0)")
    np.testing.assert_allclose(
        impl.standardize(raw, mean, std),
        scaler.transform(raw),
        rtol=1e-10,
        atol=1e-12,
        err_msg="standardize differs from StandardScaler.transform",
    )
    _, std_const = impl.fit_standardizer(np.ones((5, 2)))
    np.testing.assert_array_equal(std_const, [1.0, 1.0], err_msg="a constant column needs std 1")


def test_naive_baselines(impl, nyse):
    """last_value_forecast is the last day; moving_average_forecast equals pandas rolling mean."""
    s = nyse["log_volume"]
    X, y = impl.make_windows(s.to_numpy(), s.to_numpy(), 30)
    hist = X[:, :, 0]
    np.testing.assert_array_equal(
        impl.last_value_forecast(hist),
        s.to_numpy()[29:-1],
        err_msg="last value should be the day before the target",
    )
    expected = s.rolling(5).mean().to_numpy()[29:-1]
    np.testing.assert_allclose(
        impl.moving_average_forecast(hist, 5),
        expected,
        rtol=1e-12,
        err_msg="moving average of the last 5 days differs from pandas",
    )
    with pytest.raises(ValueError):
        impl.moving_average_forecast(hist, 31)


def test_linear_ar_matches_sklearn_on_nyse_lags(impl, nyse):
    """fit_linear_ar on the lag matrix gives sklearn LinearRegression's coefficients and predictions."""
    feats = nyse[["DJ_return", "log_volume", "log_volatility"]].to_numpy()
    X, y = impl.make_windows(feats, feats[:, 1], 10)
    L = impl.lag_matrix(X)
    assert L.shape == (len(y), 30), f"lag_matrix gave {L.shape}, expected (N, window * F)"
    np.testing.assert_array_equal(L[3], X[3].reshape(-1), err_msg="flatten each window day by day")
    coef, intercept = impl.fit_linear_ar(L, y)
    sk = LinearRegression().fit(L, y)
    np.testing.assert_allclose(coef, sk.coef_, rtol=1e-7, atol=1e-9, err_msg="coefficients differ")
    np.testing.assert_allclose(
        intercept, sk.intercept_, rtol=1e-7, atol=1e-9, err_msg="intercept differs"
    )
    np.testing.assert_allclose(
        impl.predict_linear_ar(L, coef, intercept),
        sk.predict(L),
        rtol=1e-9,
        atol=1e-10,
        err_msg="predictions differ from sklearn",
    )


def test_linear_ar_recovers_a_known_ar2(impl):
    """On a simulated AR(2) series the fitted lag coefficients are close to the true ones."""
    rng = np.random.default_rng(0)
    x = np.zeros(4000)
    for t in range(2, len(x)):
        x[t] = 0.6 * x[t - 1] - 0.3 * x[t - 2] + 0.1 + rng.normal(scale=0.1)
    X, y = impl.make_windows(x, x, 2)
    coef, intercept = impl.fit_linear_ar(impl.lag_matrix(X), y)
    np.testing.assert_allclose(coef, [-0.3, 0.6], atol=0.03, err_msg="lag order: oldest day first")
    assert abs(intercept - 0.1) < 0.02, f"intercept {intercept}, expected about 0.1"


def test_mae_matches_sklearn(impl):
    """mean_absolute_error equals sklearn's and rejects mismatched shapes."""
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=50), rng.normal(size=50)
    assert impl.mean_absolute_error(a, b) == pytest.approx(sk_mae(a, b), rel=1e-12)
    with pytest.raises(ValueError):
        impl.mean_absolute_error(a, b[:10])


def test_forecaster_shapes_and_predict(impl):
    """LSTMForecaster maps (B, window, F) to (B,); predict returns float64 in eval mode, no grad."""
    torch.manual_seed(0)
    model = impl.LSTMForecaster(3, hidden_size=8)
    x = torch.randn(5, 12, 3)
    out = model(x)
    assert out.shape == (5,), f"forward returned {tuple(out.shape)}, expected (batch,)"
    pred = impl.predict(model, x.numpy(), batch_size=2)
    assert pred.shape == (5,) and pred.dtype == np.float64, (
        f"predict gave {pred.shape} {pred.dtype}"
    )
    np.testing.assert_allclose(
        pred,
        out.detach().double().numpy(),
        rtol=1e-6,
        atol=1e-6,
        err_msg="predict differs from forward",
    )


def test_training_learns_an_ar1_series_and_keeps_best_epoch(impl):
    """train_forecaster lowers the validation loss below persistence and keeps the best epoch's weights."""
    rng = np.random.default_rng(2)
    x = np.zeros(700)
    for t in range(1, len(x)):
        x[t] = (
            0.2 * x[t - 1] + rng.normal()
        )  # persistence is poor here; the mean reversion is learnable
    X, y = impl.make_windows(x, x, 8)
    train, val, _ = impl.chronological_split(len(y), 150, 0)
    torch.manual_seed(0)
    model = impl.LSTMForecaster(1, hidden_size=8)
    hist = impl.train_forecaster(
        model,
        X[train],
        y[train],
        X[val],
        y[val],
        epochs=8,
        lr=0.01,
        batch_size=32,
        patience=3,
        seed=0,
    )
    assert len(hist["train_loss"]) == len(hist["val_loss"]) >= 1, "one loss per epoch run"
    best = hist["best_epoch"]
    assert hist["val_loss"][best] == min(hist["val_loss"]), (
        "best_epoch must have the lowest val loss"
    )
    val_mse = np.mean((impl.predict(model, X[val]) - y[val]) ** 2)
    assert val_mse == pytest.approx(hist["val_loss"][best], rel=1e-5), (
        "model must hold the best weights"
    )
    persistence = np.mean((impl.last_value_forecast(X[val][:, :, 0]) - y[val]) ** 2)
    assert val_mse < 0.8 * persistence, (
        f"val MSE {val_mse:.3f} should beat persistence {persistence:.3f}"
    )


def test_train_forecaster_equals_a_hand_written_adam_loop(impl):
    """train_forecaster's losses equal a plain torch Adam-on-MSE loop over randperm(seed) batches."""
    rng = np.random.default_rng(3)
    X, y = rng.normal(size=(40, 6, 2)), rng.normal(size=40)
    Xv, yv = rng.normal(size=(10, 6, 2)), rng.normal(size=10)
    torch.manual_seed(0)
    model = impl.LSTMForecaster(2, hidden_size=4)
    twin = copy.deepcopy(model)
    hist = impl.train_forecaster(model, X, y, Xv, yv, epochs=2, lr=0.01, batch_size=16, seed=1)
    xt, yt = torch.tensor(X, dtype=torch.float32), torch.tensor(y, dtype=torch.float32)
    opt, gen = torch.optim.Adam(twin.parameters(), lr=0.01), torch.Generator().manual_seed(1)
    train_loss, val_loss = [], []
    for _ in range(2):
        order, total = torch.randperm(40, generator=gen), 0.0
        for start in range(0, 40, 16):
            batch = order[start : start + 16]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(twin(xt[batch]), yt[batch])
            loss.backward()
            opt.step()
            total += loss.item() * len(batch)
        train_loss.append(total / 40)
        with torch.no_grad():
            pred = twin(torch.tensor(Xv, dtype=torch.float32)).double().numpy()
        val_loss.append(float(np.mean((pred - yv) ** 2)))
    np.testing.assert_allclose(hist["train_loss"], train_loss, rtol=1e-6, err_msg="train loss")
    np.testing.assert_allclose(hist["val_loss"], val_loss, rtol=1e-6, err_msg="validation loss")
    empty = impl.train_forecaster(twin, X, y, Xv, yv, epochs=0)
    assert empty == {"train_loss": [], "val_loss": [], "best_epoch": -1}, (
        "with epochs=0 nothing runs: empty losses and best_epoch -1"
    )
