"""stat.arima and stat.garch forecasts against statsmodels and arch called directly.

The rule (plugins.models.statistical): with the fitted parameters frozen, filter from the
timeline's first row through the labels realised by t (rows <= t - horizon), then
forecast ``horizon`` steps. The oracles here do exactly that, one row at a time, with the
libraries' own filter and forecast; the plugins do it for all rows in one pass.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from alphaforge.plugins.models import Timeline, model_plugins
from alphaforge.plugins.models.statistical import RETURN_SCALE

N, TRAIN = 420, 260


@pytest.fixture(scope="module")
def series() -> tuple[np.ndarray, np.ndarray]:
    """Returns whose errors are AR(1) around a regression on three features."""
    rng = np.random.default_rng(11)
    X = rng.normal(size=(N, 3)) * [1.0, 50.0, 0.01]
    errors = np.zeros(N)
    for t in range(1, N):
        errors[t] = 0.6 * errors[t - 1] + rng.normal()
    return X, 0.01 * (X @ [0.3, -0.004, 20.0] + errors)


def _statsmodels_forecast(arima, X: np.ndarray, known: np.ndarray, t: int, h: int) -> float:
    """statsmodels' own h-step forecast for row t, made at t - h with the frozen parameters."""
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    state, spec = arima._state, arima.params
    origin = t - h
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SARIMAX(
            known[: origin + 1] / state["y_scale"], exog=X[: origin + 1] / state["x_scale"],
            order=(spec.p, spec.d, spec.q), trend=spec.trend, validate_exog=False,
        )
        result = model.filter(state["params"])
        return float(result.forecast(steps=h, exog=X[origin + 1 : t + 1] / state["x_scale"])[-1] * state["y_scale"])


@pytest.mark.parametrize("order", [(1, 0, 0, "c"), (2, 0, 1, "c"), (1, 1, 1, "n")])
@pytest.mark.parametrize("h", [1, 5])
def test_arima_forecasts_are_statsmodels_filtered_to_t_minus_h(series, order, h: int) -> None:
    X, y = series
    p, d, q, trend = order
    arima = model_plugins.get("stat.arima").from_parameters({"p": p, "d": d, "q": q, "trend": trend})
    arima.fit(X[:TRAIN], y[:TRAIN])
    known = y.copy()
    known[TRAIN - h : TRAIN] = np.nan  # a withheld gap, as cross-validation's purge
    got = arima.predict(Timeline(X, known, horizon=h, start=TRAIN)).mean
    for t in (TRAIN, TRAIN + 1, TRAIN + h, TRAIN + 60, N - 1):
        assert got[t - TRAIN] == pytest.approx(_statsmodels_forecast(arima, X, known, t, h), rel=1e-9, abs=1e-15)


def test_arima_forecasts_move_with_the_realised_labels(series) -> None:
    """The AR part reacts to what was realised: the old forecast from the training end did not."""
    X, y = series
    arima = model_plugins.get("stat.arima").from_parameters({"p": 1})
    arima.fit(X[:TRAIN], y[:TRAIN])
    live = arima.predict(Timeline(X, y, horizon=1, start=TRAIN)).mean
    blind = arima.predict(Timeline(X, np.where(np.arange(N) < TRAIN, y, np.nan), horizon=1, start=TRAIN)).mean
    assert np.corrcoef(live, y[TRAIN:])[0, 1] > np.corrcoef(blind, y[TRAIN:])[0, 1] + 0.1


@pytest.mark.parametrize(("mean", "p", "q"), [("Constant", 1, 1), ("LS", 2, 1), ("Zero", 1, 0)])
@pytest.mark.parametrize("h", [1, 4])
def test_garch_volatility_is_arch_analytic_forecast_from_t_minus_h(series, mean: str, p: int, q: int, h: int) -> None:
    from arch import arch_model

    X, _ = series
    rng = np.random.default_rng(5)
    returns = rng.standard_t(5, size=N) * 0.01 * np.exp(np.sin(np.arange(N) / 40))
    garch = model_plugins.get("stat.garch").from_parameters({"mean": mean, "p": p, "q": q})
    garch.fit(X[:TRAIN], returns[:TRAIN])
    prediction = garch.predict(Timeline(X, returns, horizon=h, start=0))
    state = garch._state

    if mean == "LS":
        fitted_mean = state["mean_params"][0] + (X / state["x_scale"]) @ state["mean_params"][1:]
    else:
        fitted_mean = np.full(N, state["mean_params"][0] if len(state["mean_params"]) else 0.0)
    np.testing.assert_allclose(prediction.mean, fitted_mean / RETURN_SCALE, rtol=1e-12)
    residuals = returns * RETURN_SCALE - fitted_mean
    volatility = arch_model(residuals, mean="Zero", vol="GARCH", p=p, q=q, rescale=False).volatility
    bounds = np.column_stack([np.zeros(N), np.full(N, np.inf)])  # never binding
    forecasts = volatility.forecast(
        state["vol_params"], residuals, float(state["backcast"]), bounds, start=0, horizon=h, method="analytic"
    ).forecasts
    # arch's row o holds the forecasts made at o: column h-1 is row o + h's variance.
    expected = np.sqrt(forecasts[: N - h, h - 1]) / RETURN_SCALE
    np.testing.assert_allclose(prediction.extras["volatility"][h:], expected, rtol=1e-12)
    # The last h labels are not realised by the last row: they must not matter.
    unseen = returns.copy()
    unseen[N - h :] = 1.0
    again = garch.predict(Timeline(X, unseen, horizon=h, start=0)).extras["volatility"]
    np.testing.assert_array_equal(again, prediction.extras["volatility"])


def test_garch_backcast_is_frozen_from_training_not_read_from_the_timeline(series) -> None:
    """arch starts its recursion from a backcast of the first 75 residuals, rows after t for
    early rows; the plugin keeps the training's, so early forecasts see nothing later."""
    X, _ = series
    returns = np.random.default_rng(8).standard_t(5, size=N) * 0.01 * np.exp(np.sin(np.arange(N) / 40))
    garch = model_plugins.get("stat.garch").from_parameters({"mean": "Zero"})
    garch.fit(X[:TRAIN], returns[:TRAIN])
    assert garch._state["vol_params"][1] > 0.01  # alpha: the variance reacts to shocks
    base = garch.predict(Timeline(X, returns, horizon=1)).extras["volatility"]
    shocked = returns.copy()
    shocked[10:] *= 5.0
    after = garch.predict(Timeline(X, shocked, horizon=1)).extras["volatility"]
    np.testing.assert_array_equal(after[:11], base[:11])
    assert after[11] > base[11]
